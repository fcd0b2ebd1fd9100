"use strict";
/**
 * The message layer's scenarios (`openMessageChannel` through the umbrella), with the method of
 * the side-by-side ones: one host process, separate member processes (bench/messages-worker.js),
 * host and sender pinned to two different cores, the median of several rounds after a warm-up,
 * codecs (and raw net, where a ratio is asked) taking turns round by round.
 *
 *   messages-send-64B     one member sends 64-byte bodies; send() is acknowledged (the host's
 *                         onMessage ran); the window kept full: only when `window` sends are
 *                         unacknowledged is the oldest awaited. msgs/s, per codec (buffer, structured, v8).
 *   messages-request-rtt  request/response of 64-byte bodies, one at a time (the host's onRequest
 *                         returns the body): median and p99 in µs, and the ratio to raw net's
 *                         echo over a Unix socket, measured in the same rounds.
 *   messages-send-64B-tcp, messages-request-rtt-tcp
 *                         the same over the tcp transport, the round trip's ratio to raw net's
 *                         echo over TCP loopback (Nagle off); their rounds take turns with the
 *                         Unix socket's when both run.
 *   messages-send-64B-redis-tls, messages-request-rtt-redis-tls
 *                         the same over the Redis transport with TLS (bench/redis-tls.js: the host
 *                         on 127.0.0.2, TLS 1.3 mutual), the round trip's ratio to raw TLS's echo
 *                         over the same addresses.
 *   messages-publish-4    one publisher, 4 subscriber processes (not pinned): deliveries/s, from
 *                         the first publish to the last subscriber's last event.
 *   messages-sendto       the host's calls (`messageChannel.host`, bench/messages-worker.js's calls
 *                         channels: the host process, its own messenger closed, and member processes
 *                         whose `messenger.handle()` counts and echoes): host.sendTo(member, 64 B) to
 *                         one member (pinned to the sender's core), up to `window` calls outstanding
 *                         (each member's window: the channel's maxUnacked). msgs/s, and the ratio to
 *                         the pair's send() (member to host, the same host process), rounds taking turns.
 *   messages-requestto-rtt
 *                         host.requestTo(that member, 64 B) one at a time: median and p99 in µs, and
 *                         the ratio to the pair's request() (member to host), blocks taking turns.
 *   messages-broadcast-4, messages-broadcast-16
 *                         host.broadcast(64 B) to 4 (16) member processes (not pinned), up to `window`
 *                         broadcasts outstanding: deliveries/s (each member's handler run, counted
 *                         from what broadcast() resolves with, checked against the members' counts),
 *                         and the ratio to publish() from the pair's sender to the same processes
 *                         (each subscribed on the pair's channel), rounds taking turns.
 *   messages-failover     4 members send { n } continuously while the host is SIGKILLed again and
 *                         again (a replacement member joins after each kill); every host appends
 *                         what its onMessage saw to a file, synchronously. Counts, not times: sent,
 *                         acknowledged, delivered, lost, duplicated.
 */
const fs = require("node:fs");
const path = require("node:path");
const { MESSAGE_DEFAULTS } = require("open-channel");
const { MESSAGES, byName, ratioKey } = require("./systems");
const { undisturbed, stealFigures } = require("./steal");

const SCENARIOS = [
  "messages-send-64B",
  "messages-send-64B-tcp",
  "messages-request-rtt",
  "messages-request-rtt-tcp",
  "messages-send-64B-redis-tls",
  "messages-request-rtt-redis-tls",
  "messages-publish-4",
  "messages-sendto",
  "messages-requestto-rtt",
  "messages-broadcast-4",
  "messages-broadcast-16",
  "messages-failover",
];
/** The host's calls to one member; broadcasts, by their scenario: the number of member processes. */
const CALL_SCENARIOS = ["messages-sendto", "messages-requestto-rtt"];
const BROADCASTS = { "messages-broadcast-4": 4, "messages-broadcast-16": 16 };
/** Scenarios of the pairs over the platform's transport (besides its send and request). */
const UNIX_SCENARIOS = ["messages-publish-4", ...CALL_SCENARIOS, ...Object.keys(BROADCASTS)];
const CODECS = ["buffer", "structured", "v8"];
/** The default window: how many sends a messenger keeps unacknowledged before send() waits. */
const WINDOW = MESSAGE_DEFAULTS.maxUnacked;
const SIZE = 64;
const SUBSCRIBERS = 4;
const MEMBERS = 4;
const TOPIC = "bench";

