/**
 * `@open-channel/messages`: framed messages over an open-channel channel. `send` with an
 * acknowledgement, `request`/response, pushes from the host, pub/sub through the host, and nothing
 * lost across a failover: what the host has not acknowledged goes again to the next host, flagged
 * `redelivered`.
 *
 * @example
 * const { openMessageChannel } = require("@open-channel/messages");
 * const { unixTransport } = require("@open-channel/transport-unix");
 * const jobs = openMessageChannel("jobs", {
 *   onMessage(body, from) { console.log(`from ${from.pid}:`, body); },
 *   async onRequest(body) { return { echo: body }; },
 * }, { transport: unixTransport() });
 * const messenger = jobs.connect();
 * await messenger.send({ job: 1 });
 *
 * @packageDocumentation
 */
import { argError, openChannel, type ProcessChannel, type Transport } from "@open-channel/core";
import type { Sendable } from "./codec";
import { type Codec, structuredCodec } from "./codec";
import { type Member, type MessageHandlers, MessageHost } from "./host";
import { Messenger } from "./messenger";

export { bufferCodec, type Codec, jsonCodec, type Sendable, structuredCodec, v8Codec } from "./codec";
export { type EventMap, type HostCalls, type HostEvents, hostEvents, type MemberEvents, typedEvents } from "./events";
export { LEAVE_GRACE_MS, type Member, type MessageContext, type MessageHandlers } from "./host";
export {
  type EventMeta,
  type HostCallContext,
  type MemberHandlers,
  Messenger,
  type MessengerEvents,
  type MessengerLimits,
} from "./messenger";

/**
 * The host's side of a message channel, in the process that hosts it (`messageChannel.host`):
 * its members, and calls to them. A call dies with the host that made it (its promise rejects
 * with `ERR_OPEN_CHANNEL_NOT_HOST` when this process stops hosting).
 *
 * @example
 * const host = jobs.host;
 * if (host) {
 *   console.log(host.members().map((m) => m.pid));
 *   await host.broadcast({ reload: true });
 * }
 */
export interface MessageHostSide {
  /**
   * The members joined to this host, in the order they joined.
   *
   * @example
   * for (const m of jobs.host?.members() ?? []) console.log(m.pid, m.since, m.state);
   */
  members(): Member[];
  /**
   * The member of session `session` (hex, as `from.session`), if it is joined here.
   *
   * @example
   * onMessage(body, from) { const member = jobs.host?.member(from.session); }
   */
  member(session: string): Member | undefined;
  /**
   * Sends `body` to `member`'s `onMessage` (`messenger.handle()`): resolves once it ran (its
   * promise resolved); rejects with `ERR_OPEN_CHANNEL_MEMBER_FAILED` when it threw,
   * `ERR_OPEN_CHANNEL_MEMBER_LEFT` when the member left first. Waits while the member's window
   * (`maxUnacked`, `maxUnackedBytes`) is full. A member that reconnects to this host gets what it
   * had not answered again (`call.redelivered`).
   *
   * `timeout` (ms, default 0: none): `ETIMEDOUT` past it, counted from the call (waiting for room
   * included).
   *
   * @example
   * await jobs.host?.sendTo(member, { stop: true });
   */
  sendTo<T>(member: Member | string, body: T & Sendable<T>, options?: { timeout?: number }): Promise<void>;
  /**
   * Asks `member`'s `onRequest` (`messenger.handle()`) and resolves with its reply; as `sendTo`, its
   * `timeout` defaulting to the channel's `requestTimeout`.
   *
   * @example
   * const load = await jobs.host?.requestTo(member, "load?", { timeout: 1000 });
   */
  requestTo<Reply = unknown, T = unknown>(member: Member | string, body: T & Sendable<T>, options?: { timeout?: number }): Promise<Reply>;
  /**
   * `sendTo` every member, the body encoded once: resolves with the members that handled it within
   * `timeout` ms (default: the channel's `requestTimeout`; a member that left, failed, did not
   * answer in time or runs a version without calls is left out).
   *
   * @example
   * const reached = await jobs.host?.broadcast({ config: 2 }, { timeout: 1000 });
   * console.log(`${reached?.length} members reloaded`);
   */
  broadcast<T>(body: T & Sendable<T>, options?: { timeout?: number }): Promise<Member[]>;
}

