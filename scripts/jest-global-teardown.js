"use strict";
// Removes the run's temporary directory (see jest-global-setup.js).
const fs = require("node:fs");

module.exports = async () => {
  const dir = globalThis.__openChannelTestTmp;
  if (typeof dir === "string" && dir.includes("oc-run-")) fs.rmSync(dir, { recursive: true, force: true });
};
