/**
 * The host's kept replies (a ring, not a Map): checked against a plain model (the last `capacity`
 * stores, in order) over random stores, with repeated seqs and replies stored out of order.
 */
const { Results } = require("../dist/results.js") as typeof import("../src/results");

import { random } from "./random";

describe("Results", () => {
  test("get, dropUpTo and inOrder agree with a model, 30 seeds", () => {
    for (let seed = 1; seed <= 30; seed++) {
      const rnd = random(seed);
      const capacity = 1 + Math.floor(rnd() * 40);
      const results = new Results(capacity);
      // The last `capacity` stores, in order; a dropped one still takes its place in the ring.
      let stores: Array<{ seq: number; frame: Buffer; alive: boolean }> = [];
      let dropped = 0;
      let next = 1;
      for (let step = 0; step < 2000; step++) {
        const r = rnd();
        if (r < 0.8) {
          // Mostly the next seq; sometimes one a little back (an async reply), or the same again.
          const seq = r < 0.7 ? next++ : Math.max(1, next - 1 - Math.floor(rnd() * 5));
          const frame = Buffer.from(`${seed}:${step}`);
          results.set(seq, frame);
          stores.push({ seq, frame, alive: true });
          if (stores.length > capacity) stores = stores.slice(-capacity);
        } else if (r < 0.85) {
          dropped = Math.max(dropped, next - 1 - Math.floor(rnd() * 10));
          results.dropUpTo(dropped);
          for (const s of stores) if (s.seq <= dropped) s.alive = false;
        } else {
          const seq = Math.max(1, next - Math.floor(rnd() * (capacity + 5)));
          const latest = [...stores].reverse().find((s) => s.seq === seq && s.alive);
          expect(results.get(seq)).toBe(latest?.frame);
        }
      }
      const latestBySeq = new Map<number, Buffer>();
      for (const s of stores) if (s.alive) latestBySeq.set(s.seq, s.frame);
      const expected = [...latestBySeq].sort((a, b) => a[0] - b[0]).map(([, f]) => f);
      expect(results.inOrder()).toEqual(expected);
    }
  });
});
