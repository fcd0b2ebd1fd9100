import { randomBytes } from "node:crypto";
import * as net from "node:net";
import {
  channelsFromNames,
  computeProof,
  encodeHello,
  encodeReply,
  encodeStatusBody,
  endpointBinding,
  escapeName,
  HANDSHAKE,
  HelloParser,
  MemberHandshake,
  newNonce,
  ProofParser,
  type ProofTranscript,
  proofsEqual,
  ReplyParser,
  StatusBodyParser,
  unescapeName,
} from "@open-channel/core";

/** A complete exchange to prove, with `change` applied. */
const base = { memberNonce: newNonce(), hostNonce: newNonce(), serverId: randomBytes(8) };
function transcript(change: Partial<ProofTranscript> = {}): ProofTranscript {
  return {
    kind: HANDSHAKE.kindJoin,
    name: "jobs",
    status: HANDSHAKE.statusOk,
    hostPid: 4242,
    binding: "127.0.0.1:50000>127.0.0.1:40000",
    ...base,
    ...change,
  };
}

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

  test("a reply may carry the host's lease epoch (after the fixed part, before the proof), in any split", () => {
    const hostNonce = newNonce();
    const hostProof = randomBytes(HANDSHAKE.proofLength);
    const id = randomBytes(8);
    const wire = Buffer.concat([encodeReply(0, 7, id, { hostNonce, hostProof }, 2 ** 40 + 3), Buffer.from("after")]);
    for (let cut = 1; cut < wire.length; cut++) {
      const parser = new ReplyParser();
      const first = parser.feed(wire.subarray(0, cut));
      const result = first.state === "done" ? first : parser.feed(wire.subarray(cut));
      expect(result).toMatchObject({ state: "done", value: { epoch: 2 ** 40 + 3, hostNonce, hostProof, hostPid: 7 } });
    }
    expect(new ReplyParser().feed(encodeReply(0, 7, id))).toMatchObject({ state: "done", value: { hostPid: 7 } });
    expect((new ReplyParser().feed(encodeReply(0, 7, id)) as { value: { epoch?: number } }).value.epoch).toBeUndefined();
    // Above 2^53 - 1 it could not be compared exactly: invalid.
    const huge = encodeReply(0, 7, id, undefined, 1);
    huge.writeBigUInt64BE(2n ** 60n, HANDSHAKE.replyLength);
    expect(new ReplyParser().feed(huge)).toMatchObject({ state: "invalid" });
  });

  test("with a secret, a hello carries a nonce and the reply a nonce and the host's proof", () => {
    const memberNonce = newNonce();
    const hello = new HelloParser().feed(encodeHello("jobs", memberNonce));
    expect(hello).toMatchObject({ state: "done", value: { name: "jobs", flags: HANDSHAKE.flagProof | HANDSHAKE.flagBound, memberNonce } });
    const hostNonce = newNonce();
    const hostProof = computeProof(randomBytes(32), "host", transcript({ memberNonce, hostNonce }));
    const reply = new ReplyParser().feed(encodeReply(0, 1, randomBytes(8), { hostNonce, hostProof }));
    expect(reply).toMatchObject({ state: "done", value: { hostNonce, hostProof, flags: HANDSHAKE.flagProof | HANDSHAKE.flagBound } });
  });

  test("proofs depend on the secret, the role and every part of the exchange, the endpoints included", () => {
    const secret = randomBytes(32);
    const base = transcript();
    const proof = computeProof(secret, "host", base);
    expect(proofsEqual(proof, computeProof(secret, "host", { ...base }))).toBe(true);
    expect(proofsEqual(proof, computeProof(randomBytes(32), "host", base))).toBe(false);
    expect(proofsEqual(proof, computeProof(secret, "member", base))).toBe(false);
    const changes: Partial<ProofTranscript>[] = [
      { kind: HANDSHAKE.kindProbe },
      { name: "jobs2" },
      { memberNonce: base.hostNonce, hostNonce: base.memberNonce },
      { status: HANDSHAKE.statusNotHost },
      { hostPid: base.hostPid + 1 },
      { serverId: randomBytes(8) },
      { binding: "127.0.0.1:40001>127.0.0.1:40000" },
      { binding: "" },
      { epoch: 1 },
    ];
    for (const change of changes) expect(proofsEqual(proof, computeProof(secret, "host", { ...base, ...change }))).toBe(false);
    expect(proofsEqual(proof, proof.subarray(0, 16))).toBe(false);
  });

  test("both ends of a TCP connection bind the same endpoints; the two legs of a relay do not", async () => {
    const accepted: net.Socket[] = [];
    const server = net.createServer((s) => accepted.push(s));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as net.AddressInfo;
    const connect = (): Promise<net.Socket> =>
      new Promise((resolve) => {
        const s = net.connect(port, "127.0.0.1", () => resolve(s));
      });
    try {
      const [a, b] = [await connect(), await connect()];
      while (accepted.length < 2) await new Promise((r) => setTimeout(r, 1));
      expect(endpointBinding(a, "member")).toMatch(/^127\.0\.0\.1:\d+>127\.0\.0\.1:\d+$/);
      expect(endpointBinding(a, "member")).toBe(endpointBinding(accepted[0], "host"));
      expect(endpointBinding(b, "member")).toBe(endpointBinding(accepted[1], "host"));
      // A relay is two connections: what the member sees of one is not what the host sees of the other.
      expect(endpointBinding(a, "member")).not.toBe(endpointBinding(accepted[1], "host"));
      for (const s of [a, b, ...accepted]) s.destroy();
    } finally {
      server.close();
    }
  });

  describe("the member's side", () => {
    const secret = randomBytes(32);
    const direct = "127.0.0.1:50000>127.0.0.1:40000";
    /**
     * A host's reply to `hello`, with its proof over the exchange and `proved` changed in it, and
     * `sent` changed in the bytes after the proof (a forger's edits).
     */
    function replyTo(hello: Buffer, proved: Partial<ProofTranscript> = {}, sent: { flags?: number; hostPid?: number } = {}): Buffer {
      const parsed = new HelloParser().feed(hello);
      if (parsed.state !== "done" || parsed.value.memberNonce === undefined) throw new Error("no hello");
      const hostNonce = newNonce();
      const t = transcript({
        kind: parsed.value.kind,
        name: parsed.value.name,
        memberNonce: parsed.value.memberNonce,
        hostNonce,
        binding: direct,
      });
      const reply = encodeReply(t.status, t.hostPid, t.serverId, {
        hostNonce,
        hostProof: computeProof(secret, "host", { ...t, ...proved }),
      });
      if (sent.flags !== undefined) reply[6] = sent.flags;
      if (sent.hostPid !== undefined) reply.writeUInt32BE(sent.hostPid, 8);
      return reply;
    }
    const socketWith = (local: number, remote: number): net.Socket =>
      ({ localAddress: "127.0.0.1", localPort: local, remoteAddress: "127.0.0.1", remotePort: remote }) as unknown as net.Socket;

    test("accepts its host's reply on this connection and answers with its own proof", () => {
      const member = new MemberHandshake("jobs", HANDSHAKE.kindJoin, secret);
      const hello = member.hello(socketWith(50000, 40000));
      const step = member.feed(Buffer.concat([replyTo(hello), Buffer.from("rest")]));
      expect(step).toMatchObject({ state: "accepted", rest: Buffer.from("rest"), reply: { hostPid: 4242 } });
      expect(step.state === "accepted" && step.answer?.length).toBe(HANDSHAKE.proofLength);
    });

    test("refuses a proof made for another connection (a relay), an unbound one, a probe's, or a forged pid", () => {
      const cases: [string, Partial<ProofTranscript>, { flags?: number; hostPid?: number }][] = [
        ["relayed", { binding: "127.0.0.1:50001>127.0.0.1:40000" }, {}],
        ["unbound", { binding: "" }, { flags: HANDSHAKE.flagProof }],
        ["probe's", { kind: HANDSHAKE.kindProbe }, {}],
        ["forged pid", {}, { hostPid: 666 }],
      ];
      for (const [why, proved, sent] of cases) {
        const member = new MemberHandshake("jobs", HANDSHAKE.kindJoin, secret);
        const step = member.feed(replyTo(member.hello(socketWith(50000, 40000)), proved, sent));
        expect([why, step]).toMatchObject([
          why,
          { state: "stranger", reason: expect.stringMatching(/could not prove it is our host|does not cover the connection/) },
        ]);
      }
    });

    test("refuses a reply that says it is unbound even when its proof holds (no downgrade)", () => {
      const member = new MemberHandshake("jobs", HANDSHAKE.kindJoin, secret);
      const step = member.feed(replyTo(member.hello(socketWith(50000, 40000)), {}, { flags: HANDSHAKE.flagProof }));
      expect(step).toMatchObject({ state: "stranger", reason: expect.stringMatching(/does not cover the connection/) });
    });

    test("without a secret a plain ok is accepted; with one, an ok without a proof is a stranger", () => {
      const plain = new MemberHandshake("jobs", HANDSHAKE.kindJoin, undefined);
      expect(new HelloParser().feed(plain.hello(socketWith(50000, 40000)))).toMatchObject({ state: "done", value: { flags: 0 } });
      const ok = encodeReply(HANDSHAKE.statusOk, 9, randomBytes(8));
      expect(plain.feed(ok)).toMatchObject({ state: "accepted", answer: undefined, reply: { hostPid: 9 } });
      const withSecret = new MemberHandshake("jobs", HANDSHAKE.kindJoin, secret);
      withSecret.hello(socketWith(50000, 40000));
      expect(withSecret.feed(ok)).toEqual({ state: "stranger", reason: "the peer sent no proof that it is our host" });
    });

    test("a probe never proves itself in turn; a refusal is no acceptance", () => {
      const probe = new MemberHandshake("jobs", HANDSHAKE.kindProbe, secret);
      const hello = probe.hello(socketWith(50000, 40000));
      expect(probe.feed(replyTo(hello))).toMatchObject({ state: "accepted", answer: undefined });
      const refused = new MemberHandshake("jobs", HANDSHAKE.kindJoin, undefined);
      refused.hello(socketWith(50000, 40000));
      expect(refused.feed(encodeReply(HANDSHAKE.statusWrongChannel, 1, randomBytes(8)))).toMatchObject({ state: "refused" });
    });
  });

  test("a stranger's bytes are rejected at the first wrong byte", () => {
    expect(new HelloParser().feed(Buffer.from("GET / HTTP/1.1\r\n"))).toMatchObject({ state: "invalid" });
    expect(new ReplyParser().feed(Buffer.from("S"))).toMatchObject({ state: "invalid" });
  });

  test("a name length of zero or above the limit is invalid, from the header alone", () => {
    const zero = encodeHello("x").subarray(0, HANDSHAKE.helloHeaderLength);
    zero.writeUInt16BE(0, 8);
    expect(new HelloParser().feed(zero)).toEqual({ state: "invalid", reason: "name length 0 out of range" });
    const huge = encodeHello("x").subarray(0, HANDSHAKE.helloHeaderLength);
    huge.writeUInt16BE(HANDSHAKE.maxNameBytes + 1, 8);
    expect(new HelloParser().feed(huge)).toEqual({ state: "invalid", reason: `name length ${HANDSHAKE.maxNameBytes + 1} out of range` });
    // The limit itself is a valid name.
    const longest = "n".repeat(HANDSHAKE.maxNameBytes);
    expect(new HelloParser().feed(encodeHello(longest))).toMatchObject({ state: "done", value: { name: longest } });
  });

  test("a reply with its proof, a member's proof and a status body survive any split, and leave what follows untouched", () => {
    const reply = encodeReply(HANDSHAKE.statusOk, 77, randomBytes(8), { hostNonce: newNonce(), hostProof: randomBytes(32) });
    const proof = randomBytes(HANDSHAKE.proofLength);
    const body = encodeStatusBody({ pid: 77, members: 3 });
    const cases: [string, () => ReplyParser | ProofParser | StatusBodyParser, Buffer][] = [
      ["reply", () => new ReplyParser(), reply],
      ["proof", () => new ProofParser(), proof],
      ["status body", () => new StatusBodyParser(), body],
    ];
    for (const [what, make, message] of cases) {
      const wire = Buffer.concat([message, Buffer.from("next")]);
      for (let cut = 0; cut < wire.length; cut++) {
        const parser = make();
        let result = parser.feed(wire.subarray(0, cut));
        let rest = wire.subarray(cut);
        if (result.state === "more") {
          // Fewer bytes than the message: never done, never invalid.
          expect([what, cut < message.length]).toEqual([what, true]);
          result = parser.feed(rest);
          rest = Buffer.alloc(0);
        }
        expect([what, result.state]).toEqual([what, "done"]);
        if (result.state === "done") expect(Buffer.concat([result.rest, rest]).toString()).toBe("next");
      }
    }
  });

  test("a reply of another protocol version is invalid, naming both versions", () => {
    const reply = encodeReply(HANDSHAKE.statusOk, 1, randomBytes(8));
    reply[4] = HANDSHAKE.version + 1;
    expect(new ReplyParser().feed(reply)).toEqual({
      state: "invalid",
      reason: `host speaks protocol version ${HANDSHAKE.version + 1}, this process ${HANDSHAKE.version}`,
    });
  });

  test("a status body up to its limit is read; one byte over, or not JSON, is invalid", () => {
    const at = (length: number): Buffer => {
      const json = Buffer.alloc(length, " ");
      json[0] = 0x30; // "0": JSON with trailing spaces
      const out = Buffer.alloc(4 + length);
      out.writeUInt32BE(length, 0);
      json.copy(out, 4);
      return out;
    };
    expect(new StatusBodyParser().feed(at(HANDSHAKE.maxStatusBytes))).toMatchObject({ state: "done", value: 0 });
    expect(new StatusBodyParser().feed(at(HANDSHAKE.maxStatusBytes + 1))).toEqual({
      state: "invalid",
      reason: `status body of ${HANDSHAKE.maxStatusBytes + 1} bytes is too large`,
    });
    const notJson = at(3);
    notJson.write("{x}", 4);
    expect(new StatusBodyParser().feed(notJson)).toEqual({ state: "invalid", reason: "status body is not JSON" });
  });

  test("endpoints bind as IPv4 whether a socket shows them mapped (::ffff:) or not; no ports, no binding", () => {
    const view = (local: string, localPort: number | undefined, remote: string, remotePort: number | undefined): net.Socket =>
      ({ localAddress: local, localPort, remoteAddress: remote, remotePort }) as unknown as net.Socket;
    expect(endpointBinding(view("::ffff:127.0.0.1", 5000, "::ffff:127.0.0.1", 4000), "member")).toBe("127.0.0.1:5000>127.0.0.1:4000");
    expect(endpointBinding(view("127.0.0.1", 4000, "::ffff:127.0.0.1", 5000), "host")).toBe("127.0.0.1:5000>127.0.0.1:4000");
    expect(endpointBinding(view("::1", 5000, "::1", 4000), "member")).toBe("::1:5000>::1:4000");
    expect(endpointBinding(view("", undefined, "", undefined), "member")).toBe("");
    expect(endpointBinding(view("127.0.0.1", 5000, "", undefined), "member")).toBe("");
    expect(endpointBinding(view("", undefined, "127.0.0.1", 4000), "member")).toBe("");
  });

  test("fuzz: random bytes never throw, and a parse takes exactly the bytes its header declares", () => {
    /** The length of the message at the start of `input`, read from its header as the protocol says. */
    const declared = (hello: boolean, input: Buffer): number | undefined => {
      const withProof = input.length > 6 && (input[6] & HANDSHAKE.flagProof) !== 0;
      const withEpoch = input.length > 6 && (input[6] & HANDSHAKE.flagEpoch) !== 0;
      if (!hello)
        return (
          HANDSHAKE.replyLength + (withEpoch ? HANDSHAKE.epochLength : 0) + (withProof ? HANDSHAKE.nonceLength + HANDSHAKE.proofLength : 0)
        );
      if (input.length < HANDSHAKE.helloHeaderLength) return undefined;
      return HANDSHAKE.helloHeaderLength + input.readUInt16BE(8) + (withProof ? HANDSHAKE.nonceLength : 0);
    };
    const seen = { more: 0, done: 0, invalid: 0 };
    for (let i = 0; i < 5000; i++) {
      const hello = i % 2 === 0;
      const parser = hello ? new HelloParser() : new ReplyParser();
      // Half the inputs start with a valid header (magic, version, a short name) to get past it.
      const body = randomBytes(Math.floor(Math.random() * 96));
      const header = Buffer.from([...HANDSHAKE.magic, HANDSHAKE.version, 1, body[0] ?? 0, 0, 0, 1 + ((body[1] ?? 0) % 40)]);
      const input = i % 4 < 2 ? Buffer.concat([header, body]) : body;
      let result: ReturnType<HelloParser["feed"]> | ReturnType<ReplyParser["feed"]> = { state: "more" };
      let fed = 0;
      while (fed < input.length && result.state === "more") {
        const step = 1 + Math.floor(Math.random() * 8);
        result = parser.feed(input.subarray(fed, fed + step));
        fed = Math.min(input.length, fed + step);
      }
      seen[result.state]++;
      const length = declared(hello, input);
      if (result.state === "done") {
        // Exactly the declared bytes taken; everything fed after them handed back untouched.
        expect(length).toBeDefined();
        expect(result.rest).toEqual(input.subarray(length as number, fed));
      } else if (result.state === "more") {
        expect(length === undefined || input.length < length).toBe(true);
      } else {
        expect(result.reason.length).toBeGreaterThan(0);
      }
    }
    // The inputs reached every outcome, so each branch above ran.
    expect(Math.min(seen.more, seen.done, seen.invalid)).toBeGreaterThan(100);
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
