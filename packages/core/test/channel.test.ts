import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as tls from "node:tls";
import {
  encodeHello,
  HANDSHAKE,
  OpenChannelError,
  openChannel,
  openChannelError,
  type ProcessChannel,
  probeChannel,
  type Transport,
} from "@open-channel/core";
import { deadEndTransport, once, secureTestTransport, testTransport, tlsFixture, uniqueName, until } from "./test-transport";

/** channel-tls.test.ts runs this file again with every connection over TLS (the socket's stream mode). */
const overTls = process.env.OC_CORE_TEST_TLS === "1";
const transport = overTls ? secureTestTransport() : testTransport();

/** A connection of the test's own to the channel's address: plain, or over TLS with the test certificate. */
function connectRaw(name: string): net.Socket {
  const plain = net.connect(transport.path(name));
  return overTls ? tls.connect({ socket: plain, ...tlsFixture(), minVersion: "TLSv1.3" }) : plain;
}
/** The event after which a {@link connectRaw} socket takes the bytes of the handshake. */
const READY = overTls ? "secureConnect" : "connect";
const opened: ProcessChannel[] = [];
afterEach(() => {
  for (const channel of opened.splice(0)) channel.close({ handover: true });
});

/** A host listener that collects what every member wrote. */
function collector(): { listener: (socket: net.Socket) => void; text: () => string; sockets: net.Socket[] } {
  let text = "";
  const sockets: net.Socket[] = [];
  return {
    sockets,
    text: () => text,
    listener: (socket) => {
      sockets.push(socket);
      socket.setEncoding("utf8");
      socket.on("data", (chunk: string) => (text += chunk));
    },
  };
}

function open(name: string, listener: (socket: net.Socket) => void, t: Transport = transport): ProcessChannel {
  const channel = openChannel(name, listener, { transport: t });
  opened.push(channel);
  return channel;
}

