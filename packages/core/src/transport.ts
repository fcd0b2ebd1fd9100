import * as net from "node:net";
import { ChannelSocket } from "./channel-socket";
import type { ChannelEntry } from "./names";

/**
 * How a channel reaches its host: the address scheme, the exclusive bind that elects the host, and
 * the clean-up of what a dead host left behind. Core knows only this interface; the packages
 * `@open-channel/transport-unix` (and others) implement it, and so can you.
 *
 * The contract:
 * - `listen` binds `server` to the channel's address **exclusively** and resolves once it listens.
 *   When the address is taken it rejects with an error whose `code` is `"EADDRINUSE"`: that is how
 *   the election learns that someone else won. In a `cluster` worker it must bind with
 *   `exclusive: true`, or Node would share one handle between all workers.
 * - `connect` starts connecting `socket` (it calls `socket.connect(...)`); the outcome arrives as
 *   the socket's `connect` or `error` event. An error with code `ENOENT` or `ECONNREFUSED` (or any
 *   code listed in `noHostCodes`) means "no live host here", and the channel then tries to host.
 *   `connect` may return a promise when it must look something up first. The socket may have
 *   been connected before (a reconnection after a failover reuses it). Socket options go through
 *   its methods before connecting (`socket.setNoDelay()`, `socket.setKeepAlive()`): Node ignores
 *   `noDelay`, `keepAlive` and `onread` passed to `connect()` on a socket that exists. Core turns
 *   Nagle off on every socket it hands to `connect`.
 * - `reclaim` (optional) is called when `listen` failed with `EADDRINUSE` although no host
 *   answered: leftovers of a dead host. Under a lock, so that of several processes exactly one
 *   does it, it removes them only when it is sure they are dead, and binds `server` in their place
 *   before letting go of the lock. It resolves `true` when `server` now listens (the caller hosts),
 *   `false` when the caller should connect again: a live host is there, or another process
 *   reclaimed (wait for that process to finish, so the connect that follows finds it).
 *
 * - A transport whose hold on the address can end while the host lives (a lease in Redis) resolves
 *   `listen` (and `reclaim`) with a {@link Lease}: the host tells members its `epoch` in the
 *   handshake, stops serving a connection the moment `held()` turns false, and stops hosting when
 *   the lease reports it is lost. Such a transport may also end a member's connection it made (its
 *   host's lease ended) by destroying the socket with an error that has a `syscall`, as Node does
 *   on a connection error: the channel takes it for a lost host, not for the user's close.
 *
 * Errors from `listen`/`connect` with codes `EACCES`, `EPERM`, `ENOTDIR`, `ENAMETOOLONG`, `ELOOP`,
 * `EROFS`, or one marked `fatal` in `OPEN_CHANNEL_ERRORS` (`ERR_INVALID_ARG_TYPE` and every
 * `ERR_OPEN_CHANNEL_*` but `ERR_OPEN_CHANNEL_HANDSHAKE`) are fatal: the channel closes with that
 * error instead of retrying until its timeout. Any other error is retried.
 *
 * @example
 * // A transport over Unix sockets at a fixed folder (what @open-channel/transport-unix does, minus
 * // the safety checks and the stale-file reclaim):
 * const myTransport = {
 *   name: "my-unix",
 *   listen: (channel, server) => new Promise((resolve, reject) => {
 *     server.once("error", reject);
 *     server.listen({ path: `/run/my-app/${channel}.sock`, exclusive: true }, () => {
 *       server.off("error", reject);
 *       resolve();
 *     });
 *   }),
 *   connect: (channel, socket) => { socket.connect({ path: `/run/my-app/${channel}.sock` }); },
 * };
 * const channel = openChannel("jobs", onConnection, { transport: myTransport });
 */
