import { EventEmitter } from "node:events";
import type * as net from "node:net";
import type { SocketReader } from "./channel-socket";
import { type AttemptChannel, ConnectionAttempt } from "./connection-attempt";
import { debug } from "./debug";
import { type ElectionChannel, elect } from "./election";
import { argError, describeError, openChannelError } from "./errors";
import type { HandshakeReply } from "./handshake";
import { Heir } from "./heir";
import { Hosting } from "./hosting";
import { type BridgeEvents, SocketBridge } from "./socket-bridge";
import { queryChannelStatus, type StatusQueryOptions, type StatusQueryResult } from "./status";
import type { Transport } from "./transport";

/**
 * The states of a channel: `"initiated"` (before `connect()`), `"connecting"` (electing, or
 * reconnecting after losing the host), `"connected"` or `"closed"`.
 *
 * @example
 * channel.on("state", (state: ChannelState, previous: ChannelState) => {
 *   if (previous === "connected" && state === "connecting") console.log("failover under way");
 * });
 */
export type ChannelState = "initiated" | "connecting" | "connected" | "closed";

/**
 * What the `"failover"` event carries.
 *
 * @example
 * channel.on("failover", ({ previousHostPid, hostPid, ms }: FailoverInfo) => console.log(`${previousHostPid} -> ${hostPid} in ${ms} ms`));
 */
export interface FailoverInfo {
  /** The host that was lost. */
  previousHostPid: number;
  /** The new host. */
  hostPid: number;
  /** From noticing the loss to connected to the new host, in ms. */
  ms: number;
}

/**
 * The events of a {@link ProcessChannel} and their arguments: `channel.on(event, listener)` is
 * typed by it (a misspelt event or a wrong argument does not compile).
 *
 * @example
 * channel.on("state", (state, previous) => console.log(`${previous} -> ${state}`));
 */
export interface ProcessChannelEvents {
  /** Every change of `channel.state`. */
  state: [state: ChannelState, previous: ChannelState];
  /** This process starts (`true`) or stops (`false`) hosting. */
  hosting: [isHost: boolean];
  /** This process starts or stops standing by as the heir. */
  heir: [isHeir: boolean];
  /** Connected to a new host after losing the previous one. */
  failover: [info: FailoverInfo];
}

/**
 * The user's connection listener: runs in whichever process hosts, once per member connection
 * (the host's own included), with the host's end of that connection.
 *
 * @example
 * import openChannel, { type ConnectionListener } from "open-channel";
 * const echo: ConnectionListener = (socket) => socket.pipe(socket);
 * const channel = openChannel("echo", echo);
 */
export type ConnectionListener = (socket: net.Socket) => void;

/**
 * Options of `channel.connect(timeout, options)`.
 *
 * @example
 * const socket = channel.connect(5000, { onread: { buffer: Buffer.alloc(65536), callback: (n, buf) => use(buf.subarray(0, n)) } });
 */
export interface ConnectOptions {
  /** Read into a buffer of your own (no `'data'` events): see {@link SocketReader}. */
  onread?: SocketReader;
}

/**
 * Options of `channel.close(options)`.
 *
 * @example
 * channel.close({ handover: true }); // this process stops hosting: its members move to a new host
 */
export interface CloseOptions {
  /**
   * Also stop hosting, if this process hosts: the server stops listening and every member's
   * connection ends after what the listener wrote is flushed, so the members elect a new host at
   * once. Default `false`: the server goes on serving the other members until the process exits.
   */
  handover?: boolean;
}

/**
 * Checks the options of a `close(options)` call; returns whether to hand over.
 *
 * @throws OpenChannelTypeError `ERR_INVALID_ARG_TYPE` when `options` is not an object or `handover` not a boolean
 * @example
 * parseCloseOptions({ handover: true }) // true
 * parseCloseOptions(undefined) // false
 */
