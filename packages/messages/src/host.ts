import type * as net from "node:net";
import { inspect } from "node:util";
import { argError, debug, isOpenChannelError, type OpenChannelError, openChannelError, withChannel } from "@open-channel/core";
import { type Codec, encodeError, rangeDecoder, type Sendable, slabEncoder } from "./codec";
import {
  decodeHello,
  decodeHold,
  decodeRead,
  encodeCall,
  encodeEvent,
  encodePush,
  encodeResult,
  FRAME,
  FrameReader,
  frameFlags,
  frameSeq,
  frameType,
  readTopic,
  setResultFlag,
  WELCOME,
  writeAck,
  writeResultHead,
} from "./frame";
import { Results } from "./results";
import { Slab } from "./slab";
import { text } from "./text";

/** A named event's body on the wire: `{ [EVENT_KEY]: name, body }` (see typedEvents). */
export const EVENT_KEY = "@open-channel/event";

/** The event name of `body` if it is a named event's envelope. */
export function eventName(body: unknown): string | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const name = (body as Record<string, unknown>)[EVENT_KEY];
  return typeof name === "string" ? name : undefined;
}

/**
 * Who sent a message, as the host's handlers see it.
 *
 * @example
 * onMessage(body, from) {
 *   if (from.redelivered) console.log(`seq ${from.seq} of ${from.session} again, after a failover`);
 *   from.send({ ok: true }); // a push to that member: its messenger emits "message"
 * }
 */
export interface MessageContext {
  /** The member's process id. */
  readonly pid: number;
  /** The member's session id (hex): one per messenger, kept across reconnects. */
  readonly session: string;
  /** The message's sequence number in that session: with `session`, an id to dedupe with. */
  readonly seq: number;
  /** `true` when the member sent this message before, to a host that died before acknowledging it. */
  readonly redelivered: boolean;
  /** Pushes `body` to this member (its messenger emits `"message"`); `false` when it is not connected. */
  send<T>(body: T & Sendable<T>): boolean;
}

/**
 * What runs in whichever process hosts the channel. `Message` and `Request` type the bodies the
 * handlers get: your word for what the members send (the codec does not check it).
 *
 * @example
 * const handlers: MessageHandlers<{ job: number }, "count"> = {
 *   onMessage(body, from) { jobs.push(body.job); },
 *   async onRequest(body) { return jobs.length; },
 * };
 */
export interface MessageHandlers<Message = unknown, Request = unknown> {
  /** A member's `send(body)`: its promise resolves once this has run (or its promise resolved). */
  onMessage?(body: Message, from: MessageContext): void | Promise<void>;
  /** A member's `request(body)`: the value returned (or resolved) is the reply; a throw rejects the request. */
  onRequest?(body: Request, from: MessageContext): unknown;
  /**
   * A member joined this host: once per session and host, after its hello (with what it holds,
   * `member.state`) and before anything it sends. `member.rejoined` is true when it was connected
   * before (to a host that died, or stepped down). Runs like an event listener: a throw is uncaught.
   */
  onJoin?(member: Member): void;
  /**
   * A member left this host, once per session: `"closed"` (its `close()`, at once) or `"lost"` (its
   * connection closed and it did not come back within 2 s). Its pending calls are rejected with
   * `ERR_OPEN_CHANNEL_MEMBER_LEFT`. A member that comes back later joins again.
   */
  onLeave?(member: Member, reason: "closed" | "lost"): void;
  /**
   * Handlers of named events (see `typedEvents`), by name: a member's `events.emit(name, body)`
   * runs `events[name](body, from)` instead of `onMessage` (which gets the names not listed here).
   */
  events?: Record<string, (body: never, from: MessageContext) => void | Promise<void>>;
}

/**
 * A member as the host sees it, from `onJoin`, `onLeave` and `host.members()`: the same object for
 * a session for as long as this host knows it.
 *
 * @example
 * onJoin(member) {
 *   console.log(`pid ${member.pid} joined over ${member.transport}${member.rejoined ? " (after a failover)" : ""}`);
 *   for (const [key, value] of member.state) console.log(`  it holds ${key} = ${value}`);
 * }
 */
export interface Member {
  /** The member's process id. */
  readonly pid: number;
  /** Its messenger's session id (hex), as in `from.session`. */
  readonly session: string;
  /** When its messenger first connected to the channel, to any host (ms since the epoch, its clock). */
  readonly since: number;
  /** The channel's transport (`"unix"`, `"tcp"`, `"pipe"`, `"redis"`, ...). */
  readonly transport: string;
  /** It was connected before it joined this host (to a host that died or stepped down). */
  readonly rejoined: boolean;
  /** Connected now (false while a member that lost its connection may still come back). */
  readonly connected: boolean;
  /** What it holds (`messenger.hold(key, value)`), as of its last hello or HOLD: survives the host. */
  readonly state: ReadonlyMap<string, unknown>;
}

interface Pending {
  seq: number;
  done: boolean;
}

