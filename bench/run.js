#!/usr/bin/env node
"use strict";
/**
 * open-channel side by side with raw net (the limit), node-ipc 9.2.1, zeromq 6 and the published
 * open-channel 0.1.12, then open-channel's message layer on its own (bench/messages.js), in one
 * run on this machine. Writes bench/results/latest.{json,md,svg}.
 *
 *   npm run bench                 # the full run (about 90 s on 2 cores)
 *   npm run bench -- --quick      # a smoke run (about 45 s): fewer rounds, scaling 2 and 8 only
 *   npm run bench -- --only open-channel,raw-net          # systems: their side-by-side scenarios
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
const { MESSAGES, SYSTEMS } = require("./systems");
const { runMessages, SCENARIOS: MESSAGE_SCENARIOS } = require("./messages");
const { writeReports } = require("./report");

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
      rounds: 1,
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
      rounds: 3,
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
 * is there (Linux, 2+ cores); senders of the scaling runs are not pinned.
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
      env: { ...process.env, BENCH_SYSTEM: this.system.name, BENCH_DIR: this.dir, BENCH_MEMBER_TIMEOUT: String(CFG.memberTimeoutMs) },
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

/** One counted transfer: host expects `count` x `size` bytes from `senders`; returns ms, msgs/s. */
async function transfer(s, host, senders, count, size) {
  await s.call(host, { cmd: "expect", mode: "count", bytes: count * size * senders.length });
  const from = s.events.length;
  const done = s.event((e) => e.type === "done" && e.from === host, CFG.callTimeoutMs, "the host to receive everything", from);
  done.catch(() => undefined); // awaited below; a failed send must not leave it unhandled
  const sent = await Promise.all(senders.map((pid) => s.call(pid, { cmd: "send", count, size })));
  const d = await done;
  const ms = d.at - Math.min(...sent.map((x) => x.startAt));
  return { ms, msgsPerS: (count * senders.length) / (ms / 1000) };
}

/** Calibrates a count that lasts about `targetS` for this system, then runs `rounds` rounds. */
async function throughputScenario(s, host, senders, size, fixedCount) {
  let count = fixedCount;
  if (count === undefined) {
    const warm = await transfer(s, host, senders, 2000, size);
    count = Math.max(500, Math.min(1_000_000, Math.round((warm.msgsPerS * CFG.targetS) / senders.length)));
  } else {
    await transfer(s, host, senders, Math.max(1, Math.round(count / 4)), size);
  }
  const results = [];
  for (let r = 0; r < CFG.rounds; r++) results.push(await transfer(s, host, senders, count, size));
  return { count, results };
}

