import { spawn } from "node:child_process";
import * as path from "node:path";
import Redis from "ioredis";
import {
  describeWithMachines,
  type Lan,
  Members,
  newLan,
  RedisServer,
  type Report,
  servingOverlaps,
  sleep,
  TLS_DIR,
  uniqueChannel,
} from "./helpers";

const SECRET = "a secret of the test fleet, 32 bytes";
const PASSWORD = "fleet-redis-password-0123";
const TTL_MS = 1000;
/** How long after its lease can lapse a cut host must be replaced: a member's poll, a claim, a connect. */
const BOUND_MS = 1500;

// Plain TCP with the shared secret, and TLS with only the certificates (no secret).
const VARIANTS: [string, Record<string, string>][] = [
  ["plain TCP, a shared secret", { OC_SECRET: SECRET }],
  ["TLS, certificates only", { OC_TLS_DIR: TLS_DIR }],
];

describeWithMachines.each(VARIANTS)(
  "the Redis transport across machines (network namespaces, real redis-server): %s",
  (_variant, security) => {
    let lan: Lan;
    let redis: RedisServer;
    let client: Redis;
    let members: Members | undefined;

    beforeAll(async () => {
      lan = newLan(3);
      redis = await RedisServer.start({ bind: lan.gateway, password: PASSWORD });
      client = new Redis({ port: redis.port, host: "127.0.0.1", password: PASSWORD, maxRetriesPerRequest: null });
      client.on("error", () => {});
    });
    afterEach(async () => {
      await members?.stop();
      members = undefined;
      for (let i = 0; i < lan.count; i++) lan.restore(i);
    });
    afterAll(async () => {
      client?.disconnect();
      await redis?.stop();
      lan?.destroy();
    });

    /** One member on each machine, machine 0's first (it hosts). */
    const start = async (label: string, env: Record<string, string> = {}) => {
      const m = new Members({
        OC_REDIS_HOST: lan.gateway,
        OC_REDIS_PORT: String(redis.port),
        OC_REDIS_PASSWORD: PASSWORD,
        OC_CHANNEL: uniqueChannel(label),
        OC_TTL_MS: String(TTL_MS),
        ...security,
        ...env,
      });
      members = m;
      const pids: number[] = [];
      for (let i = 0; i < lan.count; i++) {
        const [pid] = await m.fork(1, { OC_HOST: lan.address(i) }, lan.netns(i));
        pids.push(pid);
        if (i === 0) await m.waitFor(() => m.last(pid, "hosting"), "machine 0 to host");
      }
      await m.waitFor(() => m.oneHost(0) === pids[0], "every machine on machine 0's host");
      return { m, pids, channel: m.env.OC_CHANNEL };
    };

    const hostingAfter = (reports: Report[], since: number, not: number) =>
      reports.slice(since).find((r) => r.type === "hosting" && r.pid !== not);

    test("the host's machine cut off (a blackhole): it stops serving before another machine hosts, within TTL + bound, and rejoins", async () => {
      for (let round = 0; round < 2; round++) {
        const { m, pids } = await start(`cut${round}`, { OC_WRITE_MS: "20" });
        const [old, ...others] = pids;
        await sleep(200);
        const since = m.reports.length;
        const cutAt = performance.timeOrigin + performance.now();
        lan.cut(0);
        const next = await m.waitFor(() => hostingAfter(m.reports, since, old), "a host on another machine", TTL_MS + BOUND_MS + 5000);
        expect(others).toContain(next.pid);
        expect(next.at - cutAt).toBeLessThan(TTL_MS + BOUND_MS);
        // Cut off from Redis too, the old host stopped on its own deadline, before the new epoch began.
        const lost = await m.waitFor(() => m.last(old, "lease-lost", since), "the cut host to stop serving");
        expect(lost.at).toBeLessThan(next.at);
        await m.waitFor(
          () => others.every((pid) => m.last(pid, "connect", since)?.hostPid === next.pid),
          "the other machines on the new host",
          5000,
        );
        expect(servingOverlaps(m.reports)).toEqual([]);
        expect(m.reports.filter((r) => r.type === "received" && r.held === false)).toEqual([]);
        // Its cable back: it finds the new host and joins it.
        const restoredAt = m.reports.length;
        lan.restore(0);
        await m.waitFor(() => m.last(old, "connect", restoredAt)?.hostPid === next.pid, "the cut machine to join the new host", 15000);
        await m.stop();
      }
    });

    test("messages: nothing a member sent is lost across the loss of the host's machine", async () => {
      const { m, pids } = await start("messages", { OC_MESSAGES: "1", OC_WRITE_MS: "10" });
      const [old] = pids;
      await sleep(300);
      const since = m.reports.length;
      lan.cut(0);
      await m.waitFor(() => hostingAfter(m.reports, since, old), "a host on another machine", TTL_MS + BOUND_MS + 5000);
      await sleep(300);
      lan.restore(0);
      await m.waitFor(() => m.oneHost(since) !== undefined, "every machine on one host again", 15000);
      for (const pid of pids) m.send(pid, { cmd: "stop-sending" });
      const sent = await m.waitFor(() => {
        const counts = pids.map((pid) => m.last(pid, "sent")?.count);
        return counts.every((c) => c !== undefined) ? (counts as number[]) : undefined;
      }, "every member's count");
      // Every message of every member (the cut machine's own too: it lived) reached a host's handler.
      const missing = () => {
        const received = new Set(m.reports.filter((r) => r.type === "received").map((r) => r.line));
        return pids.flatMap((pid, i) => Array.from({ length: sent[i] }, (_, k) => `${pid} ${k + 1}`).filter((line) => !received.has(line)));
      };
      await m.waitFor(() => missing().length === 0 || undefined, "every message at a host", 15000).catch(() => undefined);
      expect(missing()).toEqual([]);
      expect(sent.every((count) => count > 50)).toBe(true);
      expect(servingOverlaps(m.reports)).toEqual([]);
    });

    test("a process on another machine joins the live channel with only a Redis URL, its security config and the channel name", async () => {
      const { m, pids, channel } = await start("joiner");
      const url = `redis://:${PASSWORD}@${lan.gateway}:${redis.port}`;
      // What a user writes on the new machine, whole: the client from the URL, the transport, the channel.
      const script = `
      const fs = require("node:fs");
      const Redis = require("ioredis");
      const { openChannel } = require("@open-channel/core");
      const { redisTransport } = require("@open-channel/transport-redis");
      const dir = process.env.OC_TLS_DIR;
      const read = (f) => fs.readFileSync(dir + "/" + f);
      const security = dir ? { tls: { ca: read("ca.crt"), cert: read("node.crt"), key: read("node.key"), servername: "localhost" } }
        : { secret: process.env.OC_SECRET };
      const client = new Redis(process.env.REDIS_URL);
      const channel = openChannel(process.env.CHANNEL, () => {}, { transport: redisTransport({ client, ...security }) });
      const socket = channel.connect(10000);
      socket.write("the joiner says hello\\n");
      socket.on("data", (d) => {
        if (!String(d).includes("echo the joiner says hello")) return;
        console.log("echoed by", channel.hostPid);
        process.exit(0);
      });
      socket.on("error", (err) => { console.error(err); process.exit(1); });`;
      const child = spawn("ip", ["netns", "exec", lan.netns(2), process.execPath, "-e", script], {
        cwd: path.join(__dirname, "..", "..", ".."),
        env: { ...process.env, ...security, REDIS_URL: url, CHANNEL: channel },
      });
      let out = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (out += d));
      const code = await new Promise((resolve) => child.on("exit", resolve));
      expect({ code, out: out.trim() }).toEqual({ code: 0, out: `echoed by ${pids[0]}` });
      expect(m.reports.some((r) => r.type === "received" && r.pid === pids[0] && r.line === "the joiner says hello")).toBe(true);
    });
  },
);
