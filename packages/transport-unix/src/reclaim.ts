import * as fs from "node:fs";
import * as net from "node:net";
import { debug, tryLock, waitForRelease } from "@open-channel/core";

/** What a probe connect found at a socket path. */
export type ProbeResult = "live" | "refused" | "gone";

/** How long a probe waits before it counts a silent listener as alive (never unlink on a guess). */
const PROBE_TIMEOUT_MS = 1000;

/**
 * Connects to `socketPath` and hangs up. `refused` means no process listens on that file: a dead
 * host's leftover. A full backlog (`EAGAIN`) or a slow answer counts as live.
 */
export function probe(socketPath: string): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = net.connect({ path: socketPath });
    const done = (result: ProbeResult): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done("live"), PROBE_TIMEOUT_MS);
    socket.once("connect", () => done("live"));
    socket.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ECONNREFUSED") done("refused");
      else if (err.code === "ENOENT") done("gone");
      else done("live");
    });
  });
}

/** How long a process waits for another one's bind or reclaim before it simply connects again. */
export const WAIT_FOR_LOCK_MS = 250;

/** The lock that every bind and every reclaim of `socketPath` holds. */
export function lockPathOf(socketPath: string): string {
  return `${socketPath}.lock`;
}

/**
 * Removes a dead host's socket file and binds `bind` in its place, race-free: lock, check the file
 * is still the same one (same inode) and refuses connections, unlink it, bind, and only then let go
 * of the lock. Every bind of the path happens under the same lock (see UnixTransport#listen), so
 * while we hold it no file can be between its bind() and its listen(); and a socket file whose
 * listener is gone never comes back to life. So a file that refuses under the lock is dead for sure. Of
 * several reclaimers exactly one holds the lock; the others wait until it lets go (it is listening
 * by then) and connect to it.
 *
 * @returns true when `bind` succeeded (the caller hosts), false when the caller should connect again.
 */
export async function reclaimStaleSocket(socketPath: string, bind: () => Promise<void>): Promise<boolean> {
  let before: fs.Stats;
  try {
    before = fs.lstatSync(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
  if (!before.isSocket()) {
    const err = new Error(`${socketPath} exists and is not a socket: refusing to remove it`) as NodeJS.ErrnoException;
    err.code = "EACCES";
    throw err;
  }
  // No probe before the lock: the caller has just been refused. The probe that decides is the
  // one under the lock.
  const lockPath = lockPathOf(socketPath);
  const lock = await tryLock(lockPath);
  if (lock === undefined) {
    await waitForRelease(lockPath, WAIT_FOR_LOCK_MS);
    return false;
  }
  try {
    let now: fs.Stats | undefined;
    try {
      now = fs.lstatSync(socketPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    if (now !== undefined) {
      if (now.ino !== before.ino || now.dev !== before.dev) return false;
      if ((await probe(socketPath)) !== "refused") return false;
      fs.unlinkSync(socketPath);
      debug("reclaimed the stale socket file %s", socketPath);
    }
    try {
      await bind();
    } catch (err) {
      // A newcomer that found no file bound first: it hosts.
      if ((err as NodeJS.ErrnoException).code === "EADDRINUSE") return false;
      throw err;
    }
    return true;
  } finally {
    lock.release();
  }
}
