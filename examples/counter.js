"use strict";
/**
 * A counter shared by processes whose value survives its host: each member holds the highest value
 * it was given (`messenger.hold`), and a new host continues above every value its members hold.
 * Run: node examples/counter.js (it forks 3 workers that take values while the host is SIGKILLed
 * twice; a killed worker is replaced).
 *
 * What is kept: every value a living member was given. What is not: a value only the dead host's
 * own process had seen (it may be given again). The new host hands out nothing for a grace of
 * 1 s after it starts hosting, so that the members are back (with what they hold) first.
 */
const { fork } = require("node:child_process");
const { openMessageChannel } = require("open-channel");

const GRACE_MS = 1000;

if (process.argv[2] === "worker") {
  // The host's state: made at its first use while hosting (the "hosting" event or the first
  // onJoin, whichever runs first), dropped when this process stops hosting.
  let st;
  const host = () => (st ??= { count: 0, graceUntil: Date.now() + GRACE_MS });
  const counter = openMessageChannel(process.argv[3], {
    onJoin(member) {
      // A member's share of the state comes back with it.
      host().count = Math.max(host().count, member.state.get("count") ?? 0);
    },
    async onRequest() {
      const wait = host().graceUntil - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      return ++host().count;
    },
  });
  counter.channel.on("hosting", (isHost) => {
    if (isHost) host();
    else st = undefined;
  });
  const messenger = counter.connect();
  let stop = false;
  process.on("message", (m) => {
    if (m === "stop") stop = true;
  });
  (async () => {
    while (!stop) {
      const value = await messenger.request("next");
      messenger.hold("count", value);
      process.send({ type: "value", value, host: counter.channel.hostPid, hosting: counter.channel.isHost });
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await messenger.close();
    process.exit(0);
  })();
} else {
  const name = `counter-${process.pid}`;
  const workers = new Map();
  const values = []; // [pid, value]
  const start = () => {
    const w = fork(__filename, ["worker", name]);
    workers.set(w.pid, w);
    w.on("message", (m) => {
      if (m.type !== "value") return;
      values.push([w.pid, m.value]);
      if (m.hosting) hostPid = w.pid;
    });
  };
  let hostPid;
  for (let i = 0; i < 3; i++) start();
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const until = async (check) => {
    while (!check()) await sleep(20);
  };
  const killed = new Set();
  (async () => {
    for (let k = 1; k <= 2; k++) {
      const at0 = values.length;
      await until(() => hostPid !== undefined && !killed.has(hostPid) && values.length >= at0 + 10);
      const before = Math.max(...values.map(([, v]) => v));
      console.log(`== SIGKILL the host (pid ${hostPid}) at value ${before} ==`);
      workers.get(hostPid).kill("SIGKILL");
      workers.delete(hostPid);
      killed.add(hostPid);
      start();
      const at = values.length;
      await until(() => values.length >= at + 10);
      const after = values.slice(at).map(([, v]) => v);
      console.log(`   next values: ${after.slice(0, 6).join(", ")}, ... (new host pid ${hostPid})`);
    }
    // Every worker has taken a value from the last host before they all stop (a value taken while
    // they leave comes from whoever is left, holding less: not counted).
    await until(() => [...workers.keys()].every((pid) => values.some(([p]) => p === pid)));
    const counted = values.length;
    for (const w of workers.values()) w.send("stop");
    await Promise.all([...workers.values()].map((w) => new Promise((resolve) => w.on("exit", resolve))));
    const taken = values.slice(0, counted);
    const living = taken.filter(([pid]) => !killed.has(pid)).map(([, v]) => v);
    const once = new Set(living).size === living.length;
    const restarted = taken.slice(10).some(([, v]) => v === 1);
    console.log(
      `== done: ${taken.length} values, up to ${Math.max(...living)}; ${once ? "no value given twice to the living" : "SOME VALUE TWICE"}; ${restarted ? "RESTARTED AT 1" : "never restarted"} ==`,
    );
  })();
}
