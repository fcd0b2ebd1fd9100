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
 *   node scripts/pack.js            # prints the tarball paths, one per line
 */
const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const root = path.join(__dirname, "..");
const staging = path.join(root, "build", "pack");
const out = path.join(root, "build", "tarballs");
const PACKAGES = ["core", "transport-unix", "transport-tcp", "transport-pipe", "messages", "open-channel"];

fs.rmSync(staging, { recursive: true, force: true });
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });

const tarballs = [];
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
  if (manifest.openChannelPack?.os) manifest.os = manifest.openChannelPack.os;
  delete manifest.openChannelPack;
  delete manifest.devDependencies;
  fs.writeFileSync(path.join(stage, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  const name = execFileSync("npm", ["pack", "--silent", "--pack-destination", out], { cwd: stage, encoding: "utf8" })
    .trim()
    .split("\n")
    .pop();
  tarballs.push(path.join(out, name));
}
console.log(tarballs.join("\n"));
