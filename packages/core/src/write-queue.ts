/** A write made while the channel was not connected. */
interface QueuedWrite {
  chunk: string | Uint8Array;
  encoding: BufferEncoding | undefined;
  callback: ((err?: Error | null) => void) | undefined;
}

/**
 * Writes made while the channel is not connected, kept in order with their callbacks, and an
 * `end()` the user asked for meanwhile. Flushed into the real socket once it is connected.
 */
export class WriteQueue {
  private items: QueuedWrite[] = [];
  private bytes = 0;
  /** `end()` was called while queued; the socket ends after the flush. */
  ended = false;

  get length(): number {
    return this.items.length;
  }

  /** Bytes waiting (strings counted by their UTF-8 length, as Node would write them). */
  get byteLength(): number {
    return this.bytes;
  }

  push(chunk: string | Uint8Array, encoding: BufferEncoding | undefined, callback: QueuedWrite["callback"]): void {
    this.items.push({ chunk, encoding, callback });
    this.bytes += typeof chunk === "string" ? Buffer.byteLength(chunk, encoding) : chunk.byteLength;
  }

  /** Hands every queued write to `write` in order; returns what the last write returned. */
  flush(write: (chunk: string | Uint8Array, encoding: BufferEncoding | undefined, cb: QueuedWrite["callback"]) => boolean): boolean {
    const items = this.items;
    this.items = [];
    this.bytes = 0;
    let ok = true;
    for (const item of items) ok = write(item.chunk, item.encoding, item.callback);
    return ok;
  }

  /** Fails every queued write with `err` (the channel closed before they could be sent). */
  fail(err: Error): void {
    const items = this.items;
    this.items = [];
    this.bytes = 0;
    this.ended = false;
    for (const item of items) if (item.callback) process.nextTick(item.callback, err);
  }
}
