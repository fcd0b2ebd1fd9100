"use strict";
// A member of the chaos run: joins the channel, reports every (re)connect and every error to the
// orchestrator over IPC, and runs a small request/response protocol through its socket, as an
// application would: a request line every 20 ms and one at each (re)connect, which the host's
// listener answers with its own pid. The first reply from a new host is when the application
// itself is served again.
const openChannel = require("open-channel").default;

/** Calls `onLine` for each complete line of a stream of chunks (ASCII: a Buffer joins as text). */
function lines(onLine) {
  let rest = "";
  return (chunk) => {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop();
    for (const line of parts) onLine(line);
  };
}

/** `--transport redis`: the Redis transport, on the orchestrator's redis-server. */
function redisOptions() {
  if (process.env.CHAOS_REDIS_PORT === undefined) return undefined;
  const Redis = require("ioredis");
  const { redisTransport } = require("@open-channel/transport-redis");
  const { CHAOS_REDIS_HOST, CHAOS_REDIS_PORT, CHAOS_REDIS_PASSWORD, CHAOS_REDIS_SECRET, CHAOS_REDIS_TTL_MS, CHAOS_HOST } = process.env;
  const client = new Redis({
    port: Number(CHAOS_REDIS_PORT),
    host: CHAOS_REDIS_HOST ?? "127.0.0.1",
    password: CHAOS_REDIS_PASSWORD,
    maxRetriesPerRequest: null,
  });
  client.on("error", () => {});
  // --machines: this process's machine's address, where it listens and is reached.
  const dir = process.env.CHAOS_TLS_DIR;
  const read = (file) => require("node:fs").readFileSync(require("node:path").join(dir, file));
  // --tls: the certificates alone let members in (no secret).
  const security = dir
    ? { tls: { ca: read("ca.crt"), cert: read("node.crt"), key: read("node.key"), servername: "localhost" } }
    : { secret: CHAOS_REDIS_SECRET };
  const transport = redisTransport({ client, ...security, ttlMs: Number(CHAOS_REDIS_TTL_MS), host: CHAOS_HOST });
  return { transport };
}

const name = process.env.CHAOS_CHANNEL;
// The host's listener: answers `req SEQ` with `res SEQ PID` (the pid of the process it runs in).
const channel = openChannel(
  name,
  (socket) => {
    socket.on(
      "data",
      lines((line) => {
        if (line.startsWith("req ")) socket.write(`res ${line.slice(4)} ${process.pid}\n`);
      }),
    );
  },
  redisOptions(),
);
const socket = channel.connect(Number(process.env.CHAOS_TIMEOUT || 10000));
// Reports are stamped at once but sent in one batch once things are quiet, so that talking to the
// orchestrator never competes for the CPU with the failover being measured.
const REPORT_DELAY_MS = 60;
let pending = [];
let flushTimer;
const flush = () => {
  if (process.connected) for (const msg of pending) process.send(msg);
  pending = [];
};
const report = (msg) => {
  pending.push({ pid: process.pid, at: performance.timeOrigin + performance.now(), ...msg });
  clearTimeout(flushTimer);
  flushTimer = setTimeout(flush, REPORT_DELAY_MS);
};
let seq = 0;
const request = () => socket.write(`req ${++seq}\n`);
// CPU time this process spent from noticing the loss until connected again (user + system, us).
let cpuAtLoss;
// The pid whose listener answered last: a reply from another one is reported (a new host).
let lastReplier;
socket.on("connect", () => {
  const cpu = cpuAtLoss && process.cpuUsage(cpuAtLoss);
  cpuAtLoss = undefined;
  report({ type: "connect", hostPid: channel.hostPid, isHost: channel.isHost, cpuUs: cpu && cpu.user + cpu.system });
  // What an application does on connect (the README's "resync on connect"): ask the host at once.
  request();
});
channel.on("state", (state, previous) => {
  if (previous === "connected" && state === "connecting") {
    cpuAtLoss = process.cpuUsage();
    report({ type: "lost" });
  }
});
// The moment this process holds the channel's address (the new host's part of a failover), and
// the moment it stops (a host cut off from Redis stops on its own deadline).
channel.on("hosting", (isHost) => report({ type: isHost ? "hosting" : "unhosting" }));
socket.on("error", (err) => report({ type: "error", code: err.code, message: err.message }));
socket.on(
  "data",
  lines((line) => {
    const reply = /^res \d+ (\d+)$/.exec(line);
    if (reply === null) return report({ type: "error", code: "BAD_REPLY", message: line });
    const hostPid = Number(reply[1]);
    if (hostPid === lastReplier) return;
    lastReplier = hostPid;
    report({ type: "reply", hostPid });
  }),
);
// Requests keep the host busy with traffic; those written while the channel is between hosts are
// queued and go to the new host first.
setInterval(request, 20);
