import { parseRecord, RedisTransport, redisTransport } from "@open-channel/transport-redis";
import { RedisLease } from "../src/lease";
import { commandOf, runCommand } from "../src/redis-client";
import { tlsFixture } from "./helpers";

const client = async (): Promise<unknown> => null;
const secret = "sixteen bytes at least";

describe("redisTransport options", () => {
  test("defaults: loopback, any port, the default prefix, a 5 s lease polled every 500 ms", () => {
    const t = redisTransport({ client, secret });
    expect(t).toBeInstanceOf(RedisTransport);
    expect([t.name, t.host, t.port, t.advertise, t.prefix, t.ttlMs, t.pollMs]).toEqual([
      "redis",
      "127.0.0.1",
      0,
      "127.0.0.1",
      "open-channel:",
      5000,
      500,
    ]);
    expect(redisTransport({ client, secret, ttlMs: 1000 }).pollMs).toBe(250);
    expect([t.hostKey("jobs"), t.epochKey("jobs"), t.dataLossKey("jobs")]).toEqual([
      "open-channel:{jobs}:host",
      "open-channel:{jobs}:epoch",
      "open-channel:{jobs}:data-lost",
    ]);
  });

  test("a wildcard host needs an address to advertise; one is published as given", () => {
    expect(() => redisTransport({ client, secret, host: "0.0.0.0" })).toThrow(expect.objectContaining({ code: "ERR_INVALID_ARG_VALUE" }));
    expect(() => redisTransport({ client, secret, host: "::" })).toThrow(/advertise/);
    expect(redisTransport({ client, secret, host: "0.0.0.0", advertise: "10.0.0.5" }).advertise).toBe("10.0.0.5");
    expect(redisTransport({ client, secret, host: "::1" }).advertise).toBe("::1");
  });

  test.each([
    [{ secret: "too short" }, "ERR_INVALID_ARG_VALUE", /options.secret/],
    [{ secret: 42 }, "ERR_INVALID_ARG_VALUE", /options.secret/],
    [{ host: "localhost" }, "ERR_INVALID_ARG_VALUE", /options.host/],
    [{ port: 65536 }, "ERR_OUT_OF_RANGE", /options.port/],
    [{ port: 1.5 }, "ERR_OUT_OF_RANGE", /options.port/],
    [{ advertise: "0.0.0.0" }, "ERR_INVALID_ARG_VALUE", /options.advertise/],
    [{ prefix: 7 }, "ERR_INVALID_ARG_TYPE", /options.prefix/],
    [{ ttlMs: 199 }, "ERR_OUT_OF_RANGE", /options.ttlMs/],
    [{ pollMs: 5 }, "ERR_OUT_OF_RANGE", /options.pollMs/],
    [{ client: {} }, "ERR_INVALID_ARG_TYPE", /options.client/],
  ])("%j is refused with %s", (change, code, message) => {
    const options = { client, secret, ...change } as unknown as Parameters<typeof redisTransport>[0];
    expect(() => redisTransport(options)).toThrow(expect.objectContaining({ code, message: expect.stringMatching(message) }));
  });

  test("each channel gets its own proof key, the same in every process with the same secret", () => {
    const a = redisTransport({ client, secret });
    const b = redisTransport({ client, secret: Buffer.from(secret) });
    const key = (t: RedisTransport, channel: string): Buffer => t.secret(channel) as Buffer;
    expect(key(a, "jobs").equals(key(b, "jobs"))).toBe(true);
    expect(key(a, "jobs").equals(key(a, "jobs2"))).toBe(false);
    expect(key(a, "jobs").equals(key(redisTransport({ client, secret: `${secret}!` }), "jobs"))).toBe(false);
  });

  test("the secret is optional only with mutual TLS: the certificates then let processes in, with no proof", () => {
    const tls = tlsFixture();
    expect(redisTransport({ client, tls }).secret("jobs")).toBeUndefined();
    expect(redisTransport({ client, tls, secret }).secret("jobs")).toHaveLength(32);
    for (const options of [{ client }, { client, tls: { ...tls, mutual: false } }, { client, tls, secret: "too short" }]) {
      expect(() => redisTransport(options)).toThrow(expect.objectContaining({ code: "ERR_INVALID_ARG_VALUE" }));
    }
  });

  test("TLS options are checked at once: missing PEM, a bad mutual or servername, a key that is not the certificate's", () => {
    const tls = tlsFixture();
    expect(redisTransport({ client, secret, tls }).secure).toBeDefined();
    expect(redisTransport({ client, secret }).secure).toBeUndefined();
    for (const bad of [
      { ...tls, ca: undefined },
      { ...tls, cert: 7 },
      { ...tls, key: [] },
      { ...tls, mutual: "yes" },
      { ...tls, servername: "" },
    ]) {
      expect(() => redisTransport({ client, secret, tls: bad as never })).toThrow(
        expect.objectContaining({ code: "ERR_INVALID_ARG_TYPE" }),
      );
    }
    expect(() => redisTransport({ client, secret, tls: { ...tls, key: tlsFixture("rogue").key } })).toThrow(/key values mismatch/);
  });
});

