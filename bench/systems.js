"use strict";
/**
 * The systems under test, behind one small interface, so that every scenario runs the same code
 * for each of them:
 *
 *   host(name, onMessage)   this process serves `name`; onMessage(payload, reply) for every message
 *                           (for byte streams a "message" is whatever chunk arrived)
 *   client(name, onMessage) -> { send(payload) (false: wait for drain(); a Promise: await it),
 *                                drain(), close() }
 *   payload(bytes)          what a message of that many bytes is for this system
 *   size(payload)           its payload bytes
 *
 * Byte-stream systems (raw net, open-channel) write each message with one write() and count bytes;
 * message systems (node-ipc, zeromq) send one message per call and count payload bytes.
 *
 * `limit` names the raw system a system's ratios are taken to: raw net over the same kind of
 * socket (a Unix socket, or TCP loopback for open-channel's tcp transport; raw TLS over the same
 * addresses for the Redis transport with TLS). `redis`: the system needs the run's redis-server.
 * `scaling: false`: the system runs the one-sender scenarios only (no scaling, no memory rows).
 */
const fs = require("node:fs");
const net = require("node:net");
const path = require("node:path");
const { HOST, SERVERNAME, redisTlsTransport, tlsClientContext, tlsCredentials } = require("./redis-tls");

/** The run's private folder for the sockets of raw net, node-ipc and zeromq (made by run.js). */
const sharedDir = () => {
  const dir = process.env.BENCH_DIR;
  if (dir === undefined || !fs.existsSync(dir)) throw new Error("BENCH_DIR is not set: start the bench with `npm run bench`");
  return dir;
};

const bytes = (n) => Buffer.alloc(n, 120);

/** net.Socket as a client: backpressure through write()'s return value and 'drain'. */
function streamClient(socket, onMessage) {
  socket.on("data", (chunk) => onMessage(chunk));
  socket.on("error", () => undefined);
  return {
    send: (payload) => socket.write(payload),
    drain: () => new Promise((resolve) => socket.once("drain", resolve)),
    close: () => socket.destroy(),
    socket,
  };
}

function streamListener(onMessage) {
  return (socket) => {
    socket.on("error", () => undefined);
    socket.on("data", (chunk) => onMessage(chunk, (reply) => socket.write(reply)));
  };
}

const rawNet = {
  name: "raw-net",
  preload: () => undefined,
  label: "raw net (unix socket)",
  elects: false,
  transport: "unix",
  payload: bytes,
  size: (p) => p.length,
  socketPath: (name) => path.join(sharedDir(), `${name}.sock`),
  async host(name, onMessage) {
    const server = net.createServer(streamListener(onMessage));
    await new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(rawNet.socketPath(name), resolve);
    });
    return { close: () => server.close() };
  },
  async client(name, onMessage) {
    const socket = net.connect(rawNet.socketPath(name));
    await new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    return streamClient(socket, onMessage);
  },
};

/**
 * Raw net over TCP loopback, Nagle off on both ends (as open-channel's tcp transport has it): the
 * limit of open-channel over tcp. The host listens on a random port and writes it to a file.
 */
const rawTcp = {
  name: "raw-tcp",
  preload: () => undefined,
  label: "raw net (TCP loopback)",
  elects: false,
  transport: "tcp",
  payload: bytes,
  size: (p) => p.length,
  portFile: (name) => path.join(sharedDir(), `${name}.port`),
  async host(name, onMessage) {
    const listener = streamListener(onMessage);
    const server = net.createServer((socket) => {
      socket.setNoDelay(true);
      listener(socket);
    });
    await new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: "127.0.0.1", port: 0 }, resolve);
    });
    // Written whole, then renamed: a client never reads half a port number.
    const file = rawTcp.portFile(name);
    fs.writeFileSync(`${file}.tmp`, String(server.address().port));
    fs.renameSync(`${file}.tmp`, file);
    return { close: () => server.close() };
  },
  async client(name, onMessage) {
    const port = Number(fs.readFileSync(rawTcp.portFile(name), "utf8"));
    // noDelay as a constructor option: net.connect() makes a new socket.
    const socket = net.connect({ host: "127.0.0.1", port, noDelay: true });
    await new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    return streamClient(socket, onMessage);
  },
};

/**
 * Raw TLS 1.3 over TCP, the limit of open-channel's Redis transport with TLS: the same addresses
 * (the host on 127.0.0.2, the client from 127.0.0.1), the same certificates, mutual (the server
 * asks for the client's certificate and checks it), Nagle off on both ends. The host listens on a
 * random port and writes it to a file, as raw-tcp does.
 */
