import { execFile } from "node:child_process";
import * as path from "node:path";
import { tcpTransport } from "@open-channel/transport-tcp";
import { unixTransport } from "@open-channel/transport-unix";
import { OpenChannelError, ProcessChannel, queryChannelStatus, type Transport } from "open-channel";
import { Group, uniqueChannel } from "./helpers/group";

const BIN = path.join(__dirname, "..", "bin", "open-channel.js");
const TRANSPORTS = ["unix", "tcp"] as const;

/** Runs the `open-channel` command as a user would (`npx open-channel ...`). */
function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, OPEN_CHANNEL_TRANSPORT: "" } }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: number }).code), stdout, stderr });
    });
  });
}

interface StatusJson {
  channel: string;
  state: string;
  host: {
    pid: number;
    members: number;
    transport: string;
    heirPid?: number;
    uptimeMs: number;
    since: number;
    script: string;
    serverId: string;
  } | null;
}

/** Asks until `check` accepts the answer (the heir is chosen 150-300 ms after members connect). */
async function statusUntil(channel: string, check: (s: StatusJson) => boolean): Promise<StatusJson> {
  let last: StatusJson | undefined;
  for (let i = 0; i < 100; i++) {
    const { stdout } = await cli("status", channel, "--json");
    last = JSON.parse(stdout) as StatusJson;
    if (check(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`status never matched: ${JSON.stringify(last)}`);
}

describe.each(TRANSPORTS)("open-channel status and list over %s", (transport) => {
  let group: Group;
  beforeEach(() => {
    group = new Group();
  });
  afterEach(() => group.stop());

  test("status shows the right host, its members and heir, before and after a failover; list shows the channel", async () => {
    const testStart = Date.now();
    const channel = uniqueChannel(`status-${transport}`);
    const pids = await group.fork(3, { OC_CHANNEL: channel, OPEN_CHANNEL_TRANSPORT: transport });
    const { hostPid } = await group.agreement(pids, channel);

    // The command asks every transport of the platform: it finds the channel wherever it is.
    const before = await statusUntil(channel, (s) => s.host?.heirPid !== undefined && s.host.members === 3);
    expect(before.state).toBe("hosted");
    expect(before.host?.pid).toBe(hostPid);
    expect(before.host?.transport).toBe(transport);
    // Hosting since the test began, and running the member fixture.
    expect(before.host?.uptimeMs).toBeGreaterThanOrEqual(0);
    expect(before.host?.uptimeMs).toBeLessThan(Date.now() - testStart + 1000);
    expect(before.host?.script).toMatch(/member\.js$/);
    expect(pids.filter((p) => p !== hostPid)).toContain(before.host?.heirPid);

    const text = await cli("status", channel);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`hosted by pid ${hostPid} over ${transport}`);
    expect(text.stdout).toMatch(/members +3 connected/);

    const listed = await cli("list", "--json");
    expect(listed.code).toBe(0);
    const row = (JSON.parse(listed.stdout) as Array<{ channel: string; state: string; host?: { pid: number } }>).find(
      (r) => r.channel === channel,
    );
    expect(row).toMatchObject({ state: "hosted", host: { pid: hostPid } });

    // SIGKILL the host: once the survivors agree, the command names the new host.
    const since = group.reports.length;
    group.kill(hostPid);
    const survivors = pids.filter((p) => p !== hostPid);
    const { hostPid: newHost } = await group.agreement(survivors, channel, since);
    const after = await statusUntil(channel, (s) => s.host?.pid === newHost && s.host.members === 2);
    expect(after.host?.serverId).not.toBe(before.host?.serverId);
    expect(survivors).toContain(after.host?.pid);
  });

  test("a channel with no host: exit status 1, and list --all shows the dead host's leftovers as no host", async () => {
    const channel = uniqueChannel(`status-gone-${transport}`);
    const none = await cli("status", channel);
    expect(none.code).toBe(1);
    expect(none.stdout).toContain(`channel "${channel}": no host`);

    const [pid] = await group.fork(1, { OC_CHANNEL: channel, OPEN_CHANNEL_TRANSPORT: transport });
    await group.agreement([pid], channel);
    group.kill(pid);
    const gone = await statusUntil(channel, (s) => s.state === "no-host");
    expect(gone.host).toBeNull();
    const hosted = JSON.parse((await cli("list", "--json")).stdout) as Array<{ channel: string }>;
    expect(hosted.map((r) => r.channel)).not.toContain(channel);
    const all = JSON.parse((await cli("list", "--all", "--json")).stdout) as Array<{ channel: string; transport: string; state: string }>;
    expect(all).toContainEqual(expect.objectContaining({ channel, transport, state: "no-host" }));
  });
});

describe("status requests, in one process", () => {
  const transports: Record<string, () => Transport> = { unix: () => unixTransport(), tcp: () => tcpTransport() };

  test.each(Object.keys(transports))("over %s: answered by the host's server, never by the user's listener", async (name) => {
    const transport = transports[name]();
    const channelName = uniqueChannel(`status-local-${name}`);
    let listenerCalls = 0;
    const channel = new ProcessChannel(channelName, () => listenerCalls++, { transport });
    const socket = channel.connect();
    await new Promise((resolve) => socket.once("connect", resolve));
    try {
      for (let i = 0; i < 5; i++) {
        const result = await channel.status();
        expect(result.state).toBe("hosted");
        if (result.state !== "hosted") return;
        expect(result.status).toMatchObject({ channel: channelName, pid: process.pid, members: 1, transport: name, protocol: 1 });
        expect(result.heirPid).toBeUndefined();
      }
      expect(listenerCalls).toBe(1);
    } finally {
      socket.destroy();
    }
  });

  test("over tcp, an asker without the secret gets no status (the host wants the proof)", async () => {
    const transport = tcpTransport();
    const channelName = uniqueChannel("status-noproof");
    const channel = new ProcessChannel(channelName, () => undefined, { transport });
    const socket = channel.connect();
    await new Promise((resolve) => socket.once("connect", resolve));
    try {
      const noSecret: Transport = { name: "tcp", listen: (c, s) => transport.listen(c, s), connect: (c, s) => transport.connect(c, s) };
      const err = await queryChannelStatus(noSecret, channelName).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(OpenChannelError);
      expect((err as OpenChannelError).code).toBe("ERR_OPEN_CHANNEL_HANDSHAKE");
      expect((err as Error).message).toContain(channelName);
    } finally {
      socket.destroy();
    }
  });
});

test("usage errors exit with status 2 and print the usage", async () => {
  for (const args of [[], ["--json"], ["status"], ["bogus"], ["list", "extra"], ["status", "x", "--timeout", "soon"]]) {
    const { code, stderr } = await cli(...args);
    expect(code).toBe(2);
    expect(stderr).toContain("Usage:");
  }
  const help = await cli("--help");
  expect(help.code).toBe(0);
  expect(help.stdout).toContain("open-channel status NAME");
});
