import { ChannelSocket, type LifecycleEvent, type SocketOwner, type SocketReader, type WriteCallback } from "./channel-socket";
import { argError, openChannelError } from "./errors";
import { WriteQueue } from "./write-queue";

/** What a {@link SocketBridge} tells its channel about the connection under the socket. */
export interface BridgeEvents {
  /** The channel is closed: writes fail. */
  readonly closed: boolean;
  /** A connection attempt is reading the host's handshake reply. */
  readonly handshaking: boolean;
  /** The transport's connection is made (the raw `connect`, hidden from the user). */
  connected(): void;
  /** The connection failed (the user never sees the error). */
  connectionError(err: Error): void;
  /** The connection closed. */
  connectionClosed(): void;
  /** The host ended the connection. */
  endOfStream(): void;
  /** Bytes of the handshake reply (and what came with it); returns whether to read on. */
  handshakeBytes(chunk: Buffer): boolean;
  /** The user closed the socket: `destroy()`, or the `close` after their `end()`. */
  userClosed(): void;
}

/**
 * The channel's side of the socket `connect()` returns: which connection is live, the writes (and
 * `end()`) queued while none is, `drain` after them, and who destroyed the socket (the user closes
 * the channel; Node or the channel itself only loses a connection).
 */
export class SocketBridge implements SocketOwner {
  readonly socket: ChannelSocket;
  /** The current connection emitted `close`. */
  closeSeen = false;
  /** The current connection saw its end of stream. */
  private eofSeen = false;
  private readonly queue = new WriteQueue();
  private isLive = false;
  /** A queued write returned false: emit 'drain' once the queue is flushed. */
  private needDrain = false;
  /** The callback of an end() made while not connected. */
  private endCallback: (() => void) | undefined;
  /** The user ended or closed the socket: its events are theirs again. */
  private userClosing = false;
  /** Set while the channel itself destroys the socket (so it is not taken for the user's close). */
  private internalDestroy = false;

  constructor(
    private readonly channel: BridgeEvents,
    private readonly name: string,
    reader?: SocketReader,
  ) {
    this.socket = new ChannelSocket(this, reader);
  }

  /** Live: past the handshake, writes go straight to the connection (the socket keeps a copy). */
  get live(): boolean {
    return this.isLive;
  }

  set live(value: boolean) {
    this.isLive = value;
    this.socket.setLive(value);
  }

  get handshaking(): boolean {
    return this.channel.handshaking;
  }

  /** A new connection is about to be made on the socket. */
  newConnection(): void {
    this.eofSeen = false;
    this.closeSeen = false;
  }

  /** The connection is live: writes queued meanwhile go first, in order, then a queued `end()`. */
  flush(): void {
    const { queue, socket } = this;
    if (queue.length === 0 && !queue.ended) return;
    const ended = queue.ended;
    socket.cork();
    const ok = queue.flush((chunk, encoding, cb) => socket.rawWrite(chunk, encoding, cb));
    if (ended) {
      this.userClosing = true;
      socket.rawEnd(this.endCallback);
      this.endCallback = undefined;
    }
    socket.uncork();
    if (ok && this.needDrain) process.nextTick(() => socket.emitToUser("drain"));
    this.needDrain = false;
  }

  /** Fails every queued write with `err`. */
  failQueued(err: Error): void {
    this.queue.fail(err);
  }

  /** Destroys the current connection, as the channel (not the user's close). */
  destroy(): void {
    this.internalDestroy = true;
    try {
      this.socket.destroy();
    } finally {
      this.internalDestroy = false;
    }
  }

  // ---- SocketOwner: what the socket reports --------------------------------------------------

  onSocketEvent(event: LifecycleEvent, arg: unknown): boolean {
    if (this.userClosing) {
      if (event === "close") this.channel.userClosed();
      return true;
    }
    switch (event) {
      case "connect":
        this.channel.connected();
        return false;
      case "error":
        this.channel.connectionError(arg as Error);
        return false;
      case "close":
        this.closeSeen = true;
        this.channel.connectionClosed();
        return false;
      default:
        return false;
    }
  }

  onPush(chunk: Buffer | null, encoding?: BufferEncoding): boolean {
    if (chunk === null) {
      this.eofSeen = true;
      if (this.userClosing) return this.socket.rawPush(null);
      this.channel.endOfStream();
      return false;
    }
    if (this.channel.handshaking) return this.channel.handshakeBytes(chunk);
    return this.socket.rawPush(chunk, encoding);
  }

  queueWrite(chunk: string | Uint8Array, encoding: BufferEncoding | undefined, cb: WriteCallback | undefined): boolean {
    if (this.channel.closed || this.queue.ended) {
      const err = openChannelError("ERR_OPEN_CHANNEL_CLOSED", { channel: this.name, closed: "channel" });
      if (cb) process.nextTick(cb, err);
      return false;
    }
    if (typeof chunk !== "string" && !(chunk instanceof Uint8Array)) {
      throw argError("ERR_INVALID_ARG_TYPE", "chunk", "of type string or an instance of Buffer or Uint8Array", chunk);
    }
    this.queue.push(chunk, encoding, cb);
    const ok = this.queue.byteLength < this.socket.writableHighWaterMark;
    if (!ok) this.needDrain = true;
    return ok;
  }

  queueEnd(cb: (() => void) | undefined): void {
    this.queue.ended = true;
    this.endCallback = cb;
  }

  onUserEnd(): void {
    if (!this.eofSeen) this.userClosing = true;
  }

  onDestroy(err: Error | undefined): void {
    // Node destroys the socket itself on connection errors (they carry a `syscall`) and after the
    // peer's end of stream; anything else is the user closing the channel. Between two attempts
    // the socket is destroyed already (and `eofSeen` may tell of the last one): only the user calls.
    const internal = this.internalDestroy || (!this.socket.destroyed && (this.eofSeen || (err !== undefined && "syscall" in err)));
    if (!internal) {
      this.userClosing = true;
      this.channel.userClosed();
    } else {
      // The connection is going: from this moment writes are queued for the next one, not handed
      // to a socket that would only fail them.
      this.live = false;
    }
  }
}
