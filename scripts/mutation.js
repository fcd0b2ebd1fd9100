#!/usr/bin/env node
"use strict";
/**
 * Mutation testing with Stryker: `npm run mutation` (every group below: about six hours on 2
 * cores), `npm run mutation -- handshake lock` (some groups), `npm run mutation -- --recheck lock`
 * (the survivors of the last run again, against today's tests: scripts/mutation-recheck.js; with
 * `--tests=a.test.ts,b.test.ts`, only those of the group's tests), or
 * `node scripts/mutation.js --report` (docs/mutation.md again from the reports in build/mutation).
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
 * Writes build/mutation/<group>.json (Stryker's report) and docs/mutation.md: the score per file,
 * with the groups not run this time kept from the previous runs.
 */
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const ROOT = path.join(__dirname, "..");
const OUT = path.join(ROOT, "build", "mutation");

/** `file:from-to`: the lines from the first that matches `from` to the one before the first that matches `to`. */
function linesOf(file, from, to) {
  const lines = fs.readFileSync(path.join(ROOT, file), "utf8").split("\n");
  const start = lines.findIndex((l) => from.test(l));
  const end = lines.findIndex((l, i) => i > start && to.test(l));
  if (start < 0 || end < 0) throw new Error(`mutation: ${file} no longer has the lines ${from} .. ${to}`);
  return `${file}:${start + 1}-${end}`;
}

/**
 * Each group: the sources to mutate (a `file:from-to` names a range of lines), and the tests that
 * should catch what changes in them, quickest first.
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
    mutate: ["packages/core/src/host.ts"],
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
  // The election, the take-over of the address and the heir: ProcessChannel from watchAddress()
  // to dropHost() (the rest of the class is the socket bridge and the API), and heir.ts.
  election: {
    mutate: [
      linesOf("packages/core/src/process-channel.ts", /^ {2}private watchAddress\(/, /^ {2}private emitSoon\(/),
      "packages/core/src/heir.ts",
    ],
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
    ],
  },
};

/** The tests of a run, quickest first, stopping at the first failure (as Stryker runs them). */
const testCommand = (tests) =>
  `OC_MUTATION_RUN=1 OC_TEST_ORDER=${tests.join(",")} node scripts/mutation-tests.js --ci --bail --maxWorkers=1 --testSequencer ./scripts/jest-order-sequencer.js ${tests.join(" ")}`;

// --report: only remake docs/mutation.md from the reports in build/mutation. --recheck: run the
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
    recheck(group, testCommand(tests));
  }
}

for (const group of groups) {
  const { mutate, tests } = GROUPS[group];
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
  // Stryker's restore of the files it changed in place loses their modes: the command's bin.
  fs.chmodSync(path.join(ROOT, "packages", "open-channel", "bin", "open-channel.js"), 0o755);
}

// docs/mutation.md from every group's latest report.
const rows = [];
for (const group of Object.keys(GROUPS)) {
  let report;
  try {
    report = JSON.parse(fs.readFileSync(path.join(OUT, `${group}.json`), "utf8"));
  } catch {
    continue;
  }
  for (const [file, { mutants }] of Object.entries(report.files)) {
    const count = (status) => mutants.filter((m) => m.status === status).length;
    const killed = count("Killed") + count("Timeout");
    const survived = count("Survived") + count("NoCoverage");
    const total = killed + survived;
    const when = fs
      .statSync(path.join(OUT, `${group}.json`))
      .mtime.toISOString()
      .slice(0, 10);
    const score = total === 0 ? "-" : `${((100 * killed) / total).toFixed(1)} %`;
    rows.push(
      `| ${file} | ${group} | ${score} | ${killed} (${count("Timeout")} by time-out) | ${survived} | ${count("CompileError")} | ${when} |`,
    );
  }
}
// The table goes between the markers; the rest of docs/mutation.md (the survivors explained) is kept,
// and so are the rows of groups with no report here (run in another checkout, or not run again).
const docPath = path.join(ROOT, "docs", "mutation.md");
const reported = new Set(rows.map((row) => row.split(" | ")[1]));
const previous = fs.existsSync(docPath) ? fs.readFileSync(docPath, "utf8") : "";
for (const row of previous.match(/^\| packages\/.*$/gm) ?? []) {
  if (!reported.has(row.split(" | ")[1])) rows.push(row);
}
const order = Object.keys(GROUPS);
rows.sort((a, b) => order.indexOf(a.split(" | ")[1]) - order.indexOf(b.split(" | ")[1]));
const table = `<!-- scores: made by scripts/mutation.js -->
| file | group | score | killed | survived | do not compile | run on |
|---|---|---|---|---|---|---|
${rows.join("\n")}
<!-- /scores -->`;
const old = fs.existsSync(docPath) ? fs.readFileSync(docPath, "utf8") : "# Mutation scores\n\n<!-- scores -->\n";
const doc = old.replace(/<!-- scores[\s\S]*?(<!-- \/scores -->|$)/, table);
fs.writeFileSync(docPath, doc);
console.log(table);
