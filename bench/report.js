"use strict";
/**
 * Writes a bench result as latest.json (machine facts and one row per scenario and system),
 * latest.md (a table) and latest.svg (one group of bars per scenario, raw net over a Unix socket,
 * over TCP loopback and raw TLS marked as the limits), each with a section of its own for the
 * message layer (one bar per codec, the issue's targets; the host's calls each beside what they
 * are compared with).
 */
const fs = require("node:fs");
const path = require("node:path");
const { SYSTEMS, ratioKey } = require("./systems");

/** What each chart panel / table row shows. */
const FIGURES = [
  { scenario: "throughput-64B", key: "msgs_per_s", title: "64 B messages, 1 sender", unit: "msgs/s", better: "higher" },
  { scenario: "round-trip", key: "median_us", title: "Round trip, median", unit: "µs", better: "lower" },
  { scenario: "round-trip", key: "p99_us", title: "Round trip, p99", unit: "µs", better: "lower" },
  { scenario: "throughput-1MiB", key: "mb_per_s", title: "1 MiB messages", unit: "MB/s", better: "higher" },
  { scenario: "connect", key: "median_ms", title: "Connect to a live host", unit: "ms", better: "lower" },
  { scenario: "election-4", key: "median_ms", title: "First election, 4 processes", unit: "ms", better: "lower" },
  { scenario: "failover", key: "median_ms", title: "Failover (SIGKILL), median", unit: "ms", better: "lower" },
  { scenario: "failover", key: "max_ms", title: "Failover (SIGKILL), max", unit: "ms", better: "lower" },
  { scenario: "scaling-2", key: "msgs_per_s", title: "2 senders, total", unit: "msgs/s", better: "higher" },
  { scenario: "scaling-4", key: "msgs_per_s", title: "4 senders, total", unit: "msgs/s", better: "higher" },
  { scenario: "scaling-8", key: "msgs_per_s", title: "8 senders, total", unit: "msgs/s", better: "higher" },
  { scenario: "scaling-16", key: "msgs_per_s", title: "16 senders, total", unit: "msgs/s", better: "higher" },
  { scenario: "memory", key: "idle_member_mb", title: "RSS of an idle member", unit: "MB", better: "lower" },
  { scenario: "memory", key: "host_kb_per_member", title: "Host RSS per member", unit: "KB", better: "lower" },
];

/**
 * The message layer's figures (bench/messages.js): one value per codec; raw net where paired
 * (`raw`: the row's field of raw net's figure, `ratio`: of the paired ratio to it).
 */
const MESSAGE_FIGURES = [
  {
    scenario: "messages-send-64B",
    key: "msgs_per_s",
    title: "send(), acknowledged, 64 B",
    unit: "msgs/s",
    better: "higher",
    target: { value: 1e6, text: ">= 1 M msgs/s" },
  },
  {
    scenario: "messages-send-64B-tcp",
    key: "msgs_per_s",
    title: "send(), acknowledged, 64 B, tcp",
    unit: "msgs/s",
    better: "higher",
    target: { value: 1e6, text: ">= 1 M msgs/s" },
  },
  {
    scenario: "messages-send-64B-redis-tls",
    key: "msgs_per_s",
    title: "send(), acknowledged, 64 B, redis + TLS",
    unit: "msgs/s",
    better: "higher",
  },
  {
    scenario: "messages-request-rtt",
    key: "median_us",
    raw: "raw_net_median_us",
    ratio: "vs_raw_net",
    rawLabel: "raw net",
    title: "request round trip, median",
    unit: "µs",
    better: "lower",
    target: { ratio: 1.3, text: "<= 1.3x raw net" },
  },
  {
    scenario: "messages-request-rtt-tcp",
    key: "median_us",
    raw: "raw_tcp_median_us",
    ratio: "vs_raw_tcp",
    rawLabel: "raw TCP",
    title: "request round trip, median, tcp",
    unit: "µs",
    better: "lower",
    target: { ratio: 1.3, text: "<= 1.3x raw TCP" },
  },
  {
    scenario: "messages-request-rtt-redis-tls",
    key: "median_us",
    raw: "raw_tls_median_us",
    ratio: "vs_raw_tls",
    rawLabel: "raw TLS",
    title: "request round trip, median, redis + TLS",
    unit: "µs",
    better: "lower",
  },
  {
    scenario: "messages-request-rtt",
    key: "p99_us",
    raw: "raw_net_p99_us",
    rawLabel: "raw net",
    title: "request round trip, p99",
    unit: "µs",
    better: "lower",
  },
  {
    scenario: "messages-request-rtt-tcp",
    key: "p99_us",
    raw: "raw_tcp_p99_us",
    rawLabel: "raw TCP",
    title: "request round trip, p99, tcp",
    unit: "µs",
    better: "lower",
  },
  {
    scenario: "messages-request-rtt-redis-tls",
    key: "p99_us",
    raw: "raw_tls_p99_us",
    rawLabel: "raw TLS",
    title: "request round trip, p99, redis + TLS",
    unit: "µs",
    better: "lower",
  },
  {
    scenario: "messages-publish-4",
    key: "deliveries_per_s",
    title: "publish, 4 subscribers",
    unit: "deliveries/s",
    better: "higher",
    target: { value: 5e5, text: ">= 500 k deliveries/s" },
  },
];
/**
 * The host's calls (`messageChannel.host`): one value per codec, each with a figure of the same
 * rounds to read it against (`versus`: its field; `ratio`: the paired ratio's), shown in a row of
 * its own (`versusTitle`).
 */
