/**
 * `@open-channel/transport-unix`: open-channel over Unix domain sockets.
 *
 * @packageDocumentation
 */
import type * as net from "node:net";
import * as path from "node:path";
import { ensurePrivateDir, type Transport, tryLock, waitForRelease } from "@open-channel/core";
import { lockPathOf, reclaimStaleSocket, WAIT_FOR_LOCK_MS } from "./reclaim";
import { defaultSocketDir, socketFileName } from "./socket-path";

export { defaultSocketDir, maxSocketPathBytes, socketFileName } from "./socket-path";
export { ensurePrivateDir } from "@open-channel/core";
export { probe, reclaimStaleSocket, type ProbeResult } from "./reclaim";

function addressInUse(socketPath: string): NodeJS.ErrnoException {
  const err = new Error(`listen EADDRINUSE: ${socketPath} is being bound by another process`) as NodeJS.ErrnoException;
  err.code = "EADDRINUSE";
  return err;
}

/** listen() on a Unix socket path; `exclusive` so that a cluster worker binds it itself. */
function bindExclusive(server: net.Server, socketPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once("error", onError);
    server.listen({ path: socketPath, exclusive: true }, () => {
      server.off("error", onError);
      resolve();
    });
  });
}

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

  /**
   * Binds under the channel's lock. Between a socket's bind() and its listen() a connect is
   * refused exactly as by a dead host's file; on a loaded machine a process can be preempted in
   * that gap. Because every bind happens under the lock, a reclaimer (which holds it) never takes
   * a file in that gap for a dead one.
   */
  async listen(channel: string, server: net.Server): Promise<void> {
    ensurePrivateDir(this.dir, channel);
    const socketPath = this.socketPath(channel);
    const lock = await tryLock(lockPathOf(socketPath));
    if (lock === undefined) {
      // Someone is binding or reclaiming right now: once they let go, there is a host to join.
      await waitForRelease(lockPathOf(socketPath), WAIT_FOR_LOCK_MS);
      throw addressInUse(socketPath);
    }
    try {
      await bindExclusive(server, socketPath);
    } finally {
      lock.release();
    }
  }

  reclaim(channel: string, server: net.Server): Promise<boolean> {
    ensurePrivateDir(this.dir, channel);
    const socketPath = this.socketPath(channel);
    return reclaimStaleSocket(socketPath, () => bindExclusive(server, socketPath));
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