interface Session {
  id: string;
  pid: number;
  socket: net.Socket | undefined;
  /** Every seq up to this one has been handled. */
  handled: number;
  /** Highest seq received. */
  received: number;
  /** Handled out of order or still running (async handlers), in seq order. */
  pending: Pending[];
  /** RES/FAIL frames the member may not have read, for a member that reconnects to this same host without them. */
  results: Results;
  /** RES/FAIL frames written on the member's current connection (its READ frames count the same). */
  resultsWritten: number;
  /** The member sends READ frames (FRAME.features.read): results go once read, not at its next hello. */
  sendsRead: boolean;
  /** Requests whose handler is still running. */
  running: Set<number>;
  topics: Set<string>;
  /** Something was handled since the last acknowledgement (it goes out unless `ackSent` covers it). */
  ackDue: boolean;
  /** The highest seq the member has been told is handled (by an ACK, or a reply standing for one). */
  ackSent: number;
  /** The member reads RES frames' `acks` flag (FRAME.features.resAcks). */
  resAcks: boolean;
  expiry: NodeJS.Timeout | undefined;
  /** onJoin ran for it (and onLeave has not) on this host. */
  joined: boolean;
  /** The member takes CALL frames (FRAME.features.host). */
  takesCalls: boolean;
  since: number;
  rejoined: boolean;
  /** What it holds, decoded. */
  held: Map<string, unknown>;
  /** Calls to it started and not yet answered, by id, in the order started. */
  calls: Map<number, HostCall>;
  /** Bytes of their frames. */
  callBytes: number;
  /** Calls waiting for room in its window, in the order made. */
  callQueue: HostCall[];
  leaveTimer: NodeJS.Timeout | undefined;
  view: MemberView;
}

/** A call from the host to a member, from the call until its ANSWER. */
interface HostCall {
  /** Its body, encoded. */
  bytes: Uint8Array;
  request: boolean;
  /** Its frame, made when it starts (a call waiting for room in the window has none yet). */
  frame: Buffer | undefined;
  /** Written on a connection already (else it goes when the member is back, not flagged). */
  written: boolean;
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout | undefined;
}

/** The {@link Member} of a session: getters over the host's record of it. */
class MemberView implements Member {
  constructor(
    private readonly record: Session,
    readonly transport: string,
  ) {}
  get pid(): number {
    return this.record.pid;
  }
  get session(): string {
    return this.record.id;
  }
  get since(): number {
    return this.record.since;
  }
  get rejoined(): boolean {
    return this.record.rejoined;
  }
  get connected(): boolean {
    return this.record.socket !== undefined && !this.record.socket.destroyed;
  }
  get state(): ReadonlyMap<string, unknown> {
    return this.record.held;
  }
  /** @internal */
  get sessionRecord(): Session {
    return this.record;
  }
  /** What `JSON.stringify` and `console.log` show: the fields, not the host's record. */
  toJSON(): Omit<Member, "state"> & { state: Record<string, unknown> } {
    const { pid, session, since, transport, rejoined, connected } = this;
    return { pid, session, since, transport, rejoined, connected, state: Object.fromEntries(this.record.held) };
  }
  [inspect.custom](): unknown {
    return { ...this.toJSON(), state: this.record.held };
  }
}

/**
 * How long (ms) a member whose connection closed without a BYE may take to come back before the
 * host's `onLeave` fires with `"lost"`.
 *
 * @example
 * onLeave(member, reason) {
 *   if (reason === "lost") console.log(`pid ${member.pid}: no news for ${LEAVE_GRACE_MS} ms`);
 * }
 */
export const LEAVE_GRACE_MS = 2000;

/** Bytes a subscriber may have waiting in the host before publishes to it wait for it to read. */
const SUBSCRIBER_BACKLOG_BYTES = 1024 * 1024;

const catchingUp = new WeakMap<net.Socket, Promise<void>>();

/** Resolves once `socket` has written what it had waiting (or is gone); one waiter per socket. */
function caughtUp(socket: net.Socket): Promise<void> {
  let waiting = catchingUp.get(socket);
  if (waiting === undefined) {
    waiting = new Promise((resolve) => {
      const done = (): void => {
        socket.off("drain", done);
        socket.off("close", done);
        catchingUp.delete(socket);
        resolve();
      };
      socket.on("drain", done);
      socket.on("close", done);
    });
    catchingUp.set(socket, waiting);
  }
  return waiting;
}

/** How long the host remembers a disconnected member's session (to dedupe when it comes back). */
const SESSION_TTL_MS = 60_000;

/** Options of the host side. */
export interface HostOptions {
  codec: Codec;
  maxFrameBytes: number;
  /** Results kept per session for replay; the members' window is never larger. */
  maxUnacked: number;
  /** Bytes of results kept per session for replay (of memory held: see Results). */
  maxUnackedBytes: number;
  channel: string;
  /** The channel's transport's name (for `Member.transport`; default "unknown"). */
  transport?: string;
  /** Whether this process hosts the channel now (default: always). */
  isHost?(): boolean;
  /** Default timeout of `requestTo`, in ms (default 30000). */
  requestTimeoutMs?: number;
}

/** What a handler threw, as the body of a failure: `{ name, message, code }`. Never throws. */
function errorBody(codec: Codec, err: unknown): Uint8Array {
  const e = err instanceof Error ? err : new Error(text(err));
  let name = "Error";
  let code: string | undefined;
  try {
    const c = (e as { code?: unknown }).code;
    code = typeof c === "string" ? c : undefined;
    if (typeof e.name === "string") name = e.name;
  } catch {}
  try {
    return codec.encode({ name: e.name, message: e.message, code });
  } catch {}
  try {
    // A message or name the codec cannot carry (or a getter that throws): a plain Error.
    return codec.encode({ name: "Error", message: messageOf(e) });
  } catch {}
  try {
    // A codec that carries no objects (bufferCodec): as JSON text, which the member reads.
    return codec.encode(JSON.stringify({ name, message: messageOf(e), code }));
  } catch {
    return Buffer.alloc(0);
  }
}

/** `err`'s message as text for the debug output; never throws (a `message` getter may). */
function messageOf(err: unknown): string {
  try {
    return text((err as Error)?.message);
  } catch {
    return "(a message that cannot be read)";
  }
}

