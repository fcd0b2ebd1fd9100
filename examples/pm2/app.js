"use strict";
// A small app run by PM2 in cluster mode: every instance runs this same file, joins the channel,
// and says hello; whichever instance hosts answers each hello with its own pid. Nobody wrote a
// server and PM2's master knows nothing about the channel.
//
// Each instance also keeps a status file (in OC_STATUS_DIR, when set) that tests and the README's
// walkthrough read: who it thinks hosts, and who answered its last hello.
const fs = require("node:fs");
const path = require("node:path");
const openChannel = require("open-channel").default;

const name = process.env.OC_CHANNEL || "pm2-example";
const statusDir = process.env.OC_STATUS_DIR;
const status = { pid: process.pid, instance: process.env.NODE_APP_INSTANCE, connects: 0 };

function save() {
  if (!statusDir) return;
  const file = path.join(statusDir, `${process.pid}.json`);
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(status));
  fs.renameSync(`${file}.tmp`, file);
}

const channel = openChannel(name, (member) => {
  // Host side: answer every "hello <pid>" line with this host's pid.
  member.setEncoding("utf8");
  member.on("data", (chunk) => {
    for (const line of chunk.split("\n").filter(Boolean)) member.write(`ack ${process.pid} ${line}\n`);
  });
});

const socket = channel.connect(30000);
socket.setEncoding("utf8");
socket.on("connect", () => {
  status.connects++;
  status.hostPid = channel.hostPid;
  status.isHost = channel.isHost;
  status.transport = channel.transport.name;
  save();
  console.log(
    `instance ${status.instance} (pid ${process.pid}) connected to host ${channel.hostPid}${channel.isHost ? " (itself)" : ""} over ${channel.transport.name}`,
  );
  socket.write(`hello ${process.pid}\n`);
});
socket.on("data", (chunk) => {
  const acks = chunk.split("\n").filter((l) => l.startsWith("ack "));
  if (acks.length === 0) return;
  status.ackFrom = Number(acks[acks.length - 1].split(" ")[1]);
  save();
});
socket.on("error", (err) => {
  status.error = `${err.code}: ${err.message}`;
  save();
  console.error(err);
});
