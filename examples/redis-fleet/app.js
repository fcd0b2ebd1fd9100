"use strict";
/**
 * One process of a fleet that spans machines: run it on every machine, as many times as you like
 * (PM2: ecosystem.config.js). Every process runs the same code; the channel's host is elected in
 * Redis; its log lines come from whichever process hosts. Each process reports to the host every
 * second, and the host keeps a roll call of who it heard from (the host's state: it starts afresh
 * on a new host, which the members fill again).
 *
 * Environment: REDIS_URL (redis://:password@10.0.0.9:6379), ADVERTISE (this machine's address, as
 * the others reach it), LISTEN (default 0.0.0.0), MACHINE (a name for the logs; default the
 * address); and TLS_CA, TLS_CERT, TLS_KEY (PEM files: TLS between the machines, mutual) or
 * CHANNEL_SECRET (the same everywhere, 16 bytes or more), or both.
 */
const fs = require("node:fs");
const Redis = require("ioredis"); // the client you already use (node-redis works too)
const { openMessageChannel } = require("open-channel");
const { redisTransport } = require("@open-channel/transport-redis");

const { REDIS_URL, CHANNEL_SECRET, ADVERTISE, LISTEN = "0.0.0.0", TLS_CA, TLS_CERT, TLS_KEY } = process.env;
const machine = process.env.MACHINE ?? ADVERTISE;
const client = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
client.on("error", () => {}); // it reconnects by itself; the channel waits meanwhile

// TLS: members check the host's certificate against the CA and the address they connect to (an
// IP subject alternative name); the host accepts only members with a certificate of the CA.
const tls = TLS_CA && { ca: fs.readFileSync(TLS_CA), cert: fs.readFileSync(TLS_CERT), key: fs.readFileSync(TLS_KEY) };
const transport = redisTransport({ client, secret: CHANNEL_SECRET, tls, host: LISTEN, advertise: ADVERTISE, ttlMs: 2000 });
const heard = new Map(); // the host's roll call: "machine pid" -> reports
const fleet = openMessageChannel(
  "fleet",
  {
    onMessage({ from }) {
      heard.set(from, (heard.get(from) ?? 0) + 1);
    },
    onRequest() {
      return [...heard.keys()].sort();
    },
  },
  { transport },
);
const messenger = fleet.connect(0); // 0: wait as long as it takes (Redis may be down)
const me = `${machine} ${process.pid}`;

fleet.channel.on("hosting", (isHost) => isHost && console.log(`${me}: hosting the fleet's channel`));
fleet.channel.on("state", (state) => {
  if (state === "connected") console.log(`${me}: joined, host pid ${fleet.channel.hostPid}${fleet.channel.isHost ? " (us)" : ""}`);
});
setInterval(() => messenger.send({ from: me }).catch(() => {}), 1000).unref();
// Once in a while, ask the host whom it heard from.
setInterval(async () => {
  if (!fleet.channel.isHost) return;
  console.log(`${me}: the host heard from ${(await messenger.request("roll call")).join(", ")}`);
}, 3000).unref();

process.on("SIGTERM", async () => {
  await messenger.close(); // what this process sent is acknowledged first
  client.disconnect();
  process.exit(0);
});
