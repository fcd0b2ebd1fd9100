import { randomBytes } from "node:crypto";
import * as net from "node:net";
import { debug } from "./debug";
import {
  computeProof,
  encodeReply,
  encodeStatusBody,
  endpointBinding,
  HANDSHAKE,
  type Hello,
  HelloParser,
  newNonce,
  ProofParser,
  type ProofTranscript,
  proofsEqual,
} from "./handshake";

/**
 * What a channel's host says about itself when asked (`open-channel status NAME`, or
 * `queryChannelStatus`): answered by the host's server, never by the user's listener.
 *
 * @example
 * const result = await channel.status();
 * if (result.state === "hosted") {
 *   const s: ChannelStatus = result.status;
 *   console.log(`${s.channel}: pid ${s.pid} over ${s.transport}, ${s.members} members, up ${s.uptimeMs} ms`);
 * }
 */
export interface ChannelStatus {
  /** The channel's name. */
  channel: string;
  /** The hosting process. */
  pid: number;
  /** The host's server instance (changes with every new host, even in the same process). */
  serverId: string;
  /** The transport's name (`"unix"`, `"tcp"`, `"pipe"` or a custom one). */
  transport: string;
  /** The channel's address through that transport. */
  address: string;
  /** Member connections that passed the handshake, the host's own included. */
  members: number;
  /** When this process started hosting (ms since the epoch). */
  since: number;
  /** How long it has hosted, in ms, when it answered. */
  uptimeMs: number;
  /** The host's Node.js version. */
  node: string;
  /** The host's script (`process.argv[1]`), to tell which program hosts. */
  script: string;
  /** The handshake protocol version. */
  protocol: number;
}

/** How long a handing-over host lets its members' connections drain before it destroys them. */
const HAND_OVER_DRAIN_MS = 1000;

/** How long the host waits for a member's hello (and proof) before closing the connection. */
export const HOST_HANDSHAKE_TIMEOUT_MS = 3000;

type PushFn = (chunk: unknown, encoding?: BufferEncoding) => boolean;

/** A member whose hello waits for this server to start serving (see {@link HostServer.serve}). */
interface Parked {
  resume(): void;
  refuse(reason: string): void;
}

/**
 * The server a hosting process runs inside itself. Every accepted connection first passes the
 * handshake (and the proof, when the transport has a secret); only then does it reach the user's
 * connection listener, with any bytes that followed still unread in the socket, so the user sees
 * exactly what the member wrote. A connection that fails is closed with a reason in the debug log
 * and never seen by the listener.
 *
 * The server is unref'ed: hosting never keeps a process alive by itself.
 *
 * An heir's server (created with `serving: false`) listens before its process hosts: hellos that
 * arrive are parked, unanswered, until {@link HostServer.serve} (this process now holds the
 * channel's address) or {@link HostServer.refuseParked} (it does not: the member is told to ask
 * the main address).
 */
export class HostServer {
  /** Random id of this server instance: members learn it in the handshake. */
  readonly id: Buffer = randomBytes(8);
  /** Connections that passed the handshake. */
  readonly members = new Set<net.Socket>();
  /** Called when a hello is parked (only while not serving). */
  onPark: (() => void) | undefined;
  /** Set by the channel once this server holds the channel's address: what status requests get. */
  hosting: { transport: string; address: () => string; since: number } | undefined;
  private orphaned = false;
  private serving: boolean;
  private closed = false;
  private closeReason = "";
  private readonly parked = new Set<Parked>();
  private readonly servers = new Set<net.Server>();

  constructor(
    private readonly channel: string,
    private readonly listener: (socket: net.Socket) => void,
    private readonly secret: Buffer | undefined,
    options: { serving?: boolean } = {},
  ) {
    this.serving = options.serving ?? true;
  }

  /** Another listening server whose connections this host admits the same way (unref'ed). */
  createServer(): net.Server {
    const server = net.createServer((socket) => this.accept(socket));
    server.on("error", (err) => debug("channel %j: host server error: %s", this.channel, err.message));
    server.unref();
    this.servers.add(server);
    return server;
  }

  /** Stops listening on `server` (connections it accepted stay). */
  closeServer(server: net.Server): void {
    if (!this.servers.delete(server)) return;
    if (server.listening) server.close();
  }

  /** Starts answering hellos, the parked ones first. */
  serve(): void {
    if (this.serving) return;
    this.serving = true;
    const parked = [...this.parked];
    this.parked.clear();
    for (const p of parked) p.resume();
  }

  /** Tells every parked member that this process is not the host (they ask the main address). */
  refuseParked(reason: string): void {
    const parked = [...this.parked];
    this.parked.clear();
    for (const p of parked) p.refuse(reason);
  }

