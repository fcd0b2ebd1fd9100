import { randomBytes } from "node:crypto";
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

/*
 * The lock is the file `lockPath`, in the user's private folder (0700: no other user can create,
 * remove or read anything there), on every platform. It holds "pid start nonce" and is made by
 * writing a temporary file and hard-linking it into place: link() creates only if absent, so
 * exactly one process wins, and the file is never seen half-written. (An abstract socket name,
 * the Linux lock before, has no permissions: another user could bind it first and no process of
 * the channel would ever host.)
 *
 * A lock is stale, and is broken, when its holder is gone:
 * - its pid is dead, or belongs to another user (EPERM: not one of ours, the pid was reused);
 * - Linux: the pid's start time (and boot) differs from the recorded one: the pid was reused; or
 *   the pid is a zombie (killed, not yet reaped by its parent: signal 0 still reaches it);
 * - where the start time cannot be read (macOS, Windows, no /proc), or the holder is in another
 *   pid namespace (a container sharing the folder: its pid means nothing here): older than
 *   MAX_HOLD_MS, ten times the longest hold (a takeover's 1 s probe), so a reused pid blocks the
 *   channel for at most that long;
 * - empty or unreadable content (an older version's open-then-write) older than UNPARSABLE_STALE_MS.
 *
 * Breaking goes under a second lock, `lockPath + ".break"`, made the same way: under it the
 * breaker checks that the file is still the very one it judged (same content, nonce included, and
 * inode), removes it and lets go. So two breakers never remove a lock one of them judged while a
 * third took it meanwhile. The break lock is held for a few syscalls; a breaker killed in that
 * window leaves it behind, and it is removed by the same staleness rules (its age bound is short).
 * Residual: two breakers removing the same dead breaker's leftover at the same instant can both
 * go on, which matters only if a third process takes the lock between one's check and its unlink.
 *
 * Linux wakes waiters at once: the holder listens on an abstract socket named by the lock's
 * random nonce (read by waiters from the file, which other users cannot read); its close, or its
 * holder's death, wakes them. It is only a hint: waiters poll the file all the same, so a stranger
 * on that name could at worst delay one by a poll period, never block it.
 */

/** Where the start time of a pid cannot be checked: a live pid's lock older than this is stale. */
const MAX_HOLD_MS = 10_000;
/** The break lock is held for a few syscalls: older than this, with its holder unverifiable, it is stale. */
const MAX_BREAK_HOLD_MS = 1000;
/** Empty or unparsable content (an older version crashed between open and write) is stale after this. */
const UNPARSABLE_STALE_MS = 1000;
/** Poll periods of {@link waitForRelease}: connected to the holder's wake-up socket, and without one. */
const POLL_WITH_HINT_MS = 10;
const POLL_MS = 2;
/** Bytes read of a lock file: "pid start nonce" is far shorter. */
const MAX_LOCK_BYTES = 256;

/**
 * @internal Tests only (not exported from the package): `portable` makes Linux judge and wait as
 * macOS and Windows do (no start times, no wake-up socket), so those rules run in CI too.
 */
export const lockInternals = { portable: process.platform !== "linux" };

/** One lock file as read: its raw content and which file it was. */
interface LockFile {
  raw: string;
  ino: number;
  mtimeMs: number;
}

/** A parsed lock file: `start` is absent where unknown ("-"), `nonce` in an older version's file. */
interface Holder {
  pid: number;
  start?: string;
  nonce?: string;
}

/**
 * Tries to take an exclusive, short-lived lock named by `lockPath`, for transports that must
 * check-then-remove a dead host's leftovers (and bind in their place) without racing each other.
 * Resolves `undefined` when another process holds it: wait with {@link waitForRelease}.
 * `lockPath` must be in a folder only this user can write (the transport's private folder).
 *
 * The lock is the file `lockPath` naming its holder (pid and, on Linux, the process's start
 * time), created atomically; a holder that died (or whose pid now names another process) leaves
 * a stale lock, which the next `tryLock` breaks, race-free, before taking the lock. On Linux,
 * waiters also learn of a release at once through a socket of the holder's.
 *
 * @example
 * const lock = await tryLock(`${portFile}.lock`);
 * if (lock) try { removeIfStillStale(); } finally { lock.release(); }
 */
export async function tryLock(lockPath: string): Promise<Lock | undefined> {
  const nonce = randomBytes(16).toString("hex");
  // The wake-up socket listens before the file names it: a waiter that reads the file finds it.
  const hint = lockInternals.portable ? undefined : listenForWaiters(nonce);
  let mine = acquire(lockPath, nonce);
  if (mine === undefined) {
    const seen = readLock(lockPath);
    // Gone meanwhile (released), or stale and broken by us: one more try.
    if (seen === undefined || breakIfStale(lockPath, seen, MAX_HOLD_MS)) mine = acquire(lockPath, nonce);
  }
  if (mine === undefined) {
    hint?.();
    return undefined;
  }
  const { raw } = mine;
  let released = false;
  return {
    release: () => {
      if (released) return;
      released = true;
      releaseFile(lockPath, raw);
      hint?.();
    },
  };
}

