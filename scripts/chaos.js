#!/usr/bin/env node
"use strict";
/**
 * Chaos run: N members on one channel, the host SIGKILLed again and again, a newcomer joining
 * after each failover. Measures two times from each kill: until every survivor is reconnected to
 * one and the same new host (failover_ms: the socket's `connect`, when the `failover` event
 * fires), and until every survivor has had a reply from the new host's listener through its own
 * socket (app_failover_ms: when the application is served again; each member sends a request line
 * at every connect and every 20 ms). Counts split brain, user-visible errors and members that
 * never came back. Prints one JSON summary on stdout and a line for humans on stderr.
 *
 *   npm run chaos -- [--members 6] [--kills 20] [--transport unix] [--pause 250] [--settle 500]
 *   npm run chaos -- --transport redis [--ttl 5000]   # on a redis-server of its own (Debian's)
 *   npm run chaos -- --transport redis --machines 3   # as root: members spread over 3 "machines"
 *   npm run chaos -- --transport redis --tls          # TLS between members and host (the test PKI, no secret)
 *
 * --machines N puts the members, round robin, in N network namespaces on a bridge (scripts/lan.js),
 * Redis on the bridge, and each round cuts the host's machine off (its link down: a blackhole)
 * instead of SIGKILLing the host; once the others are served by a new host the link comes back and
 * the cut machine's members must rejoin (rejoin_ms). A cut host that has not stopped hosting
 * before the new host started counts as split brain.
 *
 * Times come from each member's clock (performance.timeOrigin + now), all on this machine.
 * Where the time goes, in the summary: first_detect_ms_median (kill -> the first survivor sees its
 * connection end: the kernel's part, the dead process's memory is torn down before its sockets
 * close), detect_ms_median (-> the last survivor sees it), elect_ms_median (first loss -> all
 * back), new_host_detect_ms_median (kill -> the new host sees it), hosting_ms_median (kill -> the
 * new host holds the channel's address), reply_ms_median (a survivor's connect -> its first reply
 * from the new host's listener), cpu_ms_median (CPU time, user + system, a member / the new host
 * spent from its loss to connected). CHAOS_NODE_ARGS="--cpu-prof ..." passes node options to the
 * members.
 */
const { fork, spawn: spawnProcess } = require("node:child_process");
const { randomBytes } = require("node:crypto");
const path = require("node:path");

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const MEMBERS = Number(option("members", 6));
const KILLS = Number(option("kills", 20));
const TRANSPORT = option("transport", process.env.OPEN_CHANNEL_TRANSPORT || "");
const GIVE_UP_MS = 10000;
// Each kill hits a settled group: the newcomer has finished starting up, and the members have
// chosen their heir (150-300 ms after they connect). --pause 0 kills as soon as the newcomer is in.
const PAUSE_MS = Number(option("pause", 250));
const SETTLE_MS = Number(option("settle", 500));
const channel = `chaos-${process.pid}-${Date.now().toString(36)}`;
const REDIS = TRANSPORT === "redis";
const TTL_MS = Number(option("ttl", 5000));
const MACHINES = Number(option("machines", 0));
if (MACHINES > 0 && !REDIS) throw new Error("--machines needs --transport redis");
/** --tls: mutual TLS with the test PKI (packages/core/test/fixtures/tls), the certificates alone letting members in. */
const TLS = process.argv.includes("--tls");
if (TLS && !REDIS) throw new Error("--tls needs --transport redis");
/** --machines: the simulated LAN, and which machine each member runs on. */
let lan;
const machineOf = new Map();
let spawned = 0;
const REDIS_PASSWORD = randomBytes(12).toString("hex");
/** `--transport redis`: the redis-server the members elect on (gone with this process), and its port. */
let redis;
let redisPort;

