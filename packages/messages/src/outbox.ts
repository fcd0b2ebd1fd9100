/** What an outbox holds: one sequenced frame, `buf[start, end)`. */
export interface OutboxEntry {
  readonly seq: number;
  readonly start: number;
  readonly end: number;
  /** Removed (acknowledged, settled or given up): kept in place until trimmed away. */
  done: boolean;
}

/**
 * The frames a messenger has sent and the host has not yet acknowledged, oldest first. Frames are
 * added in sequence order and almost always leave in that order too (cumulative acks), so this is
 * an array walked from its head, not a map: no hashing, no allocation per frame. A request leaves
 * only with its reply, so entries can also leave from the middle; they are marked done and dropped
 * when the head reaches them (or when such gaps grow larger than what is live).
 */
export class Outbox<T extends OutboxEntry> {
  private items: Array<T | undefined> = [];
  private head = 0;
  /** Index of the first entry not yet passed by an acknowledgement. */
  private scan = 0;
  private acked = 0;
  /** Inside acknowledge() or forEach(): the array must stay as it is until they end. */
  private walking = false;
  /** Live entries. */
  size = 0;
  /** Bytes of the live entries' frames. */
  bytes = 0;

  add(entry: T): void {
    this.items.push(entry);
    this.size++;
    this.bytes += entry.end - entry.start;
  }

  /** The live entry of `seq`, if any. */
  get(seq: number): T | undefined {
    const items = this.items;
    let lo = this.head;
    let hi = items.length - 1;
    // Without gaps dropped in the middle, an entry's place follows from its seq.
    const first = items[lo];
    if (first === undefined) return undefined;
    const guess = lo + (seq - first.seq);
    if (guess >= lo && guess <= hi && (items[guess] as T).seq === seq) return live(items[guess]);
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const e = items[mid] as T;
      if (e.seq === seq) return live(e);
      if (e.seq < seq) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  /** Removes `entry`; false if it was removed already. */
  remove(entry: T): boolean {
    if (entry.done) return false;
    entry.done = true;
    this.size--;
    this.bytes -= entry.end - entry.start;
    this.trim();
    return true;
  }

  /**
   * Everything up to `seq` is acknowledged: calls `onAcked` for each live entry not passed
   * before, oldest first (it removes what it wants removed).
   */
  acknowledge(seq: number, onAcked: (entry: T) => void): void {
    if (seq <= this.acked) return;
    this.acked = seq;
    const items = this.items;
    let i = Math.max(this.scan, this.head);
    this.walking = true;
    try {
      for (; i < items.length; i++) {
        const e = items[i] as T;
        if (e.seq > seq) break;
        if (!e.done) onAcked(e);
      }
    } finally {
      this.walking = false;
    }
    this.scan = i;
    this.trim();
  }

  /** Calls `fn` for each live entry, oldest first. */
  forEach(fn: (entry: T) => void): void {
    const items = this.items;
    const walking = this.walking;
    this.walking = true;
    try {
      for (let i = this.head; i < items.length; i++) {
        const e = items[i] as T;
        if (!e.done) fn(e);
      }
    } finally {
      this.walking = walking;
    }
    this.trim();
  }

  /** Drops every entry. */
  clear(): void {
    this.items = [];
    this.head = 0;
    this.scan = 0;
    this.size = 0;
    this.bytes = 0;
  }

  private trim(): void {
    if (this.walking) return;
    const items = this.items;
    while (this.head < items.length && (items[this.head] as T).done) items[this.head++] = undefined;
    if (this.head === items.length) {
      this.clear();
      return;
    }
    // Done entries behind a live one (a request waiting for its reply) or a long-gone head:
    // keep only the live ones once the waste outgrows them.
    const kept = items.length - this.head;
    if (this.head > 1024 && this.head * 2 > items.length) {
      this.compact((e) => e !== undefined);
    } else if (kept > 4096 && kept > 4 * this.size) {
      this.compact((e) => e !== undefined && !e.done);
    }
  }

  private compact(keep: (e: T | undefined) => boolean): void {
    const items = this.items.slice(this.head).filter(keep) as T[];
    let scan = 0;
    while (scan < items.length && items[scan].seq <= this.acked) scan++;
    this.items = items;
    this.head = 0;
    this.scan = scan;
  }
}

function live<T extends OutboxEntry>(e: T | undefined): T | undefined {
  return e === undefined || e.done ? undefined : e;
}
