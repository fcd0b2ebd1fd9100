import * as v8 from "node:v8";
import { openChannelError } from "@open-channel/core";
import { deserialize } from "./deserialize";
import { Slab } from "./slab";

/*
 * The default codec: what `v8.serialize` + `v8.deserialize` give (the structured clone algorithm),
 * with a fast path for plain data written here in JavaScript. `v8.serialize` costs a few
 * microseconds per call whatever the value (it builds a serializer object in C++ each time); a
 * message of a few fields costs a few hundred nanoseconds here.
 *
 * Wire: the first byte says which path wrote the body. 0xFF is where every `v8.serialize` output
 * starts (its version tag): that body goes to `v8.deserialize` whole. FAST (0x01) is followed by one
 * value below. The fast path takes only what it can give back exactly as `v8.deserialize` would:
 * strings (lone surrogates too), numbers (-0 and NaN too), booleans, null, undefined, plain objects
 * (prototype `Object.prototype`), dense arrays with no named properties, Buffers, Uint8Arrays and
 * Dates, with no object reached twice (v8 keeps such identity; cycles included). Anything else
 * (Map, Set, BigInt, RegExp, Error, other typed arrays, class instances, sparse arrays...) leaves the
 * fast path for `v8.serialize`, which also throws the same DataCloneError for what cannot be cloned.
 */

const FAST = 0x01;

const T_UNDEFINED = 0;
const T_NULL = 1;
const T_FALSE = 2;
const T_TRUE = 3;
const T_INT32 = 4;
const T_FLOAT64 = 5;
const T_ASCII = 6;
const T_UTF8 = 7;
const T_UTF16 = 8;
const T_ARRAY = 9;
const T_OBJECT = 10;
const T_BUFFER = 11;
const T_UINT8ARRAY = 12;
const T_DATE = 13;

/** Thrown (not an Error: no stack to capture) to leave the fast path for `v8.serialize`. */
const FALLBACK = Symbol("fallback");
/** Arrays longer than this go to `v8.serialize` (checking them for named properties costs more than v8). */
const MAX_FAST_ARRAY = 256;
const MAX_DEPTH = 64;
const SCRATCH_BYTES = 8 * 1024;
/** A scratch grown past this for one big body is let go afterwards. */
const KEEP_SCRATCH_BYTES = 256 * 1024;

/** Node's own string writers and readers (on every Buffer; not in its type declarations). */
interface NodeBuffer extends Buffer {
  utf8Write(s: string, offset: number): number;
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
  ucs2Slice(start: number, end: number): string;
}

/** ES2024's `String.prototype.isWellFormed` (Node 20 has it; the compiler's lib is older). */
interface WellFormed {
  isWellFormed(): boolean;
}

/*
 * Node's string writers and readers, taken once from Buffer.prototype and called with the buffer
 * as `this`: looked up on each buffer (`out.utf8Write`), they were generic property loads per
 * string in the compiled code.
 */
const { utf8Write, latin1Slice, utf8Slice, ucs2Slice } = Buffer.prototype as unknown as NodeBuffer;

const EMPTY = Buffer.alloc(0);
/** Where this encoding writes: a slab's buffer (or the scratch), from `base` (its frame's start) to `pos`. */
let out: NodeBuffer = Buffer.alloc(0) as NodeBuffer;
let base = 0;
let pos = 0;
let encoding = false;
/** The size of the slab being written to: what a full one is replaced with. */
let slabSize = SCRATCH_BYTES;
/** Every object met so far in this encoding: a list while short, a set beyond. */
const seenList: Array<object | undefined> = [];
let seenCount = 0;
const seen = new Set<object>();
const SEEN_LIST_MAX = 16;

function need(n: number): void {
  if (pos + n <= out.length) return;
  grow(n);
}

function grow(n: number): void {
  // The frame so far moves to a new buffer (the slab's earlier frames stay): a whole slab's size,
  // so that the frames after it follow it there, or more for a big one.
  const grown = Buffer.allocUnsafeSlow(Math.max(slabSize, 2 * (pos - base + n))) as NodeBuffer;
  out.copy(grown, 0, base, pos);
  pos -= base;
  base = 0;
  out = grown;
}

function writeLength(n: number): void {
  if (n < 0xff) out[pos++] = n;
  else {
    out[pos] = 0xff;
    out.writeUInt32LE(n, pos + 1);
    pos += 5;
  }
}

/** Strings up to this many units are written and read by a loop here (a call into Node costs more). */
const SHORT_STRING = 16;

