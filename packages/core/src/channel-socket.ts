import * as net from "node:net";
import { debug } from "./debug";

/** The part of a channel that a {@link ChannelSocket} reports to. */
export interface SocketOwner {
  /** True while the socket is connected to a host and past the handshake: writes go straight through. */
  readonly live: boolean;
  /** True while a connection attempt is reading the handshake reply. */
  readonly handshaking: boolean;
  /** A lifecycle event of the underlying connection; returns true when the user should see it. */
  onSocketEvent(event: LifecycleEvent, arg: unknown): boolean;
  /** Bytes (or `null` for end of stream) while handshaking, or the end of stream at any time. */
  onPush(chunk: Buffer | null, encoding?: BufferEncoding): boolean;
  /** A write while not live. */
  queueWrite(chunk: string | Uint8Array, encoding: BufferEncoding | undefined, cb: WriteCallback | undefined): boolean;
  /** An `end()` while not live. */
  queueEnd(cb: (() => void) | undefined): void;
  /** The user ended the writable side while live. */
  onUserEnd(): void;
  /** `destroy()` was called, by the user or by Node's own stream machinery: the owner tells which. */
  onDestroy(err: Error | undefined): void;
}

/** Events of the underlying connection that the channel manages across reconnects. */
export type LifecycleEvent = "connect" | "ready" | "error" | "end" | "close" | "finish";
/** A write callback. */
export type WriteCallback = (err?: Error | null) => void;

/**
 * Reading into one buffer of your own, as with `net.connect({ onread })`: each read fills
 * `buffer` from its start and `callback(bytes, buffer)` gets it (no `'data'` events, no Buffer
 * allocated per read). The buffer is reused for the next read: copy what you keep. Return `false`
 * to stop reading.
 *
 * @example
 * const socket = channel.connect(5000, {
 *   onread: { buffer: Buffer.alloc(64 * 1024), callback: (bytes, buf) => frames.feed(buf, 0, bytes) },
 * });
 */
export interface SocketReader {
  /** Where each read lands (a read takes at most its length). */
  buffer: Uint8Array;
  /** `buffer[0, bytes)` was read (or, right after a handshake, the bytes that came with it). */
  callback(bytes: number, buffer: Uint8Array): boolean | undefined;
}

const kOwner = Symbol("open-channel.owner");
const kLive = Symbol("open-channel.live");
const kReader = Symbol("open-channel.reader");
const kMayConnect = Symbol("open-channel.mayConnect");
const kLateConnect = Symbol("open-channel.lateConnect");

/** Node calls this on the socket for each read into the reader's buffer (`this` is the socket). */
function onReaderBytes(this: ChannelSocket, bytes: number, buffer: Uint8Array): boolean {
  const reader = this[kReader] as SocketReader;
  const owner = this[kOwner];
  if (this[kLive] || owner === undefined) return reader.callback(bytes, buffer) !== false;
  // The handshake (or the gap between connections): the channel reads, from a copy (the buffer
  // is reused for the next read).
  return owner.onPush(Buffer.from(buffer.subarray(0, bytes)));
}
const nativeWrite = net.Socket.prototype.write;
const nativeEnd = net.Socket.prototype.end;

function isLifecycle(event: string | symbol): event is LifecycleEvent {
  return event === "connect" || event === "ready" || event === "error" || event === "end" || event === "close" || event === "finish";
}

/**
 * The `net.Socket` that `channel.connect()` returns. It is a real socket, reconnected in place on
 * failover so the user's listeners stay attached. While the channel manages it, the socket:
 * - queues writes (and `end()`) made while there is no live connection, in order, callbacks kept;
 * - hides the lifecycle events of lost connections (`error`, `end`, `close`) and the raw `connect`,
 *   emitting `connect`/`ready` itself once the handshake has passed;
 * - reads the handshake reply before any byte reaches the user.
 * Once the channel is closed the socket behaves exactly like a plain `net.Socket`.
 */
export class ChannelSocket extends net.Socket {
  /** @internal */
  [kOwner]: SocketOwner | undefined;
  /** @internal The owner's `live`, kept here so that the hot path of write() is one field read. */
  [kLive] = false;
  /** @internal Reading into a buffer of the user's (see SocketReader), or through `'data'`. */
  [kReader]: SocketReader | undefined;
  /** @internal A connection attempt waits for the transport's connect(): one goes through. */
  [kMayConnect] = false;
  /** @internal A transport's connect() still under way for an attempt that is over: it must do nothing. */
  [kLateConnect]: Promise<unknown> | undefined;

  constructor(owner: SocketOwner, reader?: SocketReader) {
    // `onread` is a constructor option of net.Socket (Node's docs list it under connect() before v22;
    // the constructor is where Node reads it, and it holds across reconnects).
    super(
      (reader === undefined
        ? { allowHalfOpen: false }
        : { allowHalfOpen: false, onread: { buffer: reader.buffer, callback: onReaderBytes } }) as net.SocketConstructorOpts,
    );
    this[kOwner] = owner;
    this[kReader] = reader;
    // No Nagle (a no-op on pipes). Set before any connect: Node applies it to every connection
    // this socket makes, reconnections included (connect({ noDelay }) on an existing socket is
    // ignored).
    this.setNoDelay(true);
  }

