import * as net from "node:net";
import { debug } from "./debug";
import { asError, type OpenChannelError, openChannelError } from "./errors";
import { HANDSHAKE, type HandshakeReply } from "./handshake";
import { MemberHandshake } from "./member-handshake";
import type { SocketBridge } from "./socket-bridge";
import type { Transport } from "./transport";

/** How long a member waits for the host's handshake reply before trying again. */
const HANDSHAKE_TIMEOUT_MS = 3000;

const REFUSALS: Record<number, string> = {
  [HANDSHAKE.statusWrongChannel]: "the host serves another channel at this address",
  [HANDSHAKE.statusUnsupported]: "the host refused our protocol version",
  [HANDSHAKE.statusProofRequired]: "the host requires the per-user proof: are all processes using the same transport?",
  [HANDSHAKE.statusNotHost]: "the heir does not host (the host is alive, or another process took over)",
};

/** What a {@link ConnectionAttempt} needs of its channel. */
export interface AttemptChannel {
  readonly name: string;
  readonly transport: Transport;
  readonly bridge: SocketBridge;
  /** Reads the transport's secret (a file replaced meanwhile is the one the host uses); may throw. */
  readSecret(): Buffer | undefined;
  /** The highest lease epoch this channel has seen a host tell (0: none). */
  readonly epoch: number;
  /** The host took us: the channel goes live on this connection. */
  accepted(reply: HandshakeReply): void;
}

/**
 * One connection attempt of a member: connect the channel's socket to an address through the
 * transport, say hello, read the host's reply. It settles once: `undefined` when the host took
 * us (the channel is live by then), else the first error it met, after the connection closed.
 * The socket reports the connection's events to the channel, which hands them here.
 *
 * ```
 * run --transport.connect--> connected() --hello--> bytes(reply) --accepted--> settled (undefined)
 *   any failure --abort(err)--> socket destroyed --closed()--> settled (the first error)
 * ```
 */
export class ConnectionAttempt {
  private resolve: ((err: Error | undefined) => void) | undefined;
  /** The first error met (a socket error, a refusal, a timeout): what the attempt settles with. */
  private error: Error | undefined;
  /** Our side of the handshake, once connected to the address. */
  private handshake: MemberHandshake | undefined;
  private timer: NodeJS.Timeout | undefined;
  private settled = false;
  /** The transport's connect(), while it has not settled. */
  private pending: Promise<void> | undefined;

  constructor(private readonly channel: AttemptChannel) {}

  /** Not settled yet. */
  get active(): boolean {
    return !this.settled;
  }

  /** Reading the host's handshake reply. */
  get handshaking(): boolean {
    return this.handshake !== undefined;
  }

  /** Connects to `address`: resolves `undefined` once live, else with the error. */
  run(address: string): Promise<Error | undefined> {
    const { bridge, transport } = this.channel;
    return new Promise((resolve) => {
      this.resolve = resolve;
      bridge.newConnection();
      let started: void | Promise<void>;
      const { secure } = transport;
      // With a secure layer the transport connects a plain socket, and the channel's socket runs
      // over the secure socket made from it (stream mode).
      let target: net.Socket = bridge.socket;
      if (secure === undefined) bridge.socket.expectConnect();
      else {
        target = new net.Socket().setNoDelay(true);
        bridge.socket.connectSecure(target, (connected) => secure.member(connected, address));
      }
      try {
        started = transport.connect(address, target);
      } catch (err) {
        // Stream mode has a connection under way on the channel's socket: end it as a failed one.
        if (target === bridge.socket) this.settle(asError(err));
        else this.abort(asError(err));
        return;
      }
      if (started !== undefined && typeof started.then === "function") {
        const pending = started;
        this.pending = pending;
        const done = (): void => {
          if (this.pending === pending) this.pending = undefined;
        };
        pending.then(done, done);
        started.then(undefined, (err: unknown) => {
          // Failed before connecting (a lookup that found no host): no connection to close. The
          // socket may still be destroyed from the last one, whose close was seen long ago.
          if (bridge.socket.destroyed && !bridge.socket.connecting) this.settle(asError(err));
          else this.abort(asError(err));
        });
      }
    });
  }

