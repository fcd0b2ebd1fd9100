import * as path from "node:path";
import { defaultPrivateDir, escapeName, hashName } from "@open-channel/core";

/**
 * Longest socket path the OS takes, in bytes, without the terminating NUL: `sun_path` is 108
 * bytes on Linux and 104 on macOS and the BSDs.
 *
 * @example
 * maxSocketPathBytes("linux") // 107
 * maxSocketPathBytes("darwin") // 103
 */
export function maxSocketPathBytes(platform: NodeJS.Platform = process.platform): number {
  return platform === "linux" ? 107 : 103;
}

/**
 * The per-user private directory for socket files: `$XDG_RUNTIME_DIR/open-channel` when that is
 * set (it is already private to the user), else `<os.tmpdir()>/open-channel-<uid>`.
 *
 * @example
 * defaultSocketDir() // "/run/user/1000/open-channel", or "/tmp/open-channel-1000" without XDG_RUNTIME_DIR
 */
export function defaultSocketDir(): string {
  return defaultPrivateDir();
}

/**
 * The socket file name for a channel, safe for any string: letters, digits, `_`, `-` and `.` stay,
 * every other byte becomes `%XX`, behind a `c.` prefix (so no name is `.`, `..` or hidden, and no
 * name contains a `/`). When the path would not fit in `sun_path`, the name is a hash instead, with
 * an `h.` prefix, so the two kinds never collide.
 *
 * @example
 * socketFileName("my app", "/run/user/1000/open-channel") // "c.my%20app.sock"
 */
export function socketFileName(channel: string, dir: string, platform: NodeJS.Platform = process.platform): string {
  const readable = `c.${escapeName(channel)}.sock`;
  if (Buffer.byteLength(path.join(dir, readable)) <= maxSocketPathBytes(platform)) return readable;
  return `h.${hashName(channel)}.sock`;
}
