import { once } from "node:events";
import * as net from "node:net";
import * as path from "node:path";
import {
  jsonCodec,
  type MessageChannelOptions,
  type MessageContext,
  type MessageHandlers,
  type Messenger,
  openMessageChannel,
  v8Codec,
} from "@open-channel/messages";
import { tcpTransport } from "@open-channel/transport-tcp";
import { unixTransport } from "@open-channel/transport-unix";
import { withRawHost } from "./raw-host";

const transports = { unix: () => unixTransport(), tcp: () => tcpTransport() };
const unique = (label: string): string =>
  `msg-${label}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;

const open: Messenger[] = [];
afterEach(async () => {
  for (const m of open.splice(0)) m.channel.close({ handover: true });
});

describe.each(Object.keys(transports) as Array<keyof typeof transports>)("messages in one process over %s", (name) => {
  /** A message channel of this transport, connected; closed after the test. */
  const connect = (label: string, handlers: MessageHandlers, options: Omit<MessageChannelOptions, "transport"> = {}): Messenger => {
    const m = openMessageChannel(unique(`${label}-${name}`), handlers, { transport: transports[name](), ...options }).connect();
    open.push(m);
    return m;
  };

  test("send resolves after onMessage ran, in order; request gets the reply; a throw rejects with the remote error", async () => {
    const seen: unknown[] = [];
    const m = connect("basic", {
      onMessage(body) {
        seen.push(body);
      },
      async onRequest(body) {
        if (body === "boom") throw Object.assign(new Error("no such job"), { code: "ENOJOB" });
        return { echo: body, count: seen.length };
      },
    });
    const sends = [];
    for (let i = 0; i < 100; i++) sends.push(m.send(i));
    await Promise.all(sends);
    expect(seen).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(await m.request("hi")).toEqual({ echo: "hi", count: 100 });
    await expect(m.request("boom")).rejects.toMatchObject({ code: "ERR_OPEN_CHANNEL_REMOTE", remoteCode: "ENOJOB" });
    expect(m.unacknowledged).toBe(0);
  });

  test("a request to a host with no onRequest rejects with the remote ERR_OPEN_CHANNEL_NO_HANDLER, naming the fix", async () => {
    const m = connect("no-handler", { onMessage() {} });
    const err = await m.request("hi").then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err).toMatchObject({
      code: "ERR_OPEN_CHANNEL_REMOTE",
      remoteCode: "ERR_OPEN_CHANNEL_NO_HANDLER",
      remoteName: "OpenChannelError",
    });
    expect(err?.message).toContain("Pass onRequest to openMessageChannel()");
    await m.send("still fine");
  });

  test("handlers that throw values that cannot be shown as text: the calls reject with the remote error, the messenger goes on", async () => {
    const m = connect("odd-throws", {
      onRequest(body) {
        if (body === "message") {
          const e = new Error("x");
          (e as { message: unknown }).message = { toString: "not a function" };
          throw e;
        }
        throw { toString: "not a function either" };
      },
      onMessage() {
        throw Object.create(null);
      },
    });
    await expect(m.request("message")).rejects.toMatchObject({ code: "ERR_OPEN_CHANNEL_REMOTE" });
    await expect(m.request("value")).rejects.toMatchObject({ code: "ERR_OPEN_CHANNEL_REMOTE" });
    await expect(m.send("null prototype")).rejects.toMatchObject({ code: "ERR_OPEN_CHANNEL_REMOTE" });
    expect(m.connected).toBe(true);
    expect(m.unacknowledged).toBe(0);
  });

  test.each([
    ["the default codec", undefined],
    ["v8Codec", v8Codec],
  ])("%s carries Map, Set, Date, BigInt, Buffer and typed arrays both ways; the host pushes with from.send", async (_label, codec) => {
    let got: unknown;
    const m = connect(
      "types",
      {
        onMessage(body, from: MessageContext) {
          got = body;
          const { send } = from; // a function, usable on its own
          send({ thanks: from.seq });
        },
        onRequest: (body) => ({ back: body, plain: [1, "two", null, { deep: true }] }),
      },
      { codec },
    );
    const pushed = new Promise((resolve) => m.once("message", resolve));
    const body = {
      map: new Map([["a", 1]]),
      set: new Set([1, 2]),
      at: new Date(5),
      big: 2n ** 70n,
      buf: Buffer.from("xy"),
      f: new Float64Array([1.5]),
    };
    await m.send(body);
    expect(got).toEqual(body);
    expect(await pushed).toEqual({ thanks: 1 });
    expect(await m.request(body)).toEqual({ back: body, plain: [1, "two", null, { deep: true }] });
  });

  test.each([
    ["the default codec", undefined],
    ["v8Codec", v8Codec],
  ])("%s: what reaches a member stays as it came after later reads (a member reads into one buffer, reused)", async (_label, codec) => {
    const m = connect(
      "reuse",
      {
        onMessage(body, from) {
          from.send(body);
        },
        onRequest: (body) => body,
      },
      { codec },
    );
    const expected: unknown[] = [];
    const replies: unknown[] = [];
    const pushes: unknown[] = [];
    const events: unknown[] = [];
    m.on("message", (body) => pushes.push(body));
    m.subscribe("kept", (body) => events.push(body));
    for (let i = 0; i < 30; i++) {
      // Typed arrays and Buffers: v8.deserialize makes them views into what it reads.
      const body = { f: new Float64Array([i, i + 0.5]), b: Buffer.alloc(40, i), m: new Map([[i, "x".repeat(i)]]) };
      expected.push(body);
      replies.push(await m.request(body));
      await m.send(body);
      await m.publish("kept", body);
    }
    // More traffic: the read buffer is written over many times.
    await Promise.all(Array.from({ length: 300 }, () => m.request({ noise: new Float64Array(100).fill(-1) })));
    expect(replies).toEqual(expected);
    expect(pushes).toEqual(expected);
    expect(events).toEqual(expected);
  });

  test("a full slab is followed by a whole new slab, not a small buffer per frame (frames stay side by side: one write per turn)", async () => {
    const m = connect("slabs", { onMessage() {} });
    // About 300 KB of frames: several slabs of 64 KiB.
    await Promise.all(Array.from({ length: 4000 }, (_, i) => m.send({ kind: "tick", text: `${i}`.padEnd(40, "x") })));
    const slab = (m as unknown as { slab: { buf: Buffer; size: number } }).slab;
    expect(slab.buf.length).toBe(slab.size);
  });

  test("a body whose getter sends while it is encoded: both arrive, the inner one first, neither corrupted", async () => {
    const seen: unknown[] = [];
    const m = connect("getter", {
      onMessage(body) {
        seen.push(body);
      },
    });
    let inner: Promise<void> | undefined;
    const outer = {
      kind: "outer",
      get note() {
        inner ??= m.send({ kind: "inner", text: "sent from a getter" });
        return "with a note";
      },
    };
    const sends = [m.send({ kind: "before" }), m.send(outer), m.send({ kind: "after" })];
    await Promise.all([...sends, inner]);
    expect(seen).toEqual([
      { kind: "before" },
      { kind: "inner", text: "sent from a getter" },
      { kind: "outer", note: "with a note" },
      { kind: "after" },
    ]);
  });

  test("a big body goes whole both ways, and the messenger does not keep its big buffer afterwards", async () => {
    let got: unknown;
    const m = connect("big", {
      onMessage(body) {
        got = body;
      },
      onRequest: (body) => body,
    });
    const big = { text: "é".repeat(1_000_000), bytes: Buffer.alloc(3_000_000, 7) };
    // Compared by hand: Jest's toEqual walks a 3 MB Buffer byte by byte, for seconds.
    const same = (x: unknown): boolean => {
      const v = x as typeof big;
      return v.text === big.text && Buffer.isBuffer(v.bytes) && v.bytes.equals(big.bytes);
    };
    const slab = (): number => (m as unknown as { slab: { buf: Buffer } }).slab.buf.length;
    await m.send(big);
    expect(same(got)).toBe(true);
    // The next small frames go to a normal slab, not to the multi-megabyte buffer of the big one.
    await m.send({ small: true });
    expect(slab()).toBeLessThanOrEqual(64 * 1024);
    expect(same(await m.request(big))).toBe(true);
    await m.send({ small: true });
    expect(slab()).toBeLessThanOrEqual(64 * 1024);
  });

  test("messenger.close() in the host leaves its host serving the members; close({ handover: true }) hands over", async () => {
    const name2 = unique(`close-${name}`);
    const handlers: MessageHandlers = { onRequest: (body) => ({ body, pid: process.pid }) };
    const host = openMessageChannel(name2, handlers, { transport: transports[name]() }).connect();
    open.push(host);
    await host.request("first");
    expect(host.channel.isHost).toBe(true);
    const member = openMessageChannel(name2, handlers, { transport: transports[name]() }).connect();
    open.push(member);
    expect(await member.request("joined")).toEqual({ body: "joined", pid: process.pid });
    expect(member.channel.isHost).toBe(false);
    const failovers = jest.fn();
    member.channel.on("failover", failovers);
    await host.close();
    await expect(host.send("after close")).rejects.toMatchObject({ code: "ERR_OPEN_CHANNEL_CLOSED" });
    expect(await member.request("still served")).toEqual({ body: "still served", pid: process.pid });
    expect(host.channel.isHost).toBe(true);
    await expect(host.close({ handover: "yes" } as never)).rejects.toMatchObject({ code: "ERR_INVALID_ARG_TYPE" });
    await host.close({ handover: true });
    expect(host.channel.isHost).toBe(false);
    expect(await member.request("after handover")).toEqual({ body: "after handover", pid: process.pid });
    expect(member.channel.isHost).toBe(true);
    expect(failovers).toHaveBeenCalledTimes(1);
  });

  test("a message its host never acknowledged goes again to the new host, flagged redelivered; its first delivery is not", async () => {
    const channel = unique(`redeliver-${name}`);
    const seen: Array<[string, unknown, boolean]> = [];
    const at = (who: string): Messenger => {
      const handlers: MessageHandlers = {
        onMessage(body, from) {
          seen.push([who, body, from.redelivered]);
          // The first host never finishes with it, so it never acknowledges it.
          if (who === "first host") return new Promise(() => undefined);
        },
      };
      const m = openMessageChannel(channel, handlers, { transport: transports[name](), codec: jsonCodec }).connect();
      open.push(m);
      return m;
    };
    const host = at("first host");
    await new Promise((resolve) => host.once("connect", () => resolve(undefined)));
    const member = at("next host");
    const sent = member.send("job");
    for (let i = 0; i < 200 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    await host.close({ handover: true });
    await sent;
    expect(seen).toEqual([
      ["first host", "job", false],
      ["next host", "job", true],
    ]);
  });

  test("subscriptions are restored on the new host by themselves after a hand-over", async () => {
    const channel = unique(`resubscribe-${name}`);
    const at = (): Messenger => {
      const m = openMessageChannel(channel, {}, { transport: transports[name](), codec: jsonCodec }).connect();
      open.push(m);
      return m;
    };
    const host = at();
    await host.publish("warm-up", 0);
    const subscriber = at();
    const publisher = at();
    const got: unknown[] = [];
    subscriber.subscribe("prices", (body) => got.push(body));
    await publisher.publish("prices", "before");
    await subscriber.publish("sync", 0);
    expect(got).toEqual(["before"]);
    await host.close({ handover: true });
    // Once the subscriber is back (a round trip of its own on the new host), whoever hosts knows of
    // its subscription without it subscribing again. (Events published before it is back are lost:
    // pushes in flight are not kept.)
    await subscriber.publish("sync", 1);
    await publisher.publish("prices", "after");
    for (let i = 0; i < 200 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(got).toEqual(["before", "after"]);
    expect(subscriber.channel.isHost || publisher.channel.isHost).toBe(true);
  });

  test("pub/sub through the host: every subscriber gets each publish, with the publisher's pid; unsubscribe stops it", async () => {
    const m = connect("pubsub", {}, { codec: jsonCodec });
    const a: unknown[] = [];
    const b: Array<[unknown, number]> = [];
    const stopA = m.subscribe("prices", (body) => a.push(body));
    m.subscribe("prices", (body, meta) => b.push([body, meta.pid]));
    await m.publish("prices", { eur: 1 });
    await m.publish("other", "nobody listens");
    stopA();
    await m.publish("prices", { eur: 2 });
    // Events come before the ACK of the publish that caused them (same connection, in order).
    expect(a).toEqual([{ eur: 1 }]);
    expect(b).toEqual([
      [{ eur: 1 }, process.pid],
      [{ eur: 2 }, process.pid],
    ]);
  });

  test("a burst of publishes reaches every other member's subscription whole and in order", async () => {
    const channel = unique(`fanout-${name}`);
    const connect = (): Messenger => {
      const m = openMessageChannel(channel, { onRequest: () => "ok" }, { transport: transports[name](), codec: jsonCodec }).connect();
      open.push(m);
      return m;
    };
    const publisher = connect();
    await new Promise((resolve) => publisher.once("connect", () => resolve(undefined)));
    const subscribers = [connect(), connect(), connect()];
    const got: number[][] = subscribers.map(() => []);
    let complete: () => void = () => undefined;
    const all = new Promise<void>((resolve) => {
      complete = resolve;
    });
    for (const [i, m] of subscribers.entries()) {
      m.subscribe("ticks", (body) => {
        got[i].push(body as number);
        if (got.every((g) => g.length === 500)) complete();
      });
    }
    // Requests are handled after the subscriptions sent before them.
    await Promise.all(subscribers.map((m) => m.request("ready?")));
    await Promise.all(Array.from({ length: 500 }, (_, i) => publisher.publish("ticks", i)));
    await all;
    const expected = Array.from({ length: 500 }, (_, i) => i);
    for (const g of got) expect(g).toEqual(expected);
  });

  test("a message over maxFrameBytes is refused with a code, and the channel goes on", async () => {
    const m = connect("big", { onMessage: () => undefined }, { maxFrameBytes: 1024 });
    await expect(m.send("x".repeat(2000))).rejects.toMatchObject({ code: "ERR_OPEN_CHANNEL_FRAME_TOO_LARGE" });
    await expect(m.send("small")).resolves.toBeUndefined();
  });

  test("a reply over maxFrameBytes rejects the request with a code, and the request is still acknowledged", async () => {
    const m = connect("big-reply", { onRequest: (body) => "y".repeat(body as number) }, { maxFrameBytes: 1024 });
    await expect(m.request(10)).resolves.toBe("y".repeat(10));
    await expect(m.request(2000)).rejects.toMatchObject({
      code: "ERR_OPEN_CHANNEL_REMOTE",
      remoteCode: "ERR_OPEN_CHANNEL_FRAME_TOO_LARGE",
    });
    // Nothing more is sent: the reason that came instead of the reply must acknowledge it too.
    for (let i = 0; i < 100 && m.unacknowledged > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(m.unacknowledged).toBe(0);
  });

  test("a body that decodes to an array of length 2^32-1 is refused both ways with a code; the handler never sees it", async () => {
    const hollow: unknown[] = [];
    hollow.length = 2 ** 32 - 1;
    const seen: unknown[] = [];
    const m = connect("hollow", {
      onRequest(body) {
        seen.push(body);
        return body === "give" ? hollow : "ok";
      },
    });
    // To the host: its decoding fails, and the request rejects with that as the remote error.
    await expect(m.request(hollow)).rejects.toMatchObject({ code: "ERR_OPEN_CHANNEL_REMOTE", remoteCode: "ERR_OPEN_CHANNEL_HUGE_ARRAY" });
    expect(seen).toEqual([]);
    // From the host: the reply is refused where it is decoded.
    await expect(m.request("give")).rejects.toMatchObject({ code: "ERR_OPEN_CHANNEL_HUGE_ARRAY", channel: m.channel.name });
    expect(await m.request("after")).toBe("ok");
  });

  test("requests with different timeouts expire in deadline order; an answered one never times out", async () => {
    const m = connect("timeouts", { onRequest: (body) => (body === "answer" ? "answered" : new Promise(() => undefined)) });
    const order: string[] = [];
    const expect_ = (label: string, timeout: number) =>
      m.request(label, { timeout }).then(
        () => order.push(`${label} answered`),
        (err: { code?: string }) => order.push(`${label} ${err.code}`),
      );
    // Sent longest first: one shared timer must still fire for the earliest deadline.
    const answered = m.request("answer", { timeout: 300 });
    await Promise.all([expect_("slow", 400), expect_("fast", 60), expect_("middle", 200)]);
    expect(order).toEqual(["fast ETIMEDOUT", "middle ETIMEDOUT", "slow ETIMEDOUT"]);
    // Answered in time: its deadline passing (long ago now) changed nothing.
    await expect(answered).resolves.toBe("answered");
  });

  test("a request with no reply in time rejects ETIMEDOUT and holds nothing back; a full window makes send wait, then go", async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let started = 0;
    let handled = 0;
    const m = connect(
      "window",
      {
        async onMessage() {
          started++;
          await gate;
          handled++;
        },
        onRequest: () => new Promise(() => undefined),
      },
      { maxUnacked: 4 },
    );
    await expect(m.request("never", { timeout: 50 })).rejects.toMatchObject({ code: "ETIMEDOUT" });
    // The hung request was started by the host, so it gives its place in the window back (once
    // the host's acknowledgement is in: it may come after the timeout on a busy machine).
    for (let i = 0; i < 100 && m.unacknowledged > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(m.unacknowledged).toBe(0);
    let settled = 0;
    const sends = Array.from({ length: 10 }, (_, i) => m.send(i).then(() => settled++));
    for (let i = 0; i < 500 && started < 4; i++) await new Promise((r) => setTimeout(r, 10));
    // Four in flight (the window), held by the handler; six waiting their turn.
    expect(started).toBe(4);
    expect(settled).toBe(0);
    expect(m.unacknowledged).toBe(4);
    release();
    await Promise.all(sends);
    expect(settled).toBe(10);
    expect(handled).toBe(10);
    m.channel.close();
    await expect(m.send("after close")).rejects.toMatchObject({ code: "ERR_OPEN_CHANNEL_CLOSED" });
  });
});

test("a producer faster than the host: what is in flight stays within the window (count and bytes)", async () => {
  const ch = openMessageChannel(
    unique("backpressure"),
    { onMessage: () => new Promise((resolve) => setImmediate(resolve)) },
    { transport: unixTransport(), maxUnacked: 64, maxUnackedBytes: 64 * 1024 },
  );
  const m = ch.connect();
  open.push(m);
  let most = 0;
  const body = Buffer.alloc(4096, 1); // 16 fill the byte window before the count window
  const sends: Promise<void>[] = [];
  for (let i = 0; i < 2000; i++) {
    sends.push(m.send(body));
    most = Math.max(most, m.unacknowledged);
    if (sends.length >= 256) await sends.shift();
  }
  await Promise.all(sends);
  most = Math.max(most, m.unacknowledged);
  // The byte window (64 KiB of ~4 KiB frames) binds first: at most 16 frames, plus the one that crossed it.
  expect(most).toBeLessThanOrEqual(17);
  expect(most).toBeGreaterThan(1);
  expect(m.unacknowledged).toBe(0);
});

const { encodeHello, encodeSequenced, FRAME } = require("../dist/frame.js") as typeof import("../src/frame");

test("a subscriber that does not read: publishes wait for it (no acknowledgement), so the host's memory stays bounded", async () => {
  await withRawHost({}, { maxFrameBytes: 1 << 20, maxUnacked: 1024 }, async (file) => {
    // The subscriber says hello with its topic, then never reads.
    const slow = net.connect(file);
    const publisher = net.connect(file);
    try {
      // Its first frame acknowledged: the host has taken its hello, with the topic.
      slow.write(Buffer.concat([encodeHello(Buffer.alloc(16, 1), 1, 0, ["t"]), encodeSequenced(FRAME.sub, 1, undefined, "u")]));
      await once(slow, "data");
      slow.pause();
      let acked = 0;
      publisher.on("data", (d: Buffer) => {
        for (let at = 0; at + 11 <= d.length; at += 4 + d.readUInt32BE(at)) if (d[at + 4] === FRAME.ack) acked = d.readUIntBE(at + 5, 6);
      });
      const body = Buffer.alloc(16 * 1024, 1);
      const frames = [encodeHello(Buffer.alloc(16, 2), 2, 0, [])];
      for (let seq = 1; seq <= 1000; seq++) frames.push(encodeSequenced(FRAME.pub, seq, body, "t"));
      publisher.write(Buffer.concat(frames)); // 16 MiB of publishes
      // The kernel's buffers and the host's 1 MiB allowance take some; the rest waits, unacknowledged:
      // the count stops rising (unchanged for 300 ms; without backpressure it reaches 1000 first).
      let last = -1;
      for (let i = 0; i < 100 && acked !== last; i++) {
        last = acked;
        await new Promise((r) => setTimeout(r, 300));
      }
      expect(acked).toBe(last);
      expect(acked).toBeLessThan(1000);
      slow.resume();
      for (let i = 0; i < 200 && acked < 1000; i++) await new Promise((r) => setTimeout(r, 25));
      expect(acked).toBe(1000);
    } finally {
      // Also when an assertion fails: open sockets would keep Jest from exiting.
      slow.destroy();
      publisher.destroy();
    }
  });
});

test("a subscriber or 'message' listener that throws: the error is uncaught, as from any listener, and the frames after it still arrive", async () => {
  const { execFile } = await import("node:child_process");
  const out = await new Promise<string>((resolve, reject) =>
    execFile(
      process.execPath,
      [path.join(__dirname, "fixtures", "throwing-subscriber.js")],
      { env: { ...process.env, OC_CHANNEL: unique("throwing") }, timeout: 20000 },
      (err, stdout) => (err ? reject(err) : resolve(stdout)),
    ),
  );
  expect(JSON.parse(out)).toEqual({
    uncaught: expect.arrayContaining(["subscriber threw", "listener threw"]),
    events: [1, 2, 3],
    pushes: [1, 2, 3],
    unacknowledged: 0,
  });
});

test("options are checked: TypeError / RangeError with codes", () => {
  const transport = unixTransport();
  expect(() => openMessageChannel("x", null as never, { transport })).toThrow(expect.objectContaining({ code: "ERR_INVALID_ARG_TYPE" }));
  expect(() => openMessageChannel("x", { onMessage: 1 as never }, { transport })).toThrow(
    expect.objectContaining({ code: "ERR_INVALID_ARG_TYPE" }),
  );
  expect(() => openMessageChannel("x", {}, { transport, maxUnacked: 0 })).toThrow(RangeError);
  expect(() => openMessageChannel("x", {}, { transport, maxFrameBytes: 1.5 })).toThrow(
    expect.objectContaining({ code: "ERR_OUT_OF_RANGE" }),
  );
  // The name as openChannel checks it: at once, never later from a connect event or a timer.
  expect(() => openMessageChannel(42 as never, {}, { transport })).toThrow(expect.objectContaining({ code: "ERR_INVALID_ARG_TYPE" }));
  expect(() => openMessageChannel("", {}, { transport })).toThrow(expect.objectContaining({ code: "ERR_INVALID_ARG_VALUE" }));
  expect(() => openMessageChannel("x".repeat(70000), {}, { transport })).toThrow(expect.objectContaining({ code: "ERR_OUT_OF_RANGE" }));
  expect(() => openMessageChannel("x", {}, {} as never)).toThrow(expect.objectContaining({ code: "ERR_OPEN_CHANNEL_NO_TRANSPORT" }));
});

test("a member from before the features byte (a rolling restart) gets its ACK frames; a later one gets replies that stand for them; a current one a WELCOME first", async () => {
  await withRawHost({ onRequest: (body) => body }, { maxFrameBytes: 1024, maxUnacked: 16 }, async (file) => {
    /** The frames the host answers a hello and one request with: [type, RES flags or ACK seq]. */
    const answer = async (hello: Buffer): Promise<number[][]> => {
      const socket = net.connect(file);
      const frames: number[][] = [];
      let got = Buffer.alloc(0);
      socket.on("data", (d: Buffer) => {
        got = Buffer.concat([got, d]);
      });
      socket.write(Buffer.concat([hello, encodeSequenced(FRAME.req, 1, v8Codec.encode("ping"))]));
      // Until the reply (a RES frame) is in, whatever came before it too.
      const hasRes = (): boolean => {
        for (let at = 0; at + 5 <= got.length; at += 4 + got.readUInt32BE(at)) if (got[at + 4] === FRAME.res) return true;
        return false;
      };
      for (let i = 0; i < 500 && !hasRes(); i++) await new Promise((r) => setTimeout(r, 10));
      socket.destroy();
      for (let at = 0; at + 4 <= got.length; at += 4 + got.readUInt32BE(at)) {
        if (got[at + 4] === FRAME.res) frames.push([FRAME.res, got[at + 11]]);
        else if (got[at + 4] === FRAME.welcome) frames.push([FRAME.welcome, got[at + 5]]);
        else frames.push([got[at + 4], got.readUIntBE(at + 5, 6)]);
      }
      return frames;
    };
    const current = encodeHello(Buffer.alloc(16, 3), 3, 0, []);
    // The features byte, followed by the host feature's flags, since and held count.
    const featuresAt = current.length - 12;
    // Before the features byte, a hello ended with its topics (another session: another member).
    const old = Buffer.from(encodeHello(Buffer.alloc(16, 4), 4, 0, []).subarray(0, featuresAt));
    old.writeUInt32BE(old.length - 4, 0);
    expect(await answer(old)).toEqual([
      [FRAME.res, FRAME.ok],
      [FRAME.ack, 1],
    ]);
    // With the features byte, before READ (another member again).
    const before = Buffer.from(encodeHello(Buffer.alloc(16, 5), 5, 0, []).subarray(0, featuresAt + 1));
    before.writeUInt32BE(before.length - 4, 0);
    before[featuresAt] = FRAME.features.resAcks;
    expect(await answer(before)).toEqual([[FRAME.res, FRAME.ok | FRAME.acks]]);
    expect(await answer(current)).toEqual([
      [FRAME.welcome, FRAME.features.read | FRAME.features.host],
      [FRAME.res, FRAME.ok | FRAME.acks],
    ]);
  });
});

test("a frame from the host over the member's maxFrameBytes closes the messenger with a code, rejecting what waits", async () => {
  const { ProcessChannel } = require("@open-channel/core") as typeof import("@open-channel/core");
  const name = unique("bad-frame-unix");
  // A host of the channel's name that answers a member's first bytes with a header of 1 GiB.
  const fake = new ProcessChannel(
    name,
    (socket) => {
      socket.once("data", () => {
        const header = Buffer.alloc(5);
        header.writeUInt32BE(1 << 30, 0);
        socket.write(header);
      });
    },
    { transport: unixTransport() },
  );
  const hostSocket = fake.connect();
  await new Promise((resolve) => hostSocket.once("connect", resolve));
  try {
    const m = openMessageChannel(name, {}, { transport: unixTransport(), maxFrameBytes: 1024 }).connect();
    const errors: Array<Error & { code?: string }> = [];
    m.on("error", (err) => errors.push(err));
    await expect(m.send("hello")).rejects.toMatchObject({ code: "ERR_OPEN_CHANNEL_BAD_FRAME", channel: name });
    expect(errors.map((e) => e.code)).toEqual(["ERR_OPEN_CHANNEL_BAD_FRAME"]);
    await expect(m.send("after")).rejects.toMatchObject({ code: "ERR_OPEN_CHANNEL_BAD_FRAME" });
    expect(m.channel.state).toBe("closed");
  } finally {
    hostSocket.destroy();
  }
});

test("a second hello on one connection closes it, and neither session stays attached to it", async () => {
  await withRawHost({ onMessage: () => undefined }, { maxFrameBytes: 1024, maxUnacked: 16 }, async (file, host) => {
    const socket = net.connect(file);
    socket.on("error", () => undefined);
    // Read what comes (the WELCOME), or the end of the stream would never be seen.
    socket.resume();
    let timer: NodeJS.Timeout | undefined;
    const closed = new Promise<boolean>((resolve) => {
      socket.on("close", () => resolve(true));
      timer = setTimeout(() => resolve(false), 5000);
    });
    socket.write(Buffer.concat([encodeHello(Buffer.alloc(16, 8), 1, 0, []), encodeHello(Buffer.alloc(16, 9), 1, 0, [])]));
    const wasClosed = await closed;
    clearTimeout(timer);
    socket.destroy();
    expect(wasClosed).toBe(true);
    // Detached sessions expire; one still attached to a socket would be kept for good.
    const sessions = [...(host as unknown as { sessions: Map<string, { socket?: net.Socket }> }).sessions.values()];
    expect(sessions.filter((x) => x.socket !== undefined)).toEqual([]);
  });
});

test("a member connection announcing a frame over the limit is closed; the host keeps serving the others", async () => {
  await withRawHost({ onMessage: () => undefined }, { maxFrameBytes: 1024, maxUnacked: 16 }, async (file) => {
    // One byte over the limit is enough: closed at once (not left waiting for the bytes).
    const bad = net.connect(file);
    bad.on("error", () => undefined);
    const header = Buffer.alloc(5);
    header.writeUInt32BE(1024 + 1, 0);
    bad.write(header);
    const closed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 2000);
      bad.on("close", () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    bad.destroy();
    expect(closed).toBe(true);
    const good = net.connect(file);
    const types: number[] = [];
    let got = Buffer.alloc(0);
    good.on("data", (d: Buffer) => {
      got = Buffer.concat([got, d]);
      while (got.length >= 5 && got.length >= 4 + got.readUInt32BE(0)) {
        types.push(got[4]);
        got = got.subarray(4 + got.readUInt32BE(0));
      }
    });
    good.write(Buffer.concat([encodeHello(Buffer.alloc(16, 7), 1, 0, []), encodeSequenced(FRAME.msg, 1, v8Codec.encode("ok"))]));
    for (let i = 0; i < 500 && !types.includes(FRAME.ack); i++) await new Promise((r) => setTimeout(r, 10));
    expect(types).toContain(FRAME.ack);
    good.destroy();
  });
});
