"use strict";
// Every test run gets its own temporary directory (TMPDIR, and so os.tmpdir(), in every test and
// every process the tests start): the socket files, port files and temp dirs the tests make, and
// the leftovers of the hosts they SIGKILL, go away with it at the end (jest-global-teardown.js).
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

module.exports = async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "oc-run-"));
  // Like /tmp: the other-users test runs processes as other uids, which make their own folders here.
  fs.chmodSync(dir, 0o1777);
  globalThis.__openChannelTestTmp = dir;
  process.env.TMPDIR = dir;
  // The per-user folder must follow TMPDIR too, not a login session's runtime dir.
  delete process.env.XDG_RUNTIME_DIR;
};
