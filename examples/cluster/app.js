#!/usr/bin/env node
"use strict";
/**
 * open-channel with Node's `cluster`: the primary only forks workers (it never touches the
 * channel); the workers elect a host among themselves. After a few seconds the primary SIGKILLs
 * the hosting worker, forks a replacement, and you watch a surviving worker take over.
 *
 *   node examples/cluster/app.js
 */
const cluster = require("node:cluster");
const openChannel = require("open-channel").default;

if (cluster.isPrimary) {
  const hosts = new Map();
  const fork = () => cluster.fork().on("message", (m) => hosts.set(m.pid, m));
  for (let i = 0; i < 4; i++) fork();
  setTimeout(() => {
    const host = [...hosts.values()].find((m) => m.isHost);
    console.log(`\n== primary: SIGKILL the hosting worker ${host.pid}, and fork a replacement ==\n`);
    process.kill(host.pid, "SIGKILL");
    fork();
  }, 2500);
  setTimeout(() => {
    console.log("\n== done ==");
    for (const w of Object.values(cluster.workers)) w.process.kill();
    process.exit(0);
  }, 5000);
} else {
  const channel = openChannel("cluster-example", (member) => {
    member.on("data", (d) => member.write(`host ${process.pid} got: ${d}`));
  });
  const socket = channel.connect();
  socket.on("connect", () => {
    console.log(`worker ${process.pid}: connected to host ${channel.hostPid}${channel.isHost ? " (I host)" : ""}`);
    process.send({ pid: process.pid, isHost: channel.isHost });
    socket.write(`hello from worker ${process.pid}`);
  });
  socket.on("data", (d) => console.log(`worker ${process.pid}: ${d}`));
}
