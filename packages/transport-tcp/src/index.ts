/**
 * `@open-channel/transport-tcp`: open-channel over loopback TCP.
 *
 * @packageDocumentation
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import type * as net from "node:net";
import * as path from "node:path";
import {
  addressInUse,
  argError,
  type ChannelEntry,
  channelsFromNames,
  debug,
  defaultPrivateDir,
  ensurePrivateDir,
  listenExclusive,
  probeChannel,
  readOrCreateSecret,
  type Transport,
  tryLock,
  withAddressLock,
} from "@open-channel/core";
import { type PortRecord, parseRecord, portFileName, publishExclusive, readRaw } from "./port-file";

export { type PortRecord, portFileName } from "./port-file";

/**
 * Options of {@link tcpTransport}.
 *
 * @example
 * const transport = tcpTransport({ dir: "/run/my-app", host: "::1" });
 */
export interface TcpTransportOptions {
  /**
   * Private directory for the port files and the per-user secret (created with mode 0700 if
   * missing). Default: the same per-user directory as the Unix transport.
   */
  dir?: string;
  /** Loopback address to listen on: `"127.0.0.1"` (default) or `"::1"`. Never another interface. */
  host?: "127.0.0.1" | "::1";
}

function noHost(message: string, code = "ENOENT"): NodeJS.ErrnoException {
  const err = new Error(message) as NodeJS.ErrnoException;
  err.code = code;
  return err;
}

/**
 * Loopback TCP. The host listens on a random loopback port and publishes it in a port file in
 * the user's private directory; publishing is an exclusive create (write a temporary file, then
 * hard-link it into place), so it is the election: a second publisher gets `EADDRINUSE`.
 *
 * Any local user can connect to a loopback port, so the transport has a per-user secret (a 0600
 * file) and every connection runs a challenge-response proof both ways before it reaches the
 * user's listener; the secret itself never travels. The same proof tells our host from a stranger
 * program that took the port after a host died: a port file that points at a stranger, or at
 * nobody, is replaced under the channel's lock, by exactly one process.
 *
 * @example
 * const transport = new TcpTransport({ host: "::1" }); // the same as tcpTransport({ host: "::1" })
 * const channel = openChannel("jobs", onConnection, { transport });
 */
export class TcpTransport implements Transport {
  readonly name = "tcp";
  /**
   * Private directory of the port files and the per-user secret (absolute).
   *
   * @example
   * tcpTransport().dir // e.g. "/run/user/1000/open-channel", the same as the Unix transport's
   */
  readonly dir: string;
  /**
   * Loopback address the host listens on.
   *
   * @example
   * tcpTransport().host // "127.0.0.1"
   */
  readonly host: "127.0.0.1" | "::1";

  /**
   * Creates the transport; {@link tcpTransport} does the same.
   *
   * @param options - the private directory and the loopback address
   * @throws OpenChannelTypeError `ERR_INVALID_ARG_VALUE` when `host` is not a loopback address
   */
  constructor(options: TcpTransportOptions = {}) {
    this.dir = path.resolve(options.dir ?? defaultPrivateDir());
    this.host = options.host ?? "127.0.0.1";
    if (this.host !== "127.0.0.1" && this.host !== "::1") {
      throw argError("ERR_INVALID_ARG_VALUE", "options.host", '"127.0.0.1" or "::1" (tcpTransport listens on loopback only)', options.host);
    }
  }

  /**
   * The port file of `channel`: where its host publishes `{ host, port, pid, id }`.
   *
   * @example
   * tcpTransport({ dir: "/run/my-app" }).portFile("jobs") // "/run/my-app/c.jobs.port"
   */
  portFile(channel: string): string {
    return path.join(this.dir, portFileName(channel));
  }

  /**
   * Where the channel's host listens, read from the port file: `"127.0.0.1:41234 via <port file>"`,
   * or `"(no host) via <port file>"`.
   *
   * @example
   * tcpTransport().address("jobs") // e.g. "127.0.0.1:41234 via /run/user/1000/open-channel/c.jobs.port"
   */
  address(channel: string): string {
    const record = parseRecord(readRaw(this.portFile(channel)) ?? "");
    return record === undefined ? `(no host) via ${this.portFile(channel)}` : `${record.host}:${record.port} via ${this.portFile(channel)}`;
  }

  secret(channel: string): Buffer {
    ensurePrivateDir(this.dir, channel);
    return readOrCreateSecret(this.dir, channel);
  }

