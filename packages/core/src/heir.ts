import type * as net from "node:net";
import { debug, debugEnabled } from "./debug";
import { describeError } from "./errors";
import { HANDSHAKE } from "./handshake";
import { HostServer } from "./host";
import { hostSecure, leaseOf, type Transport } from "./transport";

/** After going live, a member waits this long (plus as much jitter) before offering to be the heir. */
const HEIR_DELAY_MS = 150;
/**
 * A member whose offer failed (another member stands by) offers again after this long (plus as
 * much jitter) while it is a plain member: when the heir leaves, one of the others takes its place.
 */
const HEIR_RETRY_MS = 1000;
/** An heir that is connected to a live host refuses a parked member after this long. */
const PARK_WHILE_CONNECTED_MS = 30;
/**
 * A new host keeps answering at the standby address this long after taking over (members still
 * in its backlog would be reset by a close), then frees it for the next heir.
 */
const STANDBY_GRACE_MS = 100;

/** What the heir needs of its channel. */
export interface HeirChannel {
  readonly name: string;
  readonly transport: Transport;
  /** The user's connection listener: the standby server serves it once this process hosts. */
  readonly listener: (socket: net.Socket) => void;
  /** The transport's secret, as the channel last read it. */
  secret(): Buffer | undefined;
  /** True while the channel is a connected member of `generation` that does not host. */
  isPlainMember(generation: number): boolean;
  /** True while the channel is connected (to whichever host). */
  isConnected(): boolean;
  /** `"heir"` `(true | false)`, on the next tick. */
  emitHeir(isHeir: boolean): void;
}

/**
 * A member's standing by as the channel's heir. A moment after it connects, it offers, at leisure,
 * to be the heir: it listens at the standby address (the channel's name plus a suffix, through the
 * same transport: exactly one process can), parking every hello there. When the host dies, the
 * other members connect to it at once instead of running an election: it takes the channel's
 * address over with that same server ({@link Heir.takeOver}) and answers them. A member that
 * reaches the standby address while the host lives is told to ask the main one.
 */
export class Heir {
  /** Where the heir listens. */
  readonly address: string;
  /** Set while this process is the heir: a server at the standby address, parking hellos. */
  private standby: HostServer | undefined;
  private standbyServer: net.Server | undefined;
  private offerTimer: NodeJS.Timeout | undefined;
  private parkTimer: NodeJS.Timeout | undefined;

  constructor(private readonly channel: HeirChannel) {
    this.address = channel.name + HANDSHAKE.standbySuffix;
  }

  /** True while this process stands by as the heir. */
  get standing(): boolean {
    return this.standby !== undefined;
  }

  /** The standby server, while this process is the heir: the server to host with. */
  get server(): HostServer | undefined {
    return this.standby;
  }

  /**
   * Offers to be the heir in 150-300 ms (`retry`: 1-2 s), if the channel is still a plain member of
   * `generation` then.
   */
  schedule(generation: number, retry = false): void {
    if (this.standby !== undefined) return;
    clearTimeout(this.offerTimer);
    this.offerTimer = setTimeout(
      () => {
        this.offerTimer = undefined;
        void this.offer(generation);
      },
      (retry ? HEIR_RETRY_MS : HEIR_DELAY_MS) * (1 + Math.random()),
    );
    this.offerTimer.unref();
  }

  private async offer(generation: number): Promise<void> {
    const { channel } = this;
    const stillMember = (): boolean => channel.isPlainMember(generation) && this.standby === undefined;
    if (!stillMember()) return;
    const standby = new HostServer(channel.name, channel.listener, channel.secret(), {
      serving: false,
      secure: hostSecure(channel.transport, channel.name),
    });
    const server = standby.createServer();
    let lease: ReturnType<typeof leaseOf>;
    try {
      lease = leaseOf(await channel.transport.listen(this.address, server));
    } catch (err) {
      standby.close("not the heir");
      debug("channel %j: not the heir: %s", channel.name, describeError(err));
      if (stillMember()) this.schedule(generation, true);
      return;
    }
    if (!stillMember()) {
      standby.close("no longer a member");
      return;
    }
    standby.onPark = () => this.onPark();
    // A standby address held with a lease (Redis): once it is lost, another member may stand by.
    lease?.onLost((reason) => {
      if (this.standby === standby) this.drop(`the standby lease is lost: ${reason}`);
    });
    this.standby = standby;
    this.standbyServer = server;
    channel.emitHeir(true);
    if (debugEnabled())
      debug("channel %j: heir, standing by at %s", channel.name, channel.transport.address?.(this.address) ?? "the standby address");
  }

  /**
   * A member reached us, the heir, while we are still connected to the host. Either we have not
   * noticed its death yet (the kernel closes a dead host's connections one by one), or it is alive
   * and only dropped that member: if it still answers us after a moment, send the member back.
   */
  private onPark(): void {
    if (!this.channel.isConnected() || this.parkTimer !== undefined) return;
    this.parkTimer = setTimeout(() => {
      this.parkTimer = undefined;
      if (this.channel.isConnected()) this.standby?.refuseParked("the host is alive");
    }, PARK_WHILE_CONNECTED_MS);
    this.parkTimer.unref();
  }

  /** Another process hosts: members parked on us go to the main address. We stay the heir. */
  sendBack(): void {
    this.standby?.refuseParked("another process hosts");
  }

  /**
   * The standby server `host` now holds the channel's address: it answers the members parked on
   * it, and frees the standby address a moment later for the next heir. No-op for another server.
   */
  takeOver(host: HostServer): void {
    if (this.standby !== host) return;
    clearTimeout(this.parkTimer);
    this.parkTimer = undefined;
    host.serve();
    const server = this.standbyServer as net.Server;
    setTimeout(() => host.closeServer(server), STANDBY_GRACE_MS).unref();
    this.standby = undefined;
    this.standbyServer = undefined;
    this.channel.emitHeir(false);
  }

  /** Stops standing by (and stops a pending offer): parked members are told to go to the main address. */
  drop(reason: string): void {
    clearTimeout(this.offerTimer);
    this.offerTimer = undefined;
    clearTimeout(this.parkTimer);
    this.parkTimer = undefined;
    if (this.standby === undefined) return;
    this.standby.close(reason);
    this.standby = undefined;
    this.standbyServer = undefined;
    this.channel.emitHeir(false);
  }
}
