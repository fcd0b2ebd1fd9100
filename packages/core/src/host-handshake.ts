import type * as net from "node:net";
import { debug } from "./debug";
import {
  computeProof,
  connectionBinding,
  encodeReply,
  encodeStatusBody,
  HANDSHAKE,
  type Hello,
  HelloParser,
  ProofParser,
  type ProofTranscript,
  proofsEqual,
} from "./handshake";
import type { ChannelStatus } from "./host";
import type { Lease } from "./transport";

/** How long the host waits for a member's hello (and proof) before closing the connection. */
export const HOST_HANDSHAKE_TIMEOUT_MS = 3000;

type PushFn = (chunk: unknown, encoding?: BufferEncoding) => boolean;

/** A member whose hello waits for its server to start serving (see {@link HandshakeServer.serving}). */
export interface Parked {
  resume(): void;
  refuse(reason: string): void;
}

/** What the handshake needs of the server that accepted the connection. */
export interface HandshakeServer {
  readonly channel: string;
  /** The server's random id, told in every reply. */
  readonly id: Buffer;
  /** The transport's secret: with one, the host and the member prove themselves to each other. */
  readonly secret: Buffer | undefined;
  /** False while an heir's server waits to hold the channel's address: hellos are parked. */
  readonly serving: boolean;
  /** Why the server was closed; undefined while open. */
  readonly closeReason: string | undefined;
  /** The lease this server holds the channel's address with, for transports with leases. */
  readonly lease: Lease | undefined;
  park(entry: Parked): void;
  unpark(entry: Parked): void;
  /** The host's proof for a reply of `status` to `hello` (none without a secret or a member nonce). */
  proofs(hello: Hello, status: number, binding: string): { hostNonce: Buffer; hostProof: Buffer; transcript: ProofTranscript } | undefined;
  /** The connection passed: a member now (the user's listener gets it next). */
  addMember(socket: net.Socket): void;
  /** The user's connection listener. */
  readonly listener: (socket: net.Socket) => void;
  status(): ChannelStatus;
}

/**
 * The host's side of the handshake on one accepted connection (the wire format is in
 * handshake.ts). It reads the member's bytes before they reach the readable buffer, whatever
 * reading mode the user later picks, in one explicit stage:
 *
 * ```
 * hello --join, ok--------------------------------> done: the listener gets the socket
 *       --join, ok, with a secret--> proof --right--> done: the listener gets the socket
 *       --probe--> reply, end                         (an address check: never the listener)
 *       --status--> [proof] --> the status, end       (never the listener)
 *       --join, on an heir that does not host--> parked --serve--> hello again
 *                                                       --refuse--> "not the host", end
 *       --anything wrong, or 3 s without it--> closed (a debug line says why)
 * ```
 */
export class HostHandshake {
  private stage: "hello" | "parked" | "proof" | "done" = "hello";
  private parser: HelloParser | ProofParser = new HelloParser();
  private parked: Parked | undefined;
  /** The member's proof we expect, once we replied with ours. */
  private expectedProof: Buffer | undefined;
  /** A status request: after the proof (if any) it gets the status, never the listener. */
  private statusAsked = false;
  /**
   * The proof exchange, computed once: before parking when parked (the heir has time then), again
   * if the epoch it covers changed meanwhile (the heir took its lease after parking us).
   */
  private proof: { hostNonce: Buffer; hostProof: Buffer; expected: Buffer; epoch: number | undefined } | undefined;
  /** The endpoints as they are now: the proofs are good for this connection only. */
  private readonly binding: string;
  private readonly timer: NodeJS.Timeout;
  private readonly originalPush: PushFn;

  constructor(
    private readonly server: HandshakeServer,
    private readonly socket: net.Socket,
  ) {
    this.originalPush = socket.push as PushFn;
    this.binding = connectionBinding(socket, "host");
    this.timer = setTimeout(() => this.reject(`no ${this.stage} within ${HOST_HANDSHAKE_TIMEOUT_MS} ms`), HOST_HANDSHAKE_TIMEOUT_MS);
    this.timer.unref();
    (socket as unknown as { push: PushFn }).push = (chunk, encoding) => this.push(chunk, encoding);
  }

