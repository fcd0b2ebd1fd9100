import { spawnSync } from "node:child_process";
import * as v8 from "node:v8";
import { structuredCodec, v8Codec } from "@open-channel/messages";
import { random } from "./random";

/**
 * The default codec must give back what `v8.deserialize(v8.serialize(x))` gives, whichever path it
 * takes: the same types (Buffer vs Uint8Array, Date, plain object), the same primitives (-0, NaN,
 * lone surrogates), the same keys in the same order, holes, named array properties, and objects met
 * twice met twice. Jest runs tests in a realm of their own, so classes are compared by name.
 */
const viaCodec = (x: unknown): unknown => structuredCodec.decode(Buffer.from(structuredCodec.encode(x)));
const viaV8 = (x: unknown): unknown => v8.deserialize(v8.serialize(x));

function differs(a: unknown, b: unknown, pairs: Map<unknown, unknown>, path: string): string | undefined {
  if (typeof a !== "object" || a === null || typeof b !== "object" || b === null) {
    return Object.is(a, b) ? undefined : `${path}: ${String(a)} vs ${String(b)}`;
  }
  if (pairs.has(a)) return pairs.get(a) === b ? undefined : `${path}: an object met twice is not the same object twice`;
  pairs.set(a, b);
  const nameA = Object.getPrototypeOf(a)?.constructor?.name;
  const nameB = Object.getPrototypeOf(b)?.constructor?.name;
  if (nameA !== nameB) return `${path}: ${nameA} vs ${nameB}`;
  if (a instanceof Date) return Object.is(a.getTime(), (b as Date).getTime()) ? undefined : `${path}: another date`;
  if (a instanceof Uint8Array) return Buffer.compare(a, b as Uint8Array) === 0 ? undefined : `${path}: other bytes`;
  if (a instanceof Map || a instanceof Set) {
    return differs([...a], [...(b as Map<unknown, unknown>)], pairs, `${path}[entries]`);
  }
  const keysA = Reflect.ownKeys(a);
  const keysB = Reflect.ownKeys(b);
  if (keysA.join("|") !== keysB.join("|")) return `${path}: keys ${keysA.join(",")} vs ${keysB.join(",")}`;
  for (const key of keysA) {
    const d = differs((a as Record<PropertyKey, unknown>)[key], (b as Record<PropertyKey, unknown>)[key], pairs, `${path}.${String(key)}`);
    if (d !== undefined) return d;
  }
  return undefined;
}

function expectSame(x: unknown): void {
  const d = differs(viaCodec(x), viaV8(x), new Map(), "value");
  if (d !== undefined) throw new Error(`the codec gave back something else than v8: ${d}`);
}

const STRINGS = [
  "",
  "a",
  "tick",
  "é",
  "日本",
  "😀",
  "\ud800",
  "x\udc00y",
  "__proto__",
  "0",
  "10",
  "-1",
  "constructor",
  "a".repeat(84),
  "é".repeat(85),
  "b".repeat(300),
];
const NUMBERS = [
  0,
  -0,
  1,
  -1,
  255,
  256,
  2 ** 31 - 1,
  -(2 ** 31),
  2 ** 31,
  0.5,
  -1e-300,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.MAX_SAFE_INTEGER,
];

