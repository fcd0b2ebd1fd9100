/**
 * `open-channel`: a self-hosting inter-process channel. Every process runs the same code; the first
 * one that connects hosts the channel's server inside itself, and when it dies a survivor takes over.
 *
 * @example
 * const openChannel = require("open-channel").default;
 * const channel = openChannel("my-app", (socket) => {
 *   // runs in whichever process hosts, once per member
 *   socket.on("data", (chunk) => socket.write(chunk));
 * });
 * const socket = channel.connect(); // a real net.Socket; writes before it connects are queued
 * socket.write("hello");
 *
 * @packageDocumentation
 */
import {
  type ConnectionListener,
  type OpenChannelOptions,
  openChannelError,
  ProcessChannel,
  parseOpenChannelArgs,
  queryChannelStatus,
  type Transport,
} from "@open-channel/core";
import {
  type MessageChannel,
  type MessageChannelOptions,
  type MessageHandlers,
  openMessageChannel as openMessageChannelWith,
} from "@open-channel/messages";
import { loadTransport, platformTransports, selectTransportName } from "./select-transport";

export {
  type ChannelState,
  type ChannelStatus,
  type CloseOptions,
  type ConnectionListener,
  type ConnectOptions,
  type FailoverInfo,
  isOpenChannelError,
  OPEN_CHANNEL_ERRORS,
  OpenChannelError,
  type OpenChannelErrorArgs,
  type OpenChannelErrorCode,
  type OpenChannelErrorOf,
  type OpenChannelErrorSpec,
  type OpenChannelOptions,
  OpenChannelRangeError,
  OpenChannelTypeError,
  ProcessChannel,
  type ProcessChannelEvents,
  queryChannelStatus,
  type SocketReader,
  type StatusHosted,
  type StatusNoHost,
  type StatusQueryOptions,
  type StatusQueryResult,
  type Transport,
} from "@open-channel/core";
export {
  bufferCodec,
  type Codec,
  type EventMap,
  type EventMeta,
  type HostCallContext,
  type HostCalls,
  type HostEvents,
  hostEvents,
  jsonCodec,
  LEAVE_GRACE_MS,
  MESSAGE_DEFAULTS,
  type Member,
  type MemberEvents,
  type MemberHandlers,
  MessageChannel,
  type MessageChannelOptions,
  type MessageContext,
  type MessageHandlers,
  type MessageHostSide,
  Messenger,
  type MessengerEvents,
  type Sendable,
  structuredCodec,
  typedEvents,
  v8Codec,
} from "@open-channel/messages";
export { type ChannelReport, type CliOutput, type HostReport, runCli } from "./cli";
export { loadTransport, type SelectionContext, selectTransportName, TRANSPORT_PACKAGES, type TransportName } from "./select-transport";

/**
 * Opens the channel with the default name, `"open-channel"`: the same as
 * `openChannel("open-channel", listener, options)`.
 *
 * @param listener - runs in the hosting process for every member connection
 * @param options - `{ transport }` to bring your own transport
 * @example
 * const channel = openChannel((socket) => socket.pipe(socket));
 * channel.connect().write("ping");
 */
export function openChannel(listener: ConnectionListener, options?: OpenChannelOptions): ProcessChannel;
/**
 * Opens a channel (the original open-channel API). Nothing happens until `channel.connect()`.
 * The transport is picked for the platform unless `options.transport` is given.
 *
 * @param name - channel name, default `"open-channel"`; processes with the same name share a channel
 * @param listener - runs in the hosting process for every member connection
 * @param options - `{ transport }` to bring your own transport
 * @example
 * const channel = openChannel("chat", (socket) => socket.pipe(socket));
 * channel.connect().write("ping");
 */
export function openChannel(name: string, listener: ConnectionListener, options?: OpenChannelOptions): ProcessChannel;
export function openChannel(
  nameOrListener: string | ConnectionListener,
  listener?: ConnectionListener | OpenChannelOptions,
  options?: OpenChannelOptions,
): ProcessChannel {
  const args = parseOpenChannelArgs(nameOrListener, listener, options);
  if (args.options.transport !== undefined) return new ProcessChannel(args.name, args.listener, { transport: args.options.transport });
  const transportName = selectTransportName();
  const channel = new ProcessChannel(args.name, args.listener, { transport: loadTransport(transportName, args.name) });
  warnOnSplit(channel, transportName);
  return channel;
}

export default openChannel;

/**
 * Processes of one channel that picked different transports (a mixed `OPEN_CHANNEL_TRANSPORT`; on
 * Windows cluster workers and other processes) never meet: each group elects its own host. So when
 * this process starts hosting, it asks this platform's other transports whether the channel is
 * hosted there too, and warns once if it is (`ERR_OPEN_CHANNEL_TRANSPORT_MISMATCH`).
 */
function warnOnSplit(channel: ProcessChannel, chosen: string): void {
  const others = platformTransports().filter((t) => t !== chosen);
  let warned = false;
  const check = (): void => {
    if (warned || !channel.isHost) return;
    for (const other of others) {
      let transport: Transport;
      try {
        transport = loadTransport(other, channel.name);
      } catch {
        continue; // not installed here: nobody can use it
      }
      queryChannelStatus(transport, channel.name, { timeoutMs: 1000, heir: false }).then(
        (result) => {
          if (warned || result.state !== "hosted") return;
          warned = true;
          const warning = openChannelError("ERR_OPEN_CHANNEL_TRANSPORT_MISMATCH", {
            channel: channel.name,
            transport: chosen,
            otherTransport: other,
            otherPid: result.status.pid,
          });
          process.emitWarning(warning.message, { code: warning.code });
        },
        () => undefined, // something there that is no host of ours: not this case
      );
    }
  };
  // A moment after hosting starts: a new host's first work is answering the members that fail over
  // to it, and loading another transport would compete with that.
  channel.on("hosting", (isHost: boolean) => {
    if (isHost && !warned) setTimeout(check, SPLIT_CHECK_DELAY_MS).unref();
  });
}

/** How long after it starts hosting a process looks for the channel over other transports. */
const SPLIT_CHECK_DELAY_MS = 1000;

/**
 * Opens a message channel (framed messages, request/response, pub/sub, nothing lost across a
 * failover: see `@open-channel/messages`), with the transport picked for the platform unless
 * `options.transport` is given.
 *
 * @example
 * const jobs = openMessageChannel("jobs", {
 *   onMessage(body, from) { console.log(`job from ${from.pid}`, body); },
 *   async onRequest(body) { return { ok: true }; },
 * });
 * const messenger = jobs.connect();
 * await messenger.send({ id: 1 });
 */
export function openMessageChannel<Message = unknown, Request = unknown>(
  name: string,
  handlers: MessageHandlers<Message, Request>,
  options: Partial<MessageChannelOptions> = {},
): MessageChannel {
  if (options.transport !== undefined) return openMessageChannelWith(name, handlers, { ...options, transport: options.transport });
  const transportName = selectTransportName();
  const channel = openMessageChannelWith(name, handlers, { ...options, transport: loadTransport(transportName, name) });
  warnOnSplit(channel.channel, transportName);
  return channel;
}
