import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type * as net from "node:net";
import { STANDBY_SUFFIX } from "./names";

/**
 * The few bytes at the start of every connection, before the socket reaches the user.
 *
 * ```
 * hello (member -> host):  "OCHN" | version u8 | kind u8 | flags u8 | 0 u8 | name length u16be | name (UTF-8)
 *                          [+ member nonce (16 bytes) when flags has PROOF]
 * reply (host -> member):  "OCHN" | version u8 | status u8 | flags u8 | 0 u8 | host pid u32be | server id (8 bytes)
 *                          [+ epoch u64be when flags has EPOCH]
 *                          [+ host nonce (16 bytes) + host proof (32 bytes) when flags has PROOF]
 * proof (member -> host):  member proof (32 bytes), only when flags has PROOF
 * status (host -> asker):  body length u32be | body (JSON, UTF-8), only for a status hello
 * ```
 *
 * Kinds of hello: `join` (a member), `probe` (is our host alive at this address? answered at once,
 * never a member), `status` (who hosts, since when, with how many members? answered by the host
 * itself, after the proof when the transport has a secret, never by the user's listener). Reply statuses: ok, wrong channel, unsupported, proof required, not the host (an
 * heir that does not host: ask the channel's main address).
 *
 * It lets a member tell our host from a stranger listening on the address, lets the host refuse a
 * member of another channel (hashed names can collide), lets versions evolve, and tells every
 * member which process hosts and which server instance it reached.
 *
 * With a per-user secret (transports any local user can reach: TCP, named pipes), both sides prove
 * they know it without ever sending it: the host proves first, then the member, and only then does
 * the host hand the connection to the user's listener. Each proof is an HMAC over the whole
 * exchange ({@link ProofTranscript}): both nonces, the kind of hello, the reply's status, pid and
 * server id, and, over TCP, the connection's two endpoints as each side sees them. A proof is thus
 * good for this one connection only: relayed through another user's socket, the endpoints the
 * member sees are not those the host sees, and both proofs fail. On loopback nobody but the two
 * endpoints can write into a TCP connection, so what follows a bound handshake is theirs too.
 *
 * @example
 * // A transport's reclaim asking "is our host alive here?" (what probeChannel does):
 * socket.write(encodeHello(channel, undefined, HANDSHAKE.kindProbe));
 * const result = new ReplyParser().feed(answer);
 * const live = result.state === "done" && result.value.status === HANDSHAKE.statusOk;
 */
export const HANDSHAKE = {
  /** The 4 bytes that start every hello and reply: `"OCHN"`. */
  magic: Buffer.from("OCHN", "latin1"),
  /** The protocol version this code speaks. */
  version: 1,
  /** Hello kind: a member joining the channel. */
  kindJoin: 1,
  /** "Is our host here?": answered at once (with the host's proof) and closed, never a member. */
  kindProbe: 2,
  /** "Tell me about this channel": the reply (and proof) is followed by a status body, then closed. */
  kindStatus: 3,
  /** Flag: the proof exchange runs (a nonce follows the hello, a nonce and proof the reply). */
  flagProof: 1,
  /**
   * Flag, with `flagProof`: the proofs cover the whole exchange and the connection's endpoints
   * ({@link ProofTranscript}). A host with a secret refuses a hello without it (from an
   * older open-channel), and a member refuses a reply without it.
   */
  flagBound: 2,
  /**
   * Reply flag: the host holds a lease (transports with leases, such as Redis) and tells its
   * epoch, a fencing token that only grows from one host of the channel to the next. Members never
   * accept a host whose epoch is lower than one they have seen. Covered by the proofs.
   */
  flagEpoch: 4,
  /** Bytes of the epoch in a reply. */
  epochLength: 8,
  /** Reply status: welcome, this is the channel's host. */
  statusOk: 0,
  /** Reply status: the host serves another channel at this address. */
  statusWrongChannel: 1,
  /** Reply status: the host does not support the hello's protocol version (or kind). */
  statusUnsupported: 2,
  /** Reply status: the host requires the proof exchange and the hello did not ask for it. */
  statusProofRequired: 3,
  /** The process at this address is not (or no longer) the host: ask the channel's main address. */
  statusNotHost: 4,
  /** Bytes of a hello before the name. */
  helloHeaderLength: 10,
  /** Bytes of a reply without the proof part. */
  replyLength: 20,
  /** Bytes of a nonce. */
  nonceLength: 16,
  /** Bytes of a proof (an HMAC-SHA256). */
  proofLength: 32,
  /**
   * The heir of a channel listens at the address of the channel's name plus this suffix (through
   * the same transport); probes of that address carry that name.
   */
  standbySuffix: STANDBY_SUFFIX,
  /** Longest channel name, in UTF-8 bytes. */
  maxNameBytes: 1024,
  /** Largest status body a reader accepts, in bytes. */
  maxStatusBytes: 64 * 1024,
} as const;

