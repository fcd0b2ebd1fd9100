#!/usr/bin/env node
"use strict";
/**
 * Mutation testing with Stryker: `npm run mutation` (every group below: about six hours on 2
 * cores), `npm run mutation -- handshake lock` (some groups), `npm run mutation -- --recheck lock`
 * (the survivors of the last run again, against today's tests: scripts/mutation-recheck.js; with
 * `--tests=a.test.ts,b.test.ts`, only those of the group's tests), or
 * `node scripts/mutation.js --report` (docs/mutation.md again from the results in docs/mutation/).
 * Not part of CI.
 *
 * Stryker changes the sources in place (with mutant switching: every mutant compiled in at once,
 * one active per run), builds them, and runs each group's tests once per mutant. It uses its
 * command runner, not its Jest runner: our tests start real processes (fork, cluster, other uids),
 * and only the command runner activates the mutant through an environment variable, which those
 * processes inherit. So each mutant runs its group's test files, quickest first, stopping at the
 * first failure (tests repeated to catch a rare race run once: OC_MUTATION_RUN=1), through
 * scripts/mutation-tests.js (which ends every process a timed-out run left).
 * Do not edit or build this checkout while it runs: Stryker puts the files back at the end (and on
 * Ctrl-C). Not incremental: with the command runner Stryker sees one test ("All tests"), so it
 * would reuse every result of unchanged sources even after the tests changed.
 *
 * Writes build/mutation/<group>.json (Stryker's report), docs/mutation/<group>.json (its counts and
 * the mutants not killed, committed: a later session re-checks them) and docs/mutation.md: the score per file,
 * with the groups not run this time kept from the previous runs.
 */
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const ROOT = path.join(__dirname, "..");
const OUT = path.join(ROOT, "build", "mutation");

/**
 * Each group: the sources to mutate (Stryker also takes `file:from-to`, a range of lines), and the
 * tests that should catch what changes in them, quickest first.
 */
const GROUPS = {
  handshake: {
    mutate: ["packages/core/src/handshake.ts", "packages/core/src/member-handshake.ts"],
    tests: [
      "packages/core/test/handshake.test.ts",
      "packages/transport-tcp/test/tcp-transport.test.ts",
      "packages/core/test/channel.test.ts",
    ],
  },
  host: {
    mutate: ["packages/core/src/host.ts", "packages/core/src/host-handshake.ts"],
    tests: [
      "packages/core/test/host.test.ts",
      "packages/core/test/compliance.test.ts",
      "packages/transport-unix/test/compliance.test.ts",
      "packages/open-channel/test/status.test.ts",
      "packages/open-channel/test/bad-input.test.ts",
      "packages/transport-tcp/test/tcp-transport.test.ts",
      "packages/core/test/channel.test.ts",
    ],
  },
  // The election, this process's hosting (binding, reclaiming, checking the address) and the heir.
  election: {
    mutate: ["packages/core/src/election.ts", "packages/core/src/hosting.ts", "packages/core/src/heir.ts"],
    tests: [
      "packages/transport-unix/test/unix-transport.test.ts",
      "packages/transport-tcp/test/tcp-transport.test.ts",
      "packages/core/test/channel.test.ts",
    ],
  },
  lock: {
    mutate: ["packages/core/src/lock.ts", "packages/core/src/transport-kit.ts", "packages/transport-unix/src/take-over.ts"],
    tests: [
      "packages/core/test/transport-kit.test.ts",
      "packages/transport-unix/test/unix-transport.test.ts",
      "packages/transport-unix/test/compliance.test.ts",
      "packages/core/test/lock.test.ts",
    ],
  },
  // The message layer, a group per file so that each run ends within the hour: the unit tests
  // first, then the ones over real channels (failover.test.ts kills hosts: for the host only).
  outbox: {
    mutate: ["packages/messages/src/outbox.ts"],
    tests: ["packages/messages/test/outbox.test.ts", "packages/messages/test/messages.test.ts", "packages/messages/test/replies.test.ts"],
  },
  frame: {
    mutate: ["packages/messages/src/frame.ts"],
    tests: ["packages/messages/test/frame.test.ts", "packages/messages/test/messages.test.ts", "packages/messages/test/replies.test.ts"],
  },
  "message-host": {
    mutate: ["packages/messages/src/host.ts"],
    tests: [
      "packages/messages/test/results.test.ts",
      "packages/messages/test/messages.test.ts",
      "packages/messages/test/replies.test.ts",
      "packages/messages/test/failover.test.ts",
      "packages/messages/test/held.test.ts",
      "packages/messages/test/host-api.test.ts",
      "packages/messages/test/locks.test.ts",
    ],
  },
  // The host's side as the members see it: calls, holds, named events.
  "message-member": {
    mutate: ["packages/messages/src/events.ts", "packages/messages/src/messenger.ts"],
    tests: [
      "packages/messages/test/held.test.ts",
      "packages/messages/test/messages.test.ts",
      "packages/messages/test/host-api.test.ts",
      "packages/messages/test/failover.test.ts",
    ],
  },
};

