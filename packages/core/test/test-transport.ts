import { createHash } from "node:crypto";
import * as fs from "node:fs";
import type * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { type TlsLayerOptions, type Transport, tlsSecureLayer } from "@open-channel/core";

/**
 * A transport that exists only in the tests: plain Unix sockets in a temporary folder, no stale
 * reclaim, no safety checks. That core works with it proves transport injection is real.
 */
export function testTransport(
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "oc-core-")),
): Transport & { dir: string; path(channel: string): string } {
  // A digest: a name cut short would give a channel and its standby address (name + suffix) one file.
  const file = (channel: string): string => path.join(dir, `${createHash("sha256").update(channel).digest("hex").slice(0, 40)}.sock`);
  return {
    name: "test-unix",
    dir,
    path: file,
    address: file,
    listen: (channel, server) =>
      new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen({ path: file(channel), exclusive: true }, () => {
          server.off("error", reject);
          resolve();
        });
      }),
    connect: (channel, socket: net.Socket) => {
      socket.connect({ path: file(channel) });
    },
  };
}

/** The test PKI (test/fixtures/tls): `name` is "node" (signed by the CA) or "rogue" (by another CA). */
export function tlsFixture(name: "node" | "rogue" = "node", extra: Partial<TlsLayerOptions> = {}): TlsLayerOptions {
  const file = (f: string): Buffer => fs.readFileSync(path.join(__dirname, "fixtures", "tls", f));
  return { ca: file("ca.crt"), cert: file(`${name}.crt`), key: file(`${name}.key`), servername: "localhost", ...extra };
}

/** The test transport with TLS on every connection (core's TLS secure layer, mutual by default). */
export function secureTestTransport(
  options: TlsLayerOptions = tlsFixture(),
  dir?: string,
): Transport & { dir: string; path(channel: string): string } {
  return { ...testTransport(dir), name: "test-unix-tls", secure: tlsSecureLayer(options) };
}

/** A transport under which nobody can ever host: connects find nothing, binds find the address taken. */
export function deadEndTransport(): Transport {
  return {
    name: "dead-end",
    address: () => "/nonexistent/dead-end.sock",
    listen: () => Promise.reject(Object.assign(new Error("listen EADDRINUSE: address already in use"), { code: "EADDRINUSE" })),
    connect: (_channel, socket) => {
      socket.connect({ path: "/nonexistent/dead-end.sock" });
    },
  };
}

export function once<T = unknown>(emitter: NodeJS.EventEmitter, event: string): Promise<T> {
  return new Promise((resolve) => emitter.once(event, (value: T) => resolve(value)));
}

let counter = 0;
export function uniqueName(label: string): string {
  return `core-${label}-${process.pid}-${++counter}`;
}

/** Resolves once `check()` holds (polled every 5 ms); fails naming `what` after `ms`. */
export async function until(check: () => boolean, what: string, ms = 10000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
