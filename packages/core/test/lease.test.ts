import type * as net from "node:net";
import { type Lease, openChannel, type ProcessChannel, type Transport } from "@open-channel/core";
import { testTransport, uniqueName, until } from "./test-transport";

/** A lease the test ends by hand: `expire()` turns `held()` false, `lose()` also tells the host. */
class ManualLease implements Lease {
  private ended = false;
  private readonly callbacks: ((reason: string) => void)[] = [];
  constructor(readonly epoch: number) {}
  held(): boolean {
    return !this.ended;
  }
  onLost(callback: (reason: string) => void): void {
    this.callbacks.push(callback);
  }
  expire(): void {
    this.ended = true;
  }
  lose(reason: string): void {
    this.ended = true;
    for (const callback of this.callbacks.splice(0)) callback(reason);
  }
}

/** The test transport, with a lease per listen; its epochs come from `nextEpoch` (growing by default). */
function leasingTransport(): Transport & { leases: ManualLease[]; nextEpoch: () => number } {
  const inner = testTransport();
  let epoch = 0;
  const t = {
    ...inner,
    name: "test-lease",
    leases: [] as ManualLease[],
    nextEpoch: () => ++epoch,
    listen: async (channel: string, server: net.Server): Promise<ManualLease> => {
      await inner.listen(channel, server);
      const lease = new ManualLease(t.nextEpoch());
      t.leases.push(lease);
      return lease;
    },
  };
  return t;
}

const opened: ProcessChannel[] = [];
afterEach(() => {
  for (const channel of opened.splice(0)) channel.close({ handover: true });
});

describe("hosting under a transport's lease (in one process)", () => {
  test("a host whose lease ended serves nothing more: bytes a member writes then never reach the listener", async () => {
    const t = leasingTransport();
    const name = uniqueName("lease-fence");
    let received = "";
    const host = openChannel(
      name,
      (socket) => {
        socket.setEncoding("utf8");
        socket.on("data", (chunk: string) => (received += chunk));
      },
      { transport: t },
    );
    opened.push(host);
    host.connect();
    await until(() => host.connected && host.isHost, "the host");
    const member = openChannel(name, () => undefined, { transport: t });
    opened.push(member);
    const socket = member.connect();
    socket.write("before\n");
    await until(() => received.includes("before"), "the bytes written while the lease holds");
    // Ended by the clock, before anyone told the host (a paused process waking up).
    t.leases[0].expire();
    socket.write("after\n");
    await new Promise((r) => setTimeout(r, 300));
    expect(received).toBe("before\n");
    // The lease's own timer tells it at last.
    t.leases[0].lose("not renewed in time");
    await until(() => t.leases.length === 2 && member.connected && host.connected, "a new host");
  });

  test("a host told its lease is lost stops hosting; the next host's epoch is the one members learn", async () => {
    const t = leasingTransport();
    const name = uniqueName("lease-lost");
    const host = openChannel(name, () => undefined, { transport: t });
    opened.push(host);
    host.connect();
    await until(() => host.connected && host.isHost, "the host");
    const member = openChannel(name, () => undefined, { transport: t });
    opened.push(member);
    member.connect();
    await until(() => member.connected, "the member");
    t.leases[0].lose("replaced in the test");
    await until(() => t.leases.length === 2 && (host.isHost || member.isHost) && host.connected && member.connected, "a new host");
    expect(t.leases[1].epoch).toBe(2);
    expect(t.leases[1].held()).toBe(true);
  });

  test("a host serves nobody before its transport's listen() resolved (a lease claimed after the bind)", async () => {
    const t = leasingTransport();
    let release: () => void = () => undefined;
    const claimed = new Promise<void>((r) => (release = r));
    const bind = t.listen;
    t.listen = async (channel, server) => {
      const lease = await bind(channel, server);
      await claimed; // bound, and the address findable, but not ours yet
      return lease;
    };
    const name = uniqueName("lease-late");
    let served = 0;
    const host = openChannel(name, () => served++, { transport: t });
    opened.push(host);
    host.connect();
    await until(() => t.leases.length === 1, "the bind");
    const member = openChannel(name, () => undefined, { transport: { ...t, listen: () => new Promise(() => undefined) } });
    opened.push(member);
    member.connect(0);
    await new Promise((r) => setTimeout(r, 300));
    expect([served, member.connected]).toEqual([0, false]);
    release();
    await until(() => member.connected && host.connected, "both served once listen() resolved");
    expect(served).toBe(2);
  });

  test("a member never accepts a host whose epoch is lower than one it has seen", async () => {
    const t = leasingTransport();
    const name = uniqueName("lease-epoch");
    const epochs = [5, 3];
    t.nextEpoch = () => epochs.shift() ?? 3;
    const host = openChannel(name, () => undefined, { transport: t });
    host.connect();
    await until(() => host.connected && host.isHost, "the host with epoch 5");
    // A member that can only join (never hosts), so that what it joins is up to the epochs.
    const joinOnly: Transport = {
      ...t,
      listen: () => Promise.reject(Object.assign(new Error("listen EADDRINUSE"), { code: "EADDRINUSE" })),
    };
    let received = "";
    const member = openChannel(name, () => undefined, { transport: joinOnly });
    opened.push(member);
    const socket = member.connect(60000);
    await until(() => member.connected, "the member");
    host.close({ handover: true });
    await until(() => !member.connected, "the member to lose its host");
    socket.write("written after epoch 5\n");
    // The next host holds a lease of epoch 3: a newcomer joins it, the member that saw 5 does not
    // (without a secret the host admits it before it reads the reply, but it sends nothing there).
    const lower = openChannel(
      name,
      (s) => {
        s.setEncoding("utf8");
        s.on("data", (chunk: string) => (received += chunk));
      },
      { transport: t },
    );
    opened.push(lower);
    lower.connect();
    await until(() => lower.connected && lower.isHost, "a host with epoch 3", 5000);
    expect(t.leases.map((l) => l.epoch)).toEqual([5, 3]);
    await new Promise((r) => setTimeout(r, 500));
    expect([member.connected, received]).toEqual([false, ""]);
  });
});
