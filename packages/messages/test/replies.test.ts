import { type ChildProcess, fork } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { openMessageChannel, v8Codec } from "@open-channel/messages";
import { tcpTransport } from "@open-channel/transport-tcp";
import { unixTransport } from "@open-channel/transport-unix";
import { withRawHost } from "./raw-host";

// What a host keeps of its replies (issue 16, item 4): results go once the member has read them
// (READ), are bounded in bytes for every member, and a member that reconnects without one still
// gets it, or a clear error when it was let go; members without READ (older versions) keep the
// replay they had.

const { encodeHello, encodeSequenced, FRAME } = require("../dist/frame.js") as typeof import("../src/frame");

const unique = (label: string): string =>
  `msg-${label}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const MiB = 1 << 20;

interface Frame {
  type: number;
  /** seq of an ACK, RES or FAIL; features of a WELCOME. */
  n: number;
  flags: number;
  body: Buffer;
}

/** A member speaking frames by hand over a plain socket (the host's side of a channel connection). */
class RawMember {
  readonly frames: Frame[] = [];
  readonly socket: net.Socket;
  private got = Buffer.alloc(0);
  private waiters = new Set<() => void>();

  constructor(file: string) {
    this.socket = net.connect(file);
    this.socket.on("error", () => undefined);
    this.socket.on("close", () => {
      for (const w of [...this.waiters]) w();
    });
    this.socket.on("data", (d: Buffer) => {
      this.got = Buffer.concat([this.got, d]);
      while (this.got.length >= 4 && this.got.length >= 4 + this.got.readUInt32BE(0)) {
        const f = this.got.subarray(0, 4 + this.got.readUInt32BE(0));
        this.got = this.got.subarray(f.length);
        const type = f[4];
        if (type === FRAME.welcome) this.frames.push({ type, n: f[5], flags: 0, body: Buffer.alloc(0) });
        else if (type === FRAME.res) this.frames.push({ type, n: f.readUIntBE(5, 6), flags: f[11], body: f.subarray(12) });
        else if (type === FRAME.fail) this.frames.push({ type, n: f.readUIntBE(5, 6), flags: 0, body: f.subarray(11) });
        else this.frames.push({ type, n: type === FRAME.ack ? f.readUIntBE(5, 6) : 0, flags: 0, body: f.subarray(5) });
      }
      for (const w of [...this.waiters]) w();
    });
  }

  write(...frames: Buffer[]): void {
    this.socket.write(Buffer.concat(frames));
  }

  /** Resolves once `check` holds (checked as frames come), or rejects after `ms`. */
  until(check: () => boolean, what: string, ms = 10000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(tick);
        reject(new Error(`timed out waiting for ${what}; frames ${JSON.stringify(this.frames.map((f) => [f.type, f.n, f.flags]))}`));
      }, ms);
      const tick = (): void => {
        if (!check()) return;
        clearTimeout(timer);
        this.waiters.delete(tick);
        resolve();
      };
      this.waiters.add(tick);
      tick();
    });
  }

  results(seq: number): Frame[] {
    return this.frames.filter((f) => (f.type === FRAME.res || f.type === FRAME.fail) && f.n === seq);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) resolve();
      else {
        this.socket.once("close", () => resolve());
        this.socket.destroy();
      }
    });
  }
}

/** A hello of `session` (16 bytes of one value) with `base`; `features` as a member of that version announces them. */
function hello(session: number, base: number, features: number, topics: string[] = []): Buffer {
  const full = encodeHello(Buffer.alloc(16, session), 1000 + session, base, topics);
  // Up to the features byte: what a member before the host feature sent (its flags, since and held count follow it now).
  const h = Buffer.from(full.subarray(0, full.length - 11));
  h.writeUInt32BE(h.length - 4, 0);
  h[h.length - 1] = features;
  return h;
}
const CURRENT = FRAME.features.resAcks | FRAME.features.read;
/** What members announced before READ. */
const BEFORE_READ = FRAME.features.resAcks;

const request = (seq: number, body: unknown, redelivered = false): Buffer => {
  const f = encodeSequenced(FRAME.req, seq, v8Codec.encode(body));
  if (redelivered) f[11] |= FRAME.redelivered;
  return f;
};
const read = (count: number): Buffer => {
  const f = Buffer.alloc(FRAME.ackBytes);
  f.writeUInt32BE(FRAME.ackBytes - 4, 0);
  f[4] = FRAME.read;
  f.writeUIntBE(count, 5, 6);
  return f;
};

/** {@link withRawHost} with this file's limits: a window of 64, frames up to 16 MiB. */
const withHost = (
  handlers: import("../src/host").MessageHandlers,
  maxUnackedBytes: number,
  body: (file: string, host: import("../src/host").MessageHost) => Promise<void>,
): Promise<void> => withRawHost(handlers, { maxFrameBytes: 16 * MiB, maxUnacked: 64, maxUnackedBytes }, body);

/**
 * Handlers whose requests wait at a gate until `open()`, then answer `reply(body)`; `runs()` counts
 * the handler's runs (a request run twice would count two).
 */
function gatedRequests(reply: (body: unknown) => unknown): {
  handlers: import("../src/host").MessageHandlers;
  open: () => void;
  runs: () => number;
} {
  let open: () => void = () => undefined;
  const wait = new Promise<void>((r) => {
    open = r;
  });
  let runs = 0;
  const handlers = {
    async onRequest(body: unknown) {
      runs++;
      await wait;
      return reply(body);
    },
  };
  return { handlers, open, runs: () => runs };
}

describe.each(["unix", "tcp"])("a host process over %s", (transportName) => {
  let child: ChildProcess | undefined;
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "oc-replies-host-"));
  });
  afterEach(() => {
    child?.kill("SIGKILL");
    child = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Starts the host process (test/fixtures/reply-host.js); resolves with a stats() reader once it hosts. */
  async function startHost(
    channel: string,
  ): Promise<{ raw: string; stats: () => Promise<{ kept: { bytes: number }; arrayBuffers: number }> }> {
    const raw = path.join(dir, "raw.sock");
    const c = fork(path.join(__dirname, "fixtures", "reply-host.js"), [], {
      execArgv: ["--expose-gc"],
      env: { ...process.env, OC_CHANNEL: channel, OC_TRANSPORT: transportName, OC_RAW_PATH: raw },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    child = c;
    const ready = await new Promise<{ isHost: boolean }>((resolve, reject) => {
      c.once("message", (m) => resolve(m as { isHost: boolean }));
      c.once("exit", (code) => reject(new Error(`the host process exited (${code})`)));
    });
    expect(ready.isHost).toBe(true);
    const stats = () =>
      new Promise<{ kept: { bytes: number }; arrayBuffers: number }>((resolve) => {
        c.once("message", (m) => resolve(m as { kept: { bytes: number }; arrayBuffers: number }));
        c.send("stats");
      });
    return { raw, stats };
  }

  test("200 replies of 1 MiB read by a current member: the host keeps none of them, and holds no more memory than before", async () => {
    const name = unique(`big-replies-${transportName}`);
    const { stats } = await startHost(name);
    const transport = transportName === "tcp" ? tcpTransport() : unixTransport();
    const m = openMessageChannel(name, {}, { transport }).connect();
    try {
      const before = await stats();
      for (let i = 0; i < 200; i++) expect(((await m.request({ big: MiB })) as Buffer).length).toBe(MiB);
      // The last READ went as the last reply was read (past 64 KiB): before this request.
      await m.request("sync");
      const after = await stats();
      // Before READ: about 400 MB (each reply kept, in a buffer twice its size, until a reconnect).
      expect(after.kept.bytes).toBeLessThan(MiB);
      expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(32 * MiB);
    } finally {
      m.channel.close();
    }
  }, 60000);

  test("200 replies of 1 MiB read by a member without READ (an older version): the host keeps at most maxUnackedBytes", async () => {
    const { raw, stats } = await startHost(unique(`big-old-${transportName}`));
    const before = await stats();
    const member = new RawMember(raw);
    try {
      member.write(hello(1, 0, BEFORE_READ));
      for (let seq = 1; seq <= 200; seq++) {
        member.write(encodeSequenced(FRAME.req, seq, Buffer.from(require("node:v8").serialize({ big: MiB }))));
        await member.until(() => member.results(seq).length > 0, `the reply to ${seq}`);
        member.frames.length = 0;
      }
      const after = await stats();
      expect(member.frames.filter((f) => f.type === FRAME.welcome)).toEqual([]);
      expect(after.kept.bytes).toBeLessThanOrEqual(8 * MiB);
      expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(48 * MiB);
    } finally {
      await member.close();
    }
  }, 60000);
});

describe("replies and reconnects to the same host", () => {
  // Race-prone (a reply written while the member is away, a READ crossing a reply): repeated.
  test.each(process.env.OC_MUTATION_RUN === "1" ? [1] : [1, 2, 3, 4, 5])(
    "a current member that reconnects gets the reply it had not read, the request run once (run %i)",
    async () => {
      const g = gatedRequests((body) => ({ echo: body }));
      await withHost(g.handlers, 8 * MiB, async (file, host) => {
        const first = new RawMember(file);
        first.write(hello(1, 0, CURRENT), request(1, "slow"));
        // The host started it (ACK) before answering: the member's next hello has base 1.
        await first.until(() => first.frames.some((f) => f.type === FRAME.ack && f.n === 1), "the ACK of the request");
        await first.close();
        g.open();
        // Answered while the member was away: kept for it.
        for (let i = 0; i < 100 && host.keptResults?.().results !== 1; i++) await sleep(10);
        const second = new RawMember(file);
        second.write(hello(1, 1, CURRENT), request(1, "slow", true));
        await second.until(() => second.results(1).length > 0, "the reply, replayed");
        const reply = second.results(1)[0];
        expect(g.runs()).toBe(1);
        expect(reply.flags & FRAME.ok).toBe(FRAME.ok);
        expect(v8Codec.decode(reply.body)).toEqual({ echo: "slow" });
        expect(second.frames[0].type).toBe(FRAME.welcome);
        // Read (every result written on this connection): let go.
        second.write(read(second.frames.filter((f) => f.type === FRAME.res || f.type === FRAME.fail).length));
        for (let i = 0; i < 100 && host.keptResults().results > 0; i++) await sleep(10);
        expect(host.keptResults()).toEqual({ results: 0, bytes: 0 });
        await second.close();
      });
    },
  );

  test.each([
    ["a current member", CURRENT],
    ["a member without READ", BEFORE_READ],
  ])("%s asking again for a reply let go for bytes gets ERR_OPEN_CHANNEL_REPLY_LOST, the request not run again", async (_, features) => {
    const g = gatedRequests((body) => Buffer.alloc(64 * 1024, body === "big" ? 1 : 2));
    await withHost(g.handlers, 16 * 1024, async (file, host) => {
      const first = new RawMember(file);
      first.write(hello(2, 0, features), request(1, "big"));
      await first.until(() => first.frames.some((f) => f.type === FRAME.ack && f.n === 1), "the ACK of the request");
      await first.close();
      g.open();
      await sleep(50);
      const second = new RawMember(file);
      // Closed also when an assertion fails (a socket left open fails the whole file).
      try {
        second.write(hello(2, 1, features), request(1, "big", true));
        await second.until(() => second.results(1).length > 0, "an answer to the request sent again");
        const answer = second.results(1)[0];
        expect(g.runs()).toBe(1);
        expect(answer.type).toBe(FRAME.res);
        expect(answer.flags & (FRAME.ok | FRAME.lost)).toBe(FRAME.lost);
        expect(v8Codec.decode(answer.body)).toMatchObject({
          code: "ERR_OPEN_CHANNEL_REPLY_LOST",
          message: expect.stringContaining("the host handled request 1, but its reply was lost"),
        });
        // Over the host's 16 KiB for this member: never kept (the lost answer is, until read).
        expect(host.keptResults()).toEqual({ results: 1, bytes: expect.any(Number) });
        expect(host.keptResults().bytes).toBeGreaterThan(0);
        expect(host.keptResults().bytes).toBeLessThan(1024);
      } finally {
        await second.close();
      }
    });
  });

  test("a member without READ keeps today's replay: no WELCOME, and a reply it had not read comes on its next hello", async () => {
    const g = gatedRequests((body) => body);
    await withHost(g.handlers, 8 * MiB, async (file, host) => {
      const first = new RawMember(file);
      // A request not acknowledged yet when the member goes (the handler runs): base 0.
      first.write(hello(3, 0, BEFORE_READ), request(1, "kept"));
      await first.until(() => first.frames.some((f) => f.type === FRAME.ack), "the ACK");
      await first.close();
      g.open();
      await sleep(20);
      const second = new RawMember(file);
      second.write(hello(3, 0, BEFORE_READ));
      await second.until(() => second.results(1).length > 0, "the reply, replayed");
      expect(v8Codec.decode(second.results(1)[0].body)).toBe("kept");
      expect(second.frames.filter((f) => f.type === FRAME.welcome)).toEqual([]);
      // Without READ nothing is let go while connected (as before): it stays until the next hello's base.
      await sleep(50);
      expect(host.keptResults().results).toBe(1);
      await second.close();
    });
  });
});

describe("a current messenger", () => {
  /** A fake host of `name` that records the frames a member sends and answers each REQ with `answer(seq)`; `welcome`: it says it takes READ. */
  async function fakeHost(name: string, welcome: boolean, answer: (seq: number) => Buffer) {
    const { ProcessChannel } = require("@open-channel/core") as typeof import("@open-channel/core");
    const types: number[] = [];
    const reads: number[] = [];
    const fake = new ProcessChannel(
      name,
      (socket) => {
        let got = Buffer.alloc(0);
        socket.on("data", (d: Buffer) => {
          got = Buffer.concat([got, d]);
          while (got.length >= 4 && got.length >= 4 + got.readUInt32BE(0)) {
            const f = got.subarray(0, 4 + got.readUInt32BE(0));
            got = got.subarray(f.length);
            types.push(f[4]);
            if (f[4] === FRAME.hello && welcome) socket.write(Buffer.from([0, 0, 0, 2, FRAME.welcome, FRAME.features.read]));
            if (f[4] === FRAME.read) reads.push(f.readUIntBE(5, 6));
            if (f[4] === FRAME.req) socket.write(answer(f.readUIntBE(5, 6)));
          }
        });
      },
      { transport: unixTransport() },
    );
    const own = fake.connect();
    await new Promise((resolve) => own.once("connect", resolve));
    return { types, reads, close: () => fake.close() };
  }
  /** A RES frame for `seq` with `flags`, its body `value` (v8Codec). */
  const resFrame = (seq: number, flags: number, value: unknown): Buffer => {
    const body = v8Codec.encode(value);
    const f = Buffer.alloc(12 + body.length);
    f.writeUInt32BE(f.length - 4, 0);
    f[4] = FRAME.res;
    f.writeUIntBE(seq, 5, 6);
    f[11] = flags;
    Buffer.from(body).copy(f, 12);
    return f;
  };
  const okReply = (seq: number): Buffer => resFrame(seq, FRAME.ok | FRAME.acks, Buffer.alloc(40 * 1024, 1));

  test("sends READ frames (the count of results read) to a host that welcomed it, and none to a host that did not", async () => {
    for (const welcome of [true, false]) {
      const name = unique(`reads-${welcome}`);
      const host = await fakeHost(name, welcome, okReply);
      const m = openMessageChannel(name, {}, { transport: unixTransport(), codec: v8Codec }).connect();
      try {
        for (let i = 0; i < 5; i++) await m.request(i);
        // 40 KiB replies: a READ after every second one (64 KiB), and the last within 100 ms.
        await sleep(300);
        if (welcome) {
          expect(host.reads.length).toBeGreaterThan(0);
          expect(host.reads[host.reads.length - 1]).toBe(5);
          expect(host.reads).toEqual([...host.reads].sort((a, b) => a - b));
        } else expect(host.types.filter((t) => t === FRAME.read)).toEqual([]);
      } finally {
        m.channel.close();
        host.close();
      }
    }
  });

  test("a RES flagged lost rejects the call with ERR_OPEN_CHANNEL_REPLY_LOST, naming the channel", async () => {
    const name = unique("lost");
    const host = await fakeHost(name, true, (seq) =>
      resFrame(seq, FRAME.lost | FRAME.acks, { name: "OpenChannelError", message: "lost", code: "ERR_OPEN_CHANNEL_REPLY_LOST" }),
    );
    const m = openMessageChannel(name, {}, { transport: unixTransport(), codec: v8Codec }).connect();
    try {
      await expect(m.request("x")).rejects.toMatchObject({
        code: "ERR_OPEN_CHANNEL_REPLY_LOST",
        channel: name,
        message: expect.stringMatching(/request 1/),
      });
    } finally {
      m.channel.close();
      host.close();
    }
  });
});

test.each([
  ["handlers that return at once", () => undefined],
  ["async handlers", async () => undefined],
])("acknowledgements are cumulative and batched: 50 MSG frames in one read get one ACK (%s)", async (_, onMessage) => {
  await withHost({ onMessage }, 8 * MiB, async (file) => {
    const member = new RawMember(file);
    try {
      const messages = Array.from({ length: 50 }, (_, i) => encodeSequenced(FRAME.msg, i + 1, v8Codec.encode(i)));
      member.write(hello(1, 0, CURRENT), ...messages);
      await member.until(() => member.frames.some((f) => f.type === FRAME.ack && f.n === 50), "the ACK of seq 50");
      expect(member.frames.filter((f) => f.type === FRAME.ack).map((f) => f.n)).toEqual([50]);
    } finally {
      await member.close();
    }
  });
});

describe("the host, frame by frame", () => {
  // Closed after each test, also when an assertion fails first.
  const opened: RawMember[] = [];
  const connect = (file: string): RawMember => {
    const m = new RawMember(file);
    opened.push(m);
    return m;
  };
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((m) => m.close()));
  });
  const msg = (seq: number, body: unknown, redelivered = false): Buffer => {
    const f = encodeSequenced(FRAME.msg, seq, v8Codec.encode(body));
    if (redelivered) f[FRAME.flagsAt] |= FRAME.redelivered;
    return f;
  };
  const publish = (seq: number, topic: string, body: unknown): Buffer => encodeSequenced(FRAME.pub, seq, v8Codec.encode(body), topic);
  const subscribe = (seq: number, topic: string): Buffer => encodeSequenced(FRAME.sub, seq, undefined, topic);
  const unsubscribe = (seq: number, topic: string): Buffer => encodeSequenced(FRAME.unsub, seq, undefined, topic);
  const acks = (m: RawMember): number[] => m.frames.filter((f) => f.type === FRAME.ack).map((f) => f.n);
  /** The topics of the EVENT frames `m` got, in order. */
  const events = (m: RawMember): string[] =>
    m.frames.filter((f) => f.type === FRAME.event).map((f) => f.body.toString("utf8", 2, 2 + f.body.readUInt16BE(0)));
  const answered = (m: RawMember): number[] => m.frames.filter((f) => f.type === FRAME.res || f.type === FRAME.fail).map((f) => f.n);
  const closed = (m: RawMember, what: string, ms?: number): Promise<void> => m.until(() => m.socket.destroyed, what, ms);
  /** A promise that waits until `open()`. */
  function gate(): { wait: Promise<void>; open: () => void } {
    let open: () => void = () => undefined;
    const wait = new Promise<void>((r) => {
      open = r;
    });
    return { wait, open };
  }

  test("a member back with its base below what was handled is acknowledged again at once; what it sends again is neither run again nor answered", async () => {
    const seen: unknown[] = [];
    await withHost({ onMessage: (body) => void seen.push(body), onRequest: (body) => body }, 8 * MiB, async (file) => {
      const first = connect(file);
      first.write(hello(11, 0, CURRENT), msg(1, "a"), msg(2, "b"), msg(3, "c"));
      await first.until(() => acks(first).includes(3), "the ACK of 3");
      await first.close();
      // It did not read that ACK: its base is still 0.
      const second = connect(file);
      second.write(hello(11, 0, CURRENT));
      await second.until(() => acks(second).includes(3), "the ACK of 3 again, after the hello");
      second.write(msg(1, "a", true), msg(2, "b", true), msg(3, "c", true), request(4, "after"));
      await second.until(() => answered(second).includes(4), "the reply to 4");
      expect(seen).toEqual(["a", "b", "c"]);
      expect(answered(second)).toEqual([4]);
    });
  });

  test("a member back with a higher base (another host acknowledged more meanwhile): its next reply stands for the ACK", async () => {
    await withHost({ onMessage: () => undefined, onRequest: (body) => body }, 8 * MiB, async (file) => {
      const first = connect(file);
      first.write(hello(12, 0, CURRENT), msg(1, "a"));
      await first.until(() => acks(first).includes(1), "the ACK of 1");
      await first.close();
      const second = connect(file);
      second.write(hello(12, 10, CURRENT), request(11, "x"));
      await second.until(() => answered(second).includes(11), "the reply to 11");
      second.write(request(12, "y"));
      await second.until(() => answered(second).includes(12), "the reply to 12");
      expect(second.results(11)[0].flags).toBe(FRAME.ok | FRAME.acks);
      expect(acks(second)).toEqual([]);
    });
  });

  test("a request sent again that this host never answered (its previous host took it, then died) is run, flagged redelivered", async () => {
    const handlers = {
      onRequest: (body: unknown, from: import("../src/host").MessageContext) => ({ body, redelivered: from.redelivered }),
    };
    await withHost(handlers, 8 * MiB, async (file) => {
      const m = connect(file);
      m.write(hello(13, 10, CURRENT), request(8, "taken", true));
      await m.until(() => answered(m).includes(8), "the reply to 8");
      expect(m.results(8)[0].flags & FRAME.ok).toBe(FRAME.ok);
      expect(v8Codec.decode(m.results(8)[0].body)).toEqual({ body: "taken", redelivered: true });
    });
  });

  test("a request sent again while its handler still runs is not run twice: one reply once it is done", async () => {
    const g = gate();
    let runs = 0;
    const handlers = {
      onRequest(body: unknown) {
        if (body !== "slow") return body;
        runs++;
        return g.wait.then(() => "slow, done");
      },
    };
    await withHost(handlers, 8 * MiB, async (file) => {
      const first = connect(file);
      first.write(hello(14, 0, CURRENT), request(1, "slow"));
      await first.until(() => acks(first).includes(1), "the ACK of 1");
      await first.close();
      const second = connect(file);
      second.write(hello(14, 1, CURRENT), request(1, "slow", true), request(2, "quick"));
      await second.until(() => answered(second).includes(2), "the reply to 2");
      expect(runs).toBe(1);
      g.open();
      await second.until(() => answered(second).includes(1), "the reply to 1");
      expect(runs).toBe(1);
      expect(second.results(1).map((f) => v8Codec.decode(f.body))).toEqual(["slow, done"]);
    });
  });

  test("a READ lets go of the results read, and only those: the one after it is replayed on the next connection", async () => {
    await withHost({ onRequest: (body) => body }, 8 * MiB, async (file) => {
      const first = connect(file);
      first.write(hello(15, 0, CURRENT), request(1, "a"), request(2, "b"));
      await first.until(() => answered(first).includes(2), "the replies to 1 and 2");
      // Read one of the two; the reply to 3 comes after that READ was taken.
      first.write(read(1), request(3, "c"));
      await first.until(() => answered(first).includes(3), "the reply to 3");
      await first.close();
      const second = connect(file);
      second.write(hello(15, 3, CURRENT));
      await second.until(() => answered(second).includes(3), "the replies replayed");
      expect(answered(second)).toEqual([2, 3]);
    });
  });

  test("UNSUB stops a topic's events to that member; another subscriber of the topic still gets them", async () => {
    await withHost({ onRequest: (body) => body }, 8 * MiB, async (file) => {
      const a = connect(file);
      const b = connect(file);
      const publisher = connect(file);
      b.write(hello(17, 0, CURRENT), subscribe(1, "t"));
      await b.until(() => acks(b).includes(1), "the ACK of B's SUB");
      a.write(hello(16, 0, CURRENT, ["t"]), unsubscribe(1, "t"));
      await a.until(() => acks(a).includes(1), "the ACK of A's UNSUB");
      publisher.write(hello(18, 0, CURRENT), publish(1, "t", "news"));
      await publisher.until(() => acks(publisher).includes(1), "the ACK of the publish");
      await b.until(() => events(b).length > 0, "the event at B");
      // An event to A would come before this reply (one connection, in order).
      a.write(request(2, "sync"));
      await a.until(() => answered(a).includes(2), "A's reply");
      expect(events(a)).toEqual([]);
      expect(events(b)).toEqual(["t"]);
    });
  });

  test("a member back on a new connection while its old one is open: the old one is closed, the new one gets the topics of its hello only", async () => {
    await withHost({ onRequest: (body) => body }, 8 * MiB, async (file) => {
      const old = connect(file);
      const again = connect(file);
      const publisher = connect(file);
      old.write(hello(19, 0, CURRENT, ["u"]), request(1, "x"));
      await old.until(() => answered(old).includes(1), "the reply on the old connection");
      again.write(hello(19, 1, CURRENT, ["v"]), request(2, "y"));
      await closed(old, "the old connection closed by the host");
      await again.until(() => answered(again).includes(2), "the reply on the new connection");
      publisher.write(hello(20, 0, CURRENT), publish(1, "u", "to u"), publish(2, "v", "to v"));
      await publisher.until(() => acks(publisher).includes(2), "the ACK of the publishes");
      again.write(request(3, "sync"));
      await again.until(() => answered(again).includes(3), "the reply after the publishes");
      expect(events(again)).toEqual(["v"]);
    });
  });

  test.each([0, FRAME.bye, FRAME.hold, FRAME.answer, FRAME.ack, 30])(
    "a frame of type %i (no frame a member of its version sends) closes the member's connection",
    async (type) => {
      await withHost({ onMessage: () => undefined }, 8 * MiB, async (file) => {
        const m = connect(file);
        const frame = msg(1, "x");
        frame[FRAME.typeAt] = type;
        m.write(hello(21, 0, CURRENT), frame);
        await closed(m, "the connection closed", 5000);
        expect(acks(m)).toEqual([]);
      });
    },
  );

  test("a member subscribed to what it publishes gets the event in order among its replies; a publish nobody lags behind is acknowledged at once", async () => {
    await withHost({ onRequest: (body) => body }, 8 * MiB, async (file) => {
      const m = connect(file);
      m.write(hello(22, 0, CURRENT, ["self"]), request(1, "a"), publish(2, "self", "ev"), request(3, "b"));
      await m.until(() => answered(m).includes(3), "the reply to 3");
      m.write(request(4, "c"));
      await m.until(() => answered(m).includes(4), "the reply to 4");
      // Every reply stands for the ACK (nothing before it still open): no ACK frame at all.
      expect(m.frames.map((f) => [f.type, f.n, f.flags])).toEqual([
        [FRAME.welcome, FRAME.features.read | FRAME.features.host, 0],
        [FRAME.res, 1, FRAME.ok | FRAME.acks],
        [FRAME.event, 0, 0],
        [FRAME.res, 3, FRAME.ok | FRAME.acks],
        [FRAME.res, 4, FRAME.ok | FRAME.acks],
      ]);
    });
  });

  test("an async onMessage still running holds back the ACK of everything after it, and no reply meanwhile stands for one", async () => {
    const g = gate();
    const handlers = {
      onMessage: (body: unknown) => (body === "slow" ? g.wait : Promise.resolve()),
      onRequest: (body: unknown) => body,
    };
    await withHost(handlers, 8 * MiB, async (file) => {
      const m = connect(file);
      m.write(hello(23, 0, CURRENT), msg(1, "slow"), msg(2, "quick"), request(3, "a"));
      await m.until(() => answered(m).includes(3), "the reply to 3");
      // A second round trip: an ACK the host had due after the first chunk has come by then.
      m.write(request(4, "b"));
      await m.until(() => answered(m).includes(4), "the reply to 4");
      expect(acks(m)).toEqual([]);
      expect([m.results(3)[0].flags, m.results(4)[0].flags]).toEqual([FRAME.ok, FRAME.ok]);
      g.open();
      await m.until(() => acks(m).includes(4), "the ACK of 4 once 1 is done");
    });
  });

  test("a handler that throws or rejects: a MSG gets a FAIL, a REQ a RES without ok, each with the error, and all are acknowledged", async () => {
    const handlers = {
      onMessage(body: unknown) {
        if (body === "later") return Promise.reject(Object.assign(new Error("later"), { code: "ELATER" }));
        throw Object.assign(new Error("now"), { code: "ENOW" });
      },
      onRequest(): unknown {
        throw Object.assign(new Error("asked"), { code: "EASKED" });
      },
    };
    await withHost(handlers, 8 * MiB, async (file) => {
      const m = connect(file);
      m.write(hello(24, 0, CURRENT), msg(1, "later"), msg(2, "now"), request(3, "x"));
      await m.until(() => answered(m).includes(1) && acks(m).includes(3), "the FAIL of 1 and the ACK of 3");
      const outcome = (seq: number) =>
        m.results(seq).map((f) => [f.type, f.flags & FRAME.ok, (v8Codec.decode(f.body) as { code: string }).code]);
      expect([outcome(1), outcome(2), outcome(3)]).toEqual([
        [[FRAME.fail, 0, "ELATER"]],
        [[FRAME.fail, 0, "ENOW"]],
        [[FRAME.res, 0, "EASKED"]],
      ]);
    });
  });

  test("what a request's handler throws reaches the member as { name, message, code }: a code only as a string, anything the codec cannot carry as a plain Error", async () => {
    const handlers = {
      onRequest(body: unknown): unknown {
        if (body === "numeric code") throw Object.assign(new Error("numeric"), { code: 42 });
        if (body === "symbol name") throw Object.assign(new Error("named"), { name: Symbol("odd") });
        if (body === "null") throw null;
        if (body === "function") return () => undefined;
        return "ok";
      },
    };
    await withHost(handlers, 8 * MiB, async (file) => {
      const m = connect(file);
      m.write(hello(25, 0, CURRENT), request(1, "numeric code"), request(2, "symbol name"), request(3, "null"), request(4, "function"));
      m.write(request(5, "end"));
      await m.until(() => answered(m).includes(5), "the reply to 5");
      const body = (seq: number): unknown => v8Codec.decode(m.results(seq)[0].body);
      expect(m.results(1)[0].flags & FRAME.ok).toBe(0);
      expect(body(1)).toStrictEqual({ name: "Error", message: "numeric", code: undefined });
      expect(body(2)).toStrictEqual({ name: "Error", message: "named" });
      expect(body(3)).toStrictEqual({ name: "Error", message: "null", code: undefined });
      expect(body(4)).toMatchObject({ message: expect.stringContaining("could not be cloned") });
      expect(m.results(4)[0].flags & FRAME.ok).toBe(0);
      expect(body(5)).toBe("ok");
    });
  });

  test("a handler's error whose message cannot be read: the member gets a plain Error saying so (a throw or a rejection), and its connection stays", async () => {
    const unreadable = (): Error => {
      const e = new Error();
      Object.defineProperty(e, "message", {
        get() {
          throw new Error("the message getter threw");
        },
      });
      return e;
    };
    const handlers = {
      onMessage(): void {
        throw unreadable();
      },
      onRequest(body: unknown): unknown {
        if (body === "rejects") return Promise.reject(unreadable());
        throw unreadable();
      },
    };
    await withHost(handlers, 8 * MiB, async (file) => {
      const m = connect(file);
      m.write(hello(29, 0, CURRENT), msg(1, "x"), request(2, "throws"), request(3, "rejects"));
      await m.until(() => [1, 2, 3].every((seq) => answered(m).includes(seq)), "the answers to 1, 2 and 3");
      const plain = { name: "Error", message: "(a message that cannot be read)" };
      expect([1, 2, 3].map((seq) => [m.results(seq)[0].type, v8Codec.decode(m.results(seq)[0].body)])).toEqual([
        [FRAME.fail, plain],
        [FRAME.res, plain],
        [FRAME.res, plain],
      ]);
      expect(m.socket.destroyed).toBe(false);
    });
  });

  test("a push or a reply of exactly maxFrameBytes goes; one byte more is refused with ERR_OPEN_CHANNEL_FRAME_TOO_LARGE, naming its size", async () => {
    const max = 4096;
    /** A Buffer whose v8 encoding after `head` bytes of frame makes a frame of `payload` bytes (after its length). */
    const sized = (payload: number, head: number): Buffer => {
      for (let n = payload - head; n > 0; n--) if (v8Codec.encode(Buffer.alloc(n)).length + head === payload) return Buffer.alloc(n, 7);
      throw new Error(`no body makes ${payload} bytes`);
    };
    const handlers = {
      onRequest(body: unknown, from: import("../src/host").MessageContext): unknown {
        const { push, reply } = body as { push?: number; reply?: number };
        if (reply !== undefined) return sized(reply, 1 + 6 + 1);
        try {
          return from.send(sized(push as number, 1));
        } catch (err) {
          return { code: (err as { code: string }).code, message: (err as Error).message };
        }
      },
    };
    await withRawHost(handlers, { maxFrameBytes: max, maxUnacked: 16 }, async (file) => {
      const m = connect(file);
      m.write(
        hello(27, 0, CURRENT),
        request(1, { push: max }),
        request(2, { push: max + 1 }),
        request(3, { reply: max }),
        request(4, { reply: max + 1 }),
      );
      await m.until(() => answered(m).includes(4), "the reply to 4");
      const body = (seq: number): unknown => v8Codec.decode(m.results(seq)[0].body);
      expect(body(1)).toBe(true);
      expect(m.frames.filter((f) => f.type === FRAME.push).map((f) => 1 + f.body.length)).toEqual([max]);
      expect(body(2)).toEqual({ code: "ERR_OPEN_CHANNEL_FRAME_TOO_LARGE", message: expect.stringContaining(`a push of ${max + 1} bytes`) });
      expect([m.results(3)[0].flags & FRAME.ok, 8 + m.results(3)[0].body.length]).toEqual([FRAME.ok, max]);
      expect(m.results(4)[0].flags & FRAME.ok).toBe(0);
      expect(body(4)).toMatchObject({
        code: "ERR_OPEN_CHANNEL_FRAME_TOO_LARGE",
        message: expect.stringContaining(`a reply of ${max + 1} bytes`),
      });
    });
  });

  test("from.send says true while the member is connected, false once it is gone", async () => {
    let from: import("../src/host").MessageContext | undefined;
    const handlers = {
      onRequest(_: unknown, context: import("../src/host").MessageContext) {
        from = context;
        return context.send("hi");
      },
    };
    await withHost(handlers, 8 * MiB, async (file) => {
      const m = connect(file);
      m.write(hello(28, 0, CURRENT), request(1, "x"));
      await m.until(() => answered(m).includes(1), "the reply to 1");
      expect(v8Codec.decode(m.results(1)[0].body)).toBe(true);
      expect(m.frames.filter((f) => f.type === FRAME.push).map((f) => v8Codec.decode(f.body))).toEqual(["hi"]);
      await m.close();
      // The host sees the close a moment later.
      let sent = true;
      for (let i = 0; i < 200 && sent; i++) {
        sent = (from as import("../src/host").MessageContext).send("gone");
        if (sent) await sleep(10);
      }
      expect(sent).toBe(false);
    });
  });

  test("a push in a buffer of its own, then an ACK that happens to start where that buffer ends (in the slab): both arrive whole", async () => {
    const L = 5000;
    /** A Buffer whose v8 encoding after `head` bytes makes a frame of `length` bytes. */
    const sized = (length: number, head: number): Buffer => {
      for (let n = length - head; n > 0; n--) if (v8Codec.encode(Buffer.alloc(n)).length + head === length) return Buffer.alloc(n, 7);
      throw new Error(`no body makes ${length} bytes`);
    };
    const handlers = {
      onMessage(_: unknown, from: import("../src/host").MessageContext) {
        from.send(sized(L, FRAME.headerBytes));
      },
      onRequest: () => sized(L, 12),
    };
    // A host of its own: its slab starts empty, so the reply fills exactly its first L bytes.
    await withHost(handlers, 8 * MiB, async (file) => {
      const m = connect(file);
      m.write(hello(30, 0, CURRENT), request(1, "fill"));
      await m.until(() => answered(m).includes(1), "the reply to 1");
      // The push (L bytes, a buffer of its own) and then the ACK, in the slab at offset L.
      m.write(msg(2, "push"));
      await m.until(() => acks(m).includes(2), "the ACK of 2");
      const pushes = m.frames.filter((f) => f.type === FRAME.push);
      expect(pushes.map((f) => FRAME.headerBytes + f.body.length)).toEqual([L]);
      expect(v8Codec.decode(pushes[0].body)).toEqual(sized(L, FRAME.headerBytes));
    });
  });

  test("a subscriber that falls behind and catches up again, many times over: its publishes wait for it, with one waiter on its connection, none left after", async () => {
    await withRawHost({ onRequest: (body) => body }, { maxFrameBytes: 1 * MiB, maxUnacked: 1024 }, async (file, _host, server) => {
      // The host's end of each connection, in the order accepted.
      const ends: net.Socket[] = [];
      server.on("connection", (socket: net.Socket) => ends.push(socket));
      const slow = connect(file);
      slow.write(hello(31, 0, CURRENT, ["t"]), request(1, "subscribed"));
      await slow.until(() => answered(slow).includes(1), "the subscriber's reply");
      const end = ends[0];
      const closeListeners = end.listenerCount("close");
      const publisher = connect(file);
      publisher.write(hello(32, 0, CURRENT));
      const big = Buffer.alloc(512 * 1024, 1);
      let seq = 0;
      for (let round = 0; round < 12; round++) {
        slow.socket.pause();
        // 2 MiB: past what the host lets wait for one subscriber; then small ones, each behind it;
        // then a request, answered once the host has taken them all.
        const frames: Buffer[] = [];
        for (let i = 0; i < 4; i++) frames.push(publish(++seq, "t", big));
        for (let i = 0; i < 20; i++) frames.push(publish(++seq, "t", i));
        frames.push(request(++seq, "after"));
        const asked = seq;
        const before = events(slow).length;
        publisher.write(...frames);
        await publisher.until(() => answered(publisher).includes(asked), `round ${round}: the reply after the publishes`);
        expect(acks(publisher).filter((n) => n >= asked)).toEqual([]);
        expect([end.listenerCount("drain"), end.listenerCount("close") - closeListeners]).toEqual([1, 1]);
        slow.socket.resume();
        await slow.until(() => events(slow).length === before + 24, `round ${round}: the events`);
        await publisher.until(() => acks(publisher).some((n) => n >= asked), `round ${round}: the ACK of ${asked}`);
      }
      expect([end.listenerCount("drain"), end.listenerCount("close") - closeListeners]).toEqual([0, 0]);
    });
  });

  test("two replies kept in memory in the reverse of their order, sent again together: each goes whole, and the stream stays readable", async () => {
    const gates = new Map([
      ["one", gate()],
      ["two", gate()],
    ]);
    const handlers = { onRequest: (body: unknown) => (gates.get(body as string)?.wait ?? Promise.resolve()).then(() => body) };
    await withHost(handlers, 8 * MiB, async (file) => {
      const first = connect(file);
      first.write(hello(33, 0, CURRENT), request(1, "one"), request(2, "two"));
      await first.until(() => acks(first).includes(2), "the ACK of both requests");
      // Answered 2 first: the reply to 1 lies right after it (two replies of one length).
      gates.get("two")?.open();
      await first.until(() => answered(first).includes(2), "the reply to 2");
      gates.get("one")?.open();
      await first.until(() => answered(first).includes(1), "the reply to 1");
      await first.close();
      // Unread: replayed on the hello, and sent again for the requests sent again.
      const second = connect(file);
      second.write(hello(33, 2, CURRENT), request(1, "one", true), request(2, "two", true));
      second.write(request(3, "three"));
      await second.until(() => answered(second).includes(3), "the reply to 3");
      expect(second.frames.filter((f) => ![FRAME.welcome, FRAME.res, FRAME.ack].includes(f.type as never))).toEqual([]);
      const values = second.frames.filter((f) => f.type === FRAME.res).map((f) => [f.n, v8Codec.decode(f.body)]);
      expect(values).toContainEqual([1, "one"]);
      expect(values).toContainEqual([2, "two"]);
      expect(values.every(([n, v]) => v === ["one", "two", "three"][(n as number) - 1])).toBe(true);
    });
  });

  test("300 MSG frames in one chunk are acknowledged as they go: an ACK after 256 of them, then one at the end", async () => {
    await withHost({ onMessage: () => undefined }, 8 * MiB, async (file) => {
      const m = connect(file);
      // About 5 KB: one read on the host's side.
      m.write(hello(26, 0, CURRENT), ...Array.from({ length: 300 }, (_, i) => msg(i + 1, i)));
      await m.until(() => acks(m).includes(300), "the ACK of 300");
      expect(acks(m)).toEqual([256, 300]);
    });
  });
});
