/**
 * The host's results (RES and FAIL frames) sent to one member and not yet known to be read by it:
 * for a member that reconnects to this same host without them. Kept in the order written; let go
 * when the member says it has read them (a READ: a count of results read on its connection, so
 * `position` is that count when the member has read this one; 0: not written on this connection).
 *
 * Bounded by count (`capacity`: the oldest goes; the member's window is never larger, and a member
 * reads in order, so what it has not read is always among the newest) and by bytes (`maxBytes` of
 * memory pinned: the oldest go first, and one over the bound alone is not kept). A result let go
 * for bytes is remembered as lost (its seq, no bytes), so that a member asking for it again gets an
 * error instead of a request run twice or a wait for nothing.
 *
 * A ring of parallel arrays, not a Map or an object per result: storing a result (once per
 * request) is a few array stores; a lookup happens only after a reconnect, and walks the ring.
 */
export class Results {
  private readonly seqs: number[] = [];
  private readonly frames: (Buffer | undefined)[] = [];
  private readonly costs: number[] = [];
  private readonly positions: number[] = [];
  /** The slot of the oldest result kept. */
  private head = 0;
  /** Results kept. */
  size = 0;
  /** Bytes of memory the results kept hold (see cost()). */
  bytes = 0;
  /** Seqs whose result was let go for bytes before the member read it, with its position. */
  private readonly lostSeqs = new Map<number, number>();

  constructor(
    private readonly capacity: number,
    private readonly maxBytes: number,
  ) {}

  /**
   * Keeps `frame` as the result of `seq`, written at `position` (see the class). Returns false when
   * it was not kept (over the bound alone); results let go to make room are reported to `onLost`.
   */
  set(seq: number, frame: Buffer, position: number, onLost?: (seq: number) => void): boolean {
    const cost = costOf(frame);
    if (this.lostSeqs.size > 0) this.lostSeqs.delete(seq);
    if (cost > this.maxBytes) {
      this.markLost(seq, position, onLost);
      return false;
    }
    if (this.size === this.capacity) this.shift();
    while (this.bytes + cost > this.maxBytes) {
      const i = this.head;
      this.markLost(this.seqs[i], this.positions[i], onLost);
      this.shift();
    }
    this.push(seq, frame, cost, position);
    return true;
  }

  /** The result kept for `seq`, the latest stored if several. */
  get(seq: number): Buffer | undefined {
    for (let k = this.size - 1; k >= 0; k--) {
      const i = (this.head + k) % this.capacity;
      if (this.seqs[i] === seq) return this.frames[i];
    }
    return undefined;
  }

  /** Whether the result of `seq` was let go for bytes before the member read it. */
  lost(seq: number): boolean {
    return this.lostSeqs.size > 0 && this.lostSeqs.has(seq);
  }

  /** The member has read `count` results on this connection: the ones up to it go. */
  release(count: number): void {
    while (this.size > 0) {
      const p = this.positions[this.head];
      if (p === 0 || p > count) break;
      this.shift();
    }
    if (this.lostSeqs.size > 0) for (const [seq, p] of this.lostSeqs) if (p !== 0 && p <= count) this.lostSeqs.delete(seq);
  }

  /**
   * Forgets every result up to `seq` (a member without READ: see FRAME.features.read). The seqs
   * let go for bytes stay lost: such a request, sent again, is never run a second time.
   */
  dropUpTo(seq: number): void {
    this.rebuild((s) => s > seq);
  }

  /**
   * A new connection: every result kept goes again, in seq order (one per seq: the latest), each
   * written by `write`, which returns its position on that connection.
   */
  replay(write: (frame: Buffer) => number): void {
    const latest = new Map<number, number>();
    for (let k = 0; k < this.size; k++) latest.set(this.seqs[(this.head + k) % this.capacity], k);
    const order = [...latest].sort((a, b) => a[0] - b[0]).map(([, k]) => (this.head + k) % this.capacity);
    const kept = order.map((i): [number, Buffer, number] => [this.seqs[i], this.frames[i] as Buffer, this.costs[i]]);
    this.rebuild(() => false);
    for (const seq of this.lostSeqs.keys()) this.lostSeqs.set(seq, 0);
    for (const [seq, frame, cost] of kept) this.push(seq, frame, cost, write(frame));
  }

  private markLost(seq: number, position: number, onLost: ((seq: number) => void) | undefined): void {
    // Seqs only, at most `capacity` of them (the member never waits for more).
    if (this.lostSeqs.size >= this.capacity) this.lostSeqs.delete(this.lostSeqs.keys().next().value as number);
    this.lostSeqs.set(seq, position);
    onLost?.(seq);
  }

  private push(seq: number, frame: Buffer, cost: number, position: number): void {
    const i = (this.head + this.size) % this.capacity;
    if (i === this.seqs.length) {
      this.seqs.push(seq);
      this.frames.push(frame);
      this.costs.push(cost);
      this.positions.push(position);
    } else {
      this.seqs[i] = seq;
      this.frames[i] = frame;
      this.costs[i] = cost;
      this.positions[i] = position;
    }
    this.size++;
    this.bytes += cost;
  }

  private shift(): void {
    const i = this.head;
    this.bytes -= this.costs[i];
    this.frames[i] = undefined;
    this.head = i + 1 === this.capacity ? 0 : i + 1;
    this.size--;
  }

  /** Keeps only the results `keep` says yes to, in their order. */
  private rebuild(keep: (seq: number) => boolean): void {
    const kept: [number, Buffer, number, number][] = [];
    for (let k = 0; k < this.size; k++) {
      const i = (this.head + k) % this.capacity;
      if (keep(this.seqs[i])) kept.push([this.seqs[i], this.frames[i] as Buffer, this.costs[i], this.positions[i]]);
    }
    this.seqs.length = 0;
    this.frames.length = 0;
    this.costs.length = 0;
    this.positions.length = 0;
    this.head = 0;
    this.size = 0;
    this.bytes = 0;
    for (const [seq, frame, cost, position] of kept) this.push(seq, frame, cost, position);
  }
}

/** Buffers at most this big may be shared by several frames (a slab, Node's pool): a frame counts its own bytes there. */
const SHARED_BUFFER_BYTES = 64 * 1024;

/**
 * The memory a kept frame holds: its own bytes, or the whole of a buffer made for it (a big reply
 * encoded by the default codec sits in a buffer grown to about twice its size).
 */
function costOf(frame: Buffer): number {
  const whole = frame.buffer.byteLength;
  return whole > SHARED_BUFFER_BYTES ? whole : frame.length;
}
