/**
 * The frame reader: whatever the chunking of the stream (a frame split anywhere, many frames in one
 * chunk, one frame over hundreds of chunks), the same frames come out, in order, each once.
 */
const { FrameReader, encodeSequenced, FRAME, read32, read48, write32, write48 } =
  require("../dist/frame.js") as typeof import("../src/frame");

import { random } from "./random";

function frames(count: number, size: (i: number) => number): Buffer[] {
  return Array.from({ length: count }, (_, i) => encodeSequenced(FRAME.msg, i + 1, Buffer.alloc(size(i), i & 0xff)));
}

function read(chunks: Buffer[], max = 1 << 24): Buffer[] {
  const reader = new FrameReader(max);
  const out: Buffer[] = [];
  for (const chunk of chunks) reader.feed(chunk, (buf, start, end) => out.push(Buffer.from(buf.subarray(start, end))));
  return out;
}

test("headers by hand: read32/read48/write32/write48 agree with Buffer's own, edges and 10,000 random values", () => {
  const rnd = random(7);
  const values = [0, 1, 255, 256, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 40 + 12345, 2 ** 48 - 1];
  for (let i = 0; i < 10_000; i++) values.push(Math.floor(rnd() * 2 ** 48));
  const mine = Buffer.alloc(9);
  const node = Buffer.alloc(9);
  for (const v of values) {
    write48(mine, 3, v);
    node.writeUIntBE(v, 3, 6);
    expect(mine.equals(node)).toBe(true);
    expect(read48(node, 3)).toBe(v);
    const v32 = v % 2 ** 32;
    write32(mine, 1, v32);
    node.writeUInt32BE(v32, 1);
    expect(mine.equals(node)).toBe(true);
    expect(read32(node, 1)).toBe(v32);
  }
});

describe("FrameReader", () => {
  test("two frames split at every byte", () => {
    const sent = frames(2, (i) => 10 + i * 7);
    const stream = Buffer.concat(sent);
    for (let cut = 0; cut <= stream.length; cut++) {
      expect(read([stream.subarray(0, cut), stream.subarray(cut)])).toEqual(sent);
    }
  });

  test("random chunkings of 300 frames of random sizes, 50 seeds", () => {
    for (let seed = 1; seed <= 50; seed++) {
      const rnd = random(seed);
      const sent = frames(300, () => Math.floor(rnd() * (rnd() < 0.05 ? 70_000 : 200)));
      const stream = Buffer.concat(sent);
      const chunks: Buffer[] = [];
      for (let at = 0; at < stream.length; ) {
        const n = 1 + Math.floor(rnd() * (rnd() < 0.5 ? 16 : 65_536));
        chunks.push(stream.subarray(at, at + n));
        at += n;
      }
      const got = read(chunks);
      expect(got.length).toBe(sent.length);
      for (let i = 0; i < sent.length; i++) if (!got[i].equals(sent[i])) throw new Error(`seed ${seed}: frame ${i} differs`);
    }
  });

  test("a 16 MiB frame in 64 KiB chunks comes out once, whole, put together once (not once a chunk)", () => {
    const [big] = frames(1, () => 16 * 1024 * 1024 - 64);
    const chunks: Buffer[] = [];
    for (let at = 0; at < big.length; at += 65_536) chunks.push(big.subarray(at, at + 65_536));
    const reader = new FrameReader(1 << 24);
    const got: Buffer[] = [];
    const onFrame = (buf: Buffer, start: number, end: number) => got.push(Buffer.from(buf.subarray(start, end)));
    const partial = () => (reader as unknown as { partial: Buffer | undefined }).partial;
    reader.feed(chunks[0], onFrame);
    // From the first chunk on, one buffer the size of the whole frame, filled as chunks come: no
    // copy of all so far with each one.
    const assembly = partial();
    expect(assembly?.length).toBe(big.length);
    for (const chunk of chunks.slice(1, -1)) reader.feed(chunk, onFrame);
    expect(partial()).toBe(assembly);
    reader.feed(chunks[chunks.length - 1], onFrame);
    expect(got.length).toBe(1);
    expect(got[0].equals(big)).toBe(true);
  });

  test("read into one reused buffer: the frames come out the same (nothing kept of the buffer), 20 seeds", () => {
    for (let seed = 1; seed <= 20; seed++) {
      const rnd = random(seed);
      const sent = frames(200, () => Math.floor(rnd() * (rnd() < 0.05 ? 70_000 : 200)));
      const stream = Buffer.concat(sent);
      const shared = Buffer.alloc(65_536);
      const reader = new FrameReader(1 << 24);
      const got: Buffer[] = [];
      for (let at = 0; at < stream.length; ) {
        const n = Math.min(stream.length - at, 1 + Math.floor(rnd() * (rnd() < 0.5 ? 16 : 65_536)));
        stream.copy(shared, 0, at, at + n);
        reader.feedRange(shared, 0, n, (buf, start, end) => got.push(Buffer.from(buf.subarray(start, end))));
        // The next read overwrites the buffer: a frame split here must not depend on it.
        shared.fill(0xee);
        at += n;
      }
      expect(got.length).toBe(sent.length);
      for (let i = 0; i < sent.length; i++) if (!got[i].equals(sent[i])) throw new Error(`seed ${seed}: frame ${i} differs`);
    }
  });

  test("a header claiming more than the limit throws, even before the frame's bytes come", () => {
    const reader = new FrameReader(1000);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(5000);
    expect(() => reader.feed(header, () => undefined)).toThrow(/claims 5000 bytes/);
    // Split across two reads: it throws once the header is whole.
    const split = new FrameReader(1000);
    split.feed(header.subarray(0, 2), () => undefined);
    expect(() => split.feed(header.subarray(2), () => undefined)).toThrow(/claims 5000 bytes/);
  });
});

