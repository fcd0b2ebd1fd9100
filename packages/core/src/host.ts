import * as net from "node:net";
import { randomBytes } from "node:crypto";
import { debug } from "./debug";
import { encodeReply, HANDSHAKE, HelloParser } from "./handshake";

/** How long the host waits for a member's hello before closing the connection. */
export const HOST_HANDSHAKE_TIMEOUT_MS = 3000;

type PushFn = (chunk: unknown, encoding?: BufferEncoding) => boolean;

/**
 * The server a hosting process runs inside itself. Every accepted connection first passes the
 * handshake; only then does it reach the user's connection listener, with any bytes that followed
 * the hello still unread in the socket, so the user sees exactly what the member wrote.
 *
 * The server is unref'ed: hosting never keeps a process alive by itself.
 */
export class HostServer {
  /** Random id of this server instance: members learn it in the handshake. */
  readonly id: Buffer = randomBytes(8);
  readonly server: net.Server;
  /** Connections that passed the handshake. */
  readonly members = new Set<net.Socket>();
  private orphaned = false;

  constructor(
    private readonly channel: string,
    private readonly listener: (socket: net.Socket) => void,
  ) {
    this.server = net.createServer((socket) => this.accept(socket));
    this.server.on("error", (err) => debug("channel %j: host server error: %s", channel, err.message));
    this.server.unref();
  }

  /**
   * Stops serving without closing the listening handle. Used when another server owns the address
   * now: closing a Unix server unlinks its socket path, which would be the new host's file.
   */
  orphan(): void {
    if (this.orphaned) return;
    this.orphaned = true;
    debug("channel %j: our server %s is orphaned (another host owns the address)", this.channel, this.id.toString("hex"));
    for (const socket of this.members) socket.destroy();
    this.members.clear();
  }

  private accept(socket: net.Socket): void {
    if (this.orphaned) {
      socket.destroy();
      return;
    }
    debug("channel %j: accepted a connection", this.channel);
    // A member that dies must never crash the host: keep an error listener for the socket's life.
    socket.on("error", (err) => debug("channel %j: member connection error: %s", this.channel, err.message));
    const parser = new HelloParser();
    const originalPush = socket.push as PushFn;
    let settled = false;
    const timer = setTimeout(() => reject(`no hello within ${HOST_HANDSHAKE_TIMEOUT_MS} ms`), HOST_HANDSHAKE_TIMEOUT_MS);
    timer.unref();

    const reject = (reason: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      debug("channel %j: closing a connection that failed the handshake: %s", this.channel, reason);
      Reflect.deleteProperty(socket, "push");
      socket.destroy();
    };

    // Intercept bytes before they reach the readable buffer, whatever reading mode the user later
    // picks; the rest of the stream is untouched.
    const hook: PushFn = (chunk, encoding) => {
      if (settled) return originalPush.call(socket, chunk, encoding);
      if (chunk === null) {
        reject("connection closed during the handshake");
        return originalPush.call(socket, chunk, encoding);
      }
      const result = parser.feed(chunk as Buffer);
      if (result.state === "more") return true;
      if (result.state === "invalid") {
        reject(result.reason);
        return false;
      }
      settled = true;
      clearTimeout(timer);
      Reflect.deleteProperty(socket, "push");
      const hello = result.value;
      let status: number = HANDSHAKE.statusOk;
      if (hello.version !== HANDSHAKE.version || hello.kind !== HANDSHAKE.kindJoin) status = HANDSHAKE.statusUnsupported;
      else if (hello.name !== this.channel) status = HANDSHAKE.statusWrongChannel;
      socket.write(encodeReply(status, process.pid, this.id));
      if (status !== HANDSHAKE.statusOk) {
        debug("channel %j: refused hello (status %d, name %j)", this.channel, status, hello.name);
        socket.end();
        return false;
      }
      this.members.add(socket);
      socket.once("close", () => this.members.delete(socket));
      if (result.rest.length > 0) originalPush.call(socket, result.rest);
      this.listener(socket);
      return true;
    };
    (socket as unknown as { push: PushFn }).push = hook;
  }
}
