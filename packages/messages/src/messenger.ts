import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import type * as net from "node:net";
// Not the global `performance`: that one is a lazy getter on globalThis, slow to reach per request.
import { performance } from "node:perf_hooks";
import {
  argError,
  type CloseOptions,
  debug,
  isOpenChannelError,
  type OpenChannelError,
  openChannelError,
  type ProcessChannel,
  parseCloseOptions,
  withChannel,
} from "@open-channel/core";
import { type Codec, encodeError, rangeDecoder, type Sendable, slabEncoder } from "./codec";
import {
  BYE,
  decodeEventHead,
  encodeCall,
  encodeHello,
  encodeHold,
  encodeRead,
  FRAME,
  FrameReader,
  frameFlags,
  frameSeq,
  frameType,
  markRedelivered,
  resultBodyAt,
  type SequencedType,
  sequencedHeadBytes,
  topicBytes,
  welcomeFeatures,
  writeSequencedHead,
} from "./frame";
import { eventName } from "./host";
import { Outbox, type OutboxEntry } from "./outbox";
import { Slab } from "./slab";
import { text } from "./text";

/**
 * Limits of a messenger, from `MessageChannelOptions` (or `MESSAGE_DEFAULTS`).
 *
 * @example
 * const limits: MessengerLimits = { maxFrameBytes: 1 << 24, maxUnacked: 1024, maxUnackedBytes: 1 << 23, requestTimeoutMs: 30000 };
 */
export interface MessengerLimits {
  /** Largest frame, in bytes. */
  maxFrameBytes: number;
  /** Most frames not yet acknowledged. */
  maxUnacked: number;
  /** Most bytes not yet acknowledged. */
  maxUnackedBytes: number;
  /** Default request timeout, in ms. */
  requestTimeoutMs: number;
}

/**
 * What a subscriber gets with each published body.
 *
 * @example
 * messenger.subscribe("prices", (body, meta) => console.log(meta.topic, meta.pid, body));
 */
export interface EventMeta {
  /** The topic it was published to. */
  topic: string;
  /** The publisher's process id. */
  pid: number;
}

/** A sequenced frame not yet acknowledged by the host (`buf[start, end)`): sent again after a failover. */
class Outgoing implements OutboxEntry {
  declare readonly seq: number;
  declare readonly type: SequencedType;
  declare readonly buf: Buffer;
  declare readonly start: number;
  declare readonly end: number;
  declare sent: boolean;
  declare done: boolean;
  declare resolve: ((value: unknown) => void) | undefined;
  declare reject: ((err: Error) => void) | undefined;
  /** A request's timeout (ms) and when it runs out (performance.now()); 0: no timeout, or settled. */
  declare timeoutMs: number;
  declare deadline: number;

  // Every field set here, in one place (`declare`d above: class fields, even without a value, run
  // as a function of their own before the constructor, one call more for each message).
  constructor(seq: number, type: SequencedType, buf: Buffer, start: number, end: number) {
    this.seq = seq;
    this.type = type;
    this.buf = buf;
    this.start = start;
    this.end = end;
    this.sent = false;
    this.done = false;
    this.resolve = undefined;
    this.reject = undefined;
    this.timeoutMs = 0;
    this.deadline = 0;
  }
}

/**
 * One executor for every send's promise (it runs at once, inside `new Promise`): no closure made
 * per message.
 */
let settling: Outgoing | undefined;
function takeSettlers(resolve: (value: unknown) => void, reject: (err: Error) => void): void {
  (settling as Outgoing).resolve = resolve;
  (settling as Outgoing).reject = reject;
}

/**
 * A turn's frames are written once this many bytes wait, not only at the end of the turn: the host
 * starts on the first ones while this process encodes the next (the two ends work side by side
 * instead of in turn). Not much less: each write wakes the host (it drains its socket faster than
 * a sender fills it, and sleeps), and a wakeup costs tens of µs on a VM (perf put 7-11% of the
 * sender's time there with 16 KiB; 32 KiB halves the writes).
 */
const PIPELINE_BYTES = 32 * 1024;
/** The buffer the socket reads into (a read takes at most this much). */
const READ_BUFFER_BYTES = 64 * 1024;

function rethrow(err: unknown): never {
  throw err;
}
const NO_BODY = Buffer.alloc(0);
/** Topic names' bytes, kept for the next publish. */
const TOPIC_CACHE_SIZE = 1024;
/*
 * When a READ goes (the host keeps results until then): at once past this many bytes or results
 * read since the last one, else within READ_QUIET_MS (one timer, armed by the first result not
 * yet told: a READ per request would cost a round trip's wakeup on each side).
 */
const READ_AFTER_BYTES = 64 * 1024;
const READ_AFTER_RESULTS = 256;
const READ_QUIET_MS = 100;
/** How long frames sent after a hold wait for the host's WELCOME before going without it (an old host sends none). */
const WELCOME_WAIT_MS = 1000;

/** What a frame of each type carries, for errors. */
const SENDING: Record<SequencedType, string> = {
  [FRAME.msg]: "a message",
  [FRAME.req]: "a request",
  [FRAME.pub]: "a published event",
  [FRAME.sub]: "a subscription",
  [FRAME.unsub]: "a subscription",
};

