// ESM entry: the package is compiled to CommonJS; this re-exports it with named exports.
import unix from "./dist/index.js";
export const {
  unixTransport,
  UnixTransport,
  socketFileName,
  defaultSocketDir,
  maxSocketPathBytes,
  ensurePrivateDir,
  probe,
  bindOrTakeOver,
} = unix;
export default unix.unixTransport;