/**
 * What the host answered, as {@link ReplyParser} reads it.
 *
 * @example
 * const result = new ReplyParser().feed(chunk);
 * if (result.state === "done" && result.value.status === HANDSHAKE.statusOk) console.log(`host pid ${result.value.hostPid}`);
 */
export interface HandshakeReply {
  /** One of `HANDSHAKE.status*`: `statusOk` (0) when the host took us. */
  status: number;
  /** `HANDSHAKE.flagProof` when the proof part follows. */
  flags: number;
  /** The pid of the hosting process. */
  hostPid: number;
  /** 8 random bytes per host instance: tells a new host from one that only dropped a connection. */
  serverId: Buffer;
  /** With EPOCH: the host's lease epoch (see `HANDSHAKE.flagEpoch`). */
  epoch?: number;
  /** With PROOF: the host's nonce and its proof. */
  hostNonce?: Buffer;
  /** With PROOF: the host's HMAC over the exchange ({@link computeProof} with role `"host"`). */
  hostProof?: Buffer;
}

/**
 * A parsed hello, as {@link HelloParser} reads it on the host's side.
 *
 * @example
 * const result = new HelloParser().feed(chunk);
 * if (result.state === "done" && result.value.name !== channel) socket.end(encodeReply(HANDSHAKE.statusWrongChannel, process.pid, serverId));
 */
export interface Hello {
  /** The member's protocol version (`HANDSHAKE.version`). */
  version: number;
  /** `HANDSHAKE.kindJoin` (a member) or `HANDSHAKE.kindProbe` (a liveness probe). */
  kind: number;
  /** `HANDSHAKE.flagProof` when the member asks for the proof exchange. */
  flags: number;
  /** The channel the member wants. */
  name: string;
  /** With PROOF: the member's nonce. */
  memberNonce?: Buffer;
}

/**
 * A fresh random nonce (`HANDSHAKE.nonceLength` bytes).
 *
 * @example
 * const hello = encodeHello("jobs", newNonce()); // asks for the proof exchange
 */
export function newNonce(): Buffer {
  return randomBytes(HANDSHAKE.nonceLength);
}

/**
 * Encodes the member's hello for channel `name`; with a nonce, it asks for the proof exchange.
 *
 * @example
 * socket.write(encodeHello("jobs")); // a member joining "jobs", no proof
 * socket.write(encodeHello("jobs", undefined, HANDSHAKE.kindProbe)); // "is the host alive?"
 */
export function encodeHello(name: string, memberNonce?: Buffer, kind: number = HANDSHAKE.kindJoin): Buffer {
  const nameBytes = Buffer.from(name, "utf8");
  const extra = memberNonce === undefined ? 0 : HANDSHAKE.nonceLength;
  const out = Buffer.alloc(HANDSHAKE.helloHeaderLength + nameBytes.length + extra);
  HANDSHAKE.magic.copy(out, 0);
  out[4] = HANDSHAKE.version;
  out[5] = kind;
  out[6] = memberNonce === undefined ? 0 : HANDSHAKE.flagProof | HANDSHAKE.flagBound;
  out.writeUInt16BE(nameBytes.length, 8);
  nameBytes.copy(out, HANDSHAKE.helloHeaderLength);
  memberNonce?.copy(out, HANDSHAKE.helloHeaderLength + nameBytes.length);
  return out;
}

/**
 * Encodes the host's reply; with `proof`, the host nonce and host proof follow.
 *
 * @example
 * const serverId = crypto.randomBytes(8);
 * socket.write(encodeReply(HANDSHAKE.statusOk, process.pid, serverId));
 */
