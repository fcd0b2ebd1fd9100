import { debug } from "./debug";
import { describeError, errorCode, isFatal, isOpenChannelError, OpenChannelError, openChannelError } from "./errors";
import type { Heir } from "./heir";
import type { Hosting } from "./hosting";
import { isNoHostCode, type Transport } from "./transport";

/** Backoff after a failure that needs time (never after one the OS already explained). */
const MIN_BACKOFF_MS = 1;
const MAX_BACKOFF_MS = 100;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** What the election needs of its channel. */
export interface ElectionChannel {
  readonly name: string;
  readonly transport: Transport;
  readonly heir: Heir;
  readonly hosting: Hosting;
  /** One connection attempt with the handshake (default: the channel's address); `undefined` once live. */
  connect(address?: string): Promise<Error | undefined>;
  /** Gives up: the channel closes with `err`. */
  fail(err: Error): void;
  /** The last connection error, which the timeout's message names. */
  lastError: Error | undefined;
}

/**
 * The election: until the channel is connected, connect; if nobody answers, host (bind the
 * channel's address exclusively: one process wins), then connect to ourselves. Retries at once
 * when the OS already said what happened, backs off only after a failure that needs time.
 *
 * `current()` turns false once the channel is connected, closed or connecting anew: the loop stops.
 * `afterLoss`: the host just vanished: ask the heir first, then try to host before connecting.
 */
export async function elect(channel: ElectionChannel, current: () => boolean, afterLoss: boolean): Promise<void> {
  const { name, heir, hosting } = channel;
  let backoff = 0;
  let takenInARow = 0;
  if (afterLoss && hosting.server === undefined) {
    if (!heir.standing) {
      // The heir (another member) is already listening at the standby address and is taking the
      // channel's address over right now: ask it first, and leave the election to it.
      const err = await channel.connect(heir.address);
      if (!current() || err === undefined) return;
      debug("channel %j: no heir took us (%s): electing", name, describeError(err));
    }
    // The host just vanished: most likely it died, so bind at once instead of first asking a
    // dead address. If it is alive after all, the bind loses and we connect to it below.
    const outcome = await hosting.tryHost();
    if (!current()) return;
    if (outcome instanceof Error && isFatal(outcome)) return channel.fail(fatalError(channel, outcome));
  }
  while (current()) {
    const err = await channel.connect();
    if (!current() || err === undefined) return;
    channel.lastError = err;
    if (isFatal(err)) return channel.fail(fatalError(channel, err));
    const handshake = isOpenChannelError(err, "ERR_OPEN_CHANNEL_HANDSHAKE");
    const stranger = handshake && err.stranger === true;
    // Something accepted us and never answered: a host too busy to, or a silent squatter on a
    // dead host's address. The transport's takeover tells them apart (it never takes a timeout
    // for death; over TCP on Linux, another user's listener is no host of ours).
    const unanswered = handshake && err.unanswered === true;
    if (isNoHostCode(channel.transport, errorCode(err)) || stranger || unanswered) {
      if (hosting.server !== undefined && !stranger && !unanswered) hosting.drop("our server no longer answers at the address");
      const outcome = await hosting.tryHost();
      if (!current()) return;
      // Bound, or someone else just bound: connect at once. (After a stranger, "taken" only
      // means the stranger is still there; and "taken" again and again means leftovers that the
      // transport cannot reclaim: wait before asking again, never spin.)
      if (outcome === "listening" || (outcome === "taken" && !stranger && !unanswered && takenInARow++ === 0)) {
        backoff = 0;
        continue;
      }
      if (outcome instanceof Error) {
        channel.lastError = outcome;
        if (isFatal(outcome)) return channel.fail(fatalError(channel, outcome));
      }
    }
    backoff = Math.min(MAX_BACKOFF_MS, Math.max(MIN_BACKOFF_MS, backoff * 2));
    const delay = backoff * (0.5 + Math.random() / 2);
    debug("channel %j: retrying in %s ms after %s", name, delay.toFixed(1), describeError(channel.lastError));
    await sleep(delay);
  }
}

/** A fatal error as the user sees it: ours as they are, the OS's as `ERR_OPEN_CHANNEL_ADDRESS`. */
function fatalError(channel: ElectionChannel, err: Error): Error {
  if (err instanceof OpenChannelError) return err;
  const { name, transport } = channel;
  return openChannelError("ERR_OPEN_CHANNEL_ADDRESS", {
    channel: name,
    transport: transport.name,
    address: transport.address?.(name),
    reason: err.message,
    errno: errorCode(err),
    cause: err,
  });
}
