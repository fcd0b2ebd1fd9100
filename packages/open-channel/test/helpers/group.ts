import { type ChildProcess, fork } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

/** What a member process reports over IPC (see fixtures/member.js). */
export interface Report {
  pid: number;
  at: number;
  type:
    | "ready"
    | "connect"
    | "data"
    | "received"
    | "error"
    | "close"
    | "status"
    | "written"
    | "paused"
    | "resumed"
    | "dropped"
    | "hosting"
    | "heir"
    | "failover"
    | "armed";
  channel?: string;
  hostPid?: number;
  previousHostPid?: number;
  /** A failover's ms, from the connection's loss to the new host's welcome. */
  ms?: number;
  isHost?: boolean;
  isHeir?: boolean;
  state?: string;
  line?: string;
  code?: string;
  message?: string;
  /** "received": how many lines the host's listener has seen; "written": the write's data and error. */
  seen?: number;
  data?: string;
  error?: string;
}

const FIXTURES = path.join(__dirname, "..", "fixtures");
/** Generous: these tests fork real processes on a busy 2-core machine. */
export const WAIT_MS = 30000;

/** Where an armed member kills itself in its take-over (see `stepReached` in fixtures/member.js). */
export type DieStep = "listen" | "listening" | "listen-done";
/** Every step, in the order a take-over reaches them. */
export const DIE_STEPS: readonly DieStep[] = ["listen", "listening", "listen-done"];

export const now = (): number => performance.timeOrigin + performance.now();

/** A unique channel name per test, so tests never meet each other's hosts. */
export function uniqueChannel(label: string): string {
  return `test-${label}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * Member processes (plain forks or cluster workers) on channels, with their reports collected in
 * arrival order. Always `stop()` it: every process is SIGKILLed.
 */
export class Group {
  readonly reports: Report[] = [];
  private readonly direct = new Map<number, ChildProcess>();
  private readonly primaries: ChildProcess[] = [];
  private readonly viaPrimary = new Map<number, ChildProcess>();
  private readonly killed = new Set<number>();
  private readonly wakeups = new Set<() => void>();

  private record(report: Report, primary?: ChildProcess): void {
    if (primary !== undefined && report.type === "ready") this.viaPrimary.set(report.pid, primary);
    this.reports.push(report);
    for (const wake of this.wakeups) wake();
  }

  /** Forks `count` members; `env` goes to every member (OC_CHANNEL opens a channel at start). */
  async fork(count: number, env: Record<string, string> = {}): Promise<number[]> {
    const before = this.reports.length;
    const pids: number[] = [];
    for (let i = 0; i < count; i++) {
      const child = fork(path.join(FIXTURES, "member.js"), [], {
        env: { ...process.env, ...env },
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      child.on("message", (m) => this.record(m as Report));
      this.direct.set(child.pid as number, child);
      pids.push(child.pid as number);
    }
    await this.waitFor(
      () => pids.every((pid) => this.reports.slice(before).some((r) => r.pid === pid && r.type === "ready")),
      "members ready",
    );
    return pids;
  }

  /** Starts a cluster primary with `count` workers; resolves with the workers' pids. */
  async cluster(count: number, env: Record<string, string> = {}): Promise<number[]> {
    const before = this.reports.length;
    const primary = fork(path.join(FIXTURES, "cluster-primary.js"), [], {
      env: { ...process.env, ...env, OC_WORKERS: String(count) },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    primary.on("message", (m) => this.record(m as Report, primary));
    this.primaries.push(primary);
    return this.waitFor(() => {
      const ready = this.reports.slice(before).filter((r) => r.type === "ready");
      return ready.length >= count ? ready.map((r) => r.pid) : undefined;
    }, "cluster workers ready");
  }

  /** Sends a command to one member. */
  send(pid: number, msg: Record<string, unknown>): void {
    const child = this.direct.get(pid);
    if (child !== undefined) child.send(msg);
    else this.viaPrimary.get(pid)?.send({ ...msg, to: pid });
  }

  /** SIGKILLs a member. */
  kill(pid: number): void {
    // 0 or a negative number would signal a whole process group: Jest's own.
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`not a member's pid: ${pid}`);
    this.killed.add(pid);
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }

  /** Arms `pid` to SIGKILL itself when its take-over of `channel` reaches `step` (fixtures/member.js). */
  async dieAt(pid: number, channel: string, step: DieStep, mark: string): Promise<void> {
    const since = this.reports.length;
    this.send(pid, { cmd: "die-at", channel, step, mark });
    await this.waitFor(() => this.reports.slice(since).some((r) => r.pid === pid && r.type === "armed"), "armed");
  }

  /**
   * Waits for the first armed member to die where it was told: `mark` names it and its step. It is
   * counted as killed.
   */
  async diedAt(mark: string): Promise<{ pid: number; step: string }> {
    // The mark is made, then written: read it only once it names a pid and a step.
    const [, pid, step] = await this.waitFor(
      () => {
        try {
          return /^(\d+) (\S+)$/.exec(fs.readFileSync(mark, "utf8")) ?? undefined;
        } catch {
          return undefined;
        }
      },
      "an armed member to die at its step",
      WAIT_MS,
      20,
    );
    this.kill(Number(pid));
    return { pid: Number(pid), step };
  }

  /** Members started and not killed. */
  alive(): number[] {
    const all = [...this.direct.keys(), ...this.viaPrimary.keys()];
    return all.filter((pid) => !this.killed.has(pid));
  }

  /** Resolves with `check()`'s first truthy value, re-checking on every report (and every `pollMs`). */
  waitFor<T>(check: () => T | undefined | false, what: string, timeoutMs = WAIT_MS, pollMs = 0): Promise<T> {
    return new Promise((resolve, reject) => {
      const tryNow = (): boolean => {
        const value = check();
        if (value === undefined || value === false) return false;
        cleanup();
        resolve(value as T);
        return true;
      };
      const wake = (): void => void tryNow();
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for ${what}; last reports: ${JSON.stringify(this.reports.slice(-8))}`));
      }, timeoutMs);
      const poll = pollMs > 0 ? setInterval(wake, pollMs) : undefined;
      const cleanup = (): void => {
        clearTimeout(timer);
        clearInterval(poll);
        this.wakeups.delete(wake);
      };
      this.wakeups.add(wake);
      tryNow();
    });
  }

  /** The latest `connect` report of `pid` on `channel` received after report index `since`. */
  lastConnect(pid: number, channel: string, since = 0): Report | undefined {
    for (let i = this.reports.length - 1; i >= since; i--) {
      const r = this.reports[i];
      if (r.pid === pid && r.type === "connect" && r.channel === channel) return r;
    }
    return undefined;
  }

  /**
   * Waits until every one of `pids` has (re)connected after report index `since` and all name the
   * same host, which is one of them and says it hosts; every other one says it does not.
   */
  async agreement(pids: number[], channel: string, since = 0): Promise<{ hostPid: number; connects: Report[] }> {
    return this.waitFor(() => {
      const connects = pids.map((pid) => this.lastConnect(pid, channel, since));
      if (connects.some((c) => c === undefined)) return undefined;
      const hosts = new Set(connects.map((c) => c?.hostPid));
      if (hosts.size !== 1) return undefined;
      const hostPid = connects[0]?.hostPid as number;
      if (!pids.includes(hostPid)) return undefined;
      return { hostPid, connects: connects as Report[] };
    }, `agreement of ${pids.length} members on one host of ${channel}`);
  }

  /** Kills every process. */
  stop(): void {
    for (const pid of this.alive()) this.kill(pid);
    for (const p of this.primaries) p.kill("SIGKILL");
  }
}