const channelName = (system) => `bench-${process.pid}-${system.name.replace(/[^a-z0-9]/gi, "")}`;

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
      tp.set(p, { count: Math.max(500, Math.min(1_000_000, Math.round(warm.msgsPerS * CFG.targetS))), rates: [] });
    });
  }
  // A system whose calibration failed (reported) has no entry: it sits the rounds out.
  for (let r = 0; r < CFG.pairRounds; r++) {
    for (const p of live().filter((x) => tp.has(x)))
      await guard(p, "throughput-64B", async () =>
        tp.get(p).rates.push((await transfer(p.s, p.host, [p.sender], tp.get(p).count, 64)).msgsPerS),
      );
  }
  const limit = pairs.find((p) => p.system.name === "raw-net");
  /** Median of round-by-round ratios to raw net (rounds ran back to back, so they saw the same machine). */
  const paired = (p, values) => {
    const base = limit && values.get(limit);
    const mine = values.get(p);
    if (!base || !mine || p === limit) return undefined;
    const n = Math.min(base.length, mine.length);
    return n === 0 ? undefined : round(median(Array.from({ length: n }, (_, i) => mine[i] / base[i])), 3);
  };
  const rates = new Map([...tp].map(([p, t]) => [p, t.rates]));
  for (const p of live()) {
    const t = tp.get(p);
    if (t === undefined || t.rates.length === 0) continue;
    row("throughput-64B", p.system, {
      msgs_per_s: median(t.rates),
      vs_raw_net: paired(p, rates),
      messages: t.count,
      rounds: t.rates.map((x) => round(x, 0)),
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
      vs_raw_net: paired(p, rttMedians),
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
        vs_raw_net: paired(p, mib),
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
    for (const p of live())
      await guard(p, "connect", async () =>
        conn
          .get(p)
          .push(...(await p.s.call(p.sender, { cmd: "connect-times", name: channelName(p.system), count: CFG.connectCount })).samples),
      );
  }
  for (const p of live()) {
    const x = conn.get(p);
    row("connect", p.system, { median_ms: median(x), max_ms: Math.max(...x), connects: x.length });
  }
  return pairs;
}

/** Memory and scaling, one system at a time (up to 16 senders each), on the pair's host. */
async function runScaling(pair) {
  const { system, s } = pair;
  const scenarios = ["memory", ...CFG.scaling.map((n) => `scaling-${n}`)];
  const done = new Set();
  try {
    if (!pair.ok) throw pair.error ?? new Error("the host or the sender did not start");
    const idle = (await s.call(pair.sender, { cmd: "rss" })).rss;
    const one = await s.call(pair.host, { cmd: "rss" });
    const hostWithOne = one.rss;
    const senders = [pair.sender];
    for (const n of CFG.scaling) {
      const scenario = `scaling-${n}`;
      try {
        while (senders.length < n) {
          const pid = await s.spawn();
          await s.call(pid, { cmd: "client", name: channelName(system) });
          senders.push(pid);
        }
        if (n === CFG.scaling[CFG.scaling.length - 1]) {
          const withN = await s.call(pair.host, { cmd: "rss" });
          row("memory", system, {
            idle_member_mb: idle / MIB,
            host_kb_per_member: (withN.rss - hostWithOne) / 1024 / (n - 1),
            // How much the host's RSS moved between samples: a per-member figure whose total is
            // within it is below what RSS can show.
            rss_noise_kb: Math.max(one.spread, withN.spread) / 1024,
            members: n,
          });
          done.add("memory");
        }
        const sc = await throughputScenario(s, pair.host, senders, 64);
        row(scenario, system, { msgs_per_s: median(sc.results.map((r) => r.msgsPerS)), senders: n, messages_each: sc.count });
      } catch (err) {
        failed(scenario, system, err);
      }
      done.add(scenario);
    }
  } catch (err) {
    for (const sc of scenarios) if (!done.has(sc)) failed(sc, system, err);
  } finally {
    s.killAll();
    await sleep(200);
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

/** The pinned cores (0 and 1) as /proc/stat counts them: [steal, total] ticks; undefined off Linux. */
function stealSnapshot() {
  let text;
  try {
    text = fs.readFileSync("/proc/stat", "utf8");
  } catch {
    return undefined;
  }
  let steal = 0;
  let total = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith("cpu0 ") && !line.startsWith("cpu1 ")) continue;
    // user nice system idle iowait irq softirq steal guest guest_nice (guest time is in user too)
    const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
    steal += ticks[7];
    total += ticks.reduce((a, b) => a + b, 0);
  }
  return total > 0 ? [steal, total] : undefined;
}

/** The share (%) of the pinned cores' time since `before` that the hypervisor gave to others. */
function stealPct(before) {
  const after = stealSnapshot();
  if (before === undefined || after === undefined || after[1] <= before[1]) return undefined;
  return (100 * (after[0] - before[0])) / (after[1] - before[1]);
}

function machine() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    memory_gb: round(os.totalmem() / 1024 ** 3, 1),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    date: new Date().toISOString(),
    quick: QUICK,
    pinned: TASKSET !== undefined ? "host on cpu 0, sender on cpu 1 (pair scenarios)" : "no",
    rounds: CFG.rounds,
    pair_rounds: CFG.pairRounds,
    rtt_blocks: CFG.rttBlocks,
    rtt_block: CFG.rttBlock,
  };
}

(async () => {
  const started = now();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "oc-bench-"));
  const systems = SYSTEMS.filter((s) => ONLY === undefined || ONLY.includes(s.name));
  const messageScenarios = MESSAGE_SCENARIOS.filter((sc) => ONLY === undefined || ONLY.includes(MESSAGES.name) || ONLY.includes(sc));
  try {
    log(`systems: ${systems.map((x) => x.label).join(", ") || "none"}; message layer: ${messageScenarios.join(", ") || "none"}`);
    const pairs = await runPairs(systems, dir);
    for (const pair of pairs) await runScaling(pair);
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
      const bench = { Session, CFG, row, failed, agreement, killHost, median, pct, round, sleep, now, stealSnapshot, stealPct };
      await runMessages(bench, dir, messageScenarios);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const result = { machine: machine(), duration_s: round((now() - started) / 1000, 1), rows };
  fs.mkdirSync(OUT, { recursive: true });
  writeReports(result, OUT);
  log(`done in ${result.duration_s} s: ${path.relative(process.cwd(), OUT)}/latest.{json,md,svg}`);
  process.exit(0);
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