const rawTls = {
  name: "raw-tls",
  preload: () => {
    tlsCredentials();
    tlsClientContext();
  },
  label: "raw TLS (127.0.0.2, TLS 1.3 mutual)",
  elects: false,
  scaling: false,
  transport: "tls",
  payload: bytes,
  size: (p) => p.length,
  portFile: (name) => path.join(sharedDir(), `${name}.tls-port`),
  async host(name, onMessage) {
    const listener = streamListener(onMessage);
    // Loaded here, not at the top: the other systems' workers (and their RSS) do without it.
    // noDelay: on every accepted socket from the start (the handshake's writes too).
    const server = require("node:tls").createServer(
      { ...tlsCredentials(), requestCert: true, rejectUnauthorized: true, minVersion: "TLSv1.3", noDelay: true },
      listener,
    );
    server.on("tlsClientError", () => undefined);
    await new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: HOST, port: 0 }, resolve);
    });
    const file = rawTls.portFile(name);
    fs.writeFileSync(`${file}.tmp`, String(server.address().port));
    fs.renameSync(`${file}.tmp`, file);
    return { close: () => server.close() };
  },
  async client(name, onMessage) {
    const port = Number(fs.readFileSync(rawTls.portFile(name), "utf8"));
    const socket = require("node:tls").connect({
      host: HOST,
      port,
      servername: SERVERNAME,
      minVersion: "TLSv1.3",
      noDelay: true,
      secureContext: tlsClientContext(),
    });
    await new Promise((resolve, reject) => {
      socket.once("secureConnect", resolve);
      socket.once("error", reject);
    });
    socket.setNoDelay(true);
    return streamClient(socket, onMessage);
  },
};

/**
 * open-channel through the umbrella; `transport` undefined: the one it picks for the platform
 * (unix here), a name for the umbrella's loadTransport (as OPEN_CHANNEL_TRANSPORT would pick it),
 * or `{ name, make }`: a transport the umbrella does not load (make() returns this process's).
 */
function openChannelSystem(name, label, load, transport, limit, extra = {}) {
  const options = (channelName) => {
    if (transport === undefined) return undefined;
    if (typeof transport === "object") return { transport: transport.make() };
    return { transport: require("open-channel").loadTransport(transport, channelName) };
  };
  return {
    name,
    label,
    elects: true,
    transport: (typeof transport === "object" ? transport.name : transport) ?? "unix",
    limit,
    ...extra,
    preload: () => {
      load();
      // The transport's modules and certificates too (not its Redis connection: made on first use).
      if (typeof transport === "object") transport.preload?.();
    },
    payload: bytes,
    size: (p) => p.length,
    async host(channelName, onMessage) {
      const openChannel = load();
      const channel = openChannel(channelName, streamListener(onMessage), options(channelName));
      const socket = channel.connect();
      await new Promise((resolve, reject) => {
        socket.once("connect", resolve);
        socket.once("error", reject);
      });
      return { close: () => socket.destroy(), channel };
    },
    async client(channelName, onMessage) {
      const openChannel = load();
      // Never the host here: the host process opened the channel first.
      const channel = openChannel(channelName, () => undefined, options(channelName));
      const socket = channel.connect();
      await new Promise((resolve, reject) => {
        socket.once("connect", resolve);
        socket.once("error", reject);
      });
      return streamClient(socket, onMessage);
    },
    /** For the election and failover scenarios: join, and learn the host from its welcome line. */
    member(channelName, onWelcome) {
      const openChannel = load();
      const channel = openChannel(
        channelName,
        (socket) => {
          socket.on("error", () => undefined);
          socket.write(`welcome ${process.pid}\n`);
          socket.resume();
        },
        options(channelName),
      );
      const socket = channel.connect(Number(process.env.BENCH_MEMBER_TIMEOUT || 5000));
      let buffered = "";
      socket.setEncoding("utf8");
      socket.on("data", (chunk) => {
        buffered += chunk;
        for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (line.startsWith("welcome ")) onWelcome(Number(line.slice(8)));
        }
      });
      socket.on("error", (err) => onWelcome(undefined, err));
      return { close: () => socket.destroy() };
    },
  };
}

const openChannelNow = openChannelSystem(
  "open-channel",
  "open-channel (this repo)",
  () => require("open-channel").default,
  undefined,
  "raw-net",
);
const openChannelTcp = openChannelSystem(
  "open-channel-tcp",
  "open-channel (this repo, tcp)",
  () => require("open-channel").default,
  "tcp",
  "raw-tcp",
);
const openChannelRedisTls = openChannelSystem(
  "open-channel-redis-tls",
  "open-channel (this repo, redis + TLS)",
  () => require("open-channel").default,
  {
    name: "redis-tls",
    make: redisTlsTransport,
    preload: () => {
      require("@open-channel/transport-redis");
      require("ioredis");
      tlsCredentials();
    },
  },
  "raw-tls",
  { redis: true, scaling: false },
);
const openChannelOld = openChannelSystem(
  "open-channel-0.1.12",
  "open-channel 0.1.12 (npm)",
  () => require("open-channel-0.1.12").default,
  undefined,
  "raw-net",
);

