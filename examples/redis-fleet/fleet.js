"use strict";
/**
 * Three "machines" sharing one channel through Redis, on this computer: starts a redis-server
 * (Debian: apt-get install redis-server; macOS: brew install redis), then 3 groups of 2 processes
 * of app.js, each group with its own address (127.0.0.1, .2 and .3 on Linux). It SIGKILLs the
 * host once everyone is heard from, and ends when a process on another machine hosts and has
 * heard from every survivor. The machines talk TLS, with the repository's test certificates
 * (packages/core/test/fixtures/tls: for trying it out only); `--no-tls`: plain TCP and a shared
 * secret. Run: npm run build && node examples/redis-fleet/fleet.js
 *
 * On real machines, run app.js (or ecosystem.config.js with PM2) on each one, with REDIS_URL,
 * ADVERTISE and your TLS files (or CHANNEL_SECRET) set: see the README of @open-channel/transport-redis.
 */
const { fork, spawn } = require("node:child_process");
const { randomBytes } = require("node:crypto");
const net = require("node:net");
const path = require("node:path");

const password = randomBytes(12).toString("hex");
const pki = path.join(__dirname, "..", "..", "packages", "core", "test", "fixtures", "tls");
const security = process.argv.includes("--no-tls")
  ? { CHANNEL_SECRET: randomBytes(24).toString("hex") }
  : { TLS_CA: path.join(pki, "ca.crt"), TLS_CERT: path.join(pki, "node.crt"), TLS_KEY: path.join(pki, "node.key") };
// Linux routes all of 127.0.0.0/8 to loopback: three addresses, three "machines".
const addresses = process.platform === "linux" ? ["127.0.0.1", "127.0.0.2", "127.0.0.3"] : ["127.0.0.1", "127.0.0.1", "127.0.0.1"];
const machines = ["machine-a", "machine-b", "machine-c"];
const children = [];
let redis;

function stopAll(code) {
  for (const child of children) child.kill("SIGKILL");
  redis?.kill("SIGKILL");
  process.exit(code);
}
setTimeout(() => {
  console.log("== gave up after 40 s ==");
  stopAll(1);
}, 40000).unref();

const freePort = () =>
  new Promise((resolve) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });

/** Every line each process prints, with its machine in front; `onLine` sees them too. */
const lines = [];
const waiters = new Set();
function watchLines(child) {
  let rest = "";
  child.stdout.on("data", (chunk) => {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop();
    for (const line of parts) {
      console.log(`  ${line}`);
      lines.push(line);
      for (const wake of [...waiters]) wake();
    }
  });
}
function waitForLine(test) {
  return new Promise((resolve) => {
    const check = () => {
      const found = lines.find(test);
      if (found === undefined) return;
      waiters.delete(check);
      resolve(found);
    };
    waiters.add(check);
    check();
  });
}

(async () => {
  const port = await freePort();
  redis = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--requirepass", password, "--save", "", "--appendonly", "no"],
    {
      stdio: "ignore",
    },
  );
  redis.on("error", () => {
    console.log("redis-server is not installed (Debian: apt-get install redis-server; macOS: brew install redis)");
    process.exit(1);
  });
  await new Promise((r) => setTimeout(r, 300));
  console.log(`== redis-server on port ${port}; 3 machines of 2 processes each, ${security.TLS_CA ? "over TLS" : "plain TCP"} ==`);
  for (const [i, machine] of machines.entries()) {
    for (let k = 0; k < 2; k++) {
      const env = {
        ...process.env,
        REDIS_URL: `redis://:${password}@127.0.0.1:${port}`,
        ...security,
        ADVERTISE: addresses[i],
        LISTEN: addresses[i],
        MACHINE: machine,
      };
      const child = fork(path.join(__dirname, "app.js"), [], { env, stdio: ["ignore", "pipe", "inherit", "ipc"] });
      children.push(child);
      watchLines(child);
    }
  }
  const all = children.map((c) => c.pid);
  const heardFrom = (pids) => (line) => line.includes("the host heard from") && pids.every((pid) => line.includes(` ${pid}`));
  const first = await waitForLine(heardFrom(all));
  const host = Number(first.split(" ")[1].replace(":", ""));
  console.log(`== the host (pid ${host}) has heard from all 6: SIGKILL it ==`);
  const at = lines.length;
  children.find((c) => c.pid === host).kill("SIGKILL");
  const survivors = all.filter((pid) => pid !== host);
  const next = await waitForLine((line) => lines.indexOf(line) >= at && line.endsWith("hosting the fleet's channel"));
  await waitForLine((line) => lines.indexOf(line) >= at && heardFrom(survivors)(line));
  console.log(`== done: ${next.split(":")[0]} took over and has heard from the 5 survivors ==`);
  stopAll(0);
})();
