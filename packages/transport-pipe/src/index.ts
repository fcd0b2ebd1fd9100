/**
 * `@open-channel/transport-pipe`: open-channel over Windows named pipes.
 *
 * @packageDocumentation
 */
import * as fs from "node:fs";
import type * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import {
  type ChannelEntry,
  channelsFromNames,
  defaultPrivateDir,
  ensurePrivateDir,
  escapeName,
  hashName,
  listenExclusive,
  readOrCreateSecret,
  type Transport,
} from "@open-channel/core";

/**
 * Options of {@link pipeTransport}.
 *
 * @example
 * const transport = pipeTransport({ dir: "C:\\ProgramData\\my-app", user: "svc-my-app" });
 */
export interface PipeTransportOptions {
  /** Directory of the per-user secret. Default: `<os.tmpdir()>/open-channel` (per user on Windows). */
  dir?: string;
  /** User part of the pipe name. Default: the OS user name. */
  user?: string;
}

/** Windows allows pipe names up to 256 characters after `\\.\pipe\`; keep well inside. */
const MAX_NAME_CHARS = 200;

/**
 * The pipe path of a channel: `\\?\pipe\open-channel\<user>\c.<escaped name>`, or
 * `...\h.<sha256 prefix>` when too long. Safe for any channel name: backslashes and every other
 * special character are escaped, so a name can never reach another user's or program's pipe.
 *
 * @example
 * pipeName("jobs", "alice") // "\\\\?\\pipe\\open-channel\\alice\\c.jobs"
 */
export function pipeName(channel: string, user: string): string {
  const prefix = `\\\\?\\pipe\\open-channel\\${escapeName(user)}\\`;
  const readable = `c.${escapeName(channel)}`;
  if (prefix.length + readable.length <= MAX_NAME_CHARS) return prefix + readable;
  return `${prefix}h.${hashName(channel)}`;
}

function currentUser(): string {
  try {
    return os.userInfo().username;
  } catch {
    return process.env.USERNAME ?? process.env.USER ?? "user";
  }
}

/**
 * Windows named pipes. libuv creates a pipe server with FILE_FLAG_FIRST_PIPE_INSTANCE, so a second
 * server on the same name gets `EADDRINUSE`: the election is the bind, as on Unix. A pipe vanishes
 * with its server process, so there is nothing stale to reclaim. Pipes are reachable by other
 * local users (read access by default), so every connection runs the per-user proof.
 *
 * A `cluster` worker cannot host a named-pipe server on Windows: the `open-channel` package uses
 * the TCP transport in cluster workers.
 *
 * @example
 * const transport = new PipeTransport(); // the same as pipeTransport()
 * const channel = openChannel("jobs", onConnection, { transport });
 */
export class PipeTransport implements Transport {
  readonly name = "pipe";
  /**
   * Directory of the per-user secret (absolute).
   *
   * @example
   * pipeTransport({ dir: "secrets" }).dir // "C:\\app\\secrets" when run from C:\app
   */
  readonly dir: string;
  /**
   * User part of the pipe names: processes of different users never share a pipe.
   *
   * @example
   * pipeTransport().user // os.userInfo().username, e.g. "alice"
   */
  readonly user: string;

  /**
   * Creates the transport; {@link pipeTransport} does the same.
   *
   * @param options - where the secret lives and whose pipes to use
   */
  constructor(options: PipeTransportOptions = {}) {
    this.dir = path.resolve(options.dir ?? defaultPrivateDir());
    this.user = options.user ?? currentUser();
  }

  /**
   * The pipe path of `channel` (see {@link pipeName}).
   *
   * @example
   * pipeTransport({ user: "alice" }).pipePath("jobs") // "\\\\?\\pipe\\open-channel\\alice\\c.jobs"
   */
  pipePath(channel: string): string {
    return pipeName(channel, this.user);
  }

  address(channel: string): string {
    return this.pipePath(channel);
  }

  secret(channel: string): Buffer {
    ensurePrivateDir(this.dir, channel);
    return readOrCreateSecret(this.dir, channel);
  }

  connect(channel: string, socket: net.Socket): void {
    socket.connect({ path: this.pipePath(channel) });
  }

  /**
   * The channels with a pipe of this user's (Windows lists every pipe under `\\.\pipe\`).
   *
   * @example
   * for (const { name, address } of pipeTransport().channels()) console.log(name, address);
   */
  channels(): ChannelEntry[] {
    if (process.platform !== "win32") return [];
    const prefix = pipeName("x", this.user).slice("\\\\?\\pipe\\".length, -"c.x".length);
    let pipes: string[];
    try {
      pipes = fs.readdirSync("\\\\.\\pipe\\");
    } catch {
      return [];
    }
    const mine = pipes.filter((p) => p.startsWith(prefix)).map((p) => p.slice(prefix.length));
    return channelsFromNames(mine, "", (file) => `\\\\?\\pipe\\${prefix}${file}`);
  }

  listen(channel: string, server: net.Server): Promise<void> {
    return listenExclusive(server, { path: this.pipePath(channel) });
  }
}

/**
 * Creates the Windows named-pipe transport.
 *
 * @example
 * const { openChannel } = require("@open-channel/core");
 * const { pipeTransport } = require("@open-channel/transport-pipe");
 * const channel = openChannel("jobs", onConnection, { transport: pipeTransport() });
 */
export function pipeTransport(options?: PipeTransportOptions): PipeTransport {
  return new PipeTransport(options);
}

export default pipeTransport;
