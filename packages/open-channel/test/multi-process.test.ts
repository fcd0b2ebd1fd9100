import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { leaveStaleHost } from "@open-channel/core/compliance";
import { unixTransport } from "@open-channel/transport-unix";
import { DIE_STEPS, Group, type Report, uniqueChannel, WAIT_MS } from "./helpers/group";

let group: Group;
beforeEach(() => {
  group = new Group();
});
afterEach(() => group.stop());

/**
 * How many rounds a repeated test runs: `usual`, or fewer with OC_TEST_ROUNDS=n (the smoke runs on
 * other Node versions, scripts/node-matrix.js, run every test here with a few rounds each).
 */
const ROUNDS_CAP = Number(process.env.OC_TEST_ROUNDS);
const rounds = (usual: number): number => (Number.isInteger(ROUNDS_CAP) && ROUNDS_CAP > 0 ? Math.min(usual, ROUNDS_CAP) : usual);

const hostsAmong = (connects: Report[]): number[] => connects.filter((c) => c.isHost).map((c) => c.pid);

/** Lines the host reported receiving from `pid` on `channel`, in arrival order. */
function receivedFrom(pid: number, channel: string, since = 0): string[] {
  return group.reports
    .slice(since)
    .filter((r) => r.type === "received" && r.channel === channel && r.line?.startsWith(`${pid} `))
    .map((r) => r.line as string);
}

/**
 * 20 rounds (see `rounds`): prepare a new channel (`before`), have every one of `pids` open it at the same moment,
 * and check that exactly one host came out and that no member ever reached another host.
 */
async function raceRounds(pids: number[], label: string, before: (channel: string) => Promise<void>): Promise<void> {
  for (let round = 0; round < rounds(20); round++) {
    const channel = uniqueChannel(`${label}${round}`);
    await before(channel);
    for (const pid of pids) group.send(pid, { cmd: "open", channel });
    const { hostPid, connects } = await group.agreement(pids, channel);
    expect(hostsAmong(connects)).toEqual([hostPid]);
    const allConnects = group.reports.filter((r) => r.type === "connect" && r.channel === channel);
    expect(new Set(allConnects.map((c) => c.hostPid))).toEqual(new Set([hostPid]));
    for (const pid of pids) group.send(pid, { cmd: "destroy", channel });
  }
}

async function checkOneHostAndTraffic(pids: number[], channel: string): Promise<number> {
  const { hostPid, connects } = await group.agreement(pids, channel);
  expect(hostsAmong(connects)).toEqual([hostPid]);
  // Every member's writes made before it connected reach the host, in order.
  await group.waitFor(() => pids.every((pid) => receivedFrom(pid, channel).length >= 3), "pre-connect writes at the host");
  for (const pid of pids) expect(receivedFrom(pid, channel)).toEqual([`${pid} pre 1`, `${pid} pre 2`, `${pid} pre 3`]);
  // ...and every member hears the host: its welcome and the echo of its own line.
  await group.waitFor(
    () => pids.every((pid) => group.reports.some((r) => r.pid === pid && r.type === "data" && r.line?.startsWith(`echo ${pid} pre 3 #`))),
    "echoes at the members",
  );
  for (const pid of pids) {
    const first = group.reports.find((r) => r.pid === pid && r.type === "data");
    expect(first?.line).toBe(`welcome ${hostPid}`);
  }
  return hostPid;
}

async function killHostAndCheckTakeover(channel: string, oldHost: number): Promise<number> {
  const since = group.reports.length;
  group.kill(oldHost);
  const survivors = group.alive();
  // Every survivor writes a line as soon as it sees the loss (fixtures/member.js): queued, it must
  // reach the new host.
  const { hostPid, connects } = await group.agreement(survivors, channel, since);
  expect(hostPid).not.toBe(oldHost);
  expect(hostsAmong(connects)).toEqual([hostPid]);
  await group.waitFor(
    () => survivors.every((pid) => receivedFrom(pid, channel, since).includes(`${pid} during-failover`)),
    "writes made during the failover at the new host",
  );
  expect(group.reports.slice(since).filter((r) => r.type === "error")).toEqual([]);
  return hostPid;
}

const TRANSPORTS = ["unix", "tcp"] as const;
const STALE_MAKERS = {
  unix: { module: require.resolve("@open-channel/transport-unix"), factory: "unixTransport" },
  tcp: { module: require.resolve("@open-channel/transport-tcp"), factory: "tcpTransport" },
};