const git = (...args) => {
  const run = spawnSync("git", args, { cwd: ROOT, encoding: "utf8" });
  if (run.status !== 0) throw new Error(`mutation: git ${args.join(" ")}: ${run.stderr}`);
  return run.stdout;
};

/** The results of a group's last run, kept in the repository: docs/mutation/<group>.json. */
const resultsPath = (group) => path.join(ROOT, "docs", "mutation", `${group}.json`);
function readResults(group) {
  return fs.existsSync(resultsPath(group)) ? JSON.parse(fs.readFileSync(resultsPath(group), "utf8")) : undefined;
}
function writeResults(group, results) {
  fs.mkdirSync(path.dirname(resultsPath(group)), { recursive: true });
  fs.writeFileSync(resultsPath(group), `${JSON.stringify(results, null, 1)}\n`);
}

/**
 * Stryker's report (build/mutation/<group>.json, the sources and every mutant) made small enough to
 * commit: the counts per status, and the mutants the run did not kill, which a re-check runs again.
 */
function saveResults(group, commit) {
  const report = JSON.parse(fs.readFileSync(path.join(OUT, `${group}.json`), "utf8"));
  const files = {};
  for (const [file, { mutants }] of Object.entries(report.files)) {
    const counts = { Killed: 0, Timeout: 0, Survived: 0, NoCoverage: 0, CompileError: 0, Ignored: 0, RuntimeError: 0 };
    for (const m of mutants) counts[m.status] = (counts[m.status] ?? 0) + 1;
    const left = mutants.filter((m) => m.status === "Survived" || m.status === "NoCoverage");
    counts.Survived = 0;
    counts.NoCoverage = 0;
    files[file] = {
      counts,
      mutants: left.map(({ id, mutatorName, replacement, location, status }) => ({ id, mutatorName, replacement, location, status })),
    };
  }
  writeResults(group, { group, commit, runOn: new Date().toISOString().slice(0, 10), files });
}

/** The tests of a run, quickest first, stopping at the first failure (as Stryker runs them). */
const testCommand = (tests) =>
  `OC_MUTATION_RUN=1 OC_TEST_ORDER=${tests.join(",")} node scripts/mutation-tests.js --ci --bail --maxWorkers=1 --testSequencer ./scripts/jest-order-sequencer.js ${tests.join(" ")}`;

// --report: only remake docs/mutation.md from the results in docs/mutation/. --recheck: run the
// survivors of the groups' last reports again against today's tests (scripts/mutation-recheck.js).
const reportOnly = process.argv.includes("--report");
const recheckOnly = process.argv.includes("--recheck");
// --tests=a,b: a re-check runs only these of the group's tests (quicker; it can only kill fewer).
const testsArg = process.argv.find((a) => a.startsWith("--tests="));
const asked = process.argv.slice(2).filter((a) => a !== "--report" && a !== "--recheck" && a !== testsArg);
const unknown = asked.filter((g) => !(g in GROUPS));
if (unknown.length > 0) {
  console.error(`mutation: no group ${unknown.join(", ")}; groups: ${Object.keys(GROUPS).join(", ")}`);
  process.exit(2);
}
const groups = reportOnly || recheckOnly ? [] : asked.length > 0 ? asked : Object.keys(GROUPS);
fs.mkdirSync(OUT, { recursive: true });
if (recheckOnly) {
  const recheck = require("./mutation-recheck");
  for (const group of asked.length > 0 ? asked : Object.keys(GROUPS)) {
    const tests = testsArg === undefined ? GROUPS[group].tests : testsArg.slice("--tests=".length).split(",");
    recheck(group, testCommand(tests), { readResults, writeResults, git });
  }
}

