import { type ChildProcess, fork, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { HANDSHAKE } from "@open-channel/core";
import { tcpTransport } from "@open-channel/transport-tcp";
import { unixTransport } from "@open-channel/transport-unix";
import { uniqueChannel } from "./helpers/group";

// Real other OS users: as root, fork the host and the intruder under two unprivileged uids.
const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const HOST_UID = 40101;
const INTRUDER_UID = 40102;
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
});

/**
 * The other uids may not be able to read this checkout (a clone in a 0700 folder): they run a copy
 * of the built packages and the fixture, staged in a folder anyone can read. The same goes for the
 * Node binary running the tests when it lives in a private folder (npx's cache in /root when
 * `npm run test:node` runs the suite on another Node version, nvm's, ...).
 */
let staged: string | undefined;
let nodeForOthers = process.execPath;
function stage(): string {
  if (staged !== undefined) return staged;
  const root = path.join(__dirname, "..", "..");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "oc-users-"));
  fs.chmodSync(dir, 0o755);
  const packages: Record<string, string> = {
    "open-channel": "open-channel",
    "@open-channel/core": "core",
    "@open-channel/messages": "messages",
    "@open-channel/transport-unix": "transport-unix",
    "@open-channel/transport-tcp": "transport-tcp",
  };
  for (const [name, folder] of Object.entries(packages)) {
    const to = path.join(dir, "node_modules", name);
    for (const part of ["package.json", "index.mjs", "dist"]) {
      fs.cpSync(path.join(root, folder, part), path.join(to, part), { recursive: true });
    }
  }
  fs.copyFileSync(path.join(__dirname, "fixtures", "other-user.js"), path.join(dir, "other-user.js"));
  // Readable by all, whatever the umask and the modes of the checkout.
  const open = (p: string): void => {
    const st = fs.statSync(p);
    fs.chmodSync(p, st.isDirectory() ? 0o755 : 0o644);
    if (st.isDirectory()) for (const e of fs.readdirSync(p)) open(path.join(p, e));
  };
  open(dir);
  if (spawnSync(process.execPath, ["-e", ""], { uid: HOST_UID, gid: HOST_UID }).status !== 0) {
    // A hard link costs nothing; a copy when it cannot be made (another disk) or others may not run it.
    nodeForOthers = path.join(dir, "node");
    try {
      fs.linkSync(process.execPath, nodeForOthers);
    } catch {
      // copied below
    }
    if (!fs.existsSync(nodeForOthers) || (fs.statSync(nodeForOthers).mode & 0o005) !== 0o005) {
      fs.rmSync(nodeForOthers, { force: true });
      fs.copyFileSync(process.execPath, nodeForOthers);
      fs.chmodSync(nodeForOthers, 0o755);
    }
  }
  staged = dir;
  return dir;
}
afterAll(() => {
  if (staged !== undefined) fs.rmSync(staged, { recursive: true, force: true });
});

