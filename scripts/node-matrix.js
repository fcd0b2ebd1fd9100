#!/usr/bin/env node
"use strict";
/**
 * Runs the Jest suite on other Node versions: `npm run test:node -- 22` (the full suite on Node 22),
 * `npm run test:node -- 24 --smoke`, `npm run test:matrix` (the smoke set on 22 and 24, as CI;
 * `-- --full` for the full suite). `all` names every supported version.
 *
 *   node scripts/node-matrix.js <20|22|24|all>... [--smoke|--full] [--json-dir DIR] [--run-timeout S] [-- jest args]
 *
 * Each supported major is pinned to one exact release of the npm registry's `node` package, fetched
 * with `npx -y -p node@X.Y.Z` and kept in npm's cache after the first time; when the running Node
 * is that exact release, it runs on it without a download. Jest runs on that binary with its folder
 * first in PATH, so what the tests start (fork, cluster, spawn of process.execPath, `npm`, PM2) runs
 * on the same Node. The tests import the built packages: build first (the npm scripts do). Each run
 * writes Jest's JSON results to DIR/jest-results-node<major>.json (default build/node-matrix) and
 * prints "node vX.Y.Z (set): N passed, M failed, K skipped in S s". Exits 0 only if every run
 * passed; a Node that cannot be fetched is a failed run, never a skipped one. A run still going
 * after --run-timeout seconds (default 900) is killed with all it started, and the tests it had
 * under way are printed (scripts/jest-running-reporter.js).
 */
const { spawn, spawnSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const ROOT = path.join(__dirname, "..");
/** The supported majors (`engines: >=20`), each pinned to one release so that runs are repeatable. */
const PINNED = { 20: "20.20.2", 22: "22.23.3", 24: "24.21.0" };
/**
 * The smoke set: the test files that start real processes (fork, cluster, PM2, the examples, other
 * uids, stale hosts left by SIGKILL), where a Node version shows its differences; under 90 s on a
 * 2-core machine (plus core's channel suite over TLS). The repeated race tests run 3 rounds each instead of 10 or 20 (OC_TEST_ROUNDS).
 * Left out: packaging.test.ts (npm and tsc, a minute) and the in-process unit tests.
 */
const SMOKE = [
  "packages/open-channel/test/multi-process.test.ts",
  "packages/open-channel/test/latency.test.ts",
  "packages/open-channel/test/pm2.test.ts",
  "packages/open-channel/test/examples.test.ts",
  "packages/open-channel/test/bad-input.test.ts",
  "packages/open-channel/test/other-users.test.ts",
  "packages/open-channel/test/status.test.ts",
  "packages/messages/test/failover.test.ts",
  "packages/open-channel/test/api.test.ts",
  "packages/core/test/channel.test.ts",
  // Stream mode (a socket over TLS) rests on net.Socket internals: the same suite over TLS.
  "packages/core/test/channel-tls.test.ts",
  "packages/transport-unix/test/unix-transport.test.ts",
  "packages/transport-unix/test/compliance.test.ts",
  "packages/transport-tcp/test/tcp-transport.test.ts",
];
const SMOKE_ROUNDS = "3";
/** Fetching a Node release (about 30 MB) the first time takes seconds; a hung registry must not hang CI. */
const FETCH_TIMEOUT_MS = 3 * 60 * 1000;

function usage(message) {
  if (message) console.error(`node-matrix: ${message}`);
  console.error("usage: node scripts/node-matrix.js <20|22|24|all>... [--smoke|--full] [--json-dir DIR] [--run-timeout S] [-- jest args]");
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { majors: [], smoke: false, jsonDir: path.join(ROOT, "build", "node-matrix"), jestArgs: [], runTimeoutS: 900 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      opts.jestArgs = argv.slice(i + 1);
      break;
    } else if (a === "--smoke") opts.smoke = true;
    else if (a === "--full") opts.smoke = false;
    else if (a === "--json-dir") {
      if (argv[i + 1] === undefined) usage("--json-dir needs a folder");
      opts.jsonDir = path.resolve(argv[++i]);
    } else if (a === "--run-timeout") {
      opts.runTimeoutS = Number(argv[++i]);
      if (!(opts.runTimeoutS > 0)) usage("--run-timeout needs seconds");
    } else if (a === "all") opts.majors.push(...Object.keys(PINNED));
    else if (/^v?\d+$/.test(a)) {
      const major = a.replace(/^v/, "");
      if (!PINNED[major]) usage(`Node ${major} is not a supported version (supported: ${Object.keys(PINNED).join(", ")})`);
      opts.majors.push(major);
    } else if (a === "-h" || a === "--help") usage();
    else usage(`unknown argument ${a}`);
  }
  if (opts.majors.length === 0) usage("name at least one Node version");
  opts.majors = [...new Set(opts.majors)];
  return opts;
}

