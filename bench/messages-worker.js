"use strict";
/**
 * One process of the message layer's scenarios (bench/messages.js), driven by run.js over IPC as
 * bench/worker.js is: the host of the bench's message channels, a sender (send, request, publish),
 * a subscriber, a member taking the host's calls, or a member of the failover scenario. Every
 * command is answered with a message carrying the same `id`; times are performance.timeOrigin +
 * now(), shared by the processes of one machine.
 *
 * The pair scenarios use one channel per codec (`<name>-buffer`, `<name>-v8`): both ends of a
 * channel must use the same codec, and one host process serves both. The host and join commands
 * may name a transport ("tcp", or "redis-tls": bench/redis-tls.js); without one, the umbrella
 * picks the platform's.
 *
 * The host's calls (host-calls, join-calls): channels of their own (`<name>-<codec>`, one per
 * scenario), hosted by a pair's host process, which then closes its own messenger: its members
 * are then the member processes only (a hosting process's messenger is a member too, and would
 * get each broadcast). Members count their handler's runs.
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
  const writes = writeCalls();
  const times = await windowed(messenger, count, window, () => messenger.send(body));
  const used = process.cpuUsage(cpu);
  // This process's CPU time per message: what the sender costs, whatever the machine's pace.
  return { ...times, cpuUs: (used.user + used.system) / count, writes: writes === undefined ? undefined : writeCalls() - writes };
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

// ---- the host's calls: sendTo, requestTo, broadcast ------------------------------------------

/** channel name -> { channel, handled }: the calls channels of this process (hosted, or joined). */
const calls = new Map();

/** This process's write system calls so far (Linux: /proc/self/io), else undefined. */
function writeCalls() {
  try {
    return Number(/^syscw: (\d+)$/m.exec(fs.readFileSync("/proc/self/io", "utf8"))[1]);
  } catch {
    return undefined;
  }
}

/** This process's CPU time (µs) and write system calls so far: a round's cost is their difference. */
function usage() {
  const cpu = process.cpuUsage();
  return { cpuUs: cpu.user + cpu.system, writes: writeCalls() };
}

function openCalls(name, codec, handlers) {
  const channelName = `${name}-${codec}`;
  const channel = openMessageChannel(channelName, handlers, { codec: CODECS[codec] });
  const messenger = channel.connect(20000);
  return new Promise((resolve, reject) => {
    messenger.once("connect", () => resolve({ channel, messenger, channelName }));
    messenger.once("error", reject);
  });
}

/**
 * Hosts the calls channel `name` (this process must be the first to connect), then closes its own
 * messenger once the host has welcomed it (a request's reply comes after the WELCOME: a messenger
 * closed before it sends no BYE, and stays a member for the leave grace, 2 s).
 */
async function hostCalls({ name, codec }) {
  const { channel, messenger, channelName } = await openCalls(name, codec, { onRequest: (body) => body });
  if (channel.channel.hostPid !== process.pid)
    throw new Error(`${channelName} is hosted by pid ${channel.channel.hostPid}, not by the host process`);
  await messenger.request(codec === "buffer" ? Buffer.alloc(1) : 0);
  await messenger.close();
  if (channel.host === undefined) throw new Error(`${channelName}: no longer hosted once its messenger closed`);
  calls.set(channelName, { channel, handled: 0 });
}

/** Joins the calls channel `name` as a member whose handlers count the host's messages and echo its requests. */
async function joinCalls({ name, codec }) {
  const { channel, messenger, channelName } = await openCalls(name, codec, {});
  if (channel.channel.hostPid === process.pid) throw new Error(`${channelName}: this member hosts (is the host process gone?)`);
  const state = { channel, handled: 0 };
  messenger.handle({
    onMessage() {
      state.handled++;
    },
    onRequest: (body) => body,
  });
  calls.set(channelName, state);
}

/** The host side of the calls channel `name` in this process. */
function hostSideOf(name, codec) {
  const host = calls.get(`${name}-${codec}`)?.channel.host;
  if (host === undefined) throw new Error(`${name}-${codec}: not hosted by this process`);
  return host;
}

