import { EventEmitter } from "node:events";
import type * as net from "node:net";
import { ChannelSocket, type LifecycleEvent, type SocketOwner, type SocketReader, type WriteCallback } from "./channel-socket";
import { debug, debugEnabled } from "./debug";
import { describeError, errorCode, isFatal, isOpenChannelError, OpenChannelError, openChannelError } from "./errors";
import { HANDSHAKE, type HandshakeReply } from "./handshake";
import { Heir } from "./heir";
import { HostServer } from "./host";
import { MemberHandshake } from "./member-handshake";
import { answeringServer, queryChannelStatus, type StatusQueryOptions, type StatusQueryResult } from "./status";
import { isNoHostCode, type Transport } from "./transport";
import { WriteQueue } from "./write-queue";

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
  if (typeof options !== "object" || options === null)
    throw openChannelError("ERR_INVALID_ARG_TYPE", { name: "options", expected: "of type object", value: options });
  const handover = (options as CloseOptions).handover;
  if (handover !== undefined && typeof handover !== "boolean")
    throw openChannelError("ERR_INVALID_ARG_TYPE", { name: "options.handover", expected: "of type boolean", value: handover });
  return handover === true;
}

/**
 * Default `channel.connect()` timeout, in ms.
 *
 * @example
 * channel.connect(); // the same as channel.connect(DEFAULT_CONNECT_TIMEOUT_MS), 5000 ms
 */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
/** How long a member waits for the host's handshake reply before trying again. */
const HANDSHAKE_TIMEOUT_MS = 3000;
/** Backoff after a failure that needs time (never after one the OS already explained). */
const MIN_BACKOFF_MS = 1;
const MAX_BACKOFF_MS = 100;

/**
 * While hosting, how often this process checks that the channel's address still leads to its
 * server (a socket or port file removed, the secret replaced): within twice this, it binds the
 * address again or steps down.
 */
const ADDRESS_CHECK_MS = 500;

interface Attempt {
  resolve: (err: Error | undefined) => void;
  error: Error | undefined;
  /** Our side of the handshake, once connected to the address. */
  handshake: MemberHandshake | undefined;
  timer: NodeJS.Timeout | undefined;
}

type HostOutcome = "listening" | "taken" | Error;

const REFUSALS: Record<number, string> = {
  [HANDSHAKE.statusWrongChannel]: "the host serves another channel at this address",
  [HANDSHAKE.statusUnsupported]: "the host refused our protocol version",
  [HANDSHAKE.statusProofRequired]: "the host requires the per-user proof: are all processes using the same transport?",
  [HANDSHAKE.statusNotHost]: "the heir does not host (the host is alive, or another process took over)",
};

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

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
export class ProcessChannel extends EventEmitter {
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
  private currentState: ChannelState = "initiated";
  private socket: ChannelSocket | undefined;
  private queue = new WriteQueue();
  private owner: SocketOwner | undefined;
  private host: HostServer | undefined;
  /** Set from the loss of a host until the next connection: what the `failover` event reports. */
  private lost: { at: number; hostPid: number | undefined; serverId: Buffer | undefined } | undefined;
  /** The server (host instance) the socket is connected to. */
  private currentServerId: Buffer | undefined;
  private attempt: Attempt | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private timeoutMs = DEFAULT_CONNECT_TIMEOUT_MS;
  /** Bumped on every new connecting phase and on close: stale async steps see it and stop. */
  private generation = 0;
  private live = false;
  /** Live: past the handshake, writes go straight to the connection (the socket keeps a copy). */
  private get isLive(): boolean {
    return this.live;
  }

  private set isLive(value: boolean) {
    this.live = value;
    if (this.socket !== undefined) this.socket.setLive(value);
  }

