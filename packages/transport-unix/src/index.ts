/**
 * `@open-channel/transport-unix`: open-channel over Unix domain sockets.
 *
 * @packageDocumentation
 */
import type * as net from "node:net";
import * as path from "node:path";
import { ensurePrivateDir, type Transport } from "@open-channel/core";
import { reclaimStaleSocket } from "./reclaim";
import { defaultSocketDir, socketFileName } from "./socket-path";

export { defaultSocketDir, maxSocketPathBytes, socketFileName } from "./socket-path";
export { ensurePrivateDir } from "@open-channel/core";
export { probe, reclaimStaleSocket, type ProbeResult } from "./reclaim";

/** Options of {@link unixTransport}. */
export interface UnixTransportOptions {
  /**
   * Directory for the socket files. It is created with mode 0700 if missing, and must be a
   * directory of this user that no one else can enter. Default: {@link defaultSocketDir}.
   */
  dir?: string;
}

/**
 * Unix domain sockets, one socket file per channel in a per-user private directory. Binding the
 * file is the election: a second bind gets `EADDRINUSE`. A file left by a SIGKILLed host is
 * reclaimed race-free (see {@link reclaimStaleSocket}).
 */
export class UnixTransport implements Transport {
  readonly name = "unix";
  /** The socket directory. */
  readonly dir: string;
  private readonly paths = new Map<string, string>();

  constructor(options: UnixTransportOptions = {}) {
    this.dir = path.resolve(options.dir ?? defaultSocketDir());
  }

  /** The socket file of `channel`. */
  socketPath(channel: string): string {
    let p = this.paths.get(channel);
    if (p === undefined) {
      p = path.join(this.dir, socketFileName(channel, this.dir));
      this.paths.set(channel, p);
    }
    return p;
  }

  address(channel: string): string {
    return this.socketPath(channel);
  }

  connect(channel: string, socket: net.Socket): void {
    socket.connect({ path: this.socketPath(channel) });
  }

  listen(channel: string, server: net.Server): Promise<void> {
    ensurePrivateDir(this.dir, channel);
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      server.once("error", onError);
      // exclusive: in a cluster worker, bind here instead of sharing the primary's handle.
      server.listen({ path: this.socketPath(channel), exclusive: true }, () => {
        server.off("error", onError);
        resolve();
      });
    });
  }

  reclaim(channel: string, server: net.Server): Promise<boolean> {
    return reclaimStaleSocket(this.socketPath(channel), () => this.listen(channel, server));
  }
}

/**
 * Creates the Unix socket transport.
 *
 * @example
 * const { openChannel } = require("@open-channel/core");
 * const { unixTransport } = require("@open-channel/transport-unix");
 * const channel = openChannel("jobs", onConnection, { transport: unixTransport({ dir: "/run/my-app" }) });
 */
export function unixTransport(options?: UnixTransportOptions): UnixTransport {
  return new UnixTransport(options);
}

export default unixTransport;
