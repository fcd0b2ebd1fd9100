import { debug, type Lease } from "@open-channel/core";
import { RELEASE, RENEW, type RedisCommand, runCommand } from "./redis-client";

/**
 * The share of the lease's time to live after which a host stops serving if it has not renewed:
 * the local deadline. Measured on this process's monotonic clock from the moment the last
 * successful claim or renewal was *sent* (Redis started its own count later), so the host stops
 * before Redis can let the key expire as long as the two clocks' rates differ by less than 10%
 * and Redis's wall clock does not jump forward (Redis counts expiry in wall-clock time).
 *
 * @example
 * const deadlineMs = STOP_SERVING_AT * transport.ttlMs; // 4500 with the default 5000
 */
export const STOP_SERVING_AT = 0.9;
/**
 * Renewals per time to live: a host renews every ttl / 4, so 3 tries fit before its deadline.
 *
 * @example
 * const renewEveryMs = transport.ttlMs / RENEWALS_PER_TTL; // 1250 with the default 5000
 */
export const RENEWALS_PER_TTL = 4;

/**
 * A host's lease in Redis: the host key holds `record` (with its epoch) for `ttlMs`, renewed every
 * ttl/4 by a compare-and-extend. `held()` turns false at the local deadline; the lease is lost
 * then, or as soon as a renewal finds the key holding another record (or none).
 */
export class RedisLease implements Lease {
  readonly epoch: number;
  private deadline: number;
  /**
   * The same deadline on the wall clock. The monotonic clock stands still while the machine
   * sleeps (a suspended laptop, a VM paused and resumed); the wall clock is set right after it
   * wakes (NTP, the hypervisor's clock). Whichever passes first ends the lease.
   */
  private wallDeadline: number;
  private lost = false;
  private renewTimer: NodeJS.Timeout | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private readonly callbacks: ((reason: string) => void)[] = [];

  constructor(
    private readonly command: RedisCommand,
    private readonly key: string,
    /** The record in the host key: `"<epoch> <host> <port> <pid> <id>"`. */
    readonly record: string,
    private readonly ttlMs: number,
    /** When the claim that made this record was sent (performance.now()). */
    sentAt: number,
  ) {
    this.epoch = Number(record.slice(0, record.indexOf(" ")));
    this.deadline = sentAt + ttlMs * STOP_SERVING_AT;
    this.wallDeadline = Date.now() + (this.deadline - performance.now());
    this.armDeadline();
    this.scheduleRenewal(ttlMs / RENEWALS_PER_TTL);
  }

  held(): boolean {
    if (this.lost) return false;
    if (performance.now() < this.deadline && Date.now() < this.wallDeadline) return true;
    // Past the deadline before its timer fired (a process waking from a pause): lost now, for good.
    process.nextTick(() => this.lose(`not renewed within ${Math.round(this.ttlMs * STOP_SERVING_AT)} ms`));
    return false;
  }

  onLost(callback: (reason: string) => void): void {
    if (this.lost) process.nextTick(callback, "the lease was already lost");
    else this.callbacks.push(callback);
  }

  /** The server closed: stop renewing and delete the key if it is still ours (the next host need not wait). */
  release(): void {
    if (this.lost) return;
    this.end();
    void runCommand(this.command, ["EVAL", RELEASE, "1", this.key, this.record], this.ttlMs).catch((err: Error) =>
      debug("redis: could not release %s: %s", this.key, err.message),
    );
  }

  private end(): void {
    this.lost = true;
    clearTimeout(this.renewTimer);
    clearTimeout(this.deadlineTimer);
  }

  private lose(reason: string): void {
    if (this.lost) return;
    debug("redis: lease %s (epoch %d) lost: %s", this.key, this.epoch, reason);
    this.release();
    for (const callback of this.callbacks.splice(0)) callback(reason);
  }

  private armDeadline(): void {
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = setTimeout(
      () => {
        // A timer may fire early by a millisecond or so: only the clocks decide.
        if (!this.held()) this.lose(`not renewed within ${Math.round(this.ttlMs * STOP_SERVING_AT)} ms`);
        else this.armDeadline();
      },
      Math.max(0, this.deadline - performance.now()),
    );
    this.deadlineTimer.unref();
  }

  private scheduleRenewal(ms: number): void {
    this.renewTimer = setTimeout(() => void this.renew(), ms);
    this.renewTimer.unref();
  }

  private async renew(): Promise<void> {
    if (this.lost) return;
    const sentAt = performance.now();
    let reply: unknown;
    try {
      // Waiting longer than the deadline is pointless: the lease is lost by then.
      const wait = Math.max(1, this.deadline - sentAt);
      reply = await runCommand(this.command, ["EVAL", RENEW, "1", this.key, this.record, String(this.ttlMs)], wait);
    } catch (err) {
      if (this.lost) return;
      debug("redis: renewing %s failed: %s", this.key, (err as Error).message);
      this.scheduleRenewal(this.ttlMs / (RENEWALS_PER_TTL * 2));
      return;
    }
    if (this.lost) return;
    if (Number(reply) !== 1) return this.lose("the host key holds another record (or none)");
    this.deadline = Math.max(this.deadline, sentAt + this.ttlMs * STOP_SERVING_AT);
    this.wallDeadline = Date.now() + (this.deadline - performance.now());
    this.armDeadline();
    this.scheduleRenewal(this.ttlMs / RENEWALS_PER_TTL);
  }
}
