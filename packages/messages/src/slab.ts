/**
 * Where a messenger writes its frames: one after another into a big buffer, so that a burst of
 * sends is one contiguous range of bytes, written to the socket as it is (no copy per frame, no
 * concatenation). A frame keeps its slab alive until it is acknowledged; a full slab is left to
 * those frames and a new one started.
 */
export class Slab {
  buf: Buffer = Buffer.alloc(0);
  /** The first free byte of `buf`. */
  at = 0;

  constructor(readonly size = 64 * 1024) {}

  /** Room for `n` more bytes at `at`: a new buffer when the current one has not enough. */
  reserve(n: number): void {
    if (this.at + n <= this.buf.length) return;
    this.buf = Buffer.allocUnsafeSlow(Math.max(this.size, n));
    this.at = 0;
  }

  /**
   * After a frame bigger than a slab (its own buffer, or one grown for it): start afresh next
   * time, so that one big message does not keep a big buffer alive for the small ones after it.
   */
  dropLarge(): void {
    if (this.buf.length > this.size) {
      this.buf = Buffer.alloc(0);
      this.at = 0;
    }
  }

  /** `n` bytes for a frame to be written in place; returns where they start. */
  reserveFrame(n: number): number {
    this.reserve(n);
    const start = this.at;
    this.at = start + n;
    return start;
  }

  /** Appends `head` bytes to fill in later and then `bytes`; returns where the frame starts. */
  put(bytes: Uint8Array, head: number): number {
    this.reserve(head + bytes.length);
    const start = this.at;
    this.buf.set(bytes, start + head);
    this.at = start + head + bytes.length;
    return start;
  }
}
