import { type ChildProcess, fork } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describeWithRedis, useRedisServer } from "../../transport-redis/test/helpers";
import { reportLog } from "./reports";

// The example lock service (examples/lock-service/locks.js) while its host is SIGKILLed: 5 member
// processes take and release two locks in a loop (the host is one of them; each killed one is
// replaced). Never two holders of a lock (a marker file per lock names its holder), no waiter lost
// (every living member's acquires are granted), order kept (each lock goes to living members in
// ticket order), and the ticket counter never restarts.

interface Report {
  pid: number;
  type: string;
  isHost?: boolean;
  hostPid?: number;
  lock?: string;
  ticket?: number;
  other?: number;
  code?: string;
  message?: string;
  stack?: string;
  n?: number;
}

const MEMBERS = 5;
const KILLS = 10;
const FIXTURE = path.join(__dirname, "fixtures", "lock-member.js");

/**
 * The lock service's tests over `transport`; `env()`: what the members need besides (a Redis
 * port); `graceMs`: the new host's grace in the kill test, and in the test that stops members
 * across the kill (they come back 150 ms after it: the rest is room for a busy CI machine).
 */
function lockSuite(transport: string, graceMs: { kills: number; stopped: number }, env: () => Record<string, string> = () => ({})): void {
  const children = new Map<number, ChildProcess>();
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "oc-locks-"));
  });
  afterEach(() => {
    for (const c of children.values()) {
      c.kill("SIGCONT");
      c.kill("SIGKILL");
    }
    children.clear();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Forks the members; what a test drives and checks them with. */
  function harness(grace: number) {
    const channel = `locks-${transport}-${process.pid}-${Date.now().toString(36)}`;
    const { reports, add, waitFor } = reportLog<Report>();
    const killed = new Set<number>();
    const spawn = (): void => {
      const child = fork(FIXTURE, [], {
        env: { ...process.env, ...env(), OC_GRACE_MS: String(grace), OC_CHANNEL: channel, OC_TRANSPORT: transport, OC_DIR: dir },
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      child.on("message", (m) => add(m as Report));
      children.set(child.pid as number, child);
    };
    for (let i = 0; i < MEMBERS; i++) spawn();
    /** The process that reported hosting last, if alive. */
    const host = (): number | undefined => {
      for (let i = reports.length - 1; i >= 0; i--) {
        const r = reports[i];
        if (r.type === "hosting" && r.isHost && !killed.has(r.pid)) return r.pid;
      }
      return undefined;
    };
    const granted = (since: number): number => reports.slice(since).filter((r) => r.type === "granted").length;
    const kill = (pid: number): void => {
      killed.add(pid);
      children.get(pid)?.kill("SIGKILL");
      children.delete(pid);
    };
    /** Stops every member, waits for them, and checks the three promises. */
    const finish = async (): Promise<void> => {
      for (const c of children.values()) c.send({ type: "stop" });
      const living = [...children.keys()];
      await waitFor(
        () => (living.every((pid) => reports.some((r) => r.pid === pid && r.type === "done")) ? true : undefined),
        "every member done",
      );
      if (process.env.OC_LOCKS_DUMP) fs.writeFileSync(process.env.OC_LOCKS_DUMP, JSON.stringify({ killed: [...killed], reports }));
      expect(reports.filter((r) => r.type === "error" || r.type === "violation")).toEqual([]);
      // No waiter lost: every acquire a living member started was granted and released.
      for (const pid of living) {
        const mine = reports.filter((r) => r.pid === pid);
        expect(mine.filter((r) => r.type === "acquiring").length).toBe(mine.filter((r) => r.type === "released").length);
      }
      // Order kept: each lock went to living members (those never killed) in ticket order, across
      // every failover; the counter never restarted.
      for (const lock of ["a", "b"]) {
        const tickets = reports.filter((r) => r.type === "granted" && r.lock === lock && !killed.has(r.pid)).map((r) => r.ticket as number);
        expect(tickets.length).toBeGreaterThan(10);
        expect(tickets.filter((t, i) => i > 0 && t <= tickets[i - 1])).toEqual([]);
      }
    };
    return { reports, waitFor, killed, spawn, host, granted, kill, finish };
  }

  test("the host SIGKILLed 10 times while 5 members take and release locks: never two holders, no waiter lost, order kept", async () => {
    const { reports, waitFor, spawn, host, granted, kill, finish } = harness(graceMs.kills);
    await waitFor(() => (granted(0) >= 10 ? true : undefined), "the first grants");
    const recoveries: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      kill(await waitFor(host, "a host"));
      const at = reports.length;
      const t0 = performance.now();
      spawn();
      await waitFor(() => (granted(at) >= 1 ? true : undefined), `a grant after kill ${k + 1}`);
      recoveries.push(performance.now() - t0);
      await waitFor(() => (granted(at) >= 12 ? true : undefined), `grants after kill ${k + 1}`);
    }
    await finish();
    const hosts = new Set(reports.filter((r) => r.type === "hosting" && r.isHost).map((r) => r.pid));
    expect(hosts.size).toBeGreaterThanOrEqual(KILLS + 1);
    recoveries.sort((a, b) => a - b);
    process.stdout.write(
      `lock service over ${transport}: ${granted(0)} grants, ${KILLS} host kills; from a kill to the next grant: median ${recoveries[KILLS / 2].toFixed(0)} ms, max ${recoveries[KILLS - 1].toFixed(0)} ms (grace ${graceMs.kills} ms)\n`,
    );
  }, 180_000);

  test("a holder and a waiter stopped while the host dies, back within the grace: the holder keeps its lock, the waiter its place", async () => {
    const { reports, waitFor, killed, spawn, host, granted, kill, finish } = harness(graceMs.stopped);
    await waitFor(() => (granted(0) >= 10 ? true : undefined), "the first grants");
    /** A member (not in `except`) whose last lock report is `type`: holding, or waiting. */
    const inState = (type: "granted" | "acquiring", except: number[]): number | undefined => {
      const last = new Map<number, string>();
      for (const r of reports) if (["granted", "acquiring", "released"].includes(r.type)) last.set(r.pid, r.type);
      for (const [pid, t] of last) if (t === type && !except.includes(pid) && !killed.has(pid)) return pid;
      return undefined;
    };
    for (let round = 0; round < 3; round++) {
      const victim = await waitFor(host, "a host");
      const holder = await waitFor(() => inState("granted", [victim]), "a holder");
      process.kill(holder, "SIGSTOP");
      const waiter = inState("acquiring", [victim, holder]);
      if (waiter !== undefined) process.kill(waiter, "SIGSTOP");
      kill(victim);
      const at = reports.length;
      spawn();
      // Back well after the new host started (a few ms after the kill), well within its grace.
      await new Promise((resolve) => setTimeout(resolve, 150));
      process.kill(holder, "SIGCONT");
      if (waiter !== undefined) process.kill(waiter, "SIGCONT");
      await waitFor(() => (granted(at) >= 12 ? true : undefined), `grants after round ${round + 1}`);
    }
    await finish();
  }, 120_000);
}

describe.each(["unix", "tcp"])("the lock service over %s", (transport) => lockSuite(transport, { kills: 1000, stopped: 2000 }));

// Across machines: the Redis transport (one machine here; the election and the addresses are the
// Redis transport's), the host's state rebuilt the same way.
// Members reconnect slower there (each asks Redis where the host is): a longer grace, as across
// machines.
describeWithRedis("the lock service over redis", () => {
  const redis = useRedisServer();
  lockSuite("redis", { kills: 1500, stopped: 2500 }, () => ({ OC_REDIS_PORT: String(redis.server.port) }));
});
