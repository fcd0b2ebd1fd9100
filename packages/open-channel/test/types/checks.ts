// Type checks of the public API, compiled by types.test.ts: every line under a @ts-expect-error
// must be an error, and every other line must compile. Never run.
import openChannel, { type FailoverInfo, isOpenChannelError, OpenChannelError, openMessageChannel, type Sendable } from "open-channel";

export function channelEvents(): void {
  const channel = openChannel("types", (socket) => socket.end());
  channel.on("failover", (info) => {
    const seen: FailoverInfo = info;
    const ms: number = info.ms + info.hostPid + info.previousHostPid;
    return [seen, ms];
  });
  // @ts-expect-error a misspelt field of the failover event
  channel.on("failover", (info) => info.msTypo);
  // @ts-expect-error no such event
  channel.on("falover", () => undefined);
  channel.on("state", (state, previous) => {
    const states: Array<"initiated" | "connecting" | "connected" | "closed"> = [state, previous];
    return states;
  });
  // @ts-expect-error "hosting" passes a boolean
  channel.on("hosting", (isHost: string) => isHost);
  channel.once("heir", (isHeir: boolean) => isHeir);
}

export async function messages(): Promise<void> {
  const jobs = openMessageChannel<{ job: number }, "count">("types", {
    onMessage(body, from) {
      const job: number = body.job;
      from.send({ took: job });
      // @ts-expect-error a push is a body too
      from.send(() => job);
    },
    onRequest(body) {
      const asked: "count" = body;
      return asked.length;
    },
  });
  const m = jobs.connect();
  m.on("message", (body: unknown) => body);
  m.on("error", (err) => err.message);
  // @ts-expect-error no such event
  m.on("mesage", () => undefined);
  const count: number = await m.request<number>("count");
  const unknownReply: unknown = await m.request("count");
  m.subscribe<{ eur: number }>("prices", (body, meta) => body.eur + meta.pid + meta.topic.length);
  // @ts-expect-error a function cannot be sent
  await m.send(() => 1);
  // @ts-expect-error nor an object holding one
  await m.send({ run: () => 1 });
  // @ts-expect-error nor a Symbol
  await m.send(Symbol("x"));
  // @ts-expect-error nor a WeakMap
  await m.publish("t", new WeakMap());
  // @ts-expect-error nor a promise
  await m.request(Promise.resolve(1));
  await m.send({ id: 1, at: new Date(), tags: new Set(["a"]), raw: Buffer.from("x"), nested: [{ n: 1n, re: /x/ }] });
  const body: unknown = JSON.parse("{}");
  await m.send(body);
  const checked: Sendable<{ a: number[] }> = { a: [count] };
  await m.send(checked);
  void unknownReply;
}

export function remoteErrors(err: unknown): string | undefined {
  if (isOpenChannelError(err, "ERR_OPEN_CHANNEL_REMOTE")) return err.remoteCode ?? err.remoteName;
  if (err instanceof OpenChannelError) return err.remoteCode;
  return undefined;
}