describe("ProcessChannel state machine (in one process, custom test transport)", () => {
  test("initiated -> connecting -> connected, hosting lazily on the first connect", async () => {
    const host = collector();
    const channel = open(uniqueName("states"), host.listener);
    expect(channel.state).toBe("initiated");
    expect(channel.connected).toBe(false);
    expect(channel.isHost).toBe(false);
    const socket = channel.connect();
    expect(socket).toBeInstanceOf(net.Socket);
    expect(channel.state).toBe("connecting");
    await once(socket, "connect");
    expect(channel.state).toBe("connected");
    expect(channel.connected).toBe(true);
    expect(channel.isHost).toBe(true);
    expect(channel.hostPid).toBe(process.pid);
  });

  test("a probe hello is answered at once and closed, for the channel's name and its standby name, never reaching the listener", async () => {
    const host = collector();
    const name = uniqueName("probe");
    const channel = open(name, host.listener);
    await once(channel.connect(), "connect");
    const probe = (probeName: string, kind: number = HANDSHAKE.kindProbe): Promise<{ status: number; ended: boolean }> =>
      new Promise((resolve, reject) => {
        const socket = connectRaw(name);
        let reply = Buffer.alloc(0);
        socket.on(READY, () => socket.write(encodeHello(probeName, undefined, kind)));
        socket.on("data", (chunk) => (reply = Buffer.concat([reply, chunk])));
        socket.on("error", reject);
        socket.on("close", () => resolve({ status: reply[5], ended: reply.length === HANDSHAKE.replyLength }));
      });
    expect(await probe(name)).toEqual({ status: HANDSHAKE.statusOk, ended: true });
    expect(await probe(name + HANDSHAKE.standbySuffix)).toEqual({ status: HANDSHAKE.statusOk, ended: true });
    // The standby name is for probes only: a member joining with it is a stranger.
    expect(await probe(name + HANDSHAKE.standbySuffix, HANDSHAKE.kindJoin)).toEqual({ status: HANDSHAKE.statusWrongChannel, ended: true });
    expect(await probe(`${name}-other`)).toEqual({ status: HANDSHAKE.statusWrongChannel, ended: true });
    // Only the host's own connection ever reached the listener.
    expect(host.sockets.length).toBe(1);
  });

  test("a connection that never finishes its hello is closed by the host (its 3 s bound, well within 8 s)", async () => {
    const host = collector();
    const name = uniqueName("silent-member");
    const channel = open(name, host.listener);
    await once(channel.connect(), "connect");
    const started = performance.now();
    const closedAfter = await new Promise<number>((resolve, reject) => {
      const socket = connectRaw(name);
      socket.on(READY, () => socket.write(encodeHello(name).subarray(0, 6)));
      socket.on("error", reject);
      socket.on("close", () => resolve(performance.now() - started));
      setTimeout(() => socket.destroy(), 8000).unref();
    });
    expect(closedAfter).toBeGreaterThanOrEqual(2500);
    expect(closedAfter).toBeLessThan(7900);
    expect(host.sockets.length).toBe(1);
  });

  test("probeChannel asks again after a reset with no answer: a dying listener is found gone, one that keeps resetting is unknown", async () => {
    const resetting = async (closeAfterFirst: boolean): Promise<{ verdict: string; connections: number }> => {
      const name = uniqueName(closeAfterFirst ? "probe-dying" : "probe-resetting");
      let connections = 0;
      const server = net.createServer((s) => {
        connections++;
        s.destroy();
        if (closeAfterFirst) server.close();
      });
      await new Promise<void>((resolve) => server.listen(transport.path(name), resolve));
      try {
        return { verdict: await probeChannel(transport, name), connections };
      } finally {
        if (server.listening) server.close();
      }
    };
    expect(await resetting(true)).toEqual({ verdict: "refused", connections: 1 });
    expect(await resetting(false)).toEqual({ verdict: "unknown", connections: 3 });
  });

  test("bytesWritten and bytesRead count the bytes of the connection, after a hand-over too", async () => {
    const name = uniqueName("bytes");
    const echo = (s: net.Socket): void => {
      s.on("data", (d) => s.write(d));
    };
    const host = open(name, echo);
    await once(host.connect(), "connect");
    const member = open(name, echo);
    const socket = member.connect();
    await once(socket, "connect");
    for (const round of [1, 2]) {
      const [written, read] = [socket.bytesWritten, socket.bytesRead];
      socket.write("x".repeat(1000));
      let got = 0;
      await new Promise<void>((resolve) => {
        const onData = (d: Buffer): void => {
          got += d.length;
          if (got < 1000) return;
          socket.off("data", onData);
          resolve();
        };
        socket.on("data", onData);
      });
      expect([round, socket.bytesWritten - written, socket.bytesRead - read]).toEqual([round, 1000, 1000]);
      if (round === 1) {
        // The member hosts next: its socket runs over a new connection.
        host.close({ handover: true });
        await until(() => member.isHost && member.connected, "the member to host");
      }
    }
  });

  test("connect() while the socket is open returns the same socket", async () => {
    const channel = open(uniqueName("same"), collector().listener);
    const socket = channel.connect();
    expect(channel.connect()).toBe(socket);
    await once(socket, "connect");
    expect(channel.connect()).toBe(socket);
  });

  test("writes made before connect arrive in order, with their callbacks, before later writes", async () => {
    const host = collector();
    const name = uniqueName("queue");
    const channel = open(name, host.listener);
    const socket = channel.connect();
    const callbacks: string[] = [];
    for (let i = 0; i < 50; i++) socket.write(`q${i};`, () => callbacks.push(`q${i}`));
    socket.write(Buffer.from("buf;"), "utf8" as BufferEncoding);
    socket.on("connect", () => socket.write("after;"));
    await until(() => host.text().includes("after;"), "the host to receive everything");
    const expected = `${Array.from({ length: 50 }, (_, i) => `q${i};`).join("")}buf;after;`;
    expect(host.text()).toBe(expected);
    await until(() => callbacks.length === 50, "callbacks");
    expect(callbacks).toEqual(Array.from({ length: 50 }, (_, i) => `q${i}`));
  });

  test("a second channel object with the same name joins the first one's host", async () => {
    const host = collector();
    const name = uniqueName("join");
    const first = open(name, host.listener);
    await once(first.connect(), "connect");
    const second = open(name, () => {
      throw new Error("the second channel must not host");
    });
    const socket = second.connect();
    socket.write("from second\n");
    await once(socket, "connect");
    expect(second.isHost).toBe(false);
    expect(second.hostPid).toBe(process.pid);
    await until(() => host.text() === "from second\n", "the host to receive the member's write");
  });

  test("a member reading from the start gets the handshake reply on its first connection", async () => {
    // Regression: net.Socket defers a read requested before connecting to its own raw 'connect'
    // listener, which the channel hides; the reply was then never read and the member waited out
    // the handshake timeout. The channel's timeout is below that handshake timeout.
    const name = uniqueName("reads-early");
    const first = open(name, (socket) => void socket.write("hi"));
    await once(first.connect(), "connect");
    const second = open(name, collector().listener);
    const socket = second.connect(2000);
    let received = "";
    socket.on("data", (chunk) => (received += chunk));
    const errors: Error[] = [];
    socket.on("error", (err) => errors.push(err));
    await until(() => received === "hi" || errors.length > 0, "the host's bytes or an error");
    expect(errors).toEqual([]);
    expect(received).toBe("hi");
  });

  test("bytes the host writes at once reach the member after the handshake, none lost", async () => {
    const name = uniqueName("welcome");
    const channel = open(name, (socket) => void socket.write("welcome!"));
    const socket = channel.connect();
    let received = "";
    socket.on("data", (chunk) => (received += chunk));
    await until(() => received === "welcome!", "the welcome bytes");
  });

  test("connect(timeout, { onread }): bytes come into the reader's buffer (no 'data'), the first ones too, and after a hand-over", async () => {
    const name = uniqueName("onread");
    const echo = (socket: net.Socket): void => {
      socket.write("welcome;");
      socket.on("data", (chunk) => socket.write(chunk));
    };
    const hostChannel = open(name, echo);
    await once(hostChannel.connect(), "connect");
    const member = open(name, echo);
    const buffer = Buffer.alloc(8);
    let received = "";
    let dataEvents = 0;
    const socket = member.connect(5000, {
      onread: {
        buffer,
        callback: (bytes, buf) => {
          received += Buffer.from(buf.buffer, buf.byteOffset, bytes).toString();
          return true;
        },
      },
    });
    socket.on("data", () => dataEvents++);
    socket.write("one;");
    await until(() => received === "welcome;one;", "the welcome and the echo");
    // More than the buffer holds: several reads, in order.
    socket.write("a longer line than eight bytes;");
    await until(() => received.endsWith("a longer line than eight bytes;"), "the long echo");
    hostChannel.close({ handover: true });
    await until(() => member.isHost && member.connected, "the member to host");
    socket.write("two;");
    await until(() => received.endsWith("welcome;two;"), "the new host's welcome and echo");
    expect(dataEvents).toBe(0);
  });

  test("connect(timeout, { onread }) checks the reader: ERR_INVALID_ARG_TYPE", () => {
    const channel = open(uniqueName("onread-bad"), () => undefined);
    for (const onread of [
      { buffer: "x", callback: () => true },
      { buffer: Buffer.alloc(0), callback: () => true },
      { buffer: Buffer.alloc(4) },
    ]) {
      expect(() => channel.connect(1000, { onread } as never)).toThrow(expect.objectContaining({ code: "ERR_INVALID_ARG_TYPE" }));
    }
    expect(channel.state).toBe("initiated");
  });

  test("socket.destroy() closes the channel: state closed, one close event, no reconnect", async () => {
    const channel = open(uniqueName("destroy"), collector().listener);
    const socket = channel.connect();
    await once(socket, "connect");
    const events: string[] = [];
    socket.on("close", () => events.push("close"));
    socket.on("connect", () => events.push("connect"));
    // A reconnection would start as the connection closes: the state would go to "connecting".
    channel.on("state", (state) => events.push(`state ${state}`));
    socket.destroy();
    expect(channel.state).toBe("closed");
    await once(socket, "close");
    await new Promise((r) => setImmediate(r));
    expect(events).toEqual(["state closed", "close"]);
    expect(channel.state).toBe("closed");
  });

  test("socket.end() while connecting: the queued writes and the end's chunk are delivered, then the channel closes", async () => {
    const host = collector();
    const channel = open(uniqueName("end-early"), host.listener);
    const socket = channel.connect();
    socket.write("one;");
    socket.end("two;");
    const states: string[] = [];
    channel.on("state", (state: string) => states.push(state));
    await once(socket, "close");
    await until(() => host.text() === "one;two;", "the host to receive both writes");
    expect(channel.state).toBe("closed");
    expect(states).toEqual(["connected", "closed"]);
  });

  test("socket.end() while connected closes the channel without a reconnect", async () => {
    const host = collector();
    const channel = open(uniqueName("end-live"), host.listener);
    const socket = channel.connect();
    await once(socket, "connect");
    const connects = jest.fn();
    socket.on("connect", connects);
    const states: string[] = [];
    channel.on("state", (state) => states.push(state));
    socket.end("bye;");
    await once(socket, "close");
    await until(() => host.text() === "bye;", "the host to receive the last write");
    await new Promise((r) => setImmediate(r));
    expect(channel.state).toBe("closed");
    // Never "connecting": no reconnection started.
    expect(states).toEqual(["closed"]);
    expect(connects).not.toHaveBeenCalled();
  });

  test("channel.close() while connecting fails queued writes with ERR_OPEN_CHANNEL_CLOSED", async () => {
    const channel = open(uniqueName("close-early"), collector().listener);
    const socket = channel.connect();
    const result = new Promise<Error | null | undefined>((resolve) => socket.write("never", resolve));
    channel.close();
    expect(channel.state).toBe("closed");
    const err = await result;
    expect(err).toBeInstanceOf(OpenChannelError);
    expect((err as OpenChannelError).code).toBe("ERR_OPEN_CHANNEL_CLOSED");
  });

  test("close({ handover: true }) in the host hands the channel over: its member hosts at once, nothing written is lost", async () => {
    const host = collector();
    const name = uniqueName("hand-over");
    const hostChannel = open(name, host.listener);
    await once(hostChannel.connect(), "connect");
    const successor = collector();
    const member = open(name, successor.listener);
    const socket = member.connect();
    await once(socket, "connect");
    expect(member.isHost).toBe(false);
    const events: unknown[] = [];
    hostChannel.on("hosting", (v) => events.push(["old host: hosting", v]));
    member.on("hosting", (v) => events.push(["member: hosting", v]));
    member.on("failover", (f) => events.push(["member: failover", f.previousHostPid, f.hostPid, typeof f.ms]));
    hostChannel.close({ handover: true });
    expect(hostChannel.state).toBe("closed");
    expect(hostChannel.isHost).toBe(false);
    // Written before the member noticed: the old host still reads until the connection ends.
    socket.write("in between;");
    await until(() => member.isHost && member.connected, "the member to host");
    socket.write("after the handover");
    await until(() => successor.text().endsWith("after the handover"), "the new host's listener to receive");
    expect(host.text() + successor.text()).toBe("in between;after the handover");
    await until(() => events.length >= 3, "the hosting and failover events");
    expect(events).toEqual(
      expect.arrayContaining([
        ["old host: hosting", false],
        ["member: hosting", true],
        ["member: failover", process.pid, process.pid, "number"],
      ]),
    );
  });

  test("writes queued while a member elects after its host went reach the new host in the order written", async () => {
    for (let round = 0; round < 5; round++) {
      const name = uniqueName("queued-order");
      const hostChannel = open(name, () => undefined);
      await once(hostChannel.connect(), "connect");
      const successor = collector();
      const member = open(name, successor.listener);
      const socket = member.connect();
      await once(socket, "connect");
      // Not once("state"): a "connected" event may still be on its way from the connection.
      const connecting = new Promise<void>((resolve) => {
        const onState = (state: string): void => {
          if (state !== "connecting") return;
          member.off("state", onState);
          resolve();
        };
        member.on("state", onState);
      });
      hostChannel.close({ handover: true });
      await connecting;
      const lines = Array.from({ length: 50 }, (_, i) => `line ${i}\n`);
      const callbacks: number[] = [];
      for (const [i, line] of lines.entries()) socket.write(line, () => callbacks.push(i));
      await until(() => successor.text().length >= lines.join("").length, "the new host's listener to receive every line");
      expect(successor.text()).toBe(lines.join(""));
      await until(() => callbacks.length === lines.length, "every write's callback");
      expect(callbacks).toEqual(lines.map((_, i) => i));
      hostChannel.close({ handover: true });
      member.close({ handover: true });
    }
  });

  test("a hand-over destroys a member's connection that does not read after 1 s (asserted within 0.5-5 s)", async () => {
    const name = uniqueName("hand-over-stuck");
    const accepted: { socket: net.Socket; closedAt?: number }[] = [];
    const hostChannel = open(name, (socket) => {
      const entry: { socket: net.Socket; closedAt?: number } = { socket };
      accepted.push(entry);
      socket.on("close", () => (entry.closedAt = performance.now()));
      // More than any socket buffer holds: the rest waits for a reader that never comes.
      socket.write(Buffer.alloc(16 * 1024 * 1024));
    });
    await once(hostChannel.connect(), "connect");
    // A member that says hello and then never reads.
    const raw = connectRaw(name);
    raw.on("error", () => undefined);
    raw.on(READY, () => {
      raw.write(encodeHello(name));
      raw.pause();
    });
    await until(() => accepted.length === 2, "the host to accept the member");
    const stuck = accepted[1];
    await until(() => stuck.socket.writableLength > 0, "the host's bytes to back up");
    const closedAt = performance.now();
    hostChannel.close({ handover: true });
    await until(() => stuck.closedAt !== undefined, "the stuck member's connection to be destroyed", 6000);
    const after = (stuck.closedAt as number) - closedAt;
    expect(after).toBeGreaterThanOrEqual(500);
    expect(after).toBeLessThan(5000);
    raw.destroy();
  });

  test("bytes the old host sent that the member has not read stay readable, in order, before the new host's", async () => {
    const name = uniqueName("unread-bytes");
    const hostChannel = open(name, (s) => s.write("old host: 1;old host: 2;"));
    await once(hostChannel.connect(), "connect");
    const member = open(name, (s) => s.write("new host: 1;"));
    const socket = member.connect();
    // The member reads nothing until the new host is there.
    socket.pause();
    await once(socket, "connect");
    await until(() => socket.readableLength >= "old host: 1;old host: 2;".length, "the old host's bytes, unread");
    hostChannel.close({ handover: true });
    await until(() => member.isHost && member.connected, "the member to host");
    let text = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => (text += chunk));
    socket.resume();
    await until(() => text.includes("new host: 1;"), "the new host's bytes");
    expect(text).toBe("old host: 1;old host: 2;new host: 1;");
  });

  /** A host channel (echoing, with a count of connections its listener saw) and a connected member. */
  async function hostAndMember(
    label: string,
  ): Promise<{ hostChannel: ProcessChannel; member: ProcessChannel; socket: net.Socket; seen: () => number }> {
    const name = uniqueName(label);
    let seen = 0;
    const echo = (s: net.Socket): void => {
      seen++;
      s.on("data", (chunk) => s.write(chunk));
    };
    const hostChannel = open(name, echo);
    await once(hostChannel.connect(), "connect");
    const member = open(name, echo);
    const socket = member.connect();
    await once(socket, "connect");
    expect(member.isHost).toBe(false);
    return { hostChannel, member, socket, seen: () => seen };
  }

  function echoOf(socket: net.Socket, text: string): Promise<string> {
    return new Promise((resolve) => {
      let got = "";
      const onData = (chunk: Buffer): void => {
        got += chunk;
        if (got.length < text.length) return;
        socket.off("data", onData);
        resolve(got);
      };
      socket.on("data", onData);
      socket.write(text);
    });
  }

  test("close() and socket.destroy() in the host end only its membership: its server goes on serving the members", async () => {
    for (const how of ["close", "destroy"] as const) {
      const { hostChannel, member, socket } = await hostAndMember(`keep-serving-${how}`);
      const events: unknown[] = [];
      hostChannel.on("hosting", (v) => events.push(["host: hosting", v]));
      member.on("state", (state) => events.push(["member: state", state]));
      member.on("failover", () => events.push("member: failover"));
      if (how === "close") hostChannel.close();
      else hostChannel.connect().destroy();
      expect(hostChannel.state).toBe("closed");
      expect(hostChannel.isHost).toBe(true);
      // The member's connection was never touched: same host, same connection, bytes both ways.
      expect(await echoOf(socket, `still served after ${how};`)).toBe(`still served after ${how};`);
      expect(member.state).toBe("connected");
      expect(member.hostPid).toBe(process.pid);
      const status = await member.status();
      expect(status.state === "hosted" && status.status.members).toBe(1);
      expect(events).toEqual([]);
    }
  });

  test("a member that joins after the host closed its own channel is served by the same server", async () => {
    const { hostChannel, seen } = await hostAndMember("join-after-close");
    hostChannel.close();
    const before = seen();
    const late = open(hostChannel.name, () => undefined);
    const socket = late.connect();
    await once(socket, "connect");
    expect(late.isHost).toBe(false);
    expect(seen()).toBe(before + 1);
    expect(await echoOf(socket, "late;")).toBe("late;");
  });

  test("close({ handover: true }) after a plain close() stops the server that went on serving", async () => {
    const { hostChannel, member, socket } = await hostAndMember("handover-later");
    hostChannel.close();
    expect(await echoOf(socket, "one;")).toBe("one;");
    const failover = once<{ previousHostPid: number; hostPid: number }>(member, "failover");
    hostChannel.close({ handover: true });
    expect(hostChannel.isHost).toBe(false);
    await failover;
    expect(member.isHost).toBe(true);
    expect(await echoOf(socket, "two;")).toBe("two;");
  });

  test("connect() again in a host that closed its channel reconnects to its own server, which still hosts", async () => {
    const { hostChannel, member, socket } = await hostAndMember("reconnect-own");
    const serverId = async (): Promise<string | undefined> => {
      const result = await member.status();
      return result.state === "hosted" ? result.status.serverId : undefined;
    };
    const before = await serverId();
    hostChannel.close();
    const again = hostChannel.connect();
    await once(again, "connect");
    expect(hostChannel.isHost).toBe(true);
    expect(hostChannel.hostPid).toBe(process.pid);
    expect(await echoOf(again, "back;")).toBe("back;");
    // The same server instance throughout, and the member still on its first connection.
    expect(await serverId()).toBe(before);
    expect(await echoOf(socket, "member;")).toBe("member;");
    expect(member.state).toBe("connected");
  });

  const serverIdOf = async (channel: ProcessChannel): Promise<string | undefined> => {
    const result = await channel.status({ heir: false });
    return result.state === "hosted" ? result.status.serverId : undefined;
  };

  test("a host whose socket file is removed binds its address again: a newcomer joins it, not a second host", async () => {
    const { hostChannel, member, socket } = await hostAndMember("address-removed");
    const before = await serverIdOf(member);
    const failovers = jest.fn();
    member.on("failover", failovers);
    fs.unlinkSync(transport.path(hostChannel.name));
    await until(() => fs.existsSync(transport.path(hostChannel.name)), "the host to bind its address again", 3000);
    const newcomer = open(hostChannel.name, () => undefined);
    await once(newcomer.connect(), "connect");
    expect(newcomer.isHost).toBe(false);
    expect(await serverIdOf(newcomer)).toBe(before);
    expect(hostChannel.isHost).toBe(true);
    expect(await echoOf(socket, "still;")).toBe("still;");
    expect(failovers).not.toHaveBeenCalled();
  });

  test("a host that finds another server at its address steps down within a second: its members move there", async () => {
    const { hostChannel, member } = await hostAndMember("address-taken");
    const failedOver: string[] = [];
    member.on("failover", () => failedOver.push("member"));
    hostChannel.on("failover", () => failedOver.push("old host"));
    // The file removed, and another process hosts before the old host notices: two hosts. (Should
    // the old host bind its address again first, the newcomer joins it: remove the file again.)
    let second: ProcessChannel | undefined;
    for (let i = 0; i < 5 && !second?.isHost; i++) {
      second?.close();
      fs.unlinkSync(transport.path(hostChannel.name));
      second = open(hostChannel.name, () => undefined);
      await once(second.connect(), "connect");
    }
    if (second === undefined) throw new Error("unreachable");
    expect(second.isHost).toBe(true);
    const secondId = await serverIdOf(second);
    await until(() => !hostChannel.isHost, "the old host to step down", 3000);
    // The old host's members, its own membership too, reconnect to the one host.
    await until(() => failedOver.length === 2 && member.connected && hostChannel.connected, "its members to move", 3000);
    expect(await serverIdOf(second)).toBe(secondId);
    expect(second.isHost).toBe(true);
  });

  /**
   * A host and two members, each channel object with its own view of the transport (what it
   * bound and connected to), the events each emitted, and which member became the heir.
   */
  async function hostAndHeir(label: string): Promise<{
    name: string;
    host: ProcessChannel;
    heir: ProcessChannel;
    other: ProcessChannel;
    calls: Map<ProcessChannel, string[]>;
    events: Map<ProcessChannel, string[]>;
    dropAll: () => void;
    drop: (channel: ProcessChannel) => Promise<void>;
  }> {
    const name = uniqueName(label);
    const accepted: net.Socket[] = [];
    const received = new Map<net.Socket, string>();
    const listener = (socket: net.Socket): void => {
      accepted.push(socket);
      socket.on("data", (chunk) => {
        received.set(socket, (received.get(socket) ?? "") + chunk);
        socket.write(chunk);
      });
    };
    const calls = new Map<ProcessChannel, string[]>();
    const events = new Map<ProcessChannel, string[]>();
    const member = (): ProcessChannel => {
      const log: string[] = [];
      const watched: Transport = {
        ...transport,
        listen: (channel, server) => {
          log.push(`listen ${channel}`);
          return transport.listen(channel, server);
        },
        connect: (channel, socket) => {
          log.push(`connect ${channel}`);
          return transport.connect(channel, socket);
        },
      };
      const channel = open(name, listener, watched);
      const seen: string[] = [];
      for (const event of ["heir", "hosting"] as const) channel.on(event, (value: boolean) => seen.push(`${event} ${value}`));
      calls.set(channel, log);
      events.set(channel, seen);
      return channel;
    };
    const host = member();
    await once(host.connect(), "connect");
    const b = member();
    const c = member();
    await Promise.all([once(b.connect(), "connect"), once(c.connect(), "connect")]);
    // Each member offers itself 150-300 ms after connecting; one wins. The loser's offer is
    // awaited too, so that the calls logged from here on are the test's own.
    const offered = (channel: ProcessChannel): boolean => calls.get(channel)?.includes(`listen ${name}${HANDSHAKE.standbySuffix}`) === true;
    await until(() => (b.isHeir || c.isHeir) && offered(b) && offered(c), "a member to become the heir");
    const [heir, other] = b.isHeir ? [b, c] : [c, b];
    for (const log of calls.values()) log.splice(0);
    const dropAll = (): void => {
      for (const socket of accepted.splice(0)) socket.destroy();
    };
    /** Cuts one member's connection on the host's side (found by a word it writes). */
    const drop = async (channel: ProcessChannel): Promise<void> => {
      const word = `drop-me-${Math.random()}`;
      channel.connect().write(word);
      await until(() => accepted.some((s) => received.get(s)?.includes(word)), "the host to see the member's word");
      accepted.find((s) => received.get(s)?.includes(word))?.destroy();
    };
    return { name, host, heir, other, calls, events, dropAll, drop };
  }

  test("one member is the heir; on a hand-over it hosts, and the others join it without an election", async () => {
    const { name, host, heir, other, calls, events } = await hostAndHeir("heir-hosts");
    expect([host.isHeir, other.isHeir]).toEqual([false, false]);
    expect(events.get(heir)).toEqual(["heir true"]);
    host.close({ handover: true });
    await until(() => heir.isHost && other.connected && !other.isHost, "the heir to host and the other to join it");
    expect(await serverIdOf(other)).toBe(await serverIdOf(heir));
    // The heir hosted with its standby server (no heir any more until a new one offers itself)...
    expect(calls.get(heir)).toEqual(expect.arrayContaining([`listen ${name}`]));
    await until(() => events.get(heir)?.includes("heir false") === true, "the heir to stop being the heir");
    expect(events.get(heir)?.slice(0, 3).sort()).toEqual(["heir false", "heir true", "hosting true"]);
    // ...and the other member asked the heir first, and never tried to host.
    expect(calls.get(other)?.[0]).toBe(`connect ${name}${HANDSHAKE.standbySuffix}`);
    expect(calls.get(other)?.filter((c) => c.startsWith("listen "))).toEqual([]);
    expect(events.get(other)?.filter((e) => e.startsWith("hosting"))).toEqual([]);
  });

  test("members a live host dropped are sent back to it by the heir, which stays the heir", async () => {
    const { host, heir, other, calls, events, dropAll } = await hostAndHeir("heir-sends-back");
    const hostId = await serverIdOf(host);
    const lost = new Set<ProcessChannel>();
    const failovers = jest.fn();
    for (const channel of [host, heir, other]) {
      channel.on("state", (state: string) => state === "connecting" && lost.add(channel));
      channel.on("failover", failovers);
    }
    dropAll();
    await until(() => lost.size === 3 && [host, heir, other].every((c) => c.connected), "everyone to reconnect");
    // Back on the same host: no failover. The host itself never asked the heir, nor bound again.
    expect(failovers).not.toHaveBeenCalled();
    expect(host.isHost).toBe(true);
    expect(calls.get(host)?.filter((c) => c.startsWith("listen ") || c.endsWith(HANDSHAKE.standbySuffix))).toEqual([]);
    for (const channel of [heir, other]) expect(await serverIdOf(channel)).toBe(hostId);
    expect(heir.isHeir).toBe(true);
    expect(events.get(heir)).toEqual(["heir true"]);
    expect(events.get(other)).toEqual([]);
  });

  test("a member the live host dropped is sent back by the heir while the heir is still connected to the host", async () => {
    const { host, heir, other, drop } = await hostAndHeir("heir-parks");
    const hostId = await serverIdOf(host);
    let lostAt = 0;
    other.on("state", (state: string) => {
      if (state === "connecting" && lostAt === 0) lostAt = performance.now();
    });
    await drop(other);
    await until(() => lostAt > 0 && other.connected, "the member to come back", 5000);
    // It went to the heir first (no failover is known yet). The heir, still connected to the host,
    // tells it to go back 30 ms after it parked; without that it would wait on the heir for the
    // 3 s handshake bound.
    expect(performance.now() - lostAt).toBeLessThan(1500);
    expect(await serverIdOf(other)).toBe(hostId);
    expect([heir.connected, heir.isHeir, host.isHost]).toEqual([true, true, true]);
  });

  test("the members that lost the offer to be the heir offer again every 1-2 s, no more often", async () => {
    const { name, heir, other, calls } = await hostAndHeir("heir-retry");
    const offers = (): number => calls.get(other)?.filter((c) => c === `listen ${name}${HANDSHAKE.standbySuffix}`).length ?? 0;
    // Its first offer failed before the logs were cleared: within 2 s it offers again.
    await until(() => offers() >= 1, "the member to offer again", 2500);
    const first = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 2500));
    // A second try 1-2 s after the first, maybe a third; never more in 2.5 s.
    expect(offers()).toBeGreaterThanOrEqual(2);
    expect(offers()).toBeLessThanOrEqual(3);
    expect(performance.now() - first).toBeGreaterThanOrEqual(2500);
    expect([heir.isHeir, other.isHeir]).toEqual([true, false]);
  });

  test("a member offers to be the heir 150-300 ms after it connects, not before; a host never does", async () => {
    const name = uniqueName("heir-delay");
    const host = open(name, () => undefined);
    await once(host.connect(), "connect");
    const member = open(name, () => undefined);
    const hostEvents: string[] = [];
    host.on("heir", (isHeir: boolean) => hostEvents.push(`heir ${isHeir}`));
    let connectedAt = 0;
    let heirAt = 0;
    member.on("heir", () => (heirAt ||= performance.now()));
    member.connect().once("connect", () => (connectedAt = performance.now()));
    await until(() => member.isHeir, "the member to become the heir", 5000);
    // A timer never fires early: the lower bound is exact; the upper one leaves room for load.
    expect(heirAt - connectedAt).toBeGreaterThanOrEqual(145);
    expect(heirAt - connectedAt).toBeLessThan(1000);
    expect([host.isHeir, hostEvents]).toEqual([false, []]);
  });

  test("the heir that hosts stands by no more, and frees the standby address: a member left becomes the next heir", async () => {
    const { host, heir, other, events } = await hostAndHeir("heir-next");
    host.close({ handover: true });
    await until(() => heir.isHost && other.connected, "the heir to host and the other to join it");
    expect(heir.isHeir).toBe(false);
    // Hosting with the standby server freed the standby address (after a short grace): the
    // member left offers itself there.
    await until(() => other.isHeir, "the member left to become the heir", 5000);
    expect(events.get(other)).toEqual(["heir true"]);
    // The old host was never the heir.
    expect(events.get(host)?.filter((e) => e.startsWith("heir"))).toEqual([]);
  });

  test("an heir whose channel closes stops standing by: 'heir' false, and another member becomes the heir", async () => {
    const { heir, other, events } = await hostAndHeir("heir-closes");
    heir.close();
    await until(() => events.get(heir)?.includes("heir false") === true, "the closed heir's heir false");
    expect(heir.isHeir).toBe(false);
    await until(() => other.isHeir, "the other member to become the heir", 5000);
  });

  test("a member closed while its offer to be the heir is binding never stands by, and frees the address", async () => {
    const name = uniqueName("heir-offer-closed");
    const host = open(name, () => undefined);
    await once(host.connect(), "connect");
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let offering = false;
    const slowStandby: Transport = {
      ...transport,
      listen: async (channel, server) => {
        if (channel.endsWith(HANDSHAKE.standbySuffix)) {
          offering = true;
          await gate;
        }
        return transport.listen(channel, server);
      },
    };
    const member = open(name, () => undefined, slowStandby);
    const heirEvents: boolean[] = [];
    member.on("heir", (isHeir: boolean) => heirEvents.push(isHeir));
    await once(member.connect(), "connect");
    await until(() => offering, "the member's offer to bind the standby address", 5000);
    member.close();
    release();
    const next = open(name, () => undefined);
    await once(next.connect(), "connect");
    await until(() => next.isHeir, "a member that joined later to become the heir", 5000);
    expect([member.isHeir, heirEvents]).toEqual([false, []]);
  });

  test("close(options) checks its options: ERR_INVALID_ARG_TYPE", () => {
    const channel = open(uniqueName("close-options"), () => undefined);
    for (const options of [null, "handover", 1, { handover: "yes" }, { handover: 1 }]) {
      expect(() => channel.close(options as never)).toThrow(expect.objectContaining({ code: "ERR_INVALID_ARG_TYPE" }));
    }
    expect(channel.state).toBe("initiated");
    channel.close({});
    expect(channel.state).toBe("closed");
  });

  test("connect() after close opens the channel again with a new socket", async () => {
    const channel = open(uniqueName("reopen"), collector().listener);
    const first = channel.connect();
    await once(first, "connect");
    first.destroy();
    const second = channel.connect();
    expect(second).not.toBe(first);
    await once(second, "connect");
    expect(channel.state).toBe("connected");
  });

  test("no connection within the timeout: ETIMEDOUT naming the channel and the last error, then closed", async () => {
    const name = uniqueName("timeout");
    const channel = open(name, collector().listener, deadEndTransport());
    const socket = channel.connect(300);
    const written = new Promise<Error | null | undefined>((resolve) => socket.write("lost?", resolve));
    const [err] = await Promise.all([once<OpenChannelError>(socket, "error"), once(socket, "close")]);
    expect(err).toBeInstanceOf(OpenChannelError);
    expect(err.code).toBe("ETIMEDOUT");
    expect(err.message).toContain(`"${name}"`);
    expect(err.message).toContain("300 ms");
    expect(err.message).toMatch(/EADDRINUSE|ENOENT/);
    expect(channel.state).toBe("closed");
    expect(((await written) as OpenChannelError).code).toBe("ETIMEDOUT");
  });

  test("leftovers a transport cannot reclaim make the election back off to 100 ms, never spin, until the timeout", async () => {
    const t = testTransport();
    const name = uniqueName("no-reclaim");
    // A dead host's socket file: a process that listened there and was SIGKILLed.
    const child = spawn(process.execPath, [
      "-e",
      `require("net").createServer().listen(${JSON.stringify(t.path(name))}, () => console.log("up"))`,
    ]);
    await new Promise((resolve) => child.stdout.once("data", resolve));
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
    let attempts = 0;
    const counting: Transport = {
      ...t,
      connect: (channel, socket) => {
        attempts++;
        return t.connect(channel, socket);
      },
    };
    const channel = open(name, collector().listener, counting);
    const err = await once<OpenChannelError>(channel.connect(500), "error");
    expect(err.code).toBe("ETIMEDOUT");
    // A spinning loop makes thousands of attempts in 500 ms (one stuck at 1 ms about 180); backing
    // off (1 ms doubling to 100 ms, times 0.5-1) about 12, at least 7; one that never stops
    // doubling, about 4.
    expect(attempts).toBeLessThan(50);
    expect(attempts).toBeGreaterThanOrEqual(7);
  });

  test("a stranger at the address is never taken for the host", async () => {
    const t = testTransport();
    const name = uniqueName("stranger");
    const accepted = new Set<net.Socket>();
    const stranger = net.createServer((s) => {
      accepted.add(s.on("close", () => accepted.delete(s)));
      s.on("error", () => undefined);
      s.end("HTTP/1.1 400 Bad Request\r\n\r\n");
    });
    await new Promise<void>((r) => stranger.listen(t.path(name), r));
    try {
      const channel = open(name, collector().listener, t);
      const socket = channel.connect(500);
      const connected = jest.fn();
      socket.on("connect", connected);
      const err = await once<OpenChannelError>(socket, "error");
      expect(err.code).toBe("ETIMEDOUT");
      expect(err.message).toContain("handshake");
      expect(connected).not.toHaveBeenCalled();
    } finally {
      // Its connections too: one still open would keep Jest from exiting.
      for (const s of accepted) s.destroy();
      await new Promise((r) => stranger.close(r));
    }
  });

  test.each(["close()", "socket.destroy()"])(
    "%s between two attempts (the last one ended by the peer) closes the channel for good",
    async (how) => {
      const t = testTransport();
      const name = uniqueName("close-between");
      const accepted = new Set<net.Socket>();
      // Ends every connection during the handshake: the channel retries after each end of stream.
      const stranger = net.createServer((s) => {
        accepted.add(s.on("close", () => accepted.delete(s)));
        s.on("error", () => undefined);
        s.end();
      });
      await new Promise<void>((r) => stranger.listen(t.path(name), r));
      try {
        const channel = open(name, collector().listener, t);
        const socket = channel.connect(0);
        const closed = jest.fn();
        socket.on("close", closed);
        socket.on("error", () => undefined);
        await until(() => socket.destroyed && channel.state === "connecting", "a wait between two attempts");
        if (how === "close()") channel.close();
        else socket.destroy();
        expect(channel.state).toBe("closed");
        // Room for the next attempt (and an election) had the close been missed.
        await new Promise((r) => setTimeout(r, 300));
        expect([channel.state, closed.mock.calls.length]).toEqual(["closed", 1]);
      } finally {
        for (const s of accepted) s.destroy();
        await new Promise((r) => stranger.close(r));
      }
    },
  );
});