const CALL_FIGURES = [
  {
    scenario: "messages-sendto",
    key: "msgs_per_s",
    ratio: "vs_send",
    versus: "send_msgs_per_s",
    title: "host.sendTo(), 1 member, pipelined",
    versusTitle: "send(), member to host, same rounds",
    versusShort: "send",
    versusLabel: "send(), member to host (row below)",
    unit: "msgs/s",
    better: "higher",
  },
  {
    scenario: "messages-requestto-rtt",
    key: "median_us",
    ratio: "vs_request",
    versus: "request_median_us",
    title: "host.requestTo() round trip, median",
    versusTitle: "request() round trip, member to host, same blocks, median",
    versusShort: "req.",
    versusLabel: "request(), member to host (row below)",
    unit: "µs",
    better: "lower",
  },
  {
    scenario: "messages-requestto-rtt",
    key: "p99_us",
    versus: "request_p99_us",
    title: "host.requestTo() round trip, p99",
    versusTitle: "request() round trip, member to host, same blocks, p99",
    unit: "µs",
    better: "lower",
  },
  {
    scenario: "messages-broadcast-4",
    key: "deliveries_per_s",
    ratio: "vs_publish",
    versus: "publish_deliveries_per_s",
    title: "host.broadcast(), 4 members",
    versusTitle: "publish(), the same 4 processes subscribed, same rounds",
    versusShort: "pub.",
    versusLabel: "publish() to the same processes (row below)",
    unit: "deliveries/s",
    better: "higher",
  },
  {
    scenario: "messages-broadcast-16",
    key: "deliveries_per_s",
    ratio: "vs_publish",
    versus: "publish_deliveries_per_s",
    title: "host.broadcast(), 16 members",
    versusTitle: "publish(), the same 16 processes subscribed, same rounds",
    versusShort: "pub.",
    versusLabel: "publish() to the same processes (row below)",
    unit: "deliveries/s",
    better: "higher",
  },
];
const CODECS = [
  { codec: "buffer", label: "bufferCodec", color: "#17becf" },
  { codec: "structured", label: "structuredCodec (default)", color: "#1f77b4" },
  { codec: "v8", label: "v8Codec", color: "#9467bd" },
];
const MESSAGES = "open-channel-messages";
/** Bar labels of the host's calls' panels (two bars per codec: narrow). */
const SHORT_CODEC = { buffer: "buffer", structured: "struct.", v8: "v8" };

/** The raw systems, each the limit of the systems whose `limit` names it; the svg's line for each. */
const LIMITS = [
  { name: "raw-net", color: "#d62728", dash: "5,3", text: "raw net (unix socket): the limit" },
  { name: "raw-tcp", color: "#7f0000", dash: "2,2", text: "raw net (TCP): the limit of open-channel over tcp" },
  { name: "raw-tls", color: "#8c564b", dash: "8,2,2,2", text: "raw TLS: the limit of open-channel over redis + TLS" },
];
const limitOf = (system) => SYSTEMS.find((s) => s.name === system)?.limit;
/** Bar labels of the svg (narrow bars; the legend has the full names). */
const SHORT = {
  "raw-net": "raw",
  "open-channel": "oc",
  "raw-tcp": "raw tcp",
  "open-channel-tcp": "oc tcp",
  "raw-tls": "raw tls",
  "open-channel-redis-tls": "oc tls",
  "open-channel-0.1.12": "0.1.12",
};
const COLORS = {
  "raw-net": "#8c8c8c",
  "raw-tcp": "#5a5a5a",
  "open-channel": "#1f77b4",
  "open-channel-tcp": "#6baed6",
  "raw-tls": "#3a3a3a",
  "open-channel-redis-tls": "#08519c",
  "node-ipc": "#ff7f0e",
  zeromq: "#2ca02c",
  "open-channel-0.1.12": "#9467bd",
};

