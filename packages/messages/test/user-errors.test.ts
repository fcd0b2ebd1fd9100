import { spawn } from "node:child_process";
import { once } from "node:events";
import * as path from "node:path";
import {
  bufferCodec,
  type Codec,
  jsonCodec,
  type MessageHandlers,
  type Messenger,
  openMessageChannel,
  structuredCodec,
} from "@open-channel/messages";
import { unixTransport } from "@open-channel/transport-unix";

// What a user does wrong, and the error with a code that names the channel that they get for it.
const unique = (label: string): string =>
  `usererr-${label}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;

const open: Messenger[] = [];
afterEach(async () => {
  for (const m of open.splice(0)) m.channel.close({ handover: true });
});

function connect(name: string, handlers: MessageHandlers, codec: Codec = structuredCodec): Messenger {
  const m = openMessageChannel(name, handlers, { transport: unixTransport(), codec }).connect();
  open.push(m);
  return m;
}

const rejection = (p: Promise<unknown>): Promise<Error & { code?: string; remoteCode?: string; codec?: string }> =>
  p.then(
    () => {
      throw new Error("resolved, expected a rejection");
    },
    (err: Error) => err,
  );

describe("a body the codec cannot encode rejects with ERR_OPEN_CHANNEL_UNSERIALIZABLE, naming the channel and the codec", () => {
  for (const [label, body] of [
    ["a function", () => 1],
    ["a Symbol", Symbol("s")],
    ["a WeakMap", new WeakMap()],
    ["an object holding a function", { run: () => 1 }],
  ] as const) {
    test(`${label}, structuredCodec`, async () => {
      const name = unique("encode");
      const m = connect(name, { onMessage() {} });
      const err = await rejection(m.send(body as unknown));
      expect(err).toMatchObject({ code: "ERR_OPEN_CHANNEL_UNSERIALIZABLE", codec: "structured" });
      expect(err.message).toContain(`open-channel "${name}": a message cannot be encoded by the structured codec`);
      // The channel goes on: the next send is delivered.
      await m.send("after");
    });
  }

  test("bufferCodec: what is not a Buffer or a string; a request and a publish too", async () => {
    const name = unique("encode-buffer");
    const m = connect(name, { onMessage() {}, onRequest: (b) => b }, bufferCodec);
    expect(await rejection(m.send({ a: 1 }))).toMatchObject({ code: "ERR_OPEN_CHANNEL_UNSERIALIZABLE", codec: "buffer" });
    const req = await rejection(m.request(42));
    expect(req.code).toBe("ERR_OPEN_CHANNEL_UNSERIALIZABLE");
    expect(req.message).toContain("a request cannot be encoded by the buffer codec");
    const pub = await rejection(m.publish("t", (() => 1) as unknown));
    expect(pub.message).toContain("a published event cannot be encoded");
    expect(String(await m.request("ok"))).toBe("ok");
  });

  test("jsonCodec: a function, a BigInt, a cycle", async () => {
    const m = connect(unique("encode-json"), { onMessage() {} }, jsonCodec);
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    for (const body of [() => 1, 10n, cycle]) {
      expect(await rejection(m.send(body as unknown))).toMatchObject({ code: "ERR_OPEN_CHANNEL_UNSERIALIZABLE", codec: "json" });
    }
  });

  test("a reply or a push the host cannot encode: the request rejects with remoteCode ERR_OPEN_CHANNEL_UNSERIALIZABLE", async () => {
    const name = unique("encode-reply");
    const m = connect(name, {
      onRequest(body, from) {
        if (body === "push") from.send((() => 1) as unknown);
        return () => 1;
      },
    });
    for (const ask of ["reply", "push"]) {
      const err = await rejection(m.request(ask));
      expect(err).toMatchObject({ code: "ERR_OPEN_CHANNEL_REMOTE", remoteCode: "ERR_OPEN_CHANNEL_UNSERIALIZABLE" });
      expect(err.message).toContain(ask === "reply" ? "could not handle it: the reply cannot be encoded" : "a push cannot be encoded");
      // Named once, not twice.
      expect(err.message.split(`open-channel "${name}"`).length).toBe(2);
    }
  });
});

test("bufferCodec: a handler that throws still answers, with its message and code", async () => {
  const m = connect(
    unique("buffer-throw"),
    {
      onRequest() {
        throw Object.assign(new Error("no such job"), { code: "E_NO_JOB" });
      },
    },
    bufferCodec,
  );
  const err = await rejection(m.request("job 7"));
  expect(err).toMatchObject({ code: "ERR_OPEN_CHANNEL_REMOTE", remoteCode: "E_NO_JOB" });
  expect(err.message).toContain("the host's handler threw: no such job");
});

describe("processes with different codecs", () => {
  test("a member's body the host's codec cannot read: the call rejects with ERR_OPEN_CHANNEL_BAD_BODY and the host warns once", async () => {
    const name = unique("codecs");
    // Another process hosts with structuredCodec; this one joins with jsonCodec.
    const host = spawn(process.execPath, [path.join(__dirname, "fixtures", "codec-host.js")], {
      env: { ...process.env, OC_CHANNEL: name, OC_CODEC: "structured" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stderr = "";
    host.stderr.on("data", (d: Buffer) => {
      stderr += String(d);
    });
    try {
      const [line] = (await once(host.stdout, "data")) as [Buffer];
      expect(String(line).trim()).toBe("hosting");
      const member = connect(name, { onMessage() {}, onRequest: () => "ok" }, jsonCodec);
      for (const call of [member.send({ a: 1 }), member.request({ q: 1 }), member.send({ b: 2 })]) {
        const err = await rejection(call);
        expect(err.code).toBe("ERR_OPEN_CHANNEL_BAD_BODY");
        expect(err.message).toContain(`open-channel "${name}": A message body cannot be decoded`);
      }
      host.stdin.end("exit\n");
      await once(host, "exit");
      const warnings = stderr.split("\n").filter((l) => l.includes("[ERR_OPEN_CHANNEL_BAD_BODY] Warning:"));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(`open-channel "${name}"`);
      expect(warnings[0]).toContain(`a message from pid ${process.pid}`);
    } finally {
      host.kill("SIGKILL");
      for (const stream of [host.stdin, host.stdout, host.stderr]) stream.destroy();
    }
  });

  test("a JSON host answering a structuredCodec member: the member's calls reject with ERR_OPEN_CHANNEL_BAD_BODY", async () => {
    const name = unique("codecs-json-host");
    const host = connect(name, { onMessage() {}, onRequest: () => "ok" }, jsonCodec);
    await host.send("hosting");
    const member = connect(name, { onMessage() {}, onRequest: () => "ok" });
    const err = await rejection(member.request({ q: 1 }));
    expect(err.code).toBe("ERR_OPEN_CHANNEL_BAD_BODY");
    expect(err.message).toContain(`open-channel "${name}"`);
  });

  test("a codec of one's own whose decode throws: ERR_OPEN_CHANNEL_BAD_BODY, the codec's error as its cause", async () => {
    const broken: Codec = {
      name: "broken",
      encode: (v) => Buffer.from(String(v)),
      decode: () => {
        throw new SyntaxError("cannot read this");
      },
    };
    const m = connect(unique("codec-own"), { onRequest: () => "x" }, broken);
    // The host cannot read the request, and this member cannot read the host's answer either.
    const err = await rejection(m.request("q"));
    expect(err.code).toBe("ERR_OPEN_CHANNEL_BAD_BODY");
    expect(err.message).toContain("(cannot read this)");
    // The codec's error, under the one that names no channel.
    expect((err as { cause?: { cause?: unknown } }).cause?.cause).toBeInstanceOf(SyntaxError);
  });
});

describe("wrong arguments reject (or throw, for subscribe) with Node's codes", () => {
  test("a topic that is not a string, or over 65535 bytes", async () => {
    const m = connect(unique("topic"), { onMessage() {} });
    expect(await rejection(m.publish(42 as unknown as string, "x"))).toMatchObject({
      code: "ERR_INVALID_ARG_TYPE",
      message: expect.stringContaining('The "topic" argument must be of type string'),
    });
    expect(await rejection(m.publish("t".repeat(65536), "x"))).toMatchObject({ code: "ERR_OUT_OF_RANGE" });
    expect(() => m.subscribe(42 as unknown as string, () => {})).toThrow(expect.objectContaining({ code: "ERR_INVALID_ARG_TYPE" }));
    expect(() => m.subscribe("t".repeat(65536), () => {})).toThrow(expect.objectContaining({ code: "ERR_OUT_OF_RANGE" }));
    expect(() => m.subscribe("t", 1 as unknown as () => void)).toThrow(
      expect.objectContaining({ code: "ERR_INVALID_ARG_TYPE", message: expect.stringContaining('"handler"') }),
    );
    await m.publish("t", "still works");
  });

  test("a request timeout that is not a finite number >= 0; 0 waits without a timer", async () => {
    const m = connect(unique("timeout"), { onRequest: (b) => b });
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(await rejection(m.request("x", { timeout: bad }))).toMatchObject({
        code: "ERR_OUT_OF_RANGE",
        message: expect.stringContaining('"options.timeout"'),
      });
    }
    expect(await rejection(m.request("x", { timeout: "abc" as unknown as number }))).toMatchObject({ code: "ERR_INVALID_ARG_TYPE" });
    expect(await rejection(m.request("x", 5 as unknown as { timeout: number }))).toMatchObject({ code: "ERR_INVALID_ARG_TYPE" });
    expect(await m.request("waits", { timeout: 0 })).toBe("waits");
  });
});
