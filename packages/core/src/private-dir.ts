import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { type OpenChannelError, openChannelError } from "./errors";

/**
 * The per-user private directory where transports keep their files (Unix socket files, TCP port
 * files, the per-user secret): `$XDG_RUNTIME_DIR/open-channel` when that is set (it is already
 * private to the user), else `<os.tmpdir()>/open-channel-<uid>` (on Windows,
 * `<os.tmpdir()>/open-channel`: the temp folder is already per user there).
 *
 * @example
 * defaultPrivateDir() // "/run/user/1000/open-channel", or "/tmp/open-channel-1000" without XDG_RUNTIME_DIR
 */
export function defaultPrivateDir(): string {
  const runtime = process.env.XDG_RUNTIME_DIR;
  if (process.platform !== "win32" && runtime !== undefined && runtime !== "" && path.isAbsolute(runtime)) {
    return path.join(runtime, "open-channel");
  }
  if (typeof process.getuid !== "function") return path.join(os.tmpdir(), "open-channel");
  return path.join(os.tmpdir(), `open-channel-${process.getuid()}`);
}

/**
 * Makes sure `dir` exists, is a real directory (not a symlink), belongs to this user and is
 * private (mode 0700), and that no other user can move it away and put another in its place: each
 * folder above it belongs to this user or to root, and is writable by others only with the sticky
 * bit (as `/tmp`). Anything else would let another local user squat or reach our files, so it
 * is an error (`ERR_OPEN_CHANNEL_UNSAFE_DIR`), never silently "fixed" on a directory we did not
 * create. On Windows, where mode bits mean nothing, only existence and type are checked; the
 * default folder lives in the user's own temp folder.
 *
 * @example
 * ensurePrivateDir(defaultPrivateDir(), "jobs");
 */
export function ensurePrivateDir(dir: string, channel: string): void {
  // The folders above first: never create ours where someone else could swap it.
  if (process.platform !== "win32" && typeof process.getuid === "function") checkParents(dir, channel, process.getuid());
  let created = false;
  // Look first: it is there on every call but the first, and a failed mkdir costs an exception.
  let st = fs.lstatSync(dir, { throwIfNoEntry: false });
  if (st === undefined) {
    try {
      fs.mkdirSync(dir, { mode: 0o700 });
      created = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw unsafe(dir, channel, `cannot create it: ${(err as Error).message}`, err);
    }
    st = fs.lstatSync(dir);
  }
  if (!st.isDirectory()) throw unsafe(dir, channel, "it is not a directory (a symlink or a file is in the way)");
  if (process.platform !== "win32") {
    const uid = typeof process.getuid === "function" ? process.getuid() : st.uid;
    if (st.uid !== uid) throw unsafe(dir, channel, `it belongs to uid ${st.uid}, not to this process's uid ${uid}`);
    if ((st.mode & 0o077) !== 0) {
      // Our own fresh directory under an odd umask: tighten it. Someone else's choice: refuse.
      if (created) fs.chmodSync(dir, 0o700);
      else
        throw unsafe(dir, channel, `its mode is ${(st.mode & 0o777).toString(8)}, other users could reach the files in it (expected 700)`);
    }
  }
}

/** Directories whose parents passed: only their owners (root or this user) can change them. */
const parentsChecked = new Set<string>();

/**
 * Every folder above `dir`, as written and as the symlinks lead, belongs to root or `uid` and is
 * not writable by others unless sticky: else its owner (or anyone) could rename `dir` and put a
 * folder of their own, or a symlink, in its place between our check and our use.
 */
function checkParents(dir: string, channel: string, uid: number): void {
  if (parentsChecked.has(dir)) return;
  const judge = (folder: string, st: fs.Stats): void => {
    if (st.uid !== 0 && st.uid !== uid) {
      throw unsafe(dir, channel, `the folder ${folder} above it belongs to uid ${st.uid}, who could replace it`);
    }
    if (!st.isSymbolicLink() && (st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) {
      throw unsafe(
        dir,
        channel,
        `the folder ${folder} above it is writable by others without the sticky bit (mode ${(st.mode & 0o7777).toString(8)}): they could replace it`,
      );
    }
  };
  const absolute = path.resolve(dir);
  // As written: a symlink on the way must be root's or ours (its owner could point it elsewhere).
  for (let folder = path.dirname(absolute); ; folder = path.dirname(folder)) {
    judge(folder, fs.lstatSync(folder));
    if (path.dirname(folder) === folder) break;
  }
  // And where the symlinks lead.
  for (let folder = fs.realpathSync(path.dirname(absolute)); ; folder = path.dirname(folder)) {
    judge(folder, fs.statSync(folder));
    if (path.dirname(folder) === folder) break;
  }
  if (parentsChecked.size < 1000) parentsChecked.add(dir);
}

function unsafe(dir: string, channel: string, why: string, cause?: unknown): OpenChannelError {
  return openChannelError("ERR_OPEN_CHANNEL_UNSAFE_DIR", { channel, dir, why, cause });
}