export function parseCloseOptions(options: unknown): boolean {
  if (options === undefined) return false;
  if (typeof options !== "object" || options === null) throw argError("ERR_INVALID_ARG_TYPE", "options", "of type object", options);
  const handover = (options as CloseOptions).handover;
  if (handover !== undefined && typeof handover !== "boolean")
    throw argError("ERR_INVALID_ARG_TYPE", "options.handover", "of type boolean", handover);
  return handover === true;
}

/**
 * Default `channel.connect()` timeout, in ms.
 *
 * @example
 * channel.connect(); // the same as channel.connect(DEFAULT_CONNECT_TIMEOUT_MS), 5000 ms
 */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

/**
 * Where the channel stands: its {@link ChannelState} and what belongs to that state alone.
 * - `connecting`: `generation` names this connecting-and-connected run (a stale async step sees
 *   it changed and stops); `attempt` is the connection attempt under way; `lost` is set when the
 *   run began with the loss of a host (what the `failover` event reports).
 * - `connected`: to the server `serverId` of `hostPid`, in the same `generation`.
 * - `closed`: `finalError` is what the socket still has to emit (a timeout or a fatal error).
 */
type Phase = { readonly state: "initiated" } | Connecting | Connected | { readonly state: "closed"; finalError: Error | undefined };

interface Connecting {
  readonly state: "connecting";
  readonly generation: number;
  /** The connect timeout (none for `connect(0)`). */
  readonly timer: NodeJS.Timeout | undefined;
  readonly lost: LostHost | undefined;
  attempt: ConnectionAttempt | undefined;
}

interface Connected {
  readonly state: "connected";
  readonly generation: number;
  readonly hostPid: number;
  readonly serverId: Buffer;
}

/** The host whose loss began a connecting phase, and when. */
interface LostHost {
  readonly at: number;
  readonly hostPid: number;
  readonly serverId: Buffer;
}

/**
 * One process's view of a channel. Every process of the app creates one with the same name; the
 * first that finds no live host hosts the channel's server inside itself, and when the host dies
 * the survivors elect a new one among themselves.
 *
 * ```
 * initiated --connect()--> connecting --handshake ok--> connected
 * connected --connection lost--> connecting          (re-election, same net.Socket object)
 * connecting --timeout with no connection--> closed  (socket emits an ETIMEDOUT error)
 * any --socket.destroy() / channel.close()--> closed (no reconnect)
 * ```
 *
 * Closing ends this process's membership only: if it hosts, its server goes on serving the other
 * members (unref'ed: it never keeps the process alive, and when the process exits they fail over
 * as after any host loss). `channel.close({ handover: true })` also stops hosting.
 *
 * Events:
 * - `"state"` `(state, previous)` on every change of {@link ProcessChannel.state}, e.g.
 *   `"connected" -> "connecting"` when the host is lost and a failover begins;
 * - `"hosting"` `(isHost)` when this process starts (`true`) or stops (`false`) hosting;
 * - `"heir"` `(isHeir)` when this process starts or stops standing by as the heir;
 * - `"failover"` `({ previousHostPid, hostPid, ms })` once the socket is connected to a new host
 *   after losing the previous one (`ms`: from noticing the loss to connected). A host that only
 *   dropped this connection, and took it back, is no failover.
 *
 * @example
 * const channel = new ProcessChannel("jobs", (socket) => socket.pipe(socket), { transport: unixTransport() });
 * channel.on("state", (state, previous) => console.log(`${previous} -> ${state}`));
 * const socket = channel.connect();
 * socket.write("queued until connected");
 */