/**
 * Options of {@link openMessageChannel}. Every process of a channel must use the same codec and
 * limits.
 *
 * @example
 * openMessageChannel("jobs", handlers, { transport, codec: jsonCodec, maxUnacked: 256 });
 */
export interface MessageChannelOptions {
  /** The transport (the `open-channel` package picks one for the platform when omitted there). */
  transport: Transport;
  /** How bodies become bytes: {@link structuredCodec} (default), `v8Codec`, `jsonCodec`, `bufferCodec` or your own. */
  codec?: Codec;
  /** Largest frame, in bytes (default 16 MiB): a bigger send is refused; a host closes a member's connection that announces one. */
  maxFrameBytes?: number;
  /** Most sends, requests and publishes not yet acknowledged (default 1024); `send()` waits beyond it. */
  maxUnacked?: number;
  /** Most bytes not yet acknowledged (default 8 MiB); `send()` waits beyond it. Also what a host keeps per member of the replies it has not read. */
  maxUnackedBytes?: number;
  /** Default `request()` timeout, in ms (default 30000). */
  requestTimeout?: number;
}

/**
 * Defaults of {@link MessageChannelOptions}.
 *
 * @example
 * openMessageChannel("big", handlers, { transport, maxFrameBytes: 4 * MESSAGE_DEFAULTS.maxFrameBytes });
 */
export const MESSAGE_DEFAULTS = {
  /** 16 MiB. */
  maxFrameBytes: 16 * 1024 * 1024,
  /** 1024 frames. */
  maxUnacked: 1024,
  /** 8 MiB. */
  maxUnackedBytes: 8 * 1024 * 1024,
  /** 30 s. */
  requestTimeout: 30_000,
} as const;

/** The error of a bad `{ timeout }` option of a call, if it is bad. */
function checkTimeout(options: { timeout?: unknown } | undefined): Error | undefined {
  if (options === undefined) return undefined;
  if (typeof options !== "object" || options === null) return argError("ERR_INVALID_ARG_TYPE", "options", "of type object", options);
  const { timeout } = options;
  if (timeout === undefined) return undefined;
  if (typeof timeout !== "number") return argError("ERR_INVALID_ARG_TYPE", "options.timeout", "of type number", timeout);
  if (!Number.isFinite(timeout) || timeout < 0)
    return argError("ERR_OUT_OF_RANGE", "options.timeout", "a finite number >= 0 (ms; 0 waits forever)", timeout);
  return undefined;
}

function positiveInteger(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number") throw argError("ERR_INVALID_ARG_TYPE", `options.${name}`, "of type number", value);
  if (!Number.isInteger(value) || value <= 0) throw argError("ERR_OUT_OF_RANGE", `options.${name}`, "a positive integer", value);
  return value;
}

/**
 * A message channel: the handlers run in whichever process hosts; `connect()` gives this
 * process's {@link Messenger}.
 *
 * @example
 * const jobs = openMessageChannel("jobs", { onMessage: (body) => queue.push(body) }, { transport });
 * const messenger = jobs.connect(5000);
 */
export class MessageChannel {
  /**
   * The underlying channel (`channel.isHost`, `channel.hostPid`, its events).
   *
   * @example
   * jobs.channel.on("failover", ({ hostPid }) => console.log(`jobs now hosted by ${hostPid}`));
   */
  readonly channel: ProcessChannel;
  private readonly codec: Codec;
  private readonly hostSide: MessageHostSide;
  private readonly limits: { maxFrameBytes: number; maxUnacked: number; maxUnackedBytes: number; requestTimeoutMs: number };

