import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import { debug } from "./debug";

/** A held lock; `release()` gives it back. */
export interface Lock {
  release(): void;
}

/**
 * Tries to take an exclusive, short-lived lock named by `lockPath`, for transports that must
 * check-then-remove a dead host's leftovers without racing each other. Resolves `undefined` when
 * another process holds it (try again shortly).
 *
 * On Linux the lock is a listening socket in the abstract namespace: exclusive like any bind, and
 * the kernel drops it the instant its holder dies, so a SIGKILLed holder never leaves a stale lock.
 * Elsewhere it is the file `lockPath` holding the owner's pid, broken when that pid is dead.
 *
 * @example
 * const lock = await tryLock(`${portFile}.lock`);
 * if (lock) try { removeIfStillStale(); } finally { lock.release(); }
 */
export async function tryLock(lockPath: string): Promise<Lock | undefined> {
  if (process.platform === "linux") {
    const uid = typeof process.getuid === "function" ? process.getuid() : 0;
    const digest = createHash("sha256").update(lockPath).digest("hex").slice(0, 32);
    const server = net.createServer((s) => s.destroy());
    server.unref();
    return new Promise((resolve) => {
      server.once("error", () => resolve(undefined));
      server.listen({ path: `\0open-channel-lock-${uid}-${digest}`, exclusive: true }, () => {
        resolve({ release: () => server.close() });
      });
    });
  }
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
      debug("breaking the lock %s of dead pid %d", lockPath, pid);
      fs.rmSync(lockPath, { force: true });
    }
  }
}