function remoteError(channel: string, decoded: unknown): OpenChannelError {
  // A codec that carries no objects (bufferCodec) gets the error as JSON text (see the host's errorBody).
  if (typeof decoded === "string" || decoded instanceof Uint8Array) decoded = errorFromText(Buffer.from(decoded).toString("utf8"));
  const e = (typeof decoded === "object" && decoded !== null ? decoded : { message: text(decoded) }) as {
    name?: string;
    message?: unknown;
    code?: string;
  };
  // An error of ours about this channel already names it.
  const message = e.message === undefined ? "(no message)" : text(e.message);
  const about = `open-channel "${channel}": `;
  return openChannelError("ERR_OPEN_CHANNEL_REMOTE", {
    channel,
    remoteMessage: message.startsWith(about) ? message.slice(about.length) : message,
    remoteCode: e.code,
    remoteName: e.name,
  });
}

/** `{ name, message, code }` from the JSON text of an error; other text as the message. */
function errorFromText(body: string): unknown {
  try {
    const parsed = JSON.parse(body) as unknown;
    if (typeof parsed === "object" && parsed !== null && "message" in parsed) return parsed;
  } catch {}
  return { message: body };
}

/**
 * What a member's handler of a host's call gets with the body.
 *
 * @example
 * messenger.handle({ onRequest(body, call) { return call.redelivered ? cached(body) : work(body); } });
 */
export interface HostCallContext {
  /** The call's id on this host. */
  readonly id: number;
  /** The host sent it before, on a connection that closed before this member's answer reached it. */
  readonly redelivered: boolean;
}

/**
 * A member's handlers of the host's calls (`host.sendTo`, `host.broadcast`, `host.requestTo`).
 *
 * @example
 * messenger.handle({
 *   onMessage(body) { console.log("from the host:", body); },
 *   async onRequest(body) { return { load: os.loadavg()[0] }; },
 * });
 */
export interface MemberHandlers {
  /** `host.sendTo(member, body)` or `host.broadcast(body)`: the host's promise resolves once this ran (its promise resolved). */
  onMessage?(body: unknown, call: HostCallContext): void | Promise<void>;
  /** `host.requestTo(member, body)`: the value returned (or resolved) is the reply; a throw rejects the host's call. */
  onRequest?(body: unknown, call: HostCallContext): unknown;
}

/**
 * The events of a {@link Messenger} and their arguments: `messenger.on(event, listener)` is typed
 * by it.
 *
 * @example
 * messenger.on("message", (body) => console.log("pushed:", body));
 */
export interface MessengerEvents {
  /** The host pushed `body` to this member (a handler's `from.send(body)`). */
  message: [body: unknown];
  /** Connected, or connected again after a failover. */
  connect: [];
  /** The channel gave up; pending calls are rejected with `err` too. */
  error: [err: Error];
}

/**
 * A member's end of a message channel, from `MessageChannel.connect()`. Usable at once: what it
 * sends waits until connected. Every `send`, `request`, `publish` and (un)subscription has a
 * sequence number in this messenger's session and stays here until the host acknowledges it; after
 * a failover it goes again, in order, to the new host (flagged `redelivered`).
 *
 * Events: `"message"` `(body)` (the host pushed to this member with `from.send(body)`),
 * `"connect"` (connected, or reconnected after a failover), `"error"` `(err)` (the channel gave
 * up; pending calls are rejected with it too; emitted only when there is a listener).
 *
 * @example
 * const messenger = channel.connect();
 * messenger.on("message", (body) => console.log("pushed:", body));
 * await messenger.send({ job: 1 });
 * const reply = await messenger.request({ get: "count" }, { timeout: 1000 });
 */
export class Messenger extends EventEmitter<MessengerEvents> {
  /**
   * This messenger's session id (hex): what the host sees as `from.session`.
   *
   * @example
   * console.log(`session ${messenger.session}`);
   */
  readonly session: string;
  private readonly sessionBytes: Buffer;
  private readonly socket: net.Socket;
  private readonly reader: FrameReader;
  private readonly outbox = new Outbox<Outgoing>();
  private nextSeq = 1;
  private acked = 0;
  private live = false;
  /**
   * A flush is due at the end of this turn: the frames added to the outbox meanwhile go together
   * (the outbox knows which: see Outbox.nextUnsent).
   */
  private flushDue = false;
  /** Bytes of the frames waiting for that flush. */
  private unsentBytes = 0;
  /** Where frames are encoded, one after another (see Slab). */
  private readonly slab = new Slab();
  /** Set while a body is encoded: a send from inside it (a getter) must not write into the slab. */
  private encoding = false;
  private readonly encodeInto: (value: unknown, slab: Slab, head: number) => number;
  private readonly decode: (buf: Buffer, start: number, end: number) => unknown;
  private readonly topics = new Map<string, Buffer>();
  /** Requests with a timeout, in the order sent (see startTimer). */
  private timed: Outgoing[] = [];
  private timedLive = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private closed: Error | undefined;
  private readonly subscriptions = new Map<string, Set<(body: unknown, meta: EventMeta) => void>>();
  private roomWaiters: Array<() => void> = [];
  /** The host takes READ frames (its WELCOME said so, on this connection). */
  private hostTakesRead = false;
  /** RES and FAIL frames read on this connection, and the count the last READ told. */
  private resultsRead = 0;
  private readSent = 0;
  /** Bytes of the results read since the last READ. */
  private readBytes = 0;
  private readTimer: NodeJS.Timeout | undefined;
  private drainWaiters: Array<() => void> = [];
  /** The host takes BYE, HOLD and ANSWER frames (its WELCOME said so, on this connection). */
  private hostTakesHost = false;
  /** The host's WELCOME came on this connection. */
  private welcomed = false;
  /** Keys held or released on this connection before its WELCOME: sent once it comes. */
  private readonly holdsBeforeWelcome = new Set<string>();
  private welcomeTimer: NodeJS.Timeout | undefined;
  /** No WELCOME within WELCOME_WAIT_MS on this connection: frames no longer wait for it. */
  private welcomeOverdue = false;
  /** Called when the WELCOME of this connection came (or it will not). */
  private welcomeWaiters: Array<() => void> = [];
  private answersCorked = false;
  private readonly uncorkAnswers = (): void => {
    this.answersCorked = false;
    this.socket.uncork();
  };
  /** When this messenger first connected (ms since the epoch); 0 before. */
  private since = 0;
  /** Connections so far: an answer goes only on the connection its call came on. */
  private connections = 0;
  private heldValues = new Map<string, { key: Buffer; bytes: Uint8Array; value: unknown }>();
  private handlers: MemberHandlers = {};
  private readonly eventHandlers = new Map<string, Set<(body: unknown) => void>>();