  /** The transport's connection is made: say hello, and wait for the reply. */
  connected(): void {
    if (this.settled) return;
    const { name, bridge } = this.channel;
    debug("channel %j: connected to the address, sending hello", name);
    this.timer = setTimeout(() => {
      this.abort(this.handshakeError(`no handshake reply within ${HANDSHAKE_TIMEOUT_MS} ms`, false, true));
    }, HANDSHAKE_TIMEOUT_MS);
    bridge.socket.startReading();
    let secret: Buffer | undefined;
    try {
      secret = this.channel.readSecret();
    } catch (err) {
      this.abort(asError(err));
      return;
    }
    this.handshake = new MemberHandshake(name, HANDSHAKE.kindJoin, secret);
    bridge.socket.rawWrite(this.handshake.hello(bridge.socket));
  }

  /** Bytes of the host's reply; returns whether to read on. */
  bytes(chunk: Buffer): boolean {
    const step = (this.handshake as MemberHandshake).feed(chunk);
    if (step.state === "more") return true;
    if (step.state === "stranger") {
      this.abort(this.handshakeError(step.reason, true));
      return false;
    }
    if (step.state === "refused") {
      // A host of another channel at our address (a reused TCP port) is a stranger to us.
      const { status } = step.reply;
      const stranger = status === HANDSHAKE.statusWrongChannel;
      this.abort(this.handshakeError(REFUSALS[status] ?? `the host refused us (status ${status})`, stranger));
      return false;
    }
    const { reply, answer, rest } = step;
    // Fencing: a host whose epoch is lower than one we saw held a lease that has ended since.
    if (reply.epoch !== undefined && reply.epoch < this.channel.epoch) {
      this.abort(this.handshakeError(`the host's lease epoch ${reply.epoch} is older than epoch ${this.channel.epoch}, seen before`));
      return false;
    }
    const { socket } = this.channel.bridge;
    if (answer !== undefined) socket.rawWrite(answer);
    this.settle(undefined);
    this.channel.accepted(reply);
    return rest.length === 0 || socket.rawPush(rest);
  }

  /** The connection failed: kept, the attempt settles with it once the connection is closed. */
  failed(err: Error): void {
    this.error ??= err;
  }

  /** The host ended the connection before its reply. */
  ended(): void {
    // Over TLS 1.3 a host that refuses this member's certificate does so after the member's side
    // of the TLS handshake is done: it only closes the connection.
    const secure = this.channel.transport.secure === undefined ? "" : " (over TLS: does the host trust this process's certificate?)";
    this.abort(this.handshakeError(`the host closed the connection during the handshake${secure}`));
  }

  /** The connection closed before the handshake was done. */
  closed(): void {
    this.settle(new Error("connection closed before the handshake"));
  }

  /** Ends the attempt: destroys the connection, whose close settles it (at once if already closed). */
  abort(err: Error): void {
    if (this.settled) return;
    this.channel.bridge.socket.endConnectWindow(this.pending);
    this.error ??= err;
    clearTimeout(this.timer);
    this.handshake = undefined;
    const { bridge } = this.channel;
    if (bridge.socket.destroyed && bridge.closeSeen) this.settle(this.error);
    else if (!bridge.socket.destroyed) bridge.destroy();
  }

  /** Settles, once: `undefined` (live) or the first error met (`err` when there was none). */
  settle(err: Error | undefined): void {
    if (this.settled) return;
    this.settled = true;
    this.channel.bridge.socket.endConnectWindow(this.pending);
    clearTimeout(this.timer);
    this.handshake = undefined;
    this.resolve?.(err === undefined ? undefined : (this.error ?? err));
  }

  /**
   * `stranger`: no host of ours at the address, so the election may reclaim it; `unanswered`: it
   * accepted the connection and never answered.
   */
  private handshakeError(reason: string, stranger = false, unanswered = false): OpenChannelError {
    const { name, transport } = this.channel;
    return openChannelError("ERR_OPEN_CHANNEL_HANDSHAKE", {
      channel: name,
      reason,
      transport: transport.name,
      address: transport.address?.(name),
      stranger,
      unanswered,
    });
  }
}
