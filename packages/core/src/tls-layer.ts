import type * as net from "node:net";
import type * as TLS from "node:tls";
import { debug } from "./debug";
import { argError } from "./errors";
import type { SecureLayer } from "./transport";

/**
 * Options of {@link tlsSecureLayer}: every process of the channel passes the same `ca`, and its
 * own `cert` and `key`.
 *
 * @example
 * const options: TlsLayerOptions = { ca: fs.readFileSync("ca.pem"), cert: fs.readFileSync("node.pem"), key: fs.readFileSync("node.key") };
 */
export interface TlsLayerOptions {
  /** The certificate authorities a peer's certificate must chain to (PEM). */
  ca: string | Buffer | Array<string | Buffer>;
  /** This process's certificate chain (PEM): presented as host, and as member with `mutual`. */
  cert: string | Buffer | Array<string | Buffer>;
  /** The private key of `cert` (PEM). */
  key: string | Buffer | Array<string | Buffer>;
  /** The passphrase of `key`, if it is encrypted. */
  passphrase?: string;
  /** The host requires a member certificate signed by `ca` (mutual TLS). Default `true`. */
  mutual?: boolean;
  /**
   * The name members check the host's certificate against. Default: the address members connect
   * to (the certificate then needs it as an IP subject alternative name).
   */
  servername?: string;
}

const isPem = (v: unknown): boolean =>
  typeof v === "string" ||
  Buffer.isBuffer(v) ||
  (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "string" || Buffer.isBuffer(x)));

/** An error of the secure layer, with the code of the TLS error it wraps (or `ECONNRESET`). */
function tlsError(message: string, cause?: unknown): NodeJS.ErrnoException {
  const err = new Error(message, cause === undefined ? undefined : { cause }) as NodeJS.ErrnoException;
  err.code = (cause as NodeJS.ErrnoException | undefined)?.code ?? "ECONNRESET";
  err.syscall = "tls";
  return err;
}

/**
 * A {@link SecureLayer} of TLS 1.3 for a transport whose connections cross machines: the host
 * presents `cert` and members check it against `ca`; with `mutual` (the default) members present
 * theirs and the host accepts only certificates signed by `ca`. Proofs are then bound to each TLS
 * session (RFC 9266 `tls-exporter`), not to the endpoints: it works through NAT.
 *
 * The host's side feeds each accepted connection to one unbound `tls.Server` (Node checks client
 * certificates there; a server-side `TLSSocket` alone does not), so the transport's own
 * `net.Server` stays the listener.
 *
 * @throws OpenChannelTypeError `ERR_INVALID_ARG_TYPE` for missing or malformed options, and the
 *   error of `tls.createSecureContext` for a key that does not match or cannot be read
 * @example
 * const secure = tlsSecureLayer({ ca, cert, key });
 * const transport: Transport = { name: "my-tcp", listen, connect, secure };
 */
export function tlsSecureLayer(options: TlsLayerOptions): SecureLayer {
  if (typeof options !== "object" || options === null)
    throw argError("ERR_INVALID_ARG_TYPE", "options.tls", "an object with ca, cert and key", options);
  for (const name of ["ca", "cert", "key"] as const) {
    if (!isPem(options[name]))
      throw argError("ERR_INVALID_ARG_TYPE", `options.tls.${name}`, "PEM text: a string or Buffer (or an array of them)", options[name]);
  }
  const mutual = options.mutual ?? true;
  if (typeof mutual !== "boolean") throw argError("ERR_INVALID_ARG_TYPE", "options.tls.mutual", "a boolean", options.mutual);
  const { servername } = options;
  if (servername !== undefined && (typeof servername !== "string" || servername === "")) {
    throw argError("ERR_INVALID_ARG_TYPE", "options.tls.servername", "a host name", servername);
  }
  const { ca, cert, key, passphrase } = options;
  // Loaded here: a channel without TLS never loads node:tls.
  const tls = require("node:tls") as typeof TLS;
  // Both contexts now: a key that does not match its certificate throws here, not on a connection.
  const server = tls.createServer({ ca, cert, key, passphrase, requestCert: mutual, rejectUnauthorized: true, minVersion: "TLSv1.3" });
  const clientContext = tls.createSecureContext({
    ca,
    cert: mutual ? cert : undefined,
    key: mutual ? key : undefined,
    passphrase,
    minVersion: "TLSv1.3",
  });
  // The server never listens: each accepted plain socket is emitted to it as a "connection", and
  // its secure socket comes back by the plain one's endpoints (Node gives no other link).
  const pending = new Map<string, { resolve(s: net.Socket): void; reject(err: Error): void }>();
  const keyOf = (s: net.Socket): string => `${s.remoteAddress}|${s.remotePort}|${s.localAddress}|${s.localPort}`;
  const settle = (s: net.Socket) => {
    const k = keyOf(s);
    const waiter = pending.get(k);
    pending.delete(k);
    return waiter;
  };
  server.on("secureConnection", (secure: TLS.TLSSocket) => {
    const waiter = settle(secure);
    if (waiter === undefined) secure.destroy();
    else waiter.resolve(secure);
  });
  server.on("tlsClientError", (err, secure) => {
    debug("tls: a member's TLS handshake failed: %s", err.message);
    settle(secure)?.reject(tlsError(`TLS handshake with a member failed: ${err.message}`, err));
  });
  const handshake = (socket: net.Socket): Promise<net.Socket> =>
    new Promise((resolve, reject) => {
      if (socket.destroyed) return reject(tlsError("the member closed the connection during the TLS handshake"));
      const k = keyOf(socket);
      pending.set(k, { resolve, reject });
      socket.once("close", () => {
        if (pending.get(k)?.resolve !== resolve) return;
        pending.delete(k);
        reject(tlsError("the member closed the connection during the TLS handshake"));
      });
      server.emit("connection", socket);
    });
  let unnamed: Promise<unknown> = Promise.resolve();
  return {
    host(socket) {
      if (socket.remotePort !== undefined) return handshake(socket);
      // No endpoints tell this connection from another (a Unix socket, a pipe): one handshake at
      // a time (each bounded by the host's handshake timeout).
      const run = unnamed.then(() => handshake(socket));
      unnamed = run.catch(() => undefined);
      return run;
    },
    member(socket) {
      return new Promise((resolve, reject) => {
        const secure = tls.connect({ socket, secureContext: clientContext, host: socket.remoteAddress, servername, minVersion: "TLSv1.3" });
        let connected = false;
        const fail = (err: Error): void => {
          if (connected) return;
          secure.destroy();
          reject(tlsError(`TLS handshake with the host failed: ${err.message}`, err));
        };
        // Kept for the socket's life (a no-op once connected, when the channel's socket listens
        // too): an error in between must never be unhandled.
        secure.on("error", fail);
        secure.once("close", () => fail(new Error("the host closed the connection during the TLS handshake")));
        secure.once("secureConnect", () => {
          connected = true;
          resolve(secure);
        });
      });
    },
  };
}
