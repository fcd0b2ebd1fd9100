import { type ChildProcess, fork } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { encodeHello, HANDSHAKE, newNonce } from "@open-channel/core";
import { tcpTransport } from "@open-channel/transport-tcp";
import { unixTransport } from "@open-channel/transport-unix";
import { type Report, uniqueChannel, WAIT_MS } from "./helpers/group";

/** Where a raw client reaches the channel's host. */
function rawAddress(transport: "unix" | "tcp", channel: string): net.NetConnectOpts {
  if (transport === "unix") return { path: unixTransport().socketPath(channel) };
  const record = JSON.parse(fs.readFileSync(tcpTransport().portFile(channel), "utf8"));
  return { host: record.host, port: record.port };
}

/** Connects, writes `bytes` (then ends if asked), resolves when the host closes the connection. */
function rawClient(address: net.NetConnectOpts, bytes: Buffer, end: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(address);
    socket.on("error", () => undefined);
    socket.resume();
    socket.on("connect", () => (end ? socket.end(bytes) : socket.write(bytes)));
    socket.on("close", () => resolve());
    setTimeout(() => reject(new Error("the host never closed the connection")), 15000).unref();
  });
}

describe.each(["unix", "tcp"] as const)("bad input at the host over %s", (transport) => {
  let host: ChildProcess;
  let member: ChildProcess;
  let hostLog = "";
  const reports: Report[] = [];
  const channel = uniqueChannel(`bad-${transport}`);
  const env = { ...process.env, OPEN_CHANNEL_TRANSPORT: transport, OC_CHANNEL: channel, NODE_DEBUG: "open-channel" };

  async function until(check: () => boolean, what: string): Promise<void> {
    const end = Date.now() + WAIT_MS;
    while (!check()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  beforeAll(async () => {
    host = fork(path.join(__dirname, "fixtures", "member.js"), [], { env, stdio: ["ignore", "ignore", "pipe", "ipc"] });
    host.stderr?.on("data", (d) => (hostLog += d));
    host.on("message", (m) => reports.push(m as Report));
    await until(() => reports.some((r) => r.type === "connect" && r.isHost === true), "the host");
    member = fork(path.join(__dirname, "fixtures", "member.js"), [], {
      env: { ...env, NODE_DEBUG: "" },
      stdio: ["ignore", "ignore", "inherit", "ipc"],
    });
    member.on("message", (m) => reports.push(m as Report));
    await until(() => reports.some((r) => r.type === "connect" && r.pid === member.pid), "the member");
  });

  afterAll(() => {
    host?.kill("SIGKILL");
    member?.kill("SIGKILL");
  });

  const cases: [string, () => Buffer, boolean, RegExp][] = [
    ["garbage", () => Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false, /bad magic/],
    [
      "an oversized name length",
      () => {
        const hello = encodeHello("x");
        hello.writeUInt16BE(65535, 8);
        return hello;
      },
      false,
      /name length 65535 out of range/,
    ],
    ["a truncated hello, then end of stream", () => encodeHello(channel).subarray(0, 7), true, /closed during the hello/],
    ["a hello for another channel", () => encodeHello(`${channel}-other`), false, /refused hello/],
    ["random bytes", () => Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 37 + 11) % 256)), false, /bad magic/],
    [
      "a hello of another protocol version",
      () => {
        const hello = encodeHello(channel, undefined, HANDSHAKE.kindJoin);
        hello[4] = HANDSHAKE.version + 1;
        return hello;
      },
      false,
      /refused hello \(status 2,/,
    ],
    ["a hello of a kind no version knows", () => encodeHello(channel, undefined, 9), false, /refused hello \(status 2,/],
    // Over TCP every member must prove itself: a join without the nonce for it is refused.
    ...(transport === "tcp"
      ? ([
          ["a join with no nonce for the proofs", () => encodeHello(channel), false, /refused hello \(status 3,/],
          // A proof needs the host's nonce, in its reply: one sent with the hello is wrong at once.
          [
            "a proof sent with the hello, before the reply",
            () => Buffer.concat([encodeHello(channel, newNonce()), Buffer.alloc(HANDSHAKE.proofLength, 7)]),
            false,
            /wrong proof/,
          ],
        ] as [string, () => Buffer, boolean, RegExp][])
      : []),
  ];

  test.each(cases)("%s: the connection is closed with a reason in the debug log", async (_label, bytes, end, reason) => {
    const before = hostLog.length;
    await rawClient(rawAddress(transport, channel), bytes(), end);
    await until(() => reason.test(hostLog.slice(before)), `the reason ${reason}`);
    expect(hostLog.slice(before)).toMatch(new RegExp(`closing a connection that failed the handshake: .*${reason.source}`));
  });

  test("a slow client that never finishes its hello is closed after the handshake timeout", async () => {
    const before = hostLog.length;
    await rawClient(rawAddress(transport, channel), encodeHello(channel).subarray(0, 5), false);
    // Closed by the host's handshake timer (the bound is HOST_HANDSHAKE_TIMEOUT_MS), not left open.
    expect(hostLog.slice(before)).toMatch(/no hello within \d+ ms/);
  });

  test("the host kept serving everyone else, and crashed on nothing", async () => {
    const since = reports.length;
    member.send({ cmd: "write", channel, data: `${member.pid} still-served\n` });
    await until(
      () => reports.slice(since).some((r) => r.type === "received" && r.line === `${member.pid} still-served`),
      "the member's line at the host",
    );
    expect(host.exitCode).toBeNull();
    // Nobody lost the host: the only connects are the first two.
    expect(reports.filter((r) => r.type === "connect")).toHaveLength(2);
    expect(reports.filter((r) => r.type === "error")).toEqual([]);
  });
});
