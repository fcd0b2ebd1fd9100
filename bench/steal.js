"use strict";
/**
 * How much of the machine was not ours, from /proc/stat (Linux; 10 ms ticks).
 *
 * Steal time: the share of cores 0 and 1 (the pinned ones; all of a 2-core machine) that the
 * hypervisor gave to other guests. A throughput round during which it took over STEAL_REDO_PCT
 * is run again, up to REDO_MAX times: such a round measures the neighbours, not the code (on this
 * VM, 30% steal halves every rate, raw bytes included). Rows say how many rounds were run again,
 * and each kept round's steal.
 *
 * Other processes: the share of all cores' time that processes outside the bench used (busy time
 * minus the bench's own CPU time). They compete for the cores as the hypervisor's other guests
 * do; reported, never a reason to run a round again.
 */
const fs = require("node:fs");

const STEAL_REDO_PCT = 10;
const REDO_MAX = 3;

/** Cores 0 and 1 as /proc/stat counts them: [steal, total] ticks; undefined off Linux. */
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

/** The share (%) of the cores' time since `before` that the hypervisor gave to others. */
function stealPct(before) {
  const after = stealSnapshot();
  if (before === undefined || after === undefined || after[1] <= before[1]) return undefined;
  return (100 * (after[0] - before[0])) / (after[1] - before[1]);
}

/** `fn()` once, or again while the hypervisor took over STEAL_REDO_PCT during it. */
async function undisturbed(fn) {
  for (let redone = 0; ; redone++) {
    const before = stealSnapshot();
    const value = await fn();
    // null for a round the kernel's ticks did not see (or no /proc/stat): kept as it is.
    const steal = stealPct(before) ?? null;
    if (steal === null || steal <= STEAL_REDO_PCT || redone === REDO_MAX) return { value, steal, redone };
  }
}

/** All cores as /proc/stat counts them: busy (user, nice, system, irq, softirq) and total ticks. */
function cpuTicks() {
  let line;
  try {
    line = fs.readFileSync("/proc/stat", "utf8").split("\n", 1)[0];
  } catch {
    return undefined;
  }
  if (!line.startsWith("cpu ")) return undefined;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1, 9).map(Number);
  return { busy: user + nice + system + irq + softirq, total: user + nice + system + idle + iowait + irq + softirq + steal };
}

/** 10 ms: the tick of /proc/stat and /proc/<pid>/stat (USER_HZ), in µs. */
const TICK_US = 10_000;

/**
 * The share (%) of all cores' time between two cpuTicks() that processes other than the bench's
 * used; `ownUs`: the bench's CPU time meanwhile. Undefined when the ticks did not move.
 */
function othersPct(before, after, ownUs) {
  if (before === undefined || after === undefined || after.total <= before.total) return undefined;
  const busyUs = (after.busy - before.busy) * TICK_US;
  return Math.max(0, (100 * (busyUs - ownUs)) / ((after.total - before.total) * TICK_US));
}

/** This process's CPU time and that of the children it has reaped (µs; Linux), else undefined. */
function treeCpuUs() {
  try {
    const stat = fs.readFileSync("/proc/self/stat", "utf8");
    // After the command's ")": state is field 3, utime stime cutime cstime are fields 14-17.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields.slice(11, 15).reduce((sum, x) => sum + Number(x), 0) * TICK_US;
  } catch {
    return undefined;
  }
}

const round1 = (x) => Number(x.toFixed(1));

/** The steal figures of a scenario's kept rounds (none off Linux). */
function stealFigures(steals, redone) {
  const seen = steals.filter((x) => x !== null).sort((a, b) => a - b);
  if (seen.length === 0) return {};
  const mid = seen.length / 2;
  const median = seen.length % 2 ? seen[Math.floor(mid)] : (seen[mid - 1] + seen[mid]) / 2;
  return {
    steal_pct: round1(median),
    rounds_steal_pct: steals.map((x) => (x === null ? null : round1(x))),
    rounds_redone: redone,
  };
}

module.exports = { STEAL_REDO_PCT, REDO_MAX, stealSnapshot, stealPct, undisturbed, stealFigures, cpuTicks, othersPct, treeCpuUs };
