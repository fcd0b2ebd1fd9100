/**
 * `@open-channel/transport-unix`: open-channel over Unix domain sockets.
 *
 * @packageDocumentation
 */
import * as fs from "node:fs";
import type * as net from "node:net";
import * as path from "node:path";
import { type ChannelEntry, channelsFromNames, ensurePrivateDir, listenExclusive, type Transport } from "@open-channel/core";
import { defaultSocketDir, socketFileName } from "./socket-path";
import { bindOrTakeOver } from "./take-over";

export { ensurePrivateDir } from "@open-channel/core";
export { defaultSocketDir, maxSocketPathBytes, socketFileName } from "./socket-path";
export { bindOrTakeOver, type ProbeResult, probe } from "./take-over";

function readdirOrEmpty(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

/**
 * Options of {@link unixTransport}.
 *
 * @example
 * const transport = unixTransport({ dir: "/run/my-app" }); // a 0700 directory of this user
 */
export interface UnixTransportOptions {
  /**
   * Directory for the socket files. It is created with mode 0700 if missing, and must be a
   * directory of this user that no one else can enter. Default: {@link defaultSocketDir}.
   */
  dir?: string;
}

/**
 * Unix domain sockets, one socket file per channel in a per-user private directory. Binding the
 * file is the election: a second bind gets `EADDRINUSE`. A file left by a SIGKILLed host is taken
 * over race-free within the same step (see {@link bindOrTakeOver}), so there is no `reclaim`.
 *
 * @example
 * const transport = new UnixTransport({ dir: "/run/my-app" }); // the same as unixTransport({ dir: "/run/my-app" })
 * const channel = openChannel("jobs", onConnection, { transport });
 */
export class UnixTransport implements Transport {
  readonly name = "unix";
  /**
   * The socket directory (absolute).
   *
   * @example
   * unixTransport().dir // e.g. "/run/user/1000/open-channel" (see defaultSocketDir)
   */
  readonly dir: string;
  private readonly paths = new Map<string, string>();

  /**
   * Creates the transport; {@link unixTransport} does the same.
   *
   * @param options - the socket directory
   */
  constructor(options: UnixTransportOptions = {}) {
    this.dir = path.resolve(options.dir ?? defaultSocketDir());
  }

  /**
   * The socket file of `channel` (see {@link socketFileName}).
   *
   * @example
   * unixTransport({ dir: "/run/my-app" }).socketPath("jobs") // "/run/my-app/c.jobs.sock"
   */
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
   * The channels with a socket file in {@link UnixTransport.dir} (this user's private folder).
   *
   * @example
   * for (const { name, address } of unixTransport().channels()) console.log(name, address);
   */
  channels(): ChannelEntry[] {
    return channelsFromNames(readdirOrEmpty(this.dir), ".sock", (file) => path.join(this.dir, file));
  }

  /**
   * Binds the channel's socket file exclusively, taking over a dead host's file race-free (see
   * {@link bindOrTakeOver}); rejects with `EADDRINUSE` when another process hosts.
   *
   * @example
   * const server = net.createServer(onConnection);
   * await unixTransport().listen("jobs", server); // rejects with code "EADDRINUSE" if another process hosts
   */
  async listen(channel: string, server: net.Server): Promise<void> {
    ensurePrivateDir(this.dir, channel);
    const socketPath = this.socketPath(channel);
    await bindOrTakeOver(socketPath, () => listenExclusive(server, { path: socketPath }), channel);
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