/** The path of a Node binary of exactly `version`: this one, or the npm registry's `node` package via npx. */
function nodeBinary(version) {
  if (process.versions.node === version) return process.execPath;
  // --prefer-offline: once npm has this exact version in its cache, no need to ask the registry again.
  const r = spawnSync(
    "npx",
    ["--prefer-offline", "-y", "-p", `node@${version}`, "node", "-p", "JSON.stringify([process.execPath, process.version])"],
    {
      cwd: ROOT,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: FETCH_TIMEOUT_MS,
    },
  );
  let binary, reported;
  try {
    [binary, reported] = JSON.parse((r.stdout || "").trim().split("\n").pop());
  } catch {
    // reported below
  }
  if (r.status !== 0 || reported !== `v${version}` || typeof binary !== "string" || !fs.existsSync(binary)) {
    const why = r.error ? r.error.message : r.signal ? `killed by ${r.signal}` : `exit ${r.status}`;
    throw new Error(
      `could not get Node ${version} with npx -y -p node@${version} (${why}): ${(r.stderr || "").trim().slice(-800) || r.stdout}`,
    );
  }
  return binary;
}

/** Counts from Jest's JSON results, the same way as .ci/run; undefined if the file is missing or unreadable. */
function summarize(file) {
  try {
    const r = JSON.parse(fs.readFileSync(file, "utf8"));
    // A suite that failed to run (syntax error, crash) has no test results: count it as failed.
    const broken = r.testResults.filter((s) => s.status === "failed" && s.assertionResults.length === 0).length;
    return { passed: r.numPassedTests, failed: r.numFailedTests + broken, skipped: r.numPendingTests + r.numTodoTests };
  } catch {
    return undefined;
  }
}

let child;
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    if (child && child.exitCode === null) killTree(child);
    process.exit(1);
  });
}

/** The tests a killed run left under way (what the running reporter wrote), or a note. */
function readRunning(file) {
  try {
    return fs.readFileSync(file, "utf8").trim() || "(no test under way)";
  } catch {
    return "(nothing recorded)";
  }
}

function killTree(proc) {
  try {
    if (process.platform === "win32") proc.kill("SIGKILL");
    else process.kill(-proc.pid, "SIGKILL");
  } catch {
    // gone already
  }
}

function runJest(binary, major, opts, outputFile) {
  const args = [
    path.join(ROOT, "node_modules", "jest", "bin", "jest.js"),
    ...(opts.smoke ? ["--runTestsByPath", ...SMOKE] : []),
    "--json",
    `--outputFile=${outputFile}`,
    ...opts.jestArgs,
  ];
  const env = { ...process.env, PATH: `${path.dirname(binary)}${path.delimiter}${process.env.PATH || ""}` };
  if (opts.smoke) env.OC_TEST_ROUNDS = SMOKE_ROUNDS;
  // What is under way, for the report if the run is killed (scripts/jest-running-reporter.js).
  env.OC_RUNNING_FILE = path.join(opts.jsonDir, `running-node${major}.txt`);
  return new Promise((resolve) => {
    // Its own process group, so that a run over its time bound goes with everything it started.
    child = spawn(binary, args, { cwd: ROOT, env, stdio: "inherit", detached: process.platform !== "win32" });
    const timer = setTimeout(() => {
      console.error(`node-matrix: Jest on Node ${major} still running after ${opts.runTimeoutS} s: killed. Under way:`);
      console.error(readRunning(env.OC_RUNNING_FILE));
      killTree(child);
    }, opts.runTimeoutS * 1000);
    child.on("error", (err) => {
      console.error(`node-matrix: could not start Jest on Node ${major}: ${err.message}`);
      resolve(1);
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolve(signal ? 1 : code);
    });
  });
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const gone = opts.smoke ? SMOKE.filter((f) => !fs.existsSync(path.join(ROOT, f))) : [];
  if (gone.length > 0) usage(`the smoke set names test files that do not exist: ${gone.join(", ")} (update SMOKE)`);
  fs.mkdirSync(opts.jsonDir, { recursive: true });
  const set = opts.smoke ? "smoke" : "full suite";
  const lines = [];
  let failed = false;
  for (const major of opts.majors) {
    const version = PINNED[major];
    const outputFile = path.join(opts.jsonDir, `jest-results-node${major}.json`);
    // Never read a previous run's results as this one's.
    fs.rmSync(outputFile, { force: true });
    const started = Date.now();
    let binary;
    try {
      binary = nodeBinary(version);
    } catch (err) {
      console.error(`node-matrix: ${err.message}`);
      lines.push(`node v${version} (${set}): not run, Node could not be fetched`);
      failed = true;
      continue;
    }
    const fetchedS = (Date.now() - started) / 1000;
    console.log(`node-matrix: ${set} on Node v${version} (${binary})`);
    const testStarted = Date.now();
    const code = await runJest(binary, major, opts, outputFile);
    const s = ((Date.now() - testStarted) / 1000).toFixed(1);
    const counts = summarize(outputFile);
    if (code !== 0 || counts === undefined || counts.failed > 0) failed = true;
    const fetch = fetchedS >= 1 ? `, plus ${fetchedS.toFixed(1)} s to get Node` : "";
    lines.push(
      counts === undefined
        ? `node v${version} (${set}): no results (Jest exit ${code}) in ${s} s${fetch}`
        : `node v${version} (${set}): ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped in ${s} s${fetch} (Jest exit ${code}; ${path.relative(ROOT, outputFile)})`,
    );
  }
  for (const line of lines) console.log(line);
  process.exit(failed ? 1 : 0);
}

main();