/** What a handler gets as `from`: made per message, so fields and a method, no closure. */
class Context implements MessageContext {
  declare readonly pid: number;
  declare readonly session: string;
  declare readonly seq: number;
  declare readonly redelivered: boolean;
  declare private readonly host: MessageHost;
  declare private readonly member: Session;

  // One per message: fields `declare`d and set here (class fields would run as a function of their
  // own before the constructor).
  constructor(host: MessageHost, member: Session, seq: number, redelivered: boolean) {
    this.host = host;
    this.member = member;
    this.seq = seq;
    this.redelivered = redelivered;
    this.pid = member.pid;
    this.session = member.id;
  }

  /** A function (not a method) so that `const { send } = from` works too. */
  get send(): (body: unknown) => boolean {
    return (body) => this.host.push(this.member, body);
  }
}

/** Frames handled from one chunk before an acknowledgement goes out, not waiting for its end. */
const ACK_EVERY_FRAMES = 256;

/**
 * The host side of a message channel: one per process (its state lives in whichever process
 * hosts, and dies with it). `listener` is the channel's connection listener.
 */
export class MessageHost {
  private readonly sessions = new Map<string, Session>();
  private readonly topics = new Map<string, Set<Session>>();
  private ackTimer: NodeJS.Immediate | undefined;
  private readonly ackDue = new Set<Session>();
  /**
   * Subscribers' sockets written to while one chunk of a member is handled, corked until its end:
   * a burst of publishes reaches each subscriber in one write, not one system call (and one wakeup
   * of the subscriber) per event.
   */
  private readonly fannedOut = new Set<net.Socket>();

  /** The codec's decoding of a body where it lies (see SlabCodec). */
  private readonly decode: (buf: Buffer, start: number, end: number) => unknown;
  /** The codec's encoding straight into a frame (see SlabCodec): replies are written there. */
  private readonly encodeInto: (value: unknown, slab: Slab, head: number) => number;
  private readonly slab = new Slab();
  /** Set while a reply is encoded into the slab (a getter must not start another there). */
  private replying = false;
  /** A member's body this host could not decode was reported (once per host). */
  private warnedBadBody = false;
  /**
   * The session whose chunk is being handled: what goes to its member meanwhile (replies, the
   * acknowledgement, pushes, events) waits in `queued` until the chunk's end, then goes as one
   * write; a reply and its acknowledgement lie next to each other in the slab, so a request's
   * answer is one range of bytes, one system call, no writev.
   */
  private current: Session | undefined;
  private readonly queued: (Buffer | undefined)[] = [];
  private queuedCount = 0;
  /** Ids of calls to members (one sequence for the host). */
  private lastCallId = 0;

  constructor(
    private readonly handlers: MessageHandlers,
    private readonly options: HostOptions,
  ) {
    this.decode = rangeDecoder(options.codec);
    this.encodeInto = slabEncoder(options.codec);
  }

  /** @internal Results kept for replay, over every session (for tests). */
  keptResults(): { results: number; bytes: number } {
    let results = 0;
    let bytes = 0;
    for (const s of this.sessions.values()) {
      results += s.results.size;
      bytes += s.results.bytes;
    }
    return { results, bytes };
  }

  /** The channel's connection listener. */
  readonly listener = (socket: net.Socket): void => {
    const reader = new FrameReader(this.options.maxFrameBytes);
    let session: Session | undefined;
    let sinceAck = 0;
    socket.on("error", (err) => debug("messages %j: member connection error: %s", this.options.channel, err.message));
    socket.on("close", () => {
      if (session !== undefined && session.socket === socket) this.detach(session);
    });
    /** One frame at `buf[start, end)` (made once per connection, not per chunk). */
    const onRange = (buf: Buffer, start: number, end: number): void => {
      const type = frameType(buf, start);
      if (type === FRAME.hello) {
        // One session per connection: a member says hello once per connection. A second one
        // would leave the first session attached to this socket for good (never expired).
        if (session !== undefined) throw new Error("a second hello on one connection");
        session = this.hello(buf.subarray(start, end), socket);
        this.current = session;
      } else if (session === undefined) throw new Error(`frame type ${type} before the hello`);
      else if ((type === FRAME.answer || type === FRAME.hold || type === FRAME.bye) && session.takesCalls) {
        // Only from a member that announced the host feature (others never send these types).
        if (type === FRAME.answer) this.onAnswer(session, buf, start, end);
        else if (type === FRAME.hold) this.onHold(session, buf, start, end);
        else if (session.socket === socket) this.leave(session, "closed");
      } else if (type === FRAME.read) {
        const count = decodeRead(buf, start, end);
        // Counts of this connection only (one replaced by a reconnect may still have bytes in flight).
        if (session.socket === socket) session.results.release(count);
      } else {
        this.onFrame(session, buf, start, end);
        // A long chunk: acknowledge as it goes, so the member sends on while this host works
        // through the rest (one ack at the end would have both sides wait for each other).
        if (++sinceAck >= ACK_EVERY_FRAMES && session.ackDue) {
          sinceAck = 0;
          this.writeAck(session);
          this.flushQueued(socket);
        }
      }
    };
    socket.on("data", (chunk: Buffer) => {
      sinceAck = 0;
      this.current = session;
      try {
        reader.feed(chunk, onRange);
      } catch (err) {
        debug("messages %j: closing a member connection: %s", this.options.channel, (err as Error).message);
        socket.destroy();
      } finally {
        if (session?.ackDue) this.writeAck(session);
        this.current = undefined;
        this.flushQueued(socket);
        this.uncorkFannedOut();
      }
    });
  };

