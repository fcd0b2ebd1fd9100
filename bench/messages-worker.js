"use strict";
/**
 * One process of the message layer's scenarios (bench/messages.js), driven by run.js over IPC as
 * bench/worker.js is: the host of the bench's message channels, a sender (send, request, publish),
 * a subscriber, or a member of the failover scenario. Every command is answered with a message
 * carrying the same `id`; times are performance.timeOrigin + now(), shared by the processes of
 * one machine.
 *
 * The pair scenarios use one channel per codec (`<name>-buffer`, `<name>-v8`): both ends of a
 * channel must use the same codec, and one host process serves both. The host and join commands
 * may name a transport ("tcp", or "redis-tls": bench/redis-tls.js); without one, the umbrella
 * picks the platform's.
 */
const fs = require("node:fs");
const path = require("node:path");
const v8 = require("node:v8");
const { openMessageChannel, bufferCodec, structuredCodec, v8Codec, MESSAGE_DEFAULTS, loadTransport } = require("open-channel");
const { redisTlsTransport } = require("./redis-tls");

const CODECS = { buffer: bufferCodec, structured: structuredCodec, v8: v8Codec };
const now = () => performance.timeOrigin + performance.now();
const reply = (id, body) => process.send({ id, ...body });
const report = (msg) => process.connected && process.send({ pid: process.pid, ...msg });

/**
 * A body of `size` bytes: raw bytes for bufferCodec; for structuredCodec and v8Codec
 * an object `{ kind, text }` whose v8 serialization is `size` bytes (plain data, what they are for).
 */
function bodyOf(codec, size) {
  if (codec === "buffer") return Buffer.alloc(size, 120);
  const base = v8.serialize({ kind: "tick", text: "" }).length;
  const body = { kind: "tick", text: "x".repeat(Math.max(0, size - base)) };
  if (v8.serialize(body).length !== size) throw new Error(`no v8 body of ${size} bytes`);
  return body;
}

// ---- the pair scenarios: host, sender, subscribers -----------------------------------------

/** codec -> { channel, messenger } of this process. */
const channels = new Map();
const host = { received: 0 };
const subscribed = new Map(); // codec -> { received, expected }

/**
 * `transport`: a name for the umbrella's loadTransport ("tcp"), "redis-tls" (this process's Redis
 * transport with TLS), or undefined for the platform's.
 */
function transportFor(transport, channelName) {
  return transport === "redis-tls" ? redisTlsTransport() : loadTransport(transport, channelName);
}

function open(name, codec, transport) {
  const channelName = `${name}-${codec}`;
  const channel = openMessageChannel(
    channelName,
    {
      onMessage() {
        host.received++;
      },
      onRequest: (body) => body,
    },
    transport === undefined ? { codec: CODECS[codec] } : { codec: CODECS[codec], transport: transportFor(transport, channelName) },
  );
  const messenger = channel.connect(20000);
  channels.set(codec, { channel, messenger });
  return new Promise((resolve, reject) => {
    messenger.once("connect", () => resolve(channel.channel.hostPid));
    messenger.once("error", reject);
  });
}

/** This process hosts `name` (for every codec): it must be the first to connect. */
async function hostAll(name, codecs, transport) {
  for (const codec of codecs) {
    const hostPid = await open(name, codec, transport);
    if (hostPid !== process.pid) throw new Error(`${name}-${codec} is hosted by pid ${hostPid}, not by the host process`);
  }
}

/** This process joins `name` as a member (for every codec). */
async function joinAll(name, codecs, transport) {
  for (const codec of codecs) {
    const hostPid = await open(name, codec, transport);
    if (hostPid === process.pid) throw new Error(`${name}-${codec}: this member hosts (is the host process gone?)`);
  }
}

const messengerOf = (codec) => {
  const c = channels.get(codec);
  if (c === undefined) throw new Error(`not connected with the ${codec} codec`);
  return c.messenger;
};

/**
 * `count` calls of `call()` (send or publish) with the window kept full: not awaited one by one;
 * only when `window` are unacknowledged is the oldest of them awaited (acknowledgements come in
 * order). Resolves once the last one is acknowledged.
 */
async function windowed(messenger, count, window, call) {
  const ring = new Array(window);
  let failed = 0;
  let firstError;
  const onError = (err) => {
    failed++;
    firstError ??= err.code || err.message;
  };
  const startAt = now();
  for (let i = 0; i < count; i++) {
    const slot = i % window;
    // The slot holds message i - window: the oldest unacknowledged one when the window is full.
    if (messenger.unacknowledged >= window) await ring[slot];
    ring[slot] = call().catch(onError);
  }
  await ring[(count - 1) % window];
  const endAt = now();
  if (failed > 0) throw new Error(`${failed} of ${count} failed (${firstError})`);
  return { startAt, endAt };
}

async function sendAll({ codec, count, size, window }) {
  const messenger = messengerOf(codec);
  const body = bodyOf(codec, size);
  const cpu = process.cpuUsage();
  const times = await windowed(messenger, count, window, () => messenger.send(body));
  const used = process.cpuUsage(cpu);
  // This process's CPU time per message: what the sender costs, whatever the machine's pace.
  return { ...times, cpuUs: (used.user + used.system) / count };
}