describe("host records", () => {
  test("a record reads back; anything else in the key is no record", () => {
    expect(parseRecord("7 10.0.0.5 41234 4242 9f86d081884c7d65")).toEqual({
      epoch: 7,
      host: "10.0.0.5",
      port: 41234,
      pid: 4242,
      id: "9f86d081884c7d65",
    });
    expect(parseRecord("1 ::1 1 2 x")?.host).toBe("::1");
    for (const raw of [
      undefined,
      null,
      "",
      "7 10.0.0.5 41234 4242",
      "7 10.0.0.5 41234 4242 id extra",
      "0 10.0.0.5 41234 4242 id",
      "x 10.0.0.5 41234 4242 id",
      "9007199254740992 10.0.0.5 41234 4242 id",
      "7 example.com 41234 4242 id",
      "7 10.0.0.5 0 4242 id",
      "7 10.0.0.5 65536 4242 id",
    ]) {
      expect([raw, parseRecord(raw)]).toEqual([raw, undefined]);
    }
  });
});

describe("the user's Redis client", () => {
  test("ioredis (call), node-redis (sendCommand) and a plain function all run the same command", async () => {
    const seen: unknown[] = [];
    const ioredis = {
      call(this: unknown, ...args: string[]) {
        seen.push(["call", this === ioredis, args]);
        return Promise.resolve("a");
      },
      sendCommand() {
        throw new Error("ioredis's sendCommand takes a Command object: never used");
      },
    };
    const nodeRedis = {
      sendCommand(this: unknown, args: string[]) {
        seen.push(["sendCommand", this === nodeRedis, args]);
        return Promise.resolve("b");
      },
    };
    const fn = (args: string[]) => {
      seen.push(["function", true, args]);
      return Promise.resolve("c");
    };
    const replies = [];
    for (const c of [ioredis, nodeRedis, fn]) replies.push(await commandOf(c)(["GET", "k"]));
    expect(replies).toEqual(["a", "b", "c"]);
    expect(seen).toEqual([
      ["call", true, ["GET", "k"]],
      ["sendCommand", true, ["GET", "k"]],
      ["function", true, ["GET", "k"]],
    ]);
  });

  test("a command with no reply in time fails with ETIMEDOUT; a refusal to run it with EACCES; a connection error with EREDIS; others as they are", async () => {
    await expect(runCommand(() => new Promise(() => undefined), ["GET", "k"], 50)).rejects.toMatchObject({ code: "ETIMEDOUT" });
    for (const refusal of [
      "NOAUTH Authentication required.",
      "WRONGPASS invalid username-password pair",
      "NOPERM this user has no permissions",
    ]) {
      await expect(runCommand(() => Promise.reject(new Error(refusal)), ["EVAL"], 1000)).rejects.toMatchObject({ code: "EACCES" });
    }
    // Redis's own connection refused: not the channel's "no host" (nor a fatal code).
    const refused = Object.assign(new Error("connect ECONNREFUSED 10.0.0.9:6379"), { code: "ECONNREFUSED" });
    await expect(runCommand(() => Promise.reject(refused), ["GET"], 1000)).rejects.toMatchObject({ code: "EREDIS", cause: refused });
    const other = new Error("LOADING Redis is loading the dataset in memory");
    await expect(runCommand(() => Promise.reject(other), ["GET"], 1000)).rejects.toBe(other);
    // A client that throws instead of rejecting is the same as one that rejects.
    await expect(
      runCommand(
        () => {
          throw new Error("NOAUTH");
        },
        ["GET"],
        1000,
      ),
    ).rejects.toMatchObject({ code: "EACCES" });
    await expect(runCommand(() => Promise.resolve("OK"), ["GET"], 1000)).resolves.toBe("OK");
  });
});

describe("the lease's local deadline", () => {
  const renewed = (): Promise<unknown> => Promise.resolve(1);

  test("held until 0.9 x ttl on both clocks; a wall clock past the deadline (a machine that slept) ends it at once", async () => {
    const lease = new RedisLease(renewed, "k", "3 127.0.0.1 1 2 id", 10000, performance.now());
    const lost: string[] = [];
    lease.onLost((reason) => lost.push(reason));
    expect([lease.epoch, lease.held()]).toEqual([3, true]);
    const now = Date.now();
    const clock = jest.spyOn(Date, "now").mockReturnValue(now + 9100);
    try {
      expect(lease.held()).toBe(false);
      await new Promise((r) => setImmediate(r));
      expect(lost).toEqual(["not renewed within 9000 ms"]);
      // Lost for good: the wall clock going back changes nothing.
      clock.mockReturnValue(now);
      expect(lease.held()).toBe(false);
    } finally {
      clock.mockRestore();
      lease.release();
    }
  });

  test("the monotonic deadline counts from when the claim was sent", () => {
    const late = new RedisLease(renewed, "k", "1 127.0.0.1 1 2 id", 1000, performance.now() - 950);
    expect(late.held()).toBe(false);
  });
});
