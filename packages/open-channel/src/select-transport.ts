import { OpenChannelError, type Transport } from "@open-channel/core";

/** The transports the umbrella knows, by name, with the package that provides each. */
const PACKAGES: Record<string, { pkg: string; factory: string }> = {
  unix: { pkg: "@open-channel/transport-unix", factory: "unixTransport" },
};

/**
 * Picks the transport for this process: `OPEN_CHANNEL_TRANSPORT` when set, else Unix domain sockets
 * on Unix-like systems. Only the chosen transport's package is loaded, lazily.
 */
export function selectTransportName(env: NodeJS.ProcessEnv = process.env): string {
  const forced = env.OPEN_CHANNEL_TRANSPORT;
  if (forced !== undefined && forced !== "") return forced;
  return "unix";
}

const cache = new Map<string, Transport>();

/** Loads (once) and returns the transport named `name`. */
export function loadTransport(name: string, channel: string): Transport {
  const cached = cache.get(name);
  if (cached !== undefined) return cached;
  const entry = PACKAGES[name];
  if (entry === undefined) {
    throw new OpenChannelError(
      "ERR_OPEN_CHANNEL_NO_TRANSPORT",
      `open-channel "${channel}": unknown transport "${name}" (from OPEN_CHANNEL_TRANSPORT). Use one of: ${Object.keys(PACKAGES).join(", ")}.`,
      { channel },
    );
  }
  let mod: Record<string, unknown>;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require(entry.pkg) as Record<string, unknown>;
  } catch (err) {
    throw new OpenChannelError(
      "ERR_OPEN_CHANNEL_TRANSPORT_MISSING",
      `open-channel "${channel}": the ${name} transport is not installed. Run: npm install ${entry.pkg}`,
      { channel, cause: err },
    );
  }
  const transport = (mod[entry.factory] as () => Transport)();
  cache.set(name, transport);
  return transport;
}