// The sources a run mutates must be committed: its results name the commit, and a re-check
// finds each mutant's original lines there.
const commit = groups.length === 0 ? "" : git("rev-parse", "HEAD").trim();
for (const group of groups) {
  const { mutate, tests } = GROUPS[group];
  const dirty = git("status", "--porcelain", "--", ...mutate.map((m) => m.replace(/:.*$/, ""))).trim();
  if (dirty !== "") {
    console.error(`mutation: commit the sources of group ${group} first:\n${dirty}`);
    process.exit(2);
  }
  const config = {
    packageManager: "npm",
    testRunner: "command",
    commandRunner: {
      command: testCommand(tests),
    },
    coverageAnalysis: "off",
    inPlace: true,
    buildCommand: "npm run build",
    mutate,
    reporters: ["clear-text", "json", "progress"],
    jsonReporter: { fileName: path.join("build", "mutation", `${group}.json`) },
    // A mutant that does not type-check is not run (and not counted). The tests run the build,
    // whose sources get "// @ts-nocheck" so that the build of every mutant at once succeeds.
    // No mutants in the debug output (scripts/stryker-ignore-debug.mjs says why).
    appendPlugins: [path.join(__dirname, "stryker-ignore-debug.mjs")],
    ignorers: ["debug-output"],
    checkers: ["typescript"],
    tsconfigFile: "tsconfig.build.json",
    disableTypeChecks: "packages/*/src/**/*.ts",
    concurrency: 1,
    // Stryker's bound per mutant: 1.5 times the first run's time, plus this.
    timeoutMS: 10000,
    tempDirName: path.join("build", "stryker-tmp"),
    cleanTempDir: "always",
  };
  const file = path.join(OUT, `${group}.config.json`);
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
  console.log(`mutation: group ${group}: ${mutate.join(", ")}`);
  const run = spawnSync(path.join(ROOT, "node_modules", ".bin", "stryker"), ["run", path.relative(ROOT, file)], {
    cwd: ROOT,
    stdio: "inherit",
  });
  if (run.status !== 0) console.error(`mutation: stryker exited ${run.status} for group ${group}`);
  else saveResults(group, commit);
  // Stryker's restore of the files it changed in place loses their modes: the command's bin.
  fs.chmodSync(path.join(ROOT, "packages", "open-channel", "bin", "open-channel.js"), 0o755);
}

// docs/mutation.md from every group's results in docs/mutation/.
const rows = [];
for (const group of Object.keys(GROUPS)) {
  const results = readResults(group);
  if (results === undefined) continue;
  for (const [file, { counts, mutants }] of Object.entries(results.files)) {
    const now = (status) => mutants.filter((m) => m.status === status).length;
    const timeouts = counts.Timeout + now("Timeout");
    const killed = counts.Killed + now("Killed") + timeouts;
    const survived = now("Survived") + now("NoCoverage");
    const total = killed + survived;
    const score = total === 0 ? "-" : `${((100 * killed) / total).toFixed(1)} %`;
    rows.push(
      `| ${file} | ${group} | ${score} | ${killed} (${timeouts} by time-out) | ${survived} | ${counts.CompileError} | ${counts.Ignored} | ${results.runOn} |`,
    );
  }
}
// The table goes between the markers; the rest of docs/mutation.md (the survivors explained) is kept,
// and so are the rows of groups with no report here (run in another checkout, or not run again).
const docPath = path.join(ROOT, "docs", "mutation.md");
const reported = new Set(rows.map((row) => row.split(" | ")[1]));
const previous = fs.existsSync(docPath) ? fs.readFileSync(docPath, "utf8") : "";
for (const row of previous.match(/^\| packages\/.*$/gm) ?? []) {
  if (reported.has(row.split(" | ")[1])) continue;
  // A row from before the debug-output column: no mutants were ignored then.
  const cells = row.split(" | ");
  rows.push(cells.length === 7 ? [...cells.slice(0, 6), "-", cells[6]].join(" | ") : row);
}
const order = Object.keys(GROUPS);
rows.sort((a, b) => order.indexOf(a.split(" | ")[1]) - order.indexOf(b.split(" | ")[1]));
const table = `<!-- scores: made by scripts/mutation.js -->
| file | group | score | killed | survived | do not compile | debug output (not run) | run on |
|---|---|---|---|---|---|---|---|
${rows.join("\n")}
<!-- /scores -->`;
const old = fs.existsSync(docPath) ? fs.readFileSync(docPath, "utf8") : "# Mutation scores\n\n<!-- scores -->\n";
const doc = old.replace(/<!-- scores[\s\S]*?(<!-- \/scores -->|$)/, table);
fs.writeFileSync(docPath, doc);
console.log(table);