const nodeIpc = {
  name: "node-ipc",
  preload: () => require("node-ipc"),
  label: "node-ipc 9.2.1",
  elects: false,
  transport: "unix",
  limit: "raw-net",
  // node-ipc's default: JSON event messages; a 64-byte message is a 64-character string.
  payload: (n) => "x".repeat(n),
  size: (p) => p.length,
  configure(ipc, id) {
    ipc.config.id = id;
    ipc.config.silent = true;
    ipc.config.retry = 50;
    ipc.config.socketRoot = `${sharedDir()}/`;
    ipc.config.appspace = "ipc.";
    ipc.config.maxConnections = 1000;
  },
  async host(name, onMessage) {
    const { IPC } = require("node-ipc");
    const ipc = new IPC();
    nodeIpc.configure(ipc, name);
    await new Promise((resolve) => {
      ipc.serve(resolve);
      ipc.server.start();
    });
    ipc.server.on("m", (data, socket) => onMessage(data, (reply) => ipc.server.emit(socket, "m", reply)));
    return { close: () => ipc.server.stop() };
  },
  async client(name, onMessage) {
    const { IPC } = require("node-ipc");
    const ipc = new IPC();
    nodeIpc.configure(ipc, `c${process.pid}-${Math.random().toString(36).slice(2)}`);
    await new Promise((resolve) => ipc.connectTo(name, resolve));
    const peer = ipc.of[name];
    peer.on("m", (data) => onMessage(data));
    return {
      // node-ipc queues every message internally and offers no backpressure: emit and go on.
      send: (payload) => {
        peer.emit("m", payload);
        return true;
      },
      drain: () => Promise.resolve(),
      close: () => ipc.disconnect(name),
    };
  },
};

const zeromq = {
  name: "zeromq",
  preload: () => require("zeromq"),
  label: "zeromq 6 (ipc://)",
  elects: false,
  transport: "unix",
  limit: "raw-net",
  payload: bytes,
  size: (p) => p.length,
  endpoint: (name) => `ipc://${path.join(sharedDir(), `${name}.zmq`)}`,
  async host(name, onMessage) {
    const zmq = require("zeromq");
    const router = new zmq.Router();
    await router.bind(zeromq.endpoint(name));
    // One send at a time on a zeromq socket: replies go through a small queue.
    const replies = [];
    let sending = false;
    const pump = async () => {
      if (sending) return;
      sending = true;
      while (replies.length > 0) await router.send(replies.shift());
      sending = false;
    };
    (async () => {
      for await (const [identity, msg] of router)
        onMessage(msg, (reply) => {
          replies.push([identity, reply]);
          void pump();
        });
    })().catch(() => undefined);
    return { close: () => router.close() };
  },
  async client(name, onMessage) {
    const zmq = require("zeromq");
    const dealer = new zmq.Dealer();
    dealer.connect(zeromq.endpoint(name));
    (async () => {
      for await (const [msg] of dealer) onMessage(msg);
    })().catch(() => undefined);
    return {
      send: (payload) => dealer.send(payload),
      drain: () => Promise.resolve(),
      close: () => dealer.close(),
    };
  },
};

/** Each raw system first, then what is measured against it (the report's column order). */
const SYSTEMS = [rawNet, openChannelNow, rawTcp, openChannelTcp, rawTls, openChannelRedisTls, nodeIpc, zeromq, openChannelOld];

/**
 * open-channel's message layer (`openMessageChannel` through the umbrella, over the same transport
 * as the socket API). Not one of SYSTEMS: it is no byte stream, so it runs its own scenarios
 * (bench/messages.js) in its own worker (bench/messages-worker.js), not the side-by-side ones.
 */
const MESSAGES = {
  name: "open-channel-messages",
  label: "open-channel messages",
  worker: "messages-worker.js",
  elects: true,
  preload: () => require("open-channel"),
};

/** A row's field for the ratio to a raw system: "raw-tcp" -> "vs_raw_tcp", "raw-tls" -> "vs_raw_tls". */
const ratioKey = (limit) => `vs_${limit.replace("-", "_")}`;

module.exports = { SYSTEMS, MESSAGES, ratioKey, byName: (name) => SYSTEMS.find((s) => s.name === name) };
