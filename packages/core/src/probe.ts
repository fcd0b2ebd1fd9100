import * as net from "node:net";
import { errorCode } from "./errors";
import { HANDSHAKE } from "./handshake";
import { MemberHandshake } from "./member-handshake";
import { isNoHostCode, startConnect, type Transport } from "./transport";

/**
 * What {@link probeChannel} found at a channel's address: `live` (our host), `refused` (nobody
 * listens), `stranger` (something that is not our host) or `unknown` (a timeout or another error).
 *
 * @example
 * const verdict: ProbeVerdict = await probeChannel(transport, "jobs");
 * const dead = verdict === "refused" || verdict === "stranger"; // never on "unknown"
 */
export type ProbeVerdict = "live" | "refused" | "stranger" | "unknown";

/**
 * Connects to the channel's address through `transport` and runs the first half of the handshake
 * (with the host's proof when the transport has a secret), then hangs up.
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
  const secret = transport.secret?.(channel);
  // A connection reset before any answer is a listener that was closing as we connected (the
  // kernel closes a killed host's sockets one by one; the reset comes as its listener closes):
  // ask again at once rather than call it unknown. One that resets every time is alive.
  for (let attempt = 1; ; attempt++) {
    const verdict = await probeOnce(transport, channel, secret, timeoutMs);
    if (verdict !== "reset") return verdict;
    if (attempt >= 3) return "unknown";
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function probeOnce(transport: Transport, channel: string, secret: Buffer | undefined, timeoutMs: number): Promise<ProbeVerdict | "reset"> {
  return new Promise((resolve) => {
    const socket = new net.Socket().setNoDelay(true);
    const handshake = new MemberHandshake(channel, HANDSHAKE.kindProbe, secret);
    let settled = false;
    let answered = false;
    const done = (verdict: ProbeVerdict | "reset"): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(verdict);
    };
    const timer = setTimeout(() => done("unknown"), timeoutMs);
    socket.on("error", (err) => {
      const code = errorCode(err);
      const noHost = isNoHostCode(transport, code);
      const reset = !answered && (code === "ECONNRESET" || code === "EPIPE");
      done(noHost ? "refused" : reset ? "reset" : "unknown");
    });
    socket.on("close", () => done(answered ? "unknown" : "reset"));
    socket.on("connect", () => socket.write(handshake.hello(socket)));
    socket.on("data", (chunk: Buffer) => {
      answered = true;
      const step = handshake.feed(chunk);
      if (step.state !== "more") done(step.state === "accepted" ? "live" : "stranger");
    });
    startConnect(transport, channel, socket);
  });
}
