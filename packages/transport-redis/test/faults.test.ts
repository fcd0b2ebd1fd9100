import * as net from "node:net";
import { encodeHello, newNonce } from "@open-channel/core";
import { redisTransport } from "@open-channel/transport-redis";
import { asOtherUser, describeWithRedis, freePort, Members, servingOverlaps, sleep, uniqueChannel, useRedisServer } from "./helpers";

const SECRET = "a secret of the test fleet, 32 bytes";

describeWithRedis("the Redis transport under faults (real redis-server, forked members)", () => {
  const redis = useRedisServer();
  let members: Members | undefined;

  afterEach(async () => {
    await members?.stop();
    members = undefined;
  });

  const start = async (label: string, count: number, env: Record<string, string> = {}) => {
    const channel = uniqueChannel(label);
    members = new Members({ OC_REDIS_PORT: String(redis.server.port), OC_CHANNEL: channel, OC_SECRET: SECRET, ...env });
    const pids = await members.fork(count);
    const host = await members.waitFor(() => members?.oneHost(0), "one host");
    return { channel, pids, host, m: members };
  };

  test("SIGKILL of the host: a survivor replaces its record at once, 3 times in a row, epochs growing", async () => {
    // A long lease: only the compare-and-replace of a refused host's record can make this quick.
    const { channel, host: first, m } = await start("kill", 4, { OC_TTL_MS: "10000" });
    let host = first;
    let epoch = Number((await redis.client.get(`open-channel:{${channel}}:host`))?.split(" ")[0]);
    expect(epoch).toBeGreaterThanOrEqual(1);
    for (let round = 0; round < 3; round++) {
      const since = m.reports.length;
      const killedAt = performance.timeOrigin + performance.now();
      m.kill(host);
      const next = await m.waitFor(() => m.oneHost(since), `one host after killing ${host}`, 8000);
      const hosting = m.reports.slice(since).find((r) => r.type === "hosting" && r.pid === next);
      expect(hosting?.epoch).toBeGreaterThan(epoch);
      // Far below the 10 s lease: nobody waited for it to expire.
      expect((hosting?.at ?? Number.POSITIVE_INFINITY) - killedAt).toBeLessThan(5000);
      epoch = hosting?.epoch as number;
      host = next;
    }
    expect(Number((await redis.client.get(`open-channel:{${channel}}:host`))?.split(" ")[0])).toBe(epoch);
  });

  test("SIGSTOP of the host past its lease: another host takes over, the paused one serves nobody when it wakes and steps down", async () => {
    for (let round = 0; round < 2; round++) {
      const { host, pids, m } = await start(`pause${round}`, 3, { OC_TTL_MS: "800" });
      const others = pids.filter((pid) => pid !== host);
      // Paused while idle (no bytes under way): what it serves after waking can only be what came in while it slept.
      await sleep(50);
      const since = m.reports.length;
      m.signal(host, "SIGSTOP");
      // Its members write into its connections while it sleeps, until they see its lease end.
      for (const wait of [0, 100, 300]) {
        await sleep(wait);
        for (const pid of others) m.send(pid, { cmd: "write", line: `while paused ${wait}` });
      }
      const next = await m.waitFor(() => {
        const r = m.reports.slice(since).find((x) => x.type === "hosting" && x.pid !== host);
        return r?.pid;
      }, "a new host while the old one is paused");
      await sleep(500);
      const wokeAt = m.reports.length;
      m.signal(host, "SIGCONT");
      // It finds its lease lost and joins the new host as a member.
      await m.waitFor(() => m.last(host, "lease-lost", since), "the paused host to find its lease lost");
      await m.waitFor(() => m.last(host, "connect", wokeAt)?.hostPid === next, "the paused host to join the new one");
      await sleep(300);
      expect(servingOverlaps(m.reports)).toEqual([]);
      // Nothing reached its listener after its deadline, in particular not the bytes written while it slept.
      expect(m.reports.filter((r) => r.type === "received" && r.held === false)).toEqual([]);
      expect(m.reports.slice(since).filter((r) => r.type === "received" && r.pid === host)).toEqual([]);
      await m.stop();
    }
  });

  test("Redis restarted empty: never two serving, and the next host's epoch is still above every epoch seen", async () => {
    const { channel, m } = await start("restart", 5, { OC_TTL_MS: "4000", OC_WRITE_MS: "10" });
    const key = `open-channel:{${channel}}:host`;
    const before = Number((await redis.client.get(key))?.split(" ")[0]);
    const since = m.reports.length;
    await redis.server.restart();
    const next = await m.waitFor(() => m.reports.slice(since).find((r) => r.type === "hosting"), "a host after the restart");
    expect(next.epoch).toBeGreaterThan(before);
    await m.waitFor(() => m.oneHost(since), "every member on one host after the restart");
    expect(Number((await redis.client.get(key))?.split(" ")[0])).toBeGreaterThan(before);
    // The old host may serve until its next renewal finds the key gone; the new one waited for that.
    expect(servingOverlaps(m.reports)).toEqual([]);
  });

  test("the keys lost while members write (FLUSHALL, as a failover to a lagging replica): never two serving", async () => {
    for (let round = 0; round < 2; round++) {
      const { m } = await start(`flushed${round}`, 5, { OC_TTL_MS: "4000", OC_WRITE_MS: "10" });
      const since = m.reports.length;
      await sleep(300 + Math.random() * 1000);
      await redis.client.flushall();
      await m.waitFor(() => m.reports.slice(since).find((r) => r.type === "hosting"), "a host after the flush", 15000);
      await m.waitFor(() => m.oneHost(since), "every member on one host after the flush", 15000);
      expect(servingOverlaps(m.reports)).toEqual([]);
      await m.stop();
    }
  });

  test("the keys lost, and the host that found the counter behind dies while it waits: its replacement waits out the same window", async () => {
    const ttlMs = 1000;
    const channel = uniqueChannel("window");
    const old = redisTransport({ client: redis.client, secret: SECRET, ttlMs });
    const servers: net.Server[] = [];
    const server = () => {
      const s = net.createServer();
      servers.push(s);
      return s;
    };
    try {
      const first = await old.listen(channel, server());
      expect(first.epoch).toBeGreaterThanOrEqual(1);
      // A process that saw that epoch (it connected) claims the key once Redis lost it: the counter is behind, it waits.
      const floored = redisTransport({ client: redis.client, secret: SECRET, ttlMs });
      const member = new net.Socket().on("error", () => {});
      await floored.connect(channel, member);
      member.destroy();
      await redis.client.flushall();
      const flooredServer = server();
      const claimedAt = performance.now();
      void floored.listen(channel, flooredServer).catch(() => undefined);
      await sleep(100);
      // It dies before serving (its port refuses): a process that never saw the old epoch replaces it.
      flooredServer.close();
      const next = await redisTransport({ client: redis.client, secret: SECRET, ttlMs }).reclaim(channel, server());
      expect(next).not.toBe(false);
      expect((next as { epoch: number }).epoch).toBeGreaterThan(first.epoch + 1);
      // The old host may serve until 0.9 x ttl after its last renewal, before the flush.
      expect(performance.now() - claimedAt).toBeGreaterThanOrEqual(0.9 * ttlMs);
    } finally {
      for (const s of servers) s.close();
    }
  });

  test("a fixed port: the host killed, a member on another address with the same port hosts; its heir stands by on a free port", async () => {
    const port = await freePort();
    const channel = uniqueChannel("fixed");
    const m = new Members({
      OC_REDIS_PORT: String(redis.server.port),
      OC_CHANNEL: channel,
      OC_SECRET: SECRET,
      OC_TTL_MS: "10000",
      OC_PORT: String(port),
    });
    members = m;
    const [first] = await m.fork(1, { OC_HOST: "127.0.0.1" });
    await m.waitFor(() => m.last(first, "hosting"), "the first host");
    // Two members of one "machine": only one of them can have the fixed port.
    await m.fork(2, { OC_HOST: "127.0.0.2" });
    await m.waitFor(() => m.oneHost(0) === first, "everyone on the first host");
    await sleep(500); // an heir chosen
    const since = m.reports.length;
    m.kill(first);
    const next = await m.waitFor(() => m.oneHost(since), "a new host on the fixed port", 5000);
    expect(m.reports.slice(since).find((r) => r.type === "hosting" && r.pid === next)).toBeDefined();
    expect((await redis.client.get(`open-channel:{${channel}}:host`))?.split(" ").slice(1, 3)).toEqual(["127.0.0.2", String(port)]);
  });

  test("a fixed port on one machine, the keys lost (FLUSHALL): the channel has a host again", async () => {
    const port = await freePort();
    const { channel, m } = await start("flush", 2, { OC_TTL_MS: "1000", OC_PORT: String(port) });
    const since = m.reports.length;
    await redis.client.flushall();
    await m.waitFor(() => m.reports.slice(since).find((r) => r.type === "hosting"), "a host after the flush", 10000);
    await m.waitFor(() => m.oneHost(since), "both on that host", 10000);
    expect((await redis.client.get(`open-channel:{${channel}}:host`))?.split(" ")[2]).toBe(String(port));
  });

  (process.getuid?.() === 0 ? test : test.skip)(
    "another OS user who finds the host's port (/proc/net/tcp) and connects never reaches the listener nor unseats the host",
    async () => {
      const { channel, host, m } = await start("otheruid", 2, { OC_TTL_MS: "1000" });
      const key = `open-channel:{${channel}}:host`;
      const record = await redis.client.get(key);
      const [, address, port] = (record as string).split(" ");
      const since = m.reports.length;
      // As uid 40103, no secret and no Redis access: a hello without a proof, one with a nonce and
      // a forged proof, and raw bytes, each followed by a line the listener would report.
      const line = Buffer.from("intruder\n");
      const payloads = [
        Buffer.concat([encodeHello(channel), line]),
        Buffer.concat([encodeHello(channel, newNonce()), Buffer.alloc(32, 7), line]),
        line,
      ].map((b) => b.toString("hex"));
      const opens = payloads.map(
        (hex) => `() => net.connect(${port}, ${JSON.stringify(address)}, function () { this.write(Buffer.from("${hex}", "hex")); })`,
      );
      expect(asOtherUser(`[${opens.join(",")}]`)).toBe(0);
      await sleep(300);
      expect(m.reports.slice(since).filter((x) => x.type === "received" && x.line === "intruder")).toEqual([]);
      expect(m.last(host, "lease-lost", since)).toBeUndefined();
      expect(await redis.client.get(key)).toBe(record);
    },
  );

  test("a process with another secret never reaches the listener, and never takes the channel over", async () => {
    const { channel, host, m } = await start("secret", 2, { OC_TTL_MS: "1000" });
    const key = `open-channel:{${channel}}:host`;
    const record = await redis.client.get(key);
    const since = m.reports.length;
    const [intruder] = await m.fork(1, { OC_SECRET: "another secret entirely, 32 bytes" });
    m.send(intruder, { cmd: "write", line: "intruder" });
    await sleep(3000);
    expect(m.reports.slice(since).filter((r) => r.type === "received" && r.line === "intruder")).toEqual([]);
    expect(m.last(intruder, "connect", since)).toBeUndefined();
    expect(m.last(host, "lease-lost", since)).toBeUndefined();
    expect(await redis.client.get(key)).toBe(record);
  });
});
