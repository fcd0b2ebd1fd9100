"use strict";
/**
 * One benchmark process, driven by run.js over IPC: a host, a client (sender / pinger), or a
 * member of a self-hosting channel (election and failover). Every command is answered with a
 * message carrying the same `id`; times are this process's performance.timeOrigin + now(), which
 * processes on one machine share.
 */
const { byName } = require("./systems");

const now = () => performance.timeOrigin + performance.now();
const reply = (id, body) => process.send({ id, ...body });
const system = byName(process.env.BENCH_SYSTEM);

// ---- host ------------------------------------------------------------------------------------

const hostState = { mode: "count", expected: 0, received: 0, firstAt: undefined, cpu: undefined };

/** CPU time (user + system, µs) this process used since `since` (a process.cpuUsage()). */
const cpuSince = (since) => {
  const used = process.cpuUsage(since);
  return used.user + used.system;
};

function onHostMessage(payload, answer) {
  const s = hostState;
  if (s.received === 0) s.firstAt = now();
  s.received += system.size(payload);
  if (s.mode === "echo") answer(payload);
  if (s.expected > 0 && s.received >= s.expected) {
    s.expected = 0;
    // With the host's CPU time since the expect command: where a transfer's time goes.
    process.send({ type: "done", at: now(), firstAt: s.firstAt, received: s.received, cpuUs: cpuSince(s.cpu) });
  }
}

// ---- client ----------------------------------------------------------------------------------

let client;
let onClientBytes = () => undefined;
const clientMessage = (payload) => onClientBytes(system.size(payload));

async function sendAll(count, size) {
  const payload = system.payload(size);
  const cpu = process.cpuUsage();
  const startAt = now();
  for (let i = 0; i < count; i++) {
    const r = client.send(payload);
    if (r === false) await client.drain();
    else if (r !== true && r !== undefined && typeof r.then === "function") await r;
  }
  return { startAt, endAt: now(), cpuUs: cpuSince(cpu) };
}

/** Sends one message and waits until as many bytes came back. */
function roundTrip(c, payload, size) {
  return new Promise((resolve) => {
    let got = 0;
    onClientBytes = (n) => {
      got += n;
      if (got >= size) resolve();
    };
    const r = c.send(payload);
    if (r !== true && r !== false && r !== undefined && typeof r.then === "function") r.catch(() => undefined);
  });
}

async function rtt(count, size) {
  const payload = system.payload(size);
  const samples = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    await roundTrip(client, payload, size);
    samples[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  return [...samples];
}

async function connectTimes(name, count) {
  const payload = system.payload(64);
  const samples = [];
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    const c = await system.client(name, clientMessage);
    await roundTrip(c, payload, 64);
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
    c.close();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return samples;
}

// ---- commands --------------------------------------------------------------------------------

process.on("message", async (msg) => {
  const { id } = msg;
  try {
    switch (msg.cmd) {
      case "host":
        await system.host(msg.name, onHostMessage);
        return reply(id, { ok: true });
      case "expect":
        Object.assign(hostState, { mode: msg.mode, expected: msg.bytes, received: 0, firstAt: undefined, cpu: process.cpuUsage() });
        return reply(id, { ok: true });
      case "client": {
        const t0 = now();
        client = await system.client(msg.name, clientMessage);
        return reply(id, { ok: true, ms: now() - t0 });
      }
      case "send":
        return reply(id, await sendAll(msg.count, msg.size));
      case "rtt":
        return reply(id, { samples: await rtt(msg.count, msg.size) });
      case "connect-times":
        return reply(id, { samples: await connectTimes(msg.name, msg.count) });
      case "member":
        system.member(msg.name, (hostPid, err) =>
          process.send({ type: "welcome", pid: process.pid, hostPid, at: now(), error: err && (err.code || err.message) }),
        );
        return reply(id, { ok: true });
      case "rss": {
        // After a full GC (garbage waiting for collection is not memory in use); the median of 5.
        const samples = [];
        for (let i = 0; i < 5; i++) {
          global.gc?.();
          await new Promise((resolve) => setTimeout(resolve, 30));
          samples.push(process.memoryUsage().rss);
        }
        samples.sort((a, b) => a - b);
        return reply(id, { rss: samples[2], spread: samples[4] - samples[0] });
      }
      default:
        return reply(id, { error: `unknown command ${msg.cmd}` });
    }
  } catch (err) {
    return reply(id, { error: String((err && (err.code || err.message)) || err) });
  }
});

process.on("uncaughtException", (err) => {
  process.send({ type: "crash", error: String((err && (err.code || err.message)) || err) });
});

// The orchestrator is gone (it finished, or crashed): so are we.
process.on("disconnect", () => process.exit(0));

// Load the system's modules now: no scenario measures module loading.
system.preload();
process.send({ type: "ready", pid: process.pid });
