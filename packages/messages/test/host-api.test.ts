import { type ChildProcess, fork } from "node:child_process";
import * as path from "node:path";
import { isDeepStrictEqual } from "node:util";

// The host-side API of the message layer, between real processes over real sockets: onJoin and
// onLeave (once per session and host), host.members(), calls from the host to members (sendTo,
// requestTo, broadcast) and their errors, the window of calls to a member (maxUnacked), held state
// that survives the host's SIGKILL, named events, and a host side that no longer hosts.
//
// Every process is fixtures/host-api-member.js. The first one forked hosts (the test waits for it
// to say so before forking the others); the test drives each process over IPC, and the host
// process makes the host-side calls on command, reporting their outcomes (and error codes).

const FIXTURE = path.join(__dirname, "fixtures", "host-api-member.js");
/** The host's grace for a member whose connection closed without a BYE (LEAVE_GRACE_MS). */
const GRACE_MS = 2000;

interface MemberView {
  pid: number;
  session: string;
  since: number;
  transport: string;
  rejoined: boolean;
  connected: boolean;
  state: Record<string, unknown>;
}

interface Report {
  pid: number;
  type: string;
  /** when the report was received here */
  receivedAt: number;
  id?: number;
  ok?: boolean;
  value?: unknown;
  code?: string;
  remoteCode?: string;
  errPid?: number;
  message?: string;
  ms?: number;
  isHost?: boolean;
  hostPid?: number;
  session?: string;
  at?: number;
  reason?: string;
  member?: MemberView;
  body?: unknown;
  from?: number;
  name?: string;
  n?: number;
  inflight?: number;
  maxInflight?: number;
}

type Done = Report & { type: "done" };

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const bySession = (a: { session: string }, b: { session: string }): number => (a.session < b.session ? -1 : 1);

/** The processes of one test, what they reported, and ways to wait for reports. */
class Processes {
  readonly reports: Report[] = [];
  readonly children = new Map<number, ChildProcess>();
  /** Session of each process's messenger, by pid. */
  readonly sessions = new Map<number, string>();
  readonly killed = new Set<number>();
  private readonly wakeups = new Set<() => void>();
  private nextId = 1;
  readonly channel: string;

