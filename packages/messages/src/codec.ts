import * as v8 from "node:v8";
import { OpenChannelError, openChannelError, withChannel } from "@open-channel/core";
import { deserialize } from "./deserialize";
import type { Slab } from "./slab";
import { decodeStructured, decodeStructuredRange, encodeStructured, encodeStructuredInto } from "./structured";
import { text } from "./text";

/**
 * Turns message bodies into bytes and back. Both sides of a channel must use the same codec.
 *
 * @example
 * const upper: Codec = { encode: (v) => Buffer.from(String(v).toUpperCase()), decode: (b) => b.toString() };
 * openMessageChannel("jobs", handlers, { transport, codec: upper });
 */
export interface Codec {
  /** A name for errors and debug output. */
  readonly name: string;
  /** The bytes of `value`. */
  encode(value: unknown): Uint8Array;
  /** The value of `bytes` (a view into a received buffer: copy it to keep it). */
  decode(bytes: Buffer): unknown;
}

/**
 * `T` if a body of type `T` can be sent (what `structuredClone` copies, looked at through objects
 * and arrays), else a type nothing fits: `send(() => 1)`, `send({ run() {} })` or
 * `send(Symbol())` do not compile. (`bufferCodec` takes only Buffers and strings: the rest is
 * refused when sent, with `ERR_OPEN_CHANNEL_UNSERIALIZABLE`.)
 *
 * @example
 * function enqueue<T>(job: T & Sendable<T>) { return messenger.send(job); }
 */
export type Sendable<T> = T extends // What no codec of ours can send:
  | ((...args: never[]) => unknown)
  | symbol
  | WeakMap<object, unknown>
  | WeakSet<object>
  | WeakRef<object>
  | Promise<unknown>
  ? never
  : // Objects sent whole (their methods are not their data):
    T extends Date | RegExp | Error | ArrayBuffer | ArrayBufferView | Map<unknown, unknown> | Set<unknown>
    ? T
    : T extends object
      ? { [K in keyof T]: Sendable<T[K]> }
      : T;

/** Internal: the method of a codec that writes a frame straight into a messenger's slab. */
export const ENCODE_INTO: unique symbol = Symbol("open-channel.encodeInto");

/** Internal: the method of a codec that decodes a body where it lies in a received buffer. */
export const DECODE_FROM: unique symbol = Symbol("open-channel.decodeFrom");

/**
 * Internal: a codec that can append `head` bytes and its encoding of `value` to `slab`, returning
 * where that frame starts (the default codec can: no copy of each body).
 */
export interface SlabCodec extends Codec {
  [ENCODE_INTO]?: (value: unknown, slab: Slab, head: number) => number;
  /**
   * Decodes `buf[start, end)` (no Buffer made per body), keeping no view of `buf`: the member
   * reads into one buffer it reuses.
   */
  [DECODE_FROM]?: (buf: Buffer, start: number, end: number) => unknown;
}

/** `codec`'s way to append a frame to a slab: its own, or its `encode` and one copy. */
export function slabEncoder(codec: Codec): (value: unknown, slab: Slab, head: number) => number {
  return (codec as SlabCodec)[ENCODE_INTO] ?? ((value, slab, head) => slab.put(codec.encode(value), head));
}

/**
 * `codec`'s way to decode a body where it lies: its own, or its `decode` of a view; of a copy when
 * `reused` (the buffer is read into again: a codec may keep views, as `v8.deserialize` does).
 */
export function rangeDecoder(codec: Codec, reused = false): (buf: Buffer, start: number, end: number) => unknown {
  const own = (codec as SlabCodec)[DECODE_FROM];
  if (own !== undefined) return own;
  const decode = (bytes: Buffer): unknown => {
    try {
      return codec.decode(bytes);
    } catch (err) {
      throw badBody(err);
    }
  };
  if (!reused) return (buf, start, end) => decode(buf.subarray(start, end));
  return (buf, start, end) => decode(copyOf(buf, start, end));
}

/** What a codec threw decoding a body, as `ERR_OPEN_CHANNEL_BAD_BODY` (an error of ours as it is). */
export function badBody(err: unknown): Error {
  if (err instanceof OpenChannelError) return err;
  return openChannelError("ERR_OPEN_CHANNEL_BAD_BODY", { detail: messageText(err), cause: err });
}