function writeString(s: string): void {
  const length = s.length;
  if (length <= SHORT_STRING) {
    if (pos + 2 + length > out.length) need(2 + length);
    // Locals: the loop reads no module state.
    const o = out;
    const p = pos + 2;
    let i = 0;
    for (; i < length; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) break;
      o[p + i] = c;
    }
    if (i === length) {
      o[p - 2] = T_ASCII;
      o[p - 1] = length;
      pos = p + length;
      return;
    }
  }
  // Under 85 UTF-16 units the UTF-8 bytes (3 at most per unit) fit a one-byte length.
  const short = length < 85;
  const head = short ? 2 : 6;
  // Room for the worst case (3 bytes a unit) when that is little, the exact count for long strings.
  need(head + (length <= 1024 ? length * 3 : Buffer.byteLength(s, "utf8")));
  let o = out;
  let p = pos;
  let at = p + head;
  let bytes = utf8Write.call(o, s, at);
  let tag = T_ASCII;
  if (bytes !== length) {
    if ((s as unknown as WellFormed).isWellFormed()) tag = T_UTF8;
    else {
      // UTF-8 cannot carry a lone surrogate: UTF-16 keeps the string as it is.
      tag = T_UTF16;
      need(head + length * 2);
      o = out;
      p = pos;
      at = p + head;
      bytes = o.write(s, at, "utf16le");
    }
  }
  o[p] = tag;
  if (short) o[p + 1] = bytes;
  else {
    o[p + 1] = 0xff;
    o.writeUInt32LE(bytes, p + 2);
  }
  pos = at + bytes;
}

function writeNumber(n: number): void {
  if (pos + 9 > out.length) need(9);
  if ((n | 0) === n && (n !== 0 || 1 / n > 0)) {
    const o = out;
    const p = pos;
    o[p] = T_INT32;
    // Little-endian by hand: a typed array store keeps the low 8 bits.
    o[p + 1] = n;
    o[p + 2] = n >> 8;
    o[p + 3] = n >> 16;
    o[p + 4] = n >> 24;
    pos = p + 5;
  } else {
    out[pos] = T_FLOAT64;
    out.writeDoubleLE(n, pos + 1);
    pos += 9;
  }
}

function writeBytes(tag: number, bytes: Uint8Array): void {
  need(6 + bytes.length);
  out[pos++] = tag;
  writeLength(bytes.length);
  out.set(bytes, pos);
  pos += bytes.length;
}

/** Notes an object met; one met before (a cycle, or a value reached twice) leaves the fast path. */
function enter(o: object): void {
  const n = seenCount;
  if (n < SEEN_LIST_MAX) {
    for (let i = 0; i < n; i++) if (seenList[i] === o) throw FALLBACK;
    seenList[seenCount++] = o;
    return;
  }
  if (seen.size === 0) for (let i = 0; i < n; i++) seen.add(seenList[i] as object);
  if (seen.has(o)) throw FALLBACK;
  seen.add(o);
}

function writeValue(v: unknown, depth: number): void {
  // typeof compared in place (not a switch on its string): each test compiles to a type check.
  if (typeof v === "string") writeString(v);
  else if (typeof v === "number") writeNumber(v);
  else if (typeof v === "object") {
    if (v === null) {
      need(1);
      out[pos++] = T_NULL;
    } else writeObject(v, depth);
  } else if (typeof v === "boolean") {
    need(1);
    out[pos++] = v ? T_TRUE : T_FALSE;
  } else if (v === undefined) {
    need(1);
    out[pos++] = T_UNDEFINED;
  } else throw FALLBACK;
}