function value(rnd: () => number, depth: number, pool: object[]): unknown {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)];
  const k = Math.floor(rnd() * (depth > 3 ? 6 : 16));
  switch (k) {
    case 0:
      return pick(STRINGS) + (rnd() < 0.3 ? String.fromCharCode(Math.floor(rnd() * 0x10000)) : "");
    case 1:
      return pick(NUMBERS);
    case 2:
      return Math.floor((rnd() - 0.5) * 2 ** 40) / (rnd() < 0.5 ? 1 : 7);
    case 3:
      return pick([true, false, null, undefined]);
    case 4:
      return Buffer.from(pick(STRINGS));
    case 5:
      return new Date(Math.floor(rnd() * 2e12));
    case 6:
    case 7:
    case 8: {
      const o: Record<string, unknown> = {};
      const n = Math.floor(rnd() * 6);
      for (let i = 0; i < n; i++) {
        const key = pick(STRINGS);
        const v = value(rnd, depth + 1, pool);
        if (key === "__proto__") Object.defineProperty(o, key, { value: v, enumerable: true, writable: true, configurable: true });
        else o[key] = v;
      }
      pool.push(o);
      return o;
    }
    case 9:
    case 10: {
      const n = Math.floor(rnd() * 6);
      const a: unknown[] = [];
      for (let i = 0; i < n; i++) a.push(value(rnd, depth + 1, pool));
      if (rnd() < 0.1) a.length += 2; // holes at the end
      if (rnd() < 0.1) (a as unknown as Record<string, unknown>).extra = 1;
      pool.push(a);
      return a;
    }
    case 11:
      return new Uint8Array([1, 2, 3]);
    case 12:
      return pool.length > 0 && rnd() < 0.5 ? pick(pool) : { shared: false };
    case 13:
      return pick([new Map([[1, "a"]]), new Set(["x"]), 10n, /re/g, new Error("boom"), new Float64Array([1.5]), Object.create(null)]);
    case 14:
      return Object.assign(Object.create(null), { nullProto: true });
    default:
      return pick(STRINGS);
  }
}

// biome-ignore lint/suspicious/noSparseArray: a hole is the point
const HOLES = [1, , 3];

