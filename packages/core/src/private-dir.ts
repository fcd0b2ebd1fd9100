import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { OpenChannelError } from "./errors";

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
 * private (mode 0700). Anything else would let another local user squat or reach our files, so it
 * is an error (`ERR_OPEN_CHANNEL_UNSAFE_DIR`), never silently "fixed" on a directory we did not
 * create. On Windows, where mode bits mean nothing, only existence and type are checked; the
 * default folder lives in the user's own temp folder.
 *
 * @example
 * ensurePrivateDir(defaultPrivateDir(), "jobs");
 */
export function ensurePrivateDir(dir: string, channel: string): void {
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

function unsafe(dir: string, channel: string, why: string, cause?: unknown): OpenChannelError {
  return new OpenChannelError(
    "ERR_OPEN_CHANNEL_UNSAFE_DIR",
    `open-channel "${channel}": cannot use the directory ${dir}: ${why}. ` +
      "Remove or fix it (mode 700, owned by you), or point the transport's `dir` option or XDG_RUNTIME_DIR elsewhere.",
    { channel, cause },
  );
}