  private hello(frame: Buffer, socket: net.Socket): Session {
    // A member from before the features byte (features 0) gets ACK frames, never the flag.
    const { session: id, pid, base, topics, features, since, rejoining, held } = decodeHello(frame);
    let session = this.sessions.get(id);
    const known = session !== undefined;
    if (session === undefined) {
      session = {
        id,
        pid,
        socket,
        handled: base,
        received: base,
        pending: [],
        results: new Results(this.options.maxUnacked, this.options.maxUnackedBytes),
        resultsWritten: 0,
        sendsRead: false,
        running: new Set(),
        topics: new Set(),
        ackDue: false,
        ackSent: base,
        resAcks: false,
        expiry: undefined,
        joined: false,
        takesCalls: false,
        since,
        rejoined: rejoining,
        held: new Map(),
        calls: new Map(),
        callBytes: 0,
        callQueue: [],
        leaveTimer: undefined,
        view: undefined as unknown as MemberView,
      };
      session.view = new MemberView(session, this.options.transport ?? "unknown");
      this.sessions.set(id, session);
    } else {
      clearTimeout(session.expiry);
      session.expiry = undefined;
      clearTimeout(session.leaveTimer);
      session.leaveTimer = undefined;
      if (session.socket !== undefined && session.socket !== socket) session.socket.destroy();
      session.socket = socket;
      if (base > session.handled && session.pending.length === 0) session.handled = base;
      if (base > session.received) session.received = base;
    }
    session.resultsWritten = 0;
    session.sendsRead = (features & FRAME.features.read) !== 0;
    if (session.sendsRead) socket.write(WELCOME);
    // A member without READ: its results up to its base are let go, as before READ (a request
    // among them answered while it was away is run again if it comes again; one let go for
    // bytes is not: see Results).
    else session.results.dropUpTo(base);
    // Results the member may not have read (it reconnected to this same host without them).
    session.results.replay((result) => this.resultToMember(session, result));
    for (const t of [...session.topics]) if (!topics.includes(t)) this.unsubscribe(session, t);
    for (const t of topics) this.subscribe(session, t);
    session.resAcks = (features & FRAME.features.resAcks) !== 0;
    session.takesCalls = (features & FRAME.features.host) !== 0;
    if (session.takesCalls) {
      // What it holds is its word as of this hello (a HOLD lost with a connection is in it).
      session.held = this.decodeHeld(held);
      // Calls it may not have answered (a reconnect to this same host): again, flagged.
      for (const call of session.calls.values()) {
        const frame = call.frame as Buffer;
        if (call.written) frame[FRAME.flagsAt] |= FRAME.callRedelivered;
        call.written = true;
        socket.write(frame);
      }
    }
    // Anything already handled is acknowledged again: the member may not have seen the ACK.
    session.ackSent = base;
    if (session.handled > base) session.ackDue = true;
    if (!session.joined) {
      session.joined = true;
      // A session this host knew and lost (it came back after its leave) was connected before.
      if (known) session.rejoined = true;
      this.userHook(() => this.handlers.onJoin?.(session.view));
    }
    debug("messages %j: member pid %d session %s (base %d, %d topics)", this.options.channel, pid, id, base, topics.length);
    return session;
  }

  private detach(session: Session): void {
    session.socket = undefined;
    this.ackDue.delete(session);
    // Forgotten already (it said goodbye).
    if (this.sessions.get(session.id) !== session) return;
    if (session.joined) {
      session.leaveTimer = setTimeout(() => {
        session.leaveTimer = undefined;
        if (session.socket === undefined) this.leave(session, "lost");
      }, LEAVE_GRACE_MS);
      session.leaveTimer.unref();
    }
    session.expiry = setTimeout(() => {
      if (session.socket !== undefined) return;
      for (const t of session.topics) this.unsubscribe(session, t);
      this.sessions.delete(session.id);
    }, SESSION_TTL_MS);
    session.expiry.unref();
  }

  /** `session`'s member left (a BYE, or lost): onLeave once, its calls rejected. */
  private leave(session: Session, reason: "closed" | "lost"): void {
    clearTimeout(session.leaveTimer);
    session.leaveTimer = undefined;
    // Forgotten now. Closed: nothing of it can come again (its outbox was empty before its BYE).
    // Lost: the host's code has let go of it (a lock service gave its locks away), so what this
    // host kept for it (replies it did not read: a lock granted) must not reach it if it comes
    // back; it joins again as a new member would after a failover, and what it sends again is run
    // again, flagged.
    clearTimeout(session.expiry);
    for (const t of [...session.topics]) this.unsubscribe(session, t);
    if (this.sessions.get(session.id) === session) this.sessions.delete(session.id);
    this.ackDue.delete(session);
    const err = (): Error =>
      openChannelError("ERR_OPEN_CHANNEL_MEMBER_LEFT", { channel: this.options.channel, pid: session.pid, session: session.id, reason });
    this.dropCalls(session, err);
    if (!session.joined) return;
    session.joined = false;
    if (this.options.isHost?.() === false) return;
    debug("messages %j: member pid %d session %s left (%s)", this.options.channel, session.pid, session.id, reason);
    this.userHook(() => this.handlers.onLeave?.(session.view, reason));
  }

  /** This process stopped hosting: calls to members die with it, and a later hosting joins them anew. */
  stepDown(): void {
    for (const session of this.sessions.values()) {
      clearTimeout(session.leaveTimer);
      session.leaveTimer = undefined;
      session.joined = false;
      this.dropCalls(session, () => openChannelError("ERR_OPEN_CHANNEL_NOT_HOST", { channel: this.options.channel }));
    }
  }