/** Per transport: its scenarios' names and the raw system its round trip is paired with. */
const TRANSPORTS = {
  unix: { send: "messages-send-64B", request: "messages-request-rtt", raw: "raw-net" },
  tcp: { send: "messages-send-64B-tcp", request: "messages-request-rtt-tcp", raw: "raw-tcp" },
  "redis-tls": { send: "messages-send-64B-redis-tls", request: "messages-request-rtt-redis-tls", raw: "raw-tls" },
};
/** A row's field for a raw system's figure: "raw-tcp", "median_us" -> "raw_tcp_median_us" (raw-tls: "raw_tls_..."). */
const rawKey = (raw, key) => `${raw.replace("-", "_")}_${key}`;

const clamp = (x, lo, hi) => Math.max(lo, Math.min(hi, Math.round(x)));

/**
 * Runs `scenarios` (a subset of SCENARIOS). `bench` is run.js's toolkit: Session, CFG, row,
 * failed, agreement, killHost, median, pct, round, sleep, now.
 */
async function runMessages(bench, dir, scenarios) {
  if (scenarios.some((sc) => sc !== "messages-failover")) await runMessagePairs(bench, dir, scenarios);
  if (scenarios.includes("messages-failover")) await runMessageFailover(bench, dir);
}

/**
 * Send, request and publish: per codec and transport, a host process (cpu 0) and a sender
 * (cpu 1), all started first; rounds take turns between them. One codec per process, as in an
 * application: a process that uses both codecs runs the buffer path markedly slower (its call
 * sites see two codecs), which would be this layout's doing, not the codec's.
 */
async function runMessagePairs(bench, dir, scenarios) {
  const { Session, failed, sleep } = bench;
  const s = new Session(MESSAGES, dir);
  const raws = [];
  const wanted = (transport) =>
    scenarios.includes(TRANSPORTS[transport].send) ||
    scenarios.includes(TRANSPORTS[transport].request) ||
    (transport === "unix" && scenarios.some((sc) => UNIX_SCENARIOS.includes(sc)));
  /** The pairs: one per codec and transport, `key` "structured" or "structured-tcp". */
  const variants = Object.keys(TRANSPORTS)
    .filter(wanted)
    .flatMap((transport) => CODECS.map((codec) => ({ codec, transport, key: transport === "unix" ? codec : `${codec}-${transport}` })));
  const pairScenarios = scenarios.filter((x) => x !== "messages-failover");
  try {
    try {
      await Promise.all(
        variants.map(async (v) => {
          const name = `msgs-${v.transport}-${process.pid}`;
          // unix: the transport the umbrella picks for the platform, as the subscribers get it.
          const transport = v.transport === "unix" ? undefined : v.transport;
          v.host = await s.spawn(0);
          await s.call(v.host, { cmd: "host", name, codecs: [v.codec], transport });
          v.sender = await s.spawn(1);
          await s.call(v.sender, { cmd: "join", name, codecs: [v.codec], transport });
        }),
      );
    } catch (err) {
      for (const sc of pairScenarios) failed(sc, MESSAGES, err);
      return;
    }
    /** The transport of a send or request scenario, and the pairs that run it. */
    const transportOf = (scenario) => Object.keys(TRANSPORTS).find((t) => [TRANSPORTS[t].send, TRANSPORTS[t].request].includes(scenario));
    const of = (scenario) => variants.filter((v) => v.transport === transportOf(scenario));
    const sends = pairScenarios.filter((sc) => sc.startsWith("messages-send-"));
    const requests = pairScenarios.filter((sc) => sc.startsWith("messages-request-"));
    await guarded(bench, sends, () => sendScenario(bench, s, sends.flatMap(of)));
    await guarded(bench, requests, async () => {
      const pairs = new Map();
      for (const sc of requests) {
        const raw = TRANSPORTS[transportOf(sc)].raw;
        pairs.set(raw, await rawPair(bench, dir, raw));
        raws.push(pairs.get(raw));
      }
      await requestScenario(bench, s, requests.flatMap(of), pairs);
    });
    await guarded(bench, pairScenarios.includes("messages-publish-4") ? ["messages-publish-4"] : [], () =>
      publishScenario(
        bench,
        s,
        new Map(variants.filter((v) => v.transport === "unix").map((v) => [v.codec, v.sender])),
        `msgs-unix-${process.pid}`,
      ),
    );
    const unix = variants.filter((v) => v.transport === "unix");
    const callScenarios = pairScenarios.filter((sc) => CALL_SCENARIOS.includes(sc));
    await guarded(bench, callScenarios, () => callsScenario(bench, s, unix, callScenarios, `msgs-unix-${process.pid}`));
    const broadcasts = pairScenarios.filter((sc) => BROADCASTS[sc] !== undefined);
    if (broadcasts.length > 0) await broadcastScenario(bench, s, unix, broadcasts, `msgs-unix-${process.pid}`);
  } finally {
    s.killAll();
    for (const raw of raws) raw.s.killAll();
    await sleep(200);
  }
}

