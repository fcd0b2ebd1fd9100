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
function hello(session: number, base: number, features: number): Buffer {
  const h = encodeHello(Buffer.alloc(16, session), 1000 + session, base, []);
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
      second.write(hello(2, 1, features), request(1, "big", true));
      await second.until(() => second.results(1).length > 0, "an answer to the request sent again");
      const answer = second.results(1)[0];
      expect(g.runs()).toBe(1);
      expect(answer.type).toBe(FRAME.res);
      expect(answer.flags & (FRAME.ok | FRAME.lost)).toBe(FRAME.lost);
      expect(v8Codec.decode(answer.body)).toMatchObject({ code: "ERR_OPEN_CHANNEL_REPLY_LOST" });
      // Over the host's 16 KiB for this member: never kept (the lost answer is, until read).
      expect(host.keptResults()).toEqual({ results: 1, bytes: expect.any(Number) });
      expect(host.keptResults().bytes).toBeLessThan(1024);
      await second.close();
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
