/**
 * `@open-channel/transport-redis`: one channel for processes on several machines, its host elected
 * with a lease in Redis.
 *
 * @packageDocumentation
 */
import { createHmac, randomBytes } from "node:crypto";
import * as net from "node:net";
import {
  addressInUse,
  argError,
  debug,
  HANDSHAKE,
  type Lease,
  listenExclusive,
  probeChannel,
  type SecureLayer,
  type TlsLayerOptions,
  type Transport,
  tlsSecureLayer,
} from "@open-channel/core";
import { RENEWALS_PER_TTL, RedisLease } from "./lease";
import { CLAIM, commandOf, READ, type RedisClient, type RedisCommand, replyString, runCommand } from "./redis-client";

export { RENEWALS_PER_TTL, STOP_SERVING_AT } from "./lease";
export type { RedisClient, RedisCommand } from "./redis-client";

/**
 * Options of {@link redisTransport}.
 *
 * @example
 * const options: RedisTransportOptions = { client: new Redis(process.env.REDIS_URL), secret: process.env.CHANNEL_SECRET,
 *   host: "0.0.0.0", advertise: "10.0.0.5" };
 */
export interface RedisTransportOptions {
  /** The Redis client you already use (ioredis, node-redis, or a function that runs one command). */
  client: RedisClient;
  /**
   * The secret every process of the channel shares (at least 16 bytes): host and members prove
   * they know it on every connection, and a process without it never reaches your listener.
   * Optional with mutual `tls`: the certificates then let processes in, and every holder of a
   * certificate of your CA can join every channel that trusts it (a secret on top keeps channels
   * that share a CA apart).
   */
  secret?: string | Buffer;
  /** The address a host listens on. Default `"127.0.0.1"` (one machine); an interface's address across machines. */
  host?: string;
  /**
   * The port a host listens on (a firewall may want a fixed one). Default 0: a free port,
   * published in Redis. The heir's standby server always takes a free port.
   */
  port?: number;
  /** The address members connect to, published in Redis. Default: `host` (required when `host` is `0.0.0.0` or `::`). */
  advertise?: string;
  /** Prefix of the keys in Redis. Default `"open-channel:"`. */
  prefix?: string;
  /**
   * Time to live of the host's lease in ms (default 5000). A host that cannot renew it stops
   * serving after 0.9 × this; a host machine that vanishes is replaced within about this plus
   * an election.
   */
  ttlMs?: number;
  /**
   * How often members check in Redis that their host's lease still stands (and 10 ms after it
   * would run out, when that is sooner). Default `min(ttlMs / 4, 500)`.
   */
  pollMs?: number;
  /**
   * TLS between members and host: the host presents `cert`, members check it against `ca`; with
   * `mutual` (the default) members present `cert` too and the host checks it against `ca`. Every
   * process of the channel passes the same options (its own `cert` and `key`).
   */
  tls?: RedisTlsOptions;
}

/**
 * TLS options of {@link redisTransport} (core's {@link TlsLayerOptions}).
 *
 * @example
 * const tlsOptions: RedisTlsOptions = { ca: fs.readFileSync("ca.pem"), cert: fs.readFileSync("node.pem"), key: fs.readFileSync("node.key") };
 */
export type RedisTlsOptions = TlsLayerOptions;

/**
 * What a host publishes in Redis: its epoch, where members reach it, and who it is.
 *
 * @example
 * const record = parseRecord(await redis.get("open-channel:{jobs}:host"));
 * if (record) console.log(`epoch ${record.epoch}: ${record.host}:${record.port}, pid ${record.pid}`);
 */
export interface HostRecord {
  /** The lease's fencing epoch. */
  epoch: number;
  /** The address members connect to. */
  host: string;
  /** The TCP port. */
  port: number;
  /** The hosting process's pid (on its machine). */
  pid: number;
  /** Random per listen: tells two records apart. */
  id: string;
}

/**
 * Parses a host key's value (`"<epoch> <host> <port> <pid> <id>"`); `undefined` when it is none.
 *
 * @example
 * parseRecord("7 10.0.0.5 41234 4242 9f86d081884c7d65") // { epoch: 7, host: "10.0.0.5", port: 41234, pid: 4242, id: "9f86d081884c7d65" }
 */
