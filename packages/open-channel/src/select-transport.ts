import cluster from "node:cluster";
import { openChannelError, type Transport } from "@open-channel/core";

/**
 * The transports the umbrella knows, by name, with the package that provides each (`pkg`) and
 * that package's factory export (`factory`).
 *
 * @example
 * const { pkg, factory } = TRANSPORT_PACKAGES.tcp;
 * const transport = require(pkg)[factory](); // what loadTransport("tcp", name) does, cached
 */
export const TRANSPORT_PACKAGES = {
  /** Unix domain sockets: the choice on Linux, macOS and the BSDs. */
  unix: { pkg: "@open-channel/transport-unix", factory: "unixTransport" },
  /** Loopback TCP: the choice in Windows `cluster` workers; works everywhere. */
  tcp: { pkg: "@open-channel/transport-tcp", factory: "tcpTransport" },
  /** Windows named pipes: the choice on Windows outside `cluster` workers. */
  pipe: { pkg: "@open-channel/transport-pipe", factory: "pipeTransport" },
} as const;

/**
 * A transport name the umbrella can load: `"unix"`, `"tcp"` or `"pipe"`.
 *
 * @example
 * const name: TransportName = "tcp";
 * const transport = loadTransport(name, "jobs");
 */
export type TransportName = keyof typeof TRANSPORT_PACKAGES;

/**
 * What the automatic choice looks at; defaults to this process.
 *
 * @example
 * selectTransportName({ env: {}, platform: "win32", isClusterWorker: false }) // "pipe"
 */
export interface SelectionContext {
  /** Environment to read `OPEN_CHANNEL_TRANSPORT` from. Default: `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** The platform to choose for. Default: `process.platform`. */
  platform?: NodeJS.Platform;
  /** Whether the process is a `cluster` worker (PM2 cluster mode too). Default: `cluster.isWorker`. */
  isClusterWorker?: boolean;
}

/**
 * Picks the transport for this process:
 * - `OPEN_CHANNEL_TRANSPORT=unix|pipe|tcp` when set;
 * - else on Windows: `tcp` in a `cluster` worker (a worker cannot host a named-pipe server,
 *   PM2 cluster mode included), `pipe` otherwise;
 * - else (Linux, macOS, BSD): `unix`.
 *
 * Members of one channel must use the same transport to meet. On Unix-like systems every process
 * picks `unix`. On Windows, processes that are cluster workers pick `tcp` and others `pipe`: if
 * one channel mixes both kinds, set `OPEN_CHANNEL_TRANSPORT=tcp` for all of them.
 *
 * @example
 * selectTransportName({ platform: "win32", isClusterWorker: true }) // "tcp"
 */
export function selectTransportName(context: SelectionContext = {}): string {
  const env = context.env ?? process.env;
  const forced = env.OPEN_CHANNEL_TRANSPORT;
  if (forced !== undefined && forced !== "") return forced;
  const platform = context.platform ?? process.platform;
  if (platform !== "win32") return "unix";
  const worker = context.isClusterWorker ?? cluster.isWorker;
  return worker ? "tcp" : "pipe";
}

/** The transports this platform can use: unix and tcp; on Windows pipe and tcp. */
export function platformTransports(): string[] {
  return process.platform === "win32" ? ["pipe", "tcp"] : ["unix", "tcp"];
}

const cache = new Map<string, Transport>();

/**
 * Loads (once, lazily) and returns the transport named `name`, made by its package's factory with
 * default options. Throws `ERR_OPEN_CHANNEL_NO_TRANSPORT` for an unknown name and
 * `ERR_OPEN_CHANNEL_TRANSPORT_MISSING` (naming the package to install) when its package is not
 * installed; `channel` only goes into those messages.
 *
 * @example
 * const transport = loadTransport(selectTransportName(), "jobs");
 * const channel = openChannel("jobs", onConnection, { transport }); // what openChannel("jobs", onConnection) does
 */
export function loadTransport(name: string, channel: string): Transport {
  const cached = cache.get(name);
  if (cached !== undefined) return cached;
  if (!Object.hasOwn(TRANSPORT_PACKAGES, name)) {
    throw openChannelError("ERR_OPEN_CHANNEL_NO_TRANSPORT", { channel, transport: name, known: Object.keys(TRANSPORT_PACKAGES) });
  }
  const entry = TRANSPORT_PACKAGES[name as TransportName];
  let mod: Record<string, unknown>;
  try {
    mod = require(entry.pkg) as Record<string, unknown>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "MODULE_NOT_FOUND") throw err;
    throw openChannelError("ERR_OPEN_CHANNEL_TRANSPORT_MISSING", { channel, transport: name, pkg: entry.pkg, cause: err });
  }
  const transport = (mod[entry.factory] as () => Transport)();
  cache.set(name, transport);
  return transport;
}
