import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { stripVTControlCharacters } from "node:util";

/**
 * The published open-channel 0.1.12's own test (mocha, two cluster workers on the default
 * channel), run against this open-channel: the original API must keep its promises. The worker
 * that hosts finishes first and destroys its socket while the other worker's request is in
 * flight; its server must go on serving (the seed: "the internal server will still be working").
 *
 * One assertion is left out: that `channel.connected` is still false when mocha reaches the first
 * case, 10-15 ms after `connect()` was called. 0.1.12 took longer than that to connect; this
 * channel usually has by then, so the assertion tests the test's own timing, not the channel.
 *
 * OC_ORIGINAL_RUNS=n runs it n times per transport (default 2).
 */
const RUNS = Number(process.env.OC_ORIGINAL_RUNS) || 2;
const TRANSPORTS = process.platform === "win32" ? ["pipe", "tcp"] : ["unix", "tcp"];
const NAMED = '                assert.strictEqual(channel.name, "open-channel");\n';
const RACY = `${NAMED}                assert.strictEqual(channel.connected, false);\n`;
const CASES = [
  "should open the default channel as expected",
  "should open a channel with a custom name as expected",
  "should return a net.Socket instance from channel.connect()",
  "should establish connection as expected",
  "should send message as expected",
  "should receive messages as expected",
  "should close the channel as expected",
];

function prepare(): string {
  const original = fs.readFileSync(require.resolve("open-channel-0.1.12/test.js"), "utf8");
  expect(original.split(RACY).length).toBe(2);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "oc-original-"));
  fs.writeFileSync(path.join(dir, "test.js"), original.replace(RACY, NAMED));
  // The test requires "." : this open-channel, as the package under test.
  fs.writeFileSync(path.join(dir, "index.js"), `module.exports = require(${JSON.stringify(require.resolve("open-channel"))});\n`);
  return dir;
}

describe.each(TRANSPORTS)("the original 0.1.12 test over %s", (transport) => {
  test(`passes in both workers, ${RUNS} run(s)`, () => {
    const dir = prepare();
    const mocha = require.resolve("mocha/bin/mocha.js");
    for (let run = 0; run < RUNS; run++) {
      const r = spawnSync(process.execPath, [mocha, "--no-color", "test.js"], {
        cwd: dir,
        // The copy lives in a temporary folder: its require("encoded-buffer") looks in ours.
        env: { ...process.env, OPEN_CHANNEL_TRANSPORT: transport, NODE_PATH: path.join(__dirname, "..", "..", "..", "node_modules") },
        encoding: "utf8",
        timeout: 30000,
      });
      // Without colours (CI=true turns mocha's on: codes around each tick).
      const out = stripVTControlCharacters(`${r.stdout}${r.stderr}`);
      // The primary exits 1 when a worker reported an error, 0 otherwise (after 3 s).
      expect([run, r.status, out]).toEqual([run, 0, expect.any(String)]);
      expect([run, out]).toEqual([run, expect.not.stringMatching(/AssertionError|failing|\d+\) should/)]);
      for (const name of CASES) {
        const passed = out.split("\n").filter((line) => line.includes(`✔ ${name}`) || line.includes(`✓ ${name}`)).length;
        expect([run, name, passed]).toEqual([run, name, 2]);
      }
    }
  });
});
