"use strict";
// A member of the chaos run: joins the channel, reports every (re)connect and every error to the
// orchestrator over IPC, and keeps writing so the host always has traffic.
const openChannel = require("open-channel").default;

const name = process.env.CHAOS_CHANNEL;
const channel = openChannel(name, (socket) => {
  socket.on("data", () => undefined);
});
const socket = channel.connect(Number(process.env.CHAOS_TIMEOUT || 10000));
// Reports are stamped at once but sent in one batch once things are quiet, so that talking to the
// orchestrator never competes for the CPU with the failover being measured.
const REPORT_DELAY_MS = 60;
let pending = [];
let flushTimer;
const flush = () => {
  if (process.connected) for (const msg of pending) process.send(msg);
  pending = [];
};
const report = (msg) => {
  pending.push({ pid: process.pid, at: performance.timeOrigin + performance.now(), ...msg });
  clearTimeout(flushTimer);
  flushTimer = setTimeout(flush, REPORT_DELAY_MS);
};
// CPU time this process spent from noticing the loss until connected again (user + system, us).
let cpuAtLoss;
socket.on("connect", () => {
  const cpu = cpuAtLoss && process.cpuUsage(cpuAtLoss);
  cpuAtLoss = undefined;
  report({ type: "connect", hostPid: channel.hostPid, isHost: channel.isHost, cpuUs: cpu && cpu.user + cpu.system });
});
channel.on("state", (state, previous) => {
  if (previous === "connected" && state === "connecting") {
    cpuAtLoss = process.cpuUsage();
    report({ type: "lost" });
  }
});
socket.on("error", (err) => report({ type: "error", code: err.code, message: err.message }));
socket.on("data", () => undefined);
setInterval(() => socket.write(`${process.pid} tick\n`), 20);