export function encodeReply(
  status: number,
  hostPid: number,
  serverId: Buffer,
  proof?: { hostNonce: Buffer; hostProof: Buffer },
  epoch?: number,
): Buffer {
  const epochBytes = epoch === undefined ? 0 : HANDSHAKE.epochLength;
  const out = Buffer.alloc(HANDSHAKE.replyLength + epochBytes + (proof === undefined ? 0 : HANDSHAKE.nonceLength + HANDSHAKE.proofLength));
  HANDSHAKE.magic.copy(out, 0);
  out[4] = HANDSHAKE.version;
  out[5] = status;
  out[6] = (proof === undefined ? 0 : HANDSHAKE.flagProof | HANDSHAKE.flagBound) | (epoch === undefined ? 0 : HANDSHAKE.flagEpoch);
  out.writeUInt32BE(hostPid >>> 0, 8);
  serverId.copy(out, 12, 0, 8);
  if (epoch !== undefined) out.writeBigUInt64BE(BigInt(epoch), HANDSHAKE.replyLength);
  if (proof !== undefined) {
    const at = HANDSHAKE.replyLength + epochBytes;
    proof.hostNonce.copy(out, at);
    proof.hostProof.copy(out, at + HANDSHAKE.nonceLength);
  }
  return out;
}

/**
 * Encodes a status body: its length (u32be), then `status` as JSON (what a host sends after the
 * reply to a status hello).
 *
 * @example
 * socket.end(encodeStatusBody({ pid: process.pid, members: 3 }));
 */
export function encodeStatusBody(status: object): Buffer {
  const json = Buffer.from(JSON.stringify(status), "utf8");
  const out = Buffer.alloc(4 + json.length);
  out.writeUInt32BE(json.length, 0);
  json.copy(out, 4);
  return out;
}

/**
 * What a proof covers: everything the member goes on to trust, and the connection it came over.
 *
 * @example
 * const transcript: ProofTranscript = { kind: HANDSHAKE.kindJoin, name: "jobs", memberNonce, hostNonce,
 *   status: HANDSHAKE.statusOk, hostPid: process.pid, serverId, binding: endpointBinding(socket, "host") };
 */
export interface ProofTranscript {
  /** The hello's kind (`HANDSHAKE.kind*`): a probe's proof is no join's. */
  kind: number;
  /** The name in the hello (the channel's, or its heir's standby address). */
  name: string;
  /** The member's nonce, from its hello. */
  memberNonce: Buffer;
  /** The host's nonce, from its reply. */
  hostNonce: Buffer;
  /** The reply's status (`HANDSHAKE.status*`). */
  status: number;
  /** The host's pid, as the reply gives it. */
  hostPid: number;
  /** The host server's id, as the reply gives it. */
  serverId: Buffer;
  /** {@link endpointBinding} of the connection, as this side sees it. */
  binding: string;
  /** The host's lease epoch, when the reply tells one. */
  epoch?: number;
}

/**
 * HMAC-SHA256 proof of knowing `secret`, by `role`, over the whole exchange (`transcript`).
 *
 * @example
 * const hostProof = computeProof(secret, "host", { ...transcript, hostNonce });
 * socket.write(encodeReply(HANDSHAKE.statusOk, process.pid, serverId, { hostNonce, hostProof }));
 */
export function computeProof(secret: Buffer, role: "host" | "member", transcript: ProofTranscript): Buffer {
  const { kind, name, memberNonce, hostNonce, status, hostPid, serverId, binding, epoch } = transcript;
  const fixed = Buffer.alloc(8);
  fixed[0] = kind;
  fixed[1] = status;
  fixed.writeUInt32BE(hostPid >>> 0, 2);
  fixed.writeUInt16BE(Buffer.byteLength(name), 6);
  const hmac = createHmac("sha256", secret)
    .update(`open-channel ${role} proof v2\0`)
    .update(fixed)
    .update(name)
    .update(memberNonce)
    .update(hostNonce)
    .update(serverId.subarray(0, 8))
    .update(binding);
  // Only when told, so that a reply without an epoch is proven exactly as before.
  if (epoch !== undefined) hmac.update(`\0epoch ${epoch}`);
  return hmac.digest();
}

/**
 * The connection's two TCP endpoints, member's first, as `side` sees them through `socket`
 * (`"127.0.0.1:50312>127.0.0.1:41877"`); `""` for connections without ports (Unix sockets, pipes).
 * Both ends of one direct connection compute the same string; the two legs of a relay do not.
 *
 * @example
 * endpointBinding(memberSocket, "member") === endpointBinding(acceptedSocket, "host") // true
 */
export function endpointBinding(socket: net.Socket, side: "member" | "host"): string {
  const { localAddress, localPort, remoteAddress, remotePort } = socket;
  if (localPort === undefined || remotePort === undefined) return "";
  const local = `${plainAddress(localAddress)}:${localPort}`;
  const remote = `${plainAddress(remoteAddress)}:${remotePort}`;
  return side === "member" ? `${local}>${remote}` : `${remote}>${local}`;
}