  /**
   * Stops hosting for good: stops listening, refuses parked members and ends every member's
   * connection (what the listener wrote is flushed first), so that they elect a new host at once.
   */
  handOver(reason: string): void {
    debug("channel %j: handing over (%s): %d member connection(s) end", this.channel, reason, this.members.size);
    this.close(reason);
    for (const socket of this.members) {
      socket.end();
      // A member that never reads must not keep the connection (and this process) around.
      setTimeout(() => socket.destroy(), HAND_OVER_DRAIN_MS).unref();
    }
  }

  /**
   * Another server owns the channel's address now: stops serving and ends every member's
   * connection as {@link HostServer.handOver} does, so that they join that server, but leaves the
   * listening handles open (unreachable, unref'ed): closing a Unix server unlinks its path, which
   * is the other server's file now.
   */
  stepAside(reason: string): void {
    debug("channel %j: stepping aside (%s): %d member connection(s) end", this.channel, reason, this.members.size);
    this.orphaned = true;
    this.refuseParked(reason);
    for (const socket of this.members) {
      socket.end();
      setTimeout(() => socket.destroy(), HAND_OVER_DRAIN_MS).unref();
    }
  }

  /** Stops listening everywhere, refusing parked members; accepted members stay connected. */
  close(reason: string): void {
    this.closed = true;
    this.closeReason = reason;
    this.refuseParked(reason);
    for (const server of [...this.servers]) this.closeServer(server);
  }

  /**
   * Stops serving without closing the listening handle. Used when another server owns the address
   * now: closing a Unix server unlinks its socket path, which would be the new host's file.
   */
  orphan(): void {
    if (this.orphaned) return;
    this.orphaned = true;
    debug("channel %j: our server %s is orphaned (another host owns the address)", this.channel, this.id.toString("hex"));
    this.refuseParked("orphaned");
    for (const socket of this.members) socket.destroy();
    this.members.clear();
  }

  /**
   * The host's proof for a reply of `status` to a hello that carries a nonce (none without a
   * secret), and the exchange it covers (the member proves the same). `binding`: the connection's
   * endpoints.
   */
  private proofs(
    hello: Hello,
    status: number,
    binding: string,
  ): { hostNonce: Buffer; hostProof: Buffer; transcript: ProofTranscript } | undefined {
    if (this.secret === undefined || hello.memberNonce === undefined) return undefined;
    const hostNonce = newNonce();
    const transcript = {
      kind: hello.kind,
      name: hello.name,
      memberNonce: hello.memberNonce,
      hostNonce,
      status,
      hostPid: process.pid,
      serverId: this.id,
      binding,
    };
    return { hostNonce, hostProof: computeProof(this.secret, "host", transcript), transcript };
  }

  /** This host's status, as a status request gets it. */
  status(): ChannelStatus {
    const hosting = this.hosting ?? { transport: "unknown", address: () => "", since: Date.now() };
    return {
      channel: this.channel,
      pid: process.pid,
      serverId: this.id.toString("hex"),
      transport: hosting.transport,
      address: hosting.address(),
      members: this.members.size,
      since: hosting.since,
      uptimeMs: Date.now() - hosting.since,
      node: process.version,
      script: process.argv[1] ?? "",
      protocol: HANDSHAKE.version,
    };
  }