  /** Every byte the member sends, until the handshake is over; then the stream is untouched. */
  private push(chunk: unknown, encoding?: BufferEncoding): boolean {
    const { socket } = this;
    if (this.stage === "done") return this.originalPush.call(socket, chunk, encoding);
    if (chunk === null) {
      this.reject(`connection closed during the ${this.stage}`);
      return this.originalPush.call(socket, chunk, encoding);
    }
    if (this.stage === "parked") return this.reject("bytes before the handshake reply");
    const result = this.parser.feed(chunk as Buffer);
    if (result.state === "more") return true;
    if (result.state === "invalid") return this.reject(result.reason);
    if (this.stage === "hello") return this.onHello(result.value as Hello, result.rest);
    if (!proofsEqual(result.value as Buffer, this.expectedProof as Buffer))
      return this.reject("wrong proof (another user, or another secret)");
    return this.statusAsked ? this.answerStatus() : this.admit(result.rest);
  }

  private onHello(hello: Hello, rest: Buffer): boolean {
    const { server, socket, binding } = this;
    let status: number = HANDSHAKE.statusOk;
    const probe = hello.kind === HANDSHAKE.kindProbe;
    this.statusAsked = hello.kind === HANDSHAKE.kindStatus;
    // A probe names the address it checks: the channel's, or the heir's standby address.
    const nameOk = hello.name === server.channel || (probe && hello.name === server.channel + HANDSHAKE.standbySuffix);
    if (hello.version !== HANDSHAKE.version || (hello.kind !== HANDSHAKE.kindJoin && !probe && !this.statusAsked))
      status = HANDSHAKE.statusUnsupported;
    else if (!nameOk) status = HANDSHAKE.statusWrongChannel;
    else if (server.secret !== undefined && hello.memberNonce === undefined) status = HANDSHAKE.statusProofRequired;
    // Proofs that do not cover the connection (an older member's) would let a relay through.
    else if (server.secret !== undefined && (hello.flags & HANDSHAKE.flagBound) === 0) status = HANDSHAKE.statusUnsupported;
    // Only a host tells its status (an heir that does not host yet says so at once, never parks it).
    else if (this.statusAsked && !server.serving) status = HANDSHAKE.statusNotHost;
    // A host whose lease ended (a paused process waking up) serves nobody, not even a probe.
    if (server.lease !== undefined && !server.lease.held()) return this.reject(`our lease (epoch ${server.lease.epoch}) has ended`);
    if (status === HANDSHAKE.statusOk && probe) {
      // Someone checking that this address is alive (e.g. before reclaiming it): yes, and bye.
      socket.end(encodeReply(status, process.pid, server.id, server.proofs(hello, status, binding), server.lease?.epoch));
      this.finish();
      return this.closeWhenPeerDoes();
    }
    if (status === HANDSHAKE.statusOk && !server.serving) return this.park(hello, rest);
    if (status !== HANDSHAKE.statusOk) {
      socket.end(encodeReply(status, process.pid, server.id, undefined, server.lease?.epoch));
      return this.reject(`refused hello (status ${status}, name ${JSON.stringify(hello.name)})`);
    }
    if (server.secret === undefined || hello.memberNonce === undefined) {
      socket.write(encodeReply(status, process.pid, server.id, undefined, server.lease?.epoch));
      return this.statusAsked ? this.answerStatus() : this.admit(rest);
    }
    this.prepareProof(hello);
    const { hostNonce, hostProof, expected } = this.proof as NonNullable<HostHandshake["proof"]>;
    this.expectedProof = expected;
    socket.write(encodeReply(status, process.pid, server.id, { hostNonce, hostProof }, server.lease?.epoch));
    this.stage = "proof";
    this.parser = new ProofParser();
    return rest.length === 0 || this.push(rest);
  }

