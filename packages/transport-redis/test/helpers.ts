import { type ChildProcess, execFileSync, fork, spawn } from "node:child_process";
import * as net from "node:net";
import * as path from "node:path";

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

export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A real redis-server on a free loopback port, without persistence: restarting it loses everything. */
export class RedisServer {
  private child: ChildProcess | undefined;
  private constructor(readonly port: number) {}

  static async start(): Promise<RedisServer> {
    const server = new RedisServer(await freePort());
    await server.startProcess();
    return server;
  }

  private async startProcess(): Promise<void> {
    const child = spawn("redis-server", ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: "ignore",
    });
    this.child = child;
    const deadline = Date.now() + 10000;
    for (;;) {
      if (await this.answers()) return;
      if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${this.port}`);
      await sleep(20);
    }
  }

  private answers(): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = net.connect(this.port, "127.0.0.1");
      socket.once("connect", () => {
        socket.write("PING\r\n");
        socket.once("data", (d) => {
          socket.destroy();
          resolve(d.toString().startsWith("+PONG"));
        });
      });
      socket.once("error", () => resolve(false));
    });
  }

  /** SIGKILLs the server and starts a new, empty one on the same port. */
  async restart(): Promise<void> {
    await this.stop();
    await this.startProcess();
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child === undefined || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.kill("SIGKILL");
    });
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** What a member reports (see fixtures/redis-member.js). */
export interface Report {
  pid: number;
  at: number;
  type: "ready" | "hosting" | "lease-lost" | "connect" | "received" | "error";
  epoch?: number;
  hostPid?: number;
  isHost?: boolean;
  line?: string;
  code?: string;
  /** Whether the host still held its lease when the chunk reached its listener. */
  held?: boolean;
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

  constructor(private readonly env: Record<string, string>) {}

  async fork(count: number, env: Record<string, string> = {}): Promise<number[]> {
    const pids: number[] = [];
    for (let i = 0; i < count; i++) {
      const child = fork(path.join(__dirname, "fixtures", "redis-member.js"), [], {
        env: { ...process.env, ...this.env, ...env },
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
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
