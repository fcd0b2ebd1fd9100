/**
 * The messenger's outbox (an array walked from its head) against the obvious model (a Map by
 * seq): random adds, cumulative acks, removals from the middle (requests settled by their reply),
 * lookups and walks, writes of what is unsent and reconnections, repeated with many seeds.
 */
const { Outbox } = require("../dist/outbox.js") as typeof import("../src/outbox");

import { random } from "./random";

interface Entry {
  seq: number;
  start: number;
  end: number;
  done: boolean;
  /** A request waiting for its reply: an ack passes it without removing it. */
  waiting: boolean;
}

function run(seed: number, steps: number): void {
  const rnd = random(seed);
  const outbox = new Outbox<Entry>();
  const model = new Map<number, Entry>();
  let nextSeq = 1;
  let acked = 0;
  /** Live entries from this seq on are not yet written on this connection. */
  let unsentFrom = 1;
  const check = (what: string) => {
    const live: number[] = [];
    outbox.forEach((e) => {
      live.push(e.seq);
    });
    const expected = [...model.keys()];
    const bytes = [...model.values()].reduce((n, e) => n + e.end - e.start, 0);
    if (live.join() !== expected.join() || outbox.size !== model.size || outbox.bytes !== bytes) {
      const at = live.findIndex((seq, i) => seq !== expected[i]);
      throw new Error(
        `seed ${seed}, after ${what}: outbox has ${live.length} (${outbox.bytes} B), the model ${expected.length} (${bytes} B); ` +
          `first difference at ${at}: ${live[at]} vs ${expected[at]}`,
      );
    }
  };
  for (let step = 0; step < steps; step++) {
    const r = rnd();
    if (r < 0.45) {
      // A burst of sends, sometimes a request among them.
      const n = 1 + Math.floor(rnd() * 300);
      for (let i = 0; i < n; i++) {
        const size = 13 + Math.floor(rnd() * 100);
        const e: Entry = { seq: nextSeq++, start: 0, end: size, done: false, waiting: rnd() < 0.02 };
        outbox.add(e);
        model.set(e.seq, e);
      }
      check("adds");
    } else if (r < 0.7) {
      // A cumulative ack, up to somewhere in what was sent.
      if (nextSeq - 1 <= acked) continue;
      const from = acked;
      acked += 1 + Math.floor(rnd() * (nextSeq - 1 - acked));
      outbox.acknowledge(acked, (e) => {
        // Each live entry once, when an ack first passes it (never again after the ring grew).
        if (e.done || e.seq <= from || e.seq > acked) throw new Error(`seed ${seed}: ack ${acked} (after ${from}) handed out ${e.seq}`);
        if (e.waiting) return;
        outbox.remove(e);
      });
      for (const [seq, e] of model) if (seq <= acked && !e.waiting) model.delete(seq);
      check(`ack ${acked}`);
    } else if (r < 0.82) {
      // A reply (or a timeout) settles a request: it leaves from the middle.
      const waiting = [...model.values()].filter((e) => e.waiting);
      if (waiting.length === 0) continue;
      const e = waiting[Math.floor(rnd() * waiting.length)];
      expect(outbox.get(e.seq)).toBe(e);
      e.waiting = false;
      if (e.seq <= acked || rnd() < 0.3) {
        expect(outbox.remove(e)).toBe(true);
        expect(outbox.remove(e)).toBe(false);
        model.delete(e.seq);
      }
      check(`settling ${e.seq}`);
    } else if (r < 0.92) {
      // A flush: what is handed out is every live entry not yet written, oldest first, once.
      const written: number[] = [];
      for (let e = outbox.nextUnsent(); e !== undefined; e = outbox.nextUnsent()) written.push(e.seq);
      const expected = [...model.keys()].filter((seq) => seq >= unsentFrom);
      if (written.join() !== expected.join()) {
        const at = written.findIndex((seq, i) => seq !== expected[i]);
        throw new Error(
          `seed ${seed}, flush: wrote ${written.length}, the model ${expected.length}; first difference at ${at}: ${written[at]} vs ${expected[at]}`,
        );
      }
      unsentFrom = nextSeq;
    } else if (r < 0.95) {
      // A new connection: everything live is to be written again.
      outbox.unsendAll();
      unsentFrom = 1;
    } else {
      // Lookups: what is live is found, what left is not.
      for (let i = 0; i < 20; i++) {
        const seq = 1 + Math.floor(rnd() * (nextSeq + 5));
        expect(outbox.get(seq)).toBe(model.get(seq));
      }
    }
  }
}

/** The ring's inside, for the tests of its memory. */
function ring(outbox: object): { items: unknown[]; head: number; tail: number } {
  return outbox as unknown as { items: unknown[]; head: number; tail: number };
}

