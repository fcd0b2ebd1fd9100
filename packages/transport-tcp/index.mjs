// ESM entry: the package is compiled to CommonJS; this re-exports it with named exports.
import tcp from "./dist/index.js";
export const { tcpTransport, TcpTransport, portFileName } = tcp;
export default tcp.tcpTransport;
