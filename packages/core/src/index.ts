/**
 * `@open-channel/core`: the transport-agnostic heart of open-channel. Most users want the
 * `open-channel` package instead, which picks a transport for the platform. The transport
 * compliance suite is its own entry, `@open-channel/core/compliance` (it loads `node:assert` and
 * `child_process`, which users of the channel never need).
 *
 * @packageDocumentation
 */

export type { SocketReader } from "./channel-socket";
export { debug, debugEnabled } from "./debug";
export {
  argError,
  errorCode,
  isOpenChannelError,
  OPEN_CHANNEL_ERRORS,
  OpenChannelError,
  type OpenChannelErrorArgs,
  type OpenChannelErrorCode,
  type OpenChannelErrorOf,
  type OpenChannelErrorSpec,
  OpenChannelRangeError,
  OpenChannelTypeError,
  openChannelError,
  withChannel,
} from "./errors";
export {
  computeProof,
  connectionBinding,
  encodeHello,
  encodeReply,
  encodeStatusBody,
  endpointBinding,
  HANDSHAKE,
  type HandshakeReply,
  type Hello,
  HelloParser,
  newNonce,
  type ParseResult,
  ProofParser,
  type ProofTranscript,
  proofsEqual,
  ReplyParser,
  StatusBodyParser,
} from "./handshake";
export { type Lock, tryLock, waitForRelease } from "./lock";
export {
  type MemberAccepted,
  MemberHandshake,
  type MemberMore,
  type MemberRefused,
  type MemberStep,
  type MemberStranger,
} from "./member-handshake";
export { type ChannelEntry, channelsFromNames, escapeName, hashName, unescapeName } from "./names";
export { DEFAULT_CHANNEL_NAME, type OpenChannelOptions, openChannel, openChannel as default, parseOpenChannelArgs } from "./open-channel";
// Helpers for transport authors.
export { defaultPrivateDir, ensurePrivateDir } from "./private-dir";
export { type OpenedConnection, type ProbeTarget, type ProbeVerdict, probeAddress, probeChannel } from "./probe";
export {
  type ChannelState,
  type CloseOptions,
  type ConnectionListener,
  type ConnectOptions,
  DEFAULT_CONNECT_TIMEOUT_MS,
  type FailoverInfo,
  ProcessChannel,
  type ProcessChannelEvents,
  parseCloseOptions,
} from "./process-channel";
export { readOrCreateSecret } from "./secret";
export {
  type ChannelStatus,
  queryChannelStatus,
  type StatusHosted,
  type StatusNoHost,
  type StatusQueryOptions,
  type StatusQueryResult,
} from "./status";
export { type TlsLayerOptions, tlsSecureLayer } from "./tls-layer";
export { isTransport, type Lease, type SecureLayer, type Transport } from "./transport";
export { addressInUse, listenExclusive, withAddressLock } from "./transport-kit";
