import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { HANDSHAKE, MemberHandshake, openChannel, type ProcessChannel } from "@open-channel/core";
import { transportComplianceCases } from "@open-channel/core/compliance";
import { portFileName, tcpTransport } from "@open-channel/transport-tcp";

const tmpDir = (): string => path.join(fs.mkdtempSync(path.join(os.tmpdir(), "oc-tcp-")), "private");

describe("the tcp transport passes the transport compliance suite", () => {
  const dir = tmpDir();
  const cases = transportComplianceCases({
    transport: () => tcpTransport({ dir }),
    child: { module: require.resolve("@open-channel/transport-tcp"), factory: "tcpTransport", options: { dir } },
  });
  for (const c of cases) test(c.name, c.run);
});

describe("tcp transport specifics", () => {
  const opened: ProcessChannel[] = [];
  afterEach(() => {
    for (const c of opened.splice(0)) c.close({ handover: true });
  });

  function open(dir: string, name: string, listener: (s: net.Socket) => void = (s) => s.pipe(s)): ProcessChannel {
    const channel = openChannel(name, listener, { transport: tcpTransport({ dir }) });
    opened.push(channel);
    return channel;
  }

  test("the host listens on loopback only and publishes its port in a private file", async () => {
    const dir = tmpDir();
    const channel = open(dir, "loopback");
    await new Promise((resolve) => channel.connect().once("connect", resolve));
    const file = path.join(dir, portFileName("loopback"));
    const record = JSON.parse(fs.readFileSync(file, "utf8"));
    expect(record.host).toBe("127.0.0.1");
    expect(record.pid).toBe(process.pid);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(dir, "secret")).mode & 0o777).toBe(0o600);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    // Not reachable on any other interface: the port answers on 127.0.0.1 only.
    const others = Object.values(os.networkInterfaces())
      .flat()
      .filter((i) => i && !i.internal && i.family === "IPv4");
    for (const iface of others) {
      const err = await new Promise<Error | undefined>((resolve) => {
        const s = net.connect({ host: iface?.address, port: record.port });
        s.once("connect", () => {
          s.destroy();
          resolve(undefined);
        });
        s.once("error", resolve);
      });
      expect(err).toBeDefined();
    }
  });

  test("a secret file others can read, or of the wrong size, is refused with the next step", async () => {
    for (const [mode, bytes, why] of [
      [0o644, 32, "other users can read it"],
      [0o640, 32, "other users can read it"],
      [0o600, 31, "it holds 31 bytes"],
    ] as const) {
      const dir = tmpDir();
      fs.mkdirSync(dir, { mode: 0o700 });
      fs.writeFileSync(path.join(dir, "secret"), Buffer.alloc(bytes, 1), { mode });
      fs.chmodSync(path.join(dir, "secret"), mode);
      const channel = open(dir, "bad-secret");
      const socket = channel.connect(5000);
      const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
        socket.once("error", resolve);
        socket.once("connect", () => resolve(undefined));
      });
      expect(err?.code).toBe("ERR_OPEN_CHANNEL_UNSAFE_DIR");
      expect(err?.message).toContain(why);
      expect(err?.message).toContain("Delete it");
    }
  });

  test("a stranger program on the published port is never taken for the host; its record is reclaimed", async () => {
    const dir = tmpDir();
    const name = "squatted";
    const stranger = net.createServer((s) => {
      s.on("error", () => undefined);
      // Reads what comes (as a real server does), so it sees our probe leave and closes.
      s.resume();
      s.end("SSH-2.0-OpenSSH_9.2\r\n");
    });
    await new Promise<void>((resolve) => stranger.listen({ host: "127.0.0.1", port: 0 }, resolve));
    const port = (stranger.address() as net.AddressInfo).port;
    fs.mkdirSync(dir, { mode: 0o700 });
    fs.writeFileSync(path.join(dir, portFileName(name)), JSON.stringify({ host: "127.0.0.1", port, pid: 1, id: "dead" }));
    try {
      let received = "";
      const channel = open(dir, name);
      const socket = channel.connect(10000);
      socket.on("data", (chunk) => (received += chunk));
      await new Promise((resolve, reject) => {
        socket.once("connect", resolve);
        socket.once("error", reject);
      });
      expect(channel.isHost).toBe(true);
      socket.write("ping");
      const deadline = Date.now() + 5000;
      while (received !== "ping" && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      expect(received).toBe("ping");
      const record = JSON.parse(fs.readFileSync(path.join(dir, portFileName(name)), "utf8"));
      expect(record.port).not.toBe(port);
    } finally {
      stranger.close();
    }
  });

  /** Connects a raw socket to the channel's published port, writes `chunks`, collects the answer. */
  async function rawExchange(
    dir: string,
    name: string,
    chunks: (reply: Buffer) => Buffer[],
    first: Buffer | ((socket: net.Socket) => Buffer),
  ): Promise<{ reply: Buffer; closed: boolean }> {
    const record = JSON.parse(fs.readFileSync(path.join(dir, portFileName(name)), "utf8"));
    const socket = net.connect({ host: record.host, port: record.port });
    socket.on("error", () => undefined);
    let reply = Buffer.alloc(0);
    let sentRest = false;
    const closed = new Promise<boolean>((resolve) => socket.once("close", () => resolve(true)));
    socket.on("data", (chunk: Buffer) => {
      reply = Buffer.concat([reply, chunk]);
      if (!sentRest && reply.length >= HANDSHAKE.replyLength + HANDSHAKE.nonceLength + HANDSHAKE.proofLength) {
        sentRest = true;
        for (const c of chunks(reply)) socket.write(c);
      }
    });
    socket.once("connect", () => socket.write(typeof first === "function" ? first(socket) : first));
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([closed, new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 5000)))]);
    // Not left pending: it would keep the test run alive for seconds after its last test.
    clearTimeout(timer);
    socket.destroy();
    return { reply, closed: result };
  }

  test("a raw client writing garbage, or replaying a recorded handshake, never reaches the listener", async () => {
    const dir = tmpDir();
    const name = "replay";
    const seen: net.Socket[] = [];
    const host = open(dir, name, (s) => {
      seen.push(s);
      s.pipe(s);
    });
    await new Promise((resolve) => host.connect().once("connect", resolve));
    while (seen.length < 1) await new Promise((r) => setTimeout(r, 5));

    // Garbage is closed at once.
    const garbage = await rawExchange(dir, name, () => [], Buffer.from("\x16\x03\x01 definitely not a hello"));
    expect(garbage.closed).toBe(true);

    // Record a legitimate exchange (we play the member here, knowing the secret)...
    const secret = fs.readFileSync(path.join(dir, "secret"));
    const member = new MemberHandshake(name, HANDSHAKE.kindJoin, secret);
    let hello: Buffer = Buffer.alloc(0);
    let recordedProof: Buffer = Buffer.alloc(0);
    const legit = await rawExchange(
      dir,
      name,
      (reply) => {
        const step = member.feed(reply);
        if (step.state !== "accepted" || step.answer === undefined) throw new Error("no reply");
        recordedProof = step.answer;
        return [recordedProof, Buffer.from("legit\n")];
      },
      (socket) => (hello = member.hello(socket)),
    );
    expect(legit.closed).toBe(false);
    expect(seen.length).toBe(2);

    // ...then replay its bytes on a new connection: the host's fresh nonce makes the proof wrong.
    const replay = await rawExchange(dir, name, () => [recordedProof, Buffer.from("replayed\n")], hello);
    expect(replay.closed).toBe(true);
    expect(seen.length).toBe(2);
  });

  test("a hello whose proofs would not cover the connection (an older member's) is refused", async () => {
    const dir = tmpDir();
    const name = "unbound";
    const seen: net.Socket[] = [];
    const host = open(dir, name, (s) => seen.push(s));
    await new Promise((resolve) => host.connect().once("connect", resolve));
    while (seen.length < 1) await new Promise((r) => setTimeout(r, 5));
    const hello = new MemberHandshake(name, HANDSHAKE.kindJoin, Buffer.alloc(32)).hello(new net.Socket());
    hello[6] = HANDSHAKE.flagProof;
    const { reply, closed } = await rawExchange(dir, name, () => [], hello);
    expect(closed).toBe(true);
    expect(reply[5]).toBe(HANDSHAKE.statusUnsupported);
    expect(seen.length).toBe(1);
  });

  /** A listener that answers every request (a 4-byte header and a 32-byte body) with one byte. */
  const answerEach36 = (s: net.Socket): void => {
    let bytes = 0;
    s.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
      for (; bytes >= 36; bytes -= 36) s.write("k");
    });
  };

  /** Median ms of `rounds` exchanges written as two writes (header, body), as an application does. */
  async function medianExchange(socket: net.Socket, rounds = 50): Promise<number> {
    const times: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const start = performance.now();
      await new Promise((resolve) => {
        socket.once("data", resolve);
        socket.write(Buffer.alloc(4, 0));
        socket.write(Buffer.alloc(32, 1));
      });
      times.push(performance.now() - start);
    }
    return times.sort((a, b) => a - b)[rounds >> 1];
  }

  // A write held by Nagle waits for the peer's delayed ACK: >= 40 ms on Linux. These exchanges
  // take well under a millisecond without it.
  test("a plain socket handed to connect() has Nagle off (its two-part writes are not held back)", async () => {
    const dir = tmpDir();
    const name = "nagle-plain";
    const host = open(dir, name, answerEach36);
    await new Promise((resolve) => host.connect().once("connect", resolve));
    const secret = fs.readFileSync(path.join(dir, "secret"));
    const socket = new net.Socket();
    try {
      tcpTransport({ dir }).connect(name, socket);
      const member = new MemberHandshake(name, HANDSHAKE.kindJoin, secret);
      socket.once("connect", () => socket.write(member.hello(socket)));
      await new Promise<void>((resolve, reject) => {
        socket.on("data", function onReply(chunk: Buffer) {
          const step = member.feed(chunk);
          if (step.state === "more") return;
          socket.off("data", onReply);
          if (step.state !== "accepted" || step.answer === undefined) return reject(new Error("no handshake reply"));
          socket.write(step.answer);
          resolve();
        });
      });
      expect(await medianExchange(socket)).toBeLessThan(5);
    } finally {
      socket.destroy();
    }
  });

  test("a channel's socket has Nagle off even over a transport whose connect() does not turn it off", async () => {
    const dir = tmpDir();
    const name = "nagle-bare";
    const tcp = tcpTransport({ dir });
    // The user's own transport: tcp's election, a bare connect.
    const bare = {
      name: "bare-tcp",
      listen: (channel: string, server: net.Server) => tcp.listen(channel, server),
      secret: (channel: string) => tcp.secret(channel),
      connect: (channel: string, socket: net.Socket) => {
        const record = JSON.parse(fs.readFileSync(tcp.portFile(channel), "utf8"));
        socket.connect({ host: record.host, port: record.port });
      },
    };
    const host = open(dir, name, answerEach36);
    await new Promise((resolve) => host.connect().once("connect", resolve));
    const member = openChannel(name, answerEach36, { transport: bare });
    opened.push(member);
    const socket = member.connect();
    await new Promise((resolve) => socket.once("connect", resolve));
    expect(member.isHost).toBe(false);
    expect(await medianExchange(socket)).toBeLessThan(5);
  });

  test("a port file goes with its server: on close({ handover: true }), and the heir's standby record after a takeover", async () => {
    const dir = tmpDir();
    const name = "port-file-goes";
    const waitFor = async (check: () => boolean, what: string): Promise<void> => {
      const end = Date.now() + 3000;
      while (!check()) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    const file = path.join(dir, portFileName(name));
    const host = open(dir, name);
    await new Promise((resolve) => host.connect().once("connect", resolve));
    expect(fs.existsSync(file)).toBe(true);
    host.close({ handover: true });
    // A closed port left named in a file is a port anyone may bind next.
    await waitFor(() => !fs.existsSync(file), "the port file to go");

    // The heir's standby record: gone once the new host frees the standby address.
    const a = open(dir, name);
    await new Promise((resolve) => a.connect().once("connect", resolve));
    const b = open(dir, name);
    await new Promise((resolve) => b.connect().once("connect", resolve));
    const c = open(dir, name);
    await new Promise((resolve) => c.connect().once("connect", resolve));
    await waitFor(() => b.isHeir || c.isHeir, "a member to stand by as the heir");
    const [heir, other] = b.isHeir ? [b, c] : [c, b];
    const standby = path.join(dir, portFileName(name + HANDSHAKE.standbySuffix));
    expect(fs.existsSync(standby)).toBe(true);
    const otherMoved = new Promise((resolve) => other.once("failover", resolve));
    a.close({ handover: true });
    await waitFor(() => heir.isHost && !heir.isHeir, "the heir to host");
    // The other member reached the heir at its standby address, and stays connected there.
    await otherMoved;
    await waitFor(() => !fs.existsSync(standby), "the standby record to go");
    expect(other.connected).toBe(true);
    expect(JSON.parse(fs.readFileSync(file, "utf8")).pid).toBe(process.pid);
  });

  test("a removed port file: the host publishes its address again within a second, and a newcomer joins it", async () => {
    const dir = tmpDir();
    const name = "port-file-removed";
    const host = open(dir, name);
    await new Promise((resolve) => host.connect().once("connect", resolve));
    const file = path.join(dir, portFileName(name));
    fs.unlinkSync(file);
    const end = Date.now() + 3000;
    while (!fs.existsSync(file) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(JSON.parse(fs.readFileSync(file, "utf8")).pid).toBe(process.pid);
    const newcomer = open(dir, name);
    await new Promise((resolve) => newcomer.connect().once("connect", resolve));
    expect(newcomer.isHost).toBe(false);
    expect(host.isHost).toBe(true);
  });

  test("a replaced secret: the host that can no longer prove itself steps down, and all meet under the new one", async () => {
    const dir = tmpDir();
    const name = "secret-replaced";
    const connected = (c: ProcessChannel): Promise<unknown> => new Promise((resolve) => c.connect().once("connect", resolve));
    // (A host of the old secret fails the status request's proof: no server of ours.)
    const serverId = async (c: ProcessChannel): Promise<string | undefined> => {
      const r = await c.status({ heir: false }).catch(() => undefined);
      return r?.state === "hosted" ? r.status.serverId : undefined;
    };
    const until = async (check: () => boolean | Promise<boolean>, what: string): Promise<void> => {
      const end = Date.now() + 5000;
      while (!(await check())) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const host = open(dir, name);
    await connected(host);
    const member = open(dir, name);
    await connected(member);
    const before = await serverId(member);
    fs.unlinkSync(path.join(dir, "secret"));
    // A newcomer makes a new secret: the old host cannot prove itself with it.
    await until(async () => ![before, undefined].includes(await serverId(member)), "a server of the new secret at the address");
    const newcomer = open(dir, name);
    await connected(newcomer);
    await until(() => host.connected && member.connected, "the old host's members back");
    const ids = await Promise.all([host, member, newcomer].map(serverId));
    expect(new Set(ids).size).toBe(1);
    expect(ids[0]).not.toBe(before);
    expect([host, member, newcomer].filter((c) => c.isHost)).toHaveLength(1);
  });

  test("only loopback hosts are accepted as options", () => {
    expect(() => tcpTransport({ host: "0.0.0.0" as "127.0.0.1" })).toThrow(/loopback only/);
  });
});
