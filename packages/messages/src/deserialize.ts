import * as util from "node:util";
import * as v8 from "node:v8";
import { openChannelError } from "@open-channel/core";

/*
 * `v8.deserialize` trusts the length a sparse array declares: 15 bytes (tag 'a', a varint of
 * 2^32-1, no elements) give an array of length 4294967295, and a receiver that walks it (a for loop,
 * spread, Array.from, JSON.stringify) hangs or runs out of memory. Dense arrays, strings, typed
 * arrays and ArrayBuffers are checked by V8 or Node against the bytes left; sparse arrays are not.
 *
 * So an array may be no longer than the body has bytes (a dense array never is: each element takes
 * a byte at least), or than MIN_ARRAY_LIMIT for a small body (room for ordinary sparse arrays).
 * Checked in two steps, so that almost no body pays for a walk of its value: a sparse array's
 * length follows its tag as a varint, so a body without a byte 'a' followed by a varint over the
 * limit cannot hold one; only a body with such bytes (they can also lie in a string or a number)
 * has its decoded value walked, and is refused when an array in it is over the limit.
 */

/** The longest array any body may give (a longer one only from a body of more bytes). */
export const MIN_ARRAY_LIMIT = 1 << 20;

/** V8's tag of a sparse array (kBeginSparseJSArray). */
const SPARSE_ARRAY = 0x61;

/** How long an array of a body of `bytes` bytes may be. */
export function arrayLimit(bytes: number): number {
  return Math.max(bytes, MIN_ARRAY_LIMIT);
}

/** `v8.deserialize(bytes)`, refusing a value with an array longer than arrayLimit(bytes.length). */
export function deserialize(bytes: Buffer): unknown {
  let value: unknown;
  try {
    value = v8.deserialize(bytes);
  } catch (err) {
    // V8's own errors ("Unable to deserialize cloned data ...") carry no code.
    throw openChannelError("ERR_OPEN_CHANNEL_BAD_BODY", { detail: (err as Error).message, cause: err });
  }
  if (typeof value !== "object" || value === null) return value;
  const limit = arrayLimit(bytes.length);
  if (!mayDeclare(bytes, limit)) return value;
  const length = longestArray(value, limit);
  if (length !== undefined) {
    throw openChannelError("ERR_OPEN_CHANNEL_HUGE_ARRAY", { bytes: bytes.length, length, limit, minLimit: MIN_ARRAY_LIMIT });
  }
  return value;
}

/** Whether `bytes` hold a byte SPARSE_ARRAY followed by a varint over `limit`, read as V8 reads it. */
function mayDeclare(bytes: Buffer, limit: number): boolean {
  const end = bytes.length;
  for (let at = bytes.indexOf(SPARSE_ARRAY); at >= 0; at = bytes.indexOf(SPARSE_ARRAY, at + 1)) {
    // V8's ReadVarint<uint32_t>: 7 bits a byte, low first, while the high bit is set; bits past
    // the 32nd are dropped (the bytes still read).
    let n = 0;
    let shift = 0;
    for (let i = at + 1; i < end; i++) {
      const b = bytes[i];
      if (shift < 32) n = (n | ((b & 0x7f) << shift)) >>> 0;
      shift += 7;
      if (b < 0x80) break;
    }
    if (n > limit) return true;
  }
  return false;
}

/** The length of an array reachable from `root` that is over `limit`, if any. */
function longestArray(root: object, limit: number): number | undefined {
  const stack: unknown[] = [root];
  const seen = new Set<object>();
  const visit = (v: unknown): void => {
    if (typeof v === "object" && v !== null && !seen.has(v)) stack.push(v);
  };
  while (stack.length > 0) {
    const o = stack.pop() as object;
    if (seen.has(o)) continue;
    seen.add(o);
    if (Array.isArray(o) && o.length > limit) return o.length;
    // util.types, not instanceof: right whatever realm made the value.
    if (ArrayBuffer.isView(o) || util.types.isAnyArrayBuffer(o) || util.types.isBoxedPrimitive(o)) continue;
    if (util.types.isMap(o)) {
      for (const [k, v] of o as Map<unknown, unknown>) {
        visit(k);
        visit(v);
      }
      continue;
    }
    if (util.types.isSet(o)) {
      for (const v of o as Set<unknown>) visit(v);
      continue;
    }
    if (util.types.isNativeError(o)) visit((o as { cause?: unknown }).cause);
    // Own enumerable keys (what v8 serializes): an array's elements, and its named properties.
    for (const key in o) visit((o as Record<string, unknown>)[key]);
  }
  return undefined;
}
