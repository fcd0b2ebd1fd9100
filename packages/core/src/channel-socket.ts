import * as net from "node:net";
import { debug } from "./debug";
import { asError } from "./errors";
import { kSecureSocket } from "./handshake";

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
/** The plain socket of the current connection while it is being secured (stream mode). */
const kRaw = Symbol("open-channel.raw");
/** Which connection of the socket the events of a raw or secure socket belong to. */
const kGeneration = Symbol("open-channel.generation");
/** A write callback waiting for the secure socket's 'drain'. */
const kDrainCb = Symbol("open-channel.drainCb");
/** The user unref'ed the socket: every connection's plain socket is unref'ed. */
const kUnref = Symbol("open-channel.unref");
/** Stream mode: bytes read on the current connection (as a handle's `bytesRead` counts them). */
const kBytesIn = Symbol("open-channel.bytesIn");
/** Stream mode: bytes given to the current connection's secure socket. */
const kBytesOut = Symbol("open-channel.bytesOut");

/** The part of net.Socket's own (undocumented, long-stable) state that stream mode sets itself. */
interface SocketInternals {
  _peername: object | null;
  _sockname: object | null;
  _undestroy(): void;
  _unrefTimer?(): void;
  _getsockname(): object;
}

/** The secure connection ended without an error of its own: as a reset connection, for the channel. */
function closedError(): NodeJS.ErrnoException {
  const err = new Error("the secure connection closed") as NodeJS.ErrnoException;
  err.code = "ECONNRESET";
  err.syscall = "read";
  return err;
}