  /** Made by `MessageChannel.connect()`; connects `channel` at once. */
  constructor(
    /**
     * The underlying channel (its state, host, events).
     *
     * @example
     * messenger.channel.on("state", (state) => console.log(state));
     */
    readonly channel: ProcessChannel,
    private readonly codec: Codec,
    private readonly limits: MessengerLimits,
    timeout: number | undefined,
  ) {
    super();
    this.sessionBytes = randomBytes(FRAME.sessionBytes);
    this.session = this.sessionBytes.toString("hex");
    this.reader = new FrameReader(limits.maxFrameBytes);
    this.encodeInto = slabEncoder(codec);
    // The socket reads into one buffer, reused (no Buffer and no 'data' event per read): what a
    // frame keeps is copied out (the reader's split frames, the codec's values).
    this.decode = rangeDecoder(codec, true);
    const onread = {
      buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
      callback: (bytes: number, buf: Uint8Array) => this.onBytes(bytes, buf as Buffer),
    };
    this.socket = channel.connect(timeout, { onread });
    this.socket.on("connect", () => this.onConnect());
    this.socket.on("error", (err) => this.shutdown(err));
    this.socket.on("close", () => this.shutdown(this.closedError()));
    channel.on("state", (state: string) => {
      if (state !== "connected") this.live = false;
    });
  }

  /**
   * `true` while connected to a host (what is sent goes out at once).
   *
   * @example
   * if (!messenger.connected) console.log("queued until a host answers");
   */
  get connected(): boolean {
    return this.live;
  }

  /**
   * Messages, requests and (un)subscriptions sent and not yet acknowledged by the host.
   *
   * @example
   * console.log(`${messenger.unacknowledged} in flight`);
   */
  get unacknowledged(): number {
    return this.outbox.size;
  }

  /**
   * Sends `body` to the host's `onMessage`. Resolves once the handler has run (its promise, if
   * any, resolved); rejects with `ERR_OPEN_CHANNEL_REMOTE` when it threw. Waits while the window of
   * unacknowledged messages is full.
   *
   * @example
   * await messenger.send({ type: "log", line: "started" });
   */
  send<T>(body: T & Sendable<T>): Promise<void> {
    // Not async: enqueue never throws (it rejects), and one promise per message is enough.
    return this.enqueue(FRAME.msg, body, undefined) as Promise<void>;
  }

  /**
   * Asks the host's `onRequest` and resolves with what it returned; rejects with
   * `ERR_OPEN_CHANNEL_REMOTE` when it threw, `ETIMEDOUT` after `timeout` ms (default 30000; the
   * request may still run on the host).
   *
   * @example
   * const count = await messenger.request({ get: "count" }, { timeout: 2000 });
   */
  request<Reply = unknown, T = unknown>(body: T & Sendable<T>, options?: { timeout?: number }): Promise<Reply> {
    let timeout = this.limits.requestTimeoutMs;
    if (options !== undefined) {
      if (typeof options !== "object" || options === null)
        return Promise.reject(argError("ERR_INVALID_ARG_TYPE", "options", "of type object", options));
      const given = options.timeout;
      if (given !== undefined) {
        if (typeof given !== "number") return Promise.reject(argError("ERR_INVALID_ARG_TYPE", "options.timeout", "of type number", given));
        if (!Number.isFinite(given) || given < 0)
          return Promise.reject(argError("ERR_OUT_OF_RANGE", "options.timeout", "a finite number >= 0 (ms; 0 waits forever)", given));
        timeout = given;
      }
    }
    // Not async: the promise of enqueue is the request's (one promise and one turn less per call).
    return this.enqueue(FRAME.req, body, undefined, timeout) as Promise<Reply>;
  }

  /**
   * Publishes `body` to every subscriber of `topic` (this member too, if subscribed), through the
   * host. Resolves once the host has sent it on.
   *
   * @example
   * await messenger.publish("prices", { eur: 1.08 });
   */
  publish<T>(topic: string, body: T & Sendable<T>): Promise<void> {
    if (typeof topic !== "string") return Promise.reject(argError("ERR_INVALID_ARG_TYPE", "topic", "of type string", topic));
    return this.enqueue(FRAME.pub, body, topic) as Promise<void>;
  }

