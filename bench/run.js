#!/usr/bin/env node
"use strict";
/**
 * open-channel side by side with raw net (the limit), node-ipc 9.2.1, zeromq 6 and the published
 * open-channel 0.1.12, open-channel over its tcp transport beside raw net over TCP loopback (its
 * limit), open-channel over its Redis transport with TLS beside raw TLS over the same addresses
 * ("cross-machine": bench/redis-tls.js), then open-channel's message layer on its own
 * (bench/messages.js), in one run on this machine. Writes bench/results/latest.{json,md,svg}.
 *
 *   npm run bench                 # the full run (about 3 min on 2 cores)
 *   npm run bench -- --quick      # a smoke run (about a minute): fewer rounds, scaling 2 and 8 only
 *   npm run bench -- --only open-channel,raw-net          # systems: their side-by-side scenarios
 *   npm run bench -- --only open-channel-tcp,raw-tcp      # the same over TCP loopback
 *   npm run bench -- --only open-channel-redis-tls,raw-tls   # cross-machine: Redis transport, TLS
 *   npm run bench -- --only messages-send-64B,messages-failover   # scenarios of the message layer
 *   npm run bench -- --only open-channel-messages         # all of them
 *
 * Every system runs the same scenarios with the same payloads and process layout: a host process
 * and separate sender processes (bench/worker.js). Each figure is the median of several rounds
 * after a warm-up. A system that cannot do a scenario (no self-hosting: no election, no failover)
 * says so; one that fails is reported as failed, with the error. The bench never decides pass/fail.
 */
const { execFileSync, fork, spawn } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { MESSAGES, SYSTEMS, ratioKey } = require("./systems");
const { runMessages, SCENARIOS: MESSAGE_SCENARIOS } = require("./messages");
const { writeReports } = require("./report");
const { startRedis } = require("./redis-tls");
const { cpuTicks, othersPct, stealFigures, stealPct, stealSnapshot, treeCpuUs, undisturbed } = require("./steal");

const argv = process.argv.slice(2);
const option = (name) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const QUICK = argv.includes("--quick");
const ONLY = option("only")
  ?.split(",")
  .map((x) => x.trim())
  .filter(Boolean);
{
  const known = [...SYSTEMS.map((s) => s.name), MESSAGES.name, ...MESSAGE_SCENARIOS];
  const unknown = ONLY?.filter((x) => !known.includes(x)) ?? [];
  if (unknown.length > 0) {
    console.error(`--only: no system or scenario named ${unknown.join(", ")}; one of: ${known.join(", ")}`);
    process.exit(2);
  }
}
const OUT = path.resolve(option("out") ?? path.join(__dirname, "results"));

const CFG = QUICK
  ? {
      quick: true,
      pairRounds: 2,
      targetS: 0.15,
      warmS: 0.3,
      rttCount: 500,
      rttBlock: 200,
      rttBlocks: 5,
      mibCount: 10,
      connectCount: 5,
      scaling: [2, 8],
      elections: 2,
      kills: 2,
      messageKills: 3,
      messageStreamMs: 250,
      callTimeoutMs: 15000,
      agreeMs: 4000,
      memberTimeoutMs: 2500,
    }
  : {
      pairRounds: 9,
      targetS: 0.15,
      warmS: 1.5,
      rttCount: 1000,
      rttBlock: 200,
      rttBlocks: 45,
      mibCount: 40,
      connectCount: 5,
      scaling: [2, 4, 8, 16],
      elections: 5,
      kills: 5,
      messageKills: 10,
      messageStreamMs: 400,
      callTimeoutMs: 30000,
      agreeMs: 8000,
      memberTimeoutMs: 5000,
    };
const MIB = 1 << 20;

/**
 * On a small, noisy machine the scheduler's placement of a host and its sender (same core or not)
 * changes large-message throughput several-fold from one process pair to the next. Each pair's
 * host and sender are pinned to two different cores, the same for every system, when `taskset`
 * is there (Linux, 2+ cores); the added senders of the scaling runs share the sender's core.
 */