  constructor(
    readonly transport: string,
    private readonly env: Record<string, string> = {},
  ) {
    this.channel = `host-api-${transport}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  }

  waitFor<T>(check: () => T | undefined, what: string, ms = 15000): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.wakeups.delete(tick);
        reject(new Error(`timed out waiting for ${what}; last reports ${JSON.stringify(this.reports.slice(-8))}`));
      }, ms);
      const tick = (): void => {
        const v = check();
        if (v === undefined) return;
        clearTimeout(timer);
        this.wakeups.delete(tick);
        resolve(v);
      };
      this.wakeups.add(tick);
      tick();
    });
  }

  /** Forks a process; resolves with its pid once it reported its session. */
  async spawn(env: Record<string, string> = {}): Promise<number> {
    const child = fork(FIXTURE, [], {
      env: { ...process.env, OC_CHANNEL: this.channel, OC_TRANSPORT: this.transport, ...this.env, ...env },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const pid = child.pid as number;
    child.on("message", (m) => {
      const r = { ...(m as Report), receivedAt: Date.now() };
      this.reports.push(r);
      if (r.type === "ready") this.sessions.set(r.pid, r.session as string);
      for (const w of [...this.wakeups]) w();
    });
    this.children.set(pid, child);
    await this.waitFor(() => (this.sessions.has(pid) ? true : undefined), `pid ${pid} ready`);
    return pid;
  }

  /** Forks the host: the first process, which reports hosting. */
  async spawnHost(env: Record<string, string> = {}): Promise<number> {
    const pid = await this.spawn(env);
    await this.waitFor(() => (this.of(pid, "hosting").some((r) => r.isHost) ? true : undefined), `pid ${pid} hosting`);
    return pid;
  }

  /** Forks a member and waits until `host` reported its join. */
  async spawnMember(host: number, env: Record<string, string> = {}): Promise<number> {
    const pid = await this.spawn(env);
    const session = this.session(pid);
    await this.waitFor(() => (this.joins(host, session).length > 0 ? true : undefined), `the join of pid ${pid} on host ${host}`);
    return pid;
  }

  session(pid: number): string {
    return this.sessions.get(pid) as string;
  }

  /** Reports of `pid` of `type`, from index `since` on. */
  of(pid: number, type: string, since = 0): Report[] {
    return this.reports.slice(since).filter((r) => r.pid === pid && r.type === type);
  }

  joins(host: number, session: string, since = 0): Report[] {
    return this.of(host, "join", since).filter((r) => r.member?.session === session);
  }

  leaves(host: number, session: string): Report[] {
    return this.of(host, "leave").filter((r) => r.member?.session === session);
  }

  /** Sends `cmd` to `pid`; resolves with its outcome. */
  ask(pid: number, cmd: Record<string, unknown>, ms = 15000): Promise<Done> {
    const id = this.nextId++;
    this.children.get(pid)?.send({ ...cmd, id });
    return this.waitFor(
      () => this.reports.find((r) => r.type === "done" && r.id === id) as Done | undefined,
      `${JSON.stringify(cmd)} to ${pid}`,
      ms,
    );
  }

  /** A host-side operation, made in process `host`. */
  hostOp(host: number, op: string, args: Record<string, unknown> = {}, ms?: number): Promise<Done> {
    return this.ask(host, { type: "host", op, ...args }, ms);
  }

  async members(host: number): Promise<MemberView[]> {
    const done = await this.hostOp(host, "members");
    expect(done.ok).toBe(true);
    return done.value as MemberView[];
  }

  kill(pid: number): number {
    const at = Date.now();
    this.children.get(pid)?.kill("SIGKILL");
    this.killed.add(pid);
    return at;
  }

  /** Kills every process and waits for their exit (their IPC pipes closed: no handle left open). */
  async killAll(): Promise<void> {
    const exits: Promise<void>[] = [];
    for (const child of this.children.values()) {
      if (child.exitCode === null && child.signalCode === null) {
        exits.push(new Promise((resolve) => child.once("exit", () => resolve())));
        child.kill("SIGKILL");
      }
    }
    await Promise.race([Promise.all(exits), sleep(5000)]);
    this.children.clear();
    this.wakeups.clear();
  }
}

let procs: Processes | undefined;
afterEach(async () => {
  await procs?.killAll();
  procs = undefined;
});

describe("host-side API over unix", () => {
  test("joins and leaves once per session: close() leaves at once as 'closed', a SIGKILL after the grace as 'lost'", async () => {
    const p = new Processes("unix");
    procs = p;
    const t0 = Date.now();
    const host = await p.spawnHost();
    const [a, b, c] = await Promise.all([p.spawnMember(host), p.spawnMember(host), p.spawnMember(host)]);
    const all = [host, a, b, c];

    // One join per session (the host's own messenger is a member too), and members() lists them.
    for (const pid of all) expect(p.joins(host, p.session(pid))).toHaveLength(1);
    for (const r of p.of(host, "join")) expect(r.member).toMatchObject({ rejoined: false, connected: true, transport: "unix" });
    const listed = await p.members(host);
    expect(listed.map((m) => ({ pid: m.pid, session: m.session })).sort(bySession)).toEqual(
      all.map((pid) => ({ pid, session: p.session(pid) })).sort(bySession),
    );
    for (const m of listed) {
      expect(m.transport).toBe("unix");
      expect(m.connected).toBe(true);
      expect(m.rejoined).toBe(false);
      expect(m.since).toBeGreaterThanOrEqual(t0);
      expect(m.since).toBeLessThanOrEqual(Date.now());
    }

    // a closes its messenger (a BYE), b is SIGKILLed: at the same time.
    const closed = p.ask(a, { type: "close" });
    const killedAt = p.kill(b);
    const closing = await p.waitFor(() => p.of(a, "closing")[0], "a closing");
    const leftA = await p.waitFor(() => p.leaves(host, p.session(a))[0], "the leave of a");
    expect(leftA.reason).toBe("closed");
    expect(leftA.member?.pid).toBe(a);
    expect((leftA.at as number) - (closing.at as number)).toBeLessThan(1000);
    expect((await closed).ok).toBe(true);

    const leftB = await p.waitFor(() => p.leaves(host, p.session(b))[0], "the leave of b", 10000);
    expect(leftB.reason).toBe("lost");
    expect(leftB.member?.pid).toBe(b);
    expect((leftB.at as number) - killedAt).toBeGreaterThanOrEqual(GRACE_MS - 500);
    expect((leftB.at as number) - killedAt).toBeLessThan(GRACE_MS + 3000);

    // Once each: more than the grace after a's close, no second leave (a "lost" after its "closed").
    await sleep(700);
    expect(p.leaves(host, p.session(a))).toHaveLength(1);
    expect(p.leaves(host, p.session(b))).toHaveLength(1);
    expect(p.leaves(host, p.session(c))).toHaveLength(0);
    expect(p.leaves(host, p.session(host))).toHaveLength(0);
    for (const pid of all) expect(p.joins(host, p.session(pid))).toHaveLength(1);
    const after = await p.members(host);
    expect(after.map((m) => m.session).sort()).toEqual([p.session(host), p.session(c)].sort());
  });

  test("sendTo, requestTo and broadcast between processes: replies, member errors, timeout, a member lost mid-call", async () => {
    const p = new Processes("unix");
    procs = p;
    const host = await p.spawnHost();
    const [a, b, c] = await Promise.all([
      p.spawnMember(host),
      p.spawnMember(host, { OC_MODE: "no-request,fail-broadcast" }),
      p.spawnMember(host),
    ]);
    const A = p.session(a);

    // sendTo resolves once a's onMessage ran.
    const sent = await p.hostOp(host, "sendTo", { session: A, body: { kind: "echo", n: 1 } });
    expect(sent).toMatchObject({ ok: true, value: null });
    await p.waitFor(() => p.of(a, "call").find((r) => (r.body as { n?: number }).n === 1), "a's onMessage");

    // requestTo resolves with a's reply.
    const reply = await p.hostOp(host, "requestTo", { session: A, body: { kind: "echo", n: 2 } });
    expect(reply).toMatchObject({ ok: true, value: { echo: { kind: "echo", n: 2 }, pid: a } });

    // a's handlers throw: MEMBER_FAILED, with the member's code and pid.
    const failedRequest = await p.hostOp(host, "requestTo", { session: A, body: { kind: "throw" } });
    expect(failedRequest).toMatchObject({ ok: false, code: "ERR_OPEN_CHANNEL_MEMBER_FAILED", remoteCode: "E_MEMBER_THREW", errPid: a });
    const failedMessage = await p.hostOp(host, "sendTo", { session: A, body: { kind: "throw" } });
    expect(failedMessage).toMatchObject({ ok: false, code: "ERR_OPEN_CHANNEL_MEMBER_FAILED", remoteCode: "E_MEMBER_THREW", errPid: a });

    // b has no onRequest.
    const noHandler = await p.hostOp(host, "requestTo", { session: p.session(b), body: { kind: "echo" } });
    expect(noHandler).toMatchObject({
      ok: false,
      code: "ERR_OPEN_CHANNEL_MEMBER_FAILED",
      remoteCode: "ERR_OPEN_CHANNEL_NO_HANDLER",
      errPid: b,
    });

    // A handler that never returns, with a timeout.
    const timedOut = await p.hostOp(host, "requestTo", { session: A, body: { kind: "never" }, timeout: 200 });
    expect(timedOut).toMatchObject({ ok: false, code: "ETIMEDOUT" });
    expect(timedOut.ms).toBeGreaterThanOrEqual(190);
    expect(timedOut.ms).toBeLessThan(2000);

    // The channel still works for a after the timeout.
    expect(await p.hostOp(host, "requestTo", { session: A, body: { kind: "echo", n: 3 } })).toMatchObject({
      ok: true,
      value: { echo: { n: 3 }, pid: a },
    });

    // broadcast: every member's onMessage but b's (it throws): exactly the others.
    const everyone = await p.hostOp(host, "broadcast", { body: { kind: "bcast" } });
    expect(everyone.ok).toBe(true);
    expect((everyone.value as string[]).sort()).toEqual([host, a, c].map((pid) => p.session(pid)).sort());
    for (const pid of [host, a, b, c]) {
      await p.waitFor(() => p.of(pid, "call").find((r) => (r.body as { kind: string }).kind === "bcast"), `the broadcast in ${pid}`);
    }

    // A call pending when its member is SIGKILLed: MEMBER_LEFT, after the grace.
    const pending = p.hostOp(host, "requestTo", { session: p.session(c), body: { kind: "never" }, timeout: 20000 });
    await p.waitFor(() => p.of(c, "request").find((r) => (r.body as { kind: string }).kind === "never"), "c's request");
    const killedAt = p.kill(c);
    const left = await pending;
    expect(left).toMatchObject({ ok: false, code: "ERR_OPEN_CHANNEL_MEMBER_LEFT", errPid: c });
    expect(left.receivedAt - killedAt).toBeGreaterThanOrEqual(GRACE_MS - 500);
    expect(p.leaves(host, p.session(c)).map((r) => r.reason)).toEqual(["lost"]);

    // And then a broadcast no longer counts c.
    const rest = await p.hostOp(host, "broadcast", { body: { kind: "bcast" } });
    expect((rest.value as string[]).sort()).toEqual([host, a].map((pid) => p.session(pid)).sort());
    // A call to a member that left: MEMBER_LEFT at once.
    const gone = await p.hostOp(host, "sendTo", { session: p.session(c), body: { kind: "echo" } });
    expect(gone).toMatchObject({ ok: false, code: "ERR_OPEN_CHANNEL_MEMBER_LEFT" });
  });

  test("maxUnacked 4: 20 concurrent sendTo calls to a slow member, at most 4 in its handler at a time, all resolve in order", async () => {
    const p = new Processes("unix", { OC_MAX_UNACKED: "4" });
    procs = p;
    const host = await p.spawnHost();
    const m = await p.spawnMember(host);
    const CALLS = 20;
    const WINDOW = 4;
    const all = p.hostOp(host, "sendMany", { session: p.session(m), count: CALLS }, 30000);
    const starts = (): Report[] => p.of(m, "slow-start");
    let released = 0;
    while (released < CALLS) {
      const expected = Math.min(CALLS, released + WINDOW);
      await p.waitFor(() => (starts().length >= expected ? true : undefined), `${expected} slow handlers started`);
      // Room for a call beyond the window to arrive, if the host sent one.
      await sleep(100);
      expect(starts().length).toBe(expected);
      const done = await p.ask(m, { type: "release-slow" });
      expect(done.value).toMatchObject({ released: expected - released });
      released = expected;
    }
    const result = await all;
    expect(result).toMatchObject({ ok: true, value: Array.from({ length: CALLS }, (_, i) => i + 1) });
    // The member's own count of handlers running at once.
    expect(Math.max(...starts().map((r) => r.maxInflight as number))).toBe(WINDOW);
    expect(starts().map((r) => r.n)).toEqual(Array.from({ length: CALLS }, (_, i) => i + 1));
  });

  test("named events: member emit to handlers.events, host emit/emitTo to events.on, publish/subscribe between members", async () => {
    const p = new Processes("unix");
    procs = p;
    const host = await p.spawnHost();
    const [a, b] = await Promise.all([p.spawnMember(host), p.spawnMember(host)]);

    // A member's emit runs the host's handlers.events[name], not onMessage.
    expect(await p.ask(a, { type: "emit", name: "ping", body: { n: 1 } })).toMatchObject({ ok: true });
    const ping = await p.waitFor(() => p.of(host, "host-event")[0], "the host's events.ping");
    expect(ping).toMatchObject({ name: "ping", body: { n: 1 }, from: a });
    // A name with no handler there goes to onMessage, as its envelope.
    expect(await p.ask(a, { type: "emit", name: "other", body: { n: 2 } })).toMatchObject({ ok: true });
    const other = await p.waitFor(() => p.of(host, "host-message")[0], "the host's onMessage");
    expect(other).toMatchObject({ body: { "@open-channel/event": "other", body: { n: 2 } }, from: a });
    expect(p.of(host, "host-message")).toHaveLength(1);
    expect(p.of(host, "host-event")).toHaveLength(1);

    // The host's emit reaches every member's events.on, and resolves with them all.
    const emitted = await p.hostOp(host, "emit", { name: "notice", body: { x: 1 } });
    expect(emitted.ok).toBe(true);
    expect((emitted.value as string[]).sort()).toEqual([host, a, b].map((pid) => p.session(pid)).sort());
    for (const pid of [host, a, b]) {
      // Resolved once they ran: the reports came before the outcome.
      await p.waitFor(() => p.of(pid, "member-event").find((r) => (r.body as { x: number }).x === 1), `notice 1 in ${pid}`);
    }
    // emitTo: a only.
    expect(await p.hostOp(host, "emitTo", { session: p.session(a), name: "notice", body: { x: 2 } })).toMatchObject({ ok: true });
    await p.waitFor(() => p.of(a, "member-event").find((r) => (r.body as { x: number }).x === 2), "notice 2 in a");
    await sleep(150);
    for (const pid of [host, b]) expect(p.of(pid, "member-event").map((r) => r.body)).toEqual([{ x: 1 }]);
    // None of these were calls to onMessage.
    for (const pid of [host, a, b]) expect(p.of(pid, "call")).toEqual([]);

    // publish/subscribe between members: b subscribed, a publishes.
    expect(await p.ask(b, { type: "subscribe", name: "chat" })).toMatchObject({ ok: true });
    expect(await p.ask(a, { type: "publish", name: "chat", body: { text: "hi" } })).toMatchObject({ ok: true });
    const heard = await p.waitFor(() => p.of(b, "sub-event")[0], "b's subscriber");
    expect(heard).toMatchObject({ name: "chat", body: { text: "hi" }, from: a });
    await sleep(100);
    expect(p.reports.filter((r) => r.type === "sub-event")).toHaveLength(1);
  });

  test("channel.host is undefined in a member that does not host; a host side that stopped hosting rejects with ERR_OPEN_CHANNEL_NOT_HOST", async () => {
    const p = new Processes("unix");
    procs = p;
    const host = await p.spawnHost();
    const a = await p.spawnMember(host);
    expect(await p.hostOp(a, "members")).toMatchObject({ ok: true, value: { hostDefined: false, isHost: false } });
    expect(await p.hostOp(host, "members")).toMatchObject({ ok: true });

    // The host leaves a request to a pending and hands over: the pending call and a later one
    // on the same host side are refused with NOT_HOST.
    const handover = await p.ask(host, { type: "handover", session: p.session(a) });
    expect(handover).toMatchObject({
      ok: true,
      value: {
        pending: { ok: false, code: "ERR_OPEN_CHANNEL_NOT_HOST" },
        later: { ok: false, code: "ERR_OPEN_CHANNEL_NOT_HOST" },
        hostAfter: "undefined",
        isHost: false,
      },
    });
    // a hosts now: its channel.host is there, and lists it, rejoined.
    await p.waitFor(() => (p.of(a, "hosting").some((r) => r.isHost) ? true : undefined), "a hosting");
    await p.waitFor(() => p.joins(a, p.session(a))[0], "a's own join on itself");
    const members = await p.members(a);
    expect(members.map((m) => [m.session, m.rejoined])).toEqual([[p.session(a), true]]);
  });
});

describe.each(["unix", "tcp"])("held state across host failovers over %s", (transport) => {
  test("the host SIGKILLed 3 times: every member rejoins the new host with what it holds (updated, released keys gone)", async () => {
    const p = new Processes(transport);
    procs = p;
    const KILLS = 3;
    const MEMBERS = 4;
    let host = await p.spawnHost();
    const others = await Promise.all(Array.from({ length: MEMBERS - 1 }, () => p.spawnMember(host)));
    let alive = [host, ...others];

    /** Sets what `pid` holds: k = {v: 1}, a released key, upd = {v: version}. */
    const setState = async (pid: number, version: number): Promise<void> => {
      expect(await p.ask(pid, { type: "hold", key: "k", value: { v: 1 } })).toMatchObject({ ok: true });
      expect(await p.ask(pid, { type: "hold", key: "gone", value: { v: 0 } })).toMatchObject({ ok: true });
      expect(await p.ask(pid, { type: "hold", key: "upd", value: { v: 1 } })).toMatchObject({ ok: true });
      expect(await p.ask(pid, { type: "release", key: "gone" })).toMatchObject({ ok: true, value: { released: true } });
      expect(await p.ask(pid, { type: "hold", key: "upd", value: { v: version } })).toMatchObject({
        ok: true,
        value: { k: { v: 1 }, upd: { v: version } },
      });
    };
    const expected = (version: number): Record<string, unknown> => ({ k: { v: 1 }, upd: { v: version } });

    await Promise.all(alive.map((pid) => setState(pid, 2)));
    // The live host sees it through HOLD frames.
    let listed: MemberView[] = [];
    for (let i = 0; i < 40; i++) {
      listed = await p.members(host);
      if (listed.every((m) => isDeepStrictEqual(m.state, expected(2)))) break;
      await sleep(50);
    }
    expect(listed.map((m) => m.state)).toEqual(alive.map(() => expected(2)));

    for (let kill = 1; kill <= KILLS; kill++) {
      const version = 2 + kill;
      // Updated right before the kill: whether the HOLD reaches the dying host or not, the hello
      // to the next one carries it.
      const survivors = alive.filter((pid) => pid !== host);
      await Promise.all(
        survivors.map(async (pid) => {
          expect(await p.ask(pid, { type: "hold", key: "upd", value: { v: version } })).toMatchObject({ ok: true });
        }),
      );
      const since = p.reports.length;
      p.kill(host);
      alive = survivors;
      host = await p.waitFor(
        () => p.reports.slice(since).find((r) => r.type === "hosting" && r.isHost && alive.includes(r.pid))?.pid,
        `a new host after kill ${kill}`,
      );
      const newHost = host;
      const rejoins = await p.waitFor(() => {
        const joins = alive.map((pid) => p.joins(newHost, p.session(pid), since));
        return joins.every((j) => j.length > 0) ? joins : undefined;
      }, `every survivor on the new host ${newHost} (kill ${kill})`);
      for (const [i, joins] of rejoins.entries()) {
        expect(joins).toHaveLength(1);
        const member = joins[0].member as MemberView;
        expect({ pid: member.pid, rejoined: member.rejoined, transport: member.transport, state: member.state }).toEqual({
          pid: alive[i],
          rejoined: true,
          transport,
          state: expected(version),
        });
      }
      // Keep MEMBERS alive: a new one holds the same.
      const fresh = await p.spawnMember(host);
      const joined = p.joins(host, p.session(fresh))[0].member as MemberView;
      expect({ rejoined: joined.rejoined, state: joined.state }).toEqual({ rejoined: false, state: {} });
      await setState(fresh, version);
      alive = [...alive, fresh];
    }
    // The last host's view, from members(): every member, each with its state.
    let last: MemberView[] = [];
    for (let i = 0; i < 40; i++) {
      last = await p.members(host);
      if (last.length === MEMBERS && last.every((m) => isDeepStrictEqual(m.state, expected(2 + KILLS)))) break;
      await sleep(50);
    }
    expect(last.map((m) => m.session).sort()).toEqual(alive.map((pid) => p.session(pid)).sort());
    for (const m of last) expect(m.state).toEqual(expected(2 + KILLS));
  });
});