  private dropCalls(session: Session, err: () => Error): void {
    const calls = [...session.calls.values(), ...session.callQueue];
    session.calls.clear();
    session.callQueue = [];
    session.callBytes = 0;
    for (const call of calls) {
      clearTimeout(call.timer);
      call.reject(err());
    }
  }

  /** Runs a user's hook (onJoin, onLeave) as an event listener is run: a throw is uncaught. */
  private userHook(hook: () => unknown): void {
    try {
      const outcome = hook();
      if (outcome instanceof Promise)
        outcome.catch((err: unknown) =>
          process.nextTick(() => {
            throw err;
          }),
        );
    } catch (err) {
      process.nextTick(() => {
        throw err;
      });
    }
  }

  private decodeHeld(held: Map<string, Buffer>): Map<string, unknown> {
    const out = new Map<string, unknown>();
    for (const [key, bytes] of held) out.set(key, this.heldValue(key, bytes));
    return out;
  }

  /** A held value the codec cannot read stays as its bytes (said once in the debug output). */
  private heldValue(key: string, bytes: Buffer): unknown {
    try {
      return this.options.codec.decode(bytes);
    } catch (err) {
      debug("messages %j: a held value (%s) cannot be decoded: %s", this.options.channel, key, messageOf(err));
      return bytes;
    }
  }

  private onHold(session: Session, buf: Buffer, start: number, end: number): void {
    const { key, value } = decodeHold(buf, start, end);
    if (value === undefined) session.held.delete(key);
    else session.held.set(key, this.heldValue(key, value));
  }

  private onAnswer(session: Session, buf: Buffer, start: number, end: number): void {
    if (end - start < FRAME.callHeaderBytes) throw new Error("an ANSWER frame cut short");
    const id = frameSeq(buf, start);
    const call = session.calls.get(id);
    if (call === undefined) return;
    session.calls.delete(id);
    session.callBytes -= (call.frame as Buffer).length;
    clearTimeout(call.timer);
    const ok = (frameFlags(buf, start) & 1) !== 0;
    let value: unknown;
    let failed: Error | undefined;
    try {
      value = end - start === FRAME.callHeaderBytes ? undefined : this.decode(buf, start + FRAME.callHeaderBytes, end);
      if (!ok) failed = this.memberFailed(session, value);
    } catch (err) {
      failed = withChannel(err as Error, this.options.channel);
    }
    this.startCalls(session);
    if (failed !== undefined) call.reject(failed);
    else call.resolve(value);
  }

  private memberFailed(session: Session, decoded: unknown): OpenChannelError {
    let e = decoded;
    if (typeof e === "string" || e instanceof Uint8Array) {
      const textBody = Buffer.from(e).toString("utf8");
      try {
        e = JSON.parse(textBody);
      } catch {
        e = { message: textBody };
      }
    }
    const fields = (typeof e === "object" && e !== null ? e : { message: text(e) }) as { name?: string; message?: unknown; code?: string };
    return openChannelError("ERR_OPEN_CHANNEL_MEMBER_FAILED", {
      channel: this.options.channel,
      pid: session.pid,
      remoteMessage: fields.message === undefined ? "(no message)" : text(fields.message),
      remoteCode: typeof fields.code === "string" ? fields.code : undefined,
      remoteName: typeof fields.name === "string" ? fields.name : undefined,
    });
  }

  /** The members this host knows now (joined, not left), in the order they joined. */
  members(): Member[] {
    const out: Member[] = [];
    for (const s of this.sessions.values()) if (s.joined) out.push(s.view);
    return out;
  }

  /** The member of session `id`, if joined here. */
  member(id: string): Member | undefined {
    const s = this.sessions.get(id);
    return s?.joined ? s.view : undefined;
  }

  /**
   * A call to `member`: a message (`request` false, resolves once its handler ran) or a request
   * (resolves with its reply). Waits while the member's window (maxUnacked, maxUnackedBytes) is
   * full, its timeout running; calls start in the order made.
   */
  call(member: Member | string, body: unknown, request: boolean, timeoutMs?: number): Promise<unknown> {
    const bytes = this.encodeCall(body, request);
    return bytes instanceof Error ? Promise.reject(bytes) : this.callEncoded(member, bytes, request, timeoutMs);
  }

  /** A message to every member, its body encoded once: resolves with the members that handled it. */
  async broadcast(body: unknown, timeoutMs?: number): Promise<Member[]> {
    const bytes = this.encodeCall(body, false);
    if (bytes instanceof Error) throw bytes;
    const members = this.members();
    const outcomes = await Promise.allSettled(members.map((m) => this.callEncoded(m, bytes, false, timeoutMs)));
    return members.filter((_, i) => outcomes[i].status === "fulfilled");
  }

  /** `body` encoded for a call, or the error to reject it with. */
  private encodeCall(body: unknown, request: boolean): Uint8Array | Error {
    const { channel, codec } = this.options;
    try {
      let bytes = codec.encode(body);
      // Kept until the call starts: a copy when the codec handed back the caller's own bytes (bufferCodec).
      if ((bytes as unknown) === body) bytes = Buffer.from(bytes);
      if (FRAME.callHeaderBytes - 4 + bytes.length > this.options.maxFrameBytes) {
        return this.tooLarge(FRAME.callHeaderBytes - 4 + bytes.length, "a message");
      }
      return bytes;
    } catch (err) {
      return encodeError(err, channel, request ? "a request to a member" : "a message to a member", codec);
    }
  }

