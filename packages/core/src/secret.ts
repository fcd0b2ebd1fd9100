import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { type OpenChannelError, openChannelError } from "./errors";

const SECRET_BYTES = 32;
/** What each secret file held when read, and which file that was (so a replaced file is read again). */
const cache = new Map<string, { secret: Buffer; dev: number; ino: number; mtimeMs: number }>();

/**
 * The per-user secret in `dir` (file `secret`, mode 0600, 32 random bytes), created on first use.
 * Creation is atomic (written to a temporary file, then hard-linked into place), so processes
 * starting together all end up with the same secret and never read a half-written one.
 * `dir` must be private to the user (see {@link ensurePrivateDir}).
 *
 * @example
 * ensurePrivateDir(dir, "jobs");
 * const secret = readOrCreateSecret(dir, "jobs"); // the channel name only goes into error messages
 */
export function readOrCreateSecret(dir: string, channel: string): Buffer {
  const file = path.join(dir, "secret");
  const cached = cache.get(file);
  if (cached !== undefined) {
    // One stat per call: the same file as read gives the same secret; one removed or replaced
    // (by a cleaner of /tmp, or a user) is read, or made, again, as the other processes do.
    const st = fs.statSync(file, { throwIfNoEntry: false });
    if (st !== undefined && st.dev === cached.dev && st.ino === cached.ino && st.mtimeMs === cached.mtimeMs) return cached.secret;
  }
  let secret = tryRead(file, channel);
  if (secret === undefined) {
    const temp = path.join(dir, `secret.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
    fs.writeFileSync(temp, randomBytes(SECRET_BYTES), { mode: 0o600, flag: "wx" });
    try {
      fs.linkSync(temp, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    } finally {
      fs.rmSync(temp, { force: true });
    }
    secret = tryRead(file, channel);
    if (secret === undefined) throw bad(file, channel, "it vanished while being created");
  }
  const st = fs.statSync(file);
  cache.set(file, { secret, dev: st.dev, ino: st.ino, mtimeMs: st.mtimeMs });
  return secret;
}

function tryRead(file: string, channel: string): Buffer | undefined {
  let data: Buffer;
  try {
    data = fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  if (data.length !== SECRET_BYTES) throw bad(file, channel, `it holds ${data.length} bytes, not ${SECRET_BYTES}`);
  if (process.platform !== "win32" && (fs.statSync(file).mode & 0o077) !== 0) {
    throw bad(file, channel, "other users can read it (expected mode 600)");
  }
  return data;
}

function bad(file: string, channel: string, why: string): OpenChannelError {
  return openChannelError("ERR_OPEN_CHANNEL_UNSAFE_DIR", { channel, secretFile: file, why });
}
