import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { encodeHello, HANDSHAKE, newNonce, ReplyParser, StatusBodyParser } from "@open-channel/core";
import { until } from "./test-transport";

// The host's server on its own, driven by hand: what it does to its members and to hellos when it
// stops serving (close, step aside, orphaned) and while an heir's server parks them.
const { HostServer } = require("../dist/host.js") as typeof import("../src/host");

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "oc-host-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const made: { host: InstanceType<typeof HostServer>; sockets: net.Socket[] }[] = [];
afterEach(() => {
  for (const { host, sockets } of made.splice(0)) {
    host.close("test over");
    for (const socket of [...sockets, ...host.members]) socket.destroy();
  }
});

let counter = 0;

/** A HostServer listening on a fresh path; `accepted`: the raw connections its server took. */
async function hostServer(options: { serving?: boolean; listener?: (socket: net.Socket) => void } = {}): Promise<{
  host: InstanceType<typeof HostServer>;
  name: string;
  file: string;
  server: net.Server;
  admitted: net.Socket[];
  accepted: net.Socket[];
  members: net.Socket[];
}> {
  const name = `host-${process.pid}-${++counter}`;
  const admitted: net.Socket[] = [];
  const host = new HostServer(
    name,
    (socket) => {
      admitted.push(socket);
      options.listener?.(socket);
    },
    undefined,
    { serving: options.serving },
  );
  const members: net.Socket[] = [];
  made.push({ host, sockets: members });
  const server = host.createServer();
  const accepted: net.Socket[] = [];
  server.on("connection", (socket) => accepted.push(socket));
  const file = path.join(dir, `${counter}.sock`);
  await new Promise<void>((resolve) => server.listen(file, resolve));
  return { host, name, file, server, admitted, accepted, members };
}

/** A member connection: what it received, and whether it ended or was cut. */
interface Member {
  socket: net.Socket;
  received: () => Buffer;
  /** The reply's status, once a whole reply came. */
  status: () => number | undefined;
  closed: Promise<{ ended: boolean }>;
}

function member(file: string, list: net.Socket[], hello?: Buffer): Member {
  const socket = net.connect(file);
  list.push(socket);
  let received = Buffer.alloc(0);
  let ended = false;
  socket.on("error", () => undefined);
  if (hello !== undefined) socket.on("connect", () => socket.write(hello));
  socket.on("data", (chunk) => (received = Buffer.concat([received, chunk])));
  socket.on("end", () => (ended = true));
  const closed = new Promise<{ ended: boolean }>((resolve) => socket.on("close", () => resolve({ ended })));
  return {
    socket,
    received: () => received,
    status: () => {
      const result = new ReplyParser().feed(received);
      return result.state === "done" ? result.value.status : undefined;
    },
    closed,
  };
}

