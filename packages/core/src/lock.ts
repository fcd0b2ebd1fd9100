import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import { debug } from "./debug";

/**
 * A held lock; `release()` gives it back and wakes everyone in {@link waitForRelease}.
 *
 * @example
 * const lock: Lock | undefined = await tryLock(`${file}.lock`);
 * if (lock !== undefined) {
 *   try { removeIfStillStale(); } finally { lock.release(); }
 * }
 */
export interface Lock {
  /** Gives the lock back; call it in a `finally`, so that a throw never keeps the lock. */
  release(): void;
}

const abstractNames = new Map<string, string>();

function abstractName(lockPath: string): string {
  let name = abstractNames.get(lockPath);
  if (name === undefined) {
    const uid = typeof process.getuid === "function" ? process.getuid() : 0;
    const digest = createHash("sha256").update(lockPath).digest("hex").slice(0, 32);
    name = `\0open-channel-lock-${uid}-${digest}`;
    if (abstractNames.size < 1000) abstractNames.set(lockPath, name);
  }
  return name;
}

/**
 * Tries to take an exclusive, short-lived lock named by `lockPath`, for transports that must
 * check-then-remove a dead host's leftovers (and bind in their place) without racing each other.
 * Resolves `undefined` when another process holds it: wait with {@link waitForRelease}.
 *
 * On Linux the lock is a listening socket in the abstract namespace: exclusive like any bind, and
 * the kernel drops it the instant its holder dies, so a SIGKILLed holder never leaves a stale lock;
 * waiters stay connected to it and learn of the release at once. Elsewhere it is the file
 * `lockPath` holding the owner's pid, broken when that pid is dead.
 *
 * @example
 * const lock = await tryLock(`${portFile}.lock`);
 * if (lock) try { removeIfStillStale(); } finally { lock.release(); }
 */
export async function tryLock(lockPath: string): Promise<Lock | undefined> {
  if (process.platform === "linux") {
    const waiters = new Set<net.Socket>();
    const server = net.createServer((s) => {
      waiters.add(s);
      s.on("error", () => undefined);
      s.on("close", () => waiters.delete(s));
    });
    server.unref();
    return new Promise((resolve) => {
      server.once("error", () => resolve(undefined));
      server.listen({ path: abstractName(lockPath), exclusive: true }, () => {
        resolve({
          release: () => {
            server.close();
            for (const s of waiters) s.destroy();
          },
        });
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

/**
 * Resolves when the lock `lockPath` is released (or its holder dies), or after `timeoutMs`.
 * On Linux it sleeps on a connection to the lock's socket: no polling, woken the moment it goes.
 *
 * @example
 * const lock = await tryLock(lockPath);
 * if (lock === undefined) {
 *   await waitForRelease(lockPath, 250); // the holder has bound by now: connect to it
 * }
 */
export function waitForRelease(lockPath: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearInterval(poll);
      socket?.destroy();
      resolve();
    };
    const timer = setTimeout(finish, timeoutMs);
    let socket: net.Socket | undefined;
    let poll: NodeJS.Timeout | undefined;
    if (process.platform === "linux") {
      socket = net.connect({ path: abstractName(lockPath) });
      socket.on("error", finish);
      socket.on("close", finish);
      socket.resume();
    } else {
      poll = setInterval(() => {
        if (!fs.existsSync(lockPath)) finish();
      }, 1);
    }
  });
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