/** Runs `fn` when any of `scenarios` is asked; its error is reported as each one's failure. */
async function guarded(bench, scenarios, fn) {
  if (scenarios.length === 0) return;
  try {
    await fn();
  } catch (err) {
    for (const sc of scenarios) bench.failed(sc, MESSAGES, err);
  }
}

async function sendScenario(bench, s, variants) {
  const { CFG, row, median, round } = bench;
  const cpus = new Map(variants.map((v) => [v, []]));
  const steals = new Map(variants.map((v) => [v, []]));
  const redone = new Map(variants.map((v) => [v, 0]));
  const send = (v, count) => s.call(v.sender, { cmd: "send", codec: v.codec, count, size: SIZE, window: WINDOW });
  const rate = async (v, count, measured = false) => {
    let r;
    if (measured) {
      const round = await undisturbed(() => send(v, count));
      r = round.value;
      cpus.get(v).push(r.cpuUs);
      steals.get(v).push(round.steal);
      redone.set(v, redone.get(v) + round.redone);
    } else r = await send(v, count);
    return count / ((r.endAt - r.startAt) / 1000);
  };
  const counts = new Map();
  for (const v of variants) {
    // Warm up for CFG.warmS of sending (the optimizing compiler and the heap's sizes settle over
    // about a million messages: shorter, and the first rounds measure the warm-up), then a count
    // that lasts about targetS.
    const warmUntil = Date.now() + CFG.warmS * 1000;
    let last = await rate(v, 2000);
    while (Date.now() < warmUntil) last = await rate(v, clamp(last * 0.1, 2000, 200_000));
    counts.set(v, clamp((await rate(v, 20000)) * CFG.targetS, 5000, 2_000_000));
  }
  const rates = new Map(variants.map((v) => [v, []]));
  for (let r = 0; r < CFG.pairRounds; r++) {
    for (const v of variants) rates.get(v).push(await rate(v, counts.get(v), true));
  }
  for (const v of variants) {
    row(TRANSPORTS[v.transport].send, MESSAGES, {
      codec: v.codec,
      transport: v.transport,
      msgs_per_s: median(rates.get(v)),
      window: WINDOW,
      messages: counts.get(v),
      rounds: rates.get(v).map((x) => round(x, 0)),
      // The sender's CPU time per message (µs), and the share of the two pinned cores' time the
      // hypervisor gave to others during each round (steal, %; Linux): why rounds differ.
      sender_cpu_us: round(median(cpus.get(v)), 3),
      ...stealFigures(steals.get(v), redone.get(v)),
    });
  }
}

/** A raw system's host (echoing) and client ("raw-net", "raw-tcp" or "raw-tls"), pinned like the message hosts and senders. */
async function rawPair(bench, dir, system) {
  const s = new bench.Session(byName(system), dir);
  const name = `msgs-${system}-${process.pid}`;
  const host = await s.spawn(0);
  await s.call(host, { cmd: "host", name });
  await s.call(host, { cmd: "expect", mode: "echo", bytes: 0 });
  const sender = await s.spawn(1);
  await s.call(sender, { cmd: "client", name });
  return { s, host, sender, system };
}

/** `raws`: raw system name -> its pair; each transport's variants are paired with its raw system. */
async function requestScenario(bench, s, variants, raws) {
  const { CFG, row, median, pct, round } = bench;
  const measure = new Map();
  for (const [system, raw] of raws) measure.set(system, (count) => raw.s.call(raw.sender, { cmd: "rtt", count, size: SIZE }));
  for (const v of variants) measure.set(v.key, (count) => s.call(v.sender, { cmd: "request-times", codec: v.codec, count, size: SIZE }));
  const keys = [...measure.keys()];
  // A longer warm-up than the socket round trip: more code to optimize on each side.
  for (const k of keys) await measure.get(k)(CFG.rttCount);
  // Short blocks, the systems taking turns (in a rotating order), many rounds: this VM's speed
  // swings within seconds (rounds of 700 µs amid rounds of 100 µs), and a ratio is only fair
  // between blocks that ran at nearly the same moment.
  const samples = new Map(keys.map((k) => [k, []]));
  for (let r = 0; r < CFG.rttBlocks; r++) {
    for (let i = 0; i < keys.length; i++) {
      const k = keys[(r + i) % keys.length];
      samples.get(k).push((await measure.get(k)(CFG.rttBlock)).samples);
    }
  }
  const medians = (k) => samples.get(k).map((v) => median(v));
  const pooled = (k) => samples.get(k).flat();
  for (const v of variants) {
    const raw = TRANSPORTS[v.transport].raw;
    const rawMedians = medians(raw);
    const mine = medians(v.key);
    row(TRANSPORTS[v.transport].request, MESSAGES, {
      codec: v.codec,
      transport: v.transport,
      median_us: median(mine),
      p99_us: pct(pooled(v.key), 0.99),
      // Block by block (each pair of blocks ran moments apart, so it saw the same machine).
      [ratioKey(raw)]: round(median(mine.map((m, i) => m / rawMedians[i])), 3),
      [rawKey(raw, "median_us")]: median(rawMedians),
      [rawKey(raw, "p99_us")]: pct(pooled(raw), 0.99),
      round_trips: CFG.rttBlock * CFG.rttBlocks,
      blocks: CFG.rttBlocks,
      block_medians: mine.map((x) => round(x, 1)),
    });
  }
}