describe.each(TRANSPORTS)("open-channel across processes over %s", (transport) => {
  const env = (more: Record<string, string>): Record<string, string> => ({ OPEN_CHANNEL_TRANSPORT: transport, ...more });

  test("child_process.fork: exactly one host, every member talks to it, pre-connect writes in order", async () => {
    const channel = uniqueChannel("fork");
    const pids = await group.fork(4, env({ OC_CHANNEL: channel, OC_HELLO: "3" }));
    await checkOneHostAndTraffic(pids, channel);
  });

  test("cluster (4 workers): exactly one host, every worker talks to it, pre-connect writes in order", async () => {
    const channel = uniqueChannel("cluster");
    const pids = await group.cluster(4, env({ OC_CHANNEL: channel, OC_HELLO: "3" }));
    await checkOneHostAndTraffic(pids, channel);
  });

  test("fork: a SIGKILLed host is replaced by exactly one survivor, again and again", async () => {
    const channel = uniqueChannel("fork-kill");
    const pids = await group.fork(5, env({ OC_CHANNEL: channel, OC_HELLO: "3" }));
    let host = await checkOneHostAndTraffic(pids, channel);
    for (let round = 0; round < 3; round++) host = await killHostAndCheckTakeover(channel, host);
  });

  test("cluster: a SIGKILLed host worker is replaced by exactly one surviving worker, again and again", async () => {
    const channel = uniqueChannel("cluster-kill");
    const pids = await group.cluster(5, env({ OC_CHANNEL: channel, OC_HELLO: "3" }));
    let host = await checkOneHostAndTraffic(pids, channel);
    for (let round = 0; round < 3; round++) host = await killHostAndCheckTakeover(channel, host);
  });

  test("socket.destroy() in a member closes only its channel; the host keeps serving the others", async () => {
    const channel = uniqueChannel("destroy");
    const pids = await group.fork(3, env({ OC_CHANNEL: channel }));
    const { hostPid } = await group.agreement(pids, channel);
    const leaving = pids.find((p) => p !== hostPid) as number;
    const since = group.reports.length;
    group.send(leaving, { cmd: "destroy", channel });
    await group.waitFor(() => group.reports.slice(since).some((r) => r.pid === leaving && r.type === "close"), "the member's close");
    expect(group.reports.slice(since).find((r) => r.pid === leaving && r.type === "close")?.state).toBe("closed");
    const others = pids.filter((p) => p !== leaving);
    for (const pid of others) group.send(pid, { cmd: "write", channel, data: `${pid} after-destroy\n` });
    await group.waitFor(
      () => others.every((pid) => receivedFrom(pid, channel, since).includes(`${pid} after-destroy`)),
      "the host to keep serving",
    );
    // Nobody re-elected.
    expect(group.reports.slice(since).filter((r) => r.type === "connect")).toEqual([]);
  });

  test("socket.destroy() in the host ends its own membership only: its server goes on serving the others", async () => {
    const channel = uniqueChannel("host-destroy");
    const pids = await group.fork(4, env({ OC_CHANNEL: channel }));
    const { hostPid } = await group.agreement(pids, channel);
    const others = pids.filter((p) => p !== hostPid);
    // A request in flight while the host closes: the host's listener holds it until after the close.
    let since = group.reports.length;
    group.send(hostPid, { cmd: "pause-host", channel });
    await group.waitFor(() => group.reports.slice(since).some((r) => r.pid === hostPid && r.type === "paused"), "the host to pause");
    for (const pid of others) group.send(pid, { cmd: "write", channel, data: `${pid} in-flight\n` });
    await group.waitFor(
      () => others.every((pid) => group.reports.slice(since).some((r) => r.pid === pid && r.type === "written")),
      "the members' writes",
    );
    group.send(hostPid, { cmd: "destroy", channel });
    await group.waitFor(() => group.reports.slice(since).some((r) => r.pid === hostPid && r.type === "close"), "the host's close");
    expect(group.reports.slice(since).find((r) => r.pid === hostPid && r.type === "close")?.state).toBe("closed");
    group.send(hostPid, { cmd: "resume-host", channel });
    // Every member gets the answer to its request from the same host, on the same connection...
    await group.waitFor(
      () =>
        others.every((pid) =>
          group.reports.slice(since).some((r) => r.pid === pid && r.type === "data" && r.line?.startsWith(`echo ${pid} in-flight #`)),
        ),
      "the answers to the requests in flight",
    );
    // ...and goes on being served by it: nobody re-elected, no error.
    since = group.reports.length;
    for (const pid of others) group.send(pid, { cmd: "write", channel, data: `${pid} after-destroy\n` });
    await group.waitFor(
      () =>
        others.every((pid) =>
          group.reports.slice(since).some((r) => r.pid === pid && r.type === "data" && r.line?.startsWith(`echo ${pid} after-destroy #`)),
        ),
      "the host to keep serving",
    );
    const all = group.reports.filter((r) => r.channel === channel);
    expect(all.filter((r) => r.type === "connect").length).toBe(pids.length);
    expect(all.filter((r) => r.type === "failover" || r.type === "error" || (r.type === "hosting" && r.isHost === false))).toEqual([]);
  });

  test("channel.close({ handover: true }) in the host hands the channel over: the others elect a new host at once", async () => {
    const channel = uniqueChannel("hand-over");
    const pids = await group.fork(4, env({ OC_CHANNEL: channel }));
    const { hostPid } = await group.agreement(pids, channel);
    const since = group.reports.length;
    group.send(hostPid, { cmd: "handover", channel });
    const others = pids.filter((p) => p !== hostPid);
    const after = await group.agreement(others, channel, since);
    expect(after.hostPid).not.toBe(hostPid);
    expect(hostsAmong(after.connects)).toEqual([after.hostPid]);
    expect(group.reports.slice(since).find((r) => r.pid === hostPid && r.type === "close")?.state).toBe("closed");
    expect(group.reports.slice(since).find((r) => r.pid === hostPid && r.type === "hosting")?.isHost).toBe(false);
    for (const pid of others) group.send(pid, { cmd: "write", channel, data: `${pid} after-handover\n` });
    await group.waitFor(
      () => others.every((pid) => receivedFrom(pid, channel, since).includes(`${pid} after-handover`)),
      "the new host to serve",
    );
    expect(group.reports.slice(since).filter((r) => r.type === "error")).toEqual([]);
    // The old host's process stays alive, and is nobody's host any more.
    expect(group.alive()).toContain(hostPid);
  });
});

