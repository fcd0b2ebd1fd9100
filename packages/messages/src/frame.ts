/**
 * The message layer's frames, on the channel's socket once its handshake is done:
 *
 * ```
 * frame:  length u32be (of what follows) | type u8 | payload
 * HELLO   m->h  session (16 bytes) | pid u32 | base u48 (every seq <= base is acknowledged) | topics (u16 count, then u16 length + UTF-8 each)
 * MSG     m->h  seq u48 | flags u8 | body
 * REQ     m->h  seq u48 | flags u8 | body
 * PUB     m->h  seq u48 | flags u8 | topic (u16 length + UTF-8) | body
 * SUB     m->h  seq u48 | flags u8 | topic
 * UNSUB   m->h  seq u48 | flags u8 | topic
 * ACK     h->m  seq u48: every frame up to seq has been handled (cumulative)
 * RES     h->m  seq u48 | ok u8 | body (the result, or the error as { name, message, code })
 * FAIL    h->m  seq u48 | error body: the handler of a MSG or PUB threw
 * PUSH    h->m  body
 * EVENT   h->m  topic | publisher pid u32 | body
 * ```
 */
export const FRAME = {
  hello: 1,
  msg: 2,
  req: 3,
  pub: 4,
  sub: 5,
  unsub: 6,
  ack: 10,
  res: 11,
  fail: 12,
  push: 13,
  event: 14,
  /** flags */
  redelivered: 1,
  headerBytes: 5,
  /** Bytes of a sequenced frame before its own fields: header, seq, flags. */
  seqHeaderBytes: 5 + 6 + 1,
  sessionBytes: 16,
} as const;

/** The kinds of sequenced frames a member sends. */
export type SequencedType = typeof FRAME.msg | typeof FRAME.req | typeof FRAME.pub | typeof FRAME.sub | typeof FRAME.unsub;

/** The u48be at `buf[at]` (a sequence number). */
export function read48(buf: Buffer, at: number): number {
  return buf.readUInt16BE(at) * 0x100000000 + buf.readUInt32BE(at + 2);
}

/** A topic's bytes on the wire (UTF-8, at most 65535 bytes). */
export function topicBytes(topic: string): Buffer {
  const bytes = Buffer.from(topic, "utf8");
  if (bytes.length > 0xffff) throw new RangeError(`topic is ${bytes.length} bytes long (at most 65535)`);
  return bytes;
}

/** Bytes of a sequenced frame before its body. */
export function sequencedHeadBytes(topic: Buffer | undefined): number {
  return topic === undefined ? FRAME.seqHeaderBytes : FRAME.seqHeaderBytes + 2 + topic.length;
}

/** Fills in the head of the sequenced frame at `buf[start, end)` (its body is in place already). */
export function writeSequencedHead(
  buf: Buffer,
  start: number,
  end: number,
  type: SequencedType,
  seq: number,
  topic: Buffer | undefined,
): void {
  // Byte by byte: no range checks (the caller made the room), called for every message.
  const length = end - start - 4;
  buf[start] = length >>> 24;
  buf[start + 1] = length >>> 16;
  buf[start + 2] = length >>> 8;
  buf[start + 3] = length;
  buf[start + 4] = type;
  // seq as u48be (a safe integer below 2^48 by construction).
  const high = Math.floor(seq / 0x100000000);
  const low = seq >>> 0;
  buf[start + 5] = high >>> 8;
  buf[start + 6] = high;
  buf[start + 7] = low >>> 24;
  buf[start + 8] = low >>> 16;
  buf[start + 9] = low >>> 8;
  buf[start + 10] = low;
  buf[start + 11] = 0;
  if (topic !== undefined) {
    buf.writeUInt16BE(topic.length, start + FRAME.seqHeaderBytes);
    topic.copy(buf, start + FRAME.seqHeaderBytes + 2);
  }
}

/** A sequenced frame (MSG, REQ, PUB, SUB, UNSUB); the flags byte can be changed in place later. */
export function encodeSequenced(type: SequencedType, seq: number, body: Uint8Array | undefined, topic?: string): Buffer {
  const t = topic === undefined ? undefined : topicBytes(topic);
  const head = sequencedHeadBytes(t);
  const out = Buffer.allocUnsafe(head + (body === undefined ? 0 : body.length));
  if (body !== undefined) out.set(body, head);
  writeSequencedHead(out, 0, out.length, type, seq, t);
  return out;
}

/** Marks the sequenced frame at `buf[start]` as sent before (it goes again after a reconnect). */
export function markRedelivered(buf: Buffer, start: number): void {
  buf[start + 11] |= FRAME.redelivered;
}