export function parseRecord(raw: string | undefined | null): HostRecord | undefined {
  if (typeof raw !== "string") return undefined;
  const [epoch, host, port, pid, id, extra] = raw.split(" ");
  const record = { epoch: Number(epoch), host, port: Number(port), pid: Number(pid), id };
  if (extra !== undefined || id === undefined || net.isIP(host) === 0) return undefined;
  if (!Number.isSafeInteger(record.epoch) || record.epoch < 1) return undefined;
  if (!Number.isInteger(record.port) || record.port < 1 || record.port > 65535) return undefined;
  return record;
}

const DEFAULT_TTL_MS = 5000;
const MIN_TTL_MS = 200;

function noHost(message: string, code = "ENOENT"): NodeJS.ErrnoException {
  const err = new Error(message) as NodeJS.ErrnoException;
  err.code = code;
  return err;
}

/**
 * The channel's host is elected with a lease in Redis and members reach it over TCP.
 *
 * - `listen` binds `host:port`, then claims the channel's host key in one Lua script: absent ->
 *   the epoch counter grows by one and the key gets `"<epoch> <address> <pid> <id>"` with a time
 *   to live; present -> `EADDRINUSE` (another process hosts). The host renews the key every ttl/4
 *   (compare-and-extend) and stops serving at 0.9 × ttl after its last good renewal was sent.
 * - `connect` reads the key (none: `ENOENT`, no host), connects to the address in it, and checks
 *   the key every `pollMs` (sooner if its time to live runs out first) for as long as that
 *   connection lasts: once it holds another record, or
 *   none (the host's lease ended: a vanished machine, a paused process), the connection ends and
 *   the channel elects.
 * - `reclaim`, after `EADDRINUSE` with nobody answering: a host whose port refuses connections is
 *   dead (its machine answered for it), and so is a record whose epoch is lower than one seen; a
 *   compare-and-replace of exactly that record lets one process take over at once, without waiting
 *   for the lease. A timeout is never taken for death: an unreachable machine waits for its lease.
 *
 * Every connection runs the challenge-response proof over a per-channel key derived from
 * `secret`, and replies carry the lease's epoch: members never accept a host with a lower epoch
 * than one they have seen.
 *
 * @example
 * const Redis = require("ioredis");
 * const transport = new RedisTransport({ client: new Redis(process.env.REDIS_URL), secret: process.env.CHANNEL_SECRET });
 * const channel = openChannel("jobs", onConnection, { transport });
 */
export class RedisTransport implements Transport {
  readonly name = "redis";
  /**
   * The address hosts listen on.
   *
   * @example
   * redisTransport({ client, secret, host: "0.0.0.0", advertise: "10.0.0.5" }).host // "0.0.0.0"
   */
  readonly host: string;
  /**
   * The port hosts listen on (0: any free port).
   *
   * @example
   * redisTransport({ client, secret }).port // 0
   */
  readonly port: number;
  /**
   * The address published for members.
   *
   * @example
   * redisTransport({ client, secret, host: "0.0.0.0", advertise: "10.0.0.5" }).advertise // "10.0.0.5"
   */
  readonly advertise: string;
  /**
   * Prefix of the keys in Redis.
   *
   * @example
   * redisTransport({ client, secret }).prefix // "open-channel:"
   */
  readonly prefix: string;
  /**
   * The lease's time to live, in ms.
   *
   * @example
   * redisTransport({ client, secret }).ttlMs // 5000
   */
  readonly ttlMs: number;
  /**
   * How often a member checks its host's lease, in ms.
   *
   * @example
   * redisTransport({ client, secret, ttlMs: 1000 }).pollMs // 250
   */
  readonly pollMs: number;
  /**
   * TLS on every member connection, with the `tls` option (see {@link RedisTlsOptions}).
   *
   * @example
   * redisTransport({ client, secret }).secure // undefined: plain TCP
   */
  readonly secure: SecureLayer | undefined;
  private readonly command: RedisCommand;
  private readonly masterSecret: Buffer | undefined;
  /** The highest epoch seen per channel: never connect to (or claim below) it. */
  private readonly seen = new Map<string, number>();
  /** The last record read per channel, for {@link RedisTransport.address}. */
  private readonly lastRecord = new Map<string, string>();