  private accept(socket: net.Socket): void {
    if (this.orphaned) {
      socket.destroy();
      return;
    }
    // Hosting never keeps a process alive: once its own work is done, it may exit, and the
    // members elect a new host at once.
    socket.unref();
    // No Nagle on TCP (a no-op on pipes): an IPC message must not wait for the ACK of the one before.
    socket.setNoDelay(true);
    // A member that dies must never crash the host: keep an error listener for the socket's life.
    socket.on("error", (err) => debug("channel %j: member connection error: %s", this.channel, err.message));
    const originalPush = socket.push as PushFn;
    let stage: "hello" | "parked" | "proof" | "done" = "hello";
    let parkedEntry: Parked | undefined;
    let parser: HelloParser | ProofParser = new HelloParser();
    let expectedProof: Buffer | undefined;
    /** A status request: after the proof (if any) it gets the status, never the listener. */
    let statusAsked = false;
    // The endpoints as they are now: the proofs are good for this connection only.
    const binding = endpointBinding(socket, "host");
    const timer = setTimeout(() => reject(`no ${stage} within ${HOST_HANDSHAKE_TIMEOUT_MS} ms`), HOST_HANDSHAKE_TIMEOUT_MS);
    timer.unref();

    /** The handshake is over, one way or the other: the stream is the socket's own again. */
    const finish = (): void => {
      stage = "done";
      clearTimeout(timer);
      Reflect.deleteProperty(socket, "push");
    };

    const reject = (reason: string): false => {
      if (stage === "done") return false;
      if (parkedEntry !== undefined) this.parked.delete(parkedEntry);
      finish();
      debug("channel %j: closing a connection that failed the handshake: %s", this.channel, reason);
      socket.destroy();
      return false;
    };

    const answerStatus = (): false => {
      finish();
      debug("channel %j: answered a status request (%d members)", this.channel, this.members.size);
      socket.end(encodeStatusBody(this.status()));
      return false;
    };

    const admit = (rest: Buffer): boolean => {
      finish();
      this.members.add(socket);
      socket.once("close", () => this.members.delete(socket));
      if (rest.length > 0) originalPush.call(socket, rest);
      this.listener(socket);
      return true;
    };

    // The proof exchange for this connection: computed once, before parking when parked (the heir
    // has time then; once it hosts, it only writes).
    let proof: { hostNonce: Buffer; hostProof: Buffer; expected: Buffer } | undefined;
    const prepareProof = (hello: Hello): void => {
      if (proof !== undefined) return;
      const host = this.proofs(hello, HANDSHAKE.statusOk, binding);
      if (host !== undefined) proof = { ...host, expected: computeProof(this.secret as Buffer, "member", host.transcript) };
    };

    const onHello = (hello: Hello, rest: Buffer): boolean => {
      let status: number = HANDSHAKE.statusOk;
      const probe = hello.kind === HANDSHAKE.kindProbe;
      statusAsked = hello.kind === HANDSHAKE.kindStatus;
      // A probe names the address it checks: the channel's, or the heir's standby address.
      const nameOk = hello.name === this.channel || (probe && hello.name === this.channel + HANDSHAKE.standbySuffix);
      if (hello.version !== HANDSHAKE.version || (hello.kind !== HANDSHAKE.kindJoin && !probe && !statusAsked))
        status = HANDSHAKE.statusUnsupported;
      else if (!nameOk) status = HANDSHAKE.statusWrongChannel;
      else if (this.secret !== undefined && hello.memberNonce === undefined) status = HANDSHAKE.statusProofRequired;
      // Proofs that do not cover the connection (an older member's) would let a relay through.
      else if (this.secret !== undefined && (hello.flags & HANDSHAKE.flagBound) === 0) status = HANDSHAKE.statusUnsupported;
      // Only a host tells its status (an heir that does not host yet says so at once, never parks it).
      else if (statusAsked && !this.serving) status = HANDSHAKE.statusNotHost;
      if (status === HANDSHAKE.statusOk && probe) {
        // Someone checking that this address is alive (e.g. before reclaiming it): yes, and bye.
        socket.end(encodeReply(status, process.pid, this.id, this.proofs(hello, status, binding)));
        finish();
        return false;
      }
      if (status === HANDSHAKE.statusOk && !this.serving) {
        // An heir's server: the member waits for this process to hold the channel's address.
        stage = "parked";
        prepareProof(hello);
        parkedEntry = {
          resume: () => {
            parkedEntry = undefined;
            stage = "hello";
            onHello(hello, rest);
          },
          refuse: (why) => {
            parkedEntry = undefined;
            if (!socket.destroyed)
              socket.end(encodeReply(HANDSHAKE.statusNotHost, process.pid, this.id, this.proofs(hello, HANDSHAKE.statusNotHost, binding)));
            reject(`not the host (${why})`);
          },
        };
        // A connection accepted before close() whose hello came after: nobody will serve it.
        if (this.closed) {
          parkedEntry.refuse(this.closeReason);
          return false;
        }
        this.parked.add(parkedEntry);
        this.onPark?.();
        return true;
      }
      if (status !== HANDSHAKE.statusOk) {
        socket.end(encodeReply(status, process.pid, this.id));
        return reject(`refused hello (status ${status}, name ${JSON.stringify(hello.name)})`);
      }
      if (this.secret === undefined || hello.memberNonce === undefined) {
        socket.write(encodeReply(status, process.pid, this.id));
        return statusAsked ? answerStatus() : admit(rest);
      }
      prepareProof(hello);
      const { hostNonce, hostProof, expected } = proof as NonNullable<typeof proof>;
      expectedProof = expected;
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
      if (stage === "parked") return reject("bytes before the handshake reply");
      const result = parser.feed(chunk as Buffer);
      if (result.state === "more") return true;
      if (result.state === "invalid") return reject(result.reason);
      if (stage === "hello") return onHello(result.value as Hello, result.rest);
      if (!proofsEqual(result.value as Buffer, expectedProof as Buffer)) return reject("wrong proof (another user, or another secret)");
      return statusAsked ? answerStatus() : admit(result.rest);
    };
    (socket as unknown as { push: PushFn }).push = hook;
  }
}