  /** Use {@link openMessageChannel}; the same arguments. */
  constructor(
    /**
     * The channel's name.
     *
     * @example
     * console.log(jobs.name); // "jobs"
     */
    readonly name: string,
    handlers: MessageHandlers,
    options: MessageChannelOptions,
  ) {
    if (typeof handlers !== "object" || handlers === null)
      throw argError("ERR_INVALID_ARG_TYPE", "handlers", "an object ({ onMessage, onRequest })", handlers);
    for (const key of ["onMessage", "onRequest", "onJoin", "onLeave"] as const) {
      if (handlers[key] !== undefined && typeof handlers[key] !== "function") {
        throw argError("ERR_INVALID_ARG_TYPE", `handlers.${key}`, "of type function", handlers[key]);
      }
    }
    this.codec = options.codec ?? structuredCodec;
    if (typeof this.codec.encode !== "function" || typeof this.codec.decode !== "function") {
      throw argError("ERR_INVALID_ARG_TYPE", "options.codec", "an object with encode(value) and decode(bytes) functions", this.codec);
    }
    this.limits = {
      maxFrameBytes: positiveInteger("maxFrameBytes", options.maxFrameBytes, MESSAGE_DEFAULTS.maxFrameBytes),
      maxUnacked: positiveInteger("maxUnacked", options.maxUnacked, MESSAGE_DEFAULTS.maxUnacked),
      maxUnackedBytes: positiveInteger("maxUnackedBytes", options.maxUnackedBytes, MESSAGE_DEFAULTS.maxUnackedBytes),
      requestTimeoutMs: positiveInteger("requestTimeout", options.requestTimeout, MESSAGE_DEFAULTS.requestTimeout),
    };
    const host = new MessageHost(handlers, {
      codec: this.codec,
      maxFrameBytes: this.limits.maxFrameBytes,
      maxUnacked: this.limits.maxUnacked,
      maxUnackedBytes: this.limits.maxUnackedBytes,
      channel: name,
      transport: typeof options.transport?.name === "string" ? options.transport.name : "unknown",
      isHost: () => this.channel.isHost,
      requestTimeoutMs: this.limits.requestTimeoutMs,
    });
    // openChannel checks the name and the transport: a name the handshake cannot carry (a number,
    // over 1024 bytes) threw later, uncaught, from a connect event or a timer.
    this.channel = openChannel(name, host.listener, { transport: options.transport });
    this.channel.on("hosting", (isHost: boolean) => {
      if (!isHost) host.stepDown();
    });
    this.hostSide = {
      members: () => host.members(),
      member: (session) => host.member(session),
      sendTo: (member, body, options) => {
        const bad = checkTimeout(options);
        return bad !== undefined ? Promise.reject(bad) : (host.call(member, body, false, options?.timeout) as Promise<void>);
      },
      requestTo: <Reply>(member: Member | string, body: unknown, options?: { timeout?: number }) => {
        const timeout = options?.timeout;
        const bad = checkTimeout(options);
        if (bad !== undefined) return Promise.reject(bad);
        return host.call(member, body, true, timeout) as Promise<Reply>;
      },
      broadcast: (body, options) => {
        const bad = checkTimeout(options);
        return bad !== undefined ? Promise.reject(bad) : host.broadcast(body, options?.timeout ?? this.limits.requestTimeoutMs);
      },
    };
  }

  /**
   * The host's side ({@link MessageHostSide}: members, calls to them) while this process hosts the
   * channel; `undefined` otherwise.
   *
   * @example
   * jobs.channel.on("hosting", (isHost) => {
   *   if (isHost) console.log("hosting, members:", jobs.host?.members().length);
   * });
   */
  get host(): MessageHostSide | undefined {
    return this.channel.isHost ? this.hostSide : undefined;
  }

  /**
   * Connects this process (electing a host if there is none) and returns its messenger, usable at
   * once. One messenger per channel object: call again after it closed.
   *
   * @example
   * const messenger = jobs.connect();
   * messenger.on("connect", () => console.log("connected, host pid", jobs.channel.hostPid));
   */
  connect(timeout?: number): Messenger {
    return new Messenger(this.channel, this.codec, this.limits, timeout);
  }
}

/**
 * Opens a message channel named `name` (nothing happens until `connect()`).
 *
 * @example
 * const jobs = openMessageChannel("jobs", {
 *   onMessage(body, from) { console.log(from.pid, body, from.redelivered); },
 *   async onRequest(body) { return "pong"; },
 * }, { transport: unixTransport() });
 * const reply = await jobs.connect().request("ping");
 */
export function openMessageChannel<Message = unknown, Request = unknown>(
  name: string,
  handlers: MessageHandlers<Message, Request>,
  options: MessageChannelOptions,
): MessageChannel {
  return new MessageChannel(name, handlers as MessageHandlers, options);
}