/** An error of the secure layer (a TLS alert, a certificate refused): a connection error, for the channel. */
function connectionError(err: unknown): Error {
  const e = asError(err) as NodeJS.ErrnoException;
  if (e.syscall === undefined) e.syscall = "secure";
  return e;
}

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
  /**
   * @internal Stream mode (transports with a secure layer): the secure socket the current
   * connection runs over. This socket then has no handle of its own: its reads are the secure
   * socket's `'data'`, its writes go to it, and its lifecycle events follow it.
   */
  [kSecureSocket]: net.Socket | undefined;
  /** @internal Stream mode: the plain socket the transport connects, until it is secured. */
  [kRaw]: net.Socket | undefined;
  /** @internal True once the socket runs its connections over secure sockets. */
  streamMode = false;
  [kGeneration] = 0;
  [kDrainCb]: WriteCallback | undefined;
  [kUnref] = false;
  [kBytesIn] = 0;
  [kBytesOut] = 0;

  constructor(owner: SocketOwner | undefined, reader?: SocketReader) {
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
    if (this.streamMode) {
      this.streamMode = false;
      for (const name of [...Object.keys(streamMethods), "pending", "bytesRead", "bytesWritten"]) Reflect.deleteProperty(this, name);
    }
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

  /**
   * @internal Stream mode: a new connection over `raw`, which the transport is about to connect
   * (or connects); once it has, `secure(raw)` gives the secure socket this socket's bytes travel
   * over, and this socket emits `connect`. Any failure destroys this socket with the error, as a
   * failed connect of its own would.
   */
  connectSecure(raw: net.Socket, secure: (raw: net.Socket) => Promise<net.Socket>): this {
    const self = this as unknown as SocketInternals;
    if (!this.streamMode) {
      // Own properties, so that a socket with a handle of its own (every other transport) keeps
      // net.Socket's methods untouched on its hot path.
      this.streamMode = true;
      Object.assign(this, streamMethods);
      // net.Socket's `pending` is "no handle, or connecting": ours follows the secure socket.
      Object.defineProperty(this, "pending", {
        configurable: true,
        get: () => this.connecting || this[kSecureSocket] === undefined,
      });
      // `bytesRead` and `bytesWritten` count what the handle read and wrote (plus, for the
      // latter, what waits to be written): ours, on the current connection.
      Object.defineProperty(this, "bytesRead", { configurable: true, get: () => this[kBytesIn] });
      Object.defineProperty(this, "bytesWritten", { configurable: true, get: () => this[kBytesOut] + this.writableLength });
    }
    if (this.destroyed) self._undestroy();
    self._peername = null;
    self._sockname = null;
    if (this[kOwner] !== undefined) this.write = ChannelSocket.prototype.write;
    (this as { connecting: boolean }).connecting = true;
    this[kSecureSocket] = undefined;
    this[kRaw] = raw;
    this[kDrainCb] = undefined;
    this[kBytesIn] = 0;
    this[kBytesOut] = 0;
    const generation = ++this[kGeneration];
    const current = (): boolean => this[kGeneration] === generation && !this.destroyed;
    if (this[kUnref]) raw.unref();
    // Kept for the raw socket's whole life: an error there must never crash the process.
    raw.on("error", (err) => {
      if (current()) this.destroy(connectionError(err));
    });
    raw.once("close", () => {
      if (current() && this[kSecureSocket] === undefined) this.destroy(closedError());
    });
    raw.once("connect", () => {
      if (!current()) return void raw.destroy();
      secure(raw).then(
        (inner) => {
          if (!current()) return void inner.destroy();
          this.attachSecure(inner, generation);
        },
        (err: unknown) => {
          raw.destroy();
          if (current()) this.destroy(connectionError(err));
        },
      );
    });
    return this;
  }

  /** @internal Stream mode: the secure socket of the current connection is there: connected. */
  attachSecure(inner: net.Socket, generation: number): void {
    const self = this as unknown as SocketInternals;
    const current = (): boolean => this[kGeneration] === generation && !this.destroyed;
    this[kSecureSocket] = inner;
    self._peername = { address: inner.remoteAddress, port: inner.remotePort, family: inner.remoteFamily };
    self._sockname = { address: inner.localAddress, port: inner.localPort, family: inner.localFamily };
    inner.on("data", (chunk: Buffer) => {
      if (current()) this.onSecureData(inner, chunk);
    });
    let eof = false;
    inner.on("end", () => {
      eof = true;
      if (current()) this.push(null);
    });
    inner.on("error", (err) => {
      if (current()) this.destroy(connectionError(err));
    });
    inner.on("close", () => {
      if (!current()) return;
      // After the end of the stream (or once the channel let go of this socket) a close is a plain
      // one, as a socket's own; before it, the connection was cut under us (a lease lost).
      if (eof || this[kOwner] === undefined) this.destroy();
      else this.destroy(closedError());
    });
    inner.on("drain", () => {
      const cb = this[kDrainCb];
      this[kDrainCb] = undefined;
      if (cb !== undefined && current()) cb();
    });
    (this as { connecting: boolean }).connecting = false;
    this.emit("connect");
  }

  /** @internal Stream mode: bytes from the secure socket, as a read of our own handle would push them. */
  onSecureData(inner: net.Socket, chunk: Buffer): void {
    (this as unknown as SocketInternals)._unrefTimer?.();
    this[kBytesIn] += chunk.length;
    const reader = this[kReader];
    let more: boolean;
    if (reader !== undefined && this[kLive]) {
      // Into the user's buffer, as net.Socket's onread does.
      more = true;
      const { buffer } = reader;
      for (let at = 0; at < chunk.length; at += buffer.length) {
        const n = Math.min(buffer.length, chunk.length - at);
        buffer.set(chunk.subarray(at, at + n));
        more = reader.callback(n, buffer) !== false;
      }
    } else {
      more = this.push(chunk);
    }
    if (!more) inner.pause();
  }

  /** net.Socket reads its own address from its handle; in stream mode, that of the secure socket. */
  _getsockname(): object {
    if (this.streamMode) return (this as unknown as SocketInternals)._sockname ?? {};
    return (net.Socket.prototype as unknown as SocketInternals)._getsockname.call(this);
  }

  override setNoDelay(noDelay?: boolean): this {
    const under = this[kSecureSocket] ?? this[kRaw];
    if (this.streamMode && under !== undefined) under.setNoDelay(noDelay);
    return super.setNoDelay(noDelay);
  }

  override setKeepAlive(enable?: boolean, initialDelay?: number): this {
    const under = this[kSecureSocket] ?? this[kRaw];
    if (this.streamMode && under !== undefined) under.setKeepAlive(enable, initialDelay);
    return super.setKeepAlive(enable, initialDelay);
  }

  override ref(): this {
    this[kUnref] = false;
    if (!this.streamMode) return super.ref();
    this[kRaw]?.ref();
    return this;
  }

  override unref(): this {
    this[kUnref] = true;
    if (!this.streamMode) return super.unref();
    this[kRaw]?.unref();
    return this;
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

/** Secure sockets corked until the end of this tick. */
const corked = new WeakSet<net.Socket>();
function uncork(inner: net.Socket): void {
  corked.delete(inner);
  inner.uncork();
}
/**
 * Writes made in one tick leave as one write to the secure socket: one TLS record, one encryption,
 * instead of one per write (the message layer writes each message on its own).
 */
function corkForTick(inner: net.Socket): void {
  if (corked.has(inner)) return;
  corked.add(inner);
  inner.cork();
  process.nextTick(uncork, inner);
}

const netProto = net.Socket.prototype as unknown as {
  _destroy(this: net.Socket, err: Error | null, cb: (err?: Error | null) => void): void;
};

/**
 * The stream side of a socket in stream mode, installed as its own properties: reads resume the
 * secure socket, writes go to it (their callback once it takes more), the end of the writable
 * side ends it, and destroying this socket destroys it.
 */
const streamMethods = {
  _read(this: ChannelSocket, _size: number): void {
    this[kSecureSocket]?.resume();
  },
  _write(this: ChannelSocket, chunk: Buffer | string, encoding: BufferEncoding, cb: WriteCallback): void {
    const inner = this[kSecureSocket];
    if (inner === undefined) return void cb(closedError());
    (this as unknown as SocketInternals)._unrefTimer?.();
    this[kBytesOut] += Buffer.byteLength(chunk, encoding);
    corkForTick(inner);
    if (inner.write(chunk, encoding)) cb();
    else this[kDrainCb] = cb;
  },
  _writev(this: ChannelSocket, chunks: Array<{ chunk: Buffer | string; encoding: BufferEncoding }>, cb: WriteCallback): void {
    const inner = this[kSecureSocket];
    if (inner === undefined) return void cb(closedError());
    (this as unknown as SocketInternals)._unrefTimer?.();
    inner.cork();
    let ok = true;
    for (const { chunk, encoding } of chunks) {
      this[kBytesOut] += Buffer.byteLength(chunk, encoding);
      ok = inner.write(chunk, encoding);
    }
    inner.uncork();
    if (ok) cb();
    else this[kDrainCb] = cb;
  },
  _final(this: ChannelSocket, cb: (err?: Error | null) => void): void {
    this[kSecureSocket]?.end();
    cb();
  },
  _destroy(this: ChannelSocket, err: Error | null, cb: (err?: Error | null) => void): void {
    const secure = this[kSecureSocket];
    const raw = this[kRaw];
    this[kSecureSocket] = undefined;
    this[kRaw] = undefined;
    this[kDrainCb] = undefined;
    secure?.destroy();
    raw?.destroy();
    netProto._destroy.call(this, err, cb);
  },
};
