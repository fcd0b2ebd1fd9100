import type * as net from "node:net";
import { tryLock, waitForRelease } from "./lock";

/**
 * What every transport's `listen` needs, written once: an exclusive listen, and the election of one
 * binder per address under a lock.
 */

/**
 * `server.listen(options)` as a promise, always `exclusive`: a cluster worker must own its handle,
 * not share the primary's (which would make every worker the host). Rejects with listen's error
 * (`EADDRINUSE` when the address is taken).
 *
 * @example
 * await listenExclusive(server, { path: "/run/my-app/c.jobs.sock" });
 */
export function listenExclusive(server: net.Server, options: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ ...options, exclusive: true }, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/**
 * An error as `listen()` makes it when the address is taken (`EADDRINUSE`): the channel connects to
 * whoever holds it. `what` says which address and why.
 *
 * @example
 * throw addressInUse("/run/my-app/c.jobs.port names a live host");
 */
export function addressInUse(what: string): NodeJS.ErrnoException {
  const err = new Error(`listen EADDRINUSE: ${what}`) as NodeJS.ErrnoException;
  err.code = "EADDRINUSE";
  return err;
}

/** How long a process waits for another one's bind before it simply connects again. */
const WAIT_FOR_ADDRESS_LOCK_MS = 250;

/**
 * Runs `bind` holding the lock of one address (`lockPath`, a file in the private folder: see
 * `tryLock`), so that only one process at a time looks at the address and binds it. A process that
 * finds the lock taken waits until it is let go (the other one listens by then, or found a live
 * host), at most `waitMs`, and rejects with `EADDRINUSE` naming `address`: it connects.
 *
 * @example
 * await withAddressLock(`${socketPath}.lock`, socketPath, async () => {
 *   // no other process binds socketPath meanwhile
 *   await listenExclusive(server, { path: socketPath });
 * });
 */
export async function withAddressLock<T>(
  lockPath: string,
  address: string,
  bind: () => Promise<T>,
  waitMs = WAIT_FOR_ADDRESS_LOCK_MS,
): Promise<T> {
  const lock = await tryLock(lockPath);
  if (lock === undefined) {
    await waitForRelease(lockPath, waitMs);
    throw addressInUse(`${address} is being bound by another process`);
  }
  try {
    return await bind();
  } finally {
    lock.release();
  }
}
