import { spawn, spawnSync } from "node:child_process";
import * as path from "node:path";

// The examples stay runnable: each one's command (see examples/README.md) runs to its end and says
// what it promises. (The PM2 example is what pm2.test.ts runs.)
const ROOT = path.join(__dirname, "..", "..", "..");

function run(script: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, script)], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 45000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

/** The pid each worker reports as its host, in order, from lines like "worker 12: connected to host 34". */
function hostsSeen(out: string): number[] {
  return [...out.matchAll(/connected to host (\d+)/g)].map((m) => Number(m[1]));
}

test("npm run demo: three processes chat, the host is SIGKILLed, a survivor takes over and the chat goes on", async () => {
  const { code, out } = await run("examples/demo.js");
  expect(code).toBe(0);
  expect(out).toMatch(/== done: \w+ took over as host about \d+ ms after the kill; the chat went on ==/);
  // The chat did go on: after the kill, each survivor got the other's lines, and dave got theirs.
  const killed = out.match(/== SIGKILL the host: (\w+) /)?.[1] as string;
  const survivors = ["alice", "bob", "carol"].filter((n) => n !== killed);
  expect(survivors).toHaveLength(2);
  const afterKill = out.slice(out.indexOf("== SIGKILL the host"));
  const got = (to: string, from: string, text: string): boolean => new RegExp(`^  ${to} +got  ${from}: message #\\d+$`, "m").test(text);
  expect([got(survivors[0], survivors[1], afterKill), got(survivors[1], survivors[0], afterKill)]).toEqual([true, true]);
  const afterDave = out.slice(out.indexOf("== dave joins late"));
  expect(survivors.map((n) => got("dave", n, afterDave))).toEqual([true, true]);
});

test("examples/cluster/app.js: the workers elect a host; after it is SIGKILLed, they and a new worker follow a new one", async () => {
  const { code, out } = await run("examples/cluster/app.js");
  expect(code).toBe(0);
  const [before, after] = out.split("== primary: SIGKILL the hosting worker");
  expect(after).toContain("== done ==");
  const first = new Set(hostsSeen(before));
  const second = new Set(hostsSeen(after));
  expect(first.size).toBe(1);
  expect(second.size).toBe(1);
  expect([...second][0]).not.toBe([...first][0]);
  expect(out).not.toMatch(/error/i);
});

test("examples/lock-service/demo.js: workers take turns at a lock while the host is SIGKILLed twice; never two holders, tickets in order", async () => {
  const { code, out } = await run("examples/lock-service/demo.js");
  expect(code).toBe(0);
  expect(out.match(/== SIGKILL the host/g)?.length).toBe(2);
  expect(out).toMatch(/== done: \d+ turns of the living workers, never two holders, tickets in order across 2 host kills ==/);
});

test("examples/roll-call.js: the host sees each join, asks each member, broadcasts, sends named events and sees each leave", async () => {
  const { code, out } = await run("examples/roll-call.js");
  expect(code).toBe(0);
  expect(out.match(/^host: pid \d+ joined over \w+ \([123] of 3\)$/gm)?.length).toBe(3);
  expect(out.match(/^host: "hello" from pid \d+: worker \d+ is here$/gm)?.length).toBe(3);
  expect(out.match(/^worker \d+: welcome, [123] member\(s\) here$/gm)?.length).toBe(3);
  expect(out).toMatch(/^host: roll call: pid \d+ up \d+ ms, pid \d+ up \d+ ms, pid \d+ up \d+ ms$/m);
  expect(out.match(/^worker \d+: the host says \{"note":"the roll was called"\}$/gm)?.length).toBe(3);
  expect(out).toContain("host: broadcast reached 3 members");
  expect(out.match(/^host: pid \d+ left \(closed\)$/gm)?.length).toBe(2);
  expect(out).toContain("== done: every member joined, answered the roll, and left ==");
});

test("examples/counter.js: a counter goes on above its last value after each SIGKILL of its host", async () => {
  const { code, out } = await run("examples/counter.js");
  expect(code).toBe(0);
  expect(out.match(/== SIGKILL the host/g)?.length).toBe(2);
  expect(out).toMatch(/== done: \d+ values, up to \d+; no value given twice to the living; never restarted ==/);
  // After each kill, the next values continue above the one reached.
  for (const m of out.matchAll(/at value (\d+) ==\n {3}next values: ([\d, ]+)/g)) {
    const next = m[2]
      .split(",")
      .filter((v) => v.trim() !== "")
      .map(Number);
    expect(next.length).toBeGreaterThan(0);
    expect(Math.min(...next)).toBeGreaterThan(Number(m[1]) - 3);
  }
});

test("examples/job-queue.js: three workers share one queue through the message layer; every job is done exactly once", async () => {
  const { code, out } = await run("examples/job-queue.js");
  expect(code).toBe(0);
  expect(out).toContain("== done: 15 jobs, each done exactly once ==");
  expect(out.match(/squared \d+/g)?.length).toBe(15);
});

// redis-server: .ci/run installs it; a developer without it gets a skip that says so.
const haveRedis = spawnSync("redis-server", ["--version"]).status === 0;
if (!haveRedis && !process.env.CI) process.stderr.write("redis-server is not installed: the Redis fleet example is skipped\n");
(haveRedis || process.env.CI ? test : test.skip)(
  "examples/redis-fleet/fleet.js: three machines of two processes share one channel on Redis; after the host is SIGKILLed another takes over",
  async () => {
    const { code, out } = await run("examples/redis-fleet/fleet.js");
    expect(code).toBe(0);
    const killed = /== the host \(pid (\d+)\) has heard from all 6: SIGKILL it ==/.exec(out);
    const took = /== done: (machine-\w) (\d+) took over and has heard from the 5 survivors ==/.exec(out);
    expect([killed !== null, took !== null, out.includes("each, over TLS ==")]).toEqual([true, true, true]);
    expect(Number(took?.[2])).not.toBe(Number(killed?.[1]));
  },
  60000,
);