  private callEncoded(member: Member | string, bytes: Uint8Array, request: boolean, timeoutMs?: number): Promise<unknown> {
    const { channel } = this.options;
    if (this.options.isHost?.() === false) return Promise.reject(openChannelError("ERR_OPEN_CHANNEL_NOT_HOST", { channel }));
    const id = typeof member === "string" ? member : member instanceof MemberView ? member.sessionRecord.id : undefined;
    if (id === undefined)
      return Promise.reject(argError("ERR_INVALID_ARG_TYPE", "member", "a Member (from host.members() or onJoin) or a session id", member));
    const session = this.sessions.get(id);
    if (session === undefined || !session.joined) {
      return Promise.reject(
        openChannelError("ERR_OPEN_CHANNEL_MEMBER_LEFT", {
          channel,
          pid: session?.pid ?? (member instanceof MemberView ? member.pid : 0),
          session: id,
          reason: "lost",
        }),
      );
    }
    if (!session.takesCalls) return Promise.reject(openChannelError("ERR_OPEN_CHANNEL_MEMBER_UNSUPPORTED", { channel, pid: session.pid }));
    return new Promise((resolve, reject) => {
      const call: HostCall = { bytes, request, frame: undefined, written: false, resolve, reject, timer: undefined };
      const ms = timeoutMs ?? (request ? (this.options.requestTimeoutMs ?? 30_000) : 0);
      if (ms > 0) call.timer = setTimeout(() => this.callTimedOut(session, call, ms), ms);
      session.callQueue.push(call);
      this.startCalls(session);
    });
  }

  /** Starts the calls waiting for `session`'s member, in order, while its window has room. */
  private startCalls(session: Session): void {
    const { maxUnacked, maxUnackedBytes } = this.options;
    while (session.callQueue.length > 0 && session.calls.size < maxUnacked && session.callBytes < maxUnackedBytes) {
      const call = session.callQueue.shift() as HostCall;
      const id = ++this.lastCallId;
      const frame = encodeCall(FRAME.call, id, call.request ? FRAME.callRequest : 0, call.bytes);
      call.frame = frame;
      call.written = session === this.current || (session.socket !== undefined && !session.socket.destroyed);
      session.calls.set(id, call);
      session.callBytes += frame.length;
      this.callOut(session, frame);
    }
  }

  private callTimedOut(session: Session, call: HostCall, ms: number): void {
    const queued = session.callQueue.indexOf(call);
    if (queued >= 0) session.callQueue.splice(queued, 1);
    else {
      let found = false;
      for (const [id, c] of session.calls) {
        if (c !== call) continue;
        session.calls.delete(id);
        session.callBytes -= (c.frame as Buffer).length;
        found = true;
        break;
      }
      if (!found) return;
      this.startCalls(session);
    }
    call.reject(openChannelError("ETIMEDOUT", { channel: this.options.channel, waiting: "member", ms, pid: session.pid }));
  }

  /**
   * A CALL to `session`'s member: the calls of one turn to a member go as one write (the socket
   * corked until the end of the chunk being handled, or of this tick), not a system call each.
   */
  private callOut(session: Session, frame: Buffer): void {
    if (session === this.current) this.toMember(session, frame);
    else if (session.socket !== undefined && !session.socket.destroyed) {
      this.fanOut(session.socket, frame);
      if (this.current === undefined && !this.uncorkDue) {
        this.uncorkDue = true;
        process.nextTick(this.uncorkLater);
      }
    }
  }

  private uncorkDue = false;
  private readonly uncorkLater = (): void => {
    this.uncorkDue = false;
    this.uncorkFannedOut();
  };

  private subscribe(session: Session, topic: string): void {
    session.topics.add(topic);
    let set = this.topics.get(topic);
    if (set === undefined) {
      set = new Set();
      this.topics.set(topic, set);
    }
    set.add(session);
  }

  private unsubscribe(session: Session, topic: string): void {
    session.topics.delete(topic);
    const set = this.topics.get(topic);
    if (set === undefined) return;
    set.delete(session);
    if (set.size === 0) this.topics.delete(topic);
  }

  /** A push to `session`'s member (a handler's `from.send(body)`). */
  push(session: Session, body: unknown): boolean {
    const { codec, channel } = this.options;
    let bytes: Uint8Array;
    try {
      bytes = codec.encode(body);
    } catch (err) {
      throw encodeError(err, channel, "a push", codec);
    }
    const frame = encodePush(bytes);
    if (frame.length - 4 > this.options.maxFrameBytes) throw this.tooLarge(frame.length - 4, "a push");
    if (session.socket === undefined || session.socket.destroyed) return false;
    this.toMember(session, frame);
    return true;
  }

  /** A RES or FAIL frame to `session`'s member; its position on the member's connection, or 0 if not written. */
  private resultToMember(session: Session, frame: Buffer): number {
    if (session !== this.current && (session.socket === undefined || session.socket.destroyed)) return 0;
    this.toMember(session, frame);
    return ++session.resultsWritten;
  }

  /** `frame` to `session`'s member: now, or at the end of the chunk of its being handled. */
  private toMember(session: Session, frame: Buffer): void {
    if (session === this.current) this.queued[this.queuedCount++] = frame;
    else if (session.socket !== undefined && !session.socket.destroyed) session.socket.write(frame);
  }

