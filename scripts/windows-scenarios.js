"use strict";
/**
 * Windows scenarios, run by a Windows build of Node (under wine on Linux: scripts/test-windows.js).
 * Wine does not enforce FILE_FLAG_FIRST_PIPE_INSTANCE, so only sequential scenarios are
 * meaningful there: a host first, then members; the host exits and a member takes over.
 * Results go to the JSON file named by argv[2] (wine's stdout is unusable).
 *
 *   node scripts/windows-scenarios.js results.json
 */
const cluster = require("node:cluster");
const fs = require("node:fs");
const net = require("node:net");
const { fork } = require("node:child_process");
const os = require("node:os");
const path = require("node:path");
const openChannel = require("open-channel").default;
const { selectTransportName } = require("open-channel");

const role = process.env.OC_WIN_ROLE;
const now = () => Date.now();

// ---- child roles --------------------------------------------------------------------------
const isMember = role === "member" || (cluster.isWorker && role === "worker");
const isPrimary = cluster.isPrimary && role === "primary";
if (isMember) {
  const channel = openChannel(process.env.OC_WIN_CHANNEL, (socket) => {
    socket.on("data", (d) => socket.write(`echo:${d}`));
  });
  const socket = channel.connect(20000);
  socket.on("connect", () => {
    process.send({
      type: "connect",
      pid: process.pid,
      hostPid: channel.hostPid,
      isHost: channel.isHost,
      transport: channel.transport.name,
      selected: selectTransportName(),
    });
    socket.write(`hi from ${process.pid}`);
  });
  socket.on("data", (d) => process.send({ type: "data", pid: process.pid, data: String(d) }));
  socket.on("error", (e) => process.send({ type: "error", pid: process.pid, code: e.code, message: e.message }));
  process.on("message", (m) => {
    if (m === "exit") process.exit(0);
  });
}

if (isPrimary) {
  const workers = [];
  const spawn = () => {
    const w = cluster.fork({ ...process.env, OC_WIN_ROLE: "worker" });
    w.on("message", (m) => process.send(m));
    workers.push(w);
  };
  process.on("message", (m) => {
    if (m === "spawn") spawn();
    if (m === "exit") {
      for (const w of workers) w.process.kill();
      process.exit(0);
    }
  });
}

/** Compliance cases that need an exclusive pipe name, which Wine does not give. */
const WINE_CANNOT = ["listen is exclusive"];

// ---- the scenarios --------------------------------------------------------------------------
const resultsFile = process.argv[2] || "windows-results.json";
const results = [];
function record(name, ok, detail) {
  results.push({ name, ok, detail });
  fs.writeFileSync(resultsFile, JSON.stringify(results, null, 2));
}

const messages = [];
function start(env, script = __filename) {
  const child = fork(script, [], { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "ignore", "ipc"] });
  child.on("message", (m) => messages.push(m));
  return child;
}

function waitFor(check, ms = 30000) {
  return new Promise((resolve, reject) => {
    const end = now() + ms;
    const tick = () => {
      const v = check();
      if (v) return resolve(v);
      if (now() > end) return reject(new Error(`timed out; messages: ${JSON.stringify(messages.slice(-6))}`));
      setTimeout(tick, 20);
    };
    tick();
  });
}

const connectOf = (pid, since = 0) =>
  messages
    .slice(since)
    .filter((m) => m.type === "connect" && m.pid === pid)
    .pop();

async function scenario(name, fn) {
  try {
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error("scenario timed out after 60 s")), 60000).unref());
    record(name, true, await Promise.race([fn(), timeout]));
  } catch (err) {
    record(name, false, String(err?.stack ? err.stack : err));
  }
}