function writeObject(o: object, depth: number): void {
  if (depth >= MAX_DEPTH) throw FALLBACK;
  // Object.getPrototypeOf, not the `__proto__` accessor (cheaper in compiled code): an own property
  // named "__proto__" would read as the prototype, and a Date given one of Object.prototype, or a
  // plain object given one of Date.prototype, would take the wrong path.
  const proto = Object.getPrototypeOf(o) as unknown;
  if (proto === Object.prototype) {
    // The body itself is not noted (a store per message): a cycle back to it goes round until
    // MAX_DEPTH, and then v8's way, as any cycle; an object met twice below it is still caught.
    if (depth > 0) enter(o);
    need(2);
    out[pos] = T_OBJECT;
    // The count goes before the pairs, known after them: its byte is filled in at the end (where
    // the frame sits then: a grown buffer moves it, `base` with it). for-in, not Object.keys: it
    // makes no array and V8 reads each value by its slot (encodeStructuredInto checked that
    // Object.prototype has nothing enumerable, so only own keys come).
    const countAt = pos + 1 - base;
    pos += 2;
    let count = 0;
    for (const key in o) {
      // More keys than one byte counts: rare and big, v8 does it.
      if (++count === 0xff) throw FALLBACK;
      writeString(key);
      writeValue((o as Record<string, unknown>)[key], depth + 1);
    }
    out[base + countAt] = count;
  } else if (proto === Array.prototype) {
    const a = o as unknown[];
    const length = a.length;
    // A hole or a named property: v8 keeps them, this path would not.
    if (length > MAX_FAST_ARRAY || Object.keys(a).length !== length) throw FALLBACK;
    enter(o);
    need(6);
    out[pos++] = T_ARRAY;
    writeLength(length);
    for (let i = 0; i < length; i++) {
      const item = a[i];
      if (item === undefined && !(i in a)) throw FALLBACK;
      writeValue(item, depth + 1);
    }
  } else if (proto === Buffer.prototype) {
    enter(o);
    writeBytes(T_BUFFER, o as Buffer);
  } else if (proto === Uint8Array.prototype) {
    enter(o);
    writeBytes(T_UINT8ARRAY, o as Uint8Array);
  } else if (proto === Date.prototype) {
    enter(o);
    need(9);
    out[pos] = T_DATE;
    out.writeDoubleLE((o as Date).getTime(), pos + 1);
    pos += 9;
  } else throw FALLBACK;
}

/**
 * Appends to `slab` a frame of `head` bytes (left for the caller to fill) and then the encoding of
 * `value`; returns where the frame starts in `slab.buf` (it ends at `slab.at`). When the slab has
 * not enough room, `slab.buf` becomes a new buffer holding this frame.
 */
export function encodeStructuredInto(value: unknown, slab: Slab, head: number): number {
  // A getter that itself sends while this one encodes: the encoder's state is taken, so v8 it is.
  if (encoding) return slab.put(v8.serialize(value), head);
  // Something enumerable on Object.prototype would come out of every for-in: v8 then.
  for (const _ in Object.prototype) return slab.put(v8.serialize(value), head);
  encoding = true;
  slabSize = slab.size;
  out = slab.buf as NodeBuffer;
  base = slab.at;
  pos = base + head;
  try {
    need(1);
    out[pos++] = FAST;
    writeValue(value, 0);
    slab.buf = out;
    slab.at = pos;
    return base;
  } catch (err) {
    if (err !== FALLBACK) throw err;
    return slab.put(v8.serialize(value), head);
  } finally {
    encoding = false;
    out = EMPTY as NodeBuffer;
    // Let go of the objects met (the list is reused).
    for (let i = 0; i < seenCount; i++) seenList[i] = undefined;
    seenCount = 0;
    if (seen.size > 0) seen.clear();
  }
}

/** Where encodeStructured() writes before its copy; let go when one big body grew it. */
const scratch = new Slab(SCRATCH_BYTES);

/** The bytes of `value`: the fast path's, or `v8.serialize`'s. */
export function encodeStructured(value: unknown): Buffer {
  if (encoding) return v8.serialize(value);
  scratch.at = 0;
  const start = encodeStructuredInto(value, scratch, 0);
  const bytes = Buffer.allocUnsafe(scratch.at - start);
  scratch.buf.copy(bytes, 0, start, scratch.at);
  if (scratch.buf.length > KEEP_SCRATCH_BYTES) scratch.buf = EMPTY;
  return bytes;
}

let src: NodeBuffer = Buffer.alloc(0) as NodeBuffer;
let at = 0;
/** Where the body being decoded ends in `src`. */
let srcEnd = 0;

function corrupt(): never {
  throw openChannelError("ERR_OPEN_CHANNEL_BAD_BODY", {});
}

function readLength(): number {
  if (at >= srcEnd) corrupt();
  const n = src[at++];
  if (n !== 0xff) return n;
  readEnd(4);
  const long = src.readUInt32LE(at);
  at += 4;
  return long;
}

function readEnd(n: number): number {
  const end = at + n;
  if (end > srcEnd) corrupt();
  return end;
}

function readString(tag: number): string {
  const end = readEnd(readLength());
  const start = at;
  at = end;
  if (tag === T_ASCII) return end - start <= SHORT_STRING ? shortAscii(start, end) : latin1Slice.call(src, start, end);
  if (tag === T_UTF8) return utf8Slice.call(src, start, end);
  if (tag === T_UTF16) return ucs2Slice.call(src, start, end);
  return corrupt();
}