describe("the wire format's readers read what its writers wrote", () => {
  const f = require("../dist/frame.js") as typeof import("../src/frame");

  test("a HELLO: session, pid, base, topics, features, since and what the member holds; a member's from before the features byte has none", () => {
    const session = Buffer.from("00112233445566778899aabbccddeeff", "hex");
    const held: [Buffer, Uint8Array][] = [
      [Buffer.from("held:db"), Buffer.from([1, 2, 3])],
      [Buffer.from("ünï"), Buffer.alloc(0)],
    ];
    const hello = f.encodeHello(session, 4242, 2 ** 40 + 7, ["jobs", "ünïcode", ""], 1_790_000_000_123, true, held);
    expect(f.frameType(hello, 0)).toBe(f.FRAME.hello);
    expect(f.decodeHello(hello)).toEqual({
      session: session.toString("hex"),
      pid: 4242,
      base: 2 ** 40 + 7,
      topics: ["jobs", "ünïcode", ""],
      features: f.FRAME.features.resAcks | f.FRAME.features.read | f.FRAME.features.host,
      since: 1_790_000_000_123,
      rejoining: true,
      held: new Map([
        ["held:db", Buffer.from([1, 2, 3])],
        ["ünï", Buffer.alloc(0)],
      ]),
    });
    const plain = f.encodeHello(session, 1, 0, []);
    expect(f.decodeHello(plain)).toMatchObject({ since: 0, rejoining: false, held: new Map() });
    // Before the host feature, a hello ended with its features byte; before that, with its topics.
    const featuresAt = plain.length - 12;
    const beforeHost = Buffer.from(plain.subarray(0, featuresAt + 1));
    beforeHost[featuresAt] = f.FRAME.features.resAcks | f.FRAME.features.read;
    expect(f.decodeHello(beforeHost)).toMatchObject({
      features: f.FRAME.features.resAcks | f.FRAME.features.read,
      since: 0,
      held: new Map(),
    });
    expect(f.decodeHello(plain.subarray(0, featuresAt)).features).toBe(0);
    expect(() => f.decodeHello(hello.subarray(0, 30))).toThrow(/out of range/);
    // A held value that runs past the frame is refused (the host closes the connection).
    expect(() => f.decodeHello(hello.subarray(0, hello.length - 1))).toThrow(/past the hello/);
  });

  test("HOLD, CALL and ANSWER frames", () => {
    const hold = f.encodeHold(Buffer.from("held:db"), Buffer.from("v"));
    expect(f.frameType(hold, 0)).toBe(f.FRAME.hold);
    expect(f.decodeHold(hold, 0, hold.length)).toEqual({ key: "held:db", value: Buffer.from("v") });
    const release = f.encodeHold(Buffer.from("held:db"), undefined);
    expect(f.decodeHold(release, 0, release.length)).toEqual({ key: "held:db", value: undefined });
    expect(() => f.decodeHold(release, 0, release.length - 1)).toThrow(/cut short/);
    const call = f.encodeCall(f.FRAME.call, 2 ** 40 + 1, f.FRAME.callRequest, Buffer.from("body"));
    expect([f.frameType(call, 0), f.frameSeq(call, 0), f.frameFlags(call, 0)]).toEqual([f.FRAME.call, 2 ** 40 + 1, f.FRAME.callRequest]);
    expect(call.toString("utf8", f.FRAME.callHeaderBytes)).toBe("body");
    expect(f.frameType(f.BYE, 0)).toBe(f.FRAME.bye);
  });

  test("a sequenced frame's type, seq and flags, where it lies in a larger buffer; redelivered set in place", () => {
    const frame = f.encodeSequenced(f.FRAME.req, 2 ** 33 + 5, Buffer.from("body"));
    const buf = Buffer.concat([Buffer.alloc(3, 0xff), frame]);
    expect([f.frameType(buf, 3), f.frameSeq(buf, 3), f.frameFlags(buf, 3)]).toEqual([f.FRAME.req, 2 ** 33 + 5, 0]);
    f.markRedelivered(buf, 3);
    expect(f.frameFlags(buf, 3)).toBe(f.FRAME.redelivered);
    expect(buf.subarray(0, 3)).toEqual(Buffer.alloc(3, 0xff));
  });

  test("RES and FAIL: seq, flags (ok, acks, lost) and where the body starts", () => {
    const res = f.encodeResult(f.FRAME.res, 9, true, Buffer.from("yes"));
    f.setResultFlag(res, f.FRAME.acks);
    expect([f.frameType(res, 0), f.frameSeq(res, 0), f.frameFlags(res, 0)]).toEqual([f.FRAME.res, 9, f.FRAME.ok | f.FRAME.acks]);
    expect(res.toString("utf8", f.resultBodyAt(f.FRAME.res, 0))).toBe("yes");
    const lost = f.encodeResult(f.FRAME.res, 10, false, Buffer.from("no"));
    f.setResultFlag(lost, f.FRAME.lost);
    expect(f.frameFlags(lost, 0)).toBe(f.FRAME.lost);
    const fail = f.encodeResult(f.FRAME.fail, 11, false, Buffer.from("threw"));
    expect([f.frameType(fail, 0), f.frameSeq(fail, 0)]).toEqual([f.FRAME.fail, 11]);
    expect(fail.toString("utf8", f.resultBodyAt(f.FRAME.fail, 0))).toBe("threw");
  });

  test("READ, ACK, WELCOME and EVENT heads; a READ of the wrong size and an EVENT cut short are refused", () => {
    const read = f.encodeRead(2 ** 41 + 3);
    expect([f.frameType(read, 0), f.decodeRead(read, 0, read.length)]).toEqual([f.FRAME.read, 2 ** 41 + 3]);
    expect(() => f.decodeRead(Buffer.concat([read, Buffer.alloc(1)]), 0, read.length + 1)).toThrow("wrong size");
    const ack = Buffer.alloc(f.FRAME.ackBytes);
    f.writeAck(ack, 0, 77);
    expect([f.frameType(ack, 0), f.frameSeq(ack, 0)]).toEqual([f.FRAME.ack, 77]);
    expect(f.welcomeFeatures(f.WELCOME, 0, f.WELCOME.length)).toBe(f.FRAME.features.read | f.FRAME.features.host);
    expect(f.welcomeFeatures(f.WELCOME, 0, f.FRAME.headerBytes)).toBe(0);
    const event = f.encodeEvent("news", 31337, Buffer.from("body"));
    const head = f.decodeEventHead(event, 0, event.length);
    expect(head).toEqual({ topic: "news", pid: 31337, bodyAt: event.length - 4 });
    expect(f.decodeEventHead(event, 0, head ? head.bodyAt - 1 : 0)).toBeUndefined();
  });
});

