import * as fs from "node:fs";
import { OpenChannelError } from "@open-channel/core";

/**
 * Makes sure `dir` exists, is a real directory (not a symlink), belongs to this user and is
 * private (mode 0700). Anything else would let another local user squat or reach our sockets, so
 * it is an error, never silently "fixed" on a directory we did not create.
 */
export function ensurePrivateDir(dir: string, channel: string): void {
  let created = false;
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
    created = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw unsafe(dir, channel, `cannot create it: ${(err as Error).message}`, err);
  }
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) throw unsafe(dir, channel, "it is not a directory (a symlink or a file is in the way)");
  const uid = typeof process.getuid === "function" ? process.getuid() : st.uid;
  if (st.uid !== uid) throw unsafe(dir, channel, `it belongs to uid ${st.uid}, not to this process's uid ${uid}`);
  if ((st.mode & 0o077) !== 0) {
    // Our own fresh directory under an odd umask: tighten it. Someone else's choice: refuse.
    if (created) fs.chmodSync(dir, 0o700);
    else throw unsafe(dir, channel, `its mode is ${(st.mode & 0o777).toString(8)}, other users could reach the sockets in it (expected 700)`);
  }
}

function unsafe(dir: string, channel: string, why: string, cause?: unknown): OpenChannelError {
  return new OpenChannelError(
    "ERR_OPEN_CHANNEL_UNSAFE_DIR",
    `open-channel "${channel}": cannot use the socket directory ${dir}: ${why}. ` +
      "Remove or fix it (mode 700, owned by you), or point unixTransport({ dir }) / XDG_RUNTIME_DIR elsewhere.",
    { channel, cause },
  );
}