export interface Transport {
  /**
   * Short name, shown in debug output and errors: `"unix"`, `"tcp"`, `"pipe"` or your own.
   *
   * @example
   * channel.transport.name // "unix" on Linux
   */
  readonly name: string;
  /**
   * Binds `server` to the channel's address exclusively; rejects with code `EADDRINUSE` when taken.
   *
   * @example
   * const server = net.createServer(onConnection);
   * await transport.listen("jobs", server); // rejects with code "EADDRINUSE" if another process hosts
   */
  // biome-ignore lint/suspicious/noConfusingVoidType: a transport whose listen is `async (): Promise<void>` (most are) must still fit.
  listen(channel: string, server: net.Server): Promise<void | Lease>;
  /**
   * Starts connecting `socket` to the channel's address (calls `socket.connect`).
   *
   * @example
   * const socket = new net.Socket();
   * socket.once("error", (err) => console.log(err.code)); // "ENOENT" or "ECONNREFUSED": no host
   * await transport.connect("jobs", socket);
   */
  connect(channel: string, socket: net.Socket): void | Promise<void>;
  /** Removes a dead host's leftovers race-free and binds `server` instead; `true` when it listens. */
  reclaim?(channel: string, server: net.Server): Promise<boolean | Lease>;
  /**
   * Human-readable address of the channel, for errors and debug output.
   *
   * @example
   * console.log(`channel "jobs" is at ${transport.address?.("jobs") ?? "(no address)"} over ${transport.name}`);
   */
  address?(channel: string): string;
  /** Extra connect error codes that mean "no live host" (besides `ENOENT` and `ECONNREFUSED`). */
  readonly noHostCodes?: readonly string[];
  /**
   * The per-user secret of the channel, for transports any local user can reach (TCP, named
   * pipes). When present, every connection runs a challenge-response proof both ways (HMAC over
   * fresh nonces; the secret itself never travels), and a connection that fails it is closed before
   * the user's listener sees it. Called once per channel; may read or create a 0600 file.
   *
   * @example
   * const secret = transport.secret?.("jobs"); // TCP, pipe: 32 bytes, the same in every process of the user
   */
  secret?(channel: string): Buffer | undefined;
  /**
   * The channels this user has an address for through this transport (hosted, or left by a dead
   * host), for `open-channel list`. Only this user's: other users' channels are never listed.
   *
   * @example
   * for (const { name, address } of transport.channels?.() ?? []) console.log(name ?? "(hashed name)", address);
   */
  channels?(): ChannelEntry[];
  /**
   * A secure layer (TLS) on every connection of the channel, for transports that cross machines.
   * The transport still binds and connects plain sockets (`listen`, `connect`); core runs every
   * connection through `secure` before a single byte of the handshake, and the proofs are then
   * bound to the secure session (its exported keying material) instead of the endpoints. The
   * user's socket stays the same `net.Socket` across failovers: its bytes travel over the secure
   * socket of each connection.
   *
   * @example
   * // Host: feed the accepted socket to an unbound tls.Server (it checks the client certificate).
   * // Member: tls.connect({ socket, ca, cert, key }) and resolve at "secureConnect".
   */
  readonly secure?: SecureLayer;
}

/**
 * What {@link Transport.secure} does on each side of a connection. Each function gets the plain
 * socket, connected, and resolves with the secure socket over it once the peer is authenticated
 * (it rejects, or destroys the socket, otherwise). Core bounds how long it waits.
 * Core has one for TLS: `tlsSecureLayer()`.
 *
 * @example
 * const transport: Transport = { name: "my-tcp", listen, connect, secure: tlsSecureLayer({ ca, cert, key }) };
 */
export interface SecureLayer {
  /** A member's connection, just connected to the host's address by `connect`. */
  member(socket: net.Socket, channel: string): Promise<net.Socket>;
  /** A connection the host's server accepted. */
  host(socket: net.Socket, channel: string): Promise<net.Socket>;
}