/** An error's message (or what was thrown) as text; never throws. */
function messageText(err: unknown): string {
  try {
    return text(err instanceof Error ? err.message : err);
  } catch {
    return "(a message that cannot be read)";
  }
}

/**
 * What a codec threw encoding `what` (`"a message"`, `"the reply"`, ...), as
 * `ERR_OPEN_CHANNEL_UNSERIALIZABLE` about `channel` (an error of ours as it is, naming the channel).
 */
export function encodeError(err: unknown, channel: string, what: string, codec: Codec): Error {
  if (err instanceof OpenChannelError) return withChannel(err, channel);
  return openChannelError("ERR_OPEN_CHANNEL_UNSERIALIZABLE", {
    channel,
    what,
    codec: typeof codec.name === "string" ? codec.name : "custom",
    detail: messageText(err),
    cause: err,
  });
}

/** `buf[start, end)` in a Buffer of its own. */
function copyOf(buf: Buffer, start: number, end: number): Buffer {
  const copy = Buffer.allocUnsafe(end - start);
  buf.copy(copy, 0, start, end);
  return copy;
}

/**
 * The default codec: a body arrives as `v8.deserialize(v8.serialize(body))` would give it (the
 * structured clone algorithm: Map, Set, Date, BigInt, RegExp, Buffer, typed arrays, nested objects
 * and cycles; not functions or class instances' prototypes). Plain data (strings, numbers,
 * booleans, null, undefined, plain objects, arrays, Buffers, Uint8Arrays, Dates) takes a fast path
 * written for this codec; everything else goes through `v8.serialize`. Several times faster than
 * {@link v8Codec} for small messages, the same values out (but for a sparse array longer than the
 * larger of 2^20 and its body's byte count: refused, `ERR_OPEN_CHANNEL_HUGE_ARRAY`; see deserialize.ts).
 *
 * @example
 * openMessageChannel("jobs", handlers, { transport, codec: structuredCodec });
 */
export const structuredCodec: Codec = {
  name: "structured",
  encode: encodeStructured,
  decode: decodeStructured,
  [ENCODE_INTO]: encodeStructuredInto,
  [DECODE_FROM]: decodeStructuredRange,
} as SlabCodec;

/**
 * `v8.serialize` and `v8.deserialize` for every body (the structured clone algorithm). Gives the
 * same values as the default {@link structuredCodec} (the same limit on arrays' length), slower for
 * small messages: `v8.serialize` costs a few microseconds a call.
 *
 * @example
 * openMessageChannel("jobs", handlers, { transport, codec: v8Codec });
 */
export const v8Codec: Codec = {
  name: "v8",
  encode: (value) => v8.serialize(value),
  decode: (bytes) => deserialize(bytes),
  // A copy first: v8.deserialize makes typed arrays views into what it reads.
  [DECODE_FROM]: (buf: Buffer, start: number, end: number) => deserialize(copyOf(buf, start, end)),
} as SlabCodec;

/**
 * JSON in UTF-8: readable by any language, but only JSON's types (`undefined` becomes `null`).
 *
 * @example
 * openMessageChannel("jobs", handlers, { transport, codec: jsonCodec });
 */
export const jsonCodec: Codec = {
  name: "json",
  encode: (value) => {
    const json = JSON.stringify(value === undefined ? null : value);
    if (json === undefined) throw new TypeError(`JSON has no form for a ${typeof value}`);
    return Buffer.from(json, "utf8");
  },
  decode: (bytes) => parseJson(bytes.toString("utf8")),
  [DECODE_FROM]: (buf: Buffer, start: number, end: number) => parseJson(buf.toString("utf8", start, end)),
} as SlabCodec;

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw badBody(err);
  }
}

/**
 * Raw bytes: bodies are `Buffer`s (or strings, sent as UTF-8) and arrive as `Buffer`s. The fastest.
 *
 * @example
 * await messenger.send(Buffer.from("ping"));
 */
export const bufferCodec: Codec = {
  name: "buffer",
  encode: (value) => {
    if (value instanceof Uint8Array) return value;
    if (typeof value === "string") return Buffer.from(value, "utf8");
    throw new TypeError(`the buffer codec sends Buffers and strings, not ${typeof value}`);
  },
  decode: (bytes) => Buffer.from(bytes),
  [DECODE_FROM]: copyOf,
} as SlabCodec;
