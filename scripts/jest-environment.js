"use strict";
/**
 * Jest's node environment, plus a check that each test file closes what it opened: sockets,
 * servers, child processes, timers (anything that keeps the event loop alive). What is still open
 * a moment after the file's last hook fails the file, naming the kinds of handles, so a leak is
 * found in the file that made it instead of as a worker that "failed to exit gracefully" at the
 * end of the run (or a run that never ends).
 */
const { TestEnvironment } = require("jest-environment-node");

/**
 * How long a file's handles may take to close after its last hook: a destroyed socket closes on
 * the next turn, but a SIGKILLed child's IPC pipe only once the worker reads its end, which on a
 * machine busy with other runs took more than 5 s.
 */
const GRACE_MS = 10000;

const counts = () => {
  const byType = new Map();
  for (const type of process.getActiveResourcesInfo()) byType.set(type, (byType.get(type) ?? 0) + 1);
  return byType;
};

class CheckedEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    this.testPath = context.testPath;
  }

  async setup() {
    await super.setup();
    // The worker's stdout and stderr are made on first use (a pipe each, open for good): make
    // them now, or the first file to write to them would be taken for their owner.
    void process.stdout;
    void process.stderr;
    this.before = counts();
  }

  async teardown() {
    const deadline = Date.now() + GRACE_MS;
    let extra;
    for (;;) {
      const now = counts();
      extra = [...now]
        .filter(([type, n]) => n > (this.before.get(type) ?? 0))
        .map(([type, n]) => `${type} x${n - (this.before.get(type) ?? 0)}`);
      if (extra.length === 0 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await super.teardown();
    if (extra.length > 0)
      throw new Error(`open handles left by ${this.testPath} (still open ${GRACE_MS} ms after its last hook): ${extra.join(", ")}`);
  }
}

module.exports = CheckedEnvironment;
