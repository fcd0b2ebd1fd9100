import { argError } from "@open-channel/core";
import type { Sendable } from "./codec";
import { EVENT_KEY, type Member } from "./host";
import type { Messenger } from "./messenger";

/**
 * A map of event names to the type of their bodies, e.g. `{ job: { id: number }; stop: undefined }`.
 *
 * @example
 * type Jobs = { job: { id: number }; progress: { id: number; done: number } };
 */
export type EventMap = Record<string, unknown>;

/** The envelope a named event travels in, through `send`, `publish` or a host's call. */
function envelope(event: string, body: unknown): Record<string, unknown> {
  if (typeof event !== "string") throw argError("ERR_INVALID_ARG_TYPE", "event", "of type string", event);
  return { [EVENT_KEY]: event, body };
}

/**
 * A member's named events, typed by `Events` (a thin layer: no frame of its own).
 *
 * @example
 * const events = typedEvents<{ job: { id: number }; reload: undefined }>(messenger);
 * await events.emit("job", { id: 1 });              // the host's handlers.events.job
 * events.on("reload", () => loadConfig());           // the host's emitTo(member, "reload") or emit("reload")
 * events.subscribe("job", (job) => console.log(job.id)); // every member's events.publish("job", ...)
 */
export interface MemberEvents<Events extends EventMap> {
  /** To the host's `handlers.events[event]` (through `send`: acknowledged, never lost with a host). */
  emit<E extends keyof Events & string>(event: E, body: Events[E] & Sendable<Events[E]>): Promise<void>;
  /** Calls `handler` for each `event` the host sends this member (`emitTo`, or `emit` to all); returns the function that stops it. */
  on<E extends keyof Events & string>(event: E, handler: (body: Events[E]) => void): () => void;
  /** To every member subscribed to `event` (through `publish`). */
  publish<E extends keyof Events & string>(event: E, body: Events[E] & Sendable<Events[E]>): Promise<void>;
  /** Calls `handler` for each `event` published by any member (through `subscribe`). */
  subscribe<E extends keyof Events & string>(event: E, handler: (body: Events[E], meta: { pid: number }) => void): () => void;
}

/**
 * Named events over a messenger, typed by an event map: `emit` to the host, `on` what the host
 * sends, `publish`/`subscribe` between members. Not `messenger.emit` (that is the EventEmitter's).
 * Bodies travel as `{ "@open-channel/event": name, body }`, so the codec must carry objects (not
 * `bufferCodec`).
 *
 * @example
 * type Chat = { say: { text: string }; joined: { pid: number } };
 * const chat = typedEvents<Chat>(messenger);
 * chat.on("joined", ({ pid }) => console.log(`${pid} joined`));
 * await chat.emit("say", { text: "hello" });
 */
export function typedEvents<Events extends EventMap>(messenger: Messenger): MemberEvents<Events> {
  return {
    emit: (event, body) => messenger.send(envelope(event, body)),
    on: (event, handler) => {
      if (typeof handler !== "function") throw argError("ERR_INVALID_ARG_TYPE", "handler", "of type function", handler);
      return messenger.onEvent(event, handler as (body: unknown) => void);
    },
    publish: (event, body) => messenger.publish(event, body as never),
    subscribe: (event, handler) => messenger.subscribe(event, handler),
  };
}

/**
 * The host's side of named events: to one member or to all.
 *
 * @example
 * const chat = hostEvents<Chat>(chatChannel);
 * // in onJoin(member):
 * await chat.emit("joined", { pid: member.pid });
 */
export interface HostEvents<Events extends EventMap> {
  /** To every member's `events.on(event)`; resolves with the members that handled it. */
  emit<E extends keyof Events & string>(event: E, body: Events[E] & Sendable<Events[E]>): Promise<Member[]>;
  /** To `member`'s `events.on(event)`; resolves once its handlers ran. */
  emitTo<E extends keyof Events & string>(member: Member | string, event: E, body: Events[E] & Sendable<Events[E]>): Promise<void>;
}

/**
 * What {@link hostEvents} needs: a message channel's host side (`messageChannel.host`).
 *
 * @example
 * const calls: HostCalls | undefined = jobs.host;
 * if (calls) await hostEvents<{ reload: undefined }>(calls).emit("reload", undefined);
 */
export interface HostCalls {
  /** See MessageHostSide.broadcast. */
  broadcast(body: unknown): Promise<Member[]>;
  /** See MessageHostSide.sendTo. */
  sendTo(member: Member | string, body: unknown): Promise<void>;
}

/**
 * Named events from the host (see {@link typedEvents}): `emit` to all, `emitTo` one member. Call it
 * in the process that hosts (in a handler, or with `channel.host`).
 *
 * @example
 * const handlers = {
 *   onJoin(member) { hostEvents<Chat>(chatChannel.host).emitTo(member, "joined", { pid: member.pid }); },
 * };
 */
export function hostEvents<Events extends EventMap>(host: HostCalls): HostEvents<Events> {
  return {
    emit: (event, body) => host.broadcast(envelope(event, body)),
    emitTo: (member, event, body) => host.sendTo(member, envelope(event, body)),
  };
}
