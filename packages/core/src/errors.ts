import { types } from "node:util";

/**
 * Errors a user can see. Every one carries a stable `code`, names the channel it is about (when
 * there is one) and says what to do next, in the manner of Node's own `lib/internal/errors.js`:
 * one table holds every code with its message, its class, its extra fields and whether it is
 * fatal, and {@link openChannelError} is the one way to raise one.
 */

/** Where a channel is reached, for messages: the transport's name, then the address if known. */
function at(transport: string, address: string | undefined): string {
  return address ? `${transport} ${address}` : transport;
}

/** Node's wording: `"options.x"` is a property, `"name"` an argument. */
function argOrProperty(name: string): string {
  return name.includes(".") ? "property" : "argument";
}

/**
 * One code's entry in {@link OPEN_CHANNEL_ERRORS}.
 *
 * @typeParam B - its class
 * @typeParam M - its message builder, whose argument says what the error is built from
 * @typeParam F - the arguments the error also carries as properties
 *
 * @example
 * const spec = OPEN_CHANNEL_ERRORS.ERR_OPEN_CHANNEL_REMOTE;
 * spec.fields; // ["remoteCode", "remoteName"]: err.remoteCode, err.remoteName
 */
export interface OpenChannelErrorSpec<
  B extends "Error" | "TypeError" | "RangeError",
  M extends (args: never) => string,
  F extends readonly string[],
> {
  /**
   * The class raised: `"Error"` ({@link OpenChannelError}), `"TypeError"` ({@link OpenChannelTypeError})
   * or `"RangeError"` ({@link OpenChannelRangeError}).
   */
  readonly base: B;
  /**
   * Whether a transport's `listen` or `connect` failing with this code (ours or Node's) closes a
   * connecting channel at once, as retrying cannot help; other codes are retried until its timeout.
   */
  readonly fatal: boolean;
  /** Builds the message; {@link openChannelError} puts `open-channel "<channel>": ` in front when `args.channel` is given. */
  readonly message: M;
  /** The arguments the error carries as properties too. */
  readonly fields: F;
}

/** An entry of the table, its types inferred from `message`. */
function E<
  const B extends "Error" | "TypeError" | "RangeError",
  M extends (args: never) => string,
  const F extends readonly (keyof Parameters<M>[0] & string)[] = [],
>(base: B, fatal: boolean, message: M, fields: F = [] as unknown as F): OpenChannelErrorSpec<B, M, F> {
  return { base, fatal, message, fields };
}

/** `text` without its final period, to go inside a sentence of ours. */
const sentence = (text: string): string => (text.endsWith(".") ? text.slice(0, -1) : text);

/** An argument error's message, from the argument's name, what it must be and what it was. */
const argMessage = (a: { name: string; expected: string; value: unknown }): string =>
  `The "${a.name}" ${argOrProperty(a.name)} must be ${a.expected}. ${describeValue(a.value)}`;

/**
 * Every error code open-channel raises (system errors keep their errno codes), with its class,
 * whether it is fatal, its message and its extra fields (see {@link OpenChannelErrorSpec}), in the
 * manner of Node's `lib/internal/errors.js`. {@link openChannelError} builds the errors. The
 * README's "Errors" table says when each one is raised; a test keeps the two, and the codes the
 * sources raise, the same.
 *
 * @example
 * Object.keys(OPEN_CHANNEL_ERRORS).includes("ERR_OPEN_CHANNEL_CLOSED"); // true
 * OPEN_CHANNEL_ERRORS.ERR_OPEN_CHANNEL_HANDSHAKE.fatal; // false: the channel tries again
 */
