import * as fs from "node:fs";
import { addressInUse, debug, probeAddress, withAddressLock } from "@open-channel/core";

/**
 * What a probe connect found at a socket path: `live` (a listener answered, or might: a full
 * backlog or a slow answer counts as live), `refused` (a socket file nobody listens on) or `gone`
 * (no file at that path).
 *
 * @example
 * const result: ProbeResult = await probe("/run/my-app/c.jobs.sock", "jobs");
 * if (result === "refused") console.log("a dead host's socket file");
 */
export type ProbeResult = "live" | "refused" | "gone";

/** How long a probe waits before it counts a silent listener as alive (never unlink on a guess). */
const PROBE_TIMEOUT_MS = 1000;

/**
 * Is a process listening on `socketPath`? `refused` means nobody listens on that file. With
 * `channel`, the probe asks the way open-channel hosts answer at once (a probe hello); without
 * it, a connection is enough. Core's `probeAddress` asks (and asks again after a reset by a dying
 * listener); anything but a refusal counts as live here: a full backlog (`EAGAIN`), a slow answer,
 * a strange one, or resets again and again.
 *
 * @example
 * await probe(unixTransport().socketPath("jobs"), "jobs") // "live", "refused" or "gone"
 */
export async function probe(socketPath: string, channel?: string): Promise<ProbeResult> {
  let gone = false;
  const verdict = await probeAddress({
    connect: (socket) => socket.connect({ path: socketPath }),
    channel,
    secret: undefined,
    isNoHost: (code) => {
      gone = code === "ENOENT";
      return gone || code === "ECONNREFUSED";
    },
    timeoutMs: PROBE_TIMEOUT_MS,
  });
  if (verdict !== "refused") return "live";
  return gone ? "gone" : "refused";
}

/**
 * The election for one socket path: binds `bind` there, exclusively and race-free, taking over a
 * dead host's file. Everything happens under one lock per path (see `tryLock` in core: a file in
 * the private folder, broken once its holder is dead; waiters wake as it is released):
 * - if no file is there, bind;
 * - if a file is there, probe it. Because every bind of this path happens under the same lock, no
 *   file can be between its bind() and its listen() while we hold it (a connect would be refused
 *   there exactly as by a dead host's file), and a socket file whose listener is gone never comes
 *   back to life. So a refusal now means a dead host: unlink it and bind.
 * When another process holds the lock, wait until it lets go (it listens by then, or found a live
 * host) and report `EADDRINUSE`: the caller connects.
 *
 * @returns once `bind` succeeded; rejects with `EADDRINUSE` when another process hosts.
 * @example
 * const server = net.createServer(onConnection);
 * await bindOrTakeOver(file, () => new Promise((resolve, reject) => {
 *   server.once("error", reject);
 *   server.listen({ path: file, exclusive: true }, () => resolve());
 * }), "jobs");
 */
export async function bindOrTakeOver(socketPath: string, bind: () => Promise<void>, channel?: string): Promise<void> {
  await withAddressLock(`${socketPath}.lock`, socketPath, async () => {
    // Look before binding: after a host's death its file is there, and a bind that must fail
    // would only cost a turn of the event loop.
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(socketPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    if (st !== undefined) {
      if (!st.isSocket()) {
        const err = new Error(`${socketPath} exists and is not a socket: refusing to remove it`) as NodeJS.ErrnoException;
        err.code = "EACCES";
        throw err;
      }
      if ((await probe(socketPath, channel)) !== "refused") throw addressInUse(`${socketPath} has a live host`);
      fs.unlinkSync(socketPath);
      debug("reclaimed the stale socket file %s", socketPath);
    }
    await bind();
  });
}