export class ProcessChannel extends EventEmitter<ProcessChannelEvents> {
  /**
   * The channel's name: processes that use the same name (and transport) share one channel.
   *
   * @example
   * require("open-channel").openChannel("jobs", onConnection).name // "jobs"
   */
  readonly name: string;
  /**
   * The transport this channel uses.
   *
   * @example
   * channel.transport.name // "unix" on Linux and macOS, "pipe" or "tcp" on Windows
   */
  readonly transport: Transport;
  private readonly listener: ConnectionListener;
  /** This member's standing by as the heir (see heir.ts). */
  private readonly heir: Heir;
  /** This process's hosting of the channel (see hosting.ts). */
  private readonly hosting: Hosting;
  private phase: Phase = { state: "initiated" };
  /** The socket of the last `connect()` and the channel's side of it; undefined before. */
  private bridge: SocketBridge | undefined;
  /** What the bridge reports to (the channel's current phase). */
  private readonly bridgeEvents: BridgeEvents;
  /** What a connection attempt needs of the channel. */
  private readonly attemptChannel: AttemptChannel;
  /** What the election needs of the channel. */
  private readonly electionChannel: ElectionChannel;
  private timeoutMs = DEFAULT_CONNECT_TIMEOUT_MS;
  /** Counts connecting phases: each gets its own number. */
  private generations = 0;
  /** The last connection error, which a timeout names. */
  private lastError: Error | undefined;
  /** The transport's secret, as last read (a member's hello and our server prove themselves with it). */
  private secret: Buffer | undefined;
  /** The highest lease epoch a host told us (transports with leases; 0: none): fencing. */
  private epoch = 0;

  /**
   * Creates the channel without checking the arguments; `openChannel()` checks them, then calls this.
   *
   * @param name - channel name; any non-empty string up to 1024 UTF-8 bytes
   * @param listener - runs in the hosting process for every member connection
   * @param options - `transport` is required when using core directly
   */
  constructor(name: string, listener: ConnectionListener, options: { transport: Transport }) {
    super();
    this.name = name;
    this.listener = listener;
    this.transport = options.transport;
    const readSecret = (): Buffer | undefined => {
      if (this.transport.secret !== undefined) this.secret = this.transport.secret(name);
      return this.secret;
    };
    // (The heir's address is the name plus a suffix: channel names may contain NUL, but a user's
    // name ending in exactly that suffix is not a risk worth a rule.)
    this.heir = new Heir({
      name,
      transport: this.transport,
      listener,
      secret: () => this.secret,
      isPlainMember: (generation) => {
        const { phase } = this;
        return phase.state === "connected" && phase.generation === generation && this.hosting.server === undefined;
      },
      isConnected: () => this.phase.state === "connected",
      emitHeir: (isHeir) => this.emitSoon("heir", isHeir),
    });
    this.hosting = new Hosting({
      name,
      transport: this.transport,
      listener,
      heir: this.heir,
      readSecret,
      emitHosting: (isHost) => this.emitSoon("hosting", isHost),
    });
    const channel = this;
    this.bridgeEvents = {
      get closed() {
        return channel.phase.state === "closed";
      },
      get handshaking() {
        return channel.attempt?.handshaking ?? false;
      },
      connected: () => this.attempt?.connected(),
      connectionError: (err) => {
        this.lastError = err;
        this.attempt?.failed(err);
        debug("channel %j: connection error (handled): %s", this.name, err.message);
      },
      connectionClosed: () => {
        const { attempt, phase } = this;
        if (attempt !== undefined) attempt.closed();
        else if (phase.state === "connected") this.onConnectionLost(phase);
        else this.emitFinal();
      },
      endOfStream: () => {
        const { attempt } = this;
        if (attempt !== undefined) attempt.ended();
        // The host is gone. Act now: 'end' would wait until the user has read every byte, and
        // unread bytes stay in the readable buffer, in order, across the reconnect.
        else if (this.phase.state === "connected") this.bridge?.destroy();
      },
      handshakeBytes: (chunk) => (this.attempt as ConnectionAttempt).bytes(chunk),
      userClosed: () => this.closeByUser(),
    };
    this.attemptChannel = {
      name,
      transport: this.transport,
      get bridge() {
        return channel.bridge as SocketBridge;
      },
      readSecret,
      get epoch() {
        return channel.epoch;
      },
      accepted: (reply) => this.goLive(reply),
    };
    this.electionChannel = {
      name,
      transport: this.transport,
      heir: this.heir,
      hosting: this.hosting,
      connect: (address = name) => this.tryConnect(address),
      fail: (err) => this.fail(err),
      get lastError() {
        return channel.lastError;
      },
      set lastError(err) {
        channel.lastError = err;
      },
    };
  }