/** The HELLO a member sends first on every connection. */
export function encodeHello(session: Buffer, pid: number, base: number, topics: Iterable<string>): Buffer {
  const parts = [...topics].map(topicBytes);
  const topicsLength = 2 + parts.reduce((n, t) => n + 2 + t.length, 0);
  const out = Buffer.allocUnsafe(FRAME.headerBytes + FRAME.sessionBytes + 4 + 6 + topicsLength);
  out.writeUInt32BE(out.length - 4, 0);
  out[4] = FRAME.hello;
  session.copy(out, 5);
  let at = 5 + FRAME.sessionBytes;
  out.writeUInt32BE(pid >>> 0, at);
  out.writeUIntBE(base, at + 4, 6);
  at += 10;
  out.writeUInt16BE(parts.length, at);
  at += 2;
  for (const t of parts) {
    out.writeUInt16BE(t.length, at);
    t.copy(out, at + 2);
    at += 2 + t.length;
  }
  return out;
}

/** ACK of every frame up to `seq`. */
export function encodeAck(seq: number): Buffer {
  const out = Buffer.allocUnsafe(FRAME.headerBytes + 6);
  out.writeUInt32BE(out.length - 4, 0);
  out[4] = FRAME.ack;
  out.writeUIntBE(seq, 5, 6);
  return out;
}

/** RES (with `ok`) or FAIL (without). */
export function encodeResult(type: typeof FRAME.res | typeof FRAME.fail, seq: number, ok: boolean, body: Uint8Array): Buffer {
  const head = type === FRAME.res ? FRAME.headerBytes + 7 : FRAME.headerBytes + 6;
  const out = Buffer.allocUnsafe(head + body.length);
  out.set(body, head);
  writeResultHead(out, type, seq, ok);
  return out;
}

/** Fills in the head of a RES or FAIL frame whose body is in place. */
export function writeResultHead(frame: Buffer, type: typeof FRAME.res | typeof FRAME.fail, seq: number, ok: boolean): void {
  frame.writeUInt32BE(frame.length - 4, 0);
  frame[4] = type;
  frame.writeUIntBE(seq, 5, 6);
  if (type === FRAME.res) frame[11] = ok ? 1 : 0;
}

/** PUSH of `body` to one member. */
export function encodePush(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME.headerBytes + body.length);
  out.writeUInt32BE(out.length - 4, 0);
  out[4] = FRAME.push;
  out.set(body, FRAME.headerBytes);
  return out;
}

/** EVENT: what a publisher sent to `topic`. */
export function encodeEvent(topic: string, pid: number, body: Uint8Array): Buffer {
  const t = topicBytes(topic);
  const out = Buffer.allocUnsafe(FRAME.headerBytes + 2 + t.length + 4 + body.length);
  out.writeUInt32BE(out.length - 4, 0);
  out[4] = FRAME.event;
  out.writeUInt16BE(t.length, 5);
  t.copy(out, 7);
  out.writeUInt32BE(pid >>> 0, 7 + t.length);
  out.set(body, 11 + t.length);
  return out;
}

/** Reads a topic at `at`: the topic and where what follows starts. */
export function readTopic(frame: Buffer, at: number): { topic: string; next: number } {
  const length = frame.readUInt16BE(at);
  if (at + 2 + length > frame.length) throw new RangeError("topic runs past the frame");
  return { topic: frame.toString("utf8", at + 2, at + 2 + length), next: at + 2 + length };
}

/**
 * Splits a byte stream into frames. Frames are handed out as views into the received chunks (no
 * copy) when a chunk holds them whole. A header claiming more than `maxFrameBytes` is an error:
 * the caller closes the connection.
 */
export class FrameReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes the partial frame in `pending` needs before it can be handled (4: its header). */
  private needed = 0;

  constructor(private readonly maxFrameBytes: number) {}

  /** Drops a partial frame (the connection it came from is gone). */
  reset(): void {
    this.pending = [];
    this.pendingBytes = 0;
    this.needed = 0;
  }

  /**
   * Feeds a chunk; calls `onFrame(buf, start, end)` for each complete frame (its type at
   * `buf[start + 4]`; a range, not a Buffer: no object made per frame). Throws on a bad header.
   * A frame that spans chunks is put together once, when its last byte has come (not once a chunk).
   */
  feed(chunk: Buffer, onFrame: (buf: Buffer, start: number, end: number) => void): void {
    let buf: Buffer;
    if (this.pendingBytes === 0) buf = chunk;
    else {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.pendingBytes < this.needed) return;
      buf = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
    }
    let at = 0;
    while (buf.length - at >= 4) {
      const length = buf.readUInt32BE(at);
      if (length < 1 || length > this.maxFrameBytes) {
        throw new RangeError(`a frame header claims ${length} bytes (the limit is ${this.maxFrameBytes})`);
      }
      if (buf.length - at < 4 + length) break;
      onFrame(buf, at, at + 4 + length);
      at += 4 + length;
    }
    if (at < buf.length) {
      const rest = buf.subarray(at);
      this.pending = [rest];
      this.pendingBytes = rest.length;
      this.needed = rest.length >= 4 ? 4 + rest.readUInt32BE(0) : 4;
    }
  }
}