const TASKSET = (() => {
  if (process.platform !== "linux" || os.cpus().length < 2 || argv.includes("--no-pin")) return undefined;
  try {
    execFileSync("taskset", ["-c", "0", "true"], { stdio: "ignore" });
    return "taskset";
  } catch {
    return undefined;
  }
})();

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? null : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? null : s[Math.min(s.length - 1, Math.floor(p * s.length))];
};
const round = (x, digits = 1) => (x === null || x === undefined ? null : Number(x.toFixed(digits)));
const log = (...a) => console.error("[bench]", ...a);

/** Every worker of every session: SIGKILLed when this process exits, however it exits. */
const allChildren = new Set();
process.on("exit", () => {
  for (const child of allChildren) child.kill("SIGKILL");
});

/** The worker processes of one system, with request/response over IPC and awaitable events. */
class Session {
  constructor(system, dir) {
    this.system = system;
    this.dir = dir;
    this.workers = new Map();
    this.pending = new Map();
    this.events = [];
    this.waiters = new Set();
    this.nextId = 1;
  }

  /** Starts a worker; `cpu` pins it to one core (Linux, with taskset) for like-for-like pairs. */
  async spawn(cpu) {
    const entry = path.join(
      __dirname,
      this.system.worker ?? (this.system.name === "open-channel-0.1.12" ? "worker-0.1.12.js" : "worker.js"),
    );
    const options = {
      env: {
        ...process.env,
        // Each system says its transport itself: a user's OPEN_CHANNEL_TRANSPORT must not turn
        // the Unix socket columns into TCP ones.
        OPEN_CHANNEL_TRANSPORT: undefined,
        BENCH_SYSTEM: this.system.name,
        BENCH_DIR: this.dir,
        BENCH_MEMBER_TIMEOUT: String(CFG.memberTimeoutMs),
      },
      stdio: ["ignore", "ignore", "pipe", "ipc"],
    };
    const child =
      cpu !== undefined && TASKSET !== undefined
        ? spawn(TASKSET, ["-c", String(cpu), process.execPath, "--expose-gc", entry], options)
        : fork(entry, [], { ...options, execArgv: ["--expose-gc"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr = (stderr + d).slice(-2000)));
    child.on("message", (m) => {
      if (m.id !== undefined && this.pending.has(m.id)) {
        const { resolve } = this.pending.get(m.id);
        this.pending.delete(m.id);
        resolve(m);
        return;
      }
      this.events.push({ ...m, from: child.pid });
      for (const wake of [...this.waiters]) wake();
    });
    allChildren.add(child);
    child.on("exit", () => {
      this.workers.delete(child.pid);
      allChildren.delete(child);
    });
    this.workers.set(child.pid, { child, stderr: () => stderr });
    await this.event((e) => e.type === "ready" && e.from === child.pid, 20000, "worker start");
    return child.pid;
  }

  call(pid, msg, timeoutMs = CFG.callTimeoutMs) {
    const worker = this.workers.get(pid);
    if (worker === undefined) return Promise.reject(new Error(`worker ${pid} is gone`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${msg.cmd}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (m) => {
          clearTimeout(timer);
          if (m.error !== undefined) reject(new Error(`${msg.cmd}: ${m.error}`));
          else resolve(m);
        },
      });
      worker.child.send({ ...msg, id });
    });
  }

  /** Resolves with the first event (since `from`) matching `match`. */
  event(match, timeoutMs = CFG.callTimeoutMs, what = "event", from = 0) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.events.slice(from).find(match);
        if (found === undefined) return false;
        cleanup();
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${what}: not within ${timeoutMs} ms`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  kill(pid) {
    const w = this.workers.get(pid);
    if (w) w.child.kill("SIGKILL");
  }

  killAll() {
    for (const { child } of this.workers.values()) child.kill("SIGKILL");
  }
}

const rows = [];
function row(scenario, system, figures) {
  const r = { scenario, system: system.name, ...figures };
  rows.push(r);
  const shown = Object.entries(figures)
    .filter(([k]) => k !== "rounds" && k !== "samples")
    .map(([k, v]) => `${k}=${typeof v === "number" ? round(v, 2) : v}`)
    .join(" ");
  log(`${scenario.padEnd(20)} ${system.name.padEnd(21)} ${shown}`);
}
const failed = (scenario, system, err) => row(scenario, system, { error: String(err.message || err) });

/** The scenarios of a system in the side-by-side table besides scaling and memory. */
const PAIR_SCENARIOS = ["throughput-64B", "round-trip", "throughput-1MiB", "connect", "election-4", "failover"];

/**
 * One counted transfer: host expects `count` x `size` bytes from `senders`; returns ms, msgs/s, and
 * the CPU time per message (µs) of the host and of all senders together.
 */
async function transfer(s, host, senders, count, size) {
  await s.call(host, { cmd: "expect", mode: "count", bytes: count * size * senders.length });
  const from = s.events.length;
  const done = s.event((e) => e.type === "done" && e.from === host, CFG.callTimeoutMs, "the host to receive everything", from);
  done.catch(() => undefined); // awaited below; a failed send must not leave it unhandled
  const sent = await Promise.all(senders.map((pid) => s.call(pid, { cmd: "send", count, size })));
  const d = await done;
  const ms = d.at - Math.min(...sent.map((x) => x.startAt));
  const messages = count * senders.length;
  const sendersCpuUs = sent.reduce((sum, x) => sum + (x.cpuUs ?? 0), 0);
  return {
    ms,
    msgsPerS: messages / (ms / 1000),
    hostCpuUs: d.cpuUs / messages,
    sendersCpuUs: sendersCpuUs / messages,
    cpuUs: d.cpuUs + sendersCpuUs,
  };
}

/** transfer(), with the share of the cores (%) that processes outside the bench used meanwhile. */
async function watchedTransfer(s, host, senders, count, size) {
  const ticks = cpuTicks();
  const mine = process.cpuUsage();
  const x = await transfer(s, host, senders, count, size);
  const own = process.cpuUsage(mine);
  const others = othersPct(ticks, cpuTicks(), x.cpuUs + own.user + own.system);
  return { ...x, othersPct: others ?? null };
}

/** The median and each round's share of the cores (%) used by processes outside the bench. */
function othersFigures(values) {
  const seen = values.filter((x) => typeof x === "number");
  if (seen.length === 0) return {};
  return { others_cpu_pct: round(median(seen), 1), rounds_others_cpu_pct: values.map((x) => (x === null ? null : round(x, 1))) };
}

const channelName = (system) => `bench-${process.pid}-${system.name.replace(/[^a-z0-9]/gi, "")}`;

/** Median of round-by-round ratios (rounds ran back to back, so each pair of them saw the same machine). */
function pairedRatio(mine, base) {
  if (!mine || !base) return undefined;
  const n = Math.min(mine.length, base.length);
  return n === 0 ? undefined : round(median(Array.from({ length: n }, (_, i) => mine[i] / base[i])), 3);
}

/**
 * `{ vs_raw_net: x }` (or vs_raw_tcp): the paired ratio of `p`'s rounds to those of its system's
 * limit among `pairs`; `values`: pair -> its rounds' figures. Nothing for a raw system.
 */
function vsLimit(pairs, p, values) {
  const limit = pairs.find((x) => x.system.name === p.system.limit);
  if (p.system.limit === undefined) return {};
  return { [ratioKey(p.system.limit)]: limit === undefined ? undefined : pairedRatio(values.get(p), values.get(limit)) };
}

/**
 * One host and one sender per system, all started first; then every round of every scenario runs
 * each system in turn, so that a noisy moment of the machine hits all of them alike and the ratios
 * to raw net compare like with like.
 */
async function runPairs(systems, dir) {
  const pairs = [];
  for (const system of systems) {
    const s = new Session(system, dir);
    const pair = { system, s, ok: true, error: undefined };
    pairs.push(pair);
    try {
      pair.host = await s.spawn(0);
      await s.call(pair.host, { cmd: "host", name: channelName(system) });
      pair.sender = await s.spawn(1);
      await s.call(pair.sender, { cmd: "client", name: channelName(system) });
    } catch (err) {
      pair.ok = false;
      pair.error = err;
    }
  }
  const live = () => pairs.filter((p) => p.ok);
  const guard = async (pair, scenario, fn) => {
    if (!pair.ok) return;
    try {
      await fn();
    } catch (err) {
      // Reported; the later scenarios still run (each starts from a clean "expect").
      failed(scenario, pair.system, err);
    }
  };

  // Throughput, 64 B: calibrate each system to about targetS per round, then interleave rounds.
  const tp = new Map();
  for (const p of live()) {
    await guard(p, "throughput-64B", async () => {
      await transfer(p.s, p.host, [p.sender], 2000, 64);
      const warm = await transfer(p.s, p.host, [p.sender], 10000, 64);
      tp.set(p, { count: Math.max(500, Math.min(1_000_000, Math.round(warm.msgsPerS * CFG.targetS))), rates: [], cpu: [] });
    });
  }
  // A system whose calibration failed (reported) has no entry: it sits the rounds out.
  for (let r = 0; r < CFG.pairRounds; r++) {
    for (const p of live().filter((x) => tp.has(x)))
      await guard(p, "throughput-64B", async () => {
        const t = tp.get(p);
        const x = await watchedTransfer(p.s, p.host, [p.sender], t.count, 64);
        t.rates.push(x.msgsPerS);
        t.cpu.push(x);
      });
  }
  const paired = (p, values) => vsLimit(pairs, p, values);
  const rates = new Map([...tp].map(([p, t]) => [p, t.rates]));
  for (const p of live()) {
    const t = tp.get(p);
    if (t === undefined || t.rates.length === 0) continue;
    row("throughput-64B", p.system, {
      msgs_per_s: median(t.rates),
      ...paired(p, rates),
      messages: t.count,
      rounds: t.rates.map((x) => round(x, 0)),
      // CPU time per message (µs, median of the rounds) of the host and of the sender.
      host_cpu_us: round(median(t.cpu.map((x) => x.hostCpuUs)), 3),
      sender_cpu_us: round(median(t.cpu.map((x) => x.sendersCpuUs)), 3),
      ...othersFigures(t.cpu.map((x) => x.othersPct)),
    });
  }

  // Round trip: ping-pong of 64 B, the host echoing.
  const rtts = new Map();
  for (const p of live()) {
    await guard(p, "round-trip", async () => {
      await p.s.call(p.host, { cmd: "expect", mode: "echo", bytes: 0 });
      await p.s.call(p.sender, { cmd: "rtt", count: Math.round(CFG.rttCount / 4), size: 64 });
      rtts.set(p, []);
    });
  }
  for (let r = 0; r < CFG.pairRounds; r++) {
    for (const p of live().filter((x) => rtts.has(x)))
      await guard(p, "round-trip", async () =>
        rtts.get(p).push((await p.s.call(p.sender, { cmd: "rtt", count: CFG.rttCount, size: 64 })).samples),
      );
  }
  const rttMedians = new Map([...rtts].map(([p, x]) => [p, x.map((v) => median(v))]));
  for (const p of live()) {
    const x = rtts.get(p);
    if (x === undefined || x.length === 0) continue;
    row("round-trip", p.system, {
      median_us: median(x.map((v) => median(v))),
      p99_us: median(x.map((v) => pct(v, 0.99))),
      ...paired(p, rttMedians),
      round_trips: CFG.rttCount,
      rounds: x.map((v) => round(median(v), 1)),
    });
  }

  // 1 MiB messages: up to mibCount per round, fewer for a system too slow to take them in time.
  const mib = new Map();
  const mibCounts = new Map();
  for (const p of live()) {
    await guard(p, "throughput-1MiB", async () => {
      const warm = await transfer(p.s, p.host, [p.sender], 2, MIB);
      const perS = warm.msgsPerS;
      mibCounts.set(p, Math.max(2, Math.min(CFG.mibCount, Math.round(perS * CFG.targetS * 2))));
      mib.set(p, []);
    });
  }
  for (let r = 0; r < CFG.pairRounds; r++) {
    for (const p of live()) {
      if (!mib.has(p)) continue;
      await guard(p, "throughput-1MiB", async () => {
        const n = mibCounts.get(p);
        mib.get(p).push((n * MIB) / 1e6 / ((await transfer(p.s, p.host, [p.sender], n, MIB)).ms / 1000));
      });
    }
  }
  for (const p of live()) {
    if (mib.has(p) && mib.get(p).length > 0) {
      row("throughput-1MiB", p.system, {
        mb_per_s: median(mib.get(p)),
        ...paired(p, mib),
        messages: mibCounts.get(p),
        rounds: mib.get(p).map((x) => round(x, 1)),
      });
    }
  }

  // Connect time to the live host (and a first echo), each system in turn.
  const conn = new Map();
  for (const p of live()) {
    await guard(p, "connect", async () => {
      await p.s.call(p.host, { cmd: "expect", mode: "echo", bytes: 0 });
      await p.s.call(p.sender, { cmd: "connect-times", name: channelName(p.system), count: 2 });
      conn.set(p, []);
    });
  }
  for (let r = 0; r < CFG.pairRounds; r++) {
    for (const p of live().filter((x) => conn.has(x)))
      await guard(p, "connect", async () =>
        conn
          .get(p)
          .push((await p.s.call(p.sender, { cmd: "connect-times", name: channelName(p.system), count: CFG.connectCount })).samples),
      );
  }
  const connMedians = new Map([...conn].map(([p, x]) => [p, x.map((v) => median(v))]));
  for (const p of live()) {
    const x = conn.get(p)?.flat() ?? [];
    if (x.length === 0) continue;
    row("connect", p.system, { median_ms: median(x), max_ms: Math.max(...x), ...paired(p, connMedians), connects: x.length });
  }
  return pairs;
}

/**
 * Memory and scaling of a group of pairs (the systems measured against one raw system, with it),
 * on the pairs' hosts. For each sender count every system of the group gets that many senders
 * (the pair's sender and more, all on the sender's core, the host on its own: unpinned, where the
 * scheduler put them swung a round's rate over TCP several-fold, raw net's too), then the rounds take turns between the
 * systems in a rotating order, as the one-sender rounds do: a noisy moment hits all of them alike,
 * and (xN) is the median of the round-by-round ratios to the raw system. A round during which the
 * hypervisor took over 10% of the cores is run again (see steal.js).
 */
async function runScaling(group) {
  const scenarios = ["memory", ...CFG.scaling.map((n) => `scaling-${n}`)];
  const last = CFG.scaling[CFG.scaling.length - 1];
  /** pair -> { senders, idle, one }; a pair leaves it at its first failure to set up. */
  const state = new Map();
  const fail = (pair, from, err) => {
    for (const sc of scenarios.slice(scenarios.indexOf(from))) failed(sc, pair.system, err);
    if (from !== "memory" && !state.get(pair)?.memoryDone) failed("memory", pair.system, err);
    state.delete(pair);
  };
  for (const pair of group) {
    if (!pair.ok) {
      for (const sc of scenarios) failed(sc, pair.system, pair.error ?? new Error("the host or the sender did not start"));
      continue;
    }
    try {
      const idle = (await pair.s.call(pair.sender, { cmd: "rss" })).rss;
      const one = await pair.s.call(pair.host, { cmd: "rss" });
      state.set(pair, { senders: [pair.sender], idle, one, memoryDone: false });
    } catch (err) {
      for (const sc of scenarios) failed(sc, pair.system, err);
    }
  }
  for (const n of CFG.scaling) {
    const scenario = `scaling-${n}`;
    /** pair -> its calibrated count and its rounds */
    const runs = new Map();
    for (const [pair, st] of [...state]) {
      const { system, s } = pair;
      try {
        while (st.senders.length < n) {
          const pid = await s.spawn(1);
          await s.call(pid, { cmd: "client", name: channelName(system) });
          st.senders.push(pid);
        }
      } catch (err) {
        fail(pair, scenario, err);
        continue;
      }
      try {
        if (n === last) {
          const withN = await s.call(pair.host, { cmd: "rss" });
          row("memory", system, {
            idle_member_mb: st.idle / MIB,
            host_kb_per_member: (withN.rss - st.one.rss) / 1024 / (n - 1),
            // How much the host's RSS moved between samples: a per-member figure whose total is
            // within it is below what RSS can show.
            rss_noise_kb: Math.max(st.one.spread, withN.spread) / 1024,
            members: n,
          });
          st.memoryDone = true;
        }
        // A warm-up, then a count that lasts about targetS, in two steps: a short transfer's rate is
        // mostly the senders' staggered start (one command each), which would make rounds short.
        await transfer(s, pair.host, st.senders, 2000, 64);
        const perSender = (x) => Math.max(500, Math.min(1_000_000, Math.round((x.msgsPerS * CFG.targetS) / n)));
        const warm = await transfer(s, pair.host, st.senders, Math.max(2000, Math.round(10000 / n)), 64);
        const count = perSender(await transfer(s, pair.host, st.senders, perSender(warm), 64));
        // Then as long a warm-up as the one-sender rows': new senders' first rounds ran 5-15% slow
        // (their send path not yet optimized), raw net's far less (less code to optimize).
        for (const until = Date.now() + CFG.warmS * 1000; Date.now() < until; ) await transfer(s, pair.host, st.senders, count, 64);
        runs.set(pair, { count, rates: [], hostCpu: [], sendersCpu: [], others: [], steals: [], redone: 0, failed: false });
      } catch (err) {
        failed(scenario, system, err);
        if (n === last && !st.memoryDone) failed("memory", system, err);
      }
    }
    const order = [...runs.keys()];
    for (let r = 0; r < CFG.pairRounds; r++) {
      for (let i = 0; i < order.length; i++) {
        const pair = order[(r + i) % order.length];
        const run = runs.get(pair);
        // A system that failed a round sits the rest out (a late byte of it would count in the next).
        if (run.failed) continue;
        try {
          const kept = await undisturbed(() => watchedTransfer(pair.s, pair.host, state.get(pair).senders, run.count, 64));
          run.rates.push(kept.value.msgsPerS);
          run.others.push(kept.value.othersPct);
          run.hostCpu.push(kept.value.hostCpuUs);
          run.sendersCpu.push(kept.value.sendersCpuUs);
          run.steals.push(kept.steal);
          run.redone += kept.redone;
        } catch (err) {
          run.failed = true;
          failed(scenario, pair.system, err);
        }
      }
    }
    const rates = new Map([...runs].map(([pair, run]) => [pair, run.rates]));
    // The group's raw system (the only one without a limit of its own), if it ran.
    const limit = group.find((x) => x.system.limit === undefined);
    for (const [pair, run] of runs) {
      // A failed system has its failure row already (rounds before it are no figure).
      if (run.rates.length === 0 || run.failed) continue;
      const base = pair === limit ? undefined : runs.get(limit)?.rates;
      row(scenario, pair.system, {
        msgs_per_s: median(run.rates),
        ...vsLimit(group, pair, rates),
        // Each round's ratio: how far one pair of rounds is from the next on this machine.
        ...(base === undefined ? {} : { rounds_ratio: run.rates.slice(0, base.length).map((x, i) => round(x / base[i], 2)) }),
        senders: n,
        messages_each: run.count,
        rounds: run.rates.map((x) => round(x, 0)),
        // CPU time per message (µs, median of the rounds): the host's, and all senders' together.
        // Two cores: at a few senders the machine is full, and these say where its time goes.
        host_cpu_us: round(median(run.hostCpu), 3),
        senders_cpu_us: round(median(run.sendersCpu), 3),
        ...stealFigures(run.steals, run.redone),
        ...othersFigures(run.others),
      });
    }
  }
}

/** Election: 4 processes open the channel at the same moment; until all agree on one host. */
async function runElection(system, dir) {
  const s = new Session(system, dir);
  try {
    const pids = [];
    for (let i = 0; i < 4; i++) pids.push(await s.spawn());
    const times = [];
    for (let r = 0; r < CFG.elections; r++) {
      const name = `elect-${process.pid}-${r}`;
      const from = s.events.length;
      const t0 = now();
      await Promise.all(pids.map((pid) => s.call(pid, { cmd: "member", name })));
      const result = await agreement(s, pids, from);
      times.push(result.at - t0);
      await sleep(100);
    }
    row("election-4", system, { median_ms: median(times), max_ms: Math.max(...times), rounds: times.map((t) => round(t, 1)) });
  } catch (err) {
    failed("election-4", system, err);
  } finally {
    s.killAll();
    await sleep(200);
  }
}

/** Waits until every pid got a welcome (after `from`) from one and the same live host. */
/**
 * SIGKILLs the host of `alive`, then waits until the others agree on one new host among them:
 * the survivors, the new host, the ms from the kill, and the event index the kill came at.
 */
async function killHost(s, host, alive, k) {
  const since = s.events.length;
  const t0 = now();
  s.kill(host);
  const survivors = alive.filter((p) => p !== host);
  const result = await agreement(s, survivors, since).catch((err) => {
    throw new Error(`after SIGKILL ${k + 1} of the host: ${err.message}`);
  });
  return { survivors, host: result.host, ms: result.at - t0, since };
}

async function agreement(s, pids, from, timeoutMs = CFG.agreeMs) {
  const deadline = now() + timeoutMs;
  for (;;) {
    const latest = new Map();
    for (const e of s.events.slice(from)) if (e.type === "welcome" && pids.includes(e.pid) && e.hostPid !== undefined) latest.set(e.pid, e);
    const errors = s.events.slice(from).filter((e) => e.type === "welcome" && e.error !== undefined);
    if (latest.size === pids.length) {
      const hosts = new Set([...latest.values()].map((e) => e.hostPid));
      const [host] = hosts;
      if (hosts.size === 1 && pids.includes(host)) return { host, at: Math.max(...[...latest.values()].map((e) => e.at)) };
    }
    const left = deadline - now();
    if (left <= 0) {
      const why =
        errors.length > 0
          ? `errors: ${[...new Set(errors.map((e) => e.error))].join(", ")}`
          : `${latest.size} of ${pids.length} members back`;
      throw new Error(`no agreement on one host within ${timeoutMs} ms (${why})`);
    }
    await s.event((e) => e.type === "welcome", left, "welcome", s.events.length).catch(() => undefined);
  }
}

/** Failover: 5 members; SIGKILL the host; until every survivor hears a welcome from one new host. */
async function runFailover(system, dir) {
  const s = new Session(system, dir);
  try {
    const name = `failover-${process.pid}`;
    const pids = [];
    // The group forms one process at a time, each started and joined before the next (the first
    // hosts): this scenario is about failover, not about the race of a first election.
    const from = s.events.length;
    try {
      for (let i = 0; i < 5; i++) {
        pids.push(await s.spawn());
        await s.call(pids[i], { cmd: "member", name });
        await agreement(s, pids.slice(0, i + 1), from);
      }
    } catch (err) {
      throw new Error(`the group of 5 never formed, one member at a time: ${err.message}`);
    }
    let { host } = await agreement(s, pids, from);
    const times = [];
    let alive = [...pids];
    for (let k = 0; k < CFG.kills && alive.length > 2; k++) {
      // A settled group, as in `npm run chaos`: the heir has been chosen.
      await sleep(500);
      const next = await killHost(s, host, alive, k);
      alive = next.survivors;
      times.push(next.ms);
      host = next.host;
    }
    row("failover", system, {
      median_ms: median(times),
      max_ms: Math.max(...times),
      kills: times.length,
      rounds: times.map((t) => round(t, 1)),
    });
  } catch (err) {
    failed("failover", system, err);
  } finally {
    s.killAll();
    await sleep(200);
  }
}

/** `before`: stealSnapshot(), cpuTicks(), treeCpuUs() and os.loadavg() at the start of the run. */
function machine(before) {
  const cpus = os.cpus();
  const steal = stealPct(before.steal);
  const tree = treeCpuUs();
  const others = tree === undefined || before.tree === undefined ? undefined : othersPct(before.cpu, cpuTicks(), tree - before.tree);
  return {
    cpu: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    memory_gb: round(os.totalmem() / 1024 ** 3, 1),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    date: new Date().toISOString(),
    quick: QUICK,
    pinned: TASKSET !== undefined ? "host on cpu 0, sender on cpu 1 (pair scenarios)" : "no",
    pair_rounds: CFG.pairRounds,
    rtt_blocks: CFG.rttBlocks,
    rtt_block: CFG.rttBlock,
    // How busy the machine was besides this run: the hypervisor's share of cores 0 and 1 over the
    // whole run (steal, %; Linux), and the load average (1 min) at its start and end.
    steal_pct_run: steal === undefined ? undefined : round(steal, 1),
    // The share of all cores that processes outside the bench used over the run (%; Linux).
    others_cpu_pct_run: others === undefined ? undefined : round(others, 1),
    load_avg_start: round(before.load[0], 2),
    load_avg_end: round(os.loadavg()[0], 2),
  };
}

(async () => {
  const started = now();
  const before = { steal: stealSnapshot(), cpu: cpuTicks(), tree: treeCpuUs(), load: os.loadavg() };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "oc-bench-"));
  let systems = SYSTEMS.filter((s) => ONLY === undefined || ONLY.includes(s.name));
  let messageScenarios = MESSAGE_SCENARIOS.filter((sc) => ONLY === undefined || ONLY.includes(MESSAGES.name) || ONLY.includes(sc));
  // One redis-server for the rows that need it (the Redis transport's); none: they say why.
  const needsRedis = (sc) => sc.endsWith("-redis-tls");
  let redis;
  if (systems.some((s) => s.redis) || messageScenarios.some(needsRedis)) {
    redis = await startRedis();
    if (redis.skipped !== undefined) {
      log(redis.skipped);
      for (const system of systems.filter((s) => s.redis)) {
        for (const scenario of [...PAIR_SCENARIOS, "memory", ...CFG.scaling.map((n) => `scaling-${n}`)])
          row(scenario, system, { skipped: redis.skipped });
      }
      for (const scenario of messageScenarios.filter(needsRedis)) row(scenario, MESSAGES, { skipped: redis.skipped });
      systems = systems.filter((s) => !s.redis);
      messageScenarios = messageScenarios.filter((sc) => !needsRedis(sc));
    } else {
      // The workers' env (Session.spawn passes this process's on).
      process.env.BENCH_REDIS_PORT = String(redis.port);
    }
  }
  try {
    log(`systems: ${systems.map((x) => x.label).join(", ") || "none"}; message layer: ${messageScenarios.join(", ") || "none"}`);
    const pairs = await runPairs(systems, dir);
    // Scaling a group at a time: the systems measured against one raw system, with it; only one
    // group's processes are alive at once.
    const groups = new Map();
    for (const pair of pairs) {
      const key = pair.system.limit ?? pair.system.name;
      groups.set(key, [...(groups.get(key) ?? []), pair]);
    }
    for (const group of groups.values()) {
      try {
        const scaled = group.filter((pair) => pair.system.scaling !== false);
        for (const pair of group.filter((x) => !scaled.includes(x))) {
          for (const scenario of ["memory", ...CFG.scaling.map((n) => `scaling-${n}`)])
            row(scenario, pair.system, { unsupported: "not measured: the one-sender scenarios only" });
        }
        if (scaled.length > 0) await runScaling(scaled);
      } finally {
        for (const pair of group) pair.s.killAll();
        await sleep(200);
      }
    }
    for (const system of systems) {
      if (system.elects) {
        await runElection(system, dir);
        await runFailover(system, dir);
      } else {
        for (const scenario of ["election-4", "failover"]) {
          row(scenario, system, { unsupported: "no self-hosting: a designated server process must be started and kept alive" });
        }
      }
    }
    if (messageScenarios.length > 0) {
      const bench = { Session, CFG, row, failed, agreement, killHost, median, pct, round, sleep, now };
      await runMessages(bench, dir, messageScenarios);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    await redis?.server?.stop();
  }
  const result = { machine: machine(before), duration_s: round((now() - started) / 1000, 1), rows };
  fs.mkdirSync(OUT, { recursive: true });
  writeReports(result, OUT);
  log(`done in ${result.duration_s} s: ${path.relative(process.cwd(), OUT)}/latest.{json,md,svg}`);
  process.exit(0);
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