function start(uid: number, env: Record<string, string>, onMessage: (m: Record<string, unknown>) => void): ChildProcess {
  const child = fork(path.join(stage(), "other-user.js"), [], {
    execPath: nodeForOthers,
    uid,
    gid: uid,
    env: { ...process.env, XDG_RUNTIME_DIR: "", ...env },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  child.on("message", (m) => onMessage(m as Record<string, unknown>));
  children.push(child);
  return child;
}

/** The first message of `type` (waiting up to 30 s for it). */
function next(messages: Record<string, unknown>[], type: string): Promise<Record<string, unknown>> {
  return until(messages, `${type} message`, (m) => m.type === type);
}

const describeAsRoot = isRoot ? describe : describe.skip;
if (!isRoot) {
  console.warn("other-users.test.ts: skipped, it needs root to run processes as two other uids");
}

describeAsRoot.each(["unix", "tcp"] as const)("another OS user cannot reach the host's listener over %s", (transport) => {
  test("every way in fails, and the listener sees only the host's own connection", async () => {
    const channel = uniqueChannel(`users-${transport}`);
    const hostMessages: Record<string, unknown>[] = [];
    const host = start(HOST_UID, { OC_ROLE: "host", OC_CHANNEL: channel, OPEN_CHANNEL_TRANSPORT: transport }, (m) => hostMessages.push(m));
    const hosting = await next(hostMessages, "hosting");
    expect(hosting.isHost).toBe(true);

    // What the intruder is told about the victim: the paths any local user could guess, and the port.
    const victimDir = path.join(os.tmpdir(), `open-channel-${HOST_UID}`);
    const victim =
      transport === "unix"
        ? { socketPath: unixTransport({ dir: victimDir }).socketPath(channel) }
        : { portFile: tcpTransport({ dir: victimDir }).portFile(channel), port: Number(String(hosting.address).match(/:(\d+) via/)?.[1]) };
    const intruderMessages: Record<string, unknown>[] = [];
    start(
      INTRUDER_UID,
      { OC_ROLE: "intruder", OC_CHANNEL: channel, OPEN_CHANNEL_TRANSPORT: transport, OC_VICTIM: JSON.stringify(victim) },
      (m) => intruderMessages.push(m),
    );
    const { results } = (await next(intruderMessages, "intruder")) as { results: Record<string, Record<string, unknown> | string> };

    if (transport === "unix") {
      expect(results.connectToSocket).toEqual({ connected: false, code: "EACCES" });
      expect(results.listDir).toBe("EACCES");
    } else {
      expect(results.readPortFile).toBe("EACCES");
      // The port is reachable (loopback), but the proof fails: closed by the host, nothing learned
      // beyond the host's own challenge.
      expect(results.connectToPort).toMatchObject({ connected: true, closedByHost: true });
      // A status request gets the host's challenge (reply, nonce, proof) and nothing more.
      expect(results.statusByPort).toMatchObject({
        connected: true,
        closedByHost: true,
        bytesFromHost: HANDSHAKE.replyLength + HANDSHAKE.nonceLength + HANDSHAKE.proofLength,
      });
    }
    // `open-channel list` and `status` run by the other user do not show the victim's channel.
    expect(results.listed).not.toContain(channel);
    expect(results.statusExit).toBe(1);
    expect(results.statusState).toBe("no-host");
    const own = results.ownChannel as { isHost: boolean; hostPid: number };
    expect(own.isHost).toBe(true);
    expect(own.hostPid).not.toBe(hosting.pid);
    // The victim's listener saw exactly one connection: its own. The host answers "seen" after
    // it reported every connection its listener saw before: the intruder's were all closed by now.
    host.send({ cmd: "seen" });
    expect((await next(hostMessages, "seen")).seen).toBe(1);
    expect(hostMessages.filter((m) => m.type === "listener").map((m) => m.seen)).toEqual([1]);
  });
});

describeAsRoot.each(["unix", "tcp"] as const)("a private folder under another user's folder, over %s", (transport) => {
  test("is refused: its owner could move it away and put one of theirs in its place", async () => {
    // The intruder owns a sticky, world-writable folder (as /tmp is root's): the victim may make
    // its private folder there, and the intruder, as the folder's owner, may still rename it.
    stage();
    const shared = fs.mkdtempSync(path.join(os.tmpdir(), "oc-shared-"));
    fs.chownSync(shared, INTRUDER_UID, INTRUDER_UID);
    fs.chmodSync(shared, 0o1777);
    const dir = path.join(shared, "victim-private");
    const hostMessages: Record<string, unknown>[] = [];
    start(
      HOST_UID,
      { OC_ROLE: "host-in", OC_CHANNEL: uniqueChannel(`shared-${transport}`), OC_DIR: dir, OPEN_CHANNEL_TRANSPORT: transport },
      (m) => hostMessages.push(m),
    );
    const result = await next(hostMessages, "host-in");
    expect(result).toMatchObject({ code: "ERR_OPEN_CHANNEL_UNSAFE_DIR" });
    expect(String(result.message)).toContain(`belongs to uid ${INTRUDER_UID}`);
    expect(fs.existsSync(dir)).toBe(false);

    // The threat is real: a folder of the victim's there is the intruder's to move.
    fs.mkdirSync(dir, { mode: 0o700 });
    fs.chownSync(dir, HOST_UID, HOST_UID);
    const moverMessages: Record<string, unknown>[] = [];
    start(INTRUDER_UID, { OC_ROLE: "mover", OC_FROM: dir, OC_TO: `${dir}-moved` }, (m) => moverMessages.push(m));
    expect(await next(moverMessages, "moved")).toMatchObject({ ok: true });
  });
});

describeAsRoot("another user on a dead tcp host's port", () => {
  test("a silent listener there is no host of ours: the next process hosts (it timed out for good)", async () => {
    const channel = uniqueChannel("silent-port");
    const env = { OC_ROLE: "host", OC_CHANNEL: channel, OPEN_CHANNEL_TRANSPORT: "tcp" };
    const first: Record<string, unknown>[] = [];
    const victim = start(HOST_UID, env, (m) => first.push(m));
    const hosting = await next(first, "hosting");
    const port = Number(String(hosting.address).match(/:(\d+) via/)?.[1]);
    // The host dies; its port file stays (SIGKILL), naming a port anyone may bind now.
    victim.kill("SIGKILL");
    await new Promise((resolve) => victim.once("exit", resolve));
    const intruder: Record<string, unknown>[] = [];
    start(INTRUDER_UID, { OC_ROLE: "silent", OC_PORT: String(port) }, (m) => intruder.push(m));
    expect(await next(intruder, "silent")).toMatchObject({ ok: true });
    const second: Record<string, unknown>[] = [];
    start(HOST_UID, env, (m) => second.push(m));
    const outcome = await until(second, "hosting", (m) => m.type === "hosting" || m.type === "host-error");
    expect(outcome).toMatchObject({ type: "hosting", isHost: true });
    expect(String(outcome.address)).not.toContain(`:${port} `);
  });
});

describeAsRoot("another user relaying a member's connection to the tcp host", () => {
  // The proofs cover the connection's endpoints: through a relay, the member's view of them is
  // not the host's, so neither proof holds. Before, the relay passed the host's proof on, and the
  // member sent its data through it.
  test.each([1, 2, 3])("gets none of the member's bytes; the member reaches its host directly (run %i)", async () => {
    const channel = uniqueChannel("relay");
    const hostMessages: Record<string, unknown>[] = [];
    start(HOST_UID, { OC_ROLE: "host", OC_CHANNEL: channel, OPEN_CHANNEL_TRANSPORT: "tcp" }, (m) => hostMessages.push(m));
    const hosting = await next(hostMessages, "hosting");
    const port = Number(String(hosting.address).match(/:(\d+) via/)?.[1]);
    const relayMessages: Record<string, unknown>[] = [];
    start(INTRUDER_UID, { OC_ROLE: "relay", OC_TARGET: String(port) }, (m) => relayMessages.push(m));
    const relay = await next(relayMessages, "relay");
    const memberMessages: Record<string, unknown>[] = [];
    start(HOST_UID, { OC_ROLE: "member-via", OC_CHANNEL: channel, OC_VIA: String(relay.port) }, (m) => memberMessages.push(m));
    const member = await until(memberMessages, "member", (m) => m.type === "member" || m.type === "member-error");
    expect(member).toMatchObject({ type: "member", isHost: false, hostPid: hosting.hostPid });
    expect(await next(hostMessages, "data")).toMatchObject({ text: "secret-data\n" });
    // The relay saw the member's hello, and nothing the member sent after it.
    const relayed = relayMessages.filter((m) => m.type === "relayed").map((m) => String(m.bytes));
    expect(relayed.join("")).toContain(channel);
    expect(relayed.join("")).not.toContain("secret-data");
  });
});

/** Waits for a message that `match` accepts. */
function until(
  messages: Record<string, unknown>[],
  what: string,
  match: (m: Record<string, unknown>) => boolean,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const end = Date.now() + 30000;
    const tick = (): void => {
      const m = messages.find(match);
      if (m) resolve(m);
      else if (Date.now() > end) reject(new Error(`no ${what}: ${JSON.stringify(messages)}`));
      else setTimeout(tick, 20);
    };
    tick();
  });
}