  private eofSeen = false;
  private closeSeen = false;
  private userClosing = false;
  private finalError: Error | undefined;
  private lastError: Error | undefined;
  private currentHostPid: number | undefined;
  private secret: Buffer | undefined;
  /** A queued write returned false: emit 'drain' once the queue is flushed. */
  private needDrain = false;
  /** The callback of an end() made while not connected. */
  private endCallback: (() => void) | undefined;
  /** Set while the channel itself destroys the socket (so it is not taken for the user's close). */
  private internalDestroy = false;

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
    // (The heir's address is the name plus a suffix: channel names may contain NUL, but a user's
    // name ending in exactly that suffix is not a risk worth a rule.)
    this.heir = new Heir({
      name,
      transport: this.transport,
      listener,
      secret: () => this.secret,
      isPlainMember: (generation) => generation === this.generation && this.currentState === "connected" && this.host === undefined,
      isConnected: () => this.currentState === "connected",
      emitHeir: (isHeir) => this.emitSoon("heir", isHeir),
    });
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
    return this.currentState;
  }

  /**
   * True while the socket is connected to the host and usable: `state === "connected"`.
   *
   * @example
   * if (!channel.connected) console.log("writes are queued until the channel connects");
   */
  get connected(): boolean {
    return this.currentState === "connected";
  }

  /**
   * True while this process hosts the channel's server. A closed channel whose process still hosts
   * (see {@link ProcessChannel.close}) stays `true` until `close({ handover: true })`.
   *
   * @example
   * channel.connect().on("connect", () => console.log(channel.isHost ? "hosting" : `member of host ${channel.hostPid}`));
   */
  get isHost(): boolean {
    return this.host !== undefined;
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
    return this.currentHostPid;
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
    if (typeof timeout !== "number")
      throw openChannelError("ERR_INVALID_ARG_TYPE", { name: "timeout", expected: "of type number", value: timeout });
    if (!Number.isFinite(timeout) || timeout < 0)
      throw openChannelError("ERR_OUT_OF_RANGE", {
        name: "timeout",
        expected: "a finite number >= 0 (ms; 0 waits forever)",
        value: timeout,
      });
    const reader = options?.onread;
    if (
      reader !== undefined &&
      (!(reader.buffer instanceof Uint8Array) || reader.buffer.length === 0 || typeof reader.callback !== "function")
    ) {
      throw openChannelError("ERR_INVALID_ARG_TYPE", {
        name: "options.onread",
        expected: "an object with a non-empty Uint8Array `buffer` and a `callback` function",
        value: reader,
      });
    }
    if (this.socket !== undefined && this.currentState !== "closed") return this.socket;
    this.timeoutMs = timeout;
    this.queue = new WriteQueue();
    this.userClosing = false;
    this.finalError = undefined;
    this.lastError = undefined;
    this.owner = this.makeOwner();
    this.socket = new ChannelSocket(this.owner, reader);
    this.enterConnecting();
    return this.socket;
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
    if (this.socket !== undefined && this.currentState !== "closed") this.socket.destroy();
    else this.setState("closed");
    if (handover) this.stopHosting("the host closed its channel with handover");
  }

  /**
   * While `host` hosts: does the channel's address still lead to it? A socket or port file
   * removed (a /tmp cleaner, a user) let the next process host too, and a replaced secret left
   * this host unable to prove itself to the others: two hosts for good. Nobody at the address:
   * bind it again (or, if another process did meanwhile, step down). Another server there, or
   * ours without the current secret's proof: step down, so our members join the one host.
   */
  private watchAddress(host: HostServer): void {
    // One timer per hosting: it stops itself once `host` no longer hosts here.
    let checking = false;
    const timer = setInterval(() => {
      if (this.host !== host) {
        clearInterval(timer);
        return;
      }
      if (checking) return;
      checking = true;
      void this.checkAddress(host).finally(() => {
        checking = false;
      });
    }, ADDRESS_CHECK_MS);
    timer.unref();
  }

  private async checkAddress(host: HostServer): Promise<void> {
    const found = await answeringServer(this.transport, this.name, ADDRESS_CHECK_MS);
    if (this.host !== host || found === undefined || found === host.id.toString("hex")) return;
    if (found === "no-host") {
      debug("channel %j: our address is gone: binding it again", this.name);
      const outcome = await this.bindAddress(host);
      if (this.host !== host || outcome === "listening") return;
      return this.stopHosting(
        `the channel's address was taken (${outcome instanceof Error ? describeError(outcome) : outcome})`,
        "stepAside",
      );
    }
    // Our own server failing the current secret's proof: stop it (its address is ours to free).
    if (found === "stranger") return this.stopHosting("our server no longer proves itself with the channel's secret");
    this.stopHosting(`server ${found} answers at the channel's address`, "stepAside");
  }

  /**
   * This process stops hosting. `handOver`: our server stops, its members' connections end and
   * they elect at once. `stepAside`: another server holds the channel's address; our members end
   * and join it, and our listening handles stay open (closing would unlink its file).
   */
  private stopHosting(reason: string, how: "handOver" | "stepAside" = "handOver"): void {
    if (this.host === undefined) return;
    debug("channel %j: no longer hosting: %s", this.name, reason);
    if (how === "handOver") this.host.handOver(reason);
    else this.host.stepAside(reason);
    this.host = undefined;
    this.emitSoon("hosting", false);
  }

  // ---- the election loop -------------------------------------------------------------------

  private enterConnecting(afterLoss = false): void {
    this.isLive = false;
    this.currentHostPid = undefined;
    const generation = ++this.generation;
    this.setState("connecting");
    clearTimeout(this.connectTimer);
    if (this.timeoutMs > 0) {
      this.connectTimer = setTimeout(() => this.fail(this.timeoutError()), this.timeoutMs);
    }
    process.nextTick(() => void this.elect(generation, afterLoss));
  }

  /**
   * Connect; if nobody answers, host (bind exclusively), then connect to ourselves. Retries at once
   * when the OS already said what happened, backs off only after a failure that needs time.
   */
  private async elect(generation: number, hostFirst: boolean): Promise<void> {
    let backoff = 0;
    let takenInARow = 0;
    const current = (): boolean => generation === this.generation && this.currentState === "connecting";
    if (hostFirst && this.host === undefined) {
      if (!this.heir.standing) {
        // The heir (another member) is already listening at the standby address and is taking the
        // channel's address over right now: ask it first, and leave the election to it.
        const err = await this.tryConnect(this.heir.address);
        if (!current() || err === undefined) return;
        debug("channel %j: no heir took us (%s): electing", this.name, describeError(err));
      }
      // The host just vanished: most likely it died, so bind at once instead of first asking a
      // dead address. If it is alive after all, the bind loses and we connect to it below.
      const outcome = await this.tryHost();
      if (!current()) return;
      if (outcome instanceof Error && isFatal(outcome)) return this.fail(this.wrapFatal(outcome));
    }
    while (current()) {
      const err = await this.tryConnect();
      if (!current() || err === undefined) return;
      this.lastError = err;
      if (isFatal(err)) return this.fail(this.wrapFatal(err));
      const handshake = isOpenChannelError(err, "ERR_OPEN_CHANNEL_HANDSHAKE");
      const stranger = handshake && err.stranger === true;
      // Something accepted us and never answered: a host too busy to, or a silent squatter on a
      // dead host's address. The transport's takeover tells them apart (it never takes a timeout
      // for death; over TCP on Linux, another user's listener is no host of ours).
      const unanswered = handshake && err.unanswered === true;
      if (this.isNoHost(err) || stranger || unanswered) {
        if (this.host !== undefined && !stranger && !unanswered) this.dropHost("our server no longer answers at the address");
        const outcome = await this.tryHost();
        if (!current()) return;
        // Bound, or someone else just bound: connect at once. (After a stranger, "taken" only
        // means the stranger is still there; and "taken" again and again means leftovers that the
        // transport cannot reclaim: wait before asking again, never spin.)
        if (outcome === "listening" || (outcome === "taken" && !stranger && !unanswered && takenInARow++ === 0)) {
          backoff = 0;
          continue;
        }
        if (outcome instanceof Error) {
          this.lastError = outcome;
          if (isFatal(outcome)) return this.fail(this.wrapFatal(outcome));
        }
      }
      backoff = Math.min(MAX_BACKOFF_MS, Math.max(MIN_BACKOFF_MS, backoff * 2));
      const delay = backoff * (0.5 + Math.random() / 2);
      debug("channel %j: retrying in %s ms after %s", this.name, delay.toFixed(1), describeError(this.lastError));
      await sleep(delay);
    }
  }

  private isNoHost(err: Error): boolean {
    return isNoHostCode(this.transport, errorCode(err));
  }

  /** One connection attempt with the handshake; resolves `undefined` once live, else the error. */
  private tryConnect(address: string = this.name): Promise<Error | undefined> {
    const socket = this.socket as ChannelSocket;
    return new Promise((resolve) => {
      this.attempt = { resolve, error: undefined, handshake: undefined, timer: undefined };
      this.eofSeen = false;
      this.closeSeen = false;
      let started: void | Promise<void>;
      try {
        started = this.transport.connect(address, socket);
      } catch (err) {
        this.settleAttempt(asError(err));
        return;
      }
      if (started !== undefined && typeof started.then === "function") {
        started.then(undefined, (err: unknown) => this.abortAttempt(asError(err)));
      }
    });
  }

  /** Binds the channel's address. "taken": another process won, connect to it at once. */
  private async tryHost(): Promise<HostOutcome> {
    // Read on every attempt: a secret file replaced meanwhile is the one the other processes use.
    if (this.transport.secret !== undefined) {
      try {
        this.secret = this.transport.secret(this.name);
      } catch (err) {
        return asError(err);
      }
    }
    // The heir hosts with the server its members are already parked on. If it loses, it stays
    // the heir until it is connected to whoever won (see goLive).
    const standby = this.heir.server;
    const host = standby ?? new HostServer(this.name, this.listener, this.secret);
    const outcome = await this.bindAddress(host);
    if (outcome !== "listening") return outcome;
    this.host = host;
    this.watchAddress(host);
    // The address is looked up only when someone asks (the TCP one reads the port file).
    host.hosting = { transport: this.transport.name, address: () => this.transport.address?.(this.name) ?? "", since: Date.now() };
    this.emitSoon("hosting", true);
    // Hosting with the standby server: it answers the members parked on it, and the standby
    // address is freed for the next heir (a no-op for a server of our own).
    this.heir.takeOver(host);
    // (The address is read, from the port file over TCP, only when the line is written.)
    if (debugEnabled()) {
      debug(
        "channel %j: hosting (%s, server %s%s)",
        this.name,
        this.describeAddress(),
        host.id.toString("hex"),
        standby ? ", was the heir" : "",
      );
    }
    return "listening";
  }

  private async bindAddress(host: HostServer): Promise<HostOutcome> {
    let server = host.createServer();
    try {
      await this.transport.listen(this.name, server);
    } catch (err) {
      host.closeServer(server);
      if (errorCode(err) !== "EADDRINUSE") return asError(err);
      if (this.transport.reclaim === undefined) return "taken";
      // Leftovers of a dead host? The transport removes them race-free and binds in their place
      // (or waits for whoever does): exactly one process comes out hosting.
      server = host.createServer();
      try {
        if (!(await this.transport.reclaim(this.name, server))) {
          host.closeServer(server);
          return "taken";
        }
      } catch (reclaimErr) {
        host.closeServer(server);
        return asError(reclaimErr);
      }
    }
    return "listening";
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

  private dropHost(reason: string): void {
    debug("channel %j: no longer hosting: %s", this.name, reason);
    if (this.host === undefined) return;
    this.host.orphan();
    this.host = undefined;
    this.emitSoon("hosting", false);
  }

  /** Emits on the next tick: a listener that throws never runs in the middle of a state change. */
  private emitSoon(event: string, ...args: unknown[]): void {
    process.nextTick(() => this.emit(event, ...args));
  }

  // ---- one connection ------------------------------------------------------------------------

  private startHandshake(): void {
    const attempt = this.attempt;
    if (attempt === undefined) return;
    debug("channel %j: connected to the address, sending hello", this.name);
    attempt.timer = setTimeout(() => {
      this.abortAttempt(this.handshakeError(`no handshake reply within ${HANDSHAKE_TIMEOUT_MS} ms`, false, true));
    }, HANDSHAKE_TIMEOUT_MS);
    const socket = this.socket as ChannelSocket;
    socket.startReading();
    if (this.transport.secret !== undefined) {
      try {
        this.secret = this.transport.secret(this.name);
      } catch (err) {
        this.abortAttempt(asError(err));
        return;
      }
    }
    attempt.handshake = new MemberHandshake(this.name, HANDSHAKE.kindJoin, this.secret);
    socket.rawWrite(attempt.handshake.hello(socket));
  }

  private onHandshakeData(chunk: Buffer): boolean {
    const attempt = this.attempt as Attempt;
    const step = (attempt.handshake as MemberHandshake).feed(chunk);
    if (step.state === "more") return true;
    if (step.state === "stranger") {
      this.abortAttempt(this.handshakeError(step.reason, true));
      return false;
    }
    if (step.state === "refused") {
      // A host of another channel at our address (a reused TCP port) is a stranger to us.
      const { status } = step.reply;
      const stranger = status === HANDSHAKE.statusWrongChannel;
      this.abortAttempt(this.handshakeError(REFUSALS[status] ?? `the host refused us (status ${status})`, stranger));
      return false;
    }
    const { reply, answer, rest } = step;
    if (answer !== undefined) (this.socket as ChannelSocket).rawWrite(answer);
    this.goLive(reply);
    return rest.length === 0 || (this.socket as ChannelSocket).rawPush(rest);
  }

  private goLive(reply: HandshakeReply): void {
    const attempt = this.attempt as Attempt;
    const socket = this.socket as ChannelSocket;
    clearTimeout(attempt.timer);
    clearTimeout(this.connectTimer);
    this.attempt = undefined;
    if (this.host !== undefined && !reply.serverId.equals(this.host.id)) {
      this.dropHost(`connected to server ${reply.serverId.toString("hex")} of pid ${reply.hostPid}`);
    }
    this.currentHostPid = reply.hostPid;
    this.isLive = true;
    this.setState("connected");
    this.currentServerId = reply.serverId;
    if (this.lost !== undefined) {
      const { at, hostPid: previousHostPid, serverId } = this.lost;
      this.lost = undefined;
      // Back on another host (not the same one, which only dropped this connection): a failover.
      if (serverId === undefined || !serverId.equals(reply.serverId)) {
        this.emitSoon("failover", { previousHostPid, hostPid: reply.hostPid, ms: performance.now() - at });
      }
    }
    debug("channel %j: connected to host pid %d%s", this.name, reply.hostPid, this.host ? " (ourselves)" : "");
    if (this.queue.length > 0 || this.queue.ended) this.flushQueue(socket);
    attempt.resolve(undefined);
    // Members parked on us as the heir: another process hosts, send them there. We stay the heir.
    this.heir.sendBack();
    if (this.host === undefined) this.heir.schedule(this.generation);
    socket.emitToUser("connect");
    socket.emitToUser("ready");
  }

  private flushQueue(socket: ChannelSocket): void {
    const ended = this.queue.ended;
    socket.cork();
    const ok = this.queue.flush((chunk, encoding, cb) => socket.rawWrite(chunk, encoding, cb));
    if (ended) {
      this.userClosing = true;
      socket.rawEnd(this.endCallback);
      this.endCallback = undefined;
    }
    socket.uncork();
    if (ok && this.needDrain) process.nextTick(() => socket.emitToUser("drain"));
    this.needDrain = false;
  }

  /** Ends an attempt that is under way: destroy the connection; `close` settles it. */
  private abortAttempt(err: Error): void {
    const attempt = this.attempt;
    if (attempt === undefined) return;
    attempt.error ??= err;
    clearTimeout(attempt.timer);
    attempt.handshake = undefined;
    const socket = this.socket as ChannelSocket;
    if (socket.destroyed && this.closeSeen) this.settleAttempt(attempt.error);
    else if (!socket.destroyed) this.destroyInternally(socket);
  }

  private settleAttempt(err: Error): void {
    const attempt = this.attempt;
    if (attempt === undefined) return;
    this.attempt = undefined;
    clearTimeout(attempt.timer);
    attempt.resolve(attempt.error ?? err);
  }

  private destroyInternally(socket: ChannelSocket): void {
    this.internalDestroy = true;
    try {
      socket.destroy();
    } finally {
      this.internalDestroy = false;
    }
  }

  private onConnectionLost(): void {
    this.isLive = false;
    this.lost ??= { at: performance.now(), hostPid: this.currentHostPid, serverId: this.currentServerId };
    debug("channel %j: lost the host (pid %s): %s", this.name, this.currentHostPid, describeError(this.lastError ?? "closed"));
    this.enterConnecting(true);
  }

  // ---- closing -------------------------------------------------------------------------------

  /** The user ended or destroyed the socket: closed, no reconnect. */
  private closeByUser(): void {
    if (this.currentState === "closed") return;
    debug("channel %j: closed by the user", this.name);
    this.markClosed();
    const socket = this.socket as ChannelSocket;
    this.queue.fail(this.closedError());
    this.attempt?.resolve(this.closedError());
    this.attempt = undefined;
    socket.detach();
    // Between attempts the socket is already closed: the user still gets the one `close` they expect.
    if (socket.destroyed && this.closeSeen) process.nextTick(() => socket.emit("close", false));
  }

  /** Gives up (timeout or fatal error): the socket emits `err` then `close`, the channel is closed. */
  private fail(err: Error): void {
    if (this.currentState === "closed") return;
    debug("channel %j: giving up: %s", this.name, err.message);
    this.markClosed();
    this.finalError = err;
    this.queue.fail(err);
    const socket = this.socket as ChannelSocket;
    if (this.attempt !== undefined) {
      this.attempt.resolve(err);
      this.attempt = undefined;
    }
    if (!socket.destroyed) this.destroyInternally(socket);
    else if (this.closeSeen) process.nextTick(() => this.emitFinal());
    // Our own connection to our server failed: it serves nobody well; let the members elect.
    this.stopHosting("the host's channel gave up");
  }

  private emitFinal(): void {
    const socket = this.socket as ChannelSocket;
    const err = this.finalError;
    if (err === undefined) return;
    this.finalError = undefined;
    socket.detach();
    socket.emitToUser("error", err);
    socket.emitToUser("close", true);
  }

  private markClosed(): void {
    this.generation++;
    this.heir.drop("the channel is closed");
    this.lost = undefined;
    this.isLive = false;
    this.currentHostPid = undefined;
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    this.setState("closed");
  }

  private setState(next: ChannelState): void {
    const previous = this.currentState;
    if (previous === next) return;
    this.currentState = next;
    debug("channel %j: state %s -> %s", this.name, previous, next);
    this.emit("state", next, previous);
  }

  // ---- the socket's hooks --------------------------------------------------------------------

  private makeOwner(): SocketOwner {
    const channel = this;
    return {
      get live() {
        return channel.isLive;
      },
      get handshaking() {
        return channel.attempt?.handshake !== undefined;
      },
      onSocketEvent: (event, arg) => this.onSocketEvent(event, arg),
      onPush: (chunk, encoding) => this.onPush(chunk, encoding),
      queueWrite: (chunk, encoding, cb) => this.queueWrite(chunk, encoding, cb),
      queueEnd: (cb) => {
        this.queue.ended = true;
        this.endCallback = cb;
      },
      onUserEnd: () => {
        if (!this.eofSeen) this.userClosing = true;
      },
      onDestroy: (err) => {
        // Node destroys the socket itself on connection errors (they carry a `syscall`) and after
        // the peer's end of stream; anything else is the user closing the channel.
        const internal = this.internalDestroy || this.eofSeen || (err !== undefined && "syscall" in err);
        if (!internal) {
          this.userClosing = true;
          this.closeByUser();
        } else {
          // The connection is going: from this moment writes are queued for the next one, not
          // handed to a socket that would only fail them.
          this.isLive = false;
        }
      },
    };
  }

  private onSocketEvent(event: LifecycleEvent, arg: unknown): boolean {
    if (this.userClosing) {
      if (event === "close") this.closeByUser();
      return true;
    }
    switch (event) {
      case "connect":
        this.startHandshake();
        return false;
      case "error":
        this.lastError = arg as Error;
        if (this.attempt !== undefined) this.attempt.error ??= arg as Error;
        debug("channel %j: connection error (handled): %s", this.name, (arg as Error).message);
        return false;
      case "close":
        this.closeSeen = true;
        if (this.attempt !== undefined) this.settleAttempt(new Error("connection closed before the handshake"));
        else if (this.currentState === "connected") this.onConnectionLost();
        else if (this.finalError !== undefined) this.emitFinal();
        return false;
      default:
        return false;
    }
  }

  private onPush(chunk: Buffer | null, encoding?: BufferEncoding): boolean {
    const socket = this.socket as ChannelSocket;
    if (chunk === null) {
      this.eofSeen = true;
      if (this.userClosing) return socket.rawPush(null);
      if (this.attempt !== undefined) {
        this.abortAttempt(this.handshakeError("the host closed the connection during the handshake"));
      } else if (this.currentState === "connected") {
        // The host is gone. Act now: 'end' would wait until the user has read every byte, and
        // unread bytes stay in the readable buffer, in order, across the reconnect.
        this.destroyInternally(socket);
      }
      return false;
    }
    if (this.attempt?.handshake !== undefined) return this.onHandshakeData(chunk);
    return socket.rawPush(chunk, encoding);
  }

  private queueWrite(chunk: string | Uint8Array, encoding: BufferEncoding | undefined, cb: WriteCallback | undefined): boolean {
    if (this.currentState === "closed" || this.queue.ended) {
      const err = this.closedError();
      if (cb) process.nextTick(cb, err);
      return false;
    }
    if (typeof chunk !== "string" && !(chunk instanceof Uint8Array)) {
      throw openChannelError("ERR_INVALID_ARG_TYPE", {
        name: "chunk",
        expected: "of type string or an instance of Buffer or Uint8Array",
        value: chunk,
      });
    }
    this.queue.push(chunk, encoding, cb);
    const socket = this.socket as ChannelSocket;
    const ok = this.queue.byteLength < socket.writableHighWaterMark;
    if (!ok) this.needDrain = true;
    return ok;
  }

  // ---- errors ----------------------------------------------------------------------------------

  private describeAddress(): string {
    return `${this.transport.name} ${this.transport.address?.(this.name) ?? ""}`.trim();
  }

  private timeoutError(): OpenChannelError {
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

  /**
   * `stranger`: no host of ours at the address, so the election may reclaim it; `unanswered`: it
   * accepted the connection and never answered.
   */
  private handshakeError(reason: string, stranger = false, unanswered = false): OpenChannelError {
    return openChannelError("ERR_OPEN_CHANNEL_HANDSHAKE", {
      channel: this.name,
      reason,
      transport: this.transport.name,
      address: this.transport.address?.(this.name),
      stranger,
      unanswered,
    });
  }

  private closedError(): OpenChannelError {
    return openChannelError("ERR_OPEN_CHANNEL_CLOSED", { channel: this.name, closed: "channel" });
  }

  private wrapFatal(err: Error): Error {
    if (err instanceof OpenChannelError) return err;
    return openChannelError("ERR_OPEN_CHANNEL_ADDRESS", {
      channel: this.name,
      transport: this.transport.name,
      address: this.transport.address?.(this.name),
      reason: err.message,
      errno: errorCode(err),
      cause: err,
    });
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
