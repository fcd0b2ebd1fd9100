/**
 * Errors a user can see. Every one carries a stable `code`, names the channel it is about (when
 * there is one) and says what to do next, in the manner of Node's own `lib/internal/errors.js`.
 */

/** Error codes raised by open-channel itself (system errors keep their errno codes). */
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
  | "ERR_OPEN_CHANNEL_ADDRESS";

/**
 * An error raised by open-channel.
 *
 * @example
 * socket.on("error", (err) => {
 *   if (err instanceof OpenChannelError && err.code === "ETIMEDOUT") retryLater();
 * });
 */
export class OpenChannelError extends Error {
  /** Stable, documented error code. */
  readonly code: OpenChannelErrorCode;
  /** The channel the error is about, if any. */
  readonly channel?: string;

  constructor(code: OpenChannelErrorCode, message: string, options?: { channel?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "OpenChannelError";
    this.code = code;
    if (options?.channel !== undefined) this.channel = options.channel;
  }
}

/** A `TypeError` with a `code`, like Node's own argument errors. */
export class OpenChannelTypeError extends TypeError {
  readonly code: "ERR_INVALID_ARG_TYPE" | "ERR_INVALID_ARG_VALUE";
  constructor(code: "ERR_INVALID_ARG_TYPE" | "ERR_INVALID_ARG_VALUE", message: string) {
    super(message);
    this.name = "TypeError";
    this.code = code;
  }
}

/** A `RangeError` with a `code`, like Node's own `ERR_OUT_OF_RANGE`. */
export class OpenChannelRangeError extends RangeError {
  readonly code = "ERR_OUT_OF_RANGE" as const;
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
  return new OpenChannelTypeError(
    "ERR_INVALID_ARG_TYPE",
    `The "${name}" argument must be ${expected}. ${describeValue(value)}`,
  );
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

/** The error code of anything thrown, if it has one. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "code" in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === "string" ? code : undefined;
  }
  return undefined;
}