  /**
   * Calls `handler` for everything published to `topic`, until the returned function is called.
   * Subscriptions are restored on a new host after a failover.
   *
   * @example
   * const unsubscribe = messenger.subscribe("prices", (body, meta) => console.log(body, meta.pid));
   */
  subscribe<T = unknown>(topic: string, handler: (body: T, meta: EventMeta) => void): () => void {
    if (typeof topic !== "string") throw argError("ERR_INVALID_ARG_TYPE", "topic", "of type string", topic);
    if (typeof handler !== "function") throw argError("ERR_INVALID_ARG_TYPE", "handler", "of type function", handler);
    // A topic too long to send: thrown here, not left to the subscription's own send.
    this.topicBytes(topic);
    // The body is the publisher's: its type is the caller's word (the codec does not check it).
    const untyped = handler as (body: unknown, meta: EventMeta) => void;
    let set = this.subscriptions.get(topic);
    if (set === undefined) {
      set = new Set();
      this.subscriptions.set(topic, set);
      this.enqueue(FRAME.sub, undefined, topic).catch(() => undefined);
    }
    set.add(untyped);
    return () => {
      const current = this.subscriptions.get(topic);
      if (current === undefined || !current.delete(untyped) || current.size > 0) return;
      this.subscriptions.delete(topic);
      this.enqueue(FRAME.unsub, undefined, topic).catch(() => undefined);
    };
  }

  /**
   * Sets this member's handlers of the host's calls (`host.sendTo`, `host.broadcast`,
   * `host.requestTo`), replacing those set before. A call with no handler for it: a message is
   * dropped (the host's call resolves), a request fails with `ERR_OPEN_CHANNEL_NO_HANDLER`.
   *
   * @example
   * messenger.handle({ async onRequest(body) { return { pid: process.pid, jobs: queue.length }; } });
   */
  handle(handlers: MemberHandlers): this {
    if (typeof handlers !== "object" || handlers === null)
      throw argError("ERR_INVALID_ARG_TYPE", "handlers", "an object ({ onMessage, onRequest })", handlers);
    for (const key of ["onMessage", "onRequest"] as const) {
      if (handlers[key] !== undefined && typeof handlers[key] !== "function") {
        throw argError("ERR_INVALID_ARG_TYPE", `handlers.${key}`, "of type function", handlers[key]);
      }
    }
    this.handlers = handlers;
    return this;
  }

  /**
   * Holds `key` = `value` for this member: the host sees it in `member.state`, and every host after
   * it does too (it travels in this messenger's hello, before anything sent again), so state that a
   * member holds survives the host. Replaces an earlier value of `key`. The value goes through the
   * codec; keep it small (every hello carries all of it: `ERR_OPEN_CHANNEL_FRAME_TOO_LARGE` past
   * half of `maxFrameBytes` in all).
   *
   * @example
   * const ticket = await messenger.request({ op: "ticket", lock: "db" });
   * messenger.hold("waiting:db", ticket);
   */
  hold<T>(key: string, value: T & Sendable<T>): void {
    if (typeof key !== "string") throw argError("ERR_INVALID_ARG_TYPE", "key", "of type string", key);
    const keyBytes = topicBytes(key);
    let bytes: Uint8Array;
    try {
      bytes = this.codec.encode(value);
    } catch (err) {
      throw encodeError(err, this.channel.name, "a held value", this.codec);
    }
    // Kept for every hello: a copy when the codec handed back the caller's own bytes (bufferCodec).
    if ((bytes as unknown) === value) bytes = Buffer.from(bytes);
    // Every hello carries all of it: within half a frame, so that a hello always fits.
    let total = 0;
    for (const [k, entry] of this.heldValues) if (k !== key) total += 6 + entry.key.length + entry.bytes.length;
    total += 6 + keyBytes.length + bytes.length;
    if (total > this.limits.maxFrameBytes / 2) {
      throw openChannelError("ERR_OPEN_CHANNEL_FRAME_TOO_LARGE", {
        channel: this.channel.name,
        what: "what a member holds",
        bytes: total,
        limit: Math.floor(this.limits.maxFrameBytes / 2),
      });
    }
    this.heldValues.set(key, { key: keyBytes, bytes, value });
    this.sendHold(keyBytes, bytes);
  }

  /**
   * Stops holding `key` (see {@link Messenger.hold}); `false` if it was not held.
   *
   * @example
   * messenger.release("held:db");
   */
  release(key: string): boolean {
    const entry = this.heldValues.get(key);
    if (entry === undefined) return false;
    this.heldValues.delete(key);
    this.sendHold(entry.key, undefined);
    return true;
  }

  /**
   * What this member holds (see {@link Messenger.hold}).
   *
   * @example
   * for (const [key, value] of messenger.held) console.log(key, value);
   */
  get held(): ReadonlyMap<string, unknown> {
    const out = new Map<string, unknown>();
    for (const [key, entry] of this.heldValues) out.set(key, entry.value);
    return out;
  }

  /**
   * A HOLD to the host now, after what was sent before it. Before the host's WELCOME on this
   * connection it waits for it (a host that does not take HOLD frames gets it in the next hello).
   */
  private sendHold(key: Buffer, bytes: Uint8Array | undefined): void {
    if (!this.live || this.closed !== undefined) return;
    if (!this.welcomed) {
      // What was sent before it goes first; what is sent after it waits for it (see flush).
      if (this.flushDue && this.holdsBeforeWelcome.size === 0) this.flush();
      this.holdsBeforeWelcome.add(key.toString("utf8"));
      return;
    }
    if (!this.hostTakesHost) return;
    if (this.flushDue) this.flush();
    this.socket.write(encodeHold(key, bytes));
  }

