import { type ChildProcess, execFileSync, fork, type StdioOptions, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type { TlsLayerOptions } from "@open-channel/core";
import Redis from "ioredis";

/** Whether `redis-server` is on this machine (`.ci/run` installs it; a developer may not have it). */
export function haveRedisServer(): boolean {
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * `describe`, or, without `redis-server`, a skip that says so (in CI, where `.ci/run` installs it,
 * a missing server is a failure instead).
 */
export const describeWithRedis: jest.Describe = ((): jest.Describe => {
  if (haveRedisServer()) return describe;
  if (process.env.CI) {
    return ((name: string) =>
      describe(name, () =>
        test("redis-server is installed", () => expect("redis-server").toBe("on the PATH")),
      )) as unknown as jest.Describe;
  }
  process.stderr.write("redis-server is not installed: the Redis transport's tests are skipped (apt-get install redis-server)\n");
  return describe.skip;
})();

/** A real redis-server on a free port, without persistence (scripts/redis-server.js, shared with chaos). */
export interface RedisServer {
  readonly port: number;
  /** SIGKILLs the server and starts a new, empty one on the same port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}
const redisServer = require(path.join(__dirname, "..", "..", "..", "scripts", "redis-server.js")) as {
  RedisServer: { start(options?: { bind?: string; password?: string }): Promise<RedisServer> };
  freePort(host?: string): Promise<number>;
};
export const { RedisServer, freePort } = redisServer;

/** The test PKI (core's test/fixtures/tls): its folder, and options with "node" (signed by the CA) or "rogue" (another CA). */
export const TLS_DIR = path.join(__dirname, "..", "..", "core", "test", "fixtures", "tls");
export function tlsFixture(name: "node" | "rogue" = "node"): TlsLayerOptions {
  const file = (f: string): Buffer => fs.readFileSync(path.join(TLS_DIR, f));
  return { ca: file("ca.crt"), cert: file(`${name}.crt`), key: file(`${name}.key`), servername: "localhost" };
}

/**
 * A redis-server for the test file (started before its first test, stopped after its last) and
 * a client to it: `const redis = useRedisServer();` then `redis.server.port`, `redis.client`.
 */
export function useRedisServer(): { readonly server: RedisServer; readonly client: Redis } {
  const ctx = {} as { server: RedisServer; client: Redis };
  beforeAll(async () => {
    ctx.server = await RedisServer.start();
    ctx.client = new Redis({ port: ctx.server.port, host: "127.0.0.1", maxRetriesPerRequest: null });
    ctx.client.on("error", () => {});
  });
  afterAll(async () => {
    ctx.client?.disconnect();
    await ctx.server?.stop();
  });
  return ctx;
}

/**
 * Connects as another OS user (uid 40103: no secret, no certificate of ours, no Redis access):
 * `opens` is the source of an array of functions, each making one socket (`net` and `tls` in
 * scope) that writes its bytes once connected. Runs until every socket closed, 5 s at most; the
 * exit status (0: it ran).
 */
export function asOtherUser(opens: string): number | null {
  const script = `
    const net = require("net"), tls = require("tls");
    let open = 0;
    for (const make of ${opens}) {
      open++;
      const s = make();
      s.on("error", () => {});
      s.on("close", () => { if (--open === 0) process.exit(0); });
    }
    setTimeout(() => process.exit(0), 5000);`;
  return spawnSync(process.execPath, ["-e", script], { uid: 40103, gid: 40103, timeout: 15000 }).status;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** What a member reports (see fixtures/redis-member.js). */
export interface Report {
  pid: number;
  at: number;
  type: "ready" | "hosting" | "lease-lost" | "connect" | "received" | "acked" | "sent" | "error";
  epoch?: number;
  hostPid?: number;
  isHost?: boolean;
  line?: string;
  code?: string;
  /** Whether the host still held its lease when the chunk reached its listener. */
  held?: boolean;
  /** A message the host got again after a failover (the message layer's flag). */
  redelivered?: boolean;
  /** How many messages the member sent (`sent`). */
  count?: number;
  message?: string;
  reason?: string;
}

let counter = 0;
export const uniqueChannel = (label: string): string => `redis-${label}-${process.pid}-${++counter}-${Date.now().toString(36)}`;

/** Member processes on one channel, their reports in arrival order. Always `stop()` it. */
export class Members {
  readonly reports: Report[] = [];
  private readonly children = new Map<number, ChildProcess>();
  private readonly wakeups = new Set<() => void>();

  constructor(readonly env: Record<string, string>) {}

  /** Forks `count` members (in the network namespace `netns`, a simulated machine, if given). */
  async fork(count: number, env: Record<string, string> = {}, netns?: string): Promise<number[]> {
    const pids: number[] = [];
    const fixture = path.join(__dirname, "fixtures", "redis-member.js");
    const options = { env: { ...process.env, ...this.env, ...env }, stdio: ["ignore", "inherit", "inherit", "ipc"] as StdioOptions };
    for (let i = 0; i < count; i++) {
      // `ip netns exec` execs node in place: the same pid, and the IPC channel's fd goes along.
      const child =
        netns === undefined ? fork(fixture, [], options) : spawn("ip", ["netns", "exec", netns, process.execPath, fixture], options);
      child.on("message", (m) => {
        this.reports.push(m as Report);
        for (const wake of this.wakeups) wake();
      });
      this.children.set(child.pid as number, child);
      pids.push(child.pid as number);
    }
    await this.waitFor(() => pids.every((pid) => this.reports.some((r) => r.pid === pid && r.type === "ready")), "members ready");
    return pids;
  }

  signal(pid: number, signal: NodeJS.Signals): void {
    if (!this.children.has(pid)) throw new Error(`not a member: ${pid}`);
    process.kill(pid, signal);
  }

  kill(pid: number): void {
    this.signal(pid, "SIGKILL");
    this.children.delete(pid);
  }

  alive(): number[] {
    return [...this.children.keys()];
  }

  send(pid: number, msg: object): void {
    this.children.get(pid)?.send(msg);
  }

  /** The latest report of `type` from `pid` after index `since`. */
  last(pid: number, type: Report["type"], since = 0): Report | undefined {
    for (let i = this.reports.length - 1; i >= since; i--)
      if (this.reports[i].pid === pid && this.reports[i].type === type) return this.reports[i];
    return undefined;
  }

  /** Every living member is connected, after `since`, to the same host, which is one of them: that host's pid. */
  oneHost(since: number): number | undefined {
    const hosts = new Set(this.alive().map((pid) => this.last(pid, "connect", since)?.hostPid));
    const [host] = hosts;
    return hosts.size === 1 && host !== undefined && this.alive().includes(host) ? host : undefined;
  }

  waitFor<T>(check: () => T | undefined | false, what: string, timeoutMs = 30000): Promise<T> {
    return new Promise((resolve, reject) => {
      const tryNow = (): void => {
        const value = check();
        if (value === undefined || value === false) return;
        cleanup();
        resolve(value as T);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for ${what}; last reports: ${JSON.stringify(this.reports.slice(-8))}`));
      }, timeoutMs);
      const poll = setInterval(tryNow, 50);
      const cleanup = (): void => {
        clearTimeout(timer);
        clearInterval(poll);
        this.wakeups.delete(tryNow);
      };
      this.wakeups.add(tryNow);
      tryNow();
    });
  }

  async stop(): Promise<void> {
    const exits = [...this.children.values()].map((child) =>
      child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once("exit", r)),
    );
    for (const pid of this.children.keys()) {
      try {
        process.kill(pid, "SIGCONT");
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    await Promise.all(exits);
    this.children.clear();
  }
}

/**
 * The fencing invariant over the reports: no host's listener received anything at a time when a
 * host of a higher epoch had already started (a paused host that woke up must serve nobody). The
 * violations, as strings (empty when it holds).
 */
export function servingOverlaps(reports: Report[]): string[] {
  const starts = new Map<number, number>();
  for (const r of reports)
    if (r.type === "hosting" && r.epoch !== undefined) starts.set(r.epoch, Math.min(starts.get(r.epoch) ?? r.at, r.at));
  const bad: string[] = [];
  for (const r of reports) {
    if (r.type !== "received" || r.epoch === undefined) continue;
    for (const [epoch, at] of starts) {
      if (epoch > r.epoch && at < r.at)
        bad.push(
          `pid ${r.pid} (epoch ${r.epoch}) served ${JSON.stringify(r.line)} ${(r.at - at).toFixed(1)} ms after epoch ${epoch} started`,
        );
    }
  }
  return bad;
}

/** Machines on one box (network namespaces on a bridge): shared with scripts/chaos.js. */
export interface Lan {
  readonly count: number;
  /** The bridge's address in the test's own namespace: where Redis listens. */
  readonly gateway: string;
  netns(i: number): string;
  address(i: number): string;
  /** Downs machine i's link: a blackhole both ways; its processes run on. */
  cut(i: number): void;
  restore(i: number): void;
  destroy(): void;
}
const lan = require(path.join(__dirname, "..", "..", "..", "scripts", "lan.js")) as {
  Lan: new (count: number) => Lan;
  haveNetns(): boolean;
};
export const { haveNetns } = lan;
export const newLan = (count: number): Lan => new lan.Lan(count);

/**
 * `describe` for tests that simulate machines with network namespaces: they need root (CI runs
 * as root) and redis-server. Elsewhere a skip that says so; in CI, a failure.
 */
export const describeWithMachines: jest.Describe = ((): jest.Describe => {
  const why = !haveRedisServer() ? "redis-server is not installed" : !haveNetns() ? "network namespaces need root and ip netns" : undefined;
  if (why === undefined) return describe;
  if (process.env.CI) {
    return ((name: string) => describe(name, () => test(why, () => expect(why).toBeUndefined()))) as unknown as jest.Describe;
  }
  process.stderr.write(`${why}: the Redis transport's machine tests are skipped\n`);
  return describe.skip;
})();