  /** Writes what waited for the chunk's end: frames next to each other in memory as one range. */
  private flushQueued(socket: net.Socket): void {
    const n = this.queuedCount;
    if (n === 0) return;
    this.queuedCount = 0;
    // The slots are reused (no array made per chunk); emptied, so as to keep no buffer alive.
    const queued = this.queued;
    let run = queued[0] as Buffer;
    queued[0] = undefined;
    const write = !socket.destroyed;
    if (write && n > 1) socket.cork();
    for (let i = 1; i < n; i++) {
      const next = queued[i] as Buffer;
      queued[i] = undefined;
      if (next.buffer === run.buffer && run.byteOffset + run.length === next.byteOffset) {
        run = Buffer.from(run.buffer, run.byteOffset, run.length + next.length);
      } else {
        if (write) socket.write(run);
        run = next;
      }
    }
    if (write) {
      socket.write(run);
      if (n > 1) socket.uncork();
    }
  }

  /** A sequenced frame at `buf[start, end)`; only what needs a Buffer of the frame gets one. */
  private onFrame(session: Session, buf: Buffer, start: number, end: number): void {
    const type = frameType(buf, start);
    if (type < FRAME.msg || type > FRAME.unsub) throw new Error(`unknown frame type ${type}`);
    const seq = frameSeq(buf, start);
    const redelivered = (frameFlags(buf, start) & FRAME.redelivered) !== 0;
    if (seq <= session.received) {
      // Sent again (a reconnect): handled once already, or still running here.
      const result = session.results.get(seq);
      if (result !== undefined) {
        this.resultToMember(session, result);
      } else if (session.results.lost(seq)) {
        this.lostResult(session, seq, type);
      } else if (type === FRAME.req && !session.running.has(seq)) {
        // A request this host never answered: its previous host took it and died. Run it.
        this.request(session, seq, buf.subarray(start, end), true);
      }
      if (seq <= session.handled) {
        session.ackDue = true;
        if (session.ackSent >= seq) session.ackSent = seq - 1;
      }
      return;
    }
    session.received = seq;
    let outcome: unknown;
    try {
      switch (type) {
        case FRAME.msg: {
          const body = this.decode(buf, start + FRAME.seqHeaderBytes, end);
          const from = new Context(this, session, seq, redelivered);
          const events = this.handlers.events;
          const name = events === undefined ? undefined : eventName(body);
          const handler =
            name === undefined || !Object.hasOwn(events as object, name)
              ? undefined
              : (events as Record<string, (b: unknown, f: MessageContext) => unknown>)[name];
          if (handler !== undefined) outcome = handler((body as { body: unknown }).body, from);
          else outcome = this.handlers.onMessage?.(body, from);
          break;
        }
        case FRAME.req:
          // Acknowledged once started: a slow request never holds back what comes after it. Its
          // reply (RES) settles it on the member, which keeps it for the next host until then.
          this.request(session, seq, buf.subarray(start, end), redelivered);
          break;
        case FRAME.pub: {
          const frame = buf.subarray(start, end);
          const { topic, next } = readTopic(frame, FRAME.seqHeaderBytes);
          const event = encodeEvent(topic, session.pid, frame.subarray(next));
          const behind: net.Socket[] = [];
          for (const s of this.topics.get(topic) ?? []) {
            if (s.socket === undefined || s.socket.destroyed) continue;
            if (s === this.current) this.toMember(s, event);
            else this.fanOut(s.socket, event);
            if (s.socket.writableLength > SUBSCRIBER_BACKLOG_BYTES) behind.push(s.socket);
          }
          // A subscriber that reads slower than publishers publish: the publish is acknowledged
          // once it has caught up, so publishers wait (their window fills) and the host's memory
          // stays bounded.
          if (behind.length > 0) outcome = Promise.all(behind.map(caughtUp));
          break;
        }
        case FRAME.sub:
          this.subscribe(session, readTopic(buf.subarray(start, end), FRAME.seqHeaderBytes).topic);
          break;
        default:
          this.unsubscribe(session, readTopic(buf.subarray(start, end), FRAME.seqHeaderBytes).topic);
      }
    } catch (err) {
      this.failed(session, seq, type, err);
      outcome = undefined;
    }
    this.settle(session, seq, type, outcome);
  }

  /** `seq` ran (its outcome: a promise when it goes on): handled now, or once it resolves. */
  private settle(session: Session, seq: number, type: number, outcome: unknown): void {
    if (outcome instanceof Promise) {
      const entry: Pending = { seq, done: false };
      session.pending.push(entry);
      outcome.then(
        () => this.complete(session, entry),
        (err: unknown) => {
          this.failed(session, seq, type, err);
          this.complete(session, entry);
        },
      );
    } else if (session.pending.length === 0) {
      session.handled = seq;
      session.ackDue = true;
    } else session.pending.push({ seq, done: true });
  }

  private request(session: Session, seq: number, frame: Buffer, redelivered: boolean): void {
    let value: unknown;
    try {
      if (this.handlers.onRequest === undefined) {
        throw openChannelError("ERR_OPEN_CHANNEL_NO_HANDLER", {});
      }
      value = this.handlers.onRequest(this.decode(frame, FRAME.seqHeaderBytes, frame.length), new Context(this, session, seq, redelivered));
    } catch (err) {
      this.failed(session, seq, FRAME.req, err);
      return;
    }
    if (!(value instanceof Promise)) {
      this.replyOrFail(session, seq, value);
      return;
    }
    session.running.add(seq);
    value.then(
      (result: unknown) => {
        session.running.delete(seq);
        this.replyOrFail(session, seq, result);
      },
      (err: unknown) => {
        session.running.delete(seq);
        this.failed(session, seq, FRAME.req, err);
      },
    );
  }

  /** The reply; a value the codec cannot encode fails the request instead. */
  private replyOrFail(session: Session, seq: number, value: unknown): void {
    try {
      this.reply(session, seq, value);
    } catch (err) {
      this.failed(session, seq, FRAME.req, encodeError(err, this.options.channel, "the reply", this.options.codec));
    }
  }

