import { createHash } from "node:crypto";

const SAFE = /^[A-Za-z0-9_.-]$/;

/**
 * Escapes any string into a name safe for a file or pipe: letters, digits, `_`, `-` and `.` stay,
 * every other byte of its UTF-8 form becomes `%XX`. No `/`, `\` or NUL can survive. For transports
 * that name files or pipes after channels (prefix the result, so that it is never `.` or `..`).
 *
 * @example
 * escapeName("my app/1") // "my%20app%2F1"
 */
export function escapeName(text: string): string {
  let out = "";
  for (const ch of text) {
    if (SAFE.test(ch)) out += ch;
    else for (const byte of Buffer.from(ch, "utf8")) out += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/**
 * A fixed-length name for a string too long to escape in full: 32 hex digits of its SHA-256.
 *
 * @example
 * hashName("x".repeat(500)).length // 32
 */
export function hashName(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex").slice(0, 32);
}