  /**
   * Creates the transport; {@link redisTransport} does the same.
   *
   * @throws OpenChannelTypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` / `ERR_OUT_OF_RANGE` for a bad option
   */
  constructor(options: RedisTransportOptions) {
    if (typeof options !== "object" || options === null) {
      throw argError("ERR_INVALID_ARG_TYPE", "options", "an object with client and secret (or tls)", options);
    }
    this.command = commandOf(options.client);
    const secret = typeof options.secret === "string" ? Buffer.from(options.secret, "utf8") : options.secret;
    const mutualTls = options.tls !== undefined && options.tls?.mutual !== false;
    if (!(secret === undefined && mutualTls) && (!Buffer.isBuffer(secret) || secret.length < 16)) {
      throw argError(
        "ERR_INVALID_ARG_VALUE",
        "options.secret",
        `a string or Buffer of at least 16 bytes, the same in every process${mutualTls ? "" : " (or mutual tls options)"}`,
        options.secret,
      );
    }
    this.masterSecret = secret === undefined ? undefined : Buffer.from(secret);
    this.host = options.host ?? "127.0.0.1";
    if (net.isIP(this.host) === 0) throw argError("ERR_INVALID_ARG_VALUE", "options.host", "an IP address to listen on", options.host);
    this.port = options.port ?? 0;
    if (!Number.isInteger(this.port) || this.port < 0 || this.port > 65535) {
      throw argError("ERR_OUT_OF_RANGE", "options.port", "an integer from 0 to 65535", options.port);
    }
    const wildcard = this.host === "0.0.0.0" || this.host === "::";
    this.advertise = options.advertise ?? (wildcard ? "" : this.host);
    if (net.isIP(this.advertise) === 0 || this.advertise === "0.0.0.0" || this.advertise === "::") {
      throw argError(
        "ERR_INVALID_ARG_VALUE",
        "options.advertise",
        "the IP address other machines reach this host at (required when host is 0.0.0.0 or ::)",
        options.advertise,
      );
    }
    this.prefix = options.prefix ?? "open-channel:";
    if (typeof this.prefix !== "string") throw argError("ERR_INVALID_ARG_TYPE", "options.prefix", "a string", options.prefix);
    this.ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
    if (!Number.isInteger(this.ttlMs) || this.ttlMs < MIN_TTL_MS) {
      throw argError("ERR_OUT_OF_RANGE", "options.ttlMs", `an integer of at least ${MIN_TTL_MS} (ms)`, options.ttlMs);
    }
    this.secure = options.tls === undefined ? undefined : tlsSecureLayer(options.tls);
    this.pollMs = options.pollMs ?? Math.min(this.ttlMs / RENEWALS_PER_TTL, 500);
    if (typeof this.pollMs !== "number" || !(this.pollMs >= 10)) {
      throw argError("ERR_OUT_OF_RANGE", "options.pollMs", "a number of at least 10 (ms)", options.pollMs);
    }
  }

  /**
   * The Redis key that holds the channel's host record (a hash tag keeps it and the epoch counter
   * in one Redis Cluster slot).
   *
   * @example
   * redisTransport({ client, secret }).hostKey("jobs") // "open-channel:{jobs}:host"
   */
  hostKey(channel: string): string {
    return `${this.prefix}{${channel}}:host`;
  }

  /**
   * The key of the channel's epoch counter (no time to live: epochs only grow).
   *
   * @example
   * redisTransport({ client, secret }).epochKey("jobs") // "open-channel:{jobs}:epoch"
   */
  epochKey(channel: string): string {
    return `${this.prefix}{${channel}}:epoch`;
  }

  /**
   * The key that marks, for one ttl, that Redis was found to have lost the channel's epoch
   * counter: hosts elected meanwhile wait for it to expire before serving.
   *
   * @example
   * redisTransport({ client, secret }).dataLossKey("jobs") // "open-channel:{jobs}:data-lost"
   */
  dataLossKey(channel: string): string {
    return `${this.prefix}{${channel}}:data-lost`;
  }

  /**
   * Where the channel's host was last seen: `"10.0.0.5:41234 (epoch 7) via redis key open-channel:{jobs}:host"`.
   *
   * @example
   * console.log(transport.address("jobs"));
   */
  address(channel: string): string {
    const record = parseRecord(this.lastRecord.get(channel));
    const where = record === undefined ? "(no host seen)" : `${hostPort(record.host, record.port)} (epoch ${record.epoch})`;
    return `${where} via redis key ${this.hostKey(channel)}`;
  }

