import { describeError, errorCode, isOpenChannelError, openChannelError } from "./errors";
import { HANDSHAKE, type HandshakeReply, StatusBodyParser } from "./handshake";
import type { ChannelStatus } from "./host";
import { MemberHandshake } from "./member-handshake";
import { isNoHostCode, newConnection, type Transport } from "./transport";

export type { ChannelStatus } from "./host";

/**
 * Options of {@link queryChannelStatus}.
 *
 * @example
 * await queryChannelStatus(transport, "jobs", { timeoutMs: 500, heir: false });
 */
export interface StatusQueryOptions {
  /** Give up after this many ms (default 2000). */
  timeoutMs?: number;
  /** Also ask who stands by as the heir (default `true`). */
  heir?: boolean;
}

/**
 * {@link queryChannelStatus} found a host: its own status.
 *
 * @example
 * const result = await queryChannelStatus(transport, "jobs");
 * if (result.state === "hosted") console.log(result.status.pid, result.heirPid);
 */
export interface StatusHosted {
  /** Always `"hosted"`. */
  state: "hosted";
  /** What the host said about itself. */
  status: ChannelStatus;
  /** The member standing by to take over, if one does. */
  heirPid?: number;
}

/**
 * {@link queryChannelStatus} found nobody listening at the channel's address.
 *
 * @example
 * const result = await queryChannelStatus(transport, "jobs");
 * if (result.state === "no-host") console.log(`no host: ${result.reason}`);
 */
export interface StatusNoHost {
  /** Always `"no-host"`. */
  state: "no-host";
  /** Why there is none (the connect error, e.g. `connect ENOENT /tmp/...`). */
  reason: string;
}

/**
 * What {@link queryChannelStatus} found: the host's own status, or no host.
 *
 * @example
 * const result: StatusQueryResult = await channel.status();
 * console.log(result.state === "hosted" ? `pid ${result.status.pid}` : "no host");
 */
export type StatusQueryResult = StatusHosted | StatusNoHost;

const DEFAULT_TIMEOUT_MS = 2000;

/**
 * Asks a channel's host about itself through `transport`: its pid, server id, address, members
 * connected and uptime, and (unless `heir: false`) which member stands by as the heir. The host's
 * server answers by itself, before and apart from the user's connection listener; over transports
 * with a per-user secret both sides prove it first, so only processes of the same user get an
 * answer. Resolves `{ state: "no-host" }` when nobody listens at the channel's address; rejects with
 * an {@link OpenChannelError} (`ETIMEDOUT`, `ERR_OPEN_CHANNEL_HANDSHAKE`) when something answers
 * that is not our host, or too slowly.
 *
 * @example
 * const result = await queryChannelStatus(unixTransport(), "jobs");
 * if (result.state === "hosted") console.log(`pid ${result.status.pid} hosts with ${result.status.members} members`);
 */
export async function queryChannelStatus(
  transport: Transport,
  channel: string,
  options: StatusQueryOptions = {},
): Promise<StatusQueryResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const answer = await exchange(transport, channel, channel, HANDSHAKE.kindStatus, timeoutMs);
  if (answer.state === "no-host") return answer;
  const result: StatusQueryResult = { state: "hosted", status: answer.body as ChannelStatus };
  if (options.heir !== false) {
    // The heir's standby server answers probes of its address at once, with its own pid.
    const standby = channel + HANDSHAKE.standbySuffix;
    const heir = await exchange(transport, standby, standby, HANDSHAKE.kindProbe, timeoutMs).catch(() => undefined);
    if (heir?.state === "answered" && heir.reply.hostPid !== result.status.pid) result.heirPid = heir.reply.hostPid;
  }
  return result;
}

type Exchange = { state: "answered"; reply: HandshakeReply; body: unknown } | { state: "no-host"; reason: string };

