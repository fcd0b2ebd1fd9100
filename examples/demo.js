#!/usr/bin/env node
"use strict";
/**
 * open-channel demo: three processes chat over one channel that none of them "owns". The first
 * one to connect hosts the chat room inside itself. Then the demo SIGKILLs the host, and you watch
 * a survivor take over; finally a newcomer joins the new host.
 *
 *   npm run demo
 */
const { fork } = require("node:child_process");
const path = require("node:path");

const members = new Map();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let hostPid;
let killedAt;
let takeover;

function start(name) {
  const child = fork(path.join(__dirname, "chat-member.js"), [name], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  members.set(child.pid, { name, child });
  child.on("message", (m) => {
    if (m.type !== "connect") return;
    hostPid = m.hostPid;
    if (killedAt !== undefined && takeover === undefined && m.isHost) takeover = { name: m.name, ms: m.at - killedAt };
  });
}

(async () => {
  console.log("== open-channel demo: alice, bob and carol start at the same moment ==");
  for (const name of ["alice", "bob", "carol"]) start(name);
  await sleep(3500);

  const host = members.get(hostPid);
  console.log(`\n== SIGKILL the host: ${host.name} (pid ${hostPid}). Nobody restarts it. ==\n`);
  killedAt = Date.now();
  host.child.kill("SIGKILL");
  members.delete(hostPid);
  await sleep(3000);

  console.log("\n== dave joins late, and finds the new host on his own ==\n");
  start("dave");
  await sleep(3000);

  for (const { child } of members.values()) child.kill("SIGKILL");
  console.log(
    takeover
      ? `\n== done: ${takeover.name} took over as host about ${takeover.ms} ms after the kill; the chat went on ==`
      : "\n== done: no takeover was seen (unexpected; run with NODE_DEBUG=open-channel to see why) ==",
  );
  process.exit(takeover ? 0 : 1);
})();
