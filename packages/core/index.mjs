// ESM entry: the package is compiled to CommonJS; this re-exports it with named exports.
import core from "./dist/index.js";
export const {
  openChannel,
  parseOpenChannelArgs,
  DEFAULT_CHANNEL_NAME,
  ProcessChannel,
  DEFAULT_CONNECT_TIMEOUT_MS,
  isTransport,
  OpenChannelError,
  OpenChannelTypeError,
  OpenChannelRangeError,
  errorCode,
  HANDSHAKE,
  encodeHello,
  encodeReply,
  HelloParser,
  ReplyParser,
  debug,
} = core;
export default core.openChannel;
