import * as assert from "node:assert/strict";
import { fork } from "node:child_process";
import * as net from "node:net";
import * as path from "node:path";
import { errorCode } from "./errors";
import { computeProof, encodeHello, HANDSHAKE } from "./handshake";
import { ProcessChannel } from "./process-channel";
import type { Transport } from "./transport";

/**
 * How to load a transport in a child process: a module, its factory, the factory's options.
 *
 * @example
 * const child: TransportModule = { module: require.resolve("@open-channel/transport-unix"), factory: "unixTransport", options: { dir } };
 */
export interface TransportModule {
  /** Absolute path (or resolvable id) of the module, e.g. `require.resolve("@open-channel/transport-unix")`. */
  module: string;
  /** Name of the exported factory, e.g. `"unixTransport"`. */
  factory: string;
  /** JSON-serialisable options for the factory. */
  options?: unknown;
}

/**
 * Options of {@link transportComplianceCases}.
 *
 * @example
 * const options: ComplianceOptions = {
 *   transport: () => unixTransport({ dir }),
 *   child: { module: require.resolve("@open-channel/transport-unix"), factory: "unixTransport", options: { dir } },
 * };
 */
export interface ComplianceOptions {
  /** Makes the transport under test (the same configuration every time). */
  transport: () => Transport;
  /**
   * How to build the same transport in a child process, to leave a SIGKILLed host's leftovers
   * behind. Without it the stale-leftovers case is skipped.
   */
  child?: TransportModule;
}

/**
 * One compliance case: run it in any test framework, it throws (node:assert) when it fails.
 *
 * @example
 * for (const c of transportComplianceCases({ transport: () => myTransport() })) {
 *   await c.run(); // throws an AssertionError naming what went wrong
 *   console.log(`ok: ${c.name}`);
 * }
 */
export interface ComplianceCase {
  /** What the case proves, as a test name: `"listen is exclusive: ..."`. */
  name: string;
  /** Runs the case: resolves when the transport passed, rejects when it failed. */
  run: () => Promise<void>;
}

let counter = 0;
const uniqueName = (label: string): string => `compliance-${label}-${process.pid}-${Date.now().toString(36)}-${++counter}`;

function listenOnce(transport: Transport, channel: string): Promise<net.Server> {
  // It reads (resume) so that it sees the other end close: a socket never read from never learns
  // its peer left and stays open, which kept test runs alive after their last test.
  const server = net.createServer((s) => s.resume().end());
  server.unref();
  return transport.listen(channel, server).then(() => server);
}

function connectOnce(transport: Transport, channel: string): Promise<{ socket: net.Socket; error?: Error }> {
  return new Promise((resolve) => {
    const socket = new net.Socket();
    socket.once("connect", () => resolve({ socket }));
    socket.once("error", (error) => resolve({ socket, error }));
    try {
      const started = transport.connect(channel, socket);
      if (started !== undefined) started.then(undefined, (error: Error) => resolve({ socket, error }));
    } catch (error) {
      resolve({ socket, error: error as Error });
    }
  });
}

/** Opens a channel over `transport` whose host echoes back; resolves once connected. */
async function openEcho(transport: Transport, channel: string, seen?: net.Socket[]): Promise<ProcessChannel> {
  const ch = new ProcessChannel(
    channel,
    (socket) => {
      seen?.push(socket);
      socket.pipe(socket);
    },
    { transport },
  );
  const socket = ch.connect(10000);
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("error", reject);
  });
  return ch;
}

function roundTrip(socket: net.Socket, text: string): Promise<string> {
  return new Promise((resolve) => {
    let got = "";
    const onData = (chunk: Buffer): void => {
      got += chunk.toString();
      if (got.length >= text.length) {
        socket.off("data", onData);
        resolve(got);
      }
    };
    socket.on("data", onData);
    socket.write(text);
  });
}

/**
 * Leaves the leftovers of a SIGKILLed host of `channel`, using a child process: it listens for
 * the channel through the transport `child` describes and is killed with SIGKILL.
 *
 * @example
 * await leaveStaleHost({ module: require.resolve("@open-channel/transport-unix"), factory: "unixTransport" }, "jobs");
 * // the next process that connects to "jobs" must take the dead host's socket file over
 */
