import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { v8Codec } from "@open-channel/messages";

/**
 * Runs `body` against the host side alone (a MessageHost's listener on a plain Unix socket server
 * in this process: what a member connection reaches after the channel's handshake), then cleans up.
 * `server` is that socket server (its "connection" events give the host's end of each connection).
 */
export async function withRawHost(
  handlers: import("../src/host").MessageHandlers,
  limits: { maxFrameBytes: number; maxUnacked: number; maxUnackedBytes?: number },
  body: (file: string, host: import("../src/host").MessageHost, server: net.Server) => Promise<void>,
): Promise<void> {
  const { MessageHost } = require("../dist/host.js") as typeof import("../src/host");
  const host = new MessageHost(handlers, { codec: v8Codec, channel: "raw", maxUnackedBytes: 8 << 20, ...limits });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "oc-msg-"));
  const file = path.join(dir, "s.sock");
  const server = net.createServer(host.listener).listen(file);
  await new Promise((r) => server.once("listening", r));
  try {
    await body(file, host, server);
  } finally {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