/** Per codec in turn: 4 subscriber processes (not pinned) of that codec's channel, then rounds. */
async function publishScenario(bench, s, senders, name) {
  for (const codec of CODECS) {
    const subscribers = [];
    try {
      await Promise.all(
        Array.from({ length: SUBSCRIBERS }, async () => {
          const pid = await s.spawn();
          subscribers.push(pid);
          await s.call(pid, { cmd: "join", name, codecs: [codec] });
          await s.call(pid, { cmd: "subscribe", codecs: [codec], topic: TOPIC });
        }),
      );
      await publishRounds(bench, s, senders.get(codec), subscribers, codec);
    } finally {
      for (const pid of subscribers) s.kill(pid);
    }
  }
}

/**
 * `count` publishes of 64 bytes to `subscribers` (subscribed to TOPIC with `codec`): deliveries/s
 * from the first publish to the last subscriber's last event, and publishes acknowledged per second.
 */
async function publishOnce(bench, s, publisher, subscribers, codec, count) {
  const { CFG } = bench;
  await Promise.all(subscribers.map((pid) => s.call(pid, { cmd: "expect", codec, count })));
  const from = s.events.length;
  const done = Promise.all(
    subscribers.map((pid) =>
      s.event((e) => e.type === "done" && e.from === pid && e.codec === codec, CFG.callTimeoutMs, "every subscriber's last event", from),
    ),
  );
  done.catch(() => undefined); // awaited below; a failed publish must not leave it unhandled
  const pub = await s.call(publisher, { cmd: "publish", codec, topic: TOPIC, count, size: SIZE, window: WINDOW });
  const last = Math.max(...(await done).map((e) => e.at));
  return {
    deliveriesPerS: (subscribers.length * count) / ((last - pub.startAt) / 1000),
    publishesPerS: count / ((pub.endAt - pub.startAt) / 1000),
  };
}

/** publishOnce's warm-up, then a count of publishes that lasts about CFG.targetS. */
async function publishCount(bench, once, subscribers) {
  const { CFG } = bench;
  await once(2000);
  if (!CFG.quick) await once(10000);
  return clamp(((await once(10000)).deliveriesPerS * CFG.targetS) / subscribers, 2000, 500_000);
}

async function publishRounds(bench, s, publisher, subscribers, codec) {
  const { CFG, row, median, round } = bench;
  const once = (count) => publishOnce(bench, s, publisher, subscribers, codec, count);
  const count = await publishCount(bench, once, subscribers.length);
  const results = [];
  const steals = [];
  let redone = 0;
  for (let r = 0; r < CFG.pairRounds; r++) {
    const kept = await undisturbed(() => once(count));
    results.push(kept.value);
    steals.push(kept.steal);
    redone += kept.redone;
  }
  row("messages-publish-4", MESSAGES, {
    codec,
    deliveries_per_s: median(results.map((r) => r.deliveriesPerS)),
    // How fast the publishes were acknowledged (the host had sent each on to every subscriber).
    publishes_per_s: median(results.map((r) => r.publishesPerS)),
    subscribers: subscribers.length,
    messages: count,
    rounds: results.map((r) => round(r.deliveriesPerS, 0)),
    ...stealFigures(steals, redone),
  });
}

/**
 * A warm-up of CFG.warmS, then a count that lasts about CFG.targetS. `rate(count)`: per second;
 * `first`: the warm-up's first count, then a tenth of a second's worth (within `first` and `max`).
 */
async function calibrate(bench, rate, first, min, max) {
  const { CFG } = bench;
  const until = Date.now() + CFG.warmS * 1000;
  let last = await rate(first);
  do last = await rate(clamp(last * 0.1, first, max));
  while (Date.now() < until);
  return clamp(last * CFG.targetS, min, max);
}

/** Until the host side of calls channel `name` (in `host`) has `n` members. */
async function joined(bench, s, host, name, codec, n) {
  const { CFG, sleep } = bench;
  const deadline = Date.now() + CFG.callTimeoutMs;
  for (;;) {
    const { pids } = await s.call(host, { cmd: "members", name, codec });
    if (pids.length === n) return pids;
    if (Date.now() > deadline) throw new Error(`${name}-${codec}: ${pids.length} members, not ${n}, after ${CFG.callTimeoutMs} ms`);
    await sleep(20);
  }
}

