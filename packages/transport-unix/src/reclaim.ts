import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import { debug } from "@open-channel/core";

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

/** A held lock; `release()` gives it back. */
interface Lock {
  release(): void;
}

/**
 * An exclusive lock around the check-and-unlink of one socket path. On Linux it is a listening
 * socket in the abstract namespace: exclusive like any bind, and the kernel drops it the instant
 * its holder dies, so a SIGKILLed reclaimer can never leave a stale lock. Elsewhere it is a lock
 * file with the holder's pid, broken when that pid is dead.
 */
async function tryLock(socketPath: string): Promise<Lock | undefined> {
  if (process.platform === "linux") {
    const uid = typeof process.getuid === "function" ? process.getuid() : 0;
    const digest = createHash("sha256").update(socketPath).digest("hex").slice(0, 32);
    const server = net.createServer((s) => s.destroy());
    server.unref();
    return new Promise((resolve) => {
      server.once("error", () => resolve(undefined));
      server.listen({ path: `\0open-channel-lock-${uid}-${digest}`, exclusive: true }, () => {
        resolve({ release: () => server.close() });
      });
    });
  }
  const lockPath = `${socketPath}.lock`;
  try {
    const fd = fs.openSync(lockPath, "wx", 0o600);
    fs.writeSync(fd, String(process.pid));
    fs.closeSync(fd);
    return { release: () => fs.rmSync(lockPath, { force: true }) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    breakLockIfDead(lockPath);
    return undefined;
  }
}

function breakLockIfDead(lockPath: string): void {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(lockPath, "utf8"));
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 0) return;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") {
      debug("breaking the reclaim lock %s of dead pid %d", lockPath, pid);
      fs.rmSync(lockPath, { force: true });
    }
  }
}

/**
 * Removes a dead host's socket file, race-free: probe, lock, check the file is still the same one
 * (same inode) and still refuses connections, and only then unlink it. A socket file whose listener
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
  if ((await probe(socketPath)) !== "refused") return false;
  const lock = await tryLock(socketPath);
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