  /** An heir's server: the member waits, unanswered, for this process to hold the channel's address. */
  private park(hello: Hello, rest: Buffer): boolean {
    const { server, socket } = this;
    this.stage = "parked";
    this.prepareProof(hello);
    const entry: Parked = {
      resume: () => {
        this.parked = undefined;
        this.stage = "hello";
        this.onHello(hello, rest);
      },
      refuse: (why) => {
        this.parked = undefined;
        if (!socket.destroyed)
          socket.end(
            encodeReply(
              HANDSHAKE.statusNotHost,
              process.pid,
              server.id,
              server.proofs(hello, HANDSHAKE.statusNotHost, this.binding),
              server.lease?.epoch,
            ),
          );
        this.reject(`not the host (${why})`);
      },
    };
    this.parked = entry;
    // A connection accepted before close() whose hello came after: nobody will serve it.
    if (server.closeReason !== undefined) {
      entry.refuse(server.closeReason);
      return false;
    }
    server.park(entry);
    return true;
  }

  private prepareProof(hello: Hello): void {
    const { server } = this;
    if (this.proof !== undefined && this.proof.epoch === server.lease?.epoch) return;
    const host = server.proofs(hello, HANDSHAKE.statusOk, this.binding);
    if (host !== undefined)
      this.proof = { ...host, expected: computeProof(server.secret as Buffer, "member", host.transcript), epoch: host.transcript.epoch };
  }

  private admit(rest: Buffer): boolean {
    const { server, socket } = this;
    // The member's proof (and what followed it) may have waited for a paused process: checked again.
    if (server.lease !== undefined && !server.lease.held()) return this.reject(`our lease (epoch ${server.lease.epoch}) has ended`);
    this.finish();
    if (server.lease !== undefined) fence(socket, server);
    server.addMember(socket);
    if (rest.length > 0) this.originalPush.call(socket, rest);
    server.listener(socket);
    return true;
  }

  private answerStatus(): true {
    this.finish();
    const status = this.server.status();
    debug("channel %j: answered a status request (%d members)", this.server.channel, status.members);
    this.socket.end(encodeStatusBody(status));
    return this.closeWhenPeerDoes();
  }

  /**
   * After the last answer to a probe or a status request: read on (the return value is the push's:
   * true keeps the socket reading), so that the asker's end of the stream is seen and the socket
   * closes. Left unread, it would never learn that the asker left, and every address check would
   * leave an open socket behind.
   */
  private closeWhenPeerDoes(): true {
    this.socket.resume();
    return true;
  }

  private reject(reason: string): false {
    if (this.stage === "done") return false;
    if (this.parked !== undefined) this.server.unpark(this.parked);
    this.finish();
    debug("channel %j: closing a connection that failed the handshake: %s", this.server.channel, reason);
    this.socket.destroy();
    return false;
  }

  /** The handshake is over, one way or the other: the stream is the socket's own again. */
  private finish(): void {
    this.stage = "done";
    clearTimeout(this.timer);
    Reflect.deleteProperty(this.socket, "push");
  }
}

/**
 * Serves `socket` only while `lease` holds: the first read or write after it ended destroys the
 * connection instead. A process paused past its lease (a GC pause, SIGSTOP) may run the I/O that
 * waited for it before its own timers; this is what keeps it from serving then.
 */
function fence(socket: net.Socket, server: { readonly lease: Lease | undefined; readonly channel: string }): void {
  // The server's lease as it is at each call: one it got again after binding anew still serves.
  const held = (): boolean => server.lease?.held() !== false;
  const s = socket as net.Socket & {
    _write(chunk: unknown, encoding: BufferEncoding, cb: (err?: Error | null) => void): void;
    _writev?(chunks: unknown[], cb: (err?: Error | null) => void): void;
  };
  const push = s.push;
  const write = s._write;
  const writev = s._writev;
  const ended = (): Error => {
    const epoch = server.lease?.epoch;
    debug("channel %j: our lease (epoch %d) has ended: closing a member connection unserved", server.channel, epoch);
    s.destroy();
    return new Error(`the host's lease (epoch ${epoch}) has ended`);
  };
  s.push = function (this: net.Socket, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk !== null && !held()) {
      ended();
      return false;
    }
    return push.call(this, chunk, encoding);
  };
  s._write = function (this: net.Socket, chunk: unknown, encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (held()) write.call(this, chunk, encoding, cb);
    else process.nextTick(cb, ended());
  };
  if (writev !== undefined)
    s._writev = function (this: net.Socket, chunks: unknown[], cb: (err?: Error | null) => void): void {
      if (held()) writev.call(this, chunks, cb);
      else process.nextTick(cb, ended());
    };
}
