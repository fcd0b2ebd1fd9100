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
 * a ring walked from its head, not a map: no hashing, no allocation per frame, no array grown and
 * shrunk as the window fills and drains. A request leaves only with its reply, so entries can also
 * leave from the middle; they are marked done and dropped when the head reaches them (or when such
 * gaps grow larger than what is live).
 *
 * Positions (`head`, `tail`, `scan`) count entries ever added since the ring was last rebuilt;
 * an entry's slot is its position masked by the ring's size (a power of two).
 */
export class Outbox<T extends OutboxEntry> {
  private items: Array<T | undefined> = new Array(INITIAL_SLOTS);
  private mask = INITIAL_SLOTS - 1;
  /** Position of the oldest entry kept. */
  private head = 0;
  /** Position the next entry goes to. */
  private tail = 0;
  /** Position of the first entry not yet passed by an acknowledgement. */
  private scan = 0;
  /** Position of the first entry not yet handed out by nextUnsent() (on this connection). */
  private sendPos = 0;
  private acked = 0;
  /** Inside acknowledge() or forEach(): the ring must stay as it is until they end. */
  private walking = false;
  /** Live entries. */
  size = 0;
  /** Bytes of the live entries' frames. */
  bytes = 0;

  add(entry: T): void {
    if (this.tail - this.head > this.mask) this.rebuild(false, 2 * (this.mask + 1));
    this.items[this.tail & this.mask] = entry;
    this.tail++;
    this.size++;
    this.bytes += entry.end - entry.start;
  }

  /** The live entry of `seq`, if any. */
  get(seq: number): T | undefined {
    const { items, mask } = this;
    let lo = this.head;
    let hi = this.tail - 1;
    if (lo > hi) return undefined;
    // Without gaps dropped in the middle, an entry's place follows from its seq.
    const guess = lo + (seq - (items[lo & mask] as T).seq);
    if (guess >= lo && guess <= hi && (items[guess & mask] as T).seq === seq) return live(items[guess & mask]);
    while (lo <= hi) {
      const mid = lo + ((hi - lo) >>> 1);
      const e = items[mid & mask] as T;
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
    const { items, mask, tail } = this;
    let i = Math.max(this.scan, this.head);
    this.walking = true;
    try {
      for (; i < tail; i++) {
        const e = items[i & mask] as T;
        if (e.seq > seq) break;
        if (!e.done) onAcked(e);
      }
    } finally {
      this.walking = false;
    }
    this.scan = i;
    this.trim();
  }

  /**
   * The oldest live entry not yet handed out since it was added (or since unsendAll()), or
   * undefined: what is left to write. Entries are added in the order they go, so the entries to
   * write are always the newest ones, and no list of them is kept anywhere else.
   */
  nextUnsent(): T | undefined {
    const { items, mask, tail } = this;
    let i = Math.max(this.sendPos, this.head);
    while (i < tail) {
      const e = items[i++ & mask] as T;
      if (!e.done) {
        this.sendPos = i;
        return e;
      }
    }
    this.sendPos = i;
    return undefined;
  }

  /** Every live entry is to be written again (a new connection): nextUnsent() starts from the oldest. */
  unsendAll(): void {
    this.sendPos = this.head;
  }

  /** Calls `fn` for each live entry, oldest first. */
  forEach(fn: (entry: T) => void): void {
    const { items, mask, tail } = this;
    const walking = this.walking;
    this.walking = true;
    try {
      for (let i = this.head; i < tail; i++) {
        const e = items[i & mask] as T;
        if (!e.done) fn(e);
      }
    } finally {
      this.walking = walking;
    }
    this.trim();
  }

  /** Drops every entry. */
  clear(): void {
    this.items = new Array(INITIAL_SLOTS);
    this.mask = INITIAL_SLOTS - 1;
    this.head = 0;
    this.tail = 0;
    this.scan = 0;
    this.sendPos = 0;
    this.size = 0;
    this.bytes = 0;
  }

  private trim(): void {
    if (this.walking) return;
    const { items, mask } = this;
    while (this.head < this.tail && (items[this.head & mask] as T).done) items[this.head++ & mask] = undefined;
    if (this.head === this.tail) {
      // Empty: start again from the first slot (positions stay small), keeping the ring.
      this.head = 0;
      this.tail = 0;
      this.scan = 0;
      this.sendPos = 0;
      return;
    }
    // Done entries behind a live one (a request waiting for its reply): keep only the live ones
    // once the waste outgrows them, in a ring sized for them.
    const kept = this.tail - this.head;
    if (kept > 4096 && kept > 4 * this.size) this.rebuild(true, INITIAL_SLOTS);
  }

  /** The entries kept (only the live ones if `liveOnly`) in a new ring of at least `slots`, from position 0. */
  private rebuild(liveOnly: boolean, slots: number): void {
    const { items, mask } = this;
    const count = liveOnly ? this.size : this.tail - this.head;
    let size = slots;
    while (size < 2 * count) size *= 2;
    const ring: Array<T | undefined> = new Array(size);
    let n = 0;
    let scan = -1;
    let sendPos = -1;
    for (let i = this.head; i < this.tail; i++) {
      const e = items[i & mask] as T;
      if (liveOnly && e.done) continue;
      if (scan < 0 && i >= this.scan) scan = n;
      if (sendPos < 0 && i >= this.sendPos) sendPos = n;
      ring[n++] = e;
    }
    this.items = ring;
    this.mask = size - 1;
    this.head = 0;
    this.tail = n;
    this.scan = scan < 0 ? n : scan;
    this.sendPos = sendPos < 0 ? n : sendPos;
  }
}

/** Slots of a new ring (it doubles when full). */
const INITIAL_SLOTS = 64;

function live<T extends OutboxEntry>(e: T | undefined): T | undefined {
  return e === undefined || e.done ? undefined : e;
}