/**
 * Resolves when the lock `lockPath` is released (or its holder dies), or after `timeoutMs`.
 * It polls the lock file; on Linux it also sleeps on a connection to the holder's wake-up socket,
 * so it is woken the moment the holder lets go or dies.
 *
 * @example
 * const lock = await tryLock(lockPath);
 * if (lock === undefined) {
 *   await waitForRelease(lockPath, 250); // the holder has bound by now: connect to it
 * }
 */
export function waitForRelease(lockPath: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const first = readLockQuietly(lockPath);
    let done = false;
    let socket: net.Socket | undefined;
    let hinted = false;
    let poll: NodeJS.Timeout | undefined;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(poll);
      socket?.destroy();
      resolve();
    };
    const timer = setTimeout(finish, timeoutMs);
    // Released, taken anew (not the lock we waited for), or its holder gone: wake.
    const changed = (): boolean => {
      const now = readLockQuietly(lockPath);
      return now === undefined || !sameFile(now, first as LockFile) || staleReason(now, MAX_HOLD_MS) !== undefined;
    };
    const schedule = (): void => {
      poll = setTimeout(
        () => {
          if (changed()) finish();
          else schedule();
        },
        hinted ? POLL_WITH_HINT_MS : POLL_MS,
      );
    };
    if (first === undefined || staleReason(first, MAX_HOLD_MS) !== undefined) return finish();
    const nonce = parseHolder(first.raw)?.nonce;
    if (!lockInternals.portable && nonce !== undefined) {
      socket = net.connect({ path: wakeName(nonce) });
      socket.on("connect", () => {
        hinted = true;
      });
      // Its close is the holder letting go or dying. A refusal is a holder not listening yet (or
      // gone already): the file tells.
      socket.on("close", () => {
        if (hinted || changed()) finish();
      });
      socket.on("error", () => undefined);
      socket.resume();
    }
    schedule();
  });
}

/** The abstract socket name of a holder's wake-up hint: unpredictable, new for every lock. */
function wakeName(nonce: string): string {
  return `\0open-channel-wake-${nonce}`;
}

/**
 * The holder's side of the wake-up hint: listens on the nonce's abstract name (bound before
 * `listen` returns; errors only lose the hint). Returns what closes it and every waiter.
 */
function listenForWaiters(nonce: string): () => void {
  const waiters = new Set<net.Socket>();
  const server = net.createServer((s) => {
    waiters.add(s);
    s.on("error", () => undefined);
    s.on("close", () => waiters.delete(s));
  });
  server.unref();
  server.on("error", (err) => debug("lock: no wake-up socket: %s", err.message));
  server.listen({ path: wakeName(nonce), exclusive: true });
  return () => {
    server.close();
    for (const s of waiters) s.destroy();
  };
}

/**
 * Creates `file` holding this process's identity, if absent: write a temporary file, then link()
 * it into place (atomic, fails with EEXIST when the file exists). `undefined` when it exists.
 */
function acquire(file: string, nonce = randomBytes(16).toString("hex")): { raw: string; nonce: string } | undefined {
  const raw = `${process.pid} ${ownStart() ?? "-"} ${nonce}\n`;
  const temp = `${file}.${nonce}.tmp`;
  fs.writeFileSync(temp, raw, { flag: "wx", mode: 0o600 });
  try {
    fs.linkSync(temp, file);
    return { raw, nonce };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // Windows: a lock file being deleted while a waiter has it open refuses new links for a moment.
    if (code === "EEXIST" || (process.platform === "win32" && (code === "EPERM" || code === "EACCES"))) return undefined;
    throw err;
  } finally {
    fs.rmSync(temp, { force: true });
  }
}

/** Removes `file` only if it is still the one we created (a breaker may have replaced it). */
function releaseFile(file: string, raw: string): void {
  try {
    if (readLock(file)?.raw === raw) fs.unlinkSync(file);
  } catch (err) {
    debug("lock: could not release %s: %s", file, (err as Error).message);
  }
}

/**
 * Breaks the lock `lockPath` if `seen` (its content a moment ago) is stale, under the break lock:
 * only if the file is still that very one. True when the lock was stale and is now gone.
 */
function breakIfStale(lockPath: string, seen: LockFile, maxHoldMs: number): boolean {
  const reason = staleReason(seen, maxHoldMs);
  if (reason === undefined) return false;
  const breakPath = `${lockPath}.break`;
  let breaker = acquire(breakPath);
  if (breaker === undefined) {
    // Another breaker at work (a few syscalls long), or one killed at work: its leftover goes by
    // the same rules, without a lock of its own (the residual window in the notes above).
    const other = readLock(breakPath);
    if (other === undefined || removeIfStale(breakPath, other, MAX_BREAK_HOLD_MS)) breaker = acquire(breakPath);
    if (breaker === undefined) return false;
  }
  try {
    const now = readLock(lockPath);
    if (now === undefined) return true;
    if (!sameFile(now, seen)) return false;
    fs.unlinkSync(lockPath);
    debug("lock: broke %s (%s): %s", lockPath, reason, seen.raw.trim());
    return true;
  } finally {
    releaseFile(breakPath, breaker.raw);
  }
}

