import { debuglog } from "node:util";

/**
 * Debug output of every open-channel package. Enable it with `NODE_DEBUG=open-channel`.
 * Lines carry the pid, so the output of several processes can be read together.
 */
const log = debuglog("open-channel");

/**
 * Writes one debug line (`NODE_DEBUG=open-channel`) prefixed with the pid and a ms timestamp.
 * Takes `util.format` placeholders; costs nothing when debug output is off.
 *
 * @example
 * debug("my-transport: channel %j bound at %s", channel, file);
 */
export function debug(format: string, ...args: unknown[]): void {
  if (!log.enabled) return;
  log(`[%d %s] ${format}`, process.pid, (performance.timeOrigin + performance.now()).toFixed(1), ...args);
}

/**
 * True when debug output is on, to skip building expensive messages.
 *
 * @example
 * if (debugEnabled()) debug("state: %s", JSON.stringify(bigState));
 */
export function debugEnabled(): boolean {
  return log.enabled;
}
