import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { addressInUse, listenExclusive, tryLock, withAddressLock } from "@open-channel/core";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "oc-kit-"));
fs.chmodSync(dir, 0o700);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const servers: net.Server[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) if (server.listening) server.close();
});

function server(): net.Server {
  const s = net.createServer();
  servers.push(s);
  return s;
}

describe("the transport kit", () => {
  test("listenExclusive resolves once listening and rejects with EADDRINUSE on a taken address, leaving no error listener", async () => {
    const file = path.join(dir, "exclusive.sock");
    const first = server();
    await listenExclusive(first, { path: file });
    expect(first.listening).toBe(true);
    expect(first.listenerCount("error")).toBe(0);
    const second = server();
    await expect(listenExclusive(second, { path: file })).rejects.toMatchObject({ code: "EADDRINUSE" });
    expect(second.listening).toBe(false);
    const tcp = server();
    await listenExclusive(tcp, { host: "127.0.0.1", port: 0 });
    expect((tcp.address() as net.AddressInfo).port).toBeGreaterThan(0);
  });

  test("withAddressLock: one binder at a time; the other waits for its release and gets EADDRINUSE naming the address", async () => {
    const lockFile = path.join(dir, "address.lock");
    const order: string[] = [];
    let release: () => void = () => undefined;
    const first = withAddressLock(lockFile, "the-address", async () => {
      order.push("first binds");
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      order.push("first done");
      return 42;
    });
    // The first holds the lock now (its bind runs): a second caller waits for it.
    while (order.length === 0) await new Promise((r) => setTimeout(r, 1));
    const second = withAddressLock(lockFile, "the-address", async () => {
      order.push("second binds");
    });
    setTimeout(() => release(), 50);
    await expect(second).rejects.toMatchObject({
      code: "EADDRINUSE",
      message: "listen EADDRINUSE: the-address is being bound by another process",
    });
    expect(await first).toBe(42);
    expect(order).toEqual(["first binds", "first done"]);
    // Released, after a bind that failed too.
    await expect(
      withAddressLock(lockFile, "the-address", async () => {
        throw addressInUse("the-address is taken");
      }),
    ).rejects.toMatchObject({ code: "EADDRINUSE" });
    const lock = await tryLock(lockFile);
    expect(lock).toBeDefined();
    lock?.release();
  });

  test("addressInUse: listen's wording and code", () => {
    expect(addressInUse("x names a live host")).toMatchObject({ code: "EADDRINUSE", message: "listen EADDRINUSE: x names a live host" });
  });
});
