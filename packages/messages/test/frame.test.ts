/**
 * The frame reader: whatever the chunking of the stream (a frame split anywhere, many frames in one
 * chunk, one frame over hundreds of chunks), the same frames come out, in order, each once.
 */
const { FrameReader, encodeSequenced, FRAME } = require("../dist/frame.js") as typeof import("../src/frame");

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
    for (const chunk of chunks.slice(0, -1)) reader.feed(chunk, onFrame);
    // Until the last byte, the chunks wait as they came: no copy of all so far with each one.
    expect((reader as unknown as { pending: Buffer[] }).pending.length).toBe(chunks.length - 1);
    reader.feed(chunks[chunks.length - 1], onFrame);
    expect(got.length).toBe(1);
    expect(got[0].equals(big)).toBe(true);
  });

  test("a header claiming more than the limit throws, even before the frame's bytes come", () => {
    const reader = new FrameReader(1000);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(5000);
    expect(() => reader.feed(header, () => undefined)).toThrow(/claims 5000 bytes/);
  });
});
