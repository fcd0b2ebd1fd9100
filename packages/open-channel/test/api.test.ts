import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { unixTransport } from "@open-channel/transport-unix";
import openChannelDefault, { type OpenChannelError, openChannel, ProcessChannel, selectTransportName } from "open-channel";
import { uniqueChannel } from "./helpers/group";

const ROOT = path.join(__dirname, "..", "..", "..");

/** Runs `fn` with OPEN_CHANNEL_TRANSPORT set to `value`, restoring it afterwards. */
function withTransportEnv(value: string, fn: () => void): void {
  const saved = process.env.OPEN_CHANNEL_TRANSPORT;
  process.env.OPEN_CHANNEL_TRANSPORT = value;
  try {
    fn();
  } finally {
    if (saved === undefined) delete process.env.OPEN_CHANNEL_TRANSPORT;
    else process.env.OPEN_CHANNEL_TRANSPORT = saved;
  }
}
const opened: ProcessChannel[] = [];
afterEach(() => {
  for (const channel of opened.splice(0)) channel.close({ handover: true });
});

describe("the open-channel package (umbrella)", () => {
  test("exports default and openChannel (the same function) and ProcessChannel", () => {
    const cjs = require("open-channel");
    expect(typeof cjs.default).toBe("function");
    expect(cjs.default).toBe(cjs.openChannel);
    expect(openChannelDefault).toBe(openChannel);
    expect(typeof ProcessChannel).toBe("function");
  });

  test("channel.connectionListener is the listener given, as in 0.1.x, with or without a name", () => {
    const listener = (): void => undefined;
    expect(openChannel(listener).connectionListener).toBe(listener);
    expect(openChannel(uniqueChannel("listener"), listener).connectionListener).toBe(listener);
  });

  test("ESM: import openChannel, { openChannel, ProcessChannel } from 'open-channel' works", () => {
    const code = [
      'import openChannel, { openChannel as named, ProcessChannel } from "open-channel";',
      'const channel = openChannel("esm-check", () => {});',
      "console.log(JSON.stringify({ same: openChannel === named, isChannel: channel instanceof ProcessChannel, name: channel.name, state: channel.state }));",
    ].join("\n");
    const out = spawnSync(process.execPath, ["--input-type=module", "-e", code], { cwd: ROOT, encoding: "utf8" });
    expect(out.stderr).toBe("");
    expect(JSON.parse(out.stdout)).toEqual({ same: true, isChannel: true, name: "esm-check", state: "initiated" });
  });

  test("the compliance suite is @open-channel/core/compliance (CommonJS and ESM), never loaded by the channel's entries", () => {
    const code = [
      "const before = new Set(Object.keys(require.cache));",
      'require("open-channel"); require("@open-channel/core");',
      "const loaded = Object.keys(require.cache).filter((f) => !before.has(f) && /compliance/.test(f));",
      'const { transportComplianceCases } = require("@open-channel/core/compliance");',
      'console.log(JSON.stringify({ loaded, main: "transportComplianceCases" in require("@open-channel/core"), cases: transportComplianceCases({ transport: () => ({}) }).length > 5 }));',
    ].join("\n");
    const cjs = spawnSync(process.execPath, ["-e", code], { cwd: ROOT, encoding: "utf8" });
    expect(cjs.stderr).toBe("");
    expect(JSON.parse(cjs.stdout)).toEqual({ loaded: [], main: false, cases: true });
    const esm = spawnSync(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        'import { transportComplianceCases, leaveStaleHost } from "@open-channel/core/compliance"; console.log(typeof transportComplianceCases, typeof leaveStaleHost);',
      ],
      { cwd: ROOT, encoding: "utf8" },
    );
    expect([esm.stderr, esm.stdout.trim()]).toEqual(["", "function function"]);
  });

  test("connect() returns a real net.Socket at once, connects over Unix sockets, and delivers queued writes in order", async () => {
    let received = "";
    const channel = openChannel(uniqueChannel("api"), (socket) => {
      socket.setEncoding("utf8");
      socket.on("data", (chunk: string) => (received += chunk));
    });
    opened.push(channel);
    expect(channel.transport.name).toBe("unix");
    const socket = channel.connect();
    expect(socket).toBeInstanceOf(net.Socket);
    for (let i = 0; i < 20; i++) socket.write(`${i},`);
    await new Promise((resolve) => socket.once("connect", resolve));
    expect(channel.state).toBe("connected");
    const deadline = Date.now() + 10000;
    while (received.length < 50 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(received).toBe(Array.from({ length: 20 }, (_, i) => `${i},`).join(""));
  });

  test("the automatic choice: unix on Unix-like systems, pipe on Windows, tcp in Windows cluster workers", () => {
    expect(selectTransportName({ env: {}, platform: "linux", isClusterWorker: false })).toBe("unix");
    expect(selectTransportName({ env: {}, platform: "darwin", isClusterWorker: true })).toBe("unix");
    expect(selectTransportName({ env: {}, platform: "win32", isClusterWorker: false })).toBe("pipe");
    expect(selectTransportName({ env: {}, platform: "win32", isClusterWorker: true })).toBe("tcp");
    expect(selectTransportName({ env: { OPEN_CHANNEL_TRANSPORT: "tcp" }, platform: "linux" })).toBe("tcp");
  });

  test("OPEN_CHANNEL_TRANSPORT=tcp switches this process to the TCP transport; options.transport overrides both", () => {
    withTransportEnv("tcp", () => {
      expect(openChannel("x", () => undefined).transport.name).toBe("tcp");
      expect(openChannel("x", () => undefined, { transport: unixTransport() }).transport.name).toBe("unix");
    });
  });

  test("OPEN_CHANNEL_TRANSPORT=pipe loads the pipe transport's package, only when asked", () => {
    withTransportEnv("pipe", () => {
      // The repository has every package; the missing-package error is tested with real installs
      // of packed tarballs (packaging.test.ts).
      expect(openChannel("x", () => undefined).transport.name).toBe("pipe");
    });
  });

  test("OPEN_CHANNEL_TRANSPORT naming an unknown transport is an error with a code", () => {
    withTransportEnv("carrier-pigeon", () => {
      expect(() => openChannel("x", () => undefined)).toThrow(expect.objectContaining({ code: "ERR_OPEN_CHANNEL_NO_TRANSPORT" }));
      expect(() => openChannel("x", () => undefined)).toThrow(/carrier-pigeon/);
    });
  });

  test("an unsafe socket directory closes the channel at once with a coded error naming the channel", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "oc-unsafe-"));
    fs.chmodSync(dir, 0o777);
    const name = uniqueChannel("unsafe");
    const channel = openChannel(name, () => undefined, { transport: unixTransport({ dir }) });
    opened.push(channel);
    const socket = channel.connect(0);
    const err = await new Promise<OpenChannelError>((resolve) => socket.once("error", resolve));
    expect(err.code).toBe("ERR_OPEN_CHANNEL_UNSAFE_DIR");
    expect(err.message).toContain(`"${name}"`);
    expect(channel.state).toBe("closed");
  });
});
