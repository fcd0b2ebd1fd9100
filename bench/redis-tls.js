"use strict";
/**
 * The "cross-machine" rows: open-channel's Redis transport with TLS, and raw TLS, its limit.
 * Two machines on one box: hosts listen on 127.0.0.2 (HOST), members connect from 127.0.0.1 (the
 * kernel's source address for loopback), and Redis is on 127.0.0.1. TLS 1.3, mutual, with the
 * test PKI of packages/core/test/fixtures/tls (its certificate names 127.0.0.1-3 and localhost).
 *
 * run.js starts one redis-server for these rows (startRedis) and hands its port to the workers in
 * BENCH_REDIS_PORT; each worker builds its own transport with its own Redis client.
 */
const fs = require("node:fs");
const path = require("node:path");

/** The address hosts listen on: another "machine" than the members' 127.0.0.1. */
const HOST = "127.0.0.2";
const SERVERNAME = "localhost";
const PKI = path.join(__dirname, "..", "packages", "core", "test", "fixtures", "tls");

let credentials;
/** The CA, this process's certificate and key (every process has the same: test PKI). */
function tlsCredentials() {
  credentials ??= {
    ca: fs.readFileSync(path.join(PKI, "ca.crt")),
    cert: fs.readFileSync(path.join(PKI, "node.crt")),
    key: fs.readFileSync(path.join(PKI, "node.key")),
  };
  return credentials;
}

let clientContext;
/**
 * The client's secure context, made once per process as the transport makes its own (making one
 * per connection, parsing the CA and key each time, costs about 1-2 ms on this VM).
 */
function tlsClientContext() {
  clientContext ??= require("node:tls").createSecureContext({ ...tlsCredentials(), minVersion: "TLSv1.3" });
  return clientContext;
}

let transport;
/** This process's Redis transport with TLS (mutual, no secret), one for all its channels. */
function redisTlsTransport() {
  if (transport !== undefined) return transport;
  const port = Number(process.env.BENCH_REDIS_PORT);
  if (!Number.isInteger(port) || port <= 0) throw new Error("BENCH_REDIS_PORT is not set: run.js starts redis-server for these rows");
  const Redis = require("ioredis");
  const { redisTransport } = require("@open-channel/transport-redis");
  const client = new Redis({ port, host: "127.0.0.1" });
  // ioredis reconnects by itself; an error event without a listener would only be printed.
  client.on("error", () => undefined);
  transport = redisTransport({ client, host: HOST, ttlMs: 5000, tls: { ...tlsCredentials(), servername: SERVERNAME } });
  return transport;
}

/**
 * Starts a throwaway redis-server (scripts/redis-server.js) for the run: `{ server, port }`, or
 * `{ skipped }` saying why there is none (not installed, or it did not start).
 */
async function startRedis() {
  const probe = require("node:child_process").spawnSync("redis-server", ["--version"], { stdio: "ignore" });
  if (probe.error !== undefined || probe.status !== 0) return { skipped: "skipped: redis-server is not installed (or not on the PATH)" };
  const { RedisServer } = require("../scripts/redis-server");
  try {
    const server = await RedisServer.start();
    return { server, port: server.port };
  } catch (err) {
    return { skipped: `skipped: ${err.message}` };
  }
}

module.exports = { HOST, SERVERNAME, tlsCredentials, tlsClientContext, redisTlsTransport, startRedis };