  /**
   * The connection listener given to `openChannel()` (as in open-channel 0.1.x).
   *
   * @example
   * const channel = openChannel("echo", (socket) => socket.pipe(socket));
   * channel.connectionListener // the listener above
   */
  get connectionListener(): ConnectionListener {
    return this.listener;
  }

  /**
   * `"initiated"`, `"connecting"`, `"connected"` or `"closed"`.
   *
   * @example
   * const channel = require("open-channel").openChannel("jobs", onConnection);
   * channel.state // "initiated"
   * channel.connect();
   * channel.state // "connecting"
   */
  get state(): ChannelState {
    return this.phase.state;
  }

  /**
   * True while the socket is connected to the host and usable: `state === "connected"`.
   *
   * @example
   * if (!channel.connected) console.log("writes are queued until the channel connects");
   */
  get connected(): boolean {
    return this.phase.state === "connected";
  }

  /**
   * True while this process hosts the channel's server. A closed channel whose process still hosts
   * (see {@link ProcessChannel.close}) stays `true` until `close({ handover: true })`.
   *
   * @example
   * channel.connect().on("connect", () => console.log(channel.isHost ? "hosting" : `member of host ${channel.hostPid}`));
   */
  get isHost(): boolean {
    return this.hosting.server !== undefined;
  }

  /**
   * True while this process stands by as the channel's heir: a member listening at the standby
   * address, which takes the channel over at once when the host dies (the other members connect
   * straight to it instead of running an election). One member is the heir, chosen a moment after
   * it connects; a channel without one fails over by election.
   *
   * @example
   * channel.on("heir", () => console.log(`heir: ${channel.isHeir}`));
   */
  get isHeir(): boolean {
    return this.heir.standing;
  }

  /**
   * The pid of the hosting process, as the host said in the handshake; undefined while not connected.
   *
   * @example
   * channel.connect().on("connect", () => console.log(`connected to host pid ${channel.hostPid}`));
   */
  get hostPid(): number | undefined {
    return this.phase.state === "connected" ? this.phase.hostPid : undefined;
  }

  /**
   * Connects to the channel, hosting it if nobody does. Returns a real `net.Socket` at once; writes
   * made before it connects are queued and flushed in order. The socket emits `connect` each time
   * it becomes usable, reconnects included. Calling `connect()` again while the socket is open
   * returns the same socket.
   *
   * @param timeout - ms to wait for a connection (each time one is lost, too) before the socket
   *   emits an `ETIMEDOUT` error and the channel closes; `0` waits forever. Default 5000.
   * @param options - `onread`: read into a buffer of your own instead of `'data'` events, as with
   *   `net.connect({ onread })` (see {@link SocketReader}); only for the call that creates the socket.
   * @example
   * const socket = channel.connect(10000);
   * socket.on("data", (chunk) => console.log(String(chunk)));
   * socket.write("hello\n");
   */
  connect(timeout: number = DEFAULT_CONNECT_TIMEOUT_MS, options?: ConnectOptions): net.Socket {
    if (typeof timeout !== "number") throw argError("ERR_INVALID_ARG_TYPE", "timeout", "of type number", timeout);
    if (!Number.isFinite(timeout) || timeout < 0)
      throw argError("ERR_OUT_OF_RANGE", "timeout", "a finite number >= 0 (ms; 0 waits forever)", timeout);
    const reader = options?.onread;
    if (
      reader !== undefined &&
      (!(reader.buffer instanceof Uint8Array) || reader.buffer.length === 0 || typeof reader.callback !== "function")
    ) {
      throw argError(
        "ERR_INVALID_ARG_TYPE",
        "options.onread",
        "an object with a non-empty Uint8Array `buffer` and a `callback` function",
        reader,
      );
    }
    if (this.bridge !== undefined && this.phase.state !== "closed") return this.bridge.socket;
    this.timeoutMs = timeout;
    this.lastError = undefined;
    this.bridge = new SocketBridge(this.bridgeEvents, this.name, reader);
    this.enterConnecting(undefined);
    return this.bridge.socket;
  }

