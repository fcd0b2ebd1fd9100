// ESM entry: the package is compiled to CommonJS; this re-exports it with named exports.
import umbrella from "./dist/index.js";
export const {
  openChannel,
  ProcessChannel,
  OpenChannelError,
  OpenChannelTypeError,
  OpenChannelRangeError,
  OPEN_CHANNEL_ERRORS,
  isOpenChannelError,
  selectTransportName,
  loadTransport,
  TRANSPORT_PACKAGES,
  queryChannelStatus,
  runCli,
  openMessageChannel,
  MessageChannel,
  Messenger,
  MESSAGE_DEFAULTS,
  structuredCodec,
  v8Codec,
  jsonCodec,
  bufferCodec,
  typedEvents,
  hostEvents,
  LEAVE_GRACE_MS,
} = umbrella;
export default umbrella.openChannel;