const reports = [];
const children = new Map();
// Waiters are woken by each report (no polling: the orchestrator must not steal CPU from the
// members it measures on a 2-core machine).
const wakeups = new Set();
function waitForReport(ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      wakeups.delete(done);
      resolve();
    }
    wakeups.add(done);
  });
}
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function spawn() {
  const env = { ...process.env, CHAOS_CHANNEL: channel };
  if (REDIS) Object.assign(env, { CHAOS_REDIS_PORT: String(redisPort), CHAOS_REDIS_SECRET: secret, CHAOS_REDIS_TTL_MS: String(TTL_MS) });
  if (TLS)
    Object.assign(env, {
      CHAOS_TLS_DIR: path.join(__dirname, "..", "packages", "core", "test", "fixtures", "tls"),
      CHAOS_REDIS_SECRET: "",
    });
  else if (TRANSPORT) env.OPEN_CHANNEL_TRANSPORT = TRANSPORT;
  const execArgv = (process.env.CHAOS_NODE_ARGS || "").split(" ").filter(Boolean);
  const member = path.join(__dirname, "chaos-member.js");
  const stdio = ["ignore", "inherit", "inherit", "ipc"];
  let child;
  const machine = spawned++ % Math.max(1, MACHINES);
  if (MACHINES > 0) {
    Object.assign(env, { CHAOS_HOST: lan.address(machine), CHAOS_REDIS_HOST: lan.gateway, CHAOS_REDIS_PASSWORD: REDIS_PASSWORD });
    // `ip netns exec` execs node in place: the same pid, and the IPC channel's fd goes along.
    child = spawnProcess("ip", ["netns", "exec", lan.netns(machine), process.execPath, ...execArgv, member], { env, stdio });
  } else {
    child = fork(member, [], { env, execArgv, stdio });
  }
  machineOf.set(child.pid, machine);
  child.on("message", (m) => {
    reports.push(m);
    for (const wake of [...wakeups]) wake();
  });
  children.set(child.pid, child);
  return child.pid;
}

/** Latest connect of each pid after `since` (ms), once all agree on one host among them. */
async function agreement(pids, since) {
  const deadline = now() + GIVE_UP_MS;
  while (now() < deadline) {
    const latest = new Map();
    for (const r of reports) if (r.type === "connect" && r.at >= since && pids.includes(r.pid)) latest.set(r.pid, r);
    if (latest.size === pids.length) {
      const hosts = new Set([...latest.values()].map((r) => r.hostPid));
      const host = [...hosts][0];
      if (hosts.size === 1 && pids.includes(host)) return { host, latest };
    }
    await waitForReport(deadline - now());
  }
  return undefined;
}

/** When every pid of `pids` has connected to `host` after `since`; undefined if not within GIVE_UP_MS. */
async function agreementOn(pids, since, host) {
  const deadline = now() + GIVE_UP_MS;
  while (now() < deadline) {
    const at = pids.map((pid) => reports.find((r) => r.type === "connect" && r.pid === pid && r.at >= since && r.hostPid === host)?.at);
    if (at.every((t) => t !== undefined)) return Math.max(...at);
    await waitForReport(deadline - now());
  }
  return undefined;
}

/** First reply from `host`'s listener to each pid after `since`: all of them, or those that came in time. */
async function replies(pids, since, host) {
  const deadline = now() + GIVE_UP_MS;
  const first = new Map();
  for (;;) {
    for (const r of reports) {
      if (r.type === "reply" && r.at >= since && r.hostPid === host && pids.includes(r.pid) && !first.has(r.pid)) first.set(r.pid, r);
    }
    if (first.size === pids.length || now() >= deadline) return first;
    await waitForReport(deadline - now());
  }
}

/** Median, p90 and max of the times over the kills, and every one of them. */
function spread(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const pct = (p) => (sorted.length ? Number(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))].toFixed(1)) : null);
  return { median: pct(0.5), p90: pct(0.9), max: pct(1), all: values.map((t) => Number(t.toFixed(1))) };
}

function median(values) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return Number(sorted[Math.floor(sorted.length / 2)].toFixed(1));
}

async function firstConnect(pid) {
  const deadline = now() + GIVE_UP_MS;
  while (now() < deadline) {
    const r = reports.find((x) => x.pid === pid && x.type === "connect");
    if (r) return r;
    await waitForReport(deadline - now());
  }
  return undefined;
}

