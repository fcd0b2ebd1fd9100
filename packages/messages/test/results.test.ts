/**
 * The host's kept results (a ring, not a Map): checked against a plain model (a list in the order
 * stored, bounded by count and bytes, with the seqs let go for bytes) over random stores, with
 * repeated seqs and results stored out of order, READ counts, hellos of members without READ,
 * and replays.
 */
const { Results } = require("../dist/results.js") as typeof import("../src/results");

import { random } from "./random";

interface Kept {
  seq: number;
  frame: Buffer;
  position: number;
}

describe("Results", () => {
  test("get, lost, release, dropUpTo and replay agree with a model, 30 seeds", () => {
    for (let seed = 1; seed <= 30; seed++) {
      const rnd = random(seed);
      const capacity = 1 + Math.floor(rnd() * 40);
      const maxBytes = 20 + Math.floor(rnd() * 400);
      const results = new Results(capacity, maxBytes);
      let kept: Kept[] = [];
      const lost = new Map<number, number>();
      const bytes = (): number => kept.reduce((n, k) => n + k.frame.length, 0);
      const markLost = (seq: number, position: number): void => {
        if (lost.size >= capacity) lost.delete(lost.keys().next().value as number);
        lost.set(seq, position);
      };
      let next = 1;
      let written = 0;
      for (let step = 0; step < 3000; step++) {
        const r = rnd();
        if (r < 0.7) {
          // Mostly the next seq; sometimes one a little back (an async reply), or the same again;
          // mostly written (a position), sometimes not (the member away).
          const seq = r < 0.6 ? next++ : Math.max(1, next - 1 - Math.floor(rnd() * 5));
          const frame = Buffer.alloc(1 + Math.floor(rnd() * (rnd() < 0.05 ? 2 * maxBytes : maxBytes / 4)), step % 256);
          const position = rnd() < 0.9 ? ++written : 0;
          const seen: number[] = [];
          const stored = results.set(seq, frame, position, (s) => seen.push(s));
          // The model.
          const expectedLost: number[] = [];
          lost.delete(seq);
          if (frame.length > maxBytes) {
            markLost(seq, position);
            expectedLost.push(seq);
          } else {
            if (kept.length === capacity) kept.shift();
            while (bytes() + frame.length > maxBytes) {
              const k = kept.shift() as Kept;
              markLost(k.seq, k.position);
              expectedLost.push(k.seq);
            }
            kept.push({ seq, frame, position });
          }
          if (stored !== frame.length <= maxBytes || seen.join() !== expectedLost.join()) {
            expect({ step, stored, seen }).toEqual({ step, stored: frame.length <= maxBytes, seen: expectedLost });
          }
        } else if (r < 0.78) {
          const count = Math.max(0, written - Math.floor(rnd() * 10));
          results.release(count);
          while (kept.length > 0 && kept[0].position !== 0 && kept[0].position <= count) kept.shift();
          for (const [s, p] of [...lost]) if (p !== 0 && p <= count) lost.delete(s);
        } else if (r < 0.8) {
          const upTo = Math.max(0, next - 1 - Math.floor(rnd() * 10));
          results.dropUpTo(upTo);
          kept = kept.filter((k) => k.seq > upTo);
        } else if (r < 0.82) {
          // A new connection: positions start again, the results go in seq order, one per seq.
          written = 0;
          const replayed: Buffer[] = [];
          results.replay((frame) => {
            replayed.push(frame);
            return ++written;
          });
          const latest = new Map<number, Kept>();
          for (const k of kept) latest.set(k.seq, k);
          const order = [...latest.values()].sort((a, b) => a.seq - b.seq);
          expect(replayed).toEqual(order.map((k) => k.frame));
          kept = order.map((k, i) => ({ ...k, position: i + 1 }));
          for (const s of lost.keys()) lost.set(s, 0);
        } else {
          const seq = Math.max(1, next - Math.floor(rnd() * (capacity + 5)));
          const latest = [...kept].reverse().find((k) => k.seq === seq);
          if (results.get(seq) !== latest?.frame || results.lost(seq) !== lost.has(seq)) {
            expect({ step, frame: results.get(seq), lost: results.lost(seq) }).toEqual({ step, frame: latest?.frame, lost: lost.has(seq) });
          }
        }
        // Plain comparisons: an expect() per step is most of the test's time.
        if (results.size !== kept.length || results.bytes !== bytes() || results.bytes > maxBytes) {
          expect({ step, size: results.size, bytes: results.bytes }).toEqual({ step, size: kept.length, bytes: bytes() });
          expect(results.bytes).toBeLessThanOrEqual(maxBytes);
        }
      }
    }
  });

  test("a frame in a big buffer of its own counts that buffer (what it keeps alive), one in a shared one its own bytes", () => {
    const results = new Results(16, 1 << 30);
    const big = Buffer.allocUnsafeSlow(2 << 20).subarray(0, 1 << 20);
    results.set(1, big, 1);
    expect(results.bytes).toBe(2 << 20);
    const slab = Buffer.allocUnsafeSlow(64 * 1024);
    results.set(2, slab.subarray(0, 100), 2);
    expect(results.bytes).toBe((2 << 20) + 100);
    results.release(1);
    expect(results.bytes).toBe(100);
  });
});
