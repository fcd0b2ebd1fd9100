import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { escapeName, hashName } from "@open-channel/core";

/**
 * What a host publishes: where it listens, and who it is.
 *
 * @example
 * const record: PortRecord = JSON.parse(fs.readFileSync(tcpTransport().portFile("jobs"), "utf8"));
 * console.log(`host pid ${record.pid} listens on ${record.host}:${record.port}`);
 */
export interface PortRecord {
  /** The loopback address: `"127.0.0.1"` or `"::1"`. */
  host: string;
  /** The TCP port the host listens on. */
  port: number;
  /** The pid of the hosting process. */
  pid: number;
  /** Random per listen: tells two records at the same port apart. */
  id: string;
}

const MAX_NAME_BYTES = 200;

/**
 * The port file name of a channel: `c.<escaped name>.port`, or `h.<sha256 prefix>.port` when the
 * escaped name would be too long for a file name. Safe for any string (no `/`, no `..`).
 *
 * @example
 * portFileName("my app") // "c.my%20app.port"
 */
export function portFileName(channel: string): string {
  const encoded = escapeName(channel);
  if (Buffer.byteLength(encoded) <= MAX_NAME_BYTES) return `c.${encoded}.port`;
  return `h.${hashName(channel)}.port`;
}

/** Reads the raw port file; `undefined` when there is none. */
export function readRaw(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** Parses a port file's content; `undefined` when it is not a valid record. */
export function parseRecord(raw: string): PortRecord | undefined {
  try {
    const r = JSON.parse(raw) as Partial<PortRecord>;
    if ((r.host === "127.0.0.1" || r.host === "::1") && Number.isInteger(r.port) && (r.port as number) > 0 && (r.port as number) < 65536) {
      return { host: r.host, port: r.port as number, pid: Number(r.pid), id: String(r.id) };
    }
  } catch {
    // not JSON: a torn or foreign file
  }
  return undefined;
}

/**
 * Publishes `record` at `file` only if no record is there: written in full to a temporary file,
 * then hard-linked into place, which fails with `EEXIST` when the file exists. Readers never see a
 * half-written record, and of several publishers exactly one wins.
 */
export function publishExclusive(file: string, record: PortRecord): void {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  fs.writeFileSync(temp, JSON.stringify(record), { mode: 0o600, flag: "wx" });
  try {
    fs.linkSync(temp, file);
  } finally {
    fs.rmSync(temp, { force: true });
  }
}
