/**
 * The message layer's frames, on the channel's socket once its handshake is done:
 *
 * ```
 * frame:  length u32be (of what follows) | type u8 | payload
 * HELLO   m->h  session (16 bytes) | pid u32 | base u48 (every seq <= base is acknowledged) | topics (u16 count, then u16 length + UTF-8 each) | features u8 (FRAME.features; absent from members before it: 0)
 * MSG     m->h  seq u48 | flags u8 | body
 * REQ     m->h  seq u48 | flags u8 | body
 * PUB     m->h  seq u48 | flags u8 | topic (u16 length + UTF-8) | body
 * SUB     m->h  seq u48 | flags u8 | topic
 * UNSUB   m->h  seq u48 | flags u8 | topic
 * READ    m->h  count u48: the member has read that many RES and FAIL frames on this connection
 *               (sent only after a WELCOME that takes them)
 * BYE     m->h  (empty) the member closes: its session ends now (after a WELCOME with features.host)
 * HOLD    m->h  key (u16 length + UTF-8) | flags u8 (1: set; 0: released) | value body (after a WELCOME with features.host)
 * ANSWER  m->h  id u48 | flags u8 (1: ok) | body (a CALL's reply, empty for a message, or the error as { name, message, code })
 * ACK     h->m  seq u48: every frame up to seq has been handled (cumulative)
 * RES     h->m  seq u48 | flags u8 (1: ok; 2: also an ACK of seq; 4: the result was lost) | body (the result, or the error as { name, message, code })
 * FAIL    h->m  seq u48 | error body: the handler of a MSG or PUB threw
 * PUSH    h->m  body
 * EVENT   h->m  topic | publisher pid u32 | body
 * WELCOME h->m  features u8: what the host takes; sent after the hello of a member announcing
 *               FRAME.features.read, before anything else (a host before it sends none)
 * CALL    h->m  id u48 | flags u8 (1: redelivered; 2: a request) | body (only to a member announcing features.host)
 * ```
 *
 * A HELLO with FRAME.features.host goes on after its features byte: flags u8 (1: the messenger was
 * connected before, to this host or an earlier one) | since u48 (ms since the epoch when the
 * messenger first connected) | count u32 | count x (key (u16 length + UTF-8) | value
 * length u32 | value): what the member holds (see Messenger.hold), so that a new host has it
 * before any frame the member sends again. A host before it ignores these bytes.
 *
 * A host keeps the RES and FAIL frames it sent a member until the member has read them (READ), for
 * a member that reconnects to it without them; a member that sends no READ (before
 * FRAME.features.read) has them let go as before, up to the base of its next hello.
 */
import { argError } from "@open-channel/core";
export const FRAME = {
  hello: 1,
  msg: 2,
  req: 3,
  pub: 4,
  sub: 5,
  unsub: 6,
  read: 7,
  bye: 8,
  hold: 9,
  answer: 17,
  ack: 10,
  res: 11,
  fail: 12,
  push: 13,
  event: 14,
  welcome: 15,
  call: 16,
  /** flags of a sequenced frame */
  redelivered: 1,
  /** flags of a RES: the request succeeded (else the body is the error) */
  ok: 1,
  /** flags of a RES: every frame up to its seq has been handled (it stands for an ACK) */
  acks: 2,
  /**
   * flags of a RES: the host handled seq, but let go of its result before the member read it (the
   * body is an error with code ERR_OPEN_CHANNEL_REPLY_LOST); it answers a MSG or PUB too.
   */
  lost: 4,
  headerBytes: 5,
  /** Bytes of a sequenced frame before its own fields: header, seq, flags. */
  seqHeaderBytes: 5 + 6 + 1,
  /**
   * What the member of a HELLO understands (its last byte; a host ignores what it does not know,
   * so members and hosts of different versions can share a channel during a rolling restart).
   */
  features: {
    /** RES frames with the `acks` flag. */
    resAcks: 1,
    /** In a hello: the member sends READ frames once welcomed. In a WELCOME: the host takes them. */
    read: 2,
    /**
     * In a hello: the member takes CALL frames, and its hello carries `since` and what it holds.
     * In a WELCOME: the host takes BYE, HOLD and ANSWER frames.
     */
    host: 4,
  },
  /** flags of a CALL: sent before, on a connection that closed before its answer came. */
  callRedelivered: 1,
  /** flags of a CALL: a request (its answer carries a reply), not a message. */
  callRequest: 2,
  /** Bytes of a CALL or ANSWER before its body: header, id, flags. */
  callHeaderBytes: 5 + 6 + 1,
  /** An ACK: header and seq. */
  ackBytes: 5 + 6,
  sessionBytes: 16,
  /** Where a frame's type lies, from its start. */
  typeAt: 4,
  /** Where the seq of a sequenced, ACK, READ (its count), RES or FAIL frame lies. */
  seqAt: 5,
  /** Where the flags of a sequenced or RES frame lie. */
  flagsAt: 11,
} as const;

