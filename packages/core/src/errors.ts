/**
 * Errors a user can see. Every one carries a stable `code`, names the channel it is about (when
 * there is one) and says what to do next, in the manner of Node's own `lib/internal/errors.js`.
 */

/**
 * Error codes raised by open-channel itself (system errors keep their errno codes). The README's
 * "Errors" table says when each one is raised.
 *
 * @example
 * function isRetryable(code: OpenChannelErrorCode): boolean {
 *   return code === "ETIMEDOUT";
 * }
 */
export type OpenChannelErrorCode =
  | "ERR_INVALID_ARG_TYPE"
  | "ERR_INVALID_ARG_VALUE"
  | "ERR_OUT_OF_RANGE"
  | "ETIMEDOUT"
  | "ERR_OPEN_CHANNEL_NO_TRANSPORT"
  | "ERR_OPEN_CHANNEL_TRANSPORT_MISSING"
  | "ERR_OPEN_CHANNEL_HANDSHAKE"
  | "ERR_OPEN_CHANNEL_CLOSED"
  | "ERR_OPEN_CHANNEL_UNSAFE_DIR"
  | "ERR_OPEN_CHANNEL_ADDRESS"
  | "ERR_OPEN_CHANNEL_FRAME_TOO_LARGE"
  | "ERR_OPEN_CHANNEL_REMOTE"
  | "ERR_OPEN_CHANNEL_BAD_BODY"
  | "ERR_OPEN_CHANNEL_HUGE_ARRAY"
  | "ERR_OPEN_CHANNEL_REPLY_LOST"
  | "ERR_OPEN_CHANNEL_BAD_FRAME";

/**
 * An error raised by open-channel.
 *
 * @example
 * socket.on("error", (err) => {
 *   if (err instanceof OpenChannelError && err.code === "ETIMEDOUT") retryLater();
 * });
 */
export class OpenChannelError extends Error {
  /**
   * Stable, documented error code.
   *
   * @example
   * socket.on("error", (err) => {
   *   if (err.code === "ERR_OPEN_CHANNEL_UNSAFE_DIR") console.error(err.message); // says how to fix it
   * });
   */
  readonly code: OpenChannelErrorCode;
  /**
   * The channel the error is about, if any.
   *
   * @example
   * socket.on("error", (err) => console.error(`channel ${err.channel}: ${err.code}`));
   */
  readonly channel?: string;

  /**
   * Creates an error; open-channel raises them, user code rarely needs to.
   *
   * @param code - the error's stable code
   * @param message - names the channel and says what to do next
   * @param options - `channel`: the channel's name; `cause`: the underlying error
   */
  constructor(code: OpenChannelErrorCode, message: string, options?: { channel?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "OpenChannelError";
    this.code = code;
    if (options?.channel !== undefined) this.channel = options.channel;
  }
}

/**
 * A `TypeError` with a `code`, like Node's own argument errors: thrown at once by
 * `openChannel()` for a wrong argument type (`ERR_INVALID_ARG_TYPE`) or an empty channel name
 * (`ERR_INVALID_ARG_VALUE`).
 *
 * @example
 * try {
 *   openChannel("", onConnection);
 * } catch (err) {
 *   err instanceof TypeError; // true
 *   err.code; // "ERR_INVALID_ARG_VALUE"
 * }
 */
export class OpenChannelTypeError extends TypeError {
  /**
   * `"ERR_INVALID_ARG_TYPE"` (a wrong type) or `"ERR_INVALID_ARG_VALUE"` (an empty channel name).
   *
   * @example
   * try { openChannel(42, onConnection); } catch (err) { err.code; } // "ERR_INVALID_ARG_TYPE"
   */
  readonly code: "ERR_INVALID_ARG_TYPE" | "ERR_INVALID_ARG_VALUE";
  /**
   * Creates the error; its `name` is `"TypeError"`, as for Node's own.
   *
   * @param code - which kind of argument error
   * @param message - names the argument, what was expected and what was received
   */
  constructor(code: "ERR_INVALID_ARG_TYPE" | "ERR_INVALID_ARG_VALUE", message: string) {
    super(message);
    this.name = "TypeError";
    this.code = code;
  }
}

/**
 * A `RangeError` with a `code`, like Node's own `ERR_OUT_OF_RANGE`: thrown at once for a
 * connect timeout that is negative or not finite, or a channel name over 1024 UTF-8 bytes.
 *
 * @example
 * try {
 *   channel.connect(-1);
 * } catch (err) {
 *   err instanceof RangeError; // true
 *   err.code; // "ERR_OUT_OF_RANGE"
 * }
 */
export class OpenChannelRangeError extends RangeError {
  /**
   * Always `"ERR_OUT_OF_RANGE"`.
   *
   * @example
   * try { channel.connect(Infinity); } catch (err) { err.code; } // "ERR_OUT_OF_RANGE"
   */
  readonly code = "ERR_OUT_OF_RANGE" as const;
  /**
   * Creates the error; its `name` is `"RangeError"`, as for Node's own.
   *
   * @param message - names the value, the range expected and what was received
   */
  constructor(message: string) {
    super(message);
    this.name = "RangeError";
  }
}

/** Describes a received value for an error message, as Node does ("Received type number (42)"). */
export function describeValue(value: unknown): string {
  if (value === null) return "Received null";
  if (value === undefined) return "Received undefined";
  if (typeof value === "function") return `Received function ${value.name || "<anonymous>"}`;
  if (typeof value === "object") return `Received an instance of ${value.constructor?.name ?? "Object"}`;
  let shown = String(value);
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
  if (typeof value === "string") shown = `'${shown}'`;
  return `Received type ${typeof value} (${shown})`;
}

/** `TypeError` ERR_INVALID_ARG_TYPE for argument `name` that should be `expected`. */
export function invalidArgType(name: string, expected: string, value: unknown): OpenChannelTypeError {
  return new OpenChannelTypeError("ERR_INVALID_ARG_TYPE", `The "${name}" argument must be ${expected}. ${describeValue(value)}`);
}

/** `RangeError` ERR_OUT_OF_RANGE for argument `name`. */
export function outOfRange(name: string, expected: string, value: unknown): OpenChannelRangeError {
  return new OpenChannelRangeError(`The value of "${name}" is out of range. It must be ${expected}. ${describeValue(value)}`);
}

/** A system error's one-line description (`connect ECONNREFUSED /path`), for messages. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/**
 * The error code of anything thrown, if it has one.
 *
 * @example
 * errorCode(Object.assign(new Error("in use"), { code: "EADDRINUSE" })) // "EADDRINUSE"
 * errorCode("not an error") // undefined
 */
export function errorCode(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "code" in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === "string" ? code : undefined;
  }
  return undefined;
}
