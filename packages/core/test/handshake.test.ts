import { encodeHello, encodeReply, HANDSHAKE, HelloParser, ReplyParser } from "@open-channel/core";
import { randomBytes } from "node:crypto";

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
      expect(result.value).toEqual({ version: HANDSHAKE.version, kind: HANDSHAKE.kindJoin, name: "ünïcode channel ✓" });
      expect(Buffer.concat([result.rest, first.state === "done" ? wire.subarray(cut) : Buffer.alloc(0)]).toString()).toBe("user bytes");
    }
  });

  test("a reply carries status, host pid and server id", () => {
    const id = randomBytes(8);
    const result = new ReplyParser().feed(Buffer.concat([encodeReply(HANDSHAKE.statusOk, 4242, id), Buffer.from("x")]));
    expect(result).toEqual({ state: "done", value: { status: 0, hostPid: 4242, serverId: id }, rest: Buffer.from("x") });
  });

  test("a stranger's bytes are rejected at the first wrong byte", () => {
    expect(new HelloParser().feed(Buffer.from("GET / HTTP/1.1\r\n"))).toMatchObject({ state: "invalid" });
    expect(new ReplyParser().feed(Buffer.from("S"))).toMatchObject({ state: "invalid" });
  });

  test("a name length of zero or above the limit is invalid", () => {
    const zero = encodeHello("x");
    zero.writeUInt16BE(0, 6);
    expect(new HelloParser().feed(zero)).toMatchObject({ state: "invalid" });
    const huge = encodeHello("x");
    huge.writeUInt16BE(HANDSHAKE.maxNameBytes + 1, 6);
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