/** The kinds of sequenced frames a member sends. */
export type SequencedType = typeof FRAME.msg | typeof FRAME.req | typeof FRAME.pub | typeof FRAME.sub | typeof FRAME.unsub;

/*
 * Headers are read and written byte by byte, not with Buffer's readUInt32BE & co: indexing a
 * typed array compiles to a load, a Buffer method is a property lookup and a call per field
 * (and the caller has checked the bounds).
 */

/** The u32be at `buf[at]`. */
export function read32(buf: Buffer, at: number): number {
  return buf[at] * 0x1000000 + ((buf[at + 1] << 16) | (buf[at + 2] << 8) | buf[at + 3]);
}

/** The u48be at `buf[at]` (a sequence number). */
export function read48(buf: Buffer, at: number): number {
  return ((buf[at] << 8) | buf[at + 1]) * 0x100000000 + read32(buf, at + 2);
}

/** Writes `n` (below 2^32) as u32be at `buf[at]`. */
export function write32(buf: Buffer, at: number, n: number): void {
  buf[at] = n >>> 24;
  buf[at + 1] = n >>> 16;
  buf[at + 2] = n >>> 8;
  buf[at + 3] = n;
}

/** Writes `n` (a safe integer below 2^48) as u48be at `buf[at]`. */
export function write48(buf: Buffer, at: number, n: number): void {
  const high = Math.floor(n / 0x100000000);
  buf[at] = high >>> 8;
  buf[at + 1] = high;
  write32(buf, at + 2, n >>> 0);
}

/** A topic's bytes on the wire (UTF-8, at most 65535 bytes). */
export function topicBytes(topic: string): Buffer {
  const bytes = Buffer.from(topic, "utf8");
  if (bytes.length > 0xffff) throw argError("ERR_OUT_OF_RANGE", "topic", "at most 65535 UTF-8 bytes long", `${bytes.length} bytes`);
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
  write32(buf, start, end - start - 4);
  buf[start + FRAME.typeAt] = type;
  write48(buf, start + FRAME.seqAt, seq);
  buf[start + FRAME.flagsAt] = 0;
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
  buf[start + FRAME.flagsAt] |= FRAME.redelivered;
}

/** The type of the frame at `buf[start]`. */
export function frameType(buf: Buffer, start: number): number {
  return buf[start + FRAME.typeAt];
}

/** The seq of the frame at `buf[start]` (sequenced, ACK, RES, FAIL; a READ's count). */
export function frameSeq(buf: Buffer, start: number): number {
  return read48(buf, start + FRAME.seqAt);
}

/** The flags of the sequenced or RES frame at `buf[start]`. */
export function frameFlags(buf: Buffer, start: number): number {
  return buf[start + FRAME.flagsAt];
}

/** Sets `flag` on the RES frame `frame` (made by encodeResult). */
export function setResultFlag(frame: Buffer, flag: typeof FRAME.acks | typeof FRAME.lost): void {
  frame[FRAME.flagsAt] |= flag;
}

/** Where the body of the RES or FAIL frame at `start` begins (a FAIL has no flags). */
export function resultBodyAt(type: typeof FRAME.res | typeof FRAME.fail, start: number): number {
  return start + FRAME.seqAt + 6 + (type === FRAME.res ? 1 : 0);
}

/** The HELLO a member sends first on every connection; `since` and `held`: see FRAME.features.host. */
export function encodeHello(
  session: Buffer,
  pid: number,
  base: number,
  topics: Iterable<string>,
  since = 0,
  rejoining = false,
  held: readonly (readonly [Buffer, Uint8Array])[] = [],
): Buffer {
  const parts = [...topics].map(topicBytes);
  const topicsLength = 2 + parts.reduce((n, t) => n + 2 + t.length, 0);
  let heldLength = 1 + 6 + 4;
  for (const [key, value] of held) heldLength += 2 + key.length + 4 + value.length;
  const out = Buffer.allocUnsafe(FRAME.headerBytes + FRAME.sessionBytes + 4 + 6 + topicsLength + 1 + heldLength);
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
  out[at++] = FRAME.features.resAcks | FRAME.features.read | FRAME.features.host;
  out[at++] = rejoining ? 1 : 0;
  write48(out, at, since);
  write32(out, at + 6, held.length);
  at += 10;
  for (const [key, value] of held) {
    out.writeUInt16BE(key.length, at);
    key.copy(out, at + 2);
    at += 2 + key.length;
    write32(out, at, value.length);
    out.set(value, at + 4);
    at += 4 + value.length;
  }
  return out;
}