export const OPEN_CHANNEL_ERRORS = {
  /** An argument of the wrong type, thrown at once. */
  ERR_INVALID_ARG_TYPE: E("TypeError", true, argMessage),
  /** An argument of the right type but a wrong value (an empty channel name), thrown at once. */
  ERR_INVALID_ARG_VALUE: E("TypeError", false, argMessage),
  /** A number or a size out of its range, thrown at once. */
  ERR_OUT_OF_RANGE: E(
    "RangeError",
    false,
    (a: { name: string; expected: string; value: unknown }) =>
      `The value of "${a.name}" is out of range. It must be ${a.expected}. ${describeValue(a.value)}`,
  ),
  /** No connection within the connect timeout; no status answer; no reply to a request in time. */
  ETIMEDOUT: E(
    "Error",
    false,
    (
      a:
        | { channel: string; waiting: "connection"; ms: number; transport: string; address?: string; lastError: string }
        | { channel: string; waiting: "status"; ms: number; transport: string }
        | { channel: string; waiting: "reply"; ms: number; seq: number }
        | { channel: string; waiting: "member"; ms: number; pid: number },
    ) => {
      switch (a.waiting) {
        case "connection":
          return (
            `no connection within ${a.ms} ms over ${at(a.transport, a.address)} (last error: ${a.lastError}). ` +
            "Check that the processes share the same transport and user, or pass a larger timeout to channel.connect(timeout)."
          );
        case "status":
          return `no status answer within ${a.ms} ms over ${a.transport}. The host may be busy: try again, or with a larger timeout.`;
        case "reply":
          return `no reply to request ${a.seq} within ${a.ms} ms. The host may be busy, or its handler never returns; pass a larger { timeout }.`;
        case "member":
          return `no reply from member pid ${a.pid} within ${a.ms} ms. It may be busy, or its handler never returns; pass a larger { timeout }.`;
      }
    },
  ),
  /** `@open-channel/core` used without a transport, or an unknown `OPEN_CHANNEL_TRANSPORT`. */
  ERR_OPEN_CHANNEL_NO_TRANSPORT: E(
    "Error",
    true,
    (a: { channel: string } | { channel: string; transport: string; known: readonly string[] }) =>
      "transport" in a
        ? `unknown transport "${a.transport}" (from OPEN_CHANNEL_TRANSPORT). Use one of: ${a.known.join(", ")}.`
        : "@open-channel/core has no default transport. Pass one, e.g. " +
          "openChannel(name, listener, { transport: unixTransport() }) from @open-channel/transport-unix, " +
          'or use the "open-channel" package, which picks one for your platform.',
  ),
  /** The chosen transport's package is not installed. */
  ERR_OPEN_CHANNEL_TRANSPORT_MISSING: E(
    "Error",
    true,
    (a: { channel: string; transport: string; pkg: string }) =>
      `the ${a.transport} transport is not installed (it installs only on the platforms it supports). Run: npm install ${a.pkg}`,
  ),
  /**
   * A warning (`process.emitWarning`), not thrown: this process hosts the channel over one
   * transport while another process hosts it over another, so they form two channels.
   */
  ERR_OPEN_CHANNEL_TRANSPORT_MISMATCH: E(
    "Error",
    true,
    (a: { channel: string; transport: string; otherTransport: string; otherPid: number }) =>
      `this process hosts the channel over ${a.transport}, and process ${a.otherPid} hosts it over ${a.otherTransport}: ` +
      "they form two channels that never meet. Give every process the same transport (OPEN_CHANNEL_TRANSPORT, or the same { transport } option).",
  ),
  /**
   * A connection's handshake failed. `stranger`: what answered is not a host of ours (no or a
   * wrong proof, another channel); `unanswered`: it accepted the connection and never answered.
   * Not fatal: the election decides what to do about the address.
   */
  ERR_OPEN_CHANNEL_HANDSHAKE: E(
    "Error",
    false,
    (a: { channel: string; reason: string; transport: string; address?: string; stranger?: boolean; unanswered?: boolean }) =>
      `handshake with the host failed: ${a.reason}. Is another program or another open-channel version using the address ${at(a.transport, a.address)}?`,
    ["stranger", "unanswered"],
  ),
  /** The channel (or messenger) was closed before a queued write (or call) could complete. */
  ERR_OPEN_CHANNEL_CLOSED: E(
    "Error",
    true,
    (a: { channel: string; closed: "channel" | "messenger" }) =>
      `the ${a.closed} was closed before this ${a.closed === "channel" ? "write" : "call"} could complete. Call channel.connect() again to reconnect.`,
  ),
  /** The channel's directory, or its secret file, is not private to this user. */
  ERR_OPEN_CHANNEL_UNSAFE_DIR: E(
    "Error",
    true,
    (a: { channel: string; dir: string; why: string } | { channel: string; secretFile: string; why: string }) =>
      "dir" in a
        ? `cannot use the directory ${a.dir}: ${a.why}. ` +
          "Remove or fix it (mode 700, owned by you), or point the transport's `dir` option or XDG_RUNTIME_DIR elsewhere."
        : `cannot use the secret file ${a.secretFile}: ${a.why}. Delete it; a new one is made on the next start.`,
  ),
  /** The address cannot be used (a permission or a path problem); `errno` is the system code. */
  ERR_OPEN_CHANNEL_ADDRESS: E(
    "Error",
    true,
    (a: { channel: string; transport: string; address?: string; reason: string; errno?: string }) =>
      `cannot use the address ${at(a.transport, a.address)}: ${a.reason}. Check the permissions of the channel's directory, or choose another transport.`,
    ["errno"],
  ),
  /** A message, push or reply over `maxFrameBytes`; what a member holds over half of it. */
  ERR_OPEN_CHANNEL_FRAME_TOO_LARGE: E(
    "Error",
    true,
    (a: { channel: string; what: "a message" | "a push" | "a reply" | "what a member holds"; bytes: number; limit: number }) =>
      a.what === "what a member holds"
        ? `${a.what} (messenger.hold) would be ${a.bytes} bytes, over the limit of ${a.limit} (half of maxFrameBytes: every hello carries it). Hold less, or raise maxFrameBytes on every process.`
        : `${a.what} of ${a.bytes} bytes is over the limit of ${a.limit}. Send it in parts, or raise maxFrameBytes on every process.`,
  ),
  /** The host's handler threw (or the host could not run it); `remoteCode` and `remoteName` are the remote error's. */
  ERR_OPEN_CHANNEL_REMOTE: E(
    "Error",
    true,
    (a: { channel: string; remoteMessage: string; remoteCode?: string; remoteName?: string }) =>
      // An error of ours (no handler, a reply it cannot encode, a body it cannot read) is no throw of the handler's.
      `${a.remoteCode?.startsWith("ERR_OPEN_CHANNEL_") ? "the host could not handle it" : "the host's handler threw"}: ${sentence(a.remoteMessage)}. ` +
      "See the host's code; the remote error's code is in err.remoteCode.",
    ["remoteCode", "remoteName"],
  ),
  /** A request reached a host with no `onRequest` handler; the member sees it as its `ERR_OPEN_CHANNEL_REMOTE`, which names the channel. */
  ERR_OPEN_CHANNEL_NO_HANDLER: E("Error", true, (a: { member?: boolean }) =>
    a.member === true
      ? "the member has no onRequest handler. Pass onRequest to messenger.handle() in every member the host asks"
      : "the host has no onRequest handler. Pass onRequest to openMessageChannel() in every process that may host",
  ),
  /** A body the codec cannot decode; raised by a codec, which knows no channel (see {@link withChannel}). */
  ERR_OPEN_CHANNEL_BAD_BODY: E(
    "Error",
    true,
    (a: { detail?: string }) =>
      `A message body cannot be decoded${a.detail === undefined ? "" : ` (${sentence(a.detail)})`}: it is corrupt, or another codec wrote it. ` +
      "Every process of a channel must use the same codec (the default is structuredCodec).",
  ),
  /** A body (or a reply, a push) the codec cannot encode: a function, a Symbol, a WeakMap, or what the codec does not carry. */
  ERR_OPEN_CHANNEL_UNSERIALIZABLE: E(
    "Error",
    true,
    (a: { channel: string; what: string; codec: string; detail: string }) =>
      `${a.what} cannot be encoded by the ${a.codec} codec (${sentence(a.detail)}). ` +
      "Send data the codec carries (structuredCodec: what structuredClone copies, so no functions, Symbols, WeakMaps or WeakSets; bufferCodec: Buffers and strings).",
    ["codec"],
  ),
  /** A body decodes to an array longer than the larger of 2^20 and the body's byte count. */
  ERR_OPEN_CHANNEL_HUGE_ARRAY: E(
    "Error",
    true,
    (a: { bytes: number; length: number; limit: number; minLimit: number }) =>
      `A message body of ${a.bytes} bytes decodes to an array of length ${a.length}, over the limit of ${a.limit} (the larger of ${a.minLimit} and the body's size), so it is refused: a receiver walking it would hang. ` +
      "Send a sparse array that long as its entries instead (a Map, or [index, value] pairs).",
  ),
  /** The host let go of a result before the member, reconnected, read it. */
  ERR_OPEN_CHANNEL_REPLY_LOST: E(
    "Error",
    true,
    (a: { channel: string; seq: number; request: boolean }) =>
      `the host handled ${a.request ? "request" : "message"} ${a.seq}, but its ${a.request ? "reply" : "outcome"} was lost: ` +
      "this member reconnected before reading it, and a host keeps at most maxUnackedBytes of results per member. " +
      "Send it again if handling it twice is safe.",
  ),
  /** A call from the host to a member (`sendTo`, `requestTo`, `broadcast`) whose member left first. */
  ERR_OPEN_CHANNEL_MEMBER_LEFT: E(
    "Error",
    true,
    (a: { channel: string; pid: number; session: string; reason: "closed" | "lost" }) =>
      `member pid ${a.pid} (session ${a.session}) ${a.reason === "closed" ? "closed its messenger" : "was lost (its connection closed and it did not come back)"} before it handled the call. ` +
      "Call the members that are there (host.members()).",
    ["pid", "session"],
  ),
  /** A member's handler of a host's call threw (or it has no handler); `remoteCode` and `remoteName` are the remote error's. */
  ERR_OPEN_CHANNEL_MEMBER_FAILED: E(
    "Error",
    true,
    (a: { channel: string; pid: number; remoteMessage: string; remoteCode?: string; remoteName?: string }) =>
      `${a.remoteCode?.startsWith("ERR_OPEN_CHANNEL_") ? `member pid ${a.pid} could not handle it` : `the handler of member pid ${a.pid} threw`}: ${sentence(a.remoteMessage)}. ` +
      "See that member's code (messenger.handle()); the remote error's code is in err.remoteCode.",
    ["pid", "remoteCode", "remoteName"],
  ),
  /** A call from the host to a member whose @open-channel/messages takes no calls (a version before them). */
  ERR_OPEN_CHANNEL_MEMBER_UNSUPPORTED: E(
    "Error",
    true,
    (a: { channel: string; pid: number }) =>
      `member pid ${a.pid} runs a version of @open-channel/messages that takes no calls from the host. Upgrade it.`,
    ["pid"],
  ),
  /** A host-side call (`sendTo`, `requestTo`, `broadcast`) in a process that no longer hosts (or never did). */
  ERR_OPEN_CHANNEL_NOT_HOST: E(
    "Error",
    true,
    (_: { channel: string }) =>
      "this process does not host the channel (any more): calls to members die with the host that made them. " +
      "Call from the process that hosts (messageChannel.host is set there, and in onJoin).",
  ),
  /** The host sent a frame the messenger cannot read: the messenger closes. */
  ERR_OPEN_CHANNEL_BAD_FRAME: E(
    "Error",
    true,
    (a: { channel: string; reason: string }) =>
      `the host sent a frame this messenger cannot read (${a.reason}), so the messenger is closed. ` +
      "Every process of a channel must use the same maxFrameBytes and a compatible version of @open-channel/messages.",
  ),
  /** Not thrown: `open-channel list` reports it for an address that holds only a hash of the name. */
  ERR_OPEN_CHANNEL_HASHED_NAME: E(
    "Error",
    true,
    (_: Record<never, never>) => "only a hash of the name is in the address: ask with open-channel status NAME",
  ),
};