async function publishAll({ codec, topic, count, size, window }) {
  const messenger = messengerOf(codec);
  const body = bodyOf(codec, size);
  return windowed(messenger, count, window, () => messenger.publish(topic, body));
}

/** One request at a time; each round trip in µs. */
async function requestTimes({ codec, count, size }) {
  const messenger = messengerOf(codec);
  const body = bodyOf(codec, size);
  const samples = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    await messenger.request(body);
    samples[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  return [...samples];
}

async function subscribeAll({ codecs, topic }) {
  for (const codec of codecs) {
    const state = { received: 0, expected: 0 };
    subscribed.set(codec, state);
    const messenger = messengerOf(codec);
    messenger.subscribe(topic, () => {
      state.received++;
      if (state.received === state.expected) report({ type: "done", codec, at: now(), received: state.received });
    });
    // Frames are handled in order: once a request made after the subscription is answered, the
    // host has the subscription.
    await messenger.request(codec === "buffer" ? Buffer.alloc(1) : 0);
  }
}

// ---- the failover scenario -------------------------------------------------------------------

/**
 * A member that sends `{ n }` (n = 1, 2, ...) continuously. Whichever process hosts appends what
 * its onMessage sees to `host-<pid>.log` synchronously (a SIGKILL right after loses none of it);
 * every member keeps "sent acknowledged" in `sent-<pid>`, rewritten before each wait, so that the
 * figures of a member SIGKILLed as the host are known.
 */
const member = {
  messenger: undefined,
  logDir: undefined,
  running: false,
  streaming: undefined,
  sent: 0,
  acked: 0,
  failed: 0,
  errors: new Set(),
};

function joinAsMember({ name, logDir, timeoutMs }) {
  member.logDir = logDir;
  let log;
  const channel = openMessageChannel(name, {
    onMessage(body, from) {
      log ??= fs.openSync(path.join(logDir, `host-${process.pid}.log`), "a");
      fs.writeSync(log, `${from.pid} ${body.n} ${from.redelivered ? 1 : 0}\n`);
    },
  });
  const messenger = channel.connect(timeoutMs);
  member.messenger = messenger;
  messenger.on("connect", () => report({ type: "welcome", hostPid: channel.channel.hostPid, at: now() }));
  messenger.on("error", (err) => report({ type: "welcome", error: err.code || err.message, at: now() }));
}

async function stream(window) {
  const { messenger } = member;
  const counter = fs.openSync(path.join(member.logDir, `sent-${process.pid}`), "w");
  const record = () => fs.writeSync(counter, `${member.sent} ${member.acked}`.padEnd(40), 0);
  const ring = new Array(window);
  const acked = () => member.acked++;
  const failed = (err) => {
    member.failed++;
    member.errors.add(err.code || err.message);
  };
  let last = Promise.resolve();
  while (member.running && member.failed === 0) {
    // A burst, then a turn of the event loop (acknowledgements, IPC) or a wait for room.
    for (let i = 0; i < 256 && member.running && messenger.unacknowledged < window; i++) {
      const n = ++member.sent;
      last = messenger.send({ n }).then(acked, failed);
      ring[n % window] = last;
    }
    record();
    const unacked = messenger.unacknowledged;
    if (unacked >= window) await ring[(member.sent - unacked + 1) % window];
    else await new Promise((resolve) => setImmediate(resolve));
  }
  // Acknowledgements come in order: once the last is settled, so is every one before it.
  await last;
  record();
  fs.closeSync(counter);
}

// ---- commands --------------------------------------------------------------------------------

process.on("message", async (msg) => {
  const { id } = msg;
  try {
    switch (msg.cmd) {
      case "host":
        await hostAll(msg.name, msg.codecs, msg.transport);
        return reply(id, { ok: true });
      case "join":
        await joinAll(msg.name, msg.codecs, msg.transport);
        return reply(id, { ok: true });
      case "send":
        return reply(id, await sendAll(msg));
      case "publish":
        return reply(id, await publishAll(msg));
      case "request-times":
        return reply(id, { samples: await requestTimes(msg) });
      case "subscribe":
        await subscribeAll(msg);
        return reply(id, { ok: true });
      case "expect": {
        const state = subscribed.get(msg.codec);
        if (state === undefined) throw new Error(`not subscribed with the ${msg.codec} codec`);
        Object.assign(state, { received: 0, expected: msg.count });
        return reply(id, { ok: true });
      }
      case "member":
        joinAsMember(msg);
        return reply(id, { ok: true });
      case "stream":
        member.running = true;
        member.streaming = stream(msg.window ?? MESSAGE_DEFAULTS.maxUnacked);
        member.streaming.catch((err) => report({ type: "crash", error: String(err.message || err) }));
        return reply(id, { ok: true });
      case "stop": {
        member.running = false;
        await member.streaming;
        return reply(id, { sent: member.sent, acked: member.acked, failed: member.failed, errors: [...member.errors] });
      }
      default:
        return reply(id, { error: `unknown command ${msg.cmd}` });
    }
  } catch (err) {
    return reply(id, { error: String((err && (err.code || err.message)) || err) });
  }
});

process.on("uncaughtException", (err) => {
  report({ type: "crash", error: String((err && (err.code || err.message)) || err) });
});

// The orchestrator is gone (it finished, or crashed): so are we.
process.on("disconnect", () => process.exit(0));

process.send({ type: "ready", pid: process.pid });
