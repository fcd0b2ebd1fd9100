"use strict";
/**
 * A job queue shared by processes, with open-channel's message layer: every process runs the same
 * code, the queue lives in whichever process hosts. Run: node examples/job-queue.js
 * (it forks 3 workers; each adds 5 jobs, then takes jobs until the queue is empty).
 */
const { fork } = require("node:child_process");
const { openMessageChannel } = require("open-channel");

if (process.argv[2] === "worker") {
  const queue = []; // only the hosting process's queue is ever used
  const jobs = openMessageChannel(process.argv[3], {
    onMessage: (job) => void queue.push(job), // send(job): add it
    onRequest: () => queue.shift() ?? null, // request("take"): the next job, or null
  });
  const messenger = jobs.connect();
  (async () => {
    for (let n = 1; n <= 5; n++) await messenger.send({ n, addedBy: process.pid });
    for (let job = await messenger.request("take"); job !== null; job = await messenger.request("take")) {
      process.send({ type: "did", job, result: job.n * job.n, host: jobs.channel.hostPid });
    }
    process.send({ type: "empty" });
  })();
  process.on("message", () => messenger.close().then(() => process.exit(0)));
} else {
  const name = `job-queue-${process.pid}`;
  const workers = Array.from({ length: 3 }, () => fork(__filename, ["worker", name]));
  const done = [];
  let empty = 0;
  for (const w of workers) {
    w.on("message", (m) => {
      if (m.type === "did") done.push(`${m.job.addedBy}/${m.job.n}`);
      if (m.type === "did") console.log(`worker ${w.pid} squared ${m.job.n} (added by ${m.job.addedBy}): ${m.result} [host ${m.host}]`);
      // The queue lives in the host: workers stay until all are done, then leave together.
      if (m.type === "empty" && ++empty === workers.length) {
        const once = new Set(done).size === done.length;
        console.log(`== done: ${done.length} jobs, ${once ? "each done exactly once" : "SOME DONE TWICE"} ==`);
        for (const x of workers) x.send("exit");
      }
    });
  }
}
