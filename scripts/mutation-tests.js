#!/usr/bin/env node
"use strict";
/**
 * The test command of a mutation run (scripts/mutation.js): `node scripts/mutation-tests.js <jest
 * args>` runs Jest in a process group of its own and ends that whole group (Jest, its workers,
 * every process a test forked) when Jest exits, or when Stryker gives up on the run (a mutant that
 * hangs a test). Stryker then kills the processes above this one, not Jest's workers: they would
 * live on, stuck in the hung test, one more for each mutant that timed out.
 */
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

/** The parent of `pid`, from /proc (Linux); `undefined` where it cannot be read. */
function parentOf(pid) {
  try {
    return Number(
      fs
        .readFileSync(`/proc/${pid}/stat`, "utf8")
        .replace(/^.*\) /s, "")
        .split(" ")[1],
    );
  } catch {
    return undefined;
  }
}

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

// The shell Stryker started, and Stryker's test runner process above it.
const watched = [process.ppid, parentOf(process.ppid)].filter((pid) => pid !== undefined && pid > 1);
const jest = spawn(process.execPath, [path.join(__dirname, "..", "node_modules", "jest", "bin", "jest.js"), ...process.argv.slice(2)], {
  stdio: "inherit",
  detached: true,
});
const endGroup = () => {
  try {
    process.kill(-jest.pid, "SIGKILL");
  } catch {
    // already gone
  }
};
const watch = setInterval(() => {
  if (watched.every(alive)) return;
  endGroup();
  process.exit(1);
}, 500);
for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) {
  process.on(signal, () => {
    endGroup();
    process.exit(1);
  });
}
jest.on("exit", (code) => {
  clearInterval(watch);
  endGroup();
  process.exit(code ?? 1);
});