/** Per process: CPU time (µs) and write system calls since `before` (usage answers), summed. */
const spent = (before, after) =>
  after.reduce(
    (sum, a, i) => ({
      cpuUs: sum.cpuUs + a.cpuUs - before[i].cpuUs,
      writes: sum.writes === undefined || a.writes === undefined ? undefined : sum.writes + a.writes - before[i].writes,
    }),
    { cpuUs: 0, writes: 0 },
  );
const usageOf = (s, pids) => Promise.all(pids.map((pid) => s.call(pid, { cmd: "usage" })));
/** A figure per call (µs, or write system calls), median of the rounds; undefined when not measured. */
const perCall = (bench, values, digits) => {
  const seen = values.filter((x) => typeof x === "number" && Number.isFinite(x));
  return seen.length === 0 ? undefined : bench.round(bench.median(seen), digits);
};

/**
 * sendTo and requestTo: per codec, its pair's host process hosts a calls channel of its own,
 * which one member process joins, pinned to the sender's core (cpu 1): the host's calls cross
 * the same two cores as the sender's sends and requests, which they are paired with.
 */
async function callsScenario(bench, s, variants, scenarios, pairName) {
  const name = `${pairName}-sendto`;
  const callees = [];
  try {
    await Promise.all(
      variants.map(async (v) => {
        await s.call(v.host, { cmd: "host-calls", name, codec: v.codec });
        v.callee = await s.spawn(1);
        callees.push(v.callee);
        await s.call(v.callee, { cmd: "join-calls", name, codec: v.codec });
        await joined(bench, s, v.host, name, v.codec, 1);
      }),
    );
    if (scenarios.includes("messages-sendto")) await guarded(bench, ["messages-sendto"], () => sendToRounds(bench, s, variants, name));
    if (scenarios.includes("messages-requestto-rtt"))
      await guarded(bench, ["messages-requestto-rtt"], () => requestToBlocks(bench, s, variants, name));
  } finally {
    for (const pid of callees) s.kill(pid);
  }
}

/** sendTo rounds and send rounds taking turns (in alternating order), per codec. */
async function sendToRounds(bench, s, variants, name) {
  const { CFG, row, median, round } = bench;
  const message = { size: SIZE, window: WINDOW };
  /** kind -> (v, count) -> { startAt, endAt, cpuUs, writes, member? }: the host's sendTo, the pair's send. */
  const kinds = {
    sendto: async (v, count) => {
      const before = await usageOf(s, [v.callee]);
      const r = await s.call(v.host, { ...message, cmd: "sendto", name, codec: v.codec, count });
      return { ...r, member: spent(before, await usageOf(s, [v.callee])) };
    },
    send: async (v, count) => {
      const r = await s.call(v.sender, { ...message, cmd: "send", codec: v.codec, count });
      return { ...r, cpuUs: r.cpuUs * count };
    },
  };
  const perS = (r, count) => count / ((r.endAt - r.startAt) / 1000);
  const state = new Map();
  for (const v of variants) {
    const counts = {};
    for (const [kind, run] of Object.entries(kinds)) {
      counts[kind] = await calibrate(bench, async (count) => perS(await run(v, count), count), 2000, 5000, 2_000_000);
    }
    state.set(v, { counts, sendto: [], send: [], steals: [], redone: 0 });
  }
  for (let r = 0; r < CFG.pairRounds; r++) {
    for (const v of variants) {
      const st = state.get(v);
      const order = r % 2 === 0 ? ["sendto", "send"] : ["send", "sendto"];
      for (const kind of order) {
        const count = st.counts[kind];
        const kept = await undisturbed(() => kinds[kind](v, count));
        st[kind].push({ ...kept.value, perS: perS(kept.value, count), count });
        st.steals.push(kept.steal);
        st.redone += kept.redone;
      }
    }
  }
  for (const v of variants) {
    const st = state.get(v);
    const each = (list, f) => list.map((x) => f(x) / x.count);
    row("messages-sendto", MESSAGES, {
      codec: v.codec,
      transport: v.transport,
      msgs_per_s: median(st.sendto.map((x) => x.perS)),
      // The pair's send() (member to host, the same host process), in the same rounds.
      send_msgs_per_s: median(st.send.map((x) => x.perS)),
      vs_send: round(median(st.sendto.map((x, i) => x.perS / st.send[i].perS)), 3),
      window: WINDOW,
      messages: st.counts.sendto,
      rounds: st.sendto.map((x) => round(x.perS, 0)),
      send_rounds: st.send.map((x) => round(x.perS, 0)),
      // Per call (median of the rounds): CPU time (µs) and write system calls (Linux) of the host
      // and of the member; per send, of the sender.
      host_cpu_us: perCall(
        bench,
        each(st.sendto, (x) => x.cpuUs),
        3,
      ),
      member_cpu_us: perCall(
        bench,
        each(st.sendto, (x) => x.member.cpuUs),
        3,
      ),
      host_writes_per_call: perCall(
        bench,
        each(st.sendto, (x) => x.writes),
        4,
      ),
      member_writes_per_call: perCall(
        bench,
        each(st.sendto, (x) => x.member.writes),
        4,
      ),
      sender_cpu_us: perCall(
        bench,
        each(st.send, (x) => x.cpuUs),
        3,
      ),
      sender_writes_per_send: perCall(
        bench,
        each(st.send, (x) => x.writes),
        4,
      ),
      ...stealFigures(st.steals, st.redone),
    });
  }
}