const describeAsRootOnLinux = isRoot && process.platform === "linux" ? describe : describe.skip;

describeAsRootOnLinux.each(["unix", "tcp"] as const)("another user squatting the channel's lock names, over %s", (transport) => {
  test("the old predictable names and every name seen in /proc/net/unix block nothing: hosts are elected, members connect", async () => {
    const channel = uniqueChannel(`squat-${transport}`);
    // What the lock was: an abstract socket named from the victim's uid and the lock file's path,
    // both known to any local user; for the channel's address and its heir's standby address.
    const victimDir = path.join(os.tmpdir(), `open-channel-${HOST_UID}`);
    const address = (name: string): string =>
      transport === "unix" ? unixTransport({ dir: victimDir }).socketPath(name) : tcpTransport({ dir: victimDir }).portFile(name);
    const names = [channel, channel + HANDSHAKE.standbySuffix].map(
      (name) =>
        `\0open-channel-lock-${HOST_UID}-${createHash("sha256")
          .update(`${address(name)}.lock`)
          .digest("hex")
          .slice(0, 32)}`,
    );
    const squatter: Record<string, unknown>[] = [];
    const intruder = start(INTRUDER_UID, { OC_ROLE: "squatter", OC_NAMES: JSON.stringify(names) }, (m) => squatter.push(m));
    expect(await next(squatter, "squatting")).toMatchObject({ bound: 2 });

    // Three processes of the victim: one hosts, all connect to it (before: ETIMEDOUT, every one).
    const env = { OC_ROLE: "member", OC_CHANNEL: channel, OPEN_CHANNEL_TRANSPORT: transport };
    const messages = new Map<number, Record<string, unknown>[]>();
    const member = (): ChildProcess => {
      const log: Record<string, unknown>[] = [];
      const child = start(HOST_UID, env, (m) => log.push(m));
      messages.set(child.pid as number, log);
      return child;
    };
    const connectedTo = async (child: ChildProcess, notHost?: number): Promise<number> => {
      const log = messages.get(child.pid as number) as Record<string, unknown>[];
      // One wait for either: a losing wait of a race would poll on after the test.
      const m = await until(log, "connect", (x) => (x.type === "connected" && x.hostPid !== notHost) || x.type === "member-error");
      if (m.type === "member-error") throw new Error(`${m.code}: ${m.message}`);
      return m.hostPid as number;
    };
    let group = [member(), member(), member()];
    let hostPids = await Promise.all(group.map((c) => connectedTo(c)));
    expect(new Set(hostPids).size).toBe(1);
    expect(group.map((c) => c.pid)).toContain(hostPids[0]);

    // Two takeovers while the intruder watches /proc/net/unix and binds every name it sees there.
    for (let round = 0; round < 2; round++) {
      const host = group.find((c) => c.pid === hostPids[0]) as ChildProcess;
      host.kill("SIGKILL");
      group = group.filter((c) => c !== host);
      hostPids = await Promise.all(group.map((c) => connectedTo(c, host.pid)));
      expect(new Set(hostPids).size).toBe(1);
      expect(group.map((c) => c.pid)).toContain(hostPids[0]);
      for (const log of messages.values()) log.splice(0);
    }
    // A newcomer joins the last host.
    const newcomer = member();
    expect(await connectedTo(newcomer)).toBe(hostPids[0]);

    intruder.send("report");
    const { held } = (await next(squatter, "squatter")) as { held: string[] };
    // It still holds the old names, and whatever else it could learn and bind.
    expect(held.length).toBeGreaterThanOrEqual(2);
  });
});
