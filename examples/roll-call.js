"use strict";
/**
 * The host's side of the message layer: joins and leaves, the members, a request to each member,
 * a broadcast, and named events typed by an event map. Run: node examples/roll-call.js (it forks 3
 * workers; whichever hosts greets each member as it joins, calls the roll once all 3 are there,
 * then tells them to leave and sees each one go).
 */
const { fork } = require("node:child_process");
const { hostEvents, openMessageChannel, typedEvents } = require("open-channel");

const WORKERS = 3;

if (process.argv[2] === "worker") {
  const me = `worker ${process.pid}`;
  const room = openMessageChannel(process.argv[3], {
    // These run in whichever process hosts.
    onJoin(member) {
      const host = room.host;
      console.log(`host: pid ${member.pid} joined over ${member.transport} (${host.members().length} of ${WORKERS})`);
      hostEvents(host).emitTo(member, "welcome", { members: host.members().length });
      if (host.members().length === WORKERS) rollCall(host);
    },
    onLeave(member, reason) {
      console.log(`host: pid ${member.pid} left (${reason})`);
      // The others gone, the host leaves last.
      if (room.host.members().length === 1) messenger.close().then(() => process.exit(0));
    },
    events: {
      hello(body, from) {
        console.log(`host: "hello" from pid ${from.pid}: ${body.text}`);
      },
    },
  });
  const rollCall = async (host) => {
    const answers = await Promise.all(host.members().map((m) => host.requestTo(m, "status?", { timeout: 2000 })));
    console.log(`host: roll call: ${answers.map((a) => `pid ${a.pid} up ${a.upMs} ms`).join(", ")}`);
    const reached = await host.broadcast({ note: "the roll was called" });
    console.log(`host: broadcast reached ${reached.length} members`);
    await hostEvents(host).emit("leave", undefined);
  };

  const messenger = room.connect();
  // This member's side: its answers to the host's calls, and its named events.
  messenger.handle({
    onRequest: () => ({ pid: process.pid, upMs: Math.round(process.uptime() * 1000) }),
    onMessage: (body) => console.log(`${me}: the host says ${JSON.stringify(body)}`),
  });
  const events = typedEvents(messenger);
  events.on("welcome", ({ members }) => console.log(`${me}: welcome, ${members} member(s) here`));
  events.on("leave", () => {
    if (room.host === undefined) messenger.close().then(() => process.exit(0));
  });
  events.emit("hello", { text: `${me} is here` });
} else {
  const name = `roll-call-${process.pid}`;
  let exited = 0;
  for (let i = 0; i < WORKERS; i++) {
    fork(__filename, ["worker", name]).on("exit", () => {
      if (++exited === WORKERS) console.log("== done: every member joined, answered the roll, and left ==");
    });
  }
}