/** requestTo (host to member) and request (member to host) one at a time, in blocks taking turns (a rotating order). */
async function requestToBlocks(bench, s, variants, name) {
  const { CFG, row, median, pct, round } = bench;
  const measure = new Map();
  for (const v of variants) {
    measure.set(`requestto-${v.codec}`, (count) => s.call(v.host, { cmd: "requestto-times", name, codec: v.codec, count, size: SIZE }));
    measure.set(`request-${v.codec}`, (count) => s.call(v.sender, { cmd: "request-times", codec: v.codec, count, size: SIZE }));
  }
  const keys = [...measure.keys()];
  for (const k of keys) await measure.get(k)(CFG.rttCount);
  const samples = new Map(keys.map((k) => [k, []]));
  for (let r = 0; r < CFG.rttBlocks; r++) {
    for (let i = 0; i < keys.length; i++) {
      const k = keys[(r + i) % keys.length];
      samples.get(k).push((await measure.get(k)(CFG.rttBlock)).samples);
    }
  }
  const medians = (k) => samples.get(k).map((x) => median(x));
  for (const v of variants) {
    const mine = medians(`requestto-${v.codec}`);
    const theirs = medians(`request-${v.codec}`);
    row("messages-requestto-rtt", MESSAGES, {
      codec: v.codec,
      transport: v.transport,
      median_us: median(mine),
      p99_us: pct(samples.get(`requestto-${v.codec}`).flat(), 0.99),
      // Block by block, to the pair's request() (member to host) of the same codec.
      vs_request: round(median(mine.map((m, i) => m / theirs[i])), 3),
      request_median_us: median(theirs),
      request_p99_us: pct(samples.get(`request-${v.codec}`).flat(), 0.99),
      round_trips: CFG.rttBlock * CFG.rttBlocks,
      blocks: CFG.rttBlocks,
      block_medians: mine.map((x) => round(x, 1)),
    });
  }
}

/**
 * Broadcast: per codec, its pair's host process hosts a calls channel of its own; member
 * processes (not pinned) join it and, as subscribers of TOPIC, the pair's channel too: 4 of them,
 * then 12 more for 16. Broadcast rounds (the host) and publish rounds (the pair's sender, to the
 * same processes) take turns. At the end, what the members' handlers counted must be what the
 * host counted from broadcast()'s results.
 */
async function broadcastScenario(bench, s, variants, scenarios, pairName) {
  const { failed } = bench;
  const name = `${pairName}-bcast`;
  const sizes = scenarios.map((sc) => BROADCASTS[sc]).sort((a, b) => a - b);
  for (const v of variants) {
    const members = [];
    /** Deliveries the host counted (warm-ups too), to check against the members' own counts. */
    const counted = { deliveries: 0 };
    try {
      await s.call(v.host, { cmd: "host-calls", name, codec: v.codec });
    } catch (err) {
      for (const n of sizes) failed(`messages-broadcast-${n}`, MESSAGES, err);
      continue;
    }
    try {
      for (const n of sizes) {
        const scenario = `messages-broadcast-${n}`;
        try {
          await Promise.all(
            Array.from({ length: n - members.length }, async () => {
              const pid = await s.spawn();
              members.push(pid);
              await s.call(pid, { cmd: "join", name: pairName, codecs: [v.codec] });
              await s.call(pid, { cmd: "subscribe", codecs: [v.codec], topic: TOPIC });
              await s.call(pid, { cmd: "join-calls", name, codec: v.codec });
            }),
          );
          await joined(bench, s, v.host, name, v.codec, n);
          const figures = await broadcastRounds(bench, s, v, members, name, counted);
          const handled = (await Promise.all(members.map((pid) => s.call(pid, { cmd: "handled", name, codec: v.codec })))).reduce(
            (sum, x) => sum + x.handled,
            0,
          );
          if (handled !== counted.deliveries)
            throw new Error(`the members' handlers ran ${handled} times, broadcast() counted ${counted.deliveries} deliveries`);
          bench.row(scenario, MESSAGES, figures);
        } catch (err) {
          bench.row(scenario, MESSAGES, { codec: v.codec, error: String(err.message || err) });
        }
      }
    } finally {
      for (const pid of members) s.kill(pid);
    }
  }
}

