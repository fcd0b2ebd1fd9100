// ESM entry: the package is compiled to CommonJS; this re-exports it with named exports.
import pipe from "./dist/index.js";
export const { pipeTransport, PipeTransport, pipeName } = pipe;
export default pipe.pipeTransport;