describe("the election, case by case (in one process, test transport)", () => {
  const coded = (code: string): Error => Object.assign(new Error(`test ${code}`), { code });

  test("a bind that fails with a passing error is tried again, never handed to reclaim; connect(0) never times out", async () => {
    const name = uniqueName("bind-retried");
    let failures = 0;
    const reclaim = jest.fn(async () => false);
    const flaky: Transport = {
      ...transport,
      listen: (channel, server) =>
        channel === name && failures++ < 3 ? Promise.reject(coded("EBUSY")) : transport.listen(channel, server),
      reclaim,
    };
    const channel = open(name, () => undefined, flaky);
    const errors: Error[] = [];
    channel.connect(0).on("error", (err) => errors.push(err));
    await until(() => channel.connected, "the channel to connect after three failed binds");
    expect([channel.isHost, failures, reclaim.mock.calls.length, errors]).toEqual([true, 4, 0, []]);
  });

  test("a transport whose connect rejects: the attempt ends at once and the next one connects", async () => {
    const name = uniqueName("connect-rejects");
    open(name, () => undefined).connect();
    await until(() => opened[opened.length - 1].connected, "the host");
    let rejected = 0;
    const rejecting: Transport = {
      ...transport,
      connect: (channel, socket) => (rejected++ === 0 ? Promise.reject(coded("ECONNREFUSED")) : transport.connect(channel, socket)),
    };
    const member = open(name, () => undefined, rejecting);
    const started = performance.now();
    member.connect(2000);
    await until(() => member.connected, "the member to connect after a rejected connect", 2500);
    // Without the rejection handled, the attempt would wait for its 3 s handshake bound.
    expect(performance.now() - started).toBeLessThan(1500);
    expect([rejected >= 2, member.isHost]).toEqual([true, false]);
  });

  test("a transport whose connect rejects later (a lookup that finds no host) after the host went: the member hosts", async () => {
    const name = uniqueName("connect-rejects-later");
    const host = open(name, () => undefined);
    host.connect();
    await until(() => host.connected, "the host");
    let rejected = 0;
    const lookingUp: Transport = {
      ...transport,
      // As a transport that looks the host up first (in Redis, say): none there, no connect at all.
      connect: async (channel, socket) => {
        await new Promise((r) => setTimeout(r, 5));
        if (!fs.existsSync(transport.path(channel))) {
          rejected++;
          throw coded("ENOENT");
        }
        socket.connect({ path: transport.path(channel) });
      },
    };
    const member = open(name, () => undefined, lookingUp);
    member.connect(0);
    await until(() => member.connected, "the member");
    // Gone before the member could offer to be its heir: the member's next connect finds nobody.
    host.close({ handover: true });
    await until(() => member.connected && member.isHost, "the member to host after its lookup found nobody", 5000);
    expect(rejected).toBeGreaterThanOrEqual(1);
  });

  test.each(["closed", "timed out"])("a transport whose lookup comes back after the channel %s opens no connection", async (how) => {
    const name = uniqueName("late-connect");
    const host = open(name, () => undefined);
    host.connect();
    await until(() => host.connected, "the host");
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    let lateConnects = 0;
    const slow: Transport = {
      ...transport,
      // As a transport that looks the host up first, and whose lookup is slow.
      connect: async (channel, socket) => {
        await gate;
        lateConnects++;
        socket.connect({ path: transport.path(channel) });
      },
    };
    const member = open(name, () => undefined, slow);
    const socket = member.connect(how === "closed" ? 0 : 200);
    const events: string[] = [];
    for (const e of ["connect", "ready", "close", "error"]) socket.on(e, () => events.push(e));
    if (how === "closed") {
      await new Promise((r) => setTimeout(r, 50));
      socket.destroy();
    }
    await until(() => events.includes("close"), "the socket to close");
    release();
    await until(() => lateConnects === 1, "the late lookup");
    await new Promise((r) => setTimeout(r, 200));
    expect([member.state, socket.destroyed, socket.connecting, events.includes("connect")]).toEqual(["closed", true, false, false]);
  });

  test("a secret the transport cannot read when about to host fails the channel with that error", async () => {
    const name = uniqueName("secret-unreadable");
    let reads = 0;
    // Nobody hosts: the first read is the one before binding, and it fails (a later one would not).
    const unsafe: Transport = {
      ...transport,
      secret: () => {
        if (reads++ > 0) return Buffer.alloc(32, 1);
        throw openChannelError("ERR_OPEN_CHANNEL_UNSAFE_DIR", { channel: name, secretFile: "/test/secret", why: "others can read it" });
      },
    };
    const channel = open(name, () => undefined, unsafe);
    const errors: NodeJS.ErrnoException[] = [];
    channel.connect(2000).on("error", (err) => errors.push(err));
    await until(() => channel.state === "closed" || channel.connected, "the channel to fail", 3000);
    expect([errors.map((e) => e.code), channel.isHost, channel.state, reads]).toEqual([
      ["ERR_OPEN_CHANNEL_UNSAFE_DIR"],
      false,
      "closed",
      1,
    ]);
  });

  test("a host over a transport with no address() reports an empty address in its status", async () => {
    const { address: _address, ...rest } = transport;
    const channel = open(uniqueName("no-address"), () => undefined, rest as Transport);
    await once(channel.connect(), "connect");
    const result = await channel.status({ heir: false });
    expect(result.state === "hosted" && result.status.address).toBe("");
  });

  test("a channel that stopped hosting stops checking its address", async () => {
    const name = uniqueName("stops-checking");
    const connects: string[] = [];
    const counting: Transport = {
      ...transport,
      connect: (channel, socket) => {
        connects.push(channel);
        return transport.connect(channel, socket);
      },
    };
    const host = open(name, () => undefined, counting);
    await once(host.connect(), "connect");
    // While it hosts it checks its address every 500 ms (a probe connection each time)...
    await until(() => connects.length >= 2, "a check of the address", 2000);
    host.close({ handover: true });
    connects.splice(0);
    // ...and once it no longer hosts, never again.
    await new Promise((resolve) => setTimeout(resolve, 1300));
    expect(connects).toEqual([]);
  });

  test("a host whose address check gets no answer in time (a busy moment) goes on hosting", async () => {
    const name = uniqueName("check-silent");
    // A listener that accepts and never answers: what a probe meets when the host is too busy.
    const held: net.Socket[] = [];
    const silent = net.createServer((socket) => held.push(socket));
    const silentPath = `${transport.path(name)}.silent`;
    await new Promise<void>((resolve) => silent.listen(silentPath, resolve));
    let checks = 0;
    let host: ProcessChannel | undefined;
    const slow: Transport = {
      ...transport,
      connect: (channel, socket) => {
        if (!host?.connected) return transport.connect(channel, socket);
        checks++;
        socket.connect({ path: silentPath });
      },
    };
    host = open(name, () => undefined, slow);
    const hosting: boolean[] = [];
    host.on("hosting", (isHost: boolean) => hosting.push(isHost));
    await once(host.connect(), "connect");
    await until(() => checks >= 3, "three address checks", 4000);
    silent.close();
    for (const socket of held) socket.destroy();
    expect([host.isHost, hosting]).toEqual([true, [true]]);
  });

  test("a host whose address is gone and cannot be bound again steps down", async () => {
    const name = uniqueName("rebind-fails");
    let refuse = false;
    const refusing: Transport = {
      ...transport,
      listen: (channel, server) =>
        refuse && channel === name
          ? Promise.reject(Object.assign(new Error("test: taken"), { code: "EADDRINUSE" }))
          : transport.listen(channel, server),
    };
    const host = open(name, () => undefined, refusing);
    const hosting: boolean[] = [];
    host.on("hosting", (isHost: boolean) => hosting.push(isHost));
    host.connect(0).on("error", () => undefined);
    await until(() => host.connected, "the host");
    refuse = true;
    fs.unlinkSync(transport.path(name));
    // Within two checks (500 ms each) it finds nobody there, fails to bind, and stops hosting.
    await until(() => hosting.length === 2, "the host to step down", 3000);
    expect([hosting, host.isHost]).toEqual([[true, false], false]);
  });

  test("a host that loses its own connection and its address at once lets its old server go: its members join the new one", async () => {
    const name = uniqueName("own-lost");
    const accepted: net.Socket[] = [];
    const host = open(name, (socket) => accepted.push(socket));
    const hosting: boolean[] = [];
    host.on("hosting", (isHost: boolean) => hosting.push(isHost));
    await once(host.connect(), "connect");
    const member = open(name, () => undefined);
    await once(member.connect(), "connect");
    const memberLost = jest.fn();
    member.on("state", (state: string) => state === "connecting" && memberLost());
    // The socket file gone and the host's own connection (the first accepted) cut, together: the
    // host finds nobody at its address before its address check does.
    fs.unlinkSync(transport.path(name));
    accepted[0].destroy();
    await until(() => memberLost.mock.calls.length > 0 && member.connected && host.connected, "both to reconnect", 5000);
    // The old server was let go (its members cut); the new one, at the address, has both.
    const result = await host.status({ heir: false });
    expect(result.state === "hosted" && result.status.members).toBe(2);
    expect([host.isHost, hosting]).toEqual([true, [true, false, true]]);
  });

  /** A stale file at the channel's address, and a reclaim that replaces it (or not) as told. */
  function withLeftover(label: string, reclaimAs: Array<"bind" | "taken" | "throw">) {
    const name = uniqueName(label);
    fs.writeFileSync(transport.path(name), "a dead host's leftover");
    const reclaims: string[] = [];
    const reclaiming: Transport = {
      ...transport,
      reclaim: async (channel, server) => {
        const how = reclaimAs[reclaims.length] ?? "bind";
        reclaims.push(how);
        if (how === "throw") throw coded("EBUSY");
        if (how === "taken") return false;
        fs.rmSync(transport.path(channel), { force: true });
        await transport.listen(channel, server);
        return true;
      },
    };
    return { name, reclaims, reclaiming };
  }

  test("a dead host's leftover: reclaim binds in its place, and this process hosts once", async () => {
    const { name, reclaims, reclaiming } = withLeftover("leftover-bind", ["bind"]);
    const channel = open(name, () => undefined, reclaiming);
    const hosting: boolean[] = [];
    channel.on("hosting", (isHost: boolean) => hosting.push(isHost));
    channel.connect(2000).on("error", () => undefined);
    await until(() => channel.connected || channel.state === "closed", "the channel to connect", 3000);
    expect([channel.isHost, reclaims, hosting]).toEqual([true, ["bind"], [true]]);
  });

  test("reclaim that finds the address taken, or fails, is not hosting: the channel asks again and hosts when it can", async () => {
    const { name, reclaims, reclaiming } = withLeftover("leftover-taken", ["taken", "throw", "bind"]);
    const channel = open(name, () => undefined, reclaiming);
    const hosting: boolean[] = [];
    channel.on("hosting", (isHost: boolean) => hosting.push(isHost));
    channel.connect(3000).on("error", () => undefined);
    await until(() => channel.connected || channel.state === "closed", "the channel to connect", 4000);
    // Hosting only after the reclaim that bound: never on "taken" or an error.
    expect([channel.isHost, reclaims, hosting]).toEqual([true, ["taken", "throw", "bind"], [true]]);
  });
});