/** `promise`, or a failure naming `what` after `ms`. */
function within<T>(promise: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

describe("HostServer", () => {
  test("an heir's server parks a hello until serve(): then the member is admitted with the bytes that followed", async () => {
    let parks = 0;
    const { host, name, file, admitted, members } = await hostServer({ serving: false });
    host.onPark = () => parks++;
    const m = member(file, members, encodeHello(name));
    await until(() => parks === 1, "the hello to be parked");
    expect(m.received().length).toBe(0);
    expect(admitted.length).toBe(0);
    host.serve();
    await until(() => m.status() !== undefined && admitted.length === 1, "the member to be admitted");
    expect(m.status()).toBe(HANDSHAKE.statusOk);
    expect(host.members.size).toBe(1);
  });

  test("bytes a member sends while its hello is parked close its connection: serve() never admits it", async () => {
    const { host, name, file, accepted, admitted, members } = await hostServer({ serving: false });
    let parks = 0;
    host.onPark = () => parks++;
    const m = member(file, members, encodeHello(name));
    await until(() => parks === 1, "the hello to be parked");
    m.socket.write("too soon");
    // Cut when the bytes come, well before the 3 s bound on a parked hello would cut it.
    await until(() => accepted[0].destroyed || parks > 1, "the host to read the bytes", 2000);
    expect(accepted[0].destroyed).toBe(true);
    expect(parks).toBe(1);
    await within(m.closed, "the member's connection to close");
    expect(m.received().length).toBe(0);
    host.serve();
    // Another member parked and resumed after it: the server still serves.
    const next = member(file, members, encodeHello(name));
    await until(() => admitted.length === 1 && next.status() !== undefined, "the next member to be admitted");
    expect(admitted.length).toBe(1);
    expect(host.members.size).toBe(1);
  });

  test("close() refuses parked hellos as not the host, and hellos of connections it accepted before", async () => {
    const { host, name, file, accepted, admitted, members, server } = await hostServer({ serving: false });
    let parks = 0;
    host.onPark = () => parks++;
    const parked = member(file, members, encodeHello(name));
    await until(() => parks === 1, "the hello to be parked");
    // Connected, but its hello comes after close().
    const late = member(file, members);
    await until(() => accepted.length === 2, "the late connection to be accepted");
    host.close("closing");
    expect(server.listening).toBe(false);
    expect(await within(parked.closed, "parked to close")).toEqual({ ended: true });
    expect(parked.status()).toBe(HANDSHAKE.statusNotHost);
    late.socket.write(encodeHello(name));
    expect(await within(late.closed, "late to close")).toEqual({ ended: true });
    expect(late.status()).toBe(HANDSHAKE.statusNotHost);
    expect(parks).toBe(1);
    expect(admitted.length).toBe(0);
  });

  /** A host with two admitted members: one reading, one that never reads while the host writes it more than buffers hold. */
  async function hostWithMembers(): Promise<
    Awaited<ReturnType<typeof hostServer>> & { reading: Member; stuck: Member; stuckHostSide: () => net.Socket }
  > {
    const h = await hostServer({
      listener: (socket) => {
        if (h.admitted.length === 2) socket.write(Buffer.alloc(16 * 1024 * 1024));
      },
    });
    const reading = member(h.file, h.members, encodeHello(h.name));
    await until(() => h.admitted.length === 1, "the first member to be admitted");
    const stuck = member(h.file, h.members, encodeHello(h.name));
    stuck.socket.pause();
    await until(() => h.admitted.length === 2, "the second member to be admitted");
    const stuckHostSide = (): net.Socket => h.admitted[1];
    await until(() => stuckHostSide().writableLength > 0, "the host's bytes to the stuck member to back up");
    return { ...h, reading, stuck, stuckHostSide };
  }

  test("stepAside(): members are ended (one that does not read is cut after 1 s, asserted within 0.5-5 s); the listening handle stays, new connections are cut", async () => {
    const { host, name, file, server, admitted, members, reading, stuckHostSide } = await hostWithMembers();
    let stuckClosedAt = 0;
    stuckHostSide().on("close", () => (stuckClosedAt = performance.now()));
    const asideAt = performance.now();
    host.stepAside("another server owns the address");
    // Ended, not cut: what the listener wrote is flushed first.
    for (const socket of admitted) expect([socket.writableEnded, socket.destroyed]).toEqual([true, false]);
    expect(await within(reading.closed, "reading to close")).toEqual({ ended: true });
    await until(() => stuckClosedAt > 0, "the stuck member's connection to be destroyed", 6000);
    expect(stuckClosedAt - asideAt).toBeGreaterThanOrEqual(500);
    expect(stuckClosedAt - asideAt).toBeLessThan(5000);
    // Its handle still listens (closing a Unix server would unlink the new host's file)...
    expect(server.listening).toBe(true);
    expect(fs.existsSync(file)).toBe(true);
    // ...but admits nobody.
    const late = member(file, members, encodeHello(name));
    await within(late.closed, "late to close");
    expect(late.received().length).toBe(0);
    expect(admitted.length).toBe(2);
  });

  test("orphan(): every member is cut at once and forgotten; the listening handle stays", async () => {
    const { host, name, file, server, admitted, members, reading } = await hostWithMembers();
    host.orphan();
    // Cut, not ended: the stuck member's backlog is dropped at once.
    for (const socket of admitted) expect(socket.destroyed).toBe(true);
    expect(host.members.size).toBe(0);
    await within(reading.closed, "the reading member's connection to close");
    expect(server.listening).toBe(true);
    const late = member(file, members, encodeHello(name));
    await within(late.closed, "late to close");
    expect(late.received().length).toBe(0);
    expect(admitted.length).toBe(2);
  });

  test("orphan() refuses the hellos an heir's server parked", async () => {
    const { host, name, file, members, server } = await hostServer({ serving: false });
    let parks = 0;
    host.onPark = () => parks++;
    const parked = member(file, members, encodeHello(name));
    await until(() => parks === 1, "the hello to be parked");
    host.orphan();
    expect(await within(parked.closed, "parked to close")).toEqual({ ended: true });
    expect(parked.status()).toBe(HANDSHAKE.statusNotHost);
    expect(server.listening).toBe(true);
  });

  test("a status request gets the status; one to an heir's server is told at once that it does not host", async () => {
    const { name, file, members } = await hostServer();
    const asked = member(file, members, encodeHello(name, undefined, HANDSHAKE.kindStatus));
    expect(await within(asked.closed, "the status to come")).toEqual({ ended: true });
    const reply = new ReplyParser().feed(asked.received());
    if (reply.state !== "done") throw new Error(`no reply: ${reply.state}`);
    expect(reply.value.status).toBe(HANDSHAKE.statusOk);
    const body = new StatusBodyParser().feed(reply.rest);
    if (body.state !== "done") throw new Error(`no status body: ${body.state}`);
    // A HostServer the channel has not told where it hosts says so.
    expect(body.value).toMatchObject({ channel: name, pid: process.pid, transport: "unknown", address: "", members: 0 });

    const heir = await hostServer({ serving: false });
    let parks = 0;
    heir.host.onPark = () => parks++;
    const toHeir = member(heir.file, heir.members, encodeHello(heir.name, undefined, HANDSHAKE.kindStatus));
    expect(await within(toHeir.closed, "the heir's answer", 2000)).toEqual({ ended: true });
    expect(toHeir.status()).toBe(HANDSHAKE.statusNotHost);
    expect(parks).toBe(0);
  });

  test("hellos for another channel are refused at once, a probe's too, and by an heir's server without parking them", async () => {
    for (const serving of [true, false]) {
      const { host, file, members, admitted } = await hostServer({ serving });
      let parks = 0;
      host.onPark = () => parks++;
      for (const kind of [HANDSHAKE.kindJoin, HANDSHAKE.kindProbe]) {
        const m = member(file, members, encodeHello("another-channel", undefined, kind));
        expect([serving, kind, await within(m.closed, "the refusal", 2000)]).toEqual([serving, kind, { ended: true }]);
        expect([serving, kind, m.status()]).toEqual([serving, kind, HANDSHAKE.statusWrongChannel]);
      }
      expect(parks).toBe(0);
      expect(admitted.length).toBe(0);
    }
  });

  test("a host without a secret admits a member whose hello carries a nonce (no proofs exchanged)", async () => {
    const { name, file, members, admitted } = await hostServer();
    const m = member(file, members, encodeHello(name, newNonce()));
    await until(() => admitted.length === 1 && m.status() !== undefined, "the member to be admitted");
    expect(m.status()).toBe(HANDSHAKE.statusOk);
    // A reply without the host's proof: nothing more than the reply came.
    expect(m.received().length).toBe(HANDSHAKE.replyLength);
  });

  test("a member connection that fails (the member gone while the host writes) never crashes the host", async () => {
    const writers: NodeJS.Timeout[] = [];
    // The listener adds no error listener of its own, as many do not.
    const { name, file, members, admitted } = await hostServer({
      listener: (socket) => writers.push(setInterval(() => socket.write(Buffer.alloc(64 * 1024)), 2)),
    });
    try {
      const m = member(file, members, encodeHello(name));
      await until(() => admitted.length === 1 && m.received().length > HANDSHAKE.replyLength, "the host to write");
      // The member stops reading until the host has writes queued: cut then, those writes fail
      // (EPIPE or ECONNRESET) whatever the host reads first (an EOF alone would close it cleanly).
      m.socket.pause();
      await until(() => admitted[0].writableLength > 0, "the host's writes to queue");
      m.socket.destroy();
      await until(() => admitted[0].destroyed, "the host's side to fail");
      expect(admitted[0].errored).toBeTruthy();
    } finally {
      for (const w of writers) clearInterval(w);
    }
  });
});