  /**
   * The channel's proof key: derived from the shared secret, one per channel name; `undefined`
   * without a secret (mutual TLS alone).
   *
   * @example
   * transport.secret("jobs")?.length // 32
   */
  secret(channel: string): Buffer | undefined {
    if (this.masterSecret === undefined) return undefined;
    return createHmac("sha256", this.masterSecret).update(`open-channel redis channel key\0${channel}`).digest();
  }

  async connect(channel: string, socket: net.Socket): Promise<void> {
    const raw = await this.read(channel);
    if (raw === undefined) throw noHost(`connect ENOENT: no host in redis key ${this.hostKey(channel)}`);
    const record = parseRecord(raw);
    // A foreign value, or the record of a host whose lease ended (a lower epoch than one seen):
    // no host of ours, and reclaimable.
    if (record === undefined) throw noHost(`connect ECONNREFUSED: unreadable record in ${this.hostKey(channel)}`, "ECONNREFUSED");
    const seen = this.seen.get(channel) ?? 0;
    if (record.epoch < seen) {
      throw noHost(
        `connect ECONNREFUSED: the record in ${this.hostKey(channel)} has epoch ${record.epoch}, below ${seen} seen`,
        "ECONNREFUSED",
      );
    }
    this.seen.set(channel, record.epoch);
    socket.setNoDelay(true);
    socket.connect({ host: record.host, port: record.port });
    this.watch(channel, socket, raw);
  }

  async listen(channel: string, server: net.Server): Promise<Lease> {
    return this.claim(channel, server, "");
  }

  /**
   * After `EADDRINUSE` with nobody answering: replaces the record if its host is certainly gone
   * (its port refuses connections, or its epoch is below one seen), by exactly
   * that record; `false` when it lives, when that is not certain (a timeout), or when another
   * process replaced it first.
   *
   * @example
   * const lease = await transport.reclaim("jobs", server); // after listen() rejected with EADDRINUSE
   */
  async reclaim(channel: string, server: net.Server): Promise<Lease | false> {
    const raw = (await this.read(channel)) ?? "";
    const record = parseRecord(raw);
    if (raw !== "" && record !== undefined && record.epoch >= (this.seen.get(channel) ?? 0)) {
      // Only a refusal proves death. A stranger at the port may be a process with another secret,
      // which must not take the channel over; a dead host's port that a stranger reused waits
      // for the lease, like a timeout.
      const verdict = await probeChannel(this, channel, Math.min(1000, this.ttlMs));
      if (verdict !== "refused") return false;
      debug("redis: channel %j: the host in %s is gone (%s): replacing it", channel, raw, verdict);
    }
    try {
      return await this.claim(channel, server, raw);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EADDRINUSE") return false;
      throw err;
    }
  }