// The scenarios run in the top process only (the child roles above run instead).
if (!isMember && !isPrimary)
  (async () => {
    await scenario("the umbrella picks named pipes by itself outside cluster workers", async () => {
      const channel = openChannel("win-select", () => {});
      if (channel.transport.name !== "pipe") throw new Error(`picked ${channel.transport.name}`);
      return `transport ${channel.transport.name}, address ${channel.transport.address("win-select")}`;
    });

    const name = `win-${process.pid}`;
    let a;
    let b;
    await scenario("a host first, then a member: one host over a named pipe, data both ways", async () => {
      a = start({ OC_WIN_ROLE: "member", OC_WIN_CHANNEL: name });
      const ca = await waitFor(() => connectOf(a.pid));
      if (!ca.isHost || ca.transport !== "pipe") throw new Error(`first process: ${JSON.stringify(ca)}`);
      b = start({ OC_WIN_ROLE: "member", OC_WIN_CHANNEL: name });
      const cb = await waitFor(() => connectOf(b.pid));
      if (cb.isHost || cb.hostPid !== a.pid) throw new Error(`second process: ${JSON.stringify(cb)}`);
      await waitFor(() => messages.some((m) => m.type === "data" && m.pid === b.pid && m.data.includes(`echo:hi from ${b.pid}`)));
      return `host ${a.pid}, member ${b.pid} got its echo`;
    });

    await scenario("the host exits and the member takes over; a newcomer finds the new host", async () => {
      const since = messages.length;
      a.send("exit");
      const cb = await waitFor(() => connectOf(b.pid, since));
      if (!cb.isHost || cb.hostPid !== b.pid) throw new Error(`survivor: ${JSON.stringify(cb)}`);
      const c = start({ OC_WIN_ROLE: "member", OC_WIN_CHANNEL: name });
      const cc = await waitFor(() => connectOf(c.pid));
      if (cc.hostPid !== b.pid) throw new Error(`newcomer: ${JSON.stringify(cc)}`);
      b.kill();
      c.kill();
      return `survivor ${b.pid} hosts; newcomer ${c.pid} joined it`;
    });

    await scenario("a raw connection without the proof never reaches the listener", async () => {
      const { pipeTransport } = require("@open-channel/transport-pipe");
      const { encodeHello } = require("@open-channel/core");
      const seen = [];
      const ch = openChannel(`${name}-proof`, (s) => seen.push(s));
      await new Promise((resolve) => ch.connect().once("connect", resolve));
      await waitFor(() => seen.length === 1);
      const raw = net.connect(pipeTransport().pipePath(`${name}-proof`));
      raw.on("error", () => {});
      raw.resume();
      raw.write(encodeHello(`${name}-proof`));
      await new Promise((resolve) => raw.once("close", resolve));
      if (seen.length !== 1) throw new Error("the listener saw the raw connection");
      ch.close();
      return "closed by the host, listener untouched";
    });

    await scenario("cluster workers pick TCP; a worker hosts and a second worker joins it", async () => {
      const primary = start({ OC_WIN_ROLE: "primary", OC_WIN_CHANNEL: `${name}-cluster` });
      primary.send("spawn");
      const first = await waitFor(() => messages.find((m) => m.type === "connect" && m.selected === "tcp" && m.isHost));
      primary.send("spawn");
      const second = await waitFor(() => messages.find((m) => m.type === "connect" && m.selected === "tcp" && !m.isHost));
      primary.send("exit");
      if (first.transport !== "tcp" || second.hostPid !== first.pid) throw new Error(JSON.stringify({ first, second }));
      return `worker ${first.pid} hosts over tcp, worker ${second.pid} joined it`;
    });

    // The pipe transport's compliance suite, the cases its Jest suite runs on Windows.
    const { transportComplianceCases } = require("@open-channel/core/compliance");
    const { pipeTransport } = require("@open-channel/transport-pipe");
    const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "oc-pipe-")), "private");
    const options = { dir, user: `test-${process.pid}` };
    const child = { module: require.resolve("@open-channel/transport-pipe"), factory: "pipeTransport", options };
    for (const c of transportComplianceCases({ transport: () => pipeTransport(options), child })) {
      if (process.env.OC_UNDER_WINE === "1" && WINE_CANNOT.some((x) => c.name.startsWith(x))) {
        record(`pipe compliance: ${c.name}`, "skipped", "Wine does not enforce FILE_FLAG_FIRST_PIPE_INSTANCE");
        continue;
      }
      await scenario(`pipe compliance: ${c.name}`, async () => {
        await c.run();
        return "ok";
      });
    }

    process.exit(results.every((r) => r.ok !== false) ? 0 : 1);
  })();