/**
 * @internal On a socket whose connection runs over a secure socket (a channel's socket with a
 * transport's secure layer): that secure socket.
 */
export const kSecureSocket: unique symbol = Symbol("open-channel.secureSocket");

/** The label of RFC 9266's `tls-exporter` channel binding. */
const EXPORTER_LABEL = "EXPORTER-Channel-Binding";

/**
 * What the proofs bind a connection to, as `side` sees it through `socket`: over TLS, the
 * session's exported keying material (RFC 9266 `tls-exporter`: the same at both ends of one TLS
 * session, different on each leg of a relay, whatever NAT did to the endpoints); otherwise the
 * endpoints ({@link endpointBinding}).
 *
 * @example
 * connectionBinding(tlsSocket, "host") // "tls-exporter 5f0c…" (64 hex digits)
 */
export function connectionBinding(socket: net.Socket, side: "member" | "host"): string {
  const secure = (socket as net.Socket & { [kSecureSocket]?: net.Socket })[kSecureSocket] ?? socket;
  const tlsSocket = secure as net.Socket & { encrypted?: boolean; exportKeyingMaterial?(length: number, label: string): Buffer };
  if (tlsSocket.encrypted === true && typeof tlsSocket.exportKeyingMaterial === "function") {
    return `tls-exporter ${tlsSocket.exportKeyingMaterial(32, EXPORTER_LABEL).toString("hex")}`;
  }
  return endpointBinding(socket, side);
}

/** An IPv4 address as a dual-stack socket may show it (`::ffff:127.0.0.1`), as an IPv4 one does. */
function plainAddress(address: string | undefined): string {
  return address?.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : (address ?? "");
}

/**
 * Constant-time comparison of two proofs.
 *
 * @example
 * const expected = computeProof(secret, "member", transcript);
 * if (!proofsEqual(receivedProof, expected)) socket.destroy(); // not one of ours
 */
export function proofsEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Outcome of feeding bytes to a parser: `more` (feed the next chunk), `done` (`value` is the
 * message, `rest` the bytes that followed it, to hand on untouched), or `invalid` (`reason` says
 * why; close the connection).
 *
 * @example
 * const result: ParseResult<Hello> = parser.feed(chunk);
 * if (result.state === "done") onHello(result.value, result.rest);
 * else if (result.state === "invalid") socket.destroy(new Error(result.reason));
 */
export type ParseResult<T> = { state: "more" } | { state: "done"; value: T; rest: Buffer } | { state: "invalid"; reason: string };

/**
 * Accumulates bytes until one complete message is there. Only the handshake's few bytes are
 * buffered; what follows it is handed back untouched as `rest`.
 */
abstract class Parser<T> {
  private buffered: Buffer = Buffer.alloc(0);

  /**
   * Feeds a chunk; returns the outcome so far.
   *
   * @example
   * const parser = new ReplyParser();
   * socket.on("data", (chunk) => {
   *   const result = parser.feed(chunk);
   *   if (result.state !== "more") console.log(result);
   * });
   */
  feed(chunk: Buffer): ParseResult<T> {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    if (!this.checkMagic) return this.parse(this.buffered);
    const magicBytes = Math.min(this.buffered.length, 4);
    if (!this.buffered.subarray(0, magicBytes).equals(HANDSHAKE.magic.subarray(0, magicBytes))) {
      return { state: "invalid", reason: "bad magic (not an open-channel peer)" };
    }
    return this.parse(this.buffered);
  }

  protected readonly checkMagic: boolean = true;
  protected abstract parse(buf: Buffer): ParseResult<T>;
}

/**
 * Parses a member's hello (host side).
 *
 * @example
 * const parser = new HelloParser();
 * socket.on("data", (chunk) => {
 *   const result = parser.feed(chunk);
 *   if (result.state === "done") console.log(`hello for channel ${result.value.name}`);
 * });
 */