async function broadcastRounds(bench, s, v, members, name, counted) {
  const { CFG, median, round } = bench;
  const n = members.length;
  const broadcast = async (count) => {
    const before = await usageOf(s, members);
    const r = await s.call(v.host, { cmd: "broadcast", name, codec: v.codec, count, size: SIZE, window: WINDOW, members: n });
    counted.deliveries += r.deliveries;
    return { ...r, member: spent(before, await usageOf(s, members)), perS: r.deliveries / ((r.endAt - r.startAt) / 1000) };
  };
  const publish = (count) => publishOnce(bench, s, v.sender, members, v.codec, count);
  // Counts in broadcasts (n deliveries each): a round of about CFG.targetS.
  const count = await calibrate(bench, async (c) => (await broadcast(c)).perS / n, 100, 200, 200_000);
  const publishes = await publishCount(bench, publish, n);
  const rounds = { broadcast: [], publish: [] };
  const steals = [];
  let redone = 0;
  for (let r = 0; r < CFG.pairRounds; r++) {
    const order = r % 2 === 0 ? ["broadcast", "publish"] : ["publish", "broadcast"];
    for (const kind of order) {
      const kept = await undisturbed(() => (kind === "broadcast" ? broadcast(count) : publish(publishes)));
      rounds[kind].push(kept.value);
      steals.push(kept.steal);
      redone += kept.redone;
    }
  }
  const rates = rounds.broadcast.map((x) => x.perS);
  const publishRates = rounds.publish.map((x) => x.deliveriesPerS);
  const each = (f) => rounds.broadcast.map((x) => f(x) / x.deliveries);
  return {
    codec: v.codec,
    transport: v.transport,
    deliveries_per_s: median(rates),
    broadcasts_per_s: median(rates) / n,
    // publish() from the pair's sender to the same processes, in the same rounds.
    publish_deliveries_per_s: median(publishRates),
    vs_publish: round(median(rates.map((x, i) => x / publishRates[i])), 3),
    members: n,
    window: WINDOW,
    broadcasts: count,
    publishes,
    rounds: rates.map((x) => round(x, 0)),
    publish_rounds: publishRates.map((x) => round(x, 0)),
    // Per delivery (median of the rounds): CPU time (µs) and write system calls (Linux) of the
    // host, and of all members together.
    host_cpu_us: perCall(
      bench,
      each((x) => x.cpuUs),
      3,
    ),
    member_cpu_us: perCall(
      bench,
      each((x) => x.member.cpuUs),
      3,
    ),
    host_writes_per_call: perCall(
      bench,
      each((x) => x.writes),
      4,
    ),
    member_writes_per_call: perCall(
      bench,
      each((x) => x.member.writes),
      4,
    ),
    ...stealFigures(steals, redone),
  };
}

/**
 * Failover under load. The group forms one member at a time (the first hosts), then every member
 * streams; CFG.messageKills times: let the stream run, SIGKILL the host (only the host), wait
 * until the survivors are back on one new host, start a replacement member and let it join.
 * At the end the survivors stop and wait for their last acknowledgement, then the hosts' logs
 * are read.
 */
