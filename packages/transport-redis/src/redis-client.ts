import { argError } from "@open-channel/core";

/**
 * One Redis command: its arguments as strings (`["GET", "key"]`), its reply as the client gives it.
 *
 * @example
 * const command: RedisCommand = (args) => myClient.send(args);
 */
export type RedisCommand = (args: string[]) => Promise<unknown>;

/**
 * The Redis client you already use: an ioredis client (`call`), a node-redis client
 * (`sendCommand`), or a function that runs one command. open-channel bundles no client.
 *
 * @example
 * const client: RedisClient = new Redis("redis://10.0.0.9:6379"); // ioredis
 */
export type RedisClient =
  | {
      /** ioredis: runs `command` with `args`. */
      call(command: string, ...args: string[]): Promise<unknown>;
    }
  | {
      /** node-redis: runs the command `args` (`["GET", "key"]`). */
      sendCommand(args: string[]): Promise<unknown>;
    }
  | RedisCommand;

/** Turns the user's client into one function that runs a command. */
export function commandOf(client: unknown): RedisCommand {
  if (typeof client === "function") return client as RedisCommand;
  if (typeof client === "object" && client !== null) {
    // ioredis first: it has a sendCommand too, but of a Command object.
    const c = client as { call?: unknown; sendCommand?: unknown };
    if (typeof c.call === "function") {
      const call = c.call as (command: string, ...args: string[]) => Promise<unknown>;
      return (args) => call.call(client, args[0], ...args.slice(1));
    }
    if (typeof c.sendCommand === "function") {
      const send = c.sendCommand as (args: string[]) => Promise<unknown>;
      return (args) => send.call(client, args);
    }
  }
  throw argError(
    "ERR_INVALID_ARG_TYPE",
    "options.client",
    "an ioredis client, a node-redis client or a function (args: string[]) => Promise<reply>",
    client,
  );
}

/** Codes that mean something to the channel (no host, or give up): never a Redis error's. */
const CHANNEL_CODES = new Set(["ENOENT", "ECONNREFUSED", "EADDRINUSE", "EACCES", "EPERM", "ENOTDIR", "ENAMETOOLONG", "ELOOP", "EROFS"]);

/**
 * Runs `command`, or rejects with code `ETIMEDOUT` after `ms` (the client may queue a command for
 * as long as Redis is unreachable; a lease cannot wait that long). A Redis error that says we may
 * not run the command (`NOAUTH`, `WRONGPASS`, `NOPERM`) gets code `EACCES`: the channel gives up
 * with it instead of retrying. A client error whose code the channel reads (`ECONNREFUSED`, ...)
 * comes wrapped with code `EREDIS`: retried.
 */
export function runCommand(command: RedisCommand, args: string[], ms: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      const err = new Error(`redis ${args[0]}: no reply within ${Math.round(ms)} ms`) as NodeJS.ErrnoException;
      err.code = "ETIMEDOUT";
      reject(err);
    }, ms);
    timer.unref();
    let started: Promise<unknown>;
    try {
      started = Promise.resolve(command(args));
    } catch (err) {
      started = Promise.reject(err);
    }
    started.then(
      (reply) => {
        clearTimeout(timer);
        resolve(reply);
      },
      (err: unknown) => {
        clearTimeout(timer);
        const e = err instanceof Error ? err : new Error(String(err));
        if (/^(NOAUTH|WRONGPASS|NOPERM)\b/.test(e.message)) (e as NodeJS.ErrnoException).code = "EACCES";
        else if (CHANNEL_CODES.has((e as NodeJS.ErrnoException).code ?? "")) {
          // Redis's own connection failing (ECONNREFUSED from a client that does not queue) says
          // nothing of the channel's host, and must not read as "no host" or as a fatal error.
          const wrapped = new Error(`redis ${args[0]}: ${e.message}`, { cause: e }) as NodeJS.ErrnoException;
          wrapped.code = "EREDIS";
          return reject(wrapped);
        }
        reject(e);
      },
    );
  });
}

/** A reply as a string (clients give bulk strings as strings, or as Buffers when asked to). */
export function replyString(reply: unknown): string | undefined {
  if (reply === null || reply === undefined) return undefined;
  if (typeof reply === "string") return reply;
  if (Buffer.isBuffer(reply)) return reply.toString("utf8");
  return String(reply);
}

/**
 * Takes the host key if it holds exactly `ARGV[1]` (`""`: if it is absent). The epoch counter
 * grows by one, and to above `ARGV[4]` (the highest epoch the caller saw: a Redis restarted
 * without its data starts counting from there, not from 1). The record is
 * `"<epoch> <rest>"` with a time to live.
 *
 * A counter found below the floor means Redis lost its data while a host we knew may still serve
 * (until its own deadline, at most one ttl away): the data-loss key then marks that window for
 * one ttl, and every claim made inside it (this one, and one replacing this claimer if it dies
 * while it waits) is told how long to wait before serving.
 * KEYS: host key, epoch key, data-loss key. ARGV: expected, rest, ttl ms, floor. Returns
 * `{1, record, waitMs}` (taken) or `{0, current}` (`""`: none).
 */
export const CLAIM = `
local current = redis.call('GET', KEYS[1])
if current == false then current = '' end
if current ~= ARGV[1] then return {0, current} end
local epoch = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[4])
if epoch <= floor then
  epoch = floor + 1
  redis.call('SET', KEYS[2], epoch)
  redis.call('SET', KEYS[3], epoch, 'PX', ARGV[3])
end
local wait = redis.call('PTTL', KEYS[3])
if wait < 0 then wait = 0 end
local record = string.format('%d', epoch) .. ' ' .. ARGV[2]
redis.call('SET', KEYS[1], record, 'PX', ARGV[3])
return {1, record, wait}
`;

/** Extends the host key's time to live if it still holds our record. KEYS: host key. ARGV: record, ttl ms. */
export const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

/**
 * The host key's value (`""`: none) and its time to live in ms (negative: none), in one round
 * trip. KEYS: host key.
 */
export const READ = `
return {redis.call('GET', KEYS[1]) or '', redis.call('PTTL', KEYS[1])}
`;

/** Deletes the host key if it still holds our record. KEYS: host key. ARGV: record. */
export const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;