  /** The RES of a request that returned `value`, encoded straight into its frame. */
  private reply(session: Session, seq: number, value: unknown): void {
    const head = FRAME.headerBytes + 7;
    // Everything before this request handled and nothing of it running: the reply stands for the
    // ACK too (a sync handler's request is marked handled right after this, see settle).
    const acks = session.resAcks && session.pending.length === 0 && session.handled >= seq - 1;
    let frame: Buffer;
    if (this.replying) frame = encodeResult(FRAME.res, seq, true, this.options.codec.encode(value));
    else {
      this.replying = true;
      let start: number;
      try {
        start = this.encodeInto(value, this.slab, head);
      } finally {
        this.replying = false;
      }
      frame = this.slab.buf.subarray(start, this.slab.at);
      this.slab.dropLarge();
    }
    writeResultHead(frame, FRAME.res, seq, true);
    this.sendResult(session, seq, FRAME.res, frame, acks);
  }

  private failed(session: Session, seq: number, type: number, err: unknown): void {
    debug("messages %j: the handler of seq %d (session %s) threw: %s", this.options.channel, seq, session.id, messageOf(err));
    if (isOpenChannelError(err, "ERR_OPEN_CHANNEL_BAD_BODY") && !this.warnedBadBody) {
      // Processes with different codecs: say so once where it happens (the member's call rejects too).
      this.warnedBadBody = true;
      const message = withChannel(err, this.options.channel).message;
      process.emitWarning(`${message} (a message from pid ${session.pid}; warned once per host)`, { code: err.code });
    }
    const body = errorBody(this.options.codec, err);
    if (type === FRAME.req) this.result(session, seq, FRAME.res, false, body);
    else this.result(session, seq, FRAME.fail, false, body);
  }

  private tooLarge(bytes: number, what: "a push" | "a reply" | "a message"): OpenChannelError {
    return openChannelError("ERR_OPEN_CHANNEL_FRAME_TOO_LARGE", {
      channel: this.options.channel,
      what,
      bytes,
      limit: this.options.maxFrameBytes,
    });
  }

  private result(session: Session, seq: number, type: typeof FRAME.res | typeof FRAME.fail, ok: boolean, body: Uint8Array): void {
    this.sendResult(session, seq, type, encodeResult(type, seq, ok, body));
  }

  /** Sends (and keeps) a result; `acks`: a RES that stands for the ACK of `seq` too (see reply). */
  private sendResult(session: Session, seq: number, type: typeof FRAME.res | typeof FRAME.fail, result: Buffer, acks = false): void {
    let frame = result;
    // A reply the member would refuse to read: it gets the reason instead.
    if (frame.length - 4 > this.options.maxFrameBytes)
      frame = encodeResult(type, seq, false, errorBody(this.options.codec, this.tooLarge(frame.length - 4, "a reply")));
    if (acks) {
      // Set on the frame that goes, whichever it is.
      setResultFlag(frame, FRAME.acks);
      if (seq > session.ackSent) session.ackSent = seq;
    }
    session.results.set(seq, frame, this.resultToMember(session, frame), this.onLost);
  }

  private readonly onLost = (seq: number): void => {
    debug("messages %j: not keeping the result of seq %d for a replay (over maxUnackedBytes kept)", this.options.channel, seq);
  };

  /** The member asks again for the result of `seq`, let go before it read it: it gets an error with a code. */
  private lostResult(session: Session, seq: number, type: number): void {
    const err = openChannelError("ERR_OPEN_CHANNEL_REPLY_LOST", { channel: this.options.channel, seq, request: type === FRAME.req });
    debug("messages %j: %s", this.options.channel, err.message);
    // A RES whatever the type: a member settles a MSG or PUB with it too, and only a RES has flags.
    const frame = encodeResult(FRAME.res, seq, false, errorBody(this.options.codec, err));
    setResultFlag(frame, FRAME.lost);
    session.results.set(seq, frame, this.resultToMember(session, frame));
  }

  /** An async handler finished: acknowledge every seq up to the first one still running. */
  private complete(session: Session, entry: Pending): void {
    entry.done = true;
    let advanced = false;
    while (session.pending.length > 0 && session.pending[0].done) {
      session.handled = (session.pending.shift() as Pending).seq;
      advanced = true;
    }
    if (!advanced) return;
    this.ackDue.add(session);
    this.ackTimer ??= setImmediate(() => {
      this.ackTimer = undefined;
      for (const s of this.ackDue) this.writeAck(s);
      this.ackDue.clear();
    });
  }

  private fanOut(socket: net.Socket, frame: Buffer): void {
    if (!this.fannedOut.has(socket)) {
      socket.cork();
      this.fannedOut.add(socket);
    }
    socket.write(frame);
  }

  private uncorkFannedOut(): void {
    if (this.fannedOut.size === 0) return;
    for (const socket of this.fannedOut) socket.uncork();
    this.fannedOut.clear();
  }

  private writeAck(session: Session): void {
    session.ackDue = false;
    // Told already (a reply stood for this ACK).
    if (session.handled <= session.ackSent) return;
    if (session.socket === undefined || session.socket.destroyed) return;
    session.ackSent = session.handled;
    // Into the slab: after a reply written there, the two are one range (see flushQueued).
    const start = this.slab.reserveFrame(FRAME.ackBytes);
    writeAck(this.slab.buf, start, session.handled);
    this.toMember(session, this.slab.buf.subarray(start, start + FRAME.ackBytes));
  }
}
