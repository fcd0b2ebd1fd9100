import { createHash } from "node:crypto";

const SAFE = /^[A-Za-z0-9_.-]$/;

/** The suffix of the heir's standby address (`HANDSHAKE.standbySuffix`). */
export const STANDBY_SUFFIX = "\u0000heir";

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
 * Reverses {@link escapeName}; `undefined` when `escaped` is not something escapeName makes.
 *
 * @example
 * unescapeName("my%20app%2F1") // "my app/1"
 */
export function unescapeName(escaped: string): string | undefined {
  if (!/^(?:[A-Za-z0-9_.-]|%[0-9A-F]{2})*$/.test(escaped)) return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < escaped.length; i++) {
    if (escaped[i] === "%") {
      bytes.push(parseInt(escaped.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(escaped.charCodeAt(i));
  }
  const text = Buffer.from(bytes).toString("utf8");
  return escapeName(text) === escaped ? text : undefined;
}

/**
 * A channel found at an address of a transport, by `Transport.channels()`.
 *
 * @example
 * const entries: ChannelEntry[] = unixTransport().channels();
 * console.log(entries.map((e) => e.name));
 */
export interface ChannelEntry {
  /** The channel's name; `undefined` when only a hash of it is in the address (a very long name). */
  name: string | undefined;
  /** Where it is (a socket file, a port file, a pipe). */
  address: string;
}

/**
 * The channels named by entries `files` of a folder (or pipe list) that follow the transports'
 * scheme: `c.<escaped name><suffix>` and `h.<hash><suffix>`. The heir's standby addresses are left
 * out (they belong to a channel listed already). For transports' `channels()`.
 *
 * @example
 * channelsFromNames(["c.jobs.sock", "c.jobs%00heir.sock", "notes.txt"], ".sock", (f) => `/run/oc/${f}`)
 * // [{ name: "jobs", address: "/run/oc/c.jobs.sock" }]
 */
export function channelsFromNames(files: readonly string[], suffix: string, address: (file: string) => string): ChannelEntry[] {
  const out: ChannelEntry[] = [];
  for (const file of files) {
    if (!file.endsWith(suffix)) continue;
    const stem = file.slice(0, file.length - suffix.length);
    if (stem.startsWith("c.")) {
      const name = unescapeName(stem.slice(2));
      if (name !== undefined && name.length > 0 && !name.endsWith(STANDBY_SUFFIX)) out.push({ name, address: address(file) });
    } else if (/^h\.[0-9a-f]{32}$/.test(stem)) {
      out.push({ name: undefined, address: address(file) });
    }
  }
  return out.sort((a, b) => (a.name ?? "\uffff").localeCompare(b.name ?? "\uffff"));
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
