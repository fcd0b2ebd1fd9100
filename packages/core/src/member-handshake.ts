import type * as net from "node:net";
import {
  computeProof,
  connectionBinding,
  encodeHello,
  HANDSHAKE,
  type HandshakeReply,
  newNonce,
  proofsEqual,
  ReplyParser,
} from "./handshake";

/**
 * Where a member's handshake stands after a chunk from the host (see {@link MemberHandshake}).
 *
 * @example
 * const step: MemberStep = handshake.feed(chunk);
 * if (step.state === "stranger") socket.destroy(new Error(step.reason));
 */
export type MemberStep = MemberMore | MemberAccepted | MemberRefused | MemberStranger;

/**
 * Feed the next chunk.
 *
 * @example
 * if (handshake.feed(chunk).state === "more") return;
 */
export interface MemberMore {
  /** `"more"`. */
  state: "more";
}

/**
 * Our host took us: write `answer` (when there is one), then the stream is the user's.
 *
 * @example
 * if (step.state === "accepted") { if (step.answer) socket.write(step.answer); socket.unshift(step.rest); }
 */
export interface MemberAccepted {
  /** `"accepted"`. */
  state: "accepted";
  /** The host's reply, proven. */
  reply: HandshakeReply;
  /** The member's proof, to write (a join or a status request with a secret); else `undefined`. */
  answer: Buffer | undefined;
  /** What followed the reply in the chunk: the start of the stream. */
  rest: Buffer;
}

/**
 * The reply's status is not ok (`reply.status` says which); nothing in it is proven.
 *
 * @example
 * if (step.state === "refused" && step.reply.status === HANDSHAKE.statusNotHost) askTheMainAddress();
 */
export interface MemberRefused {
  /** `"refused"`. */
  state: "refused";
  /** The reply as sent. */
  reply: HandshakeReply;
}

/**
 * Not our host: bytes that are no reply, or an ok without a good proof for this connection.
 *
 * @example
 * if (step.state === "stranger") debug("not our host: %s", step.reason);
 */
export interface MemberStranger {
  /** `"stranger"`. */
  state: "stranger";
  /** Why, for error messages. */
  reason: string;
}

/**
 * The member's side of the handshake, the one place that says what a member sends and what it
 * makes of the answer, for every kind of hello: a join (the channel), a probe (reclaims, the
 * host's watch), a status request. No I/O: the caller connects, writes and reads.
 *
 * @example
 * const handshake = new MemberHandshake("jobs", HANDSHAKE.kindProbe, transport.secret?.("jobs"));
 * socket.on("connect", () => socket.write(handshake.hello(socket)));
 * socket.on("data", (chunk) => {
 *   const step = handshake.feed(chunk);
 *   if (step.state === "accepted") console.log(`host pid ${step.reply.hostPid}`);
 * });
 */
export class MemberHandshake {
  private readonly parser = new ReplyParser();
  private readonly memberNonce: Buffer | undefined;
  private binding = "";

  /**
   * A handshake for one connection: make a new one for each.
   *
   * @param name The name in the hello: the channel's, or its heir's standby address.
   * @param kind `HANDSHAKE.kindJoin`, `kindProbe` or `kindStatus`.
   * @param secret The transport's per-user secret; with one, the proofs run both ways.
   *
   * @example
   * const join = new MemberHandshake("jobs", HANDSHAKE.kindJoin, transport.secret?.("jobs"));
   */
  constructor(
    private readonly name: string,
    private readonly kind: number,
    private readonly secret: Buffer | undefined,
  ) {
    this.memberNonce = secret === undefined ? undefined : newNonce();
  }

  /**
   * The hello, to write once `socket` is connected (the proofs cover its endpoints as they are then).
   *
   * @example
   * socket.on("connect", () => socket.write(handshake.hello(socket)));
   */
  hello(socket: net.Socket): Buffer {
    this.binding = connectionBinding(socket, "member");
    return encodeHello(this.name, this.memberNonce, this.kind);
  }

  /**
   * Reads a chunk from the host. After a state other than `more`, feed no more.
   *
   * @example
   * const step = handshake.feed(chunk);
   * if (step.state === "accepted" && step.answer !== undefined) socket.write(step.answer);
   */
  feed(chunk: Buffer): MemberStep {
    const result = this.parser.feed(chunk);
    if (result.state === "more") return result;
    if (result.state === "invalid") return { state: "stranger", reason: result.reason };
    const reply = result.value;
    if (reply.status !== HANDSHAKE.statusOk) return { state: "refused", reply };
    const { secret, memberNonce } = this;
    if (secret === undefined || memberNonce === undefined) return { state: "accepted", reply, answer: undefined, rest: result.rest };
    // The host proves first; a squatter on our address cannot, and learns nothing from us.
    const { hostNonce, hostProof } = reply;
    if (hostNonce === undefined || hostProof === undefined)
      return { state: "stranger", reason: "the peer sent no proof that it is our host" };
    if ((reply.flags & HANDSHAKE.flagBound) === 0) {
      return { state: "stranger", reason: "the peer's proof does not cover the connection (an older open-channel, or a relay)" };
    }
    const transcript = {
      kind: this.kind,
      name: this.name,
      memberNonce,
      hostNonce,
      status: reply.status,
      hostPid: reply.hostPid,
      serverId: reply.serverId,
      binding: this.binding,
      epoch: reply.epoch,
    };
    if (!proofsEqual(hostProof, computeProof(secret, "host", transcript))) {
      return {
        state: "stranger",
        reason: "the peer could not prove it is our host on this connection (a stranger, a relay, or another secret)",
      };
    }
    // A probe only asks; a join or a status request proves itself in turn.
    const answer = this.kind === HANDSHAKE.kindProbe ? undefined : computeProof(secret, "member", transcript);
    return { state: "accepted", reply, answer, rest: result.rest };
  }
}
