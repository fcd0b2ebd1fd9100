import { randomBytes } from "node:crypto";
import * as net from "node:net";
import { debug } from "./debug";
import { computeProof, HANDSHAKE, type Hello, newNonce, type ProofTranscript } from "./handshake";
import { type HandshakeServer, HOST_HANDSHAKE_TIMEOUT_MS, HostHandshake, type Parked } from "./host-handshake";
import type { Lease } from "./transport";

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
  /** The host's script (`process.argv[1]`; under PM2 the app's, `pm_exec_path`), to tell which program hosts. */
  script: string;
  /** The handshake protocol version. */
  protocol: number;
}

/** How long a handing-over host lets its members' connections drain before it destroys them. */
const HAND_OVER_DRAIN_MS = 1000;

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
  /**
   * Set by the channel once this server holds the channel's address through a transport with
   * leases: replies tell its epoch, and member connections are served only while it holds.
   */
  lease: Lease | undefined;
  private orphaned = false;
  private serving: boolean;
  /** Why close() was called; undefined while open. */
  private closeReason: string | undefined;
  private readonly parked = new Set<Parked>();
  private readonly servers = new Set<net.Server>();
  /** What each connection's handshake needs of this server. */
  private readonly handshakeServer: HandshakeServer;
  /** The transport's secure layer (host side), if it has one. */
  private readonly secure: ((socket: net.Socket) => Promise<net.Socket>) | undefined;

  constructor(
    private readonly channel: string,
    listener: (socket: net.Socket) => void,
    private readonly secret: Buffer | undefined,
    options: { serving?: boolean; secure?: (socket: net.Socket) => Promise<net.Socket> } = {},
  ) {
    this.serving = options.serving ?? true;
    this.secure = options.secure;
    const host = this;
    this.handshakeServer = {
      channel,
      id: this.id,
      secret,
      listener,
      get serving() {
        return host.serving;
      },
      get closeReason() {
        return host.closeReason;
      },
      get lease() {
        return host.lease;
      },
      park: (entry) => {
        this.parked.add(entry);
        this.onPark?.();
      },
      unpark: (entry) => this.parked.delete(entry),
      proofs: (hello, status, binding) => this.proofs(hello, status, binding),
      addMember: (socket) => {
        this.members.add(socket);
        socket.once("close", () => this.members.delete(socket));
      },
      status: () => this.status(),
    };
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
    this.closeLeased();
  }

  /**
   * A server whose address is a lease (a port, a key in another system) has no path to unlink:
   * closing it frees its port, which a fixed port needs before this process can host again.
   */
  private closeLeased(): void {
    if (this.lease !== undefined) for (const server of [...this.servers]) this.closeServer(server);
  }

  /** Stops listening everywhere, refusing parked members; accepted members stay connected. */
  close(reason: string): void {
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
    this.closeLeased();
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
      epoch: this.lease?.epoch,
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
      // Under PM2 the process runs PM2's ProcessContainer.js, which loads the app's script.
      script: process.env.pm_exec_path ?? process.argv[1] ?? "",
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
    if (this.secure === undefined) {
      new HostHandshake(this.handshakeServer, socket);
      return;
    }
    // The secure layer first (bounded like the handshake), then the handshake over the secure socket.
    const timer = setTimeout(() => socket.destroy(), HOST_HANDSHAKE_TIMEOUT_MS).unref();
    this.secure(socket).then(
      (secure) => {
        clearTimeout(timer);
        if (socket.destroyed || secure.destroyed || this.orphaned) return void secure.destroy();
        secure.on("error", (err) => debug("channel %j: member connection error: %s", this.channel, err.message));
        new HostHandshake(this.handshakeServer, secure);
      },
      (err: unknown) => {
        clearTimeout(timer);
        debug("channel %j: closing a connection that failed the secure layer: %s", this.channel, (err as Error)?.message ?? err);
        socket.destroy();
      },
    );
  }
}
