import * as net from "node:net";
import { debug } from "./debug";
import { errorCode } from "./errors";
import { HANDSHAKE } from "./handshake";
import { MemberHandshake } from "./member-handshake";
import { isNoHostCode, newConnection, startConnect, type Transport } from "./transport";

/**
 * What {@link probeChannel} found at a channel's address: `live` (our host), `refused` (nobody
 * listens), `stranger` (something that is not our host) or `unknown` (a timeout or another error).
 *
 * @example
 * const verdict: ProbeVerdict = await probeChannel(transport, "jobs");
 * const dead = verdict === "refused" || verdict === "stranger"; // never on "unknown"
 */
export type ProbeVerdict = "live" | "refused" | "stranger" | "unknown";

/** How many times a probe asks, at most, when the listener resets the connection before any answer. */
const PROBE_TRIES = 3;

/**
 * Where and how {@link probeAddress} asks.
 *
 * @example
 * const target: ProbeTarget = { connect: (socket) => socket.connect({ path }), channel: "jobs", secret: undefined,
 *   isNoHost: (code) => code === "ENOENT" || code === "ECONNREFUSED", timeoutMs: 1000 };
 */
export interface ProbeTarget {
  /** Starts the connection on `socket`. */
  connect(socket: net.Socket): void;
  /** The channel to ask about with a probe hello; `undefined`: a connection alone is `live`. */
  channel: string | undefined;
  /** The secret our host proves itself with, if the transport has one. */
  secret: Buffer | undefined;
  /** Does this connection error mean that nobody listens there? */
  isNoHost(code: string | undefined): boolean;
  /** How long to wait for the answer before `unknown`. */
  timeoutMs: number;
  /** Opens the connection instead of `connect` (a transport with a secure layer). */
  open?(): OpenedConnection;
}

/**
 * A connection {@link ProbeTarget.open} made, not started yet.
 *
 * @example
 * const { socket, start } = target.open(); socket.on("connect", onConnect); start();
 */
export interface OpenedConnection {
  /** The socket to use: it emits `connect` once usable (over the secure layer, once secured). */
  socket: net.Socket;
  /** Starts connecting (once the caller's listeners are on). */
  start(): void;
}

/**
 * Connects to an address and runs the first half of the handshake (with the host's proof when
 * there is a secret), then hangs up: `live` (our host answered), `refused` (nobody listens),
 * `stranger` (an answer that is not our host's) or `unknown` (a timeout or another error).
 * A connection reset before any answer is a listener that was closing as we connected (the
 * kernel closes a killed host's sockets one by one; the reset comes as its listener closes): it
 * asks again at once, up to 3 times in all, then says `unknown`. Every probe of every transport
 * goes through here, with this one retry policy.
 *
 * @example
 * const verdict = await probeAddress({ connect: (s) => s.connect({ path }), channel: "jobs", secret: undefined,
 *   isNoHost: (code) => code === "ECONNREFUSED", timeoutMs: 1000 });
 */
export async function probeAddress(target: ProbeTarget): Promise<ProbeVerdict> {
  for (let attempt = 1; ; attempt++) {
    const verdict = await probeOnce(target);
    if (verdict !== "reset") return verdict;
    debug("probe of %s: reset before any answer (attempt %d)", target.channel ?? "an address", attempt);
    if (attempt >= PROBE_TRIES) return "unknown";
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * Connects to the channel's address through `transport` and runs the first half of the handshake
 * (with the host's proof when the transport has a secret), then hangs up (see {@link probeAddress}).
 * - `live`: our host answered (and proved itself);
 * - `refused`: nobody listens (`ENOENT`, `ECONNREFUSED` or the transport's `noHostCodes`);
 * - `stranger`: something answered that is not our host (wrong bytes or a failed proof);
 * - `unknown`: anything else, a timeout included. Never remove anything on `unknown`.
 *
 * For transports whose `reclaim` must tell a dead host's leftovers from a live host.
 *
 * @example
 * if ((await probeChannel(transport, "jobs")) === "refused") fs.rmSync(leftoverFile, { force: true });
 */
export async function probeChannel(transport: Transport, channel: string, timeoutMs = 1000): Promise<ProbeVerdict> {
  return probeAddress({
    connect: (socket) => startConnect(transport, channel, socket),
    open: transport.secure === undefined ? undefined : () => newConnection(transport, channel),
    channel,
    secret: transport.secret?.(channel),
    isNoHost: (code) => isNoHostCode(transport, code),
    timeoutMs,
  });
}

function probeOnce(target: ProbeTarget): Promise<ProbeVerdict | "reset"> {
  return new Promise((resolve) => {
    const opened = target.open?.();
    const socket = opened?.socket ?? new net.Socket().setNoDelay(true);
    const { channel } = target;
    const handshake = channel === undefined ? undefined : new MemberHandshake(channel, HANDSHAKE.kindProbe, target.secret);
    let settled = false;
    let answered = false;
    const done = (verdict: ProbeVerdict | "reset"): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(verdict);
    };
    const timer = setTimeout(() => done("unknown"), target.timeoutMs);
    socket.on("error", (err) => {
      const code = errorCode(err);
      const reset = !answered && (code === "ECONNRESET" || code === "EPIPE");
      done(target.isNoHost(code) ? "refused" : reset ? "reset" : "unknown");
    });
    socket.on("close", () => done(answered ? "unknown" : "reset"));
    socket.on("connect", () => {
      if (handshake === undefined) done("live");
      else socket.write(handshake.hello(socket));
    });
    socket.on("data", (chunk: Buffer) => {
      answered = true;
      const step = (handshake as MemberHandshake).feed(chunk);
      if (step.state !== "more") done(step.state === "accepted" ? "live" : "stranger");
    });
    if (opened === undefined) target.connect(socket);
    else opened.start();
  });
}
