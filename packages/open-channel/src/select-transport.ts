import cluster from "node:cluster";
import { OpenChannelError, type Transport } from "@open-channel/core";

/** The transports the umbrella knows, by name, with the package that provides each. */
export const TRANSPORT_PACKAGES = {
  unix: { pkg: "@open-channel/transport-unix", factory: "unixTransport" },
  tcp: { pkg: "@open-channel/transport-tcp", factory: "tcpTransport" },
  pipe: { pkg: "@open-channel/transport-pipe", factory: "pipeTransport" },
} as const;

/** A transport name the umbrella can load. */
export type TransportName = keyof typeof TRANSPORT_PACKAGES;

/** What the automatic choice looks at; defaults to this process. */
export interface SelectionContext {
  env?: NodeJS.ProcessEnv;
  platform?: NodeJS.Platform;
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

const cache = new Map<string, Transport>();

/** Loads (once, lazily) and returns the transport named `name`. */
export function loadTransport(name: string, channel: string): Transport {
  const cached = cache.get(name);
  if (cached !== undefined) return cached;
  if (!Object.hasOwn(TRANSPORT_PACKAGES, name)) {
    throw new OpenChannelError(
      "ERR_OPEN_CHANNEL_NO_TRANSPORT",
      `open-channel "${channel}": unknown transport "${name}" (from OPEN_CHANNEL_TRANSPORT). Use one of: ${Object.keys(TRANSPORT_PACKAGES).join(", ")}.`,
      { channel },
    );
  }
  const entry = TRANSPORT_PACKAGES[name as TransportName];
  let mod: Record<string, unknown>;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require(entry.pkg) as Record<string, unknown>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "MODULE_NOT_FOUND") throw err;
    throw new OpenChannelError(
      "ERR_OPEN_CHANNEL_TRANSPORT_MISSING",
      `open-channel "${channel}": the ${name} transport is not installed (it installs only on the platforms it supports). Run: npm install ${entry.pkg}`,
      { channel, cause: err },
    );
  }
  const transport = (mod[entry.factory] as () => Transport)();
  cache.set(name, transport);
  return transport;
}
