"use strict";
/**
 * The lock service (./locks.js) at work: 4 workers take turns at one lock ("printer"), each
 * printing while it holds it, while the host is SIGKILLed twice (a killed worker is replaced).
 * Run: node examples/lock-service/demo.js
 */
const { fork } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { openLocks } = require("./locks");

/** Whether process `pid` is alive. */
function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

if (process.argv[2] === "worker") {
  const locks = openLocks(process.argv[3]);
  // The "printer": a file that names its user. Another live pid in it would be two holders.
  const printer = path.join(os.tmpdir(), `${process.argv[3]}.printer`);
  let stop = false;
  process.on("message", (m) => {
    if (m === "stop") stop = true;
  });
  (async () => {
    while (!stop) {
      const ticket = await locks.acquire("printer");
      let other = 0;
      try {
        other = Number(fs.readFileSync(printer, "utf8"));
      } catch {}
      fs.writeFileSync(printer, String(process.pid));
      process.send({ type: "holding", ticket, hosting: locks.channel.channel.isHost, overlap: other !== 0 && alive(other) });
      await new Promise((resolve) => setTimeout(resolve, 15)); // the work done under the lock
      fs.rmSync(printer, { force: true });
      await locks.release("printer");
    }
    await locks.close();
    process.exit(0);
  })();
} else {
  const name = `lock-demo-${process.pid}`;
  const workers = new Map();
  const log = []; // [pid, type, ticket]
  let hostPid;
  let overlaps = 0;
  const start = () => {
    const w = fork(__filename, ["worker", name]);
    workers.set(w.pid, w);
    w.on("message", (m) => {
      if (m.hosting) hostPid = w.pid;
      if (m.overlap) overlaps++;
      console.log(`  worker ${w.pid} holds the printer (ticket ${m.ticket})`);
      log.push([w.pid, m.type, m.ticket]);
    });
  };
  for (let i = 0; i < 4; i++) start();
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const until = async (check) => {
    while (!check()) await sleep(20);
  };
  (async () => {
    for (let k = 1; k <= 2; k++) {
      const at = log.length;
      await until(() => hostPid !== undefined && workers.has(hostPid) && log.length >= at + 12);
      console.log(`== SIGKILL the host (worker ${hostPid}) ==`);
      workers.get(hostPid).kill("SIGKILL");
      workers.delete(hostPid);
      start();
    }
    const at = log.length;
    await until(() => log.length >= at + 12);
    for (const w of workers.values()) w.send("stop");
    await Promise.all([...workers.values()].map((w) => new Promise((resolve) => w.on("exit", resolve))));
    fs.rmSync(path.join(os.tmpdir(), `${name}.printer`), { force: true });
    const tickets = log.filter(([pid, type]) => type === "holding" && workers.has(pid)).map(([, , t]) => t);
    const inOrder = tickets.every((t, i) => i === 0 || t > tickets[i - 1]);
    console.log(
      `== done: ${tickets.length} turns of the living workers, ${overlaps === 0 ? "never two holders" : `${overlaps} TIMES TWO HOLDERS`}, ` +
        `${inOrder ? "tickets in order" : "TICKETS OUT OF ORDER"} across 2 host kills ==`,
    );
  })();
}