/** What a member's HELLO says. */
export interface HelloFields {
  /** The session id, hex. */
  session: string;
  pid: number;
  /** Every seq up to this one the member has seen acknowledged. */
  base: number;
  topics: string[];
  /** FRAME.features bits (0 from a member before the features byte). */
  features: number;
  /** When the messenger first connected (ms since the epoch; 0 from a member before FRAME.features.host). */
  since: number;
  /** The messenger was connected before (to this host or an earlier one). */
  rejoining: boolean;
  /** What the member holds: key to the value's bytes (the codec's). */
  held: Map<string, Buffer>;
}

/** Reads a HELLO frame (the whole frame, from its length). Throws RangeError on a short one. */
export function decodeHello(frame: Buffer): HelloFields {
  const session = frame.toString("hex", FRAME.headerBytes, FRAME.headerBytes + FRAME.sessionBytes);
  let at = FRAME.headerBytes + FRAME.sessionBytes;
  const pid = frame.readUInt32BE(at);
  const base = frame.readUIntBE(at + 4, 6);
  at += 10;
  const count = frame.readUInt16BE(at);
  at += 2;
  const topics: string[] = [];
  for (let i = 0; i < count; i++) {
    const t = readTopic(frame, at);
    topics.push(t.topic);
    at = t.next;
  }
  // A member from before the features byte sends none.
  const features = at < frame.length ? frame[at] : 0;
  let since = 0;
  let rejoining = false;
  const held = new Map<string, Buffer>();
  if ((features & FRAME.features.host) !== 0) {
    at++;
    if (at + 11 > frame.length) throw new RangeError("a hello cut short");
    rejoining = (frame[at++] & 1) !== 0;
    since = read48(frame, at);
    const entries = read32(frame, at + 6);
    at += 10;
    for (let i = 0; i < entries; i++) {
      const k = readTopic(frame, at);
      if (k.next + 4 > frame.length) throw new RangeError("a held value runs past the hello");
      const length = read32(frame, k.next);
      const valueAt = k.next + 4;
      if (valueAt + length > frame.length) throw new RangeError("a held value runs past the hello");
      // Copied: the frame may lie in a buffer read into again.
      held.set(k.topic, Buffer.from(frame.subarray(valueAt, valueAt + length)));
      at = valueAt + length;
    }
  }
  return { session, pid, base, topics, features, since, rejoining, held };
}

/** The features of the WELCOME frame at `buf[start, end)` (0 if it carries none). */
export function welcomeFeatures(buf: Buffer, start: number, end: number): number {
  return end > start + FRAME.headerBytes ? buf[start + FRAME.headerBytes] : 0;
}

/** The count of the READ frame at `buf[start, end)`. Throws on a frame of the wrong size. */
export function decodeRead(buf: Buffer, start: number, end: number): number {
  if (end - start !== FRAME.ackBytes) throw new Error("a READ frame of the wrong size");
  return read48(buf, start + FRAME.seqAt);
}

/** The head of the EVENT frame at `buf[start, end)`: its topic, the publisher's pid and where the body starts; undefined if cut short. */
export function decodeEventHead(buf: Buffer, start: number, end: number): { topic: string; pid: number; bodyAt: number } | undefined {
  const { topic, next } = readTopic(buf, start + FRAME.headerBytes, end);
  if (next + 4 > end) return undefined;
  return { topic, pid: read32(buf, next), bodyAt: next + 4 };
}

/** The WELCOME a host sends a member that announced FRAME.features.read. */
export const WELCOME: Buffer = Buffer.from([0, 0, 0, 2, FRAME.welcome, FRAME.features.read | FRAME.features.host]);

/** A BYE: the member closes. */
export const BYE: Buffer = Buffer.from([0, 0, 0, 1, FRAME.bye]);

/** A HOLD of `key` (its UTF-8 bytes) set to `value` (the codec's bytes), or released (`value` undefined). */
export function encodeHold(key: Buffer, value: Uint8Array | undefined): Buffer {
  const out = Buffer.allocUnsafe(FRAME.headerBytes + 2 + key.length + 1 + (value === undefined ? 0 : value.length));
  write32(out, 0, out.length - 4);
  out[4] = FRAME.hold;
  out.writeUInt16BE(key.length, 5);
  key.copy(out, 7);
  out[7 + key.length] = value === undefined ? 0 : 1;
  if (value !== undefined) out.set(value, 8 + key.length);
  return out;
}

/** What the HOLD frame at `buf[start, end)` says (the value copied out). Throws RangeError on a short one. */
export function decodeHold(buf: Buffer, start: number, end: number): { key: string; value: Buffer | undefined } {
  const { topic: key, next } = readTopic(buf, start + FRAME.headerBytes, end);
  if (next >= end) throw new RangeError("a HOLD frame cut short");
  return { key, value: buf[next] === 0 ? undefined : Buffer.from(buf.subarray(next + 1, end)) };
}