  /**
   * The channels with a port file in {@link TcpTransport.dir} (this user's private folder).
   *
   * @example
   * for (const { name, address } of tcpTransport().channels()) console.log(name, address);
   */
  channels(): ChannelEntry[] {
    let files: string[];
    try {
      files = fs.readdirSync(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    return channelsFromNames(files, ".port", (file) => path.join(this.dir, file));
  }

  connect(channel: string, socket: net.Socket): void {
    const raw = readRaw(this.portFile(channel));
    if (raw === undefined) throw noHost(`connect ENOENT ${this.portFile(channel)} (no host has published a port)`);
    const record = parseRecord(raw);
    // A torn or foreign record points nowhere: as good as a refused connection, reclaimable.
    if (record === undefined) throw noHost(`connect ECONNREFUSED (unreadable port file ${this.portFile(channel)})`, "ECONNREFUSED");
    // No Nagle: an IPC message must not wait for the ACK of the one before it. setNoDelay before
    // connect: Node ignores connect({ noDelay }) on a socket that exists, and applies a flag set
    // before connecting to this connection and every later one of the socket.
    socket.setNoDelay(true);
    socket.connect({ host: record.host, port: record.port });
  }

  /**
   * The election over TCP, under the channel's lock: when a record is there, probe it (with the
   * proof) and keep it if its host is alive (`EADDRINUSE`); replace it if it points at nobody or at
   * a stranger (a timeout is never taken for death). Then listen on a random loopback port and
   * publish it with an exclusive create. A process that finds the lock taken waits until it is
   * let go (the new host is published by then) and gets `EADDRINUSE`: it connects.
   *
   * @example
   * const server = net.createServer(onConnection);
   * await tcpTransport().listen("jobs", server); // rejects with code "EADDRINUSE" if another process hosts
   */
  async listen(channel: string, server: net.Server): Promise<void> {
    ensurePrivateDir(this.dir, channel);
    const file = this.portFile(channel);
    const record = await withAddressLock(`${file}.lock`, file, async (): Promise<PortRecord> => {
      const before = readRaw(file);
      if (before !== undefined) {
        // A record whose port answers as our host, or does not answer in time, is kept... unless the
        // OS says (Linux) that only another user listens there: that is no host of ours, whatever it
        // answers (a relayed proof) or if it never does. (Read only here, off the connect path:
        // the file has a line per socket of the machine.)
        const record = parseRecord(before);
        if (!isDead(await probeChannel(this, channel)) && (record === undefined || otherUsersListener(record.port) === undefined)) {
          throw addressInUse(`${file} names a live host`);
        }
        fs.rmSync(file, { force: true });
        debug("tcp: reclaimed the stale port file %s (%s)", file, before);
      }
      await listenExclusive(server, { host: this.host, port: 0 });
      const mine = {
        host: this.host,
        port: (server.address() as net.AddressInfo).port,
        pid: process.pid,
        id: randomBytes(8).toString("hex"),
      };
      if (!this.tryPublish(file, mine)) {
        server.close();
        throw addressInUse(`${file} is taken`);
      }
      return mine;
    });
    debug("tcp: channel %j published %s:%d in %s", channel, record.host, record.port, file);
    const raw = JSON.stringify(record);
    publishedAtExit(file, raw);
    // A closed server's record would name a port anyone may bind next: it goes as the server stops
    // listening (under the lock, and only while it is still ours: a reclaimer may have replaced
    // it). Not on 'close', which waits for every connection the server accepted to end: an heir's
    // standby server keeps its parked members' connections for as long as they are members.
    const close = server.close;
    server.close = function (this: net.Server, ...args: Parameters<net.Server["close"]>) {
      void unpublish(file, raw);
      return close.apply(this, args);
    };
  }

  private tryPublish(file: string, record: PortRecord): boolean {
    try {
      publishExclusive(file, record);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw err;
    }
  }
}

const published = new Map<string, string>();
let exitHook = false;

/** A graceful exit takes this process's records along, so the next host need not reclaim them. */
function publishedAtExit(file: string, raw: string): void {
  if (!exitHook) {
    exitHook = true;
    process.once("exit", () => {
      for (const [f, r] of published) if (readRaw(f) === r) fs.rmSync(f, { force: true });
    });
  }
  published.set(file, raw);
}

/** Removes `file` if it still holds `raw`, under its lock; leaves it to the lock's holder otherwise. */
async function unpublish(file: string, raw: string): Promise<void> {
  if (published.get(file) === raw) published.delete(file);
  try {
    const lock = await tryLock(`${file}.lock`);
    if (lock === undefined) return;
    try {
      if (readRaw(file) === raw) fs.rmSync(file, { force: true });
    } finally {
      lock.release();
    }
  } catch (err) {
    debug("tcp: could not remove %s: %s", file, (err as Error).message);
  }
}

/**
 * Linux: the uid of another user's process listening on TCP `port` (`/proc/net/tcp` and `tcp6`
 * list every socket with its owner's uid, readable by all), when no process of this user listens
 * there; `undefined` otherwise, and wherever the OS does not tell.
 */
function otherUsersListener(port: number): number | undefined {
  if (process.platform !== "linux" || typeof process.getuid !== "function") return undefined;
  const me = process.getuid();
  let other: number | undefined;
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = fs.readFileSync(file, "latin1");
    } catch {
      continue;
    }
    // "sl local_address rem_address st ... uid ...": a listening socket has st 0A. Only the lines
    // that name the port are split (the file has a line per socket of the machine).
    const needle = `:${port.toString(16).toUpperCase().padStart(4, "0")} `;
    for (let at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + needle.length)) {
      const line = text.slice(text.lastIndexOf("\n", at) + 1, text.indexOf("\n", at) >>> 0);
      const f = line.trim().split(/\s+/);
      if (f.length < 8 || f[3] !== "0A" || !f[1].endsWith(needle.trimEnd())) continue;
      const uid = Number(f[7]);
      if (uid === me) return undefined;
      other = uid;
    }
  }
  return other;
}

/** Nobody there, or a stranger: the record is stale. A timeout is never proof of death. */
function isDead(verdict: string): boolean {
  return verdict === "refused" || verdict === "stranger";
}

/**
 * Creates the loopback TCP transport.
 *
 * @example
 * const { openChannel } = require("@open-channel/core");
 * const { tcpTransport } = require("@open-channel/transport-tcp");
 * const channel = openChannel("jobs", onConnection, { transport: tcpTransport() });
 */
export function tcpTransport(options?: TcpTransportOptions): TcpTransport {
  return new TcpTransport(options);
}

export default tcpTransport;
