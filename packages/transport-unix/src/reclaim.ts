import * as fs from "node:fs";
import * as net from "node:net";
import { debug, tryLock } from "@open-channel/core";

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

/**
 * Removes a dead host's socket file, race-free: lock, check the file is still the same one (same
 * inode) and refuses connections, and only then unlink it. A socket file whose listener
 * is gone never comes back to life (a new host must bind a new file), so a file that refused and
 * kept its inode under the lock is dead for sure. Only one reclaimer holds the lock; the others
 * connect again and find the winner.
 *
 * @returns true when the path is free now (reclaimed, or already gone), false when the caller
 *   should connect again (someone is alive there, or another process is reclaiming).
 */
export async function reclaimStaleSocket(socketPath: string): Promise<boolean> {
  let before: fs.Stats;
  try {
    before = fs.lstatSync(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return true;
    throw err;
  }
  if (!before.isSocket()) {
    const err = new Error(`${socketPath} exists and is not a socket: refusing to remove it`) as NodeJS.ErrnoException;
    err.code = "EACCES";
    throw err;
  }
  // No probe before the lock: the caller has just been refused. The probe that decides is the
  // one under the lock.
  const lock = await tryLock(`${socketPath}.lock`);
  if (lock === undefined) return false;
  try {
    let now: fs.Stats;
    try {
      now = fs.lstatSync(socketPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return true;
      throw err;
    }
    if (now.ino !== before.ino || now.dev !== before.dev) return false;
    if ((await probe(socketPath)) !== "refused") return false;
    fs.unlinkSync(socketPath);
    debug("reclaimed the stale socket file %s", socketPath);
    return true;
  } finally {
    lock.release();
  }
}