function format(value, unit) {
  if (value === null || value === undefined || Number.isNaN(value)) return "-";
  if (unit === "msgs/s" || unit === "deliveries/s") return value >= 1e6 ? `${(value / 1e6).toFixed(2)} M` : `${Math.round(value / 1000)} k`;
  if (value >= 100) return String(Math.round(value));
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/** The cell for one system: a value, "failed", "skipped" (nothing to run it on), or "n/a". */
function cell(rows, figure, system) {
  const row = rows.find((r) => r.scenario === figure.scenario && r.system === system);
  if (row === undefined) return { kind: "missing" };
  if (row.error !== undefined) return { kind: "failed", text: row.error };
  if (row.skipped !== undefined) return { kind: "skipped", text: row.skipped };
  if (row.unsupported !== undefined) return { kind: "n/a", text: row.unsupported };
  const value = row[figure.key];
  if (typeof value !== "number") return { kind: "missing" };
  return { kind: "value", value };
}

/** A per-member memory figure too small for RSS to show (negative, or all members within the noise). */
function belowNoise(rows, figure, system) {
  if (figure.key !== "host_kb_per_member") return false;
  const row = rows.find((r) => r.scenario === figure.scenario && r.system === system);
  if (row === undefined || typeof row.host_kb_per_member !== "number") return false;
  return row.host_kb_per_member <= 0 || row.host_kb_per_member * (row.members - 1) < (row.rss_noise_kb ?? 0);
}

/** A system vs its limit (raw net over the same kind of socket), as "x0.97" or "x1.05". */
function ratio(rows, figure, system) {
  const limit = limitOf(system);
  if (limit === undefined || belowNoise(rows, figure, limit)) return undefined;
  // Prefer the paired figure: round-by-round ratios, measured back to back with the limit.
  const own = rows.find((r) => r.scenario === figure.scenario && r.system === system);
  const paired = own?.[ratioKey(limit)];
  if (typeof paired === "number" && FIGURES.find((f) => f.scenario === figure.scenario) === figure) return paired;
  const a = cell(rows, figure, system);
  const b = cell(rows, figure, limit);
  if (a.kind !== "value" || b.kind !== "value" || b.value === 0) return undefined;
  return a.value / b.value;
}

function markdown(result) {
  const systems = SYSTEMS.filter((s) => result.rows.some((r) => r.system === s.name));
  const m = result.machine;
  const lines = [
    `# Benchmark: open-channel side by side`,
    "",
    `${m.cpu}, ${m.cores} cores, ${m.memory_gb} GB, Node ${m.node}, ${m.platform}; ${m.date}; ${result.duration_s} s in all${m.quick ? " (quick run)" : ""}.` +
      busy(m),
  ];
  if (systems.length > 0) lines.push(...systemsTable(result, systems));
  if (result.rows.some((r) => r.system === MESSAGES)) lines.push(...messagesSection(result));
  lines.push(...notes(result));
  return `${lines.join("\n")}\n`;
}

/** How busy the machine was besides the run (other processes, other guests of the hypervisor). */
function busy(m) {
  const parts = [];
  if (typeof m.load_avg_start === "number") parts.push(`load average ${m.load_avg_start} at the start, ${m.load_avg_end} at the end`);
  if (typeof m.steal_pct_run === "number") parts.push(`steal ${m.steal_pct_run}% of cores 0 and 1 over the run`);
  if (typeof m.others_cpu_pct_run === "number")
    parts.push(`processes outside the bench used ${m.others_cpu_pct_run}% of all cores' time over the run`);
  return parts.length === 0 ? "" : ` Machine: ${parts.join("; ")}.`;
}

/** The side-by-side table: one column per system. */
function systemsTable(result, systems) {
  const m = result.machine;
  const lines = [
    "",
    `One sender to one host (64 B, round trip, 1 MiB, connect): median of ${m.pair_rounds} rounds after a warm-up, the systems ` +
      `taking turns round by round, host and sender ${m.pinned === "no" ? "not pinned" : "pinned to two different cores"}; ` +
      `(xN) is the median of the round-by-round ratios to the limit: raw net over the same kind of socket (a Unix socket; ` +
      `TCP loopback with Nagle off for open-channel over its tcp transport), raw TLS 1.3 (mutual, Nagle off) from 127.0.0.1 ` +
      `to a host on 127.0.0.2 for open-channel over its Redis transport with TLS. ` +
      `Scaling: per sender count, median of ${m.pair_rounds} rounds, the systems measured against one raw system (and it) ` +
      `taking turns round by round in a rotating order, ${m.pinned === "no" ? "not pinned" : "every sender on one core, the host on the other"}; a round during which the hypervisor ` +
      `took over 10% of the cores is run again${scalingRedone(result.rows)}. Election and failover: welcome line from the host's listener.`,
    "",
    `| scenario | ${systems.map((s) => s.label).join(" | ")} |`,
    `|---|${systems.map(() => "---:").join("|")}|`,
  ];
  for (const figure of FIGURES) {
    const cells = systems.map((s) => {
      const c = cell(result.rows, figure, s.name);
      if (c.kind === "failed") return "failed";
      if (c.kind === "skipped") return "skipped";
      if (c.kind === "n/a") return "n/a";
      if (c.kind === "missing") return "-";
      if (belowNoise(result.rows, figure, s.name)) return "~0 (below RSS noise)";
      const r = ratio(result.rows, figure, s.name);
      return `${format(c.value, figure.unit)}${r === undefined ? "" : ` (x${r.toFixed(2)})`}`;
    });
    lines.push(`| ${figure.title} (${figure.unit}, ${figure.better} is better) | ${cells.join(" | ")} |`);
  }
  return lines;
}

/** How many scaling rounds were run again, the steal of those kept, and how busy other processes kept the cores. */
function scalingRedone(rows) {
  const scaling = rows.filter((r) => r.scenario.startsWith("scaling-") && r.error === undefined);
  const steals = scaling.flatMap((r) => r.rounds_steal_pct ?? []).filter((x) => typeof x === "number");
  if (steals.length === 0) return "";
  const redone = scaling.reduce((n, r) => n + (r.rounds_redone ?? 0), 0);
  const others = scaling.flatMap((r) => r.rounds_others_cpu_pct ?? []).filter((x) => typeof x === "number");
  const busy =
    others.length === 0
      ? ""
      : `; processes outside the bench used ${Math.min(...others).toFixed(0)}-${Math.max(...others).toFixed(0)}% of the cores ` +
        `during them (median ${median(others).toFixed(0)}%), and these are not run again`;
  return ` (${redone} were; steal in the rounds kept: ${Math.min(...steals).toFixed(0)}-${Math.max(...steals).toFixed(0)}%, median ${median(steals).toFixed(0)}%${busy})`;
}

/** The message layer's row for `scenario` and `codec` (a failure without a codec counts for each). */
function messageRow(rows, scenario, codec) {
  const mine = rows.filter((r) => r.scenario === scenario && r.system === MESSAGES);
  return mine.find((r) => r.codec === codec) ?? mine.find((r) => r.codec === undefined);
}

const count = (n) => (typeof n === "number" ? n.toLocaleString("en-US") : "-");

function failoverLines(row) {
  if (row === undefined) return [];
  if (row.error !== undefined) return [`Failover under load: failed (${row.error}).`];
  return [
    `Failover under load (${row.codec}Codec; ${row.members} members sending { n } continuously, the host SIGKILLed ${row.kills} times, ` +
      `a new member after each; every host logs what its onMessage saw, synchronously): sent ${count(row.sent)}, ` +
      `acknowledged ${count(row.acknowledged)}, delivered ${count(row.delivered)} (${count(row.deliveries)} deliveries, ${row.hosts} hosts), ` +
      `**lost ${count(row.lost)}**, duplicated ${count(row.duplicated)} (**unflagged ${count(row.duplicated_unflagged)}**), ` +
      `out of order ${count(row.out_of_order)}, send errors ${count(row.send_errors)}. Sent by the members killed as the host: ` +
      `${count(row.sent_by_killed_hosts)}, of which delivered ${count(row.delivered_of_those)} (not counted as lost: their sender died). ` +
      `Survivors back on one new host after ${format(row.reconnect_median_ms, "ms")} ms (median; max ${format(row.reconnect_max_ms, "ms")}).`,
  ];
}

function messagesSection(result) {
  const rows = result.rows;
  const m = result.machine;
  const lines = [
    "",
    "## open-channel messages",
    "",
    `\`openMessageChannel\` through the umbrella, over the same Unix socket transport (rows marked tcp: over the tcp transport, ` +
      `their round trip's ratio to raw net over TCP loopback with Nagle off; rows marked redis + TLS: over the Redis transport with ` +
      `TLS 1.3, mutual, the host on 127.0.0.2, their round trip's ratio to raw TLS over the same addresses). Per codec and transport one host process and one sender, ` +
      `${m.pinned === "no" ? "not pinned" : "pinned to two different cores"}; the codecs (and raw net for the round trip) take turns ` +
      `round by round, median of ${m.pair_rounds} rounds after a warm-up (the round trip: ${m.rtt_blocks ?? m.pair_rounds} rounds of ` +
      `${m.rtt_block ?? 1000} round trips each, in a rotating order). 64-byte bodies (bufferCodec: 64 raw bytes; structuredCodec ` +
      `and v8Codec: the object { kind, text } whose v8 serialization is 64 bytes). send() and publish() keep the default window of 1024 unacknowledged full; ` +
      `(xN) is the median of the round-by-round ratios to the raw echo over the same kind of connection (raw net, or raw TLS); p99 over all round trips; subscribers are not pinned.`,
  ];
  // The host's calls alone (--only): their table only.
  if (MESSAGE_FIGURES.some((f) => hasRow(rows, f.scenario))) {
    lines.push(
      "",
      `| scenario | ${CODECS.map((c) => c.label).join(" | ")} | raw (net unix / net TCP / TLS), same rounds | target |`,
      `|---|${CODECS.map(() => "---:").join("|")}|---:|---|`,
    );
  }
  for (const figure of MESSAGE_FIGURES) {
    if (!rows.some((r) => r.scenario === figure.scenario && r.system === MESSAGES)) continue;
    const cells = CODECS.map(({ codec }) => {
      const row = messageRow(rows, figure.scenario, codec);
      if (row === undefined) return "-";
      if (row.error !== undefined) return "failed";
      if (row.skipped !== undefined) return "skipped";
      const ratio = figure.ratio === undefined ? undefined : row[figure.ratio];
      return `${format(row[figure.key], figure.unit)}${typeof ratio === "number" ? ` (x${ratio.toFixed(2)})` : ""}`;
    });
    const any = rows.find((r) => r.scenario === figure.scenario && r.system === MESSAGES && figure.raw !== undefined);
    const raw = any === undefined ? "" : format(any[figure.raw], figure.unit);
    lines.push(
      `| ${figure.title} (${figure.unit}, ${figure.better} is better) | ${cells.join(" | ")} | ${raw} | ${figure.target?.text ?? ""} |`,
    );
  }
  const send = sendLine(rows);
  if (send !== undefined) lines.push("", send);
  lines.push(...callsTable(result));
  const failover = rows.find((r) => r.scenario === "messages-failover" && r.system === MESSAGES);
  if (failover !== undefined) lines.push("", ...failoverLines(failover));
  return lines;
}

/**
 * What the send rounds cost the sender, and how much of the machine the hypervisor kept meanwhile
 * (rounds disturbed by it are run again: see steal.js).
 */
function sendLine(rows) {
  const sends = ["messages-send-64B", "messages-send-64B-tcp", "messages-send-64B-redis-tls"]
    .flatMap((scenario) =>
      CODECS.map(({ codec, label }) => ({
        label: `${label.replace(/ \(default\)$/, "")}${scenario.endsWith("-tcp") ? " (tcp)" : scenario.endsWith("-redis-tls") ? " (redis + TLS)" : ""}`,
        row: messageRow(rows, scenario, codec),
      })),
    )
    .filter(({ row }) => row !== undefined && row.error === undefined && typeof row.sender_cpu_us === "number");
  if (sends.length === 0) return undefined;
  const cpu = sends.map(({ label, row }) => `${label} ${row.sender_cpu_us.toFixed(2)}`).join(", ");
  const publishes = CODECS.map(({ codec }) => messageRow(rows, "messages-publish-4", codec)).filter(
    (r) => r !== undefined && r.error === undefined,
  );
  const kept = [...sends.map(({ row }) => row), ...publishes];
  const steals = kept.flatMap((row) => row.rounds_steal_pct ?? []).filter((x) => typeof x === "number");
  const redone = (list) => list.reduce((n, row) => n + (row.rounds_redone ?? 0), 0);
  const steal =
    steals.length === 0
      ? ""
      : ` A send or publish round during which the hypervisor gave more than 10% of cores 0 and 1's time to other guests ` +
        `(steal time in /proc/stat, 10 ms ticks) is run again, up to 3 times: ${redone(sends.map(({ row }) => row))} send and ` +
        `${redone(publishes)} publish rounds were; steal in the rounds kept: ${Math.min(...steals).toFixed(0)}-` +
        `${Math.max(...steals).toFixed(0)}% (median ${median(steals).toFixed(0)}%).`;
  return `send(): the sender's CPU time per message, µs (median of the rounds): ${cpu}.${steal}`;
}

const hasRow = (rows, scenario) => rows.some((r) => r.scenario === scenario && r.system === MESSAGES);

/** The host's calls: a row per figure and one for what it is read against, then what a call costs. */
function callsTable(result) {
  const rows = result.rows;
  const figures = CALL_FIGURES.filter((f) => hasRow(rows, f.scenario));
  if (figures.length === 0) return [];
  const m = result.machine;
  const lines = [
    "",
    "### The host's calls (`messageChannel.host`)",
    "",
    `Per codec, the pair's host process hosts a channel of its own (its own messenger closed: its members are the member ` +
      `processes only), whose members' \`messenger.handle()\` counts each message and echoes each request. sendTo and ` +
      `requestTo: one member, ${m.pinned === "no" ? "not pinned" : "pinned to the sender's core"}, paired with the pair's ` +
      `send() and request() (member to host, the same host process): rounds (blocks for the round trip) taking turns; ` +
      `sendTo keeps up to 1024 calls outstanding (the member's window). Broadcast: 4, then 16 member processes (not pinned), ` +
      `up to 1024 broadcasts outstanding; a delivery is a member's handler run (counted from what broadcast() resolves with, ` +
      `checked against the members' counts); paired with publish() from the pair's sender to the same processes, subscribed ` +
      `on the pair's channel (raw net has no equivalent of either). (xN): the median of the paired ratios.`,
    "",
    `| scenario | ${CODECS.map((c) => c.label).join(" | ")} | (xN): compared with |`,
    `|---|${CODECS.map(() => "---:").join("|")}|---|`,
  ];
  const cells = (figure, key, ratioKey) =>
    CODECS.map(({ codec }) => {
      const row = messageRow(rows, figure.scenario, codec);
      if (row === undefined) return "-";
      if (row.error !== undefined) return "failed";
      if (row.skipped !== undefined) return "skipped";
      const ratio = ratioKey === undefined ? undefined : row[ratioKey];
      return `${format(row[key], figure.unit)}${typeof ratio === "number" ? ` (x${ratio.toFixed(2)})` : ""}`;
    }).join(" | ");
  for (const figure of figures) {
    const label = `${figure.unit}, ${figure.better} is better`;
    lines.push(
      `| ${figure.title} (${label}) | ${cells(figure, figure.key, figure.ratio)} | ${figure.ratio === undefined ? "" : figure.versusLabel} |`,
    );
    lines.push(`| ${figure.versusTitle} (${figure.unit}) | ${cells(figure, figure.versus)} |  |`);
  }
  const costs = callsCostLine(rows);
  if (costs !== undefined) lines.push("", costs);
  return lines;
}

/** What a call costs each end (write system calls, CPU time), and the rounds run again for steal. */
function callsCostLine(rows) {
  const parts = [];
  const kept = [];
  const scenarios = [
    ["messages-sendto", "sendTo, per call"],
    ["messages-broadcast-4", "broadcast to 4, per delivery"],
    ["messages-broadcast-16", "broadcast to 16, per delivery"],
  ];
  const n = (x, digits) => (typeof x === "number" ? x.toFixed(digits) : "-");
  for (const [scenario, what] of scenarios) {
    const mine = CODECS.map(({ codec, label }) => ({
      label: label.replace(/ \(default\)$/, ""),
      row: messageRow(rows, scenario, codec),
    })).filter(({ row }) => row !== undefined && row.error === undefined && row.skipped === undefined);
    if (mine.length === 0) continue;
    kept.push(...mine.map(({ row }) => row));
    const each = mine
      .map(
        ({ label, row }) =>
          `${label} ${n(row.host_writes_per_call, 2)} / ${n(row.member_writes_per_call, 2)} writes, ${n(row.host_cpu_us, 1)} / ${n(row.member_cpu_us, 1)} µs` +
          (typeof row.sender_writes_per_send === "number"
            ? ` (send(): ${n(row.sender_writes_per_send, 4)} writes, ${n(row.sender_cpu_us, 2)} µs of the sender)`
            : ""),
      )
      .join("; ");
    parts.push(`${what}: ${each}`);
  }
  if (parts.length === 0) return undefined;
  const redone = kept.reduce((sum, row) => sum + (row.rounds_redone ?? 0), 0);
  const steals = kept.flatMap((row) => row.rounds_steal_pct ?? []).filter((x) => typeof x === "number");
  const steal =
    steals.length === 0
      ? ""
      : ` ${redone} of these rounds were run again for steal over 10%; steal in the rounds kept: ${Math.min(...steals).toFixed(0)}-` +
        `${Math.max(...steals).toFixed(0)}% (median ${median(steals).toFixed(0)}%).`;
  return (
    `What a call costs, median of the rounds, host / member (broadcast: all members together): write system calls ` +
    `(/proc/self/io) and CPU time. ${parts.join(". ")}.${steal}`
  );
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Failures and n/a, with their reasons. */
function notes(result) {
  const lines = [];
  const failures = result.rows.filter((r) => r.error !== undefined);
  if (failures.length > 0) {
    lines.push("", "Failures:", "");
    const seen = new Set();
    for (const f of failures) {
      const key = `${f.system}: ${f.error}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const scenarios = failures.filter((x) => x.system === f.system && x.error === f.error).map((x) => x.scenario);
      lines.push(`- ${f.system}, ${scenarios.join(", ")}: ${f.error}`);
    }
  }
  const skipped = result.rows.filter((r) => r.skipped !== undefined);
  if (skipped.length > 0) {
    lines.push("", "Skipped:", "");
    for (const s of new Set(skipped.map((r) => r.system))) {
      const mine = skipped.filter((r) => r.system === s);
      lines.push(`- ${s}, ${mine.map((r) => r.scenario).join(", ")}: ${mine[0].skipped}`);
    }
  }
  const na = result.rows.filter((r) => r.unsupported !== undefined);
  if (na.length > 0) {
    lines.push("", "n/a:", "");
    // One line per system and reason.
    for (const key of new Set(na.map((r) => `${r.system}\0${r.unsupported}`))) {
      const [s, why] = key.split("\0");
      const scenarios = na.filter((r) => r.system === s && r.unsupported === why).map((r) => r.scenario);
      lines.push(`- ${s}, ${scenarios.join(", ")}: ${why}`);
    }
  }
  return lines;
}

const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

function svg(result) {
  const systems = SYSTEMS.filter((s) => result.rows.some((r) => r.system === s.name));
  const hasMessages = result.rows.some((r) => r.system === MESSAGES);
  const cols = 4;
  const pw = 300;
  const ph = 210;
  const top = 76;
  const rowsN = systems.length > 0 ? Math.ceil(FIGURES.length / cols) : 0;
  const width = cols * pw + 20;
  const messagesTop = top + rowsN * ph;
  const messagesH = hasMessages ? 60 + Math.ceil((MESSAGE_FIGURES.length + 1 + callPanels(result.rows).length) / cols) * ph : 0;
  const height = messagesTop + messagesH + 20;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="22" font-size="16" font-weight="bold">open-channel side by side (${esc(result.machine.cpu)}, ${result.machine.cores} cores, Node ${esc(result.machine.node)})</text>`,
  ];
  if (systems.length > 0) systemsSvg(out, result, systems, { cols, pw, ph, top });
  if (hasMessages) messagesSvg(out, result, { cols, pw, ph, top: messagesTop });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}

/** The side-by-side panels: a bar per system, raw net's value marked as the limit. */
function systemsSvg(out, result, systems, { cols, pw, ph, top }) {
  // Legend.
  let lx = 10;
  for (const s of systems) {
    out.push(`<rect x="${lx}" y="34" width="12" height="12" fill="${COLORS[s.name] ?? "#333"}"/>`);
    out.push(`<text x="${lx + 16}" y="44">${esc(s.label)}</text>`);
    lx += 28 + s.label.length * 6.2;
  }
  // The limits on a line of their own: the systems' names fill the first.
  lx = 10;
  for (const limit of LIMITS.filter((l) => systems.some((s) => s.name === l.name))) {
    out.push(
      `<line x1="${lx}" y1="58" x2="${lx + 24}" y2="58" stroke="${limit.color}" stroke-width="2" stroke-dasharray="${limit.dash}"/>`,
    );
    out.push(`<text x="${lx + 28}" y="62">${esc(limit.text)}</text>`);
    lx += 40 + limit.text.length * 6.2;
  }

  FIGURES.forEach((figure, i) => {
    const x0 = 10 + (i % cols) * pw;
    const y0 = top + Math.floor(i / cols) * ph;
    const chartTop = y0 + 48;
    const chartBottom = y0 + ph - 40;
    const chartH = chartBottom - chartTop;
    out.push(`<text x="${x0 + 4}" y="${y0 + 14}" font-weight="bold">${esc(figure.title)}</text>`);
    out.push(`<text x="${x0 + 4}" y="${y0 + 27}" fill="#666">${esc(figure.unit)}, ${figure.better} is better</text>`);
    const cells = systems.map((s) => ({ s, c: cell(result.rows, figure, s.name) }));
    const max = Math.max(1e-9, ...cells.filter((x) => x.c.kind === "value").map((x) => x.c.value));
    const bw = (pw - 30) / systems.length;
    out.push(`<line x1="${x0}" y1="${chartBottom}" x2="${x0 + pw - 20}" y2="${chartBottom}" stroke="#999"/>`);
    cells.forEach(({ s, c }, j) => {
      const bx = x0 + 5 + j * bw;
      if (c.kind === "value" && belowNoise(result.rows, figure, s.name)) {
        out.push(
          `<text x="${bx + bw / 2}" y="${chartBottom - 6}" text-anchor="middle" font-size="10" fill="#666"><title>below what RSS can show</title>~0</text>`,
        );
      } else if (c.kind === "value") {
        const h = Math.max(1, (c.value / max) * chartH);
        out.push(
          `<rect x="${bx + 3}" y="${chartBottom - h}" width="${bw - 6}" height="${h}" fill="${COLORS[s.name] ?? "#333"}"><title>${esc(s.label)}: ${esc(format(c.value, figure.unit))} ${esc(figure.unit)}</title></rect>`,
        );
        out.push(
          `<text x="${bx + bw / 2}" y="${chartBottom - h - 3}" text-anchor="middle" font-size="10">${esc(format(c.value, figure.unit))}</text>`,
        );
      } else {
        const text = c.kind === "failed" ? "failed" : c.kind === "n/a" ? "n/a" : c.kind === "skipped" ? "skipped" : "-";
        const color = c.kind === "failed" ? "#d62728" : "#999";
        out.push(
          `<text x="${bx + bw / 2}" y="${chartBottom - 6}" text-anchor="middle" font-size="10" fill="${color}"><title>${esc(c.text ?? "")}</title>${text}</text>`,
        );
      }
      const short = SHORT[s.name] ?? s.name;
      out.push(`<text x="${bx + bw / 2}" y="${chartBottom + 13}" text-anchor="middle" font-size="9" fill="#444">${esc(short)}</text>`);
    });
    for (const { name, color, dash } of LIMITS) {
      const limit = cell(result.rows, figure, name);
      if (limit.kind !== "value" || !systems.some((s) => s.name === name)) continue;
      const ly = chartBottom - (limit.value / max) * chartH;
      out.push(
        `<line x1="${x0}" y1="${ly}" x2="${x0 + pw - 20}" y2="${ly}" stroke="${color}" stroke-width="1.5" stroke-dasharray="${dash}"/>`,
      );
    }
  });
}

const TARGET_COLOR = "#ff7f0e";
const RAW_COLOR = "#8c8c8c";

/** The message layer: a panel per figure (a bar per codec, raw net where paired, the target), then failover's counts. */
function messagesSvg(out, result, { cols, pw, ph, top }) {
  const rows = result.rows;
  out.push(`<text x="10" y="${top + 24}" font-size="16" font-weight="bold">open-channel messages (openMessageChannel, 64 B bodies)</text>`);
  let lx = 10;
  for (const c of CODECS) {
    out.push(`<rect x="${lx}" y="${top + 36}" width="12" height="12" fill="${c.color}"/>`);
    out.push(`<text x="${lx + 16}" y="${top + 46}">${esc(c.label)}</text>`);
    lx += 28 + c.label.length * 6.2;
  }
  out.push(`<rect x="${lx}" y="${top + 36}" width="12" height="12" fill="${RAW_COLOR}"/>`);
  out.push(`<text x="${lx + 16}" y="${top + 46}">raw (net unix / net TCP / TLS), same rounds</text>`);
  lx += 260;
  out.push(
    `<line x1="${lx}" y1="${top + 42}" x2="${lx + 24}" y2="${top + 42}" stroke="${TARGET_COLOR}" stroke-width="2" stroke-dasharray="5,3"/>`,
  );
  out.push(`<text x="${lx + 28}" y="${top + 46}">target (issue 7)</text>`);
  const panelsTop = top + 60;
  MESSAGE_FIGURES.forEach((figure, i) => {
    const bars = CODECS.map((c) => ({
      label: c.label.split(" ")[0],
      color: c.color,
      row: messageRow(rows, figure.scenario, c.codec),
      key: figure.key,
    }));
    const paired = rows.find((r) => r.scenario === figure.scenario && r.system === MESSAGES && r.error === undefined);
    if (figure.raw !== undefined) bars.push({ label: figure.rawLabel, color: RAW_COLOR, row: paired, key: figure.raw });
    const rawValue = paired?.[figure.raw];
    const target =
      figure.target?.value ??
      (figure.target?.ratio !== undefined && typeof rawValue === "number" ? figure.target.ratio * rawValue : undefined);
    barPanel(out, figure, bars, target, { x0: 10 + (i % cols) * pw, y0: panelsTop + Math.floor(i / cols) * ph, pw, ph });
  });
  const i = MESSAGE_FIGURES.length;
  failoverPanel(
    out,
    rows.find((r) => r.scenario === "messages-failover" && r.system === MESSAGES),
    { x0: 10 + (i % cols) * pw, y0: panelsTop + Math.floor(i / cols) * ph },
  );
  // The host's calls: a bar per codec, and beside it, pale, what it is compared with (same rounds).
  callPanels(rows).forEach((figure, k) => {
    const j = i + 1 + k;
    const bars = CODECS.flatMap((c) => {
      const row = messageRow(rows, figure.scenario, c.codec);
      return [
        { label: SHORT_CODEC[c.codec], color: c.color, row, key: figure.key },
        { label: figure.versusShort, color: c.color, opacity: 0.35, row, key: figure.versus },
      ];
    });
    const note = { ...figure, note: `pale: ${figure.versusTitle}` };
    barPanel(out, note, bars, undefined, { x0: 10 + (j % cols) * pw, y0: panelsTop + Math.floor(j / cols) * ph, pw, ph });
  });
}

/** The panels of the host's calls that have rows (those with a paired ratio). */
function callPanels(rows) {
  return CALL_FIGURES.filter((f) => f.ratio !== undefined && hasRow(rows, f.scenario));
}

function barPanel(out, figure, bars, target, { x0, y0, pw, ph }) {
  const chartTop = y0 + 56;
  const chartBottom = y0 + ph - 40;
  const chartH = chartBottom - chartTop;
  out.push(`<text x="${x0 + 4}" y="${y0 + 14}" font-weight="bold">${esc(figure.title)}</text>`);
  out.push(`<text x="${x0 + 4}" y="${y0 + 27}" fill="#666">${esc(figure.unit)}, ${figure.better} is better</text>`);
  if (figure.target) out.push(`<text x="${x0 + 4}" y="${y0 + 40}" fill="${TARGET_COLOR}">target ${esc(figure.target.text)}</text>`);
  if (figure.note) out.push(`<text x="${x0 + 4}" y="${y0 + 40}" fill="#666" font-size="9">${esc(figure.note)}</text>`);
  const values = bars.map((b) => (b.row !== undefined && b.row.error === undefined ? b.row[b.key] : undefined));
  const max = Math.max(1e-9, target ?? 0, ...values.filter((v) => typeof v === "number"));
  const bw = Math.min(80, (pw - 30) / bars.length);
  out.push(`<line x1="${x0}" y1="${chartBottom}" x2="${x0 + pw - 20}" y2="${chartBottom}" stroke="#999"/>`);
  bars.forEach((b, j) => {
    const bx = x0 + 5 + j * bw;
    const v = values[j];
    if (typeof v === "number") {
      const h = Math.max(1, (v / max) * chartH);
      out.push(
        `<rect x="${bx + 3}" y="${chartBottom - h}" width="${bw - 6}" height="${h}" fill="${b.color}"${b.opacity === undefined ? "" : ` fill-opacity="${b.opacity}"`}><title>${esc(b.label)}: ${esc(format(v, figure.unit))} ${esc(figure.unit)}</title></rect>`,
      );
      out.push(
        `<text x="${bx + bw / 2}" y="${chartBottom - h - 3}" text-anchor="middle" font-size="10">${esc(format(v, figure.unit))}</text>`,
      );
    } else {
      const failed = b.row?.error !== undefined;
      const text = failed ? "failed" : b.row?.skipped !== undefined ? "skipped" : "-";
      out.push(
        `<text x="${bx + bw / 2}" y="${chartBottom - 6}" text-anchor="middle" font-size="10" fill="${failed ? "#d62728" : "#999"}"><title>${esc(b.row?.error ?? b.row?.skipped ?? "")}</title>${text}</text>`,
      );
    }
    out.push(`<text x="${bx + bw / 2}" y="${chartBottom + 13}" text-anchor="middle" font-size="9" fill="#444">${esc(b.label)}</text>`);
  });
  if (target !== undefined) {
    const ty = chartBottom - (target / max) * chartH;
    out.push(
      `<line x1="${x0}" y1="${ty}" x2="${x0 + pw - 20}" y2="${ty}" stroke="${TARGET_COLOR}" stroke-width="1.5" stroke-dasharray="5,3"><title>target ${esc(figure.target.text)}</title></line>`,
    );
  }
}

function failoverPanel(out, row, { x0, y0 }) {
  out.push(`<text x="${x0 + 4}" y="${y0 + 14}" font-weight="bold">failover under load (counts)</text>`);
  if (row === undefined) return;
  if (row.error !== undefined) {
    out.push(`<text x="${x0 + 4}" y="${y0 + 40}" fill="#d62728"><title>${esc(row.error)}</title>failed</text>`);
    return;
  }
  const good = (n) => (n === 0 ? "#2ca02c" : "#d62728");
  const lines = [
    [`${row.members} members sending, host SIGKILLed ${row.kills} times`, "#666"],
    [`sent ${count(row.sent)}, acknowledged ${count(row.acknowledged)}`],
    [`delivered ${count(row.delivered)} (${row.hosts} hosts logged)`],
    [`lost ${count(row.lost)}`, good(row.lost), true],
    [`duplicated ${count(row.duplicated)}, unflagged ${count(row.duplicated_unflagged)}`, good(row.duplicated_unflagged), true],
    [`out of order ${count(row.out_of_order)}`, good(row.out_of_order)],
    [`sent by killed hosts ${count(row.sent_by_killed_hosts)}, delivered ${count(row.delivered_of_those)}`, "#666"],
    [`back on one host: ${format(row.reconnect_median_ms, "ms")} ms median, ${format(row.reconnect_max_ms, "ms")} max`, "#666"],
  ];
  lines.forEach(([text, color, bold], j) => {
    out.push(
      `<text x="${x0 + 4}" y="${y0 + 34 + j * 17}" fill="${color ?? "#000"}"${bold ? ' font-weight="bold"' : ""}>${esc(text)}</text>`,
    );
  });
}

function writeReports(result, dir) {
  fs.writeFileSync(path.join(dir, "latest.json"), `${JSON.stringify(result, null, 2)}\n`);
  fs.writeFileSync(path.join(dir, "latest.md"), markdown(result));
  fs.writeFileSync(path.join(dir, "latest.svg"), svg(result));
}

module.exports = { writeReports, markdown, svg, FIGURES };
