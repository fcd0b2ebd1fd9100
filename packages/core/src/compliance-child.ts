/**
 * Child process of the compliance suite: builds a transport from a module and factory, listens for
 * a channel through it, says so, and waits to be SIGKILLed, leaving what a crashed host leaves.
 */
import * as net from "node:net";
import type { Transport } from "./transport";

const spec = JSON.parse(process.argv[2] as string) as { module: string; factory: string; options?: unknown; channel: string };
const mod = require(spec.module) as Record<string, (options?: unknown) => Transport>;
const transport = mod[spec.factory](spec.options);
const server = net.createServer((s) => s.destroy());
transport.listen(spec.channel, server).then(
  () => process.send?.("listening"),
  (err: Error) => {
    process.stderr.write(`compliance child: listen failed: ${err.message}\n`);
    process.exit(1);
  },
);