/** A CALL (`type` FRAME.call) or ANSWER (FRAME.answer) of `id` with `flags` and `body`. */
export function encodeCall(type: typeof FRAME.call | typeof FRAME.answer, id: number, flags: number, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME.callHeaderBytes + body.length);
  write32(out, 0, out.length - 4);
  out[4] = type;
  write48(out, 5, id);
  out[11] = flags;
  out.set(body, FRAME.callHeaderBytes);
  return out;
}

/** A READ of `count` results. */
export function encodeRead(count: number): Buffer {
  const out = Buffer.allocUnsafe(FRAME.ackBytes);
  write32(out, 0, FRAME.ackBytes - 4);
  out[4] = FRAME.read;
  write48(out, 5, count);
  return out;
}

/** Writes an ACK of `seq` at `buf[at]` (FRAME.ackBytes bytes). */
export function writeAck(buf: Buffer, at: number, seq: number): void {
  write32(buf, at, FRAME.ackBytes - 4);
  buf[at + 4] = FRAME.ack;
  write48(buf, at + 5, seq);
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
  write32(frame, 0, frame.length - 4);
  frame[FRAME.typeAt] = type;
  write48(frame, FRAME.seqAt, seq);
  if (type === FRAME.res) frame[FRAME.flagsAt] = ok ? FRAME.ok : 0;
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

/** Reads a topic at `at` (of a frame ending at `end`): the topic and where what follows starts. */
export function readTopic(frame: Buffer, at: number, end = frame.length): { topic: string; next: number } {
  if (at + 2 > end) throw new RangeError("topic runs past the frame");
  const length = frame.readUInt16BE(at);
  if (at + 2 + length > end) throw new RangeError("topic runs past the frame");
  return { topic: frame.toString("utf8", at + 2, at + 2 + length), next: at + 2 + length };
}

/**
 * Splits a byte stream into frames. A frame that lies whole in what was fed is handed out where it
 * lies (no copy); a frame split between feeds is put together in a buffer of its own, allocated
 * once its header is known and filled as its bytes come (one copy, whatever the number of chunks).
 * Nothing of what was fed is kept, so the caller may reuse its buffer for the next read. A header
 * claiming more than `maxFrameBytes` is an error: the caller closes the connection.
 */
export class FrameReader {
  /** The split frame being put together (its header alone while that is incomplete). */
  private partial: Buffer | undefined;
  /** Bytes of `partial` filled so far. */
  private filled = 0;

  constructor(private readonly maxFrameBytes: number) {}

  /** Drops a partial frame (the connection it came from is gone). */
  reset(): void {
    this.partial = undefined;
    this.filled = 0;
  }

  /** Feeds a chunk (see feedRange). */
  feed(chunk: Buffer, onFrame: (buf: Buffer, start: number, end: number) => void): void {
    this.feedRange(chunk, 0, chunk.length, onFrame);
  }

  /**
   * Feeds `buf[start, end)`; calls `onFrame(buf, start, end)` for each complete frame (its type at
   * `buf[start + 4]`; a range, not a Buffer: no object made per frame). Throws on a bad header.
   */
  feedRange(buf: Buffer, start: number, end: number, onFrame: (buf: Buffer, start: number, end: number) => void): void {
    let at = start;
    let p = this.partial;
    if (p !== undefined) {
      let n = Math.min(p.length - this.filled, end - at);
      buf.copy(p, this.filled, at, at + n);
      this.filled += n;
      at += n;
      if (p.length === 4 && this.filled === 4) {
        // The header is complete: the frame's own buffer, the size of the whole frame.
        const whole = Buffer.allocUnsafe(4 + this.checked(read32(p, 0)));
        p.copy(whole, 0, 0, 4);
        this.partial = p = whole;
        n = Math.min(whole.length - 4, end - at);
        buf.copy(whole, 4, at, at + n);
        this.filled += n;
        at += n;
      }
      if (this.filled < p.length) return;
      this.partial = undefined;
      this.filled = 0;
      onFrame(p, 0, p.length);
    }
    while (end - at >= 4) {
      const length = this.checked(read32(buf, at));
      if (end - at < 4 + length) break;
      onFrame(buf, at, at + 4 + length);
      at += 4 + length;
    }
    if (at < end) {
      const rest = end - at;
      const partial = Buffer.allocUnsafe(rest >= 4 ? 4 + read32(buf, at) : 4);
      buf.copy(partial, 0, at, end);
      this.partial = partial;
      this.filled = rest;
    }
  }

  /** `length` from a frame's header, if within the limit. */
  private checked(length: number): number {
    if (length < 1 || length > this.maxFrameBytes) {
      throw new RangeError(`a frame header claims ${length} bytes (the limit is ${this.maxFrameBytes})`);
    }
    return length;
  }
}