describe("structuredCodec (the default codec) gives back what v8.deserialize(v8.serialize()) gives", () => {
  test.each([
    ["a plain message", { kind: "tick", text: "x".repeat(38), n: 1 }],
    ["strings", ["", "ascii", "é", "日本語", "😀", "\ud800 lone", "\udfff", "x".repeat(100_000)]],
    ["long strings, non-ASCII and ill-formed", ["é".repeat(5000), "😀".repeat(3000), `${"a".repeat(3000)}\ud800`, "\udc00".repeat(2000)]],
    ["numbers", NUMBERS],
    ["-0 alone", -0],
    ["top-level primitives", [true, false, null, undefined]],
    ["a Buffer", Buffer.from("bytes")],
    ["a big Buffer", Buffer.alloc(1 << 20, 7)],
    ["a Uint8Array", new Uint8Array([1, 2, 3])],
    ["a Date", new Date(1_700_000_000_000)],
    ["an invalid Date", new Date(Number.NaN)],
    ["__proto__ as an own key", JSON.parse('{"__proto__": {"polluted": true}, "a": 1}')],
    ["integer-like keys", { b: 1, 2: "two", a: 3, 1: "one" }],
    ["holes", HOLES],
    ["a named array property", Object.assign([1, 2], { extra: "x" })],
    ["a long array", Array.from({ length: 1000 }, (_, i) => i)],
    ["an object of 300 keys", Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, i]))],
    ["an object of 254 keys", Object.fromEntries(Array.from({ length: 254 }, (_, i) => [`k${i}`, i]))],
    ["a Map, Set and BigInt inside", { m: new Map([["k", 1]]), s: new Set([1]), b: 2n ** 70n }],
    [
      "a class instance",
      new (class Point {
        x = 1;
        y = 2;
      })(),
    ],
    [
      "an object met twice",
      (() => {
        const shared = { id: 1 };
        return { a: shared, b: shared, list: [shared] };
      })(),
    ],
    [
      "a cycle",
      (() => {
        const o: Record<string, unknown> = { name: "loop" };
        o.self = o;
        return o;
      })(),
    ],
    [
      "deep nesting",
      (() => {
        let o: unknown = "leaf";
        for (let i = 0; i < 200; i++) o = { o };
        return o;
      })(),
    ],
  ])("%s", (_name, x) => {
    expectSame(x);
  });

  test("20,000 random values (seeded)", () => {
    for (let seed = 1; seed <= 20_000; seed++) {
      const rnd = random(seed);
      const x = value(rnd, 0, []);
      try {
        expectSame(x);
      } catch (err) {
        throw new Error(`seed ${seed}: ${(err as Error).message}`);
      }
    }
  });

  test("plain data takes the fast path, the rest v8's", () => {
    const first = (x: unknown) => Buffer.from(structuredCodec.encode(x))[0];
    for (const x of [{ kind: "tick", n: 1, at: new Date(), list: [1, "a", null], raw: Buffer.from("x") }, "text", 42, undefined]) {
      expect(first(x)).toBe(0x01);
    }
    for (const x of [new Map(), { big: 1n }, Object.assign([1], { named: true }), Array.from({ length: 1000 }, () => 0)]) {
      expect(first(x)).toBe(0xff); // v8.serialize's version tag
    }
  });

  test("an own property named __proto__ comes back as an own property, whatever its value", () => {
    expectSame(JSON.parse('{"__proto__": {"x": 1}, "a": 2}'));
    expectSame({ outer: JSON.parse('{"a": 1, "__proto__": [1, 2]}') });
    // An own "__proto__" whose value is a prototype the fast path knows: the object is what its
    // real prototype says (a plain object here), not what the property says.
    expectSame({ ["__proto__"]: Date.prototype, n: 1 });
    expectSame({ ["__proto__"]: Uint8Array.prototype });
    expectSame({ ["__proto__"]: Object.prototype });
    // And a Date given an own "__proto__" of Object.prototype is still a Date.
    expectSame(Object.defineProperty(new Date(5), "__proto__", { value: Object.prototype }));
  });

  test("under node --disable-proto=throw and =delete, plain data still takes the fast path and comes back whole", () => {
    const script = `
      const { structuredCodec } = require(${JSON.stringify(require.resolve("@open-channel/messages"))});
      const body = { kind: "tick", nested: { list: [1, "two", null] }, at: new Date(0), raw: Buffer.from("x") };
      const bytes = Buffer.from(structuredCodec.encode(body));
      const back = structuredCodec.decode(bytes);
      const same = require("node:util").isDeepStrictEqual(back, body);
      process.stdout.write(JSON.stringify({ first: bytes[0], same }));
    `;
    for (const mode of ["throw", "delete"]) {
      const child = spawnSync(process.execPath, [`--disable-proto=${mode}`, "-e", script], { encoding: "utf8" });
      expect({ mode, stderr: child.stderr, out: child.stdout }).toEqual({
        mode,
        stderr: "",
        out: JSON.stringify({ first: 1, same: true }),
      });
    }
  });

  test("something enumerable on Object.prototype does not leak into the bodies", () => {
    const proto = Object.prototype as Record<string, unknown>;
    proto.polluted = "yes";
    try {
      expectSame({ a: 1, nested: { b: [2] } });
    } finally {
      delete proto.polluted;
    }
  });

  test("a getter that deletes a later key: it is left out, as v8 leaves it", () => {
    const o: Record<string, unknown> = {
      get first() {
        delete o.second;
        return 1;
      },
      second: 2,
      third: 3,
    };
    const ours = viaCodec(o) as Record<string, unknown>;
    expect(Object.keys(ours)).toEqual(["first", "third"]);
  });

  test("what v8 cannot clone fails the same way", () => {
    for (const x of [() => 1, { f: () => 1 }, [Symbol("s")]]) {
      let ours: unknown;
      let theirs: unknown;
      try {
        structuredCodec.encode(x);
      } catch (err) {
        ours = err;
      }
      try {
        v8.serialize(x);
      } catch (err) {
        theirs = err;
      }
      expect((ours as Error).message).toMatch(/could not be cloned/);
      expect((ours as Error).message).toBe((theirs as Error).message);
    }
  });

  test("a getter that sends while its object is encoded gets its own encoding", () => {
    const inner = { n: 1 };
    const outer = {
      get nested() {
        return structuredCodec.decode(Buffer.from(structuredCodec.encode(inner)));
      },
    };
    expect(viaCodec(outer)).toEqual({ nested: { n: 1 } });
  });

  test("a corrupt body throws ERR_OPEN_CHANNEL_BAD_BODY, whichever path reads it (never another error)", () => {
    const good = Buffer.from(structuredCodec.encode({ kind: "tick", list: [1, "two", Buffer.from("3")] }));
    for (let cut = 1; cut < good.length; cut++) {
      expect(() => structuredCodec.decode(good.subarray(0, cut))).toThrow(expect.objectContaining({ code: "ERR_OPEN_CHANNEL_BAD_BODY" }));
    }
    expect(() => structuredCodec.decode(Buffer.concat([good, Buffer.from([0])]))).toThrow(
      expect.objectContaining({ code: "ERR_OPEN_CHANNEL_BAD_BODY" }),
    );
    // Every byte of valid bodies set to other values, the first one too (a body not starting with
    // FAST goes to v8.deserialize, whose own errors carry no code). A corruption may still be a
    // valid body (a letter of a string changed); whatever throws must throw with the code.
    const bodies = [
      good,
      Buffer.from(structuredCodec.encode([1, 2.5, -3, "x", null, true, undefined, new Date(5)])),
      Buffer.from(v8.serialize({ a: [1] })),
    ];
    const codes = new Map<string, number>();
    for (const body of bodies) {
      for (let i = 0; i < body.length; i++) {
        for (let b = 0; b < 256; b += 5) {
          const bad = Buffer.from(body);
          bad[i] = b;
          for (const codec of [structuredCodec, v8Codec]) {
            try {
              codec.decode(bad);
            } catch (err) {
              const code = String((err as { code?: string }).code);
              codes.set(code, (codes.get(code) ?? 0) + 1);
            }
          }
        }
      }
    }
    expect([...codes.keys()]).toEqual(["ERR_OPEN_CHANNEL_BAD_BODY"]);
    expect(codes.get("ERR_OPEN_CHANNEL_BAD_BODY")).toBeGreaterThan(1000);
  });

  test("a body declaring a sparse array of 2^32-1 elements (15 bytes) is refused with a code; ordinary sparse arrays still arrive", () => {
    const hollow: unknown[] = [];
    hollow.length = 2 ** 32 - 1;
    const body = Buffer.from("ff0f61ffffffff0f4000ffffffff0f", "hex");
    expect(body.length).toBe(15);
    expect(Buffer.from(v8.serialize(hollow))).toEqual(body);
    const huge = expect.objectContaining({ code: "ERR_OPEN_CHANNEL_HUGE_ARRAY", message: expect.stringMatching(/length 4294967295/) });
    for (const codec of [structuredCodec, v8Codec]) {
      expect(() => codec.decode(body)).toThrow(huge);
      // Wherever it lies: in an object, a Map, a Set, an array's named property, an error's cause.
      const named = Object.assign([1, 2], { x: hollow });
      const holders = [{ a: { b: hollow } }, new Map([[1, hollow]]), new Set([hollow]), named, new Error("e", { cause: hollow })];
      for (const holder of holders) expect(() => codec.decode(Buffer.from(v8.serialize(holder)))).toThrow(huge);
      // Not refused: sparse arrays within the limit, and bytes that only look like such a header.
      const sparse: unknown[] = [1];
      sparse[2] = 3;
      sparse[100_000] = "far";
      expect(codec.decode(Buffer.from(codec.encode(sparse)))).toEqual(sparse);
      // (a Map: the default codec's v8 path; the string's bytes are 'a' and a varint of 2^32-1)
      const lookalike = new Map([["text", "a\u00ff\u00ff\u00ff\u00ff\u000f"]]);
      const lookalikeBody = Buffer.from(codec.encode(lookalike));
      expect(lookalikeBody.includes(Buffer.from("61ffffffff0f", "hex"))).toBe(true);
      expect(codec.decode(lookalikeBody)).toEqual(lookalike);
      const dense = Array.from({ length: 300 }, (_, i) => i);
      expect(codec.decode(Buffer.from(codec.encode(dense)))).toEqual(dense);
    }
  });
});
