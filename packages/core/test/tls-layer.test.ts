import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { openChannel, type SecureLayer, tlsSecureLayer } from "@open-channel/core";
import { once, secureTestTransport, tlsFixture, uniqueName } from "./test-transport";

/** A plain server whose accepted sockets go through `layer.host`, and a way to connect `count` members through `member`. */
async function pair(host: SecureLayer, listen: { path: string } | { port: number; host: string }) {
  const hostSide: Promise<net.Socket>[] = [];
  const server = net.createServer((raw) => {
    raw.on("error", () => undefined);
    const secure = host.host(raw, "jobs");
    secure.catch(() => undefined); // the tests that expect a refusal check it themselves
    hostSide.push(secure);
  });
  await new Promise<void>((resolve) => server.listen(listen, resolve));
  const target = "path" in listen ? listen : { host: listen.host, port: (server.address() as net.AddressInfo).port };
  const connect = (member: SecureLayer): Promise<net.Socket> =>
    new Promise((resolve, reject) => {
      const raw = net.connect(target);
      raw.on("error", reject);
      raw.once("connect", () => member.member(raw, "jobs").then(resolve, reject));
    });
  return { server, hostSide, connect };
}

const read = (socket: net.Socket): Promise<string> => new Promise((resolve) => socket.once("data", (d) => resolve(String(d))));

describe("tlsSecureLayer", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "oc-tls-"));

  test("many handshakes at once over a Unix socket (no endpoints to tell them apart): each member gets its own secure socket", async () => {
    const layer = tlsSecureLayer(tlsFixture());
    const { server, hostSide, connect } = await pair(layer, { path: path.join(dir, "a.sock") });
    const members = await Promise.all(Array.from({ length: 8 }, () => connect(layer)));
    const hosts = await Promise.all(hostSide);
    for (const [i, m] of members.entries()) m.write(`member ${i}`);
    // The host's side of each connection reads what the member at its other end wrote, and answers it alone.
    const heard = await Promise.all(hosts.map(read));
    for (const [i, h] of hosts.entries()) h.write(`to ${heard[i]}`);
    const answers = await Promise.all(members.map(read));
    expect(answers).toEqual(members.map((_m, i) => `to member ${i}`));
    expect(new Set(heard).size).toBe(8);
    for (const s of [...members, ...hosts]) s.destroy();
    server.close();
  });

  test("mutual by default: a member with a certificate of another CA, or none, is refused; a member never trusts a host of another CA", async () => {
    const layer = tlsSecureLayer(tlsFixture());
    const real = await pair(layer, { port: 0, host: "127.0.0.1" });
    for (const member of [
      tlsSecureLayer(tlsFixture("rogue", { ca: tlsFixture().ca })),
      tlsSecureLayer({ ...tlsFixture(), mutual: false }),
    ]) {
      const before = real.hostSide.length;
      // TLS 1.3: the member may finish its side first; the host refuses either way.
      const m = await real.connect(member).catch((err: Error) => err);
      if (m instanceof net.Socket) m.on("error", () => undefined);
      await expect(real.hostSide[before]).rejects.toMatchObject({ syscall: "tls" });
      if (m instanceof net.Socket) m.destroy();
    }
    real.server.close();

    const rogueHost = await pair(tlsSecureLayer(tlsFixture("rogue")), { port: 0, host: "127.0.0.1" });
    await expect(rogueHost.connect(layer)).rejects.toMatchObject({ syscall: "tls", code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" });
    rogueHost.server.close();
  });

  test("the host's certificate must name the address a member connects to, unless servername says which name", async () => {
    const { servername: _, ...noName } = tlsFixture();
    // The test certificate names 127.0.0.1-3 and localhost: not 127.0.0.4.
    const { server, connect, hostSide } = await pair(tlsSecureLayer(noName), { port: 0, host: "127.0.0.4" });
    await expect(connect(tlsSecureLayer(noName))).rejects.toMatchObject({ code: "ERR_TLS_CERT_ALTNAME_INVALID" });
    const ok = await connect(tlsSecureLayer({ ...noName, servername: "localhost" }));
    ok.destroy();
    for (const p of hostSide)
      p.then(
        (s) => s.destroy(),
        () => undefined,
      );
    server.close();
  });

  test("a member whose certificate the host refuses times out with that question in its last error", async () => {
    const host = secureTestTransport();
    const name = uniqueName("refused-cert");
    const hosting = openChannel(name, () => undefined, { transport: host });
    await once(hosting.connect(), "connect");
    const member = openChannel(name, () => undefined, {
      transport: secureTestTransport(tlsFixture("rogue", { ca: tlsFixture().ca }), host.dir),
    });
    const err = await once<Error & { code: string }>(member.connect(1500), "error");
    expect(err.code).toBe("ETIMEDOUT");
    expect(err.message).toContain("does the host trust this process's certificate?");
    hosting.close({ handover: true });
  });

  test("options are checked at once: ERR_INVALID_ARG_TYPE naming the option; a key of another certificate throws", () => {
    const good = tlsFixture();
    expect(() => tlsSecureLayer(undefined as never)).toThrow(expect.objectContaining({ code: "ERR_INVALID_ARG_TYPE" }));
    for (const [bad, name] of [
      [{ ...good, ca: undefined }, "ca"],
      [{ ...good, cert: 7 }, "cert"],
      [{ ...good, key: [] }, "key"],
      [{ ...good, mutual: "yes" }, "mutual"],
      [{ ...good, servername: "" }, "servername"],
    ] as const) {
      expect(() => tlsSecureLayer(bad as never)).toThrow(
        expect.objectContaining({ code: "ERR_INVALID_ARG_TYPE", message: expect.stringContaining(name) }),
      );
    }
    expect(() => tlsSecureLayer({ ...good, key: tlsFixture("rogue").key })).toThrow(/key values mismatch/);
  });
});