/**
 * `count` calls of `call()` (a promise) with up to `window` of them outstanding: when `window`
 * are, the oldest is awaited. The host's calls to one member are answered in order, and a
 * broadcast resolves once its last member answered, so they settle in order: the oldest is the
 * first to settle. `done(value)` for each fulfilled call. Resolves once every call settled.
 */
async function pipelined(count, window, call, done) {
  const ring = new Array(window);
  let outstanding = 0;
  let failed = 0;
  let firstError;
  const fulfilled = (value) => {
    outstanding--;
    done?.(value);
  };
  const rejected = (err) => {
    outstanding--;
    failed++;
    firstError ??= err.code || err.message;
  };
  const before = usage();
  const startAt = now();
  for (let i = 0; i < count; i++) {
    const slot = i % window;
    if (outstanding >= window) await ring[slot];
    outstanding++;
    ring[slot] = call().then(fulfilled, rejected);
  }
  await Promise.all(ring);
  const endAt = now();
  const after = usage();
  if (outstanding !== 0) throw new Error(`${outstanding} calls outstanding after the last one settled (out of order)`);
  if (failed > 0) throw new Error(`${failed} of ${count} failed (${firstError})`);
  return {
    startAt,
    endAt,
    cpuUs: after.cpuUs - before.cpuUs,
    writes: after.writes === undefined ? undefined : after.writes - before.writes,
  };
}

/** host.sendTo(the only member, body) `count` times, up to `window` outstanding. */
async function sendToAll({ name, codec, count, size, window }) {
  const host = hostSideOf(name, codec);
  const members = host.members();
  if (members.length !== 1) throw new Error(`${name}-${codec}: ${members.length} members, not 1`);
  const [member] = members;
  const body = bodyOf(codec, size);
  return pipelined(count, window, () => host.sendTo(member, body));
}

/** host.broadcast(body) `count` times, up to `window` outstanding; the deliveries are counted from what each resolves with. */
async function broadcastAll({ name, codec, count, size, window, members }) {
  const host = hostSideOf(name, codec);
  const joined = host.members().length;
  if (joined !== members) throw new Error(`${name}-${codec}: ${joined} members, not ${members}`);
  const body = bodyOf(codec, size);
  let deliveries = 0;
  let short = 0;
  const times = await pipelined(
    count,
    window,
    () => host.broadcast(body),
    (reached) => {
      deliveries += reached.length;
      if (reached.length !== members) short++;
    },
  );
  if (short > 0) throw new Error(`${short} of ${count} broadcasts reached fewer than ${members} members`);
  return { ...times, deliveries };
}

/** host.requestTo(the only member, body) one at a time; each round trip in µs. */
async function requestToTimes({ name, codec, count, size }) {
  const host = hostSideOf(name, codec);
  const [member] = host.members();
  if (member === undefined) throw new Error(`${name}-${codec}: no member`);
  const body = bodyOf(codec, size);
  const samples = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    await host.requestTo(member, body);
    samples[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  return [...samples];
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
      case "host-calls":
        await hostCalls(msg);
        return reply(id, { ok: true });
      case "join-calls":
        await joinCalls(msg);
        return reply(id, { ok: true });
      case "members":
        return reply(id, {
          pids: hostSideOf(msg.name, msg.codec)
            .members()
            .map((m) => m.pid),
        });
      case "sendto":
        return reply(id, await sendToAll(msg));
      case "broadcast":
        return reply(id, await broadcastAll(msg));
      case "requestto-times":
        return reply(id, { samples: await requestToTimes(msg) });
      case "handled": {
        const state = calls.get(`${msg.name}-${msg.codec}`);
        if (state === undefined) throw new Error(`not in ${msg.name}-${msg.codec}`);
        return reply(id, { handled: state.handled, ...usage() });
      }
      case "usage":
        return reply(id, usage());
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
