// ESM entry: the package is compiled to CommonJS; this re-exports it with named exports.
import messages from "./dist/index.js";
export const {
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
} = messages;