async function runMessageFailover(bench, dir) {
  const { Session, CFG, row, failed, agreement, killHost, median, round, sleep } = bench;
  const s = new Session(MESSAGES, dir);
  const logDir = fs.mkdtempSync(path.join(dir, "messages-failover-"));
  const name = `msgfail-${process.pid}`;
  try {
    const join = async () => {
      const pid = await s.spawn();
      await s.call(pid, { cmd: "member", name, logDir, timeoutMs: CFG.memberTimeoutMs });
      return pid;
    };
    const pids = [];
    const from = s.events.length;
    try {
      for (let i = 0; i < MEMBERS; i++) {
        pids.push(await join());
        await agreement(s, pids, from);
      }
    } catch (err) {
      throw new Error(`the group of ${MEMBERS} never formed, one member at a time: ${err.message}`);
    }
    let { host } = await agreement(s, pids, from);
    for (const pid of pids) await s.call(pid, { cmd: "stream", window: WINDOW });
    let alive = [...pids];
    const killed = [];
    const times = [];
    for (let k = 0; k < CFG.messageKills; k++) {
      await sleep(CFG.messageStreamMs);
      killed.push(host);
      const next = await killHost(s, host, alive, k);
      const since = next.since;
      alive = next.survivors;
      times.push(next.ms);
      host = next.host;
      const pid = await join();
      const onHost = (e) => e.type === "welcome" && e.from === pid && e.hostPid === host;
      await s.event(onHost, CFG.agreeMs, `replacement ${k + 1} on the new host`, since);
      await s.call(pid, { cmd: "stream", window: WINDOW });
      alive.push(pid);
    }
    await sleep(CFG.messageStreamMs);
    const crashes = s.events.filter((e) => e.type === "crash");
    if (crashes.length > 0) throw new Error(`a member crashed: ${crashes[0].error}`);
    const finals = new Map();
    await Promise.all(alive.map(async (pid) => finals.set(pid, await s.call(pid, { cmd: "stop" }))));
    s.killAll();
    await sleep(200);
    row("messages-failover", MESSAGES, {
      codec: "structured",
      ...tally(logDir, finals, killed),
      members: MEMBERS,
      kills: times.length,
      reconnect_median_ms: median(times),
      reconnect_max_ms: Math.max(...times),
      rounds: times.map((t) => round(t, 1)),
    });
  } catch (err) {
    failed("messages-failover", MESSAGES, err);
  } finally {
    s.killAll();
    await sleep(200);
    fs.rmSync(logDir, { recursive: true, force: true });
  }
}

/**
 * What the hosts' logs say about every member's stream. `finals`: pid -> the survivor's own
 * count after its last acknowledgement; `killed`: the pids SIGKILLed as the host, whose counts come
 * from their `sent-<pid>` file (as of their last burst).
 */
function tally(logDir, finals, killed) {
  /** pid -> n -> deliveries, and deliveries without the redelivered flag. */
  const seen = new Map();
  let deliveries = 0;
  let outOfOrder = 0;
  const files = fs.readdirSync(logDir).filter((f) => f.startsWith("host-"));
  for (const file of files) {
    const last = new Map();
    const text = fs.readFileSync(path.join(logDir, file), "latin1");
    // The last line of a SIGKILLed host may be cut short: only whole lines count.
    for (let at = 0, nl = text.indexOf("\n"); nl >= 0; at = nl + 1, nl = text.indexOf("\n", at)) {
      const [from, n, flag] = text.slice(at, nl).split(" ").map(Number);
      let m = seen.get(from);
      if (m === undefined) {
        m = { count: [], unflagged: [] };
        seen.set(from, m);
      }
      m.count[n] = (m.count[n] ?? 0) + 1;
      if (flag === 0) m.unflagged[n] = (m.unflagged[n] ?? 0) + 1;
      deliveries++;
      // Within one host, each member's stream arrives in order.
      if (n <= (last.get(from) ?? 0)) outOfOrder++;
      last.set(from, n);
    }
  }
  let delivered = 0;
  let duplicated = 0;
  let unflagged = 0;
  for (const m of seen.values()) {
    for (const c of m.count) {
      if (!c) continue;
      delivered++;
      duplicated += c - 1;
    }
    for (const c of m.unflagged) if (c > 1) unflagged += c - 1;
  }
  const missing = (pid, upTo) => {
    const count = seen.get(pid)?.count ?? [];
    let n = 0;
    for (let i = 1; i <= upTo; i++) if (!count[i]) n++;
    return n;
  };
  let sent = 0;
  let acknowledged = 0;
  let lost = 0;
  let sendErrors = 0;
  for (const [pid, f] of finals) {
    sent += f.sent;
    acknowledged += f.acked;
    sendErrors += f.failed;
    lost += missing(pid, f.sent);
  }
  let sentByKilled = 0;
  let ackedByKilled = 0;
  let deliveredOfThose = 0;
  for (const pid of killed) {
    const file = path.join(logDir, `sent-${pid}`);
    const [s, a] = fs.existsSync(file) ? fs.readFileSync(file, "utf8").trim().split(" ").map(Number) : [0, 0];
    sentByKilled += s;
    ackedByKilled += a;
    // Acknowledged to a member that then died as the host: delivered all the same, or lost.
    lost += missing(pid, a);
    for (const c of seen.get(pid)?.count ?? []) if (c) deliveredOfThose++;
  }
  return {
    sent: sent + sentByKilled,
    acknowledged: acknowledged + ackedByKilled,
    delivered,
    deliveries,
    lost,
    duplicated,
    duplicated_unflagged: unflagged,
    out_of_order: outOfOrder,
    sent_by_killed_hosts: sentByKilled,
    acknowledged_by_killed_hosts: ackedByKilled,
    delivered_of_those: deliveredOfThose,
    send_errors: sendErrors,
    hosts: files.length,
  };
}

module.exports = { runMessages, SCENARIOS };
