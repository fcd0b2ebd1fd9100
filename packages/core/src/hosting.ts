import type * as net from "node:net";
import { debug, debugEnabled } from "./debug";
import { asError, describeError, errorCode } from "./errors";
import type { Heir } from "./heir";
import { HostServer } from "./host";
import { answeringServer } from "./status";
import { hostSecure, type Lease, leaseOf, type Transport } from "./transport";

/**
 * While hosting, how often this process checks that the channel's address still leads to its
 * server (a socket or port file removed, the secret replaced): within twice this, it binds the
 * address again or steps down.
 */
const ADDRESS_CHECK_MS = 500;

/** A try to host: `listening` (we host), `taken` (another process holds the address) or why not. */
export type HostOutcome = "listening" | "taken" | Error;

/** What binding the address gave: `listening` (with the transport's lease, if it has leases) or why not. */
type BindOutcome = { lease: Lease | undefined } | "taken" | Error;

/** What {@link Hosting} needs of its channel. */
export interface HostingChannel {
  readonly name: string;
  readonly transport: Transport;
  /** The user's connection listener, which our server serves. */
  readonly listener: (socket: net.Socket) => void;
  readonly heir: Heir;
  /** Reads the transport's secret (a file replaced meanwhile is the one the others use); may throw. */
  readSecret(): Buffer | undefined;
  /** `"hosting"` `(isHost)`, on the next tick. */
  emitHosting(isHost: boolean): void;
}

/**
 * This process's hosting of the channel: binding the channel's address with a server of ours (or
 * the heir's standby server), checking that the address still leads to it, and stopping.
 */
export class Hosting {
  private host: HostServer | undefined;

  constructor(private readonly channel: HostingChannel) {}

  /** The server this process hosts with; undefined while it does not host. */
  get server(): HostServer | undefined {
    return this.host;
  }

  /** Binds the channel's address. "taken": another process won, connect to it at once. */
  async tryHost(): Promise<HostOutcome> {
    const { name, transport, listener, heir } = this.channel;
    let secret: Buffer | undefined;
    try {
      // Read on every try: a secret file replaced meanwhile is the one the other processes use.
      secret = this.channel.readSecret();
    } catch (err) {
      return asError(err);
    }
    // The heir hosts with the server its members are already parked on. If it loses, it stays
    // the heir until it is connected to whoever won (see the channel's goLive).
    const standby = heir.server;
    // Not serving until the transport says the address is ours (a lease transport may claim it
    // after it binds, and wait before serving): members that come earlier wait, parked.
    const host = standby ?? new HostServer(name, listener, secret, { serving: false, secure: hostSecure(transport, name) });
    const outcome = await this.bindAddress(host);
    if (outcome !== "listening") {
      if (standby === undefined) host.close("this process did not get the address");
      return outcome;
    }
    if (standby === undefined) host.serve();
    this.host = host;
    this.watchAddress(host);
    this.watchLease(host);
    // The address is looked up only when someone asks (the TCP one reads the port file).
    host.hosting = { transport: transport.name, address: () => transport.address?.(name) ?? "", since: Date.now() };
    this.channel.emitHosting(true);
    // Hosting with the standby server: it answers the members parked on it, and the standby
    // address is freed for the next heir (a no-op for a server of our own).
    heir.takeOver(host);
    if (debugEnabled()) {
      const address = `${transport.name} ${transport.address?.(name) ?? ""}`.trim();
      debug("channel %j: hosting (%s, server %s%s)", name, address, host.id.toString("hex"), standby ? ", was the heir" : "");
    }
    return "listening";
  }

  /**
   * This process stops hosting. `handOver`: our server stops, its members' connections end and
   * they elect at once. `stepAside`: another server holds the channel's address; our members end
   * and join it, and our listening handles stay open (closing would unlink its file).
   */
  stop(reason: string, how: "handOver" | "stepAside" = "handOver"): void {
    if (this.host === undefined) return;
    debug("channel %j: no longer hosting: %s", this.channel.name, reason);
    if (how === "handOver") this.host.handOver(reason);
    else this.host.stepAside(reason);
    this.host = undefined;
    this.channel.emitHosting(false);
  }

  /** This process no longer hosts (another server answers at the address): its server serves on, orphaned. */
  drop(reason: string): void {
    debug("channel %j: no longer hosting: %s", this.channel.name, reason);
    if (this.host === undefined) return;
    this.host.orphan();
    this.host = undefined;
    this.channel.emitHosting(false);
  }

  private async bindAddress(host: HostServer): Promise<HostOutcome> {
    const bound = await this.bind(host);
    if (typeof bound === "string" || bound instanceof Error) return bound;
    // A transport with leases: replies tell the epoch, and connections are served while it holds.
    host.lease = bound.lease;
    return "listening";
  }

  private async bind(host: HostServer): Promise<BindOutcome> {
    const { name, transport } = this.channel;
    let server = host.createServer();
    try {
      return { lease: leaseOf(await transport.listen(name, server)) };
    } catch (err) {
      host.closeServer(server);
      if (errorCode(err) !== "EADDRINUSE") return asError(err);
      if (transport.reclaim === undefined) return "taken";
      // Leftovers of a dead host? The transport removes them race-free and binds in their place
      // (or waits for whoever does): exactly one process comes out hosting.
      server = host.createServer();
      try {
        const reclaimed = await transport.reclaim(name, server);
        if (reclaimed === false) {
          host.closeServer(server);
          return "taken";
        }
        return { lease: leaseOf(reclaimed) };
      } catch (reclaimErr) {
        host.closeServer(server);
        return asError(reclaimErr);
      }
    }
  }

  /** While `host` hosts with a lease: once the lease is lost, hand over (the members elect anew). */
  private watchLease(host: HostServer): void {
    const { lease } = host;
    lease?.onLost((reason) => {
      if (this.host !== host || host.lease !== lease) return;
      this.stop(`our lease (epoch ${lease.epoch}) is lost: ${reason}`);
    });
  }

  /**
   * While `host` hosts: does the channel's address still lead to it? A socket or port file
   * removed (a /tmp cleaner, a user) let the next process host too, and a replaced secret left
   * this host unable to prove itself to the others: two hosts for good. Nobody at the address:
   * bind it again (or, if another process did meanwhile, step down). Another server there, or
   * ours without the current secret's proof: step down, so our members join the one host.
   */
  private watchAddress(host: HostServer): void {
    // One timer per hosting: it stops itself once `host` no longer hosts here.
    let checking = false;
    const timer = setInterval(() => {
      if (this.host !== host) {
        clearInterval(timer);
        return;
      }
      if (checking) return;
      checking = true;
      void this.checkAddress(host).finally(() => {
        checking = false;
      });
    }, ADDRESS_CHECK_MS);
    timer.unref();
  }

  private async checkAddress(host: HostServer): Promise<void> {
    const { name, transport } = this.channel;
    const found = await answeringServer(transport, name, ADDRESS_CHECK_MS);
    if (this.host !== host || found === undefined || found === host.id.toString("hex")) return;
    if (found === "no-host") {
      debug("channel %j: our address is gone: binding it again", name);
      const outcome = await this.bindAddress(host);
      if (this.host !== host) return;
      if (outcome === "listening") return this.watchLease(host);
      return this.stop(`the channel's address was taken (${outcome instanceof Error ? describeError(outcome) : outcome})`, "stepAside");
    }
    // Our own server failing the current secret's proof: stop it (its address is ours to free).
    if (found === "stranger") return this.stop("our server no longer proves itself with the channel's secret");
    this.stop(`server ${found} answers at the channel's address`, "stepAside");
  }
}