describe.each(TRANSPORTS)("graceful handover over %s", (transport) => {
  test("a host whose own work is done exits by itself, and its member takes over at once", async () => {
    const channel = uniqueChannel("exit");
    const host = spawn(process.execPath, [path.join(__dirname, "fixtures", "exiting-host.js"), channel], {
      env: { ...process.env, OPEN_CHANNEL_TRANSPORT: transport },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    host.stdout.on("data", (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => host.once("exit", (code) => resolve(code)));
    // The member arrives once the host hosts.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the host never hosted: ${out}`)), WAIT_MS);
      const check = (): void => {
        if (!out.includes("connected true")) return;
        clearTimeout(timer);
        host.stdout.off("data", check);
        resolve();
      };
      host.stdout.on("data", check);
      check();
    });
    const [member] = await group.fork(1, { OPEN_CHANNEL_TRANSPORT: transport, OC_CHANNEL: channel });
    const first = await group.waitFor(() => group.lastConnect(member, channel), "the member's first connect");
    expect(first.hostPid).toBe(host.pid);
    // The host exits on its own although a member is still connected to it...
    expect(await exited).toBe(0);
    expect(out).toContain("member joined true");
    // ...and the member takes over.
    const since = group.reports.indexOf(first) + 1;
    const { hostPid } = await group.agreement([member], channel, since);
    expect(hostPid).toBe(member);
    expect(group.reports.filter((r) => r.type === "error")).toEqual([]);
  });
});

describe.each(TRANSPORTS)("the heir over %s", (transport) => {
  const env = (more: Record<string, string> = {}): Record<string, string> => ({ OPEN_CHANNEL_TRANSPORT: transport, ...more });

  /** Asks every pid for its status until exactly one member (never the host) says it is the heir. */
  async function theHeir(pids: number[], channel: string, hostPid: number): Promise<number> {
    for (;;) {
      const since = group.reports.length;
      for (const pid of pids) group.send(pid, { cmd: "status", channel });
      const statuses = await group.waitFor(() => {
        const got = group.reports.slice(since).filter((r) => r.type === "status" && r.channel === channel);
        return got.length >= pids.length ? got : undefined;
      }, "statuses");
      const heirs = statuses.filter((r) => r.isHeir).map((r) => r.pid);
      expect(heirs.length).toBeLessThanOrEqual(1);
      expect(heirs).not.toContain(hostPid);
      if (heirs.length === 1) return heirs[0];
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  test("exactly one member stands by; when the host is SIGKILLed, the heir hosts and everyone follows it", async () => {
    const channel = uniqueChannel("heir");
    const pids = await group.fork(5, env({ OC_CHANNEL: channel, OC_HELLO: "3" }));
    let host = await checkOneHostAndTraffic(pids, channel);
    for (let round = 0; round < 3; round++) {
      const heir = await theHeir(group.alive(), channel, host);
      const since = group.reports.length;
      const next = await killHostAndCheckTakeover(channel, host);
      expect(next).toBe(heir);
      // Every survivor saw a failover from the old host to the new one; the heir says it hosts.
      const survivors = group.alive();
      await group.waitFor(
        () =>
          survivors.every((pid) => group.reports.slice(since).some((r) => r.pid === pid && r.type === "failover" && r.channel === channel)),
        "failover events",
      );
      for (const pid of survivors) {
        const f = group.reports.slice(since).find((r) => r.pid === pid && r.type === "failover" && r.channel === channel);
        expect(f).toMatchObject({ previousHostPid: host, hostPid: next });
        // It takes about 8 ms (npm run chaos); a wide bound, so that a slow path (a timeout, a
        // back-off) fails here while a busy 2-core machine does not.
        expect(f?.ms).toBeLessThan(1000);
      }
      expect(
        group.reports
          .slice(since)
          .filter((r) => r.type === "hosting" && r.isHost === true)
          .map((r) => r.pid),
      ).toEqual([next]);
      host = next;
    }
  });

  test("the host and the heir SIGKILLed together: the survivors elect one new host", async () => {
    const channel = uniqueChannel("heir-both");
    const pids = await group.fork(5, env({ OC_CHANNEL: channel }));
    const { hostPid } = await group.agreement(pids, channel);
    const heir = await theHeir(pids, channel, hostPid);
    const since = group.reports.length;
    group.kill(hostPid);
    group.kill(heir);
    const survivors = group.alive();
    const after = await group.agreement(survivors, channel, since);
    expect(hostsAmong(after.connects)).toEqual([after.hostPid]);
    expect(group.reports.slice(since).filter((r) => r.type === "error")).toEqual([]);
    // A new heir stands by for the next failover.
    await theHeir(survivors, channel, after.hostPid);
  });

  /**
   * After `since`: one host among `pids`, and no connect report naming any other host than it or
   * one of `earlier` (a host that was killed in between: members may have reached it before).
   */
  async function oneHostAfter(pids: number[], channel: string, since: number, earlier: number[] = []): Promise<number> {
    const after = await group.agreement(pids, channel, since);
    expect(hostsAmong(after.connects)).toEqual([after.hostPid]);
    const connects = group.reports.slice(since).filter((r) => r.type === "connect" && r.channel === channel);
    for (const c of connects) expect([after.hostPid, ...earlier]).toContain(c.hostPid);
    expect(group.reports.slice(since).filter((r) => r.type === "error" && r.channel === channel)).toEqual([]);
    return after.hostPid;
  }

  test(`the host SIGKILLed as a newcomer arrives: one host, ${rounds(10)} rounds out of ${rounds(10)}`, async () => {
    for (let round = 0; round < rounds(10); round++) {
      const channel = uniqueChannel(`heir-new${round}`);
      const pids = await group.fork(4, env({ OC_CHANNEL: channel }));
      const [newcomer] = await group.fork(1, env());
      const { hostPid } = await group.agreement(pids, channel);
      await theHeir(pids, channel, hostPid);
      const since = group.reports.length;
      group.kill(hostPid);
      group.send(newcomer, { cmd: "open", channel });
      await oneHostAfter([...pids.filter((p) => p !== hostPid), newcomer], channel, since);
      group.stop();
    }
  });

  test(`the heir SIGKILLed at each step of its take-over: the others elect one host, ${rounds(9)} rounds out of ${rounds(9)}`, async () => {
    const marks = fs.mkdtempSync(path.join(os.tmpdir(), "oc-die-"));
    const steps = DIE_STEPS;
    try {
      for (let round = 0; round < rounds(9); round++) {
        const channel = uniqueChannel(`heir-mid${round}`);
        const pids = await group.fork(5, env({ OC_CHANNEL: channel }));
        const { hostPid } = await group.agreement(pids, channel);
        const heir = await theHeir(pids, channel, hostPid);
        const mark = path.join(marks, `${round}`);
        await group.dieAt(heir, channel, steps[round % steps.length], mark);
        const since = group.reports.length;
        group.kill(hostPid);
        // The heir dies in its take-over, at the step it was given: not before, not after.
        expect(await group.diedAt(mark)).toEqual({ pid: heir, step: steps[round % steps.length] });
        expect(group.reports.slice(since).filter((r) => r.pid === heir && r.type === "connect")).toEqual([]);
        await oneHostAfter(
          pids.filter((p) => p !== hostPid && p !== heir),
          channel,
          since,
        );
        group.stop();
      }
    } finally {
      fs.rmSync(marks, { recursive: true, force: true });
    }
  });

  test("members dropped by a live host come back to that same host (the heir sends them back)", async () => {
    const channel = uniqueChannel("heir-drop");
    const pids = await group.fork(4, env({ OC_CHANNEL: channel }));
    const { hostPid } = await group.agreement(pids, channel);
    const heir = await theHeir(pids, channel, hostPid);
    for (let round = 0; round < 3; round++) {
      const since = group.reports.length;
      group.send(hostPid, { cmd: "drop-members", channel });
      // Every member reconnects (the host's own connection included: it was dropped too).
      const after = await group.agreement(pids, channel, since);
      expect(after.hostPid).toBe(hostPid);
      expect(group.reports.slice(since).filter((r) => r.type === "connect" && r.hostPid !== hostPid)).toEqual([]);
      expect(group.reports.slice(since).filter((r) => r.type === "error")).toEqual([]);
      // The heir sent them back and stayed the heir; it never hosted.
      expect(await theHeir(pids, channel, hostPid)).toBe(heir);
    }
  });
});

describe.each(TRANSPORTS)("a SIGKILLed host's leftovers over %s", (transport) => {
  const env = (more: Record<string, string> = {}): Record<string, string> => ({ OPEN_CHANNEL_TRANSPORT: transport, ...more });

  test("are reclaimed by the next process, which hosts", async () => {
    const channel = uniqueChannel("stale");
    await leaveStaleHost(STALE_MAKERS[transport], channel);
    if (transport === "unix") expect(fs.lstatSync(unixTransport().socketPath(channel)).isSocket()).toBe(true);
    const [pid] = await group.fork(1, env({ OC_CHANNEL: channel }));
    const { hostPid } = await group.agreement([pid], channel);
    expect(hostPid).toBe(pid);
  });

  test(`8 processes racing over them yield exactly one host, ${rounds(20)} rounds out of ${rounds(20)}`, async () => {
    await raceRounds(await group.fork(8, env()), "race", (channel) => leaveStaleHost(STALE_MAKERS[transport], channel));
  });
});

describe.each(TRANSPORTS)("races over %s, repeated", (transport) => {
  const env = (more: Record<string, string> = {}): Record<string, string> => ({ OPEN_CHANNEL_TRANSPORT: transport, ...more });

  test(`8 processes opening a fresh channel at the same moment: exactly one host, ${rounds(20)} rounds out of ${rounds(20)}`, async () => {
    await raceRounds(await group.fork(8, env()), "fresh", async () => undefined);
  });

  test(`the host killed, then a second member killed while the survivors elect: one host, ${rounds(20)} rounds out of ${rounds(20)}`, async () => {
    const channel = uniqueChannel("double-kill");
    const marks = fs.mkdtempSync(path.join(os.tmpdir(), "oc-die-"));
    const steps = DIE_STEPS;
    await group.fork(6, env({ OC_CHANNEL: channel }));
    let { hostPid } = await group.agreement(group.alive(), channel);
    for (let round = 0; round < rounds(20); round++) {
      // Every member but the host is armed: the first to reach the step in its election dies there.
      const mark = path.join(marks, `${round}`);
      const step = steps[round % steps.length];
      for (const pid of group.alive()) if (pid !== hostPid) await group.dieAt(pid, channel, step, mark);
      const since = group.reports.length;
      group.kill(hostPid);
      expect((await group.diedAt(mark)).step).toBe(step);
      const survivors = group.alive();
      ({ hostPid } = await group.agreement(survivors, channel, since));
      const connects = survivors.map((pid) => group.lastConnect(pid, channel, since));
      expect(connects.filter((c) => c?.isHost).map((c) => c?.pid)).toEqual([hostPid]);
      // Keep six members: two newcomers join the new host.
      const fresh = await group.fork(2, env({ OC_CHANNEL: channel }));
      const joined = await group.agreement([...survivors, ...fresh], channel, since);
      expect(joined.hostPid).toBe(hostPid);
    }
    expect(group.reports.filter((r) => r.type === "error")).toEqual([]);
    fs.rmSync(marks, { recursive: true, force: true });
  });

  test(`members killed mid-handshake never disturb the host or the others, ${rounds(20)} rounds`, async () => {
    const channel = uniqueChannel("mid-handshake");
    const [host, member] = await group.fork(2, env({ OC_CHANNEL: channel }));
    const { hostPid } = await group.agreement([host, member], channel);
    for (let round = 0; round < rounds(20); round++) {
      // A process that is told to open the channel and killed a moment later: somewhere between
      // its connect, its hello and its first write.
      const [victim] = await group.fork(1, env());
      group.send(victim, { cmd: "open", channel });
      await new Promise((r) => setTimeout(r, round % 4));
      group.kill(victim);
    }
    const since = group.reports.length;
    group.send(member, { cmd: "write", channel, data: `${member} after-the-storm\n` });
    await group.waitFor(
      () => group.reports.slice(since).some((r) => r.type === "received" && r.line === `${member} after-the-storm` && r.pid === hostPid),
      "the member's line at the unchanged host",
    );
    expect(group.reports.filter((r) => r.type === "connect" && r.channel === channel && r.pid === member)).toHaveLength(1);
    expect(group.reports.filter((r) => r.type === "error")).toEqual([]);
  });
});

describe("what a failover delivers, and what it cannot (unix)", () => {
  test("bytes the kernel accepted for a host that then died are lost; the listener's state died with the host", async () => {
    const channel = uniqueChannel("delivery");
    const pids = await group.fork(3, { OC_CHANNEL: channel, OPEN_CHANNEL_TRANSPORT: "unix" });
    const { hostPid } = await group.agreement(pids, channel);
    const writer = pids.find((p) => p !== hostPid) as number;
    // The listener state before: the host has counted lines.
    for (let i = 1; i <= 3; i++) group.send(writer, { cmd: "write", channel, data: `${writer} counted ${i}\n` });
    await group.waitFor(
      () => group.reports.some((r) => r.pid === writer && r.type === "data" && r.line === `echo ${writer} counted 3 #3`),
      "the host's count",
    );

    // The host stops reading; a write is accepted by the kernel (its callback says so), then the host dies.
    group.send(hostPid, { cmd: "pause-host", channel });
    await group.waitFor(() => group.reports.some((r) => r.pid === hostPid && r.type === "paused"), "the pause");
    group.send(writer, { cmd: "write", channel, data: `${writer} doomed\n` });
    const written = await group.waitFor(
      () => group.reports.find((r) => r.pid === writer && r.type === "written" && String(r.data).includes("doomed")),
      "the write callback",
    );
    expect(written.error).toBeUndefined();
    const since = group.reports.length;
    group.kill(hostPid);
    const survivors = pids.filter((p) => p !== hostPid);
    const after = await group.agreement(survivors, channel, since);

    group.send(writer, { cmd: "write", channel, data: `${writer} after\n` });
    const echo = await group.waitFor(
      () => group.reports.slice(since).find((r) => r.pid === writer && r.type === "data" && r.line?.startsWith(`echo ${writer} after`)),
      "the new host's echo",
    );
    // The accepted-but-unread line reached nobody: not the dead host's listener, not the new one.
    expect(group.reports.filter((r) => r.type === "received" && r.line === `${writer} doomed`)).toEqual([]);
    // The new host's listener started from scratch: its count is the number of lines it received
    // itself since the failover, nothing carried over from the dead host's count of 3.
    expect(after.hostPid).not.toBe(hostPid);
    // (Reports of different processes arrive in any order: wait for the new host's own.)
    await group.waitFor(
      () => group.reports.slice(since).some((r) => r.type === "received" && r.line === `${writer} after`),
      "the new host's report",
    );
    const byNewHost = group.reports.slice(since).filter((r) => r.type === "received" && r.pid === after.hostPid);
    const count = Number(echo.line?.split("#")[1]);
    expect(count).toBe(byNewHost.findIndex((r) => r.line === `${writer} after`) + 1);
  });
});
