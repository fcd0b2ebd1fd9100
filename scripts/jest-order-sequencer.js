"use strict";
/**
 * Runs test files in the order OC_TEST_ORDER names them (comma-separated path ends), the others
 * after. For mutation runs: the quick files go first, so a mutant they kill costs little, since
 * `--bail` stops the run at the first failing file.
 */
const Sequencer = require("@jest/test-sequencer").default;

class OrderSequencer extends Sequencer {
  sort(tests) {
    const order = (process.env.OC_TEST_ORDER ?? "").split(",").filter(Boolean);
    const rank = (test) => {
      const at = order.findIndex((end) => test.path.endsWith(end));
      return at < 0 ? order.length : at;
    };
    return [...tests].sort((a, b) => rank(a) - rank(b));
  }
}

module.exports = OrderSequencer;
