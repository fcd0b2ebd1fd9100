"use strict";
/**
 * A real redis-server for the Redis transport's tests and `chaos --transport redis`: on a free
 * port, without persistence (restarting it loses everything), on loopback and on `bind` too (a
 * simulated LAN's gateway, where it wants `password`).
 */
const { spawn } = require("node:child_process");
const net = require("node:net");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort(host = "127.0.0.1") {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

class RedisServer {
  constructor(port, options) {
    this.port = port;
    this.options = options;
    this.child = undefined;
  }

  /** Starts one; resolves once it answers. `options`: `{ bind, password }`. */
  static async start(options = {}) {
    const server = new RedisServer(await freePort(), options);
    await server.startProcess();
    return server;
  }

  async startProcess() {
    const { bind, password } = this.options;
    const args = ["--port", String(this.port), "--bind", ["127.0.0.1", bind].filter(Boolean).join(" "), "--save", "", "--appendonly", "no"];
    if (password !== undefined) args.push("--requirepass", password);
    // Through a shell that SIGKILLs the server once its stdin closes: on stop(), and when this
    // process dies (a Jest worker killed, chaos interrupted), so that no server outlives its user.
    this.child = spawn("sh", ["-c", 'redis-server "$@" & pid=$!; cat > /dev/null; kill -9 $pid; wait $pid', "sh", ...args], {
      stdio: ["pipe", "ignore", "ignore"],
    });
    const deadline = Date.now() + 10000;
    for (;;) {
      if (await this.answers()) return;
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`redis-server did not start on port ${this.port} (installed? apt-get install redis-server)`);
      }
      await sleep(20);
    }
  }

  answers() {
    return new Promise((resolve) => {
      const socket = net.connect(this.port, "127.0.0.1");
      socket.once("connect", () => {
        const { password } = this.options;
        socket.write(password === undefined ? "PING\r\n" : `AUTH ${password}\r\n`);
        socket.once("data", (d) => {
          socket.destroy();
          resolve(/^\+(PONG|OK)/.test(d.toString()));
        });
      });
      socket.once("error", () => resolve(false));
    });
  }

  /** SIGKILLs the server and starts a new, empty one on the same port. */
  async restart() {
    await this.stop();
    await this.startProcess();
  }

  async stop() {
    const child = this.child;
    this.child = undefined;
    if (child === undefined || child.exitCode !== null) return;
    await new Promise((resolve) => {
      child.once("exit", () => resolve());
      child.stdin.end();
    });
  }
}

module.exports = { RedisServer, freePort };