/**
 * Error codes raised by open-channel itself (system errors keep their errno codes): the keys of
 * {@link OPEN_CHANNEL_ERRORS}. The README's "Errors" table says when each one is raised.
 *
 * @example
 * function isRetryable(code: OpenChannelErrorCode): boolean {
 *   return code === "ETIMEDOUT";
 * }
 */
export type OpenChannelErrorCode = keyof typeof OPEN_CHANNEL_ERRORS;

/**
 * What {@link openChannelError} needs for `code`: its message's arguments, and optionally the
 * underlying error as `cause`.
 *
 * @example
 * const args: OpenChannelErrorArgs<"ERR_OPEN_CHANNEL_CLOSED"> = { channel: "jobs", closed: "channel" };
 */
export type OpenChannelErrorArgs<C extends OpenChannelErrorCode> = Parameters<(typeof OPEN_CHANNEL_ERRORS)[C]["message"]>[0] & {
  /** The underlying error, if any: the error's `cause`. */
  cause?: unknown;
};

/**
 * The error raised with `code`: its class (per `base` in {@link OPEN_CHANNEL_ERRORS}), its `code`,
 * and the extra fields listed for it (`stranger`, `remoteCode`, `errno`, ...).
 *
 * @example
 * const err: OpenChannelErrorOf<"ERR_OPEN_CHANNEL_REMOTE"> = openChannelError("ERR_OPEN_CHANNEL_REMOTE", {
 *   channel: "jobs",
 *   remoteMessage: "no such job",
 *   remoteCode: "ENOJOB",
 * });
 * err.remoteCode; // "ENOJOB"
 */
