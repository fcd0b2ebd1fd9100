import * as net from "node:net";
import * as tls from "node:tls";
import { encodeHello, newNonce, openChannel, type ProcessChannel } from "@open-channel/core";
import { type RedisTransportOptions, redisTransport } from "@open-channel/transport-redis";
import { asOtherUser, describeWithRedis, freePort, Members, sleep, TLS_DIR, tlsFixture, uniqueChannel, useRedisServer } from "./helpers";

const SECRET = "a secret of the test fleet, 32 bytes";

describeWithRedis("TLS between members and host (real redis-server, the test PKI)", () => {
  const redis = useRedisServer();
  let members: Members | undefined;
  const opened: ProcessChannel[] = [];
  const relays: net.Server[] = [];

  afterEach(async () => {
    await members?.stop();
    members = undefined;
    for (const channel of opened.splice(0)) channel.close();
    for (const relay of relays.splice(0)) relay.close();
  });

  /** Forked members over TLS (no secret unless given: the certificates let them in); the first hosts. */
  const start = async (label: string, count: number, env: Record<string, string> = {}) => {
    const channel = uniqueChannel(label);
    const m = new Members({
      OC_REDIS_PORT: String(redis.server.port),
      OC_CHANNEL: channel,
      OC_TLS_DIR: TLS_DIR,
      OC_TTL_MS: "1000",
      ...env,
    });
    members = m;
    const pids = await m.fork(count);
    const host = await m.waitFor(() => m.oneHost(0), "one host");
    return { channel, pids, host, m, key: `open-channel:{${channel}}:host` };
  };

  /** After an intruder tried for a while: nothing it wrote reached the listener, and the host is the same. */
  const expectUntouched = async (m: Members, host: number, key: string, record: string | null, since: number) => {
    expect(m.reports.slice(since).filter((r) => r.type === "received" && r.line === "intruder")).toEqual([]);
    expect(m.last(host, "lease-lost", since)).toBeUndefined();
    expect(await redis.client.get(key)).toBe(record);
  };

  test("no secret, only the certificates: members join over TLS, and after a SIGKILL of the host the same sockets reach the next one", async () => {
    const { key, host, pids, m } = await start("join", 3);
    const others = pids.filter((pid) => pid !== host);
    for (const pid of others) m.send(pid, { cmd: "write", line: `before ${pid}` });
    await m.waitFor(
      () => others.every((pid) => m.reports.some((r) => r.type === "received" && r.line === `before ${pid}`)),
      "the lines at the host",
    );
    const since = m.reports.length;
    m.kill(host);
    const next = await m.waitFor(() => m.oneHost(since), "a new host", 8000);
    for (const pid of others) m.send(pid, { cmd: "write", line: `after ${pid}` });
    await m.waitFor(
      () => others.every((pid) => m.reports.some((r) => r.type === "received" && r.pid === next && r.line === `after ${pid}`)),
      "the lines at the new host",
    );
    expect(m.reports.filter((r) => r.type === "error")).toEqual([]);
    expect((await redis.client.get(key))?.split(" ")[3]).toBe(String(next));
  });

  test.each([
    ["a certificate of another CA", { OC_TLS_CERT: "rogue" }],
    ["no client certificate", { OC_TLS_MUTUAL: "0", OC_SECRET: SECRET }],
    ["no TLS at all, with the secret", { OC_TLS_DIR: "", OC_SECRET: SECRET }],
  ])("a process with %s never reaches the listener, and never takes the channel over", async (_label, env) => {
    const { key, host, m } = await start("intruder", 2, { OC_SECRET: SECRET });
    const record = await redis.client.get(key);
    const since = m.reports.length;
    const [intruder] = await m.fork(1, env);
    m.send(intruder, { cmd: "write", line: "intruder" });
    await sleep(2500);
    expect(m.last(intruder, "connect", since)).toBeUndefined();
    await expectUntouched(m, host, key, record, since);
  });

  test("a host with a certificate of another CA is never joined, nor replaced: members wait for its lease", async () => {
    const channel = uniqueChannel("rogue-host");
    const key = `open-channel:{${channel}}:host`;
    const m = new Members({ OC_REDIS_PORT: String(redis.server.port), OC_CHANNEL: channel, OC_TLS_DIR: TLS_DIR, OC_TTL_MS: "1000" });
    members = m;
    // It cannot even join itself: its own member side does not trust its certificate.
    const [host] = await m.fork(1, { OC_TLS_CERT: "rogue" });
    await m.waitFor(() => m.last(host, "hosting"), "the rogue host");
    const record = await redis.client.get(key);
    const since = m.reports.length;
    const [member] = await m.fork(1, { OC_TLS_CERT: "node" });
    m.send(member, { cmd: "write", line: "for our host only" });
    await sleep(2500);
    expect(m.last(member, "connect", since)).toBeUndefined();
    expect(m.reports.filter((r) => r.type === "received" && r.line === "for our host only")).toEqual([]);
    expect(m.last(host, "lease-lost", since)).toBeUndefined();
    expect(await redis.client.get(key)).toBe(record);
  });

  (process.getuid?.() === 0 ? test : test.skip)(
    "another OS user at the host's port, with a certificate of another CA or none, never reaches the listener nor unseats the host",
    async () => {
      const { key, host, m } = await start("otheruid", 2, { OC_SECRET: SECRET });
      const record = await redis.client.get(key);
      const [, address, port] = (record as string).split(" ");
      const since = m.reports.length;
      const line = Buffer.from("intruder\n").toString("hex");
      const hello = Buffer.concat([encodeHello(uniqueChannel("x")), Buffer.from("intruder\n")]).toString("hex");
      const forged = Buffer.concat([encodeHello("x", newNonce()), Buffer.alloc(32, 7), Buffer.from("intruder\n")]).toString("hex");
      // As uid 40103: TLS with the rogue certificate (which it may read), TLS with no certificate,
      // and plain bytes, each followed by a line the listener would report.
      const rogue = JSON.stringify({ cert: String(tlsFixture("rogue").cert), key: String(tlsFixture("rogue").key) });
      const to = `port: ${port}, host: ${JSON.stringify(address)}`;
      const opens = [line, hello, forged].flatMap((hex) => {
        const write = `(s) => s.write(Buffer.from("${hex}", "hex"))`;
        return [
          `() => { const s = tls.connect({ ${to}, rejectUnauthorized: false, ...${rogue} }); s.on("secureConnect", () => (${write})(s)); return s; }`,
          `() => { const s = tls.connect({ ${to}, rejectUnauthorized: false }); s.on("secureConnect", () => (${write})(s)); return s; }`,
          `() => { const s = net.connect({ ${to} }); s.on("connect", () => (${write})(s)); return s; }`,
        ];
      });
      expect(asOtherUser(`[${opens.join(",")}]`)).toBe(0);
      await sleep(300);
      await expectUntouched(m, host, key, record, since);
    },
  );

  /**
   * A host on 127.0.0.2 that publishes 127.0.0.3 (its address through a port mapping: a NAT, a
   * load balancer) and a relay there: what members reach is not the host's own endpoint.
   */
  const behindRelay = async (relay: (client: net.Socket, port: number) => void, extra: Partial<RedisTransportOptions>) => {
    const port = await freePort();
    const server = net.createServer((c) => relay(c, port));
    relays.push(server);
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.3", resolve));
    const name = uniqueChannel("relay");
    const options = { client: redis.client, ttlMs: 1000, host: "127.0.0.2", port, advertise: "127.0.0.3", ...extra };
    const received: string[] = [];
    const host = openChannel(name, (s) => s.on("data", (d) => received.push(String(d))), { transport: redisTransport(options) });
    opened.push(host);
    // The host's own connection goes through the relay too.
    const connected: string[] = [];
    const hostSocket = host.connect();
    hostSocket.on("error", () => undefined).on("connect", () => connected.push("host"));
    const member = openChannel(name, () => undefined, { transport: redisTransport(options) });
    opened.push(member);
    const socket = member.connect();
    socket.on("error", () => undefined).on("connect", () => connected.push("member"));
    socket.write("through the relay");
    await waitUntil(() => host.isHost || member.isHost, "a host to listen");
    return { connected, received };
  };
  /** What went through the port mapping, both ways. */
  let seen = "";
  const forward = (c: net.Socket, port: number): void => {
    const up = net.connect(port, "127.0.0.2");
    c.pipe(up).pipe(c);
    for (const s of [c, up]) s.on("data", (d: Buffer) => (seen += d.toString("latin1")));
    linked(c, up);
  };

  test("through a port mapping the proof holds over TLS (bound to the TLS session, not the endpoints) and the bytes are encrypted; in plain TCP the proof fails", async () => {
    const overTls = await behindRelay(forward, { tls: tlsFixture(), secret: SECRET });
    await waitUntil(() => overTls.received.join("") === "through the relay", "the bytes through the mapping");
    expect(overTls.connected.sort()).toEqual(["host", "member"]);
    // Encrypted on the way: the mapping saw the bytes, never the text.
    expect(seen.length).toBeGreaterThan(100);
    expect(seen).not.toContain("through the relay");
    seen = "";
    const plain = await behindRelay(forward, { secret: SECRET });
    await sleep(1500);
    expect(plain.connected).toEqual([]);
    expect(plain.received).toEqual([]);
    // In plain TCP the mapping reads the channel's handshake (its name) as it goes.
    expect(seen).toContain("redis-relay-");
  });

  test("a TLS-terminating relay with a valid certificate but not the secret is refused: the proofs bind each TLS session", async () => {
    const fixture = tlsFixture();
    const context = tls.createSecureContext({ ca: fixture.ca, cert: fixture.cert, key: fixture.key });
    // Terminates the members' TLS and opens its own to the host, with the fleet's certificate.
    const terminate = (c: net.Socket, port: number): void => {
      const inner = new tls.TLSSocket(c, { isServer: true, secureContext: context });
      const up = tls.connect({ port, host: "127.0.0.2", secureContext: context, servername: "localhost" });
      inner.pipe(up).pipe(inner);
      linked(inner, up);
    };
    const relayed = await behindRelay(terminate, { tls: fixture, secret: SECRET });
    await sleep(1500);
    expect(relayed.connected).toEqual([]);
    expect(relayed.received).toEqual([]);
  });
});

/** The two legs of a relay live and die together. */
function linked(a: net.Socket, b: net.Socket): void {
  const both = (): void => {
    a.destroy();
    b.destroy();
  };
  for (const s of [a, b]) s.on("error", () => undefined).on("close", both);
}

async function waitUntil(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