/** Removes the stale leftover `file` if it is still `seen`. True when it is gone. */
function removeIfStale(file: string, seen: LockFile, maxHoldMs: number): boolean {
  const reason = staleReason(seen, maxHoldMs);
  if (reason === undefined) return false;
  const now = readLock(file);
  if (now !== undefined && sameFile(now, seen)) {
    fs.unlinkSync(file);
    debug("lock: removed %s (%s): %s", file, reason, seen.raw.trim());
  }
  return true;
}

/** Why the lock `file` is stale (its holder is gone), or `undefined` while it may be held. */
function staleReason(file: LockFile, maxHoldMs: number): string | undefined {
  const age = Date.now() - file.mtimeMs;
  const holder = parseHolder(file.raw);
  if (holder === undefined) return age > UNPARSABLE_STALE_MS ? "empty or unreadable" : undefined;
  const held = age > maxHoldMs ? `held for ${Math.round(age)} ms` : undefined;
  // A holder in another pid namespace (a container sharing the folder): its pid means nothing here.
  const theirs = holder.start?.split("@")[2];
  if (theirs !== undefined && theirs !== pidNamespace()) return held;
  try {
    process.kill(holder.pid, 0);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ESRCH") return "holder is dead";
    // Only our own processes hold our locks: a pid we may not signal is someone else's now.
    if (code === "EPERM") return "pid now belongs to another user";
  }
  if (!lockInternals.portable && holder.start !== undefined) {
    const start = startOf(holder.pid);
    if (start === null) return "holder is dead";
    if (start !== undefined) return start === holder.start ? undefined : "pid reused";
  }
  return held;
}

function parseHolder(raw: string): Holder | undefined {
  const m = /^(\d+)(?: (\S+) ([0-9a-f]+))?\s*$/.exec(raw);
  if (m === null) return undefined;
  const pid = Number(m[1]);
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  return { pid, start: m[2] === undefined || m[2] === "-" ? undefined : m[2], nonce: m[3] };
}

/** The same lock file: same inode and same content (the nonce makes each lock's content unique). */
function sameFile(a: LockFile, b: LockFile): boolean {
  return a.raw === b.raw && a.ino === b.ino;
}

/** The lock file `file` as it is now; `undefined` when there is none. */
function readLock(file: string): LockFile | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  try {
    const st = fs.fstatSync(fd);
    const buf = Buffer.alloc(MAX_LOCK_BYTES);
    const n = fs.readSync(fd, buf, 0, MAX_LOCK_BYTES, 0);
    return { raw: buf.toString("utf8", 0, n), ino: st.ino, mtimeMs: st.mtimeMs };
  } finally {
    fs.closeSync(fd);
  }
}

/** {@link readLock} for waiters: a file that cannot be read counts as released (the caller retries). */
function readLockQuietly(file: string): LockFile | undefined {
  try {
    return readLock(file);
  } catch {
    return undefined;
  }
}

let ownStartCache: string | null | undefined;

/** This process's start time (Linux), read once; `undefined` where unknown. */
function ownStart(): string | undefined {
  if (lockInternals.portable) return undefined;
  if (ownStartCache === undefined) ownStartCache = startOf(process.pid) ?? null;
  return ownStartCache ?? undefined;
}

let bootId: string | undefined;
let pidNs: string | null | undefined;

/** Linux: this process's pid namespace (the inode of /proc/self/ns/pid), read once. */
function pidNamespace(): string | undefined {
  if (pidNs === undefined) {
    try {
      pidNs = /\[(\d+)\]/.exec(fs.readlinkSync("/proc/self/ns/pid"))?.[1] ?? null;
    } catch {
      pidNs = null;
    }
  }
  return pidNs ?? undefined;
}

/**
 * Linux: when `pid` started, as "<clock ticks since boot>@<boot id>@<pid namespace>" (field 22 of
 * /proc/<pid>/stat; with the boot id, as a pid started at the same tick after a reboot is another
 * process; with the namespace, where that pid means that process). `null` when there is no such process, or only its zombie (a killed holder its parent
 * has not reaped yet: signal 0 still reaches it); `undefined` when it cannot be told.
 */
function startOf(pid: number): string | null | undefined {
  if (process.platform !== "linux") return undefined;
  let stat: string;
  try {
    bootId ??= fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim().replace(/-/g, "").slice(0, 16);
    stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ENOENT" && bootId !== undefined ? null : undefined;
  }
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses; fields count from its end.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  if (fields[0] === "Z" || fields[0] === "X") return null;
  const ticks = fields[19];
  const ns = pidNamespace();
  return ticks !== undefined && /^\d+$/.test(ticks) && ns !== undefined ? `${ticks}@${bootId}@${ns}` : undefined;
}