export type OpenChannelErrorOf<C extends OpenChannelErrorCode> = ((typeof OPEN_CHANNEL_ERRORS)[C]["base"] extends "TypeError"
  ? OpenChannelTypeError
  : (typeof OPEN_CHANNEL_ERRORS)[C]["base"] extends "RangeError"
    ? OpenChannelRangeError
    : OpenChannelError) & {
  /** The code, `C`. */
  readonly code: C;
} & Readonly<Pick<OpenChannelErrorArgs<C>, (typeof OPEN_CHANNEL_ERRORS)[C]["fields"][number] & keyof OpenChannelErrorArgs<C>>>;

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
   * For `ERR_OPEN_CHANNEL_REMOTE`: the `code` of the error the host's handler threw, if it had one.
   *
   * @example
   * messenger.request(job).catch((err) => { if (err.remoteCode === "E_NO_JOB") retryLater(job); });
   */
  readonly remoteCode?: string;
  /**
   * For `ERR_OPEN_CHANNEL_REMOTE`: the `name` of the error the host's handler threw.
   *
   * @example
   * messenger.request(job).catch((err) => console.error(`${err.remoteName}: ${err.message}`));
   */
  readonly remoteName?: string;

  /**
   * Creates an error; open-channel raises them (through {@link openChannelError}), user code
   * rarely needs to.
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
   * `"ERR_INVALID_ARG_TYPE"` (a wrong type) or `"ERR_INVALID_ARG_VALUE"` (a wrong value: an empty
   * channel name, a `tcpTransport` host that is not loopback).
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

/** `open-channel "<channel>": `, in front of every message about a channel. */
function aboutChannel(channel: string): string {
  return `open-channel "${channel}": `;
}