  /**
   * Closes this process's membership: the socket closes and the channel does not reconnect (the
   * same as `socket.destroy()`). If this process hosts, its server goes on serving the other
   * members: closing never cuts them off. The server never keeps the process alive; when the
   * process exits, the members elect a new host at once.
   *
   * With `{ handover: true }` this process also stops hosting (also after an earlier `close()`):
   * its server stops listening and each member's connection ends after what the listener wrote to
   * it is flushed (destroyed after 1 s if the member does not read), so the members move to the
   * heir, or elect, at once. Use it when the process lives on but must no longer host.
   *
   * @param options - `handover`: also stop hosting (default `false`)
   * @throws OpenChannelTypeError `ERR_INVALID_ARG_TYPE` when `options` or `options.handover` has the wrong type
   * @example
   * socket.destroy();                                          // done with the channel; any hosting goes on
   * process.once("SIGTERM", () => channel.close({ handover: true })); // members move on before we exit
   */
  close(options?: CloseOptions): void {
    const handover = parseCloseOptions(options);
    if (this.bridge !== undefined && this.phase.state !== "closed") this.bridge.socket.destroy();
    else if (this.phase.state !== "closed") this.markClosed(undefined);
    if (handover) this.hosting.stop("the host closed its channel with handover");
  }

  /**
   * Asks the channel's current host about itself (pid, members, uptime, heir): answered by the
   * host's server, never by the user's listener. Works whatever this channel's state.
   *
   * @example
   * const result = await channel.status();
   * if (result.state === "hosted") console.log(`hosted by ${result.status.pid}, heir ${result.heirPid ?? "none"}`);
   */
  status(options?: StatusQueryOptions): Promise<StatusQueryResult> {
    return queryChannelStatus(this.transport, this.name, options);
  }

  /** Emits on the next tick: a listener that throws never runs in the middle of a state change. */
  private emitSoon<E extends keyof ProcessChannelEvents>(event: E, ...args: ProcessChannelEvents[E]): void {
    process.nextTick(() => (this.emit as (e: E, ...a: ProcessChannelEvents[E]) => boolean)(event, ...args));
  }

  // ---- phases: initiated -> connecting <-> connected -> closed -----------------------------------

  private setPhase(next: Phase): void {
    const previous = this.phase.state;
    this.phase = next;
    if (previous === next.state) return;
    debug("channel %j: state %s -> %s", this.name, previous, next.state);
    this.emit("state", next.state, previous);
  }

  /** The connection attempt under way, while connecting. */
  private get attempt(): ConnectionAttempt | undefined {
    const { phase } = this;
    return phase.state === "connecting" && phase.attempt?.active === true ? phase.attempt : undefined;
  }

  /** Connects (and elects) until connected; `lost`: the host whose loss this follows. */
  private enterConnecting(lost: LostHost | undefined): void {
    (this.bridge as SocketBridge).live = false;
    const generation = ++this.generations;
    const timer = this.timeoutMs > 0 ? setTimeout(() => this.fail(this.timeoutError()), this.timeoutMs) : undefined;
    this.setPhase({ state: "connecting", generation, timer, lost, attempt: undefined });
    const current = (): boolean => this.phase.state === "connecting" && this.phase.generation === generation;
    process.nextTick(() => void elect(this.electionChannel, current, lost !== undefined));
  }

  /** One connection attempt with the handshake; resolves `undefined` once live, else the error. */
  private tryConnect(address: string): Promise<Error | undefined> {
    const attempt = new ConnectionAttempt(this.attemptChannel);
    (this.phase as Connecting).attempt = attempt;
    return attempt.run(address);
  }

