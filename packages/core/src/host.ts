import * as net from "node:net";
import { randomBytes } from "node:crypto";
import { debug } from "./debug";
import { computeProof, encodeReply, HANDSHAKE, type Hello, HelloParser, newNonce, ProofParser, proofsEqual } from "./handshake";

/** How long the host waits for a member's hello (and proof) before closing the connection. */
export const HOST_HANDSHAKE_TIMEOUT_MS = 3000;

type PushFn = (chunk: unknown, encoding?: BufferEncoding) => boolean;

/**
 * The server a hosting process runs inside itself. Every accepted connection first passes the
 * handshake (and the proof, when the transport has a secret); only then does it reach the user's
 * connection listener, with any bytes that followed still unread in the socket, so the user sees
 * exactly what the member wrote. A connection that fails is closed with a reason in the debug log
 * and never seen by the listener.
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
    private readonly secret: Buffer | undefined,
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
    // Hosting never keeps a process alive: once its own work is done, it may exit, and the
    // members elect a new host at once.
    socket.unref();
    // A member that dies must never crash the host: keep an error listener for the socket's life.
    socket.on("error", (err) => debug("channel %j: member connection error: %s", this.channel, err.message));
    const originalPush = socket.push as PushFn;
    let stage: "hello" | "proof" | "done" = "hello";
    let parser: HelloParser | ProofParser = new HelloParser();
    let expectedProof: Buffer | undefined;
    const timer = setTimeout(() => reject(`no ${stage} within ${HOST_HANDSHAKE_TIMEOUT_MS} ms`), HOST_HANDSHAKE_TIMEOUT_MS);
    timer.unref();

    const reject = (reason: string): false => {
      if (stage === "done") return false;
      stage = "done";
      clearTimeout(timer);
      debug("channel %j: closing a connection that failed the handshake: %s", this.channel, reason);
      Reflect.deleteProperty(socket, "push");
      socket.destroy();
      return false;
    };

    const admit = (rest: Buffer): boolean => {
      stage = "done";
      clearTimeout(timer);
      Reflect.deleteProperty(socket, "push");
      this.members.add(socket);
      socket.once("close", () => this.members.delete(socket));
      if (rest.length > 0) originalPush.call(socket, rest);
      this.listener(socket);
      return true;
    };

    const onHello = (hello: Hello, rest: Buffer): boolean => {
      let status: number = HANDSHAKE.statusOk;
      if (hello.version !== HANDSHAKE.version || hello.kind !== HANDSHAKE.kindJoin) status = HANDSHAKE.statusUnsupported;
      else if (hello.name !== this.channel) status = HANDSHAKE.statusWrongChannel;
      else if (this.secret !== undefined && hello.memberNonce === undefined) status = HANDSHAKE.statusProofRequired;
      if (status !== HANDSHAKE.statusOk) {
        socket.end(encodeReply(status, process.pid, this.id));
        return reject(`refused hello (status ${status}, name ${JSON.stringify(hello.name)})`);
      }
      if (this.secret === undefined || hello.memberNonce === undefined) {
        socket.write(encodeReply(status, process.pid, this.id));
        return admit(rest);
      }
      const hostNonce = newNonce();
      const hostProof = computeProof(this.secret, "host", this.channel, hello.memberNonce, hostNonce);
      expectedProof = computeProof(this.secret, "member", this.channel, hello.memberNonce, hostNonce);
      socket.write(encodeReply(status, process.pid, this.id, { hostNonce, hostProof }));
      stage = "proof";
      parser = new ProofParser();
      return rest.length === 0 || hook(rest);
    };

    // Intercept bytes before they reach the readable buffer, whatever reading mode the user later
    // picks; the rest of the stream is untouched.
    const hook: PushFn = (chunk, encoding) => {
      if (stage === "done") return originalPush.call(socket, chunk, encoding);
      if (chunk === null) {
        reject(`connection closed during the ${stage}`);
        return originalPush.call(socket, chunk, encoding);
      }
      const result = parser.feed(chunk as Buffer);
      if (result.state === "more") return true;
      if (result.state === "invalid") return reject(result.reason);
      if (stage === "hello") return onHello(result.value as Hello, result.rest);
      if (!proofsEqual(result.value as Buffer, expectedProof as Buffer)) return reject("wrong proof (another user, or another secret)");
      return admit(result.rest);
    };
    (socket as unknown as { push: PushFn }).push = hook;
  }
}
