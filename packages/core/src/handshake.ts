/**
 * The few bytes at the start of every connection, before the socket reaches the user.
 *
 * hello (member -> host):  "OCHN" | version u8 | kind u8 | name length u16be | name (UTF-8)
 * reply (host -> member):  "OCHN" | version u8 | status u8 | host pid u32be | server id (8 bytes)
 *
 * It lets a member tell our host from a stranger listening on the address, lets the host refuse a
 * member of another channel (hashed names can collide), lets versions evolve, and tells every
 * member which process hosts and which server instance it reached.
 */

/** Wire constants of the handshake. */
export const HANDSHAKE = {
  magic: Buffer.from("OCHN", "latin1"),
  version: 1,
  /** hello kinds */
  kindJoin: 1,
  /** reply statuses */
  statusOk: 0,
  statusWrongChannel: 1,
  statusUnsupported: 2,
  helloHeaderLength: 8,
  replyLength: 18,
  /** Longest channel name, in UTF-8 bytes. */
  maxNameBytes: 1024,
} as const;

/** What the host answered. */
export interface HandshakeReply {
  status: number;
  hostPid: number;
  serverId: Buffer;
}

/** A parsed hello. */
export interface Hello {
  version: number;
  kind: number;
  name: string;
}

/** Encodes the member's hello for channel `name`. */
export function encodeHello(name: string): Buffer {
  const nameBytes = Buffer.from(name, "utf8");
  const out = Buffer.allocUnsafe(HANDSHAKE.helloHeaderLength + nameBytes.length);
  HANDSHAKE.magic.copy(out, 0);
  out[4] = HANDSHAKE.version;
  out[5] = HANDSHAKE.kindJoin;
  out.writeUInt16BE(nameBytes.length, 6);
  nameBytes.copy(out, HANDSHAKE.helloHeaderLength);
  return out;
}

/** Encodes the host's reply. */
export function encodeReply(status: number, hostPid: number, serverId: Buffer): Buffer {
  const out = Buffer.alloc(HANDSHAKE.replyLength);
  HANDSHAKE.magic.copy(out, 0);
  out[4] = HANDSHAKE.version;
  out[5] = status;
  out.writeUInt32BE(hostPid >>> 0, 6);
  serverId.copy(out, 10, 0, 8);
  return out;
}

/** Outcome of feeding bytes to a parser: need more, done (with what followed), or invalid. */
export type ParseResult<T> =
  | { state: "more" }
  | { state: "done"; value: T; rest: Buffer }
  | { state: "invalid"; reason: string };

/**
 * Accumulates bytes until one complete message is there. Only the handshake's few bytes are
 * buffered; what follows it is handed back untouched as `rest`.
 */
abstract class Parser<T> {
  private buffered: Buffer = Buffer.alloc(0);

  /** Feeds a chunk; returns the outcome so far. */
  feed(chunk: Buffer): ParseResult<T> {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const magicBytes = Math.min(this.buffered.length, 4);
    if (!this.buffered.subarray(0, magicBytes).equals(HANDSHAKE.magic.subarray(0, magicBytes))) {
      return { state: "invalid", reason: "bad magic (not an open-channel peer)" };
    }
    return this.parse(this.buffered);
  }

  protected abstract parse(buf: Buffer): ParseResult<T>;
}

/** Parses a member's hello (host side). */
export class HelloParser extends Parser<Hello> {
  protected parse(buf: Buffer): ParseResult<Hello> {
    if (buf.length < HANDSHAKE.helloHeaderLength) return { state: "more" };
    const version = buf[4];
    const kind = buf[5];
    const nameLength = buf.readUInt16BE(6);
    if (nameLength === 0 || nameLength > HANDSHAKE.maxNameBytes) {
      return { state: "invalid", reason: `name length ${nameLength} out of range` };
    }
    const end = HANDSHAKE.helloHeaderLength + nameLength;
    if (buf.length < end) return { state: "more" };
    const name = buf.toString("utf8", HANDSHAKE.helloHeaderLength, end);
    return { state: "done", value: { version, kind, name }, rest: buf.subarray(end) };
  }
}

/** Parses the host's reply (member side). */
export class ReplyParser extends Parser<HandshakeReply> {
  protected parse(buf: Buffer): ParseResult<HandshakeReply> {
    if (buf.length < HANDSHAKE.replyLength) return { state: "more" };
    if (buf[4] !== HANDSHAKE.version) {
      return { state: "invalid", reason: `host speaks protocol version ${buf[4]}, this process ${HANDSHAKE.version}` };
    }
    const reply = { status: buf[5], hostPid: buf.readUInt32BE(6), serverId: Buffer.from(buf.subarray(10, 18)) };
    return { state: "done", value: reply, rest: buf.subarray(HANDSHAKE.replyLength) };
  }
}