function shortAscii(start: number, end: number): string {
  const b = src;
  switch (end - start) {
    case 0:
      return "";
    case 1:
      return String.fromCharCode(b[start]);
    case 2:
      return String.fromCharCode(b[start], b[start + 1]);
    case 3:
      return String.fromCharCode(b[start], b[start + 1], b[start + 2]);
    case 4:
      return String.fromCharCode(b[start], b[start + 1], b[start + 2], b[start + 3]);
    default: {
      let s = String.fromCharCode(b[start], b[start + 1], b[start + 2], b[start + 3]);
      for (let i = start + 4; i < end; i++) s += String.fromCharCode(b[i]);
      return s;
    }
  }
}

/**
 * Object keys seen before, by a hash of their bytes: the same key string comes back each time, so
 * V8 finds it as a known property name instead of looking up a new string for every message.
 */
const keyCache = new Map<number, string>();
const KEY_CACHE_SIZE = 4096;

function readKey(): string {
  if (at + 1 >= srcEnd) corrupt();
  const tag = src[at++];
  if (tag !== T_ASCII) return readString(tag);
  const length = src[at];
  if (length > SHORT_STRING * 2) return readString(tag);
  const start = at + 1;
  const end = start + length;
  if (end > srcEnd) corrupt();
  const b = src;
  let h = length;
  for (let i = start; i < end; i++) h = (Math.imul(h, 31) + b[i]) | 0;
  const known = keyCache.get(h);
  if (known !== undefined && known.length === length) {
    let i = 0;
    while (i < length && known.charCodeAt(i) === b[start + i]) i++;
    if (i === length) {
      at = end;
      return known;
    }
  }
  at = start;
  const key = length <= SHORT_STRING ? shortAscii(start, end) : latin1Slice.call(src, start, end);
  at = end;
  if (keyCache.size >= KEY_CACHE_SIZE) keyCache.clear();
  keyCache.set(h, key);
  return key;
}

function readValue(depth: number): unknown {
  if (depth > MAX_DEPTH || at >= srcEnd) corrupt();
  const tag = src[at++];
  switch (tag) {
    case T_UNDEFINED:
      return undefined;
    case T_NULL:
      return null;
    case T_FALSE:
      return false;
    case T_TRUE:
      return true;
    case T_INT32: {
      readEnd(4);
      const n = src.readInt32LE(at);
      at += 4;
      return n;
    }
    case T_FLOAT64: {
      readEnd(8);
      const n = src.readDoubleLE(at);
      at += 8;
      return n;
    }
    case T_ASCII:
    case T_UTF8:
    case T_UTF16:
      return readString(tag);
    case T_ARRAY: {
      const length = readLength();
      if (length > MAX_FAST_ARRAY) corrupt();
      const a = new Array<unknown>(length);
      for (let i = 0; i < length; i++) a[i] = readValue(depth + 1);
      return a;
    }
    case T_OBJECT: {
      const count = readLength();
      const o: Record<string, unknown> = {};
      for (let i = 0; i < count; i++) {
        const key = readKey();
        const value = readValue(depth + 1);
        // Assigning "__proto__" would set the prototype; v8 makes it an own property.
        if (key === "__proto__") Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
        else o[key] = value;
      }
      return o;
    }
    case T_BUFFER:
    case T_UINT8ARRAY: {
      const end = readEnd(readLength());
      // A copy: a view would keep the whole received chunk alive.
      const bytes = Buffer.allocUnsafe(end - at);
      src.copy(bytes, 0, at, end);
      at = end;
      return tag === T_BUFFER ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
    }
    case T_DATE: {
      readEnd(8);
      const time = src.readDoubleLE(at);
      at += 8;
      return new Date(time);
    }
    default:
      return corrupt();
  }
}

/** The value of `bytes` written by {@link encodeStructured}. */
export function decodeStructured(bytes: Buffer): unknown {
  return decodeStructuredRange(bytes, 0, bytes.length);
}

/** The value of the body at `buf[start, end)`, without a Buffer made for it. */
export function decodeStructuredRange(buf: Buffer, start: number, end: number): unknown {
  if (end <= start || buf[start] !== FAST) {
    // A copy: v8.deserialize makes typed arrays views into what it reads, and `buf` may be read
    // into again (or be a whole chunk, kept alive by such a view).
    const copy = Buffer.allocUnsafe(end - start);
    buf.copy(copy, 0, start, end);
    return deserialize(copy);
  }
  const previous = src;
  const previousAt = at;
  const previousEnd = srcEnd;
  src = buf as NodeBuffer;
  at = start + 1;
  srcEnd = end;
  try {
    const value = readValue(0);
    if (at !== end) corrupt();
    return value;
  } finally {
    src = previous;
    at = previousAt;
    srcEnd = previousEnd;
  }
}