export class HelloParser extends Parser<Hello> {
  protected parse(buf: Buffer): ParseResult<Hello> {
    if (buf.length < HANDSHAKE.helloHeaderLength) return { state: "more" };
    const version = buf[4];
    const kind = buf[5];
    const flags = buf[6];
    const nameLength = buf.readUInt16BE(8);
    if (nameLength === 0 || nameLength > HANDSHAKE.maxNameBytes) {
      return { state: "invalid", reason: `name length ${nameLength} out of range` };
    }
    const nameEnd = HANDSHAKE.helloHeaderLength + nameLength;
    const end = nameEnd + ((flags & HANDSHAKE.flagProof) !== 0 ? HANDSHAKE.nonceLength : 0);
    if (buf.length < end) return { state: "more" };
    const name = buf.toString("utf8", HANDSHAKE.helloHeaderLength, nameEnd);
    const hello: Hello = { version, kind, flags, name };
    if (end > nameEnd) hello.memberNonce = Buffer.from(buf.subarray(nameEnd, end));
    return { state: "done", value: hello, rest: buf.subarray(end) };
  }
}

/**
 * Parses the host's reply (member side).
 *
 * @example
 * const parser = new ReplyParser();
 * socket.write(encodeHello("jobs"));
 * socket.on("data", (chunk) => {
 *   const result = parser.feed(chunk);
 *   if (result.state === "done") console.log(`host pid ${result.value.hostPid}, status ${result.value.status}`);
 * });
 */
export class ReplyParser extends Parser<HandshakeReply> {
  protected parse(buf: Buffer): ParseResult<HandshakeReply> {
    if (buf.length < HANDSHAKE.replyLength) return { state: "more" };
    if (buf[4] !== HANDSHAKE.version) {
      return { state: "invalid", reason: `host speaks protocol version ${buf[4]}, this process ${HANDSHAKE.version}` };
    }
    const flags = buf[6];
    const withProof = (flags & HANDSHAKE.flagProof) !== 0;
    const proofAt = HANDSHAKE.replyLength + ((flags & HANDSHAKE.flagEpoch) !== 0 ? HANDSHAKE.epochLength : 0);
    const end = proofAt + (withProof ? HANDSHAKE.nonceLength + HANDSHAKE.proofLength : 0);
    if (buf.length < end) return { state: "more" };
    const reply: HandshakeReply = { status: buf[5], flags, hostPid: buf.readUInt32BE(8), serverId: Buffer.from(buf.subarray(12, 20)) };
    if (proofAt > HANDSHAKE.replyLength) {
      const epoch = buf.readBigUInt64BE(HANDSHAKE.replyLength);
      if (epoch > BigInt(Number.MAX_SAFE_INTEGER)) return { state: "invalid", reason: `epoch ${epoch} out of range` };
      reply.epoch = Number(epoch);
    }
    if (withProof) {
      reply.hostNonce = Buffer.from(buf.subarray(proofAt, proofAt + HANDSHAKE.nonceLength));
      reply.hostProof = Buffer.from(buf.subarray(proofAt + HANDSHAKE.nonceLength, end));
    }
    return { state: "done", value: reply, rest: buf.subarray(end) };
  }
}

/**
 * Reads the member's proof (host side): exactly 32 bytes.
 *
 * @example
 * const result = new ProofParser().feed(chunk);
 * if (result.state === "done") trusted = proofsEqual(result.value, computeProof(secret, "member", transcript));
 */
export class ProofParser extends Parser<Buffer> {
  protected override readonly checkMagic = false;
  protected parse(buf: Buffer): ParseResult<Buffer> {
    if (buf.length < HANDSHAKE.proofLength) return { state: "more" };
    return { state: "done", value: Buffer.from(buf.subarray(0, HANDSHAKE.proofLength)), rest: buf.subarray(HANDSHAKE.proofLength) };
  }
}

/**
 * Reads a status body (the asker's side): a u32be length, then that much JSON, at most
 * `HANDSHAKE.maxStatusBytes`.
 *
 * @example
 * const result = new StatusBodyParser().feed(chunk);
 * if (result.state === "done") console.log((result.value as ChannelStatus).pid);
 */
export class StatusBodyParser extends Parser<unknown> {
  protected override readonly checkMagic = false;
  protected parse(buf: Buffer): ParseResult<unknown> {
    if (buf.length < 4) return { state: "more" };
    const length = buf.readUInt32BE(0);
    if (length > HANDSHAKE.maxStatusBytes) return { state: "invalid", reason: `status body of ${length} bytes is too large` };
    if (buf.length < 4 + length) return { state: "more" };
    try {
      return { state: "done", value: JSON.parse(buf.toString("utf8", 4, 4 + length)) as unknown, rest: buf.subarray(4 + length) };
    } catch {
      return { state: "invalid", reason: "status body is not JSON" };
    }
  }
}