describe("FrameReader, edges", () => {
  const f = require("../dist/frame.js") as typeof import("../src/frame");
  const collect = (out: Buffer[]) => (buf: Buffer, start: number, end: number) => void out.push(Buffer.from(buf.subarray(start, end)));

  test("a stream fed 1, 2 or 3 bytes at a time: headers put together over several feeds", () => {
    const sent = frames(20, (i) => i * 5);
    const stream = Buffer.concat(sent);
    for (const step of [1, 2, 3]) {
      const reader = new f.FrameReader(1 << 20);
      const got: Buffer[] = [];
      for (let at = 0; at < stream.length; at += step) reader.feed(stream.subarray(at, at + step), collect(got));
      expect([step, got]).toEqual([step, sent]);
    }
  });

  test("feedRange reads only its range: bytes before and after it are never taken for frames", () => {
    const sent = frames(3, (i) => 40 + i);
    const stream = Buffer.concat(sent);
    const reader = new f.FrameReader(1 << 20);
    const got: Buffer[] = [];
    // The stream cut inside a header, then inside a body, each piece among bytes of another read.
    const cuts = [0, 2, 10, 20, 30, 60, stream.length];
    for (let i = 0; i + 1 < cuts.length; i++) {
      const piece = stream.subarray(cuts[i], cuts[i + 1]);
      const buf = Buffer.concat([Buffer.alloc(7, 0xee), piece, Buffer.alloc(300, 0xee)]);
      reader.feedRange(buf, 7, 7 + piece.length, collect(got));
    }
    expect(got).toEqual(sent);
  });

  test("reset() drops a frame put together so far: the next bytes start a new frame", () => {
    const [first, second] = frames(2, () => 50);
    const reader = new f.FrameReader(1 << 20);
    const got: Buffer[] = [];
    reader.feed(first.subarray(0, 20), collect(got));
    reader.reset();
    reader.feed(second, collect(got));
    expect(got).toEqual([second]);
  });

  test("a header claiming 0 bytes or more than the limit is refused; exactly the limit is read", () => {
    const header = (n: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      return b;
    };
    expect(() => new f.FrameReader(100).feed(header(0), () => undefined)).toThrow("a frame header claims 0 bytes (the limit is 100)");
    expect(() => new f.FrameReader(100).feed(header(101), () => undefined)).toThrow("claims 101 bytes");
    const got: Buffer[] = [];
    const reader = new f.FrameReader(100);
    const whole = Buffer.concat([header(100), Buffer.alloc(100, 1)]);
    reader.feed(whole, collect(got));
    expect(got).toEqual([whole]);
  });

  test("topics: at most 65535 bytes; a topic that runs past its frame is refused, one that ends with it is read", () => {
    expect(f.topicBytes("t".repeat(65535)).length).toBe(65535);
    expect(() => f.topicBytes("t".repeat(65536))).toThrow(
      expect.objectContaining({ code: "ERR_OUT_OF_RANGE", message: expect.stringContaining("65536 bytes") }),
    );
    const frame = Buffer.from([9, 9, 0, 3, 0x61, 0x62, 0x63]);
    expect(f.readTopic(frame, 2)).toEqual({ topic: "abc", next: 7 });
    expect(f.readTopic(Buffer.from([9, 0, 0]), 1)).toEqual({ topic: "", next: 3 });
    expect(() => f.readTopic(frame, 2, 6)).toThrow("topic runs past the frame");
    expect(() => f.readTopic(frame, 5)).toThrow("topic runs past the frame");
    expect(() => f.readTopic(Buffer.from([9, 0]), 1)).toThrow("topic runs past the frame");
  });
});