  /** Binds `server`, then takes the host key if it holds `expected` (`""`: if absent). */
  private async claim(channel: string, server: net.Server, expected: string): Promise<RedisLease> {
    // The heir's standby server takes any free port: the fixed one is the host's.
    const standby = channel.endsWith(HANDSHAKE.standbySuffix);
    try {
      await listenExclusive(server, { host: this.host, port: standby ? 0 : this.port });
    } catch (err) {
      // Taken on this machine, not in Redis: no election lost, so no EADDRINUSE (that would send
      // the channel to reclaim). Retried until the port is free or the connect timeout.
      if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
      const busy = new Error(
        `listen EBUSY: port ${this.port} of ${this.host} is in use on this machine (options.port of the Redis transport); waiting for it`,
      ) as NodeJS.ErrnoException;
      busy.code = "EBUSY";
      busy.cause = err;
      throw busy;
    }
    const { port } = server.address() as net.AddressInfo;
    const rest = `${this.advertise} ${port} ${process.pid} ${randomBytes(8).toString("hex")}`;
    const key = this.hostKey(channel);
    const sentAt = performance.now();
    let reply: unknown;
    try {
      reply = await runCommand(
        this.command,
        [
          "EVAL",
          CLAIM,
          "3",
          key,
          this.epochKey(channel),
          this.dataLossKey(channel),
          expected,
          rest,
          String(this.ttlMs),
          String(this.seen.get(channel) ?? 0),
        ],
        this.ttlMs / 2,
      );
    } catch (err) {
      server.close();
      throw err;
    }
    const [taken, value, waitMs] = Array.isArray(reply) ? reply : [];
    const record = replyString(value) ?? "";
    if (Number(taken) !== 1) {
      server.close();
      if (record !== "") this.lastRecord.set(channel, record);
      throw addressInUse(`redis key ${key} holds ${record === "" ? "another record" : JSON.stringify(record)}`);
    }
    const lease = new RedisLease(this.command, key, record, this.ttlMs, sentAt);
    this.seen.set(channel, Math.max(this.seen.get(channel) ?? 0, lease.epoch));
    this.lastRecord.set(channel, record);
    const wait = Number(waitMs);
    if (wait > 0) {
      // Redis lost its data (a restart without persistence, a flush, a failover to a replica that
      // lagged) less than a ttl ago: the host we knew may still be serving until its own deadline.
      // Hold the lease (renewing it) and serve only once the window is past.
      debug("redis: channel %j: Redis lost its data (epoch counter behind): waiting %d ms before serving", channel, wait);
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
    debug("redis: channel %j: hosting with epoch %d at %s", channel, lease.epoch, hostPort(this.advertise, port));
    // The key goes as the server stops listening (if still ours). Not on 'close', which waits for
    // every accepted connection to end.
    const close = server.close;
    server.close = function (this: net.Server, ...args: Parameters<net.Server["close"]>) {
      lease.release();
      return close.apply(this, args);
    };
    return lease;
  }

  /** GET of the host key, with a bounded wait. */
  private async read(channel: string): Promise<string | undefined> {
    const raw = replyString(await runCommand(this.command, ["GET", this.hostKey(channel)], this.ttlMs / 2));
    if (raw !== undefined) this.lastRecord.set(channel, raw);
    return raw;
  }

  /**
   * While the connection `socket` just started lasts, checks every `pollMs`, or 10 ms after the
   * key's time to live would run out if that is sooner (a host that stopped renewing is left as
   * soon as its lease ends, not up to `pollMs` later), that the channel's host key still names the process it reached; once it names another one or none, ends the
   * connection as a lost one (the channel elects). A connection to an heir's standby address
   * (`channel` + the standby suffix) is checked against the main key from its first check on: by
   * then the heir holds it, or it is no host. Redis unreachable is no proof of anything: it waits.
   */
  private watch(channel: string, socket: net.Socket, raw: string): void {
    const suffix = HANDSHAKE.standbySuffix;
    const main = channel.endsWith(suffix) ? channel.slice(0, -suffix.length) : channel;
    const reached = parseRecord(raw) as HostRecord;
    const handle = (socket as unknown as { _handle: unknown })._handle;
    const current = (): boolean => !socket.destroyed && (socket as unknown as { _handle: unknown })._handle === handle;
    const check = (): void => {
      if (!current()) return;
      runCommand(this.command, ["EVAL", READ, "1", this.hostKey(main)], this.ttlMs / 2).then(
        (reply) => {
          const [value, ttl] = Array.isArray(reply) ? reply : [];
          const now = replyString(value) || undefined;
          if (now !== undefined) this.lastRecord.set(main, now);
          const record = parseRecord(now);
          if (!current()) return;
          if (record !== undefined && record.host === reached.host && record.pid === reached.pid) {
            // Next check every pollMs, or just after the lease would end if it is not renewed by then.
            const left = Number(ttl);
            return next(left >= 0 ? Math.min(this.pollMs, left + 10) : this.pollMs);
          }
          debug("redis: channel %j: the host key names %s, not the host we reached (%s): leaving it", main, now ?? "none", raw);
          const err = new Error(`the host's lease in ${this.hostKey(main)} ended`) as NodeJS.ErrnoException;
          err.code = "ECONNRESET";
          err.syscall = "lease";
          socket.destroy(err);
        },
        // Redis unreachable proves nothing: ask again.
        () => next(this.pollMs),
      );
    };
    const next = (ms: number): void => {
      setTimeout(check, ms).unref();
    };
    next(this.pollMs);
  }
}

function hostPort(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Creates the Redis transport.
 *
 * @example
 * const Redis = require("ioredis");
 * const { openChannel } = require("@open-channel/core");
 * const { redisTransport } = require("@open-channel/transport-redis");
 * const transport = redisTransport({ client: new Redis(process.env.REDIS_URL), secret: process.env.CHANNEL_SECRET,
 *   host: "0.0.0.0", advertise: "10.0.0.5" });
 * const channel = openChannel("jobs", onConnection, { transport });
 */
export function redisTransport(options: RedisTransportOptions): RedisTransport {
  return new RedisTransport(options);
}

export default redisTransport;