  /** A host that sends no WELCOME (a version before READ): what waited for it goes. */
  private readonly noWelcome = (): void => {
    this.welcomeTimer = undefined;
    // The frames go; the holds still wait for a WELCOME that may yet come (a slow host).
    this.welcomeOverdue = true;
    this.flush();
    this.welcomeCame();
  };

  private welcomeCame(): void {
    const waiters = this.welcomeWaiters;
    this.welcomeWaiters = [];
    for (const w of waiters) w();
  }

  private clearWelcomeTimer(): void {
    if (this.welcomeTimer !== undefined) clearTimeout(this.welcomeTimer);
    this.welcomeTimer = undefined;
  }

  /** @internal Handlers of named events the host sends (see typedEvents). */
  onEvent(name: string, handler: (body: unknown) => void): () => void {
    let set = this.eventHandlers.get(name);
    if (set === undefined) {
      set = new Set();
      this.eventHandlers.set(name, set);
    }
    set.add(handler);
    return () => {
      const current = this.eventHandlers.get(name);
      if (current?.delete(handler) && current.size === 0) this.eventHandlers.delete(name);
    };
  }

  /**
   * Waits until the host has acknowledged everything sent (or the channel gave up), then closes the
   * channel. Calls after it reject with `ERR_OPEN_CHANNEL_CLOSED`. If this process hosts, its host
   * goes on serving the other members (until the process exits); `{ handover: true }` also stops
   * hosting, as `channel.close({ handover: true })` does.
   *
   * @param options - `handover`: also stop hosting (default `false`)
   * @example
   * await messenger.send("last words");
   * await messenger.close();
   * process.once("SIGTERM", () => messenger.close({ handover: true }).then(() => process.exit(0)));
   */
  async close(options?: CloseOptions): Promise<void> {
    const handover = parseCloseOptions(options);
    if (this.closed === undefined && this.outbox.size > 0) {
      await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    }
    if (this.closed === undefined && this.live && !this.welcomed) {
      // Just connected: whether the host takes a BYE is in its WELCOME, on its way.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, WELCOME_WAIT_MS);
        this.welcomeWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    if (this.closed === undefined && this.live && this.hostTakesHost) {
      // Goodbye: the host's onLeave fires now ("closed"), not after the grace of a lost member.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        this.socket.write(BYE, () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    this.socket.destroy();
    // After our socket: the channel is closed unless it was connected again for a new messenger.
    if (handover) this.channel.close({ handover: true });
  }

  // ---- sending --------------------------------------------------------------------------------

  private enqueue(type: SequencedType, body: unknown, topic: string | undefined, timeoutMs?: number): Promise<unknown> {
    if (this.closed !== undefined) return Promise.reject(this.closed);
    if (this.outbox.size >= this.limits.maxUnacked || this.outbox.bytes >= this.limits.maxUnackedBytes) {
      return new Promise<void>((resolve) => this.roomWaiters.push(resolve)).then(() => this.enqueue(type, body, topic, timeoutMs));
    }
    // The slab the frame goes to, and where it starts there (it ends at the slab's `at`).
    let slab = this.slab;
    let start: number;
    let topicHead: Buffer | undefined;
    if (topic !== undefined) {
      try {
        topicHead = this.topicBytes(topic);
      } catch (err) {
        // A topic over 65535 bytes: the call rejects.
        return Promise.reject(err);
      }
    }
    try {
      const head = sequencedHeadBytes(topicHead);
      if (type === FRAME.sub || type === FRAME.unsub) start = slab.put(NO_BODY, head);
      else if (this.encoding) {
        // Sent from inside the encoding of another body: a buffer of its own.
        slab = new Slab(0);
        start = slab.put(this.codec.encode(body), head);
      } else {
        this.encoding = true;
        try {
          start = this.encodeInto(body, slab, head);
        } finally {
          this.encoding = false;
        }
      }
    } catch (err) {
      return Promise.reject(encodeError(err, this.channel.name, SENDING[type], this.codec));
    }
    const buf = slab.buf;
    const end = slab.at;
    this.slab.dropLarge();
    writeSequencedHead(buf, start, end, type, this.nextSeq, topicHead);
    if (end - start - 4 > this.limits.maxFrameBytes) {
      if (buf === this.slab.buf && end === this.slab.at) this.slab.at = start;
      return Promise.reject(
        openChannelError("ERR_OPEN_CHANNEL_FRAME_TOO_LARGE", {
          channel: this.channel.name,
          what: "a message",
          bytes: end - start - 4,
          limit: this.limits.maxFrameBytes,
        }),
      );
    }
    const out = new Outgoing(this.nextSeq++, type, buf, start, end);
    settling = out;
    const promise = new Promise(takeSettlers);
    settling = undefined;
    if (timeoutMs !== undefined && timeoutMs > 0) this.startTimer(out, timeoutMs);
    this.outbox.add(out);
    if (this.live) this.written(out.end - out.start);
    return promise;
  }

  /**
   * Requests' timeouts share one timer, armed for the earliest deadline, not one timer each (a
   * request costs no timer set and cleared): `timed` lists the requests with a deadline, settled
   * ones are dropped when the timer fires or when they outnumber the live ones.
   */
  private startTimer(out: Outgoing, timeoutMs: number): void {
    out.timeoutMs = timeoutMs;
    out.deadline = performance.now() + timeoutMs;
    this.timed.push(out);
    if (this.timedLive++ === 0) this.timer?.ref();
    if (out.deadline < this.timerAt) this.armTimer(out.deadline);
    else if (this.timed.length > 2 * this.timedLive + 1024) this.timed = this.timed.filter((o) => o.deadline > 0);
  }

  private armTimer(deadline: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = deadline;
    this.timer = setTimeout(() => this.onTimer(), Math.max(1, Math.ceil(deadline - performance.now())));
    if (this.timedLive === 0) this.timer.unref();
  }

  /** The request no longer waits for its reply (settled, or the messenger closed). */
  private untime(out: Outgoing): void {
    if (out.deadline === 0) return;
    out.deadline = 0;
    // Nothing waits any more: the timer must not keep the process alive.
    if (--this.timedLive === 0) this.timer?.unref();
  }

  private onTimer(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    const expired: Outgoing[] = [];
    let next = Number.POSITIVE_INFINITY;
    this.timed = this.timed.filter((out) => {
      if (out.deadline === 0) return false;
      if (out.deadline <= now) {
        expired.push(out);
        return false;
      }
      if (out.deadline < next) next = out.deadline;
      return true;
    });
    if (next < Number.POSITIVE_INFINITY) this.armTimer(next);
    // Rejected in the order of their deadlines (the timer may run late on a busy machine).
    expired.sort((a, b) => a.deadline - b.deadline);
    for (const out of expired) this.expire(out);
  }

  private expire(out: Outgoing): void {
    this.untime(out);
    out.resolve = undefined;
    const reject = out.reject;
    out.reject = undefined;
    // Started by the host already: nothing left to deliver, give its place back.
    if (out.seq <= this.acked) {
      this.outbox.remove(out);
      this.wake();
    }
    reject?.(openChannelError("ETIMEDOUT", { channel: this.channel.name, waiting: "reply", ms: out.timeoutMs, seq: out.seq }));
  }

  /** The bytes of `topic`, kept for the next time. */
  private topicBytes(topic: string): Buffer {
    let bytes = this.topics.get(topic);
    if (bytes === undefined) {
      bytes = topicBytes(topic);
      if (this.topics.size >= TOPIC_CACHE_SIZE) this.topics.clear();
      this.topics.set(topic, bytes);
    }
    return bytes;
  }

  /** A frame of `bytes` was added to the outbox while connected: it goes with this turn's flush. */
  private written(bytes: number): void {
    if (!this.flushDue) {
      this.flushDue = true;
      process.nextTick(this.flushLater);
    }
    this.unsentBytes += bytes;
    if (this.unsentBytes >= PIPELINE_BYTES) this.flush();
  }

  private readonly flushLater = (): void => {
    this.flushDue = false;
    this.flush();
  };

  /**
   * Writes the frames not yet written on this connection: frames that lie next to each other in
   * memory (a burst of sends into the slab) go as one range, no copy. Returns how many of them
   * went before (redelivered).
   */
  private flush(): number {
    this.unsentBytes = 0;
    // The connection went meanwhile: these frames are still in the outbox and go on the next one.
    if (!this.live) return 0;
    // A hold waits for the host's WELCOME: what was sent after it waits too, to keep the order
    // (for WELCOME_WAIT_MS at most: a host before READ sends none).
    if (!this.welcomed && !this.welcomeOverdue && this.holdsBeforeWelcome.size > 0) {
      if (this.welcomeTimer === undefined) {
        this.welcomeTimer = setTimeout(this.noWelcome, WELCOME_WAIT_MS);
        this.welcomeTimer.unref();
      }
      return 0;
    }
    let first = this.outbox.nextUnsent();
    if (first === undefined) return 0;
    let again = 0;
    let runEnd = first.start;
    let corked = false;
    for (let out: Outgoing | undefined = first; out !== undefined; out = this.outbox.nextUnsent()) {
      if (out.sent) {
        markRedelivered(out.buf, out.start);
        again++;
      }
      out.sent = true;
      if (out.buf !== first.buf || out.start !== runEnd) {
        if (!corked) {
          corked = true;
          this.socket.cork();
        }
        this.socket.write(first.buf.subarray(first.start, runEnd));
        first = out;
      }
      runEnd = out.end;
    }
    this.socket.write(first.buf.subarray(first.start, runEnd));
    if (corked) this.socket.uncork();
    return again;
  }

  private onConnect(): void {
    // A partial frame of a dead host must not run into the new host's bytes.
    this.reader.reset();
    // READ counts are per connection; a new host says again whether it takes them.
    this.hostTakesRead = false;
    this.resultsRead = 0;
    this.readSent = 0;
    this.readBytes = 0;
    this.hostTakesHost = false;
    this.welcomed = false;
    this.welcomeOverdue = false;
    // The hello carries every held value as it is now.
    this.holdsBeforeWelcome.clear();
    this.clearWelcomeTimer();
    if (this.since === 0) this.since = Date.now();
    this.connections++;
    const held: [Buffer, Uint8Array][] = [];
    for (const entry of this.heldValues.values()) held.push([entry.key, entry.bytes]);
    this.socket.write(
      encodeHello(this.sessionBytes, process.pid, this.acked, this.subscriptions.keys(), this.since, this.connections > 1, held),
    );
    this.live = true;
    // Everything not acknowledged goes (again) to this host, in order, after the hello.
    this.outbox.unsendAll();
    const again = this.flush();
    if (again > 0) debug("messages %j: sending %d unacknowledged frame(s) again", this.channel.name, again);
    this.emit("connect");
  }

  // ---- receiving ------------------------------------------------------------------------------

  private onBytes(bytes: number, buf: Buffer): undefined {
    if (this.closed !== undefined) return;
    try {
      this.reader.feedRange(buf, 0, bytes, this.onRange);
    } catch (err) {
      // Only a frame header throws here (onRange catches everything else): past a bad one the
      // stream cannot be read in step any more, and guessing would deliver garbage. Give up, loudly.
      this.badStream(err as Error);
      return;
    }
    if (this.resultsRead !== this.readSent && this.hostTakesRead) this.readDue();
  }

  /** Results were read that the host was not told of: a READ now, or within READ_QUIET_MS. */
  private readDue(): void {
    if (this.readBytes >= READ_AFTER_BYTES || this.resultsRead - this.readSent >= READ_AFTER_RESULTS) this.sendRead();
    else if (this.readTimer === undefined) {
      this.readTimer = setTimeout(this.onReadTimer, READ_QUIET_MS);
      this.readTimer.unref();
    }
  }

  private readonly onReadTimer = (): void => {
    this.readTimer = undefined;
    if (this.resultsRead !== this.readSent && this.hostTakesRead && this.live) this.sendRead();
  };

  private sendRead(): void {
    this.readSent = this.resultsRead;
    this.readBytes = 0;
    this.socket.write(encodeRead(this.resultsRead));
  }

  /** The host sent a frame this messenger cannot read: everything waiting is rejected with a code. */
  private badStream(cause: Error): void {
    const err = openChannelError("ERR_OPEN_CHANNEL_BAD_FRAME", { channel: this.channel.name, reason: cause.message, cause });
    debug("messages %j: %s", this.channel.name, err.message);
    // The socket first: shutdown() ends by emitting "error", whose listener may throw.
    this.socket.destroy();
    this.shutdown(err);
  }

  private readonly onRange = (buf: Buffer, start: number, end: number): void => {
    // Acknowledgements and results, the most frequent, without a Buffer made for them.
    const type = frameType(buf, start);
    try {
      if (type === FRAME.ack) this.onAck(frameSeq(buf, start));
      else if (type === FRAME.res || type === FRAME.fail) this.onResult(type, buf, start, end);
      else this.onFrame(buf, start, end);
    } catch (err) {
      // Not the stream's fault (a bug, or user code run from here): it surfaces as uncaught, and
      // the frames after this one are still read (an error thrown into the reader would cut the
      // read short, and it must never be taken for a bad header: see onBytes).
      process.nextTick(rethrow, err);
    }
  };

  /** The RES or FAIL frame at `buf[start, end)`: settles its request or message. */
  private onResult(type: typeof FRAME.res | typeof FRAME.fail, buf: Buffer, start: number, end: number): void {
    const seq = frameSeq(buf, start);
    const flags = type === FRAME.res ? frameFlags(buf, start) : 0;
    this.resultsRead++;
    this.readBytes += end - start;
    // A reply that stands for an ACK too: what came before it is settled first, in order.
    if ((flags & FRAME.acks) !== 0) this.onAck(seq);
    const out = this.outbox.get(seq);
    if (out === undefined) return;
    let value: unknown;
    let failed: Error | undefined;
    try {
      value = this.decode(buf, resultBodyAt(type, start), end);
      // What the host's handler threw, as an error here (built now: nothing may throw below).
      if ((flags & FRAME.lost) !== 0) failed = this.lostError(out, value);
      else if ((flags & FRAME.ok) === 0) failed = remoteError(this.channel.name, value);
    } catch (err) {
      // A codec knows no channel: its error is made to name this one.
      failed = withChannel(err as Error, this.channel.name);
    }
    const { resolve, reject } = out;
    out.resolve = undefined;
    out.reject = undefined;
    this.untime(out);
    if (seq <= this.acked) {
      this.forget(out);
      this.wake();
    }
    // A body this codec cannot read (ERR_OPEN_CHANNEL_BAD_BODY) rejects the call too.
    if (failed !== undefined) reject?.(failed);
    else resolve?.(value);
  }

  /** The host handled `out` but let go of its result before this messenger read it (a reconnect). */
  private lostError(out: Outgoing, decoded: unknown): OpenChannelError {
    return openChannelError("ERR_OPEN_CHANNEL_REPLY_LOST", {
      channel: this.channel.name,
      seq: out.seq,
      request: out.type === FRAME.req,
      cause: remoteError(this.channel.name, decoded),
    });
  }

  /** A PUSH, EVENT or WELCOME frame at `buf[start, end)` (`buf` is read into again: nothing kept of it). */
  private onFrame(buf: Buffer, start: number, end: number): void {
    const type = frameType(buf, start);
    if (type === FRAME.welcome) {
      const features = welcomeFeatures(buf, start, end);
      this.hostTakesRead = (features & FRAME.features.read) !== 0;
      this.hostTakesHost = (features & FRAME.features.host) !== 0;
      this.welcomed = true;
      if (this.hostTakesHost) {
        for (const key of this.holdsBeforeWelcome) {
          const entry = this.heldValues.get(key);
          this.socket.write(encodeHold(entry?.key ?? topicBytes(key), entry?.bytes));
        }
      }
      this.holdsBeforeWelcome.clear();
      this.clearWelcomeTimer();
      this.flush();
      this.welcomeCame();
      return;
    }
    if (type === FRAME.call) {
      this.onCall(buf, start, end);
      return;
    }
    if (type !== FRAME.push && type !== FRAME.event) {
      debug("messages %j: ignoring frame type %d from the host", this.channel.name, type);
      return;
    }
    let body: unknown;
    let meta: EventMeta | undefined;
    let handlers: Set<(body: unknown, meta: EventMeta) => void> | undefined;
    try {
      if (type === FRAME.push) body = this.decode(buf, start + FRAME.headerBytes, end);
      else {
        const head = decodeEventHead(buf, start, end);
        handlers = head === undefined ? undefined : this.subscriptions.get(head.topic);
        if (head === undefined || handlers === undefined) return;
        meta = { topic: head.topic, pid: head.pid };
        body = this.decode(buf, head.bodyAt, end);
      }
    } catch (err) {
      debug(
        "messages %j: dropping a %s the host sent: %s",
        this.channel.name,
        type === FRAME.push ? "push" : "event",
        (err as Error).message,
      );
      return;
    }
    // The user's code: what it throws surfaces as from any listener (uncaught, see onRange), after
    // this read is handled (the frames after it, acknowledgements too, are not lost with it).
    if (handlers === undefined) this.emit("message", body);
    else for (const handler of handlers) handler(body, meta as EventMeta);
  }

  /** A CALL from the host: its handler runs, and its outcome goes back on the connection it came on. */
  private onCall(buf: Buffer, start: number, end: number): void {
    if (end - start < FRAME.callHeaderBytes) {
      debug("messages %j: ignoring a CALL frame cut short", this.channel.name);
      return;
    }
    const id = frameSeq(buf, start);
    const flags = frameFlags(buf, start);
    const request = (flags & FRAME.callRequest) !== 0;
    const call: HostCallContext = { id, redelivered: (flags & FRAME.callRedelivered) !== 0 };
    const connection = this.connections;
    const answer = (ok: boolean, value: unknown): void => {
      if (!this.live || this.connections !== connection || this.closed !== undefined) return;
      let bytes: Uint8Array;
      try {
        bytes = ok && !request ? NO_BODY : this.codec.encode(value);
      } catch (err) {
        ok = false;
        bytes = this.errorBytes(encodeError(err, this.channel.name, "the reply", this.codec));
      }
      // The answers of one turn go as one write (the calls of a read are answered together).
      if (!this.answersCorked) {
        this.answersCorked = true;
        this.socket.cork();
        process.nextTick(this.uncorkAnswers);
      }
      this.socket.write(encodeCall(FRAME.answer, id, ok ? 1 : 0, bytes));
    };
    const fail = (err: unknown): void => answer(false, this.errorFields(err));
    let outcome: unknown;
    try {
      const body = this.decode(buf, start + FRAME.callHeaderBytes, end);
      if (request) {
        if (this.handlers.onRequest === undefined) throw openChannelError("ERR_OPEN_CHANNEL_NO_HANDLER", { member: true });
        outcome = this.handlers.onRequest(body, call);
      } else {
        const name = eventName(body);
        const events = name === undefined ? undefined : this.eventHandlers.get(name);
        if (events !== undefined) for (const handler of events) handler((body as { body: unknown }).body);
        else outcome = this.handlers.onMessage?.(body, call);
      }
    } catch (err) {
      fail(err);
      return;
    }
    if (outcome instanceof Promise) outcome.then((value) => answer(true, value), fail);
    else answer(true, outcome);
  }

  /** `{ name, message, code }` of what a handler threw. */
  private errorFields(err: unknown): unknown {
    const e = err instanceof Error ? err : new Error(text(err));
    const code = (e as { code?: unknown }).code;
    return { name: e.name, message: e.message, code: typeof code === "string" ? code : undefined };
  }

  private errorBytes(err: Error): Uint8Array {
    try {
      return this.codec.encode(this.errorFields(err));
    } catch {
      return this.codec.encode(JSON.stringify(this.errorFields(err)));
    }
  }

  private onAck(seq: number): void {
    if (seq <= this.acked) return;
    this.acked = seq;
    this.outbox.acknowledge(seq, this.onAcked);
    this.wake();
  }

  private readonly onAcked = (out: Outgoing): void => {
    // A request is acknowledged once the host started it, and settled by its reply: until
    // then it stays here, to go again to the next host if this one dies first.
    if (out.type === FRAME.req && out.resolve !== undefined) return;
    this.forget(out);
    const resolve = out.resolve;
    out.resolve = undefined;
    out.reject = undefined;
    resolve?.(undefined);
  };

  private forget(out: Outgoing): void {
    if (!this.outbox.remove(out)) return;
    this.untime(out);
  }

  private wake(): void {
    if (this.roomWaiters.length > 0) {
      const waiters = this.roomWaiters;
      this.roomWaiters = [];
      for (const w of waiters) w();
    }
    if (this.outbox.size === 0 && this.drainWaiters.length > 0) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    }
  }

  private closedError(): OpenChannelError {
    return openChannelError("ERR_OPEN_CHANNEL_CLOSED", { channel: this.channel.name, closed: "messenger" });
  }

  /** The channel gave up or was closed: everything still waiting is rejected with `err`. */
  private shutdown(err: Error): void {
    if (this.closed !== undefined) return;
    this.closed = err;
    this.live = false;
    this.outbox.forEach((out) => {
      this.untime(out);
      out.reject?.(err);
      out.resolve = undefined;
      out.reject = undefined;
    });
    this.outbox.clear();
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timed = [];
    if (this.readTimer !== undefined) clearTimeout(this.readTimer);
    this.readTimer = undefined;
    this.clearWelcomeTimer();
    this.welcomeCame();
    this.wake();
    for (const w of this.roomWaiters) w();
    if (!isOpenChannelError(err, "ERR_OPEN_CHANNEL_CLOSED")) {
      if (this.listenerCount("error") > 0) this.emit("error", err);
    }
  }
}
