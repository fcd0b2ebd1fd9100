import { argError, openChannelError } from "./errors";
import { HANDSHAKE } from "./handshake";
import { type ConnectionListener, ProcessChannel } from "./process-channel";
import { isTransport, type Transport } from "./transport";

/**
 * Options of {@link openChannel}.
 *
 * @example
 * const { unixTransport } = require("@open-channel/transport-unix");
 * const options = { transport: unixTransport({ dir: "/run/my-app" }) };
 * const channel = openChannel("jobs", onConnection, options);
 */
export interface OpenChannelOptions {
  /** How processes reach each other. Required with `@open-channel/core`; the `open-channel` package picks one for you. */
  transport?: Transport;
}

/**
 * The default channel name, used when {@link openChannel} is called without one.
 *
 * @example
 * openChannel(onConnection, { transport }).name === DEFAULT_CHANNEL_NAME // "open-channel"
 */
export const DEFAULT_CHANNEL_NAME = "open-channel";

/**
 * Validates the arguments of `openChannel(listener)` / `openChannel(name, listener[, options])`.
 * Throws `TypeError` (`ERR_INVALID_ARG_TYPE`) or `RangeError` (`ERR_OUT_OF_RANGE`) at once.
 * For wrappers that offer the same signature (the `open-channel` package is one): it returns the
 * `name` (default {@link DEFAULT_CHANNEL_NAME}), the `listener` and the `options` (`{}` if none).
 *
 * @example
 * const { name, listener, options } = parseOpenChannelArgs((socket) => socket.end(), undefined, undefined);
 * // name === "open-channel", options is {}
 */
export function parseOpenChannelArgs(
  nameOrListener: unknown,
  maybeListener: unknown,
  maybeOptions: unknown,
): { name: string; listener: ConnectionListener; options: OpenChannelOptions } {
  let name: unknown = nameOrListener;
  let listener: unknown = maybeListener;
  let options: unknown = maybeOptions;
  if (typeof nameOrListener === "function") {
    name = DEFAULT_CHANNEL_NAME;
    listener = nameOrListener;
    options = maybeListener;
  }
  if (typeof name !== "string") throw argError("ERR_INVALID_ARG_TYPE", "name", "of type string", name);
  if (name.length === 0) throw argError("ERR_INVALID_ARG_VALUE", "name", "a non-empty string", name);
  const bytes = Buffer.byteLength(name, "utf8");
  if (bytes > HANDSHAKE.maxNameBytes)
    throw argError("ERR_OUT_OF_RANGE", "name", `at most ${HANDSHAKE.maxNameBytes} UTF-8 bytes long`, `${bytes} bytes`);
  if (typeof listener !== "function") throw argError("ERR_INVALID_ARG_TYPE", "listener", "of type function", listener);
  if (options === undefined || options === null) options = {};
  if (typeof options !== "object") throw argError("ERR_INVALID_ARG_TYPE", "options", "of type object", options);
  const transport = (options as OpenChannelOptions).transport;
  if (transport !== undefined && !isTransport(transport)) {
    throw argError("ERR_INVALID_ARG_TYPE", "options.transport", "a Transport (an object with name, listen() and connect())", transport);
  }
  return { name, listener: listener as ConnectionListener, options: options as OpenChannelOptions };
}

/**
 * Opens a channel. Nothing happens until `channel.connect()`: the first process that connects and
 * finds no live host hosts the channel, running `listener` for every member connection.
 *
 * With `@open-channel/core` you must pass a transport; the `open-channel` package picks one.
 *
 * @example
 * const { openChannel } = require("@open-channel/core");
 * const { unixTransport } = require("@open-channel/transport-unix");
 * const channel = openChannel("jobs", (socket) => socket.pipe(socket), { transport: unixTransport() });
 * channel.connect().write("echo me");
 */
export function openChannel(listener: ConnectionListener, options?: OpenChannelOptions): ProcessChannel;
export function openChannel(name: string, listener: ConnectionListener, options?: OpenChannelOptions): ProcessChannel;
export function openChannel(
  nameOrListener: string | ConnectionListener,
  listener?: ConnectionListener | OpenChannelOptions,
  options?: OpenChannelOptions,
): ProcessChannel {
  const args = parseOpenChannelArgs(nameOrListener, listener, options);
  const transport = args.options.transport;
  if (transport === undefined) {
    throw openChannelError("ERR_OPEN_CHANNEL_NO_TRANSPORT", { channel: args.name });
  }
  return new ProcessChannel(args.name, args.listener, { transport });
}
