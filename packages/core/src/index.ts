/**
 * `@open-channel/core`: the transport-agnostic heart of open-channel. Most users want the
 * `open-channel` package instead, which picks a transport for the platform.
 *
 * @packageDocumentation
 */
export { openChannel, parseOpenChannelArgs, DEFAULT_CHANNEL_NAME, type OpenChannelOptions } from "./open-channel";
export { ProcessChannel, DEFAULT_CONNECT_TIMEOUT_MS, type ChannelState, type ConnectionListener } from "./process-channel";
export { type Transport, isTransport } from "./transport";
export {
  OpenChannelError,
  OpenChannelTypeError,
  OpenChannelRangeError,
  type OpenChannelErrorCode,
  errorCode,
} from "./errors";
export {
  HANDSHAKE,
  encodeHello,
  encodeReply,
  encodeStatusBody,
  computeProof,
  proofsEqual,
  newNonce,
  HelloParser,
  ReplyParser,
  ProofParser,
  StatusBodyParser,
  type Hello,
  type HandshakeReply,
  type ParseResult,
} from "./handshake";
export { debug, debugEnabled } from "./debug";
// Helpers for transport authors.
export { defaultPrivateDir, ensurePrivateDir } from "./private-dir";
export { escapeName, unescapeName, hashName, channelsFromNames, type ChannelEntry } from "./names";
export { readOrCreateSecret } from "./secret";
export { tryLock, waitForRelease, type Lock } from "./lock";
export { probeChannel, type ProbeVerdict } from "./probe";
export { queryChannelStatus, type ChannelStatus, type StatusQueryOptions, type StatusQueryResult, type StatusHosted, type StatusNoHost } from "./status";
export {
  transportComplianceCases,
  leaveStaleHost,
  type ComplianceCase,
  type ComplianceOptions,
  type TransportModule,
} from "./compliance";
export { openChannel as default } from "./open-channel";
