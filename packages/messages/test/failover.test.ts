import { type ChildProcess, fork } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { reportLog } from "./reports";

// Nothing lost across failovers: members send sequence-numbered messages while their host is
// SIGKILLed, twice; every host appends what its onMessage saw to a file (synchronously, so a kill
// loses none of it). Every message of a surviving member is acknowledged, delivered at least once,
// and any second delivery carries the redelivered flag; each host saw each member's stream in order.

interface Report {
  pid: number;
  type: string;
  isHost?: boolean;
  hostPid?: number;
  count?: number;
  acked?: number;
  code?: string;
  message?: string;
  reply?: { n: number; by: number };
}

const MEMBERS = 5;
const PER_MEMBER = 400;
const FIXTURE = path.join(__dirname, "fixtures", "msg-member.js");

describe.each(["unix", "tcp"])("messages across failovers over %s", (transport) => {
  const children = new Map<number, ChildProcess>();
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "oc-msg-failover-"));
  });
  afterEach(() => {
    for (const c of children.values()) c.kill("SIGKILL");
    children.clear();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("the host SIGKILLed twice mid-stream: nothing lost, every duplicate flagged, order kept per host", async () => {
    const channel = `msg-failover-${transport}-${process.pid}-${Date.now().toString(36)}`;
    const { reports, add, waitFor } = reportLog<Report>();
    for (let i = 0; i < MEMBERS; i++) {
      const child = fork(FIXTURE, [], {
        env: { ...process.env, OC_CHANNEL: channel, OC_TRANSPORT: transport, OC_LOG_DIR: dir },
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      child.on("message", (m) => add(m as Report));
      children.set(child.pid as number, child);
    }
    const pids = [...children.keys()];
    const currentHost = (alive: number[], since: number): number | undefined => {
      const latest = new Map<number, number>();
      for (const r of reports.slice(since)) if (r.type === "connect" && alive.includes(r.pid)) latest.set(r.pid, r.hostPid as number);
      const hosts = new Set(latest.values());
      return latest.size === alive.length && hosts.size === 1 && alive.includes([...hosts][0]) ? [...hosts][0] : undefined;
    };
    let alive = pids;
    let host = await waitFor(() => currentHost(alive, 0), "a first host");
    for (const pid of pids) children.get(pid)?.send({ type: "send", count: PER_MEMBER });
    const ackedSoFar = (): number => {
      const latest = new Map<number, number>();
      for (const r of reports) if (r.type === "acked") latest.set(r.pid, r.count as number);
      return [...latest.values()].reduce((a, b) => a + b, 0);
    };
    for (const threshold of [300, 900]) {
      await waitFor(() => (ackedSoFar() >= threshold ? true : undefined), `${threshold} acknowledgements`);
      const since = reports.length;
      children.get(host)?.kill("SIGKILL");
      children.delete(host);
      alive = alive.filter((p) => p !== host);
      host = await waitFor(() => currentHost(alive, since), "the survivors on one new host");
    }
    const done = await waitFor(
      () => {
        const finished = reports.filter((r) => r.type === "done" && alive.includes(r.pid));
        return finished.length === alive.length ? finished : undefined;
      },
      "every survivor done",
      60000,
    );
    expect(reports.filter((r) => r.type === "error" && alive.includes(r.pid))).toEqual([]);
    for (const d of done) {
      expect(d.acked).toBe(PER_MEMBER);
      expect(d.reply).toEqual({ n: -1, by: host });
    }

    // What every host that ever ran saw.
    const deliveries = new Map<string, number[]>(); // "from n" -> redelivered flags, in order
    const files = fs.readdirSync(dir).filter((f) => f.startsWith("host-"));
    expect(files.length).toBeGreaterThanOrEqual(3);
    for (const file of files) {
      const lastN = new Map<number, number>();
      for (const line of fs.readFileSync(path.join(dir, file), "utf8").split("\n").filter(Boolean)) {
        const [from, n, flag] = line.split(" ").map(Number);
        // In order per member, within one host.
        expect(n).toBeGreaterThan(lastN.get(from) ?? 0);
        lastN.set(from, n);
        const key = `${from} ${n}`;
        deliveries.set(key, [...(deliveries.get(key) ?? []), flag]);
      }
    }
    let lost = 0;
    let duplicated = 0;
    let unflagged = 0;
    for (const pid of alive) {
      for (let n = 1; n <= PER_MEMBER; n++) {
        const flags = deliveries.get(`${pid} ${n}`) ?? [];
        if (flags.length === 0) lost++;
        if (flags.length > 1) duplicated += flags.length - 1;
        if (flags.filter((f) => f === 0).length > 1) unflagged++;
      }
    }
    if (process.env.OC_MSG_STATS)
      console.log(
        JSON.stringify({
          transport,
          files: files.map((f) => fs.readFileSync(path.join(dir, f), "utf8").split("\n").length - 1),
          lost,
          duplicated,
          unflagged,
        }),
      );
    // Duplicates are allowed (at-least-once across a host's death), never unflagged ones. Whether
    // a kill lands between a delivery and its acknowledgement is chance here (it rarely does): the
    // redelivered flag itself is tested where it is sure to be sent (messages.test.ts).
    expect({ lost, unflagged }).toEqual({ lost: 0, unflagged: 0 });
  }, 120000);
});