  /** The host took us: connected. */
  private goLive(reply: HandshakeReply): void {
    const phase = this.phase as Connecting;
    const bridge = this.bridge as SocketBridge;
    clearTimeout(phase.timer);
    const host = this.hosting.server;
    if (host !== undefined && !reply.serverId.equals(host.id)) {
      this.hosting.drop(`connected to server ${reply.serverId.toString("hex")} of pid ${reply.hostPid}`);
    }
    bridge.live = true;
    if (reply.epoch !== undefined && reply.epoch > this.epoch) this.epoch = reply.epoch;
    const { generation, lost } = phase;
    this.setPhase({ state: "connected", generation, hostPid: reply.hostPid, serverId: reply.serverId });
    // Back on another host (not the same one, which only dropped this connection): a failover.
    if (lost !== undefined && !lost.serverId.equals(reply.serverId)) {
      this.emitSoon("failover", { previousHostPid: lost.hostPid, hostPid: reply.hostPid, ms: performance.now() - lost.at });
    }
    debug(
      "channel %j: connected to host pid %d%s%s",
      this.name,
      reply.hostPid,
      reply.epoch === undefined ? "" : ` (epoch ${reply.epoch})`,
      this.hosting.server ? " (ourselves)" : "",
    );
    bridge.flush();
    // Members parked on us as the heir: another process hosts, send them there. We stay the heir.
    this.heir.sendBack();
    if (this.hosting.server === undefined) this.heir.schedule(generation);
    bridge.socket.emitToUser("connect");
    bridge.socket.emitToUser("ready");
  }

  private onConnectionLost(phase: Connected): void {
    (this.bridge as SocketBridge).live = false;
    debug("channel %j: lost the host (pid %s): %s", this.name, phase.hostPid, describeError(this.lastError ?? "closed"));
    this.enterConnecting({ at: performance.now(), hostPid: phase.hostPid, serverId: phase.serverId });
  }

  /** The user ended or destroyed the socket: closed, no reconnect. */
  private closeByUser(): void {
    if (this.phase.state === "closed") return;
    debug("channel %j: closed by the user", this.name);
    const attempt = this.attempt;
    const bridge = this.bridge as SocketBridge;
    this.markClosed(undefined);
    const err = openChannelError("ERR_OPEN_CHANNEL_CLOSED", { channel: this.name, closed: "channel" });
    bridge.failQueued(err);
    attempt?.settle(err);
    bridge.socket.detach();
    // Between attempts the socket is already closed: the user still gets the one `close` they expect.
    if (bridge.socket.destroyed && bridge.closeSeen) process.nextTick(() => bridge.socket.emit("close", false));
  }

  /** Gives up (timeout or fatal error): the socket emits `err` then `close`, the channel is closed. */
  private fail(err: Error): void {
    if (this.phase.state === "closed") return;
    debug("channel %j: giving up: %s", this.name, err.message);
    const attempt = this.attempt;
    const bridge = this.bridge as SocketBridge;
    this.markClosed(err);
    bridge.failQueued(err);
    attempt?.settle(err);
    if (!bridge.socket.destroyed) bridge.destroy();
    else if (bridge.closeSeen) process.nextTick(() => this.emitFinal());
    // Our own connection to our server failed: it serves nobody well; let the members elect.
    this.hosting.stop("the host's channel gave up");
  }

  /** A failed channel's socket closed: it emits the error, then `close`. */
  private emitFinal(): void {
    const { phase, bridge } = this;
    if (phase.state !== "closed" || phase.finalError === undefined || bridge === undefined) return;
    const err = phase.finalError;
    phase.finalError = undefined;
    bridge.socket.detach();
    bridge.socket.emitToUser("error", err);
    bridge.socket.emitToUser("close", true);
  }

  private markClosed(finalError: Error | undefined): void {
    const { phase } = this;
    this.heir.drop("the channel is closed");
    if (this.bridge !== undefined) this.bridge.live = false;
    if (phase.state === "connecting") clearTimeout(phase.timer);
    this.setPhase({ state: "closed", finalError });
  }

  private timeoutError(): Error {
    return openChannelError("ETIMEDOUT", {
      channel: this.name,
      waiting: "connection",
      ms: this.timeoutMs,
      transport: this.transport.name,
      address: this.transport.address?.(this.name),
      lastError: this.lastError === undefined ? "none" : describeError(this.lastError),
      cause: this.lastError,
    });
  }
}