/** One hello of `kind` to `address` (a channel name or the heir's standby name), with the proofs. */
function exchange(transport: Transport, address: string, name: string, kind: number, timeoutMs: number): Promise<Exchange> {
  const secret = transport.secret?.(name);
  const channel = name.endsWith(HANDSHAKE.standbySuffix) ? name.slice(0, -HANDSHAKE.standbySuffix.length) : name;
  return new Promise((resolve, reject) => {
    const { socket, start } = newConnection(transport, address);
    const handshake = new MemberHandshake(name, kind, secret);
    let bodyParser: StatusBodyParser | undefined;
    let reply: HandshakeReply | undefined;
    let settled = false;
    const settle = (outcome: Exchange | Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      // A transport that looks the address up first may call connect() after this: it must not
      // open a connection nobody reads.
      socket.connect = (() => socket) as typeof socket.connect;
      if (outcome instanceof Error) reject(outcome);
      else resolve(outcome);
    };
    /** `stranger`: what answered is not our host (no reply, or no or a wrong proof). */
    const fail = (reason: string, stranger = false): void =>
      settle(
        openChannelError("ERR_OPEN_CHANNEL_HANDSHAKE", {
          channel,
          reason,
          transport: transport.name,
          address: transport.address?.(address),
          stranger,
        }),
      );
    const timer = setTimeout(
      () => settle(openChannelError("ETIMEDOUT", { channel, waiting: "status", ms: timeoutMs, transport: transport.name })),
      timeoutMs,
    );
    socket.on("error", (err) => {
      if (isNoHostCode(transport, errorCode(err))) settle({ state: "no-host", reason: describeError(err) });
      else if (reply !== undefined && kind === HANDSHAKE.kindProbe) settle({ state: "answered", reply, body: undefined });
      else fail(describeError(err));
    });
    socket.on("close", () => {
      if (reply !== undefined && kind === HANDSHAKE.kindProbe) settle({ state: "answered", reply, body: undefined });
      else fail("the connection closed before the answer");
    });
    socket.on("connect", () => socket.write(handshake.hello(socket)));
    socket.on("data", (chunk: Buffer) => {
      if (reply === undefined) {
        const step = handshake.feed(chunk);
        if (step.state === "more") return;
        if (step.state === "stranger") return fail(step.reason, true);
        if (step.state === "refused") {
          if (step.reply.status === HANDSHAKE.statusNotHost)
            return settle({ state: "no-host", reason: "the process at this address does not host" });
          return fail(`the host refused the request (status ${step.reply.status})`);
        }
        reply = step.reply;
        if (step.answer !== undefined) socket.write(step.answer);
        if (kind === HANDSHAKE.kindProbe) return settle({ state: "answered", reply, body: undefined });
        bodyParser = new StatusBodyParser();
        chunk = step.rest;
        if (chunk.length === 0) return;
      }
      const body = (bodyParser as StatusBodyParser).feed(chunk);
      if (body.state === "more") return;
      if (body.state === "invalid") return fail(body.reason);
      settle({ state: "answered", reply, body: body.value });
    });
    start();
  });
}

/**
 * @internal Which server answers at `channel`'s address (a probe; where the transport has a secret,
 * the host's proof is checked with the secret as it is now): its id in hex, `"no-host"`, `"stranger"` (no reply, or no or a wrong
 * proof: not a host of ours, or one with another secret), or `undefined` when unsure (a timeout,
 * another error: never act on it).
 */
export async function answeringServer(transport: Transport, channel: string, timeoutMs: number): Promise<string | undefined> {
  try {
    const answer = await exchange(transport, channel, channel, HANDSHAKE.kindProbe, timeoutMs);
    return answer.state === "no-host" ? "no-host" : answer.reply.serverId.toString("hex");
  } catch (err) {
    return isOpenChannelError(err, "ERR_OPEN_CHANNEL_HANDSHAKE") && err.stranger === true ? "stranger" : undefined;
  }
}