describe("argument errors", () => {
  const listener = (): void => undefined;
  test("wrong types throw TypeError with ERR_INVALID_ARG_TYPE at once", () => {
    for (const call of [
      () => openChannel(42 as unknown as string, listener, { transport }),
      () => openChannel("name", "nope" as unknown as () => void, { transport }),
      () => openChannel("name", listener, "opts" as unknown as object),
      () => openChannel("name", listener, { transport: { name: "x" } as never }),
    ]) {
      expect(call).toThrow(TypeError);
      expect(call).toThrow(expect.objectContaining({ code: "ERR_INVALID_ARG_TYPE" }));
    }
    expect(() => open("n", listener).connect("1000" as unknown as number)).toThrow(
      expect.objectContaining({ code: "ERR_INVALID_ARG_TYPE" }),
    );
  });

  test("an empty name is ERR_INVALID_ARG_VALUE; a name over 1024 bytes ERR_OUT_OF_RANGE", () => {
    expect(() => openChannel("", listener, { transport })).toThrow(expect.objectContaining({ code: "ERR_INVALID_ARG_VALUE" }));
    expect(() => openChannel("é".repeat(513), listener, { transport })).toThrow(RangeError);
  });

  test("a non-finite or negative timeout throws RangeError ERR_OUT_OF_RANGE", () => {
    const channel = open(uniqueName("range"), listener);
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => channel.connect(bad)).toThrow(RangeError);
      expect(() => channel.connect(bad)).toThrow(expect.objectContaining({ code: "ERR_OUT_OF_RANGE" }));
    }
    expect(channel.state).toBe("initiated");
  });

  test("core without a transport says so and names what to install", () => {
    expect(() => openChannel("jobs", listener)).toThrow(expect.objectContaining({ code: "ERR_OPEN_CHANNEL_NO_TRANSPORT" }));
    expect(() => openChannel("jobs", listener)).toThrow(/transport-unix/);
  });

  test("openChannel(listener) uses the default name", () => {
    expect(openChannel(listener, { transport }).name).toBe("open-channel");
  });
});