  /**
   * net.Socket#connect() resets `this.write` to the plain one on every (re)connect: put ours back
   * (an own data property, which keeps the hot path a plain method call).
   */
  override connect(...args: unknown[]): this {
    // Only the transport connects a managed socket, once per attempt. One that looked the host up
    // first may come back after the attempt ended (a timeout, the channel closed): ignored, or it
    // would open a connection on a closed socket.
    if (this[kLateConnect] !== undefined || (this[kOwner] !== undefined && !this[kMayConnect])) {
      debug("a transport's connect() after its connection attempt ended: ignored");
      return this;
    }
    this[kMayConnect] = false;
    (net.Socket.prototype.connect as (...a: unknown[]) => this).apply(this, args);
    if (this[kOwner] !== undefined) this.write = ChannelSocket.prototype.write;
    return this;
  }

  /** @internal A connection attempt calls the transport's connect(): let its socket.connect() through. */
  expectConnect(): void {
    this[kMayConnect] = true;
  }

  /**
   * @internal The attempt is over. `started`: the transport's connect() if it has not settled yet;
   * until it does, a connect() it makes is ignored (even once the socket is plain).
   */
  endConnectWindow(started: Promise<unknown> | undefined): void {
    this[kMayConnect] = false;
    if (started === undefined) return;
    this[kLateConnect] = started;
    const done = (): void => {
      if (this[kLateConnect] === started) this[kLateConnect] = undefined;
    };
    started.then(done, done);
  }

  /** @internal Stops the channel from managing this socket: it is a plain socket from now on. */
  detach(): void {
    this[kOwner] = undefined;
    this[kLive] = false;
  }

  /** @internal The channel tells whether the connection is live. */
  setLive(live: boolean): void {
    this[kLive] = live;
  }

  /** @internal Writes past the queue (handshake, flush). */
  rawWrite(chunk: string | Uint8Array, encoding?: BufferEncoding, cb?: WriteCallback): boolean {
    return nativeWrite.call(this, chunk, encoding as BufferEncoding, cb);
  }

  /** @internal Ends past the queue. */
  rawEnd(cb?: () => void): void {
    (nativeEnd as (cb?: () => void) => net.Socket).call(this, cb);
  }

  /**
   * @internal Hands bytes to the user past the handshake hook (`null`: the end of the stream):
   * their reader's callback, or the readable side.
   */
  rawPush(chunk: Buffer | null, encoding?: BufferEncoding): boolean {
    const reader = this[kReader];
    if (reader !== undefined && chunk !== null) return reader.callback(chunk.length, chunk) !== false;
    return super.push(chunk, encoding);
  }

  /**
   * @internal Makes sure the new connection is being read. A read requested before the first
   * connection is deferred by net.Socket to its own `connect` listener, and the raw `connect` is
   * hidden until the handshake is done; without this the handshake reply would never be read.
   */
  startReading(): void {
    this._read(this.readableHighWaterMark);
  }

  /** @internal Emits to the user's listeners past the lifecycle filter. */
  emitToUser(event: string, ...args: unknown[]): boolean {
    return super.emit(event, ...args);
  }

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    const owner = this[kOwner];
    if (owner !== undefined && isLifecycle(event) && !owner.onSocketEvent(event, args[0])) return true;
    return super.emit(event, ...args);
  }

  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    // Live: past the handshake, bytes go straight to the reader (the hot path: one field read).
    if (this[kLive] && chunk !== null) return super.push(chunk, encoding);
    const owner = this[kOwner];
    if (owner !== undefined && (chunk === null || owner.handshaking)) return owner.onPush(chunk as Buffer | null, encoding);
    return super.push(chunk, encoding);
  }

  override write(chunk: string | Uint8Array, encoding?: BufferEncoding | WriteCallback, cb?: WriteCallback): boolean {
    if (this[kLive]) return nativeWrite.call(this, chunk, encoding as BufferEncoding, cb);
    const owner = this[kOwner];
    if (owner === undefined) return nativeWrite.call(this, chunk, encoding as BufferEncoding, cb);
    if (typeof encoding === "function") return owner.queueWrite(chunk, undefined, encoding);
    return owner.queueWrite(chunk, encoding, cb);
  }

  override end(...args: unknown[]): this {
    const owner = this[kOwner];
    if (owner === undefined) return (nativeEnd as (...a: unknown[]) => this).apply(this, args);
    if (owner.live) {
      owner.onUserEnd();
      return (nativeEnd as (...a: unknown[]) => this).apply(this, args);
    }
    // end([chunk[, encoding]][, cb]) while not connected: queue it like a write.
    const cb = typeof args[args.length - 1] === "function" ? (args.pop() as () => void) : undefined;
    if (args[0] !== undefined && args[0] !== null) this.write(args[0] as string | Uint8Array, args[1] as BufferEncoding);
    owner.queueEnd(cb);
    return this;
  }

  override destroy(error?: Error): this {
    this[kOwner]?.onDestroy(error);
    return super.destroy(error);
  }
}