const secret = randomBytes(24).toString("hex");

/** The redis-server the members elect on (scripts/redis-server.js); --machines: on the LAN too. */
async function startRedis() {
  if (MACHINES > 0) {
    const { Lan } = require("./lan");
    lan = new Lan(MACHINES);
  }
  const { RedisServer } = require("./redis-server");
  redis = await RedisServer.start(MACHINES > 0 ? { bind: lan.gateway, password: REDIS_PASSWORD } : {});
  redisPort = redis.port;
}

(async () => {
  if (REDIS) await startRedis();
  for (let i = 0; i < MEMBERS; i++) spawn();
  const first = await agreement([...children.keys()], 0);
  if (!first) throw new Error("the members never agreed on a first host");
  // Kills start once the group has settled, as they do after each failover below (a newcomer has
  // joined by then): a channel that has just started has not chosen its heir yet.
  await sleep(SETTLE_MS);
  let host = first.host;
  // Who may answer, from each moment on: the host, and once it is killed, its heir (the dead
  // host's replies may still be read after the kill).
  const epochs = [{ from: 0, hosts: [host] }];
  const times = [];
  const appTimes = [];
  const replyAfterConnect = [];
  const detect = [];
  const firstDetect = [];
  const elect = [];
  const heirDetect = [];
  const hosting = [];
  const cpuMember = [];
  const cpuHost = [];
  const rejoin = [];
  let splitBrain = 0;
  let neverBack = 0;
  for (let k = 0; k < KILLS; k++) {
    const cutMachine = MACHINES > 0 ? machineOf.get(host) : undefined;
    const cutOff = [...children.keys()].filter((p) => p === host || (cutMachine !== undefined && machineOf.get(p) === cutMachine));
    const survivors = [...children.keys()].filter((p) => !cutOff.includes(p));
    const t0 = now();
    if (cutMachine !== undefined) {
      lan.cut(cutMachine);
    } else {
      children.get(host).kill("SIGKILL");
      children.delete(host);
    }
    if (process.env.CHAOS_TRACE) process.stderr.write(`CHAOS ${cutMachine === undefined ? "kill" : "cut"} ${host} at ${t0.toFixed(1)}\n`);
    const result = await agreement(survivors, t0);
    if (!result) {
      neverBack += survivors.filter((p) => !reports.some((r) => r.pid === p && r.type === "connect" && r.at >= t0)).length;
      break;
    }
    times.push(Math.max(...[...result.latest.values()].map((r) => r.at)) - t0);
    epochs.push({ from: t0, hosts: [host, result.host] });
    // At the application: every survivor has had a reply from the new host's listener.
    const served = await replies(survivors, t0, result.host);
    if (served.size < survivors.length) {
      neverBack += survivors.length - served.size;
      break;
    }
    appTimes.push(Math.max(...[...served.values()].map((r) => r.at)) - t0);
    for (const [pid, r] of served) replyAfterConnect.push(r.at - result.latest.get(pid).at);
    // Where the time went: from the kill until the survivors noticed, then their election.
    const lost = reports.filter((r) => r.type === "lost" && r.at >= t0 && survivors.includes(r.pid));
    if (lost.length) {
      detect.push(Math.max(...lost.map((r) => r.at)) - t0);
      firstDetect.push(Math.min(...lost.map((r) => r.at)) - t0);
      elect.push(Math.max(...[...result.latest.values()].map((r) => r.at)) - Math.min(...lost.map((r) => r.at)));
      const heirLost = lost.find((r) => r.pid === result.host);
      if (heirLost) heirDetect.push(heirLost.at - t0);
    }
    const hosted = reports.find((r) => r.type === "hosting" && r.at >= t0 && r.pid === result.host);
    if (hosted) hosting.push(hosted.at - t0);
    // Split brain: any member that, after the kill, connected to another host than the elected one,
    // or more than one member saying it hosts.
    const after = reports.filter((r) => r.type === "connect" && r.at >= t0);
    if (after.some((r) => r.hostPid !== result.host)) splitBrain++;
    if ([...result.latest.values()].filter((r) => r.isHost).length !== 1) splitBrain++;
    for (const r of result.latest.values()) if (r.cpuUs !== undefined) (r.isHost ? cpuHost : cpuMember).push(r.cpuUs / 1000);
    if (cutMachine !== undefined) {
      // The cut host stopped on its own deadline, before the new host started (its report may come a little later).
      const startedAt = hosted?.at ?? t0;
      const stopped = () => reports.find((r) => r.type === "unhosting" && r.pid === host && r.at >= t0);
      for (const until = now() + GIVE_UP_MS; !stopped() && now() < until; ) await waitForReport(until - now());
      if (!stopped() || stopped().at > startedAt) splitBrain++;
      // The cable back: the cut machine's members rejoin the new host.
      const restoredAt = now();
      lan.restore(cutMachine);
      const back = await agreementOn(cutOff, restoredAt, result.host);
      if (back === undefined) {
        neverBack += cutOff.length;
        break;
      }
      rejoin.push(back - restoredAt);
      host = result.host;
      await sleep(PAUSE_MS);
      continue;
    }
    host = result.host;
    // A newcomer joins after each failover and must find the same host.
    const newcomer = spawn();
    const joined = await firstConnect(newcomer);
    if (!joined) neverBack++;
    else if (joined.hostPid !== host) splitBrain++;
    await sleep(PAUSE_MS);
  }
  // The last replies are reported in a batch a moment later.
  await sleep(100);
  // Split brain, seen by the application: a reply from a listener that should not be answering.
  for (let e = 0; e < epochs.length; e++) {
    const { from, hosts } = epochs[e];
    const until = epochs[e + 1]?.from ?? Number.POSITIVE_INFINITY;
    if (reports.some((r) => r.type === "reply" && r.at >= from && r.at < until && !hosts.includes(r.hostPid))) splitBrain++;
  }
  const summary = {
    transport: `${TRANSPORT || "auto"}${TLS ? "+tls" : ""}`,
    ...(REDIS ? { ttl_ms: TTL_MS } : {}),
    ...(MACHINES > 0 ? { machines: MACHINES, rejoin_ms: spread(rejoin) } : {}),
    members: MEMBERS,
    kills: times.length,
    pause_ms: PAUSE_MS,
    failover_ms: spread(times),
    app_failover_ms: spread(appTimes),
    first_detect_ms_median: median(firstDetect),
    detect_ms_median: median(detect),
    elect_ms_median: median(elect),
    new_host_detect_ms_median: median(heirDetect),
    hosting_ms_median: median(hosting),
    reply_ms_median: median(replyAfterConnect),
    cpu_ms_median: { member: median(cpuMember), new_host: median(cpuHost) },
    split_brain: splitBrain,
    user_errors: reports.filter((r) => r.type === "error").length,
    never_back: neverBack,
  };
  console.log(JSON.stringify(summary));
  const figures = (f) => `median ${f.median} / p90 ${f.p90} / max ${f.max} ms`;
  console.error(
    `chaos ${summary.transport}, ${MEMBERS} members${MACHINES > 0 ? ` on ${MACHINES} machines` : ""}, ` +
      `${summary.kills} ${MACHINES > 0 ? "machines cut off" : "kills"}: failover event ${figures(summary.failover_ms)}; ` +
      `at the application ${figures(summary.app_failover_ms)}; split brain ${splitBrain}, errors ${summary.user_errors}, ` +
      `never back ${neverBack}`,
  );
  for (const child of children.values()) child.kill("SIGKILL");
  redis?.stop();
  lan?.destroy();
  process.exit(summary.split_brain || summary.user_errors || summary.never_back ? 1 : 0);
})().catch((err) => {
  console.error(err);
  for (const child of children.values()) child.kill("SIGKILL");
  redis?.stop();
  lan?.destroy();
  process.exit(2);
});