export async function leaveStaleHost(child: TransportModule, channel: string): Promise<void> {
  const proc = fork(path.join(__dirname, "compliance-child.js"), [JSON.stringify({ ...child, channel })], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const msg = await new Promise<unknown>((resolve, reject) => {
    proc.once("message", resolve);
    proc.once("exit", (code) => reject(new Error(`the stale-host child exited early (code ${code})`)));
  });
  assert.equal(msg, "listening");
  const exited = new Promise((resolve) => proc.once("exit", resolve));
  proc.kill("SIGKILL");
  await exited;
}

/** How long a host may take to close a connection that failed the handshake (it takes ms). */
const CLOSE_BOUND_MS = 5000;

/**
 * The transport compliance suite: what every transport must do for the election and failover to
 * hold, as framework-agnostic cases (the js-libp2p pattern). Each transport package runs them in
 * its own tests:
 *
 * @example
 * import { transportComplianceCases } from "@open-channel/core/compliance";
 * describe("tcp transport compliance", () => {
 *   for (const c of transportComplianceCases({ transport: () => tcpTransport({ dir }) })) test(c.name, c.run);
 * });
 */
export function transportComplianceCases(options: ComplianceOptions): ComplianceCase[] {
  const cases: ComplianceCase[] = [
    {
      name: "listen is exclusive: a second listen on the same channel rejects with EADDRINUSE",
      run: async () => {
        const transport = options.transport();
        const channel = uniqueName("exclusive");
        const first = await listenOnce(transport, channel);
        try {
          await assert.rejects(listenOnce(transport, channel), (err: unknown) => errorCode(err) === "EADDRINUSE");
        } finally {
          first.close();
        }
      },
    },
    {
      name: "connect with nobody listening fails with a no-host code (ENOENT, ECONNREFUSED or noHostCodes)",
      run: async () => {
        const transport = options.transport();
        const { socket, error } = await connectOnce(transport, uniqueName("nobody"));
        socket.destroy();
        const code = errorCode(error);
        assert.ok(code !== undefined, `expected an error with a code, got ${String(error)}`);
        assert.ok(code === "ENOENT" || code === "ECONNREFUSED" || (transport.noHostCodes ?? []).includes(code), `unexpected code ${code}`);
      },
    },
    {
      name: "connect reaches the server that listens for the channel",
      run: async () => {
        const transport = options.transport();
        const channel = uniqueName("reach");
        const server = await listenOnce(transport, channel);
        const accepted = new Promise<void>((resolve) => server.once("connection", () => resolve()));
        try {
          const { socket, error } = await connectOnce(transport, channel);
          assert.equal(error, undefined);
          await accepted;
          socket.destroy();
        } finally {
          server.close();
        }
      },
    },
    {
      name: "channels with different names never meet",
      run: async () => {
        const transport = options.transport();
        const a = await openEcho(transport, uniqueName("a"));
        const b = await openEcho(transport, uniqueName("b"));
        try {
          assert.equal(a.isHost, true);
          assert.equal(b.isHost, true);
        } finally {
          a.close({ handover: true });
          b.close({ handover: true });
        }
      },
    },
    {
      name: "a channel works end to end: one host, a member, bytes both ways, any channel name",
      run: async () => {
        const transport = options.transport();
        for (const label of ["plain", "with space/slash\\dots..", "ünïcode ✓", "x".repeat(300)]) {
          const channel = `${uniqueName("e2e")}-${label}`;
          const host = await openEcho(transport, channel);
          const member = await openEcho(transport, channel);
          try {
            assert.equal(host.isHost, true);
            assert.equal(member.isHost, false);
            assert.equal(member.hostPid, process.pid);
            const socket = member.connect();
            assert.equal(await roundTrip(socket, `hello ${label}`), `hello ${label}`);
          } finally {
            member.close({ handover: true });
            host.close({ handover: true });
          }
        }
      },
    },
    {
      name: "after the host's server closes, the next channel to connect hosts",
      run: async () => {
        const transport = options.transport();
        const channel = uniqueName("after-close");
        const server = await listenOnce(transport, channel);
        await new Promise((resolve) => server.close(resolve));
        const ch = await openEcho(transport, channel);
        try {
          assert.equal(ch.isHost, true);
        } finally {
          ch.close({ handover: true });
        }
      },
    },
  ];
  if (options.child !== undefined) {
    const child = options.child;
    cases.push({
      name: "a SIGKILLed host's leftovers are reclaimed: the next channel hosts",
      run: async () => {
        const transport = options.transport();
        const channel = uniqueName("stale");
        await leaveStaleHost(child, channel);
        const ch = await openEcho(transport, channel);
        try {
          assert.equal(ch.isHost, true);
        } finally {
          ch.close({ handover: true });
        }
      },
    });
  }
  cases.push({
    name: "a connection that skips or fails the handshake never reaches the listener",
    run: async () => {
      const transport = options.transport();
      const channel = uniqueName("intruder");
      const seen: net.Socket[] = [];
      const host = await openEcho(transport, channel, seen);
      try {
        // The host's own connection reaches its listener once the host has read its proof.
        for (let i = 0; i < 500 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
        assert.equal(seen.length, 1);
        const before = seen.length;
        // Garbage, then a hello for another channel, then (with a secret) a hello without the proof
        // and one with a wrong proof: none may reach the listener.
        const attempts: Buffer[][] = [[Buffer.from("GET / HTTP/1.1\r\n\r\n")], [encodeHello(`${channel}-other`)]];
        if (transport.secret !== undefined) {
          attempts.push([encodeHello(channel)]);
          const nonce = Buffer.alloc(HANDSHAKE.nonceLength, 7);
          const transcript = {
            kind: HANDSHAKE.kindJoin,
            name: channel,
            memberNonce: nonce,
            hostNonce: nonce,
            status: 0,
            hostPid: 0,
            serverId: Buffer.alloc(8),
            binding: "",
          };
          attempts.push([encodeHello(channel, nonce), computeProof(Buffer.alloc(32, 1), "member", transcript)]);
        }
        for (const chunks of attempts) {
          const { socket, error } = await connectOnce(transport, channel);
          assert.equal(error, undefined);
          socket.on("error", () => undefined);
          socket.resume();
          for (const chunk of chunks) socket.write(chunk);
          // Bounded: a host that wrongly keeps the connection must fail this case, not hang it.
          const closed = await new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => resolve(false), CLOSE_BOUND_MS);
            socket.once("close", () => resolve(true));
            socket.once("close", () => clearTimeout(timer));
          });
          socket.destroy();
          assert.ok(
            closed,
            `the host kept open, for ${CLOSE_BOUND_MS} ms, a connection that sent ${chunks.length > 1 ? "a wrong proof" : "no valid hello"}`,
          );
        }
        assert.equal(seen.length, before);
      } finally {
        host.close({ handover: true });
      }
    },
  });
  return cases;
}