/**
 * A host's hold on the channel's address, for transports where it can end while the host lives
 * (a lease in Redis that the host must renew in time). `listen` or `reclaim` resolves with one.
 *
 * @example
 * const lease = await transport.listen("jobs", server);
 * if (lease) lease.onLost((reason) => console.log(`epoch ${lease.epoch} ended: ${reason}`));
 */
export interface Lease {
  /**
   * The fencing token: it only grows from one host of the channel to the next. Members learn it
   * in the handshake and refuse a host whose epoch is lower than one they have seen.
   */
  readonly epoch: number;
  /**
   * True while the lease certainly holds by this process's own clock. Called before serving
   * every read and write of a member connection: false, and the connection ends unserved.
   */
  held(): boolean;
  /** Registers `callback`, called once when the lease is lost (not renewed in time, or replaced). */
  onLost(callback: (reason: string) => void): void;
}

/** @internal The lease in what `listen`/`reclaim` resolved with, if any. */
export function leaseOf(value: unknown): Lease | undefined {
  return typeof value === "object" && value !== null && typeof (value as Lease).held === "function" ? (value as Lease) : undefined;
}

/**
 * Checks that `value` has the shape of a {@link Transport}: a `name`, `listen()` and `connect()`,
 * and, when present, functions for `reclaim` and `address`. `openChannel()` uses it on
 * `options.transport`.
 *
 * @example
 * isTransport(unixTransport()) // true
 * isTransport({ name: "half", listen() {} }) // false: no connect()
 */
export function isTransport(value: unknown): value is Transport {
  if (typeof value !== "object" || value === null) return false;
  const t = value as Record<string, unknown>;
  return (
    typeof t.name === "string" &&
    typeof t.listen === "function" &&
    typeof t.connect === "function" &&
    (t.reclaim === undefined || typeof t.reclaim === "function") &&
    (t.address === undefined || typeof t.address === "function") &&
    (t.secure === undefined ||
      (typeof t.secure === "object" &&
        t.secure !== null &&
        typeof (t.secure as SecureLayer).member === "function" &&
        typeof (t.secure as SecureLayer).host === "function"))
  );
}

/**
 * @internal Whether `code` says nobody listens at the address: `ENOENT`, `ECONNREFUSED`, or one of
 * the transport's `noHostCodes`.
 */
export function isNoHostCode(transport: Transport, code: string | undefined): boolean {
  return code === "ENOENT" || code === "ECONNREFUSED" || (code !== undefined && (transport.noHostCodes?.includes(code) ?? false));
}

/**
 * @internal Starts `transport.connect(address, socket)`; a throw or a rejected promise becomes the
 * socket's `error` event, as a failed connect would be.
 */
export function startConnect(transport: Transport, address: string, socket: net.Socket): void {
  try {
    const started = transport.connect(address, socket);
    if (started !== undefined) started.then(undefined, (err: unknown) => socket.emit("error", err));
  } catch (err) {
    socket.emit("error", err);
  }
}

/** @internal The host side of the transport's secure layer for `channel`, if it has one. */
export function hostSecure(transport: Transport, channel: string): ((socket: net.Socket) => Promise<net.Socket>) | undefined {
  const { secure } = transport;
  return secure === undefined ? undefined : (socket) => secure.host(socket, channel);
}

/**
 * @internal A socket for a one-off exchange with `address` (a probe, a status request), and the
 * function that starts connecting it (once its listeners are on): it emits `connect` once usable,
 * over the transport's secure layer when it has one (see {@link startConnect}).
 */
export function newConnection(transport: Transport, address: string): { socket: net.Socket; start(): void } {
  const { secure } = transport;
  if (secure === undefined) {
    const socket = new net.Socket().setNoDelay(true);
    return { socket, start: () => startConnect(transport, address, socket) };
  }
  const raw = new net.Socket().setNoDelay(true);
  const socket = new ChannelSocket(undefined);
  return {
    socket,
    start: () => {
      socket.connectSecure(raw, (connected) => secure.member(connected, address));
      startConnect(transport, address, raw);
    },
  };
}