describe("the messenger's outbox", () => {
  test("entries removed as they come (before and after a walk) keep the first ring of 64 slots", () => {
    const outbox = new Outbox<Entry>();
    let walked = 0;
    for (let seq = 1; seq <= 1000; seq++) {
      const e: Entry = { seq, start: 0, end: 10, done: false, waiting: false };
      outbox.add(e);
      expect(outbox.remove(e)).toBe(true);
      if (seq === 500)
        outbox.forEach(() => {
          walked++;
        });
    }
    expect([walked, outbox.size, outbox.bytes, ring(outbox).items.length]).toEqual([0, 0, 0, 64]);
  });

  test("forEach lets its callback remove what it is given; the ring is empty and starts over after it", () => {
    const outbox = new Outbox<Entry>();
    for (let seq = 1; seq <= 100; seq++) outbox.add({ seq, start: 0, end: 10, done: false, waiting: false });
    const seen: number[] = [];
    outbox.forEach((e) => {
      seen.push(e.seq);
      outbox.remove(e);
    });
    expect(seen).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect([outbox.size, ring(outbox).head, ring(outbox).tail]).toEqual([0, 0, 0]);
  });

  test("an ack passing requests that stay (waiting for replies) hands each out once, across the ring growing", () => {
    const outbox = new Outbox<Entry>();
    const passed: number[] = [];
    const ack = (seq: number): void => outbox.acknowledge(seq, (e) => void passed.push(e.seq));
    for (let seq = 1; seq <= 64; seq++) outbox.add({ seq, start: 0, end: 10, done: false, waiting: true });
    ack(10);
    outbox.add({ seq: 65, start: 0, end: 10, done: false, waiting: true });
    ack(20);
    ack(65);
    for (let seq = 66; seq <= 128; seq++) outbox.add({ seq, start: 0, end: 10, done: false, waiting: true });
    // Every entry passed, and the ring full: it grows with nothing left to pass.
    ack(128);
    outbox.add({ seq: 129, start: 0, end: 10, done: false, waiting: true });
    ack(129);
    expect(passed).toEqual(Array.from({ length: 129 }, (_, i) => i + 1));
  });

  test("clear() drops every entry; the ring then works as a new one", () => {
    const outbox = new Outbox<Entry>();
    for (let seq = 1; seq <= 100; seq++) outbox.add({ seq, start: 0, end: 10, done: false, waiting: false });
    outbox.nextUnsent();
    outbox.clear();
    expect([outbox.size, outbox.bytes, outbox.get(50), outbox.nextUnsent()]).toEqual([0, 0, undefined, undefined]);
    for (let seq = 1; seq <= 100; seq++) outbox.add({ seq, start: 0, end: 10, done: false, waiting: false });
    for (let seq = 1; seq <= 100; seq++) expect(outbox.get(seq)?.seq).toBe(seq);
    expect(outbox.nextUnsent()?.seq).toBe(1);
  });

  test("a ring that wraps and grows: 100,000 adds acknowledged in bursts, never more slots than needed", () => {
    const outbox = new Outbox<Entry>();
    let acked = 0;
    let most = 0;
    for (let seq = 1; seq <= 100_000; seq++) {
      outbox.add({ seq, start: 0, end: 10, done: false, waiting: false });
      // A window of about 1000 in flight, acknowledged 256 at a time.
      if (seq - acked >= 1000) {
        acked += 256;
        outbox.acknowledge(acked, (e) => outbox.remove(e));
      }
      most = Math.max(most, (outbox as unknown as { items: unknown[] }).items.length);
      if (seq % 997 === 0) expect(outbox.get(seq - 500)?.seq).toBe(seq - 500);
    }
    expect(outbox.size).toBe(100_000 - acked);
    expect(most).toBe(1024);
  });

  test("random sends, acks, replies, lookups, flushes and reconnections agree with a Map, 40 seeds", () => {
    for (let seed = 1; seed <= 40; seed++) run(seed, 300);
  });

  test("a request that waits while thousands of messages pass keeps the outbox small", () => {
    const outbox = new Outbox<Entry>();
    const request: Entry = { seq: 1, start: 0, end: 20, done: false, waiting: true };
    outbox.add(request);
    for (let seq = 2; seq <= 100_000; seq++) {
      outbox.add({ seq, start: 0, end: 20, done: false, waiting: false });
      if (seq % 100 === 0) outbox.acknowledge(seq, (e) => (e.waiting ? undefined : outbox.remove(e)));
    }
    expect(outbox.size).toBe(1);
    // Its ring holds what is live plus bounded waste, not the 100,000 passed.
    expect((outbox as unknown as { items: unknown[] }).items.length).toBeLessThan(10_000);
    expect(outbox.get(1)).toBe(request);
    expect(outbox.remove(request)).toBe(true);
    expect(outbox.size).toBe(0);
  });
});
