/**
 * The host's last replies to one member (RES and FAIL frames by seq), for a member that
 * reconnects to this same host without having read them. At most `capacity` are kept; the oldest
 * stored goes first. A ring of two arrays, not a Map: storing a reply (once per request) is two
 * array stores; looking one up happens only after a reconnect, and walks the ring.
 */
export class Results {
  private readonly seqs: number[] = [];
  private readonly frames: (Buffer | undefined)[] = [];
  /** The slot the next result goes to (once the arrays are `capacity` long: the oldest one). */
  private next = 0;

  constructor(private readonly capacity: number) {}

  /** Keeps `frame` as the result of `seq` (a later one for the same seq wins). */
  set(seq: number, frame: Buffer): void {
    const i = this.next;
    if (i === this.seqs.length) {
      this.seqs.push(seq);
      this.frames.push(frame);
    } else {
      this.seqs[i] = seq;
      this.frames[i] = frame;
    }
    this.next = i + 1 === this.capacity ? 0 : i + 1;
  }

  /** The result kept for `seq`, the latest stored if several. */
  get(seq: number): Buffer | undefined {
    const n = this.seqs.length;
    for (let k = 1; k <= n; k++) {
      const i = (this.next - k + n) % n;
      if (this.seqs[i] === seq && this.frames[i] !== undefined) return this.frames[i];
    }
    return undefined;
  }

  /** Forgets every result up to `seq` (the member has them). */
  dropUpTo(seq: number): void {
    for (let i = 0; i < this.seqs.length; i++) if (this.seqs[i] <= seq) this.frames[i] = undefined;
  }

  /** The results kept, in seq order (one per seq: the latest stored). */
  inOrder(): Buffer[] {
    const latest = new Map<number, Buffer>();
    const n = this.seqs.length;
    for (let k = n; k >= 1; k--) {
      const i = (this.next - k + n) % n;
      const frame = this.frames[i];
      if (frame !== undefined) latest.set(this.seqs[i], frame);
    }
    return [...latest].sort((a, b) => a[0] - b[0]).map(([, frame]) => frame);
  }
}