/**
 * Builds the error for `code` from its arguments, as {@link OPEN_CHANNEL_ERRORS} says: its class,
 * its message (after `open-channel "<channel>": ` when `args.channel` is given), `channel`, `cause`
 * and the code's extra fields.
 *
 * @param code - the error's code
 * @param args - the arguments of the code's message, `cause` if any
 * @example
 * socket.destroy(openChannelError("ERR_OPEN_CHANNEL_UNSAFE_DIR", { channel: "jobs", dir: "/run/x", why: "it belongs to uid 0" }));
 */
export function openChannelError<C extends OpenChannelErrorCode>(code: C, args: OpenChannelErrorArgs<C>): OpenChannelErrorOf<C> {
  const spec: OpenChannelErrorSpec<"Error" | "TypeError" | "RangeError", (args: never) => string, readonly string[]> =
    OPEN_CHANNEL_ERRORS[code];
  const given = args as Record<string, unknown>;
  const channel = typeof given.channel === "string" ? given.channel : undefined;
  const message = (channel === undefined ? "" : aboutChannel(channel)) + (spec.message as (a: unknown) => string)(args);
  let err: Error;
  if (spec.base === "TypeError") err = new OpenChannelTypeError(code as OpenChannelTypeError["code"], message);
  else if (spec.base === "RangeError") err = new OpenChannelRangeError(message);
  else err = new OpenChannelError(code, message, { channel, cause: given.cause });
  for (const field of spec.fields) {
    if (given[field] !== undefined) (err as unknown as Record<string, unknown>)[field] = given[field];
  }
  return err as OpenChannelErrorOf<C>;
}

