import { randomBytes } from "node:crypto";
import {
  channelsFromNames,
  computeProof,
  encodeHello,
  encodeReply,
  encodeStatusBody,
  escapeName,
  HANDSHAKE,
  HelloParser,
  newNonce,
  proofsEqual,
  ReplyParser,
  StatusBodyParser,
  unescapeName,
} from "@open-channel/core";

describe("handshake", () => {
  test("a hello survives any split into chunks and leaves what follows untouched", () => {
    const hello = encodeHello("ünïcode channel ✓");
    const trailing = Buffer.from("user bytes");
    const wire = Buffer.concat([hello, trailing]);
    for (let cut = 1; cut < wire.length; cut++) {
      const parser = new HelloParser();
      const first = parser.feed(wire.subarray(0, cut));
      const result = first.state === "done" ? first : parser.feed(wire.subarray(cut));
      expect(result.state).toBe("done");
      if (result.state !== "done") return;
      expect(result.value).toEqual({ version: HANDSHAKE.version, kind: HANDSHAKE.kindJoin, flags: 0, name: "ünïcode channel ✓" });
      expect(Buffer.concat([result.rest, first.state === "done" ? wire.subarray(cut) : Buffer.alloc(0)]).toString()).toBe("user bytes");
    }
  });

  test("a reply carries status, host pid and server id", () => {
    const id = randomBytes(8);
    const result = new ReplyParser().feed(Buffer.concat([encodeReply(HANDSHAKE.statusOk, 4242, id), Buffer.from("x")]));
    expect(result).toEqual({ state: "done", value: { status: 0, flags: 0, hostPid: 4242, serverId: id }, rest: Buffer.from("x") });
  });

  test("with a secret, a hello carries a nonce and the reply a nonce and the host's proof", () => {
    const memberNonce = newNonce();
    const hello = new HelloParser().feed(encodeHello("jobs", memberNonce));
    expect(hello).toMatchObject({ state: "done", value: { name: "jobs", flags: HANDSHAKE.flagProof, memberNonce } });
    const hostNonce = newNonce();
    const secret = randomBytes(32);
    const hostProof = computeProof(secret, "host", "jobs", memberNonce, hostNonce);
    const reply = new ReplyParser().feed(encodeReply(0, 1, randomBytes(8), { hostNonce, hostProof }));
    expect(reply).toMatchObject({ state: "done", value: { hostNonce, hostProof } });
  });

  test("proofs depend on the secret, the role, the channel and both nonces", () => {
    const [a, b] = [newNonce(), newNonce()];
    const secret = randomBytes(32);
    const base = computeProof(secret, "host", "jobs", a, b);
    expect(proofsEqual(base, computeProof(secret, "host", "jobs", a, b))).toBe(true);
    expect(proofsEqual(base, computeProof(randomBytes(32), "host", "jobs", a, b))).toBe(false);
    expect(proofsEqual(base, computeProof(secret, "member", "jobs", a, b))).toBe(false);
    expect(proofsEqual(base, computeProof(secret, "host", "jobs2", a, b))).toBe(false);
    expect(proofsEqual(base, computeProof(secret, "host", "jobs", b, a))).toBe(false);
    expect(proofsEqual(base, base.subarray(0, 16))).toBe(false);
  });

  test("a stranger's bytes are rejected at the first wrong byte", () => {
    expect(new HelloParser().feed(Buffer.from("GET / HTTP/1.1\r\n"))).toMatchObject({ state: "invalid" });
    expect(new ReplyParser().feed(Buffer.from("S"))).toMatchObject({ state: "invalid" });
  });

  test("a name length of zero or above the limit is invalid", () => {
    const zero = encodeHello("x");
    zero.writeUInt16BE(0, 8);
    expect(new HelloParser().feed(zero)).toMatchObject({ state: "invalid" });
    const huge = encodeHello("x");
    huge.writeUInt16BE(HANDSHAKE.maxNameBytes + 1, 8);
    expect(new HelloParser().feed(huge)).toMatchObject({ state: "invalid" });
  });

  test("fuzz: random bytes never throw, and never parse as more than they hold", () => {
    for (let i = 0; i < 5000; i++) {
      const parser = i % 2 === 0 ? new HelloParser() : new ReplyParser();
      // Half the inputs start with the magic so the parser gets past the first check.
      const body = randomBytes(Math.floor(Math.random() * 64));
      const input = i % 4 < 2 ? Buffer.concat([HANDSHAKE.magic, body]) : body;
      let result: ReturnType<HelloParser["feed"]> | ReturnType<ReplyParser["feed"]> = { state: "more" };
      for (let at = 0; at < input.length && result.state === "more"; ) {
        const step = 1 + Math.floor(Math.random() * 8);
        result = parser.feed(input.subarray(at, at + step));
        at += step;
      }
      expect(["more", "done", "invalid"]).toContain(result.state);
      if (result.state === "done") expect(result.rest.length).toBeLessThanOrEqual(input.length);
    }
  });
});

describe("channel names in addresses (for open-channel list)", () => {
  test("unescapeName reverses escapeName, and refuses what escapeName never makes", () => {
    for (const name of ["jobs", "my app/1", "ünïcode ✓", "a%b", "x".repeat(300), "\u0000heir"]) {
      expect(unescapeName(escapeName(name))).toBe(name);
    }
    expect(unescapeName("a b")).toBeUndefined();
    expect(unescapeName("%zz")).toBeUndefined();
    expect(unescapeName("%61")).toBeUndefined(); // "a" is never escaped
  });

  test("channelsFromNames keeps channels, leaves out heirs' standby addresses and other files", () => {
    const files = [
      "c.jobs.sock",
      "c.jobs%00heir.sock",
      `h.${"a".repeat(32)}.sock`,
      "c.jobs.port",
      "secret",
      "c.bad name.sock",
      "c.my%20app.sock",
    ];
    expect(channelsFromNames(files, ".sock", (f) => `/d/${f}`)).toEqual([
      { name: "jobs", address: "/d/c.jobs.sock" },
      { name: "my app", address: "/d/c.my%20app.sock" },
      { name: undefined, address: `/d/h.${"a".repeat(32)}.sock` },
    ]);
  });
});

describe("status body", () => {
  test("round trip, in pieces, with what follows left over", () => {
    const body = encodeStatusBody({ pid: 42, channel: "jobs" });
    const parser = new StatusBodyParser();
    expect(parser.feed(body.subarray(0, 3)).state).toBe("more");
    const result = parser.feed(Buffer.concat([body.subarray(3), Buffer.from("x")]));
    expect(result).toEqual({ state: "done", value: { pid: 42, channel: "jobs" }, rest: Buffer.from("x") });
  });

  test("a header claiming more than the limit, or a body that is not JSON, is invalid", () => {
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(HANDSHAKE.maxStatusBytes + 1);
    expect(new StatusBodyParser().feed(huge).state).toBe("invalid");
    const notJson = Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from("{{{")]);
    expect(new StatusBodyParser().feed(notJson).state).toBe("invalid");
  });
});
