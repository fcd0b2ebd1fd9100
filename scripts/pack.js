#!/usr/bin/env node
"use strict";
/**
 * Packs every publishable package into build/tarballs/*.tgz (after `npm run build`).
 *
 * Each package is staged in build/pack/<name>/ first, because the platform list of a transport
 * (`os`) cannot live in its package.json in the repository: npm refuses to install a workspace
 * whose `os` does not match the machine (npm/cli#6138). The list is kept under `openChannelPack`
 * and written into the staged package.json here, so that npm skips a transport on the platforms
 * it does not serve (unix: not on win32; pipe: only on win32; tcp: everywhere).
 *
 *   node scripts/pack.js                  # prints the tarball paths, one per line
 *   node scripts/pack.js --install DIR    # then installs this platform's packages into the project in DIR
 *
 * `npm run pack -- --install ../my-app` does both after a build (DIR relative to where npm ran).
 */
const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const root = path.join(__dirname, "..");
const staging = path.join(root, "build", "pack");
const out = path.join(root, "build", "tarballs");
const PACKAGES = ["core", "transport-unix", "transport-tcp", "transport-pipe", "transport-redis", "messages", "open-channel"];
// npm is npm.cmd on Windows, which only a shell runs.
const NPM = { shell: process.platform === "win32" };

const installAt = process.argv.indexOf("--install");
const installDir = installAt < 0 ? undefined : process.argv[installAt + 1];
if (installAt >= 0 && (installDir === undefined || installDir.startsWith("--"))) {
  console.error("usage: node scripts/pack.js [--install DIR]   (DIR: the project to install open-channel into)");
  process.exit(2);
}

fs.rmSync(staging, { recursive: true, force: true });
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });

/** Does a package whose `os` is `list` install on `platform`? (npm's rule: "!x" excludes x.) */
function installsOn(list, platform) {
  if (list.includes(`!${platform}`)) return false;
  const only = list.filter((x) => !x.startsWith("!"));
  return only.length === 0 || only.includes(platform);
}

const tarballs = [];
/** The tarballs of the packages this platform installs (a transport for another system is left out). */
const forThisPlatform = [];
for (const dir of PACKAGES) {
  const src = path.join(root, "packages", dir);
  const manifest = JSON.parse(fs.readFileSync(path.join(src, "package.json"), "utf8"));
  if (!fs.existsSync(path.join(src, "dist", "index.js"))) throw new Error(`${dir} is not built: run npm run build first`);
  const stage = path.join(staging, dir);
  fs.mkdirSync(stage, { recursive: true });
  for (const entry of manifest.files) {
    const from = path.join(src, entry);
    if (fs.existsSync(from)) fs.cpSync(from, path.join(stage, entry), { recursive: true, filter: (f) => !f.endsWith(".tsbuildinfo") });
  }
  const platforms = manifest.openChannelPack?.os;
  if (platforms) manifest.os = platforms;
  delete manifest.openChannelPack;
  delete manifest.devDependencies;
  fs.writeFileSync(path.join(stage, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  const name = execFileSync("npm", ["pack", "--silent", "--pack-destination", out], { cwd: stage, encoding: "utf8", ...NPM })
    .trim()
    .split("\n")
    .pop();
  tarballs.push(path.join(out, name));
  if (platforms === undefined || installsOn(platforms, process.platform)) forThisPlatform.push(path.join(out, name));
}
console.log(tarballs.join("\n"));

if (installDir !== undefined) {
  // Relative to where the user ran `npm run pack` (npm itself runs scripts in the repository).
  const dir = path.resolve(process.env.INIT_CWD ?? process.cwd(), installDir);
  if (!fs.existsSync(dir)) fs.mkdirSync(dir, { recursive: true });
  // All of them in one install: each package's dependencies on the others resolve to these
  // tarballs instead of the registry.
  console.error(`installing into ${dir}: ${forThisPlatform.map((f) => path.basename(f)).join(", ")}`);
  // (Through a shell on Windows, which splits at spaces: each path quoted.)
  const paths = process.platform === "win32" ? forThisPlatform.map((f) => `"${f}"`) : forThisPlatform;
  execFileSync("npm", ["install", "--no-audit", "--no-fund", ...paths], {
    cwd: dir,
    stdio: ["ignore", "inherit", "inherit"],
    ...NPM,
  });
}
