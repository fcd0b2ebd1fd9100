"use strict";
// One chat member. Every member runs this same file; whichever hosts runs the chat room below.
const openChannel = require("open-channel").default;

const me = process.argv[2];
const room = new Set();

const channel = openChannel("open-channel-demo-chat", (member) => {
  // The chat room: runs only in the hosting process. Every line is relayed to everyone else.
  room.add(member);
  member.setEncoding("utf8");
  let buffered = "";
  member.on("data", (chunk) => {
    buffered += chunk;
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      for (const other of room) if (other !== member && !other.destroyed) other.write(`${line}\n`);
    }
  });
  member.on("close", () => room.delete(member));
});

const socket = channel.connect();
socket.setEncoding("utf8");
let buffered = "";
let count = 0;
socket.on("data", (chunk) => {
  buffered += chunk;
  for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
    console.log(`  ${me.padEnd(6)} got  ${buffered.slice(0, nl)}`);
    buffered = buffered.slice(nl + 1);
  }
});
socket.on("connect", () => {
  const role = channel.isHost ? "and now HOSTS the channel" : `to host pid ${channel.hostPid}`;
  console.log(`* ${me} (pid ${process.pid}) connected ${role}`);
  process.send?.({ type: "connect", name: me, hostPid: channel.hostPid, isHost: channel.isHost, at: Date.now() });
});
channel.on("state", (state, previous) => {
  if (previous === "connected" && state === "connecting") console.log(`* ${me} lost the host, electing a new one...`);
});
// Written before the channel is even connected: queued, then delivered in order.
socket.write(`${me}: hello, I just arrived\n`);
setInterval(() => socket.write(`${me}: message #${++count}\n`), 900 + Math.floor(Math.random() * 300));
