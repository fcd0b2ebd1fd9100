"use strict";
/**
 * A Jest reporter that keeps, in the file named by OC_RUNNING_FILE, the tests running right now
 * (one "file › test name" a line, or "file (before its first test)"), and removes the file when
 * the run completes. A file left behind names what hung when a run was killed by its time bound
 * (`.ci/run`, scripts/node-matrix.js). Without OC_RUNNING_FILE it does nothing.
 */
const fs = require("node:fs");
const path = require("node:path");

class RunningReporter {
  constructor() {
    this.file = process.env.OC_RUNNING_FILE;
    /** file path -> names of its test cases under way ("" while none has started yet). */
    this.running = new Map();
  }

  write() {
    if (!this.file) return;
    const root = process.cwd();
    const lines = [];
    for (const [file, names] of this.running) {
      const rel = path.relative(root, file);
      if (names.size === 0) lines.push(`${rel} (outside any test: a hook, or between tests)`);
      for (const name of names) lines.push(`${rel} › ${name}`);
    }
    fs.writeFileSync(this.file, lines.length > 0 ? `${lines.join("\n")}\n` : "");
  }

  onTestFileStart(test) {
    this.running.set(test.path, new Set());
    this.write();
  }

  onTestCaseStart(test, info) {
    this.running.get(test.path)?.add(info.fullName);
    this.write();
  }

  onTestCaseResult(test, result) {
    this.running.get(test.path)?.delete(result.fullName);
    this.write();
  }

  onTestFileResult(test) {
    this.running.delete(test.path);
    this.write();
  }

  onRunComplete() {
    if (this.file) fs.rmSync(this.file, { force: true });
  }
}

module.exports = RunningReporter;
