import { once } from "node:events";
import { inspect } from "node:util";
import { type Member, type MessageChannel, type Messenger, openMessageChannel } from "@open-channel/messages";
import { unixTransport } from "@open-channel/transport-unix";

// What a member holds reaches its host by each path: in the hello (held before connecting), in a
// HOLD frame (held while connected), and held between a connect and the host's WELCOME (it waits
// for the WELCOME). In one process: the member's host is its own process, over a real socket.

const unique = (label: string): string =>
  `held-${label}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;

const open: Messenger[] = [];
afterEach(async () => {
  for (const m of open.splice(0)) m.channel.close({ handover: true });
});

function channel(label: string, joins: Member[] = [], maxFrameBytes?: number): MessageChannel {
  return openMessageChannel(
    unique(label),
    {
      onJoin: (member) => void joins.push(member),
      onRequest: () => "ok",
    },
    { transport: unixTransport(), ...(maxFrameBytes === undefined ? {} : { maxFrameBytes }) },
  );
}

/** The host's view of `messenger`'s state, once a request has gone through (what was held before it is in). */
async function hostState(ch: MessageChannel, messenger: Messenger): Promise<Record<string, unknown>> {
  await messenger.request("sync");
  return Object.fromEntries(ch.host?.member(messenger.session)?.state ?? []);
}

test("held before connecting: in the hello, so onJoin sees it; held while connected: a HOLD frame; released: gone", async () => {
  const joins: Member[] = [];
  const ch = channel("paths", joins);
  const m = ch.connect();
  open.push(m);
  m.hold("a", { n: 1 });
  await once(m, "connect");
  await m.request("sync");
  expect(joins).toHaveLength(1);
  expect(joins[0].state.get("a")).toEqual({ n: 1 });
  expect(joins[0].rejoined).toBe(false);
  m.hold("b", [1, 2]);
  m.hold("a", { n: 2 });
  expect(await hostState(ch, m)).toEqual({ a: { n: 2 }, b: [1, 2] });
  expect(m.release("a")).toBe(true);
  expect(m.release("a")).toBe(false);
  expect(await hostState(ch, m)).toEqual({ b: [1, 2] });
  expect(Object.fromEntries(m.held)).toEqual({ b: [1, 2] });
});

test("held between the connect and the host's WELCOME: sent once the WELCOME comes, before what is sent after it", async () => {
  const ch = channel("welcome");
  const m = ch.connect();
  open.push(m);
  // The "connect" listener runs right after the hello went, before the host could answer it.
  const sawState: unknown[] = [];
  m.once("connect", () => {
    m.hold("late", "value");
  });
  await once(m, "connect");
  sawState.push(await hostState(ch, m));
  expect(sawState).toEqual([{ late: "value" }]);
});

test("what a member holds is bounded by half of maxFrameBytes (every hello carries it); over it, hold throws and keeps the rest", async () => {
  const ch = channel("bound", [], 4096);
  const m = ch.connect();
  open.push(m);
  m.hold("small", "x");
  expect(() => m.hold("big", "y".repeat(3000))).toThrow(expect.objectContaining({ code: "ERR_OPEN_CHANNEL_FRAME_TOO_LARGE" }));
  expect(() => m.hold("k".repeat(70000), 1)).toThrow(expect.objectContaining({ code: "ERR_OUT_OF_RANGE" }));
  expect(() => m.hold("fn", (() => 1) as never)).toThrow(expect.objectContaining({ code: "ERR_OPEN_CHANNEL_UNSERIALIZABLE" }));
  expect(Object.fromEntries(m.held)).toEqual({ small: "x" });
  // Replacing a value counts it once.
  m.hold("small", "z".repeat(1900));
  expect(await hostState(ch, m)).toEqual({ small: "z".repeat(1900) });
});

test("a Member shows and serializes as its fields", async () => {
  const joins: Member[] = [];
  const ch = channel("show", joins);
  const m = ch.connect();
  open.push(m);
  m.hold("k", new Map([[1, 2]]));
  await m.request("sync");
  const member = joins[0];
  expect(JSON.parse(JSON.stringify(member))).toEqual({
    pid: process.pid,
    session: m.session,
    since: member.since,
    transport: "unix",
    rejoined: false,
    connected: true,
    state: { k: {} },
  });
  expect(Math.abs(member.since - Date.now())).toBeLessThan(60_000);
  expect(inspect(member)).toContain("Map(1) { 'k' => Map(1) { 1 => 2 } }");
  expect(ch.host?.members()).toEqual([member]);
});

test("close() right after the connect event still says goodbye: the host's onLeave is 'closed', at once", async () => {
  const leaves: string[] = [];
  const ch = openMessageChannel(unique("bye"), { onLeave: (_, reason) => void leaves.push(reason) }, { transport: unixTransport() });
  const host = ch.connect();
  open.push(host);
  await once(host, "connect");
  // A second messenger of another channel object: a member of the same host.
  const other = openMessageChannel(ch.name, {}, { transport: unixTransport() }).connect();
  await once(other, "connect");
  const t0 = performance.now();
  await other.close();
  while (leaves.length === 0 && performance.now() - t0 < 1500) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(leaves).toEqual(["closed"]);
});

test("a member lost and back to the same host joins again as after a failover: the reply kept for it is not replayed, its request runs again", async () => {
  const { fork } = require("node:child_process") as typeof import("node:child_process");
  const path = require("node:path") as typeof import("node:path");
  const events: string[] = [];
  const runs: boolean[] = [];
  let finishFirst: (() => void) | undefined;
  const ch = openMessageChannel(
    unique("lost"),
    {
      onJoin: (member) => void events.push(`join ${member.pid === process.pid ? "self" : "child"}${member.rejoined ? " rejoined" : ""}`),
      onLeave: (member, reason) => void events.push(`leave ${member.pid === process.pid ? "self" : "child"} ${reason}`),
      async onRequest(_, from) {
        runs.push(from.redelivered);
        // The first run answers once the member is gone: its reply is kept for it.
        if (runs.length === 1) await new Promise<void>((resolve) => (finishFirst = resolve));
        return `run ${runs.length}`;
      },
    },
    { transport: unixTransport() },
  );
  const host = ch.connect();
  open.push(host);
  await once(host, "connect");
  const child = fork(path.join(__dirname, "fixtures", "lost-member.js"), [], {
    env: { ...process.env, OC_CHANNEL: ch.name },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  try {
    const reports: { type: string; reply?: string; code?: string }[] = [];
    child.on("message", (m) => reports.push(m as never));
    const until = async (check: () => boolean, what: string): Promise<void> => {
      for (const t0 = Date.now(); !check(); await new Promise((r) => setTimeout(r, 10))) {
        if (Date.now() - t0 > 10_000) throw new Error(`timed out waiting for ${what}: ${JSON.stringify({ events, runs, reports })}`);
      }
    };
    await until(() => events.includes("join child"), "the child's join");
    child.send("request");
    await until(() => runs.length === 1, "the first run");
    // The child stopped, its connection cut (by the host's side): it cannot come back for now.
    process.kill(child.pid as number, "SIGSTOP");
    const server = (ch.channel as unknown as { hosting: { server: { members: Set<import("node:net").Socket> } } }).hosting.server;
    for (const socket of server.members) socket.destroy();
    await until(() => events.includes("leave child lost"), "the child lost");
    (finishFirst as () => void)();
    process.kill(child.pid as number, "SIGCONT");
    await until(() => reports.some((r) => r.type === "reply" || r.type === "error"), "the child's reply");
    expect(reports.filter((r) => r.type === "reply" || r.type === "error")).toEqual([{ type: "reply", reply: "run 2" }]);
    expect(runs).toEqual([false, true]);
    expect(events.filter((e) => e.includes("child"))).toEqual(["join child", "leave child lost", "join child rejoined"]);
  } finally {
    child.kill("SIGCONT");
    child.kill("SIGKILL");
  }
}, 30_000);

test("with bufferCodec, a held Buffer changed afterwards is held as it was", async () => {
  const { bufferCodec } = require("@open-channel/messages") as typeof import("@open-channel/messages");
  const ch = openMessageChannel(unique("buffer"), { onRequest: () => "ok" }, { transport: unixTransport(), codec: bufferCodec });
  const m = ch.connect();
  open.push(m);
  const value = Buffer.from("before");
  m.hold("k", value);
  value.write("AFTER!");
  await once(m, "connect");
  await m.request("sync");
  expect(Buffer.from(ch.host?.member(m.session)?.state.get("k") as Uint8Array).toString()).toBe("before");
});