/**
 * A wrong argument, as Node reports one: `ERR_INVALID_ARG_TYPE` (a wrong type),
 * `ERR_INVALID_ARG_VALUE` (a wrong value) or `ERR_OUT_OF_RANGE` (a number or size out of range).
 * `expected` completes "The "<name>" argument must be ...".
 *
 * @example
 * if (typeof timeout !== "number") throw argError("ERR_INVALID_ARG_TYPE", "timeout", "of type number", timeout);
 */
export function argError<C extends "ERR_INVALID_ARG_TYPE" | "ERR_INVALID_ARG_VALUE" | "ERR_OUT_OF_RANGE">(
  code: C,
  name: string,
  expected: string,
  value: unknown,
): OpenChannelErrorOf<C> {
  return openChannelError(code, { name, expected, value } as OpenChannelErrorArgs<C>);
}

/**
 * Whether `err` is an error with `code`; if so, its extra fields are typed.
 *
 * @example
 * messenger.request(job).catch((err) => {
 *   if (isOpenChannelError(err, "ERR_OPEN_CHANNEL_REMOTE")) console.error(err.remoteCode, err.message);
 * });
 */
export function isOpenChannelError<C extends OpenChannelErrorCode>(err: unknown, code: C): err is OpenChannelErrorOf<C> {
  return err instanceof Error && errorCode(err) === code;
}

/**
 * `err`, raised where no channel was known (a codec's `ERR_OPEN_CHANNEL_BAD_BODY`), as the same
 * error about `channel`, with `err` as its cause; any other error as it is.
 *
 * @example
 * try { codec.decode(bytes); } catch (err) { throw withChannel(err, "jobs"); } // 'open-channel "jobs": A message body ...'
 */
export function withChannel(err: Error, channel: string): Error {
  if (!(err instanceof OpenChannelError) || err.channel !== undefined) return err;
  return new OpenChannelError(err.code, aboutChannel(channel) + err.message, { channel, cause: err });
}

/** System error codes from `listen`/`connect` that retrying cannot fix: permissions, paths. */
const FATAL_SYSTEM_CODES = new Set(["EACCES", "EPERM", "ENOTDIR", "ENAMETOOLONG", "ELOOP", "EROFS"]);

/**
 * @internal Whether a transport's `listen`/`connect` failing with `err` closes the channel at once:
 * a system code in FATAL_SYSTEM_CODES, or a code marked `fatal` in {@link OPEN_CHANNEL_ERRORS}.
 * Anything else (no code, `ETIMEDOUT`, `ERR_OPEN_CHANNEL_HANDSHAKE`, codes of others) is retried.
 */
export function isFatal(err: unknown): boolean {
  const code = errorCode(err);
  if (code === undefined) return false;
  if (FATAL_SYSTEM_CODES.has(code)) return true;
  return Object.hasOwn(OPEN_CHANNEL_ERRORS, code) && OPEN_CHANNEL_ERRORS[code as OpenChannelErrorCode].fatal;
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

/** `err` if it is an Error, else an Error saying what was thrown. */
export function asError(err: unknown): Error {
  // isNativeError: an Error of another realm (a vm context, Jest's sandbox) is one too.
  return err instanceof Error || types.isNativeError(err) ? (err as Error) : new Error(String(err));
}
