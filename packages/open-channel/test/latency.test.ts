import { type ChildProcess, fork } from "node:child_process";
import * as path from "node:path";
import { uniqueChannel, WAIT_MS } from "./helpers/group";

/**
 * A small write must never wait for the ACK of the one before it (Nagle's algorithm against the
 * peer's delayed ACK: ~40 ms a round trip on Linux), on the member's end or the host's. The
 * exchange is what an application does: a header write and a body write, answered in two writes. Bounds have a wide margin: a held write costs
 * >= 40 ms, an exchange here takes well under 1 ms.
 */
const TRANSPORTS = process.platform === "win32" ? ["pipe", "tcp"] : ["unix", "tcp"];

interface Times {
  pid: number;
  type: "times" | "error" | "ready";
  isHost?: boolean;
  connection?: number;
  times?: number[];
  code?: string;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

describe.each(TRANSPORTS)("request/response exchanges over %s are not held back", (transport) => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) c.kill("SIGKILL");
  });

  test("right after connecting, in steady state, and after a failover (same socket, new host)", async () => {
    const channel = uniqueChannel(`nagle-${transport}`);
    const reports: Times[] = [];
    let wake = (): void => {};
    const start = (): ChildProcess => {
      const child = fork(path.join(__dirname, "fixtures", "exchange.js"), [], {
        env: { ...process.env, OC_CHANNEL: channel, OPEN_CHANNEL_TRANSPORT: transport, OC_ROUNDS: "100" },
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      child.on("message", (m) => {
        reports.push(m as Times);
        wake();
      });
      children.push(child);
      return child;
    };
    const waitFor = <T>(check: () => T | undefined, what: string): Promise<T> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}: ${JSON.stringify(reports.slice(-4))}`)), WAIT_MS);
        wake = () => {
          const value = check();
          if (value === undefined) return;
          clearTimeout(timer);
          resolve(value);
        };
        wake();
      });
    const timesOf = (pid: number, connection: number): number[] | undefined =>
      reports.find((r) => r.type === "times" && r.pid === pid && r.connection === connection)?.times;

    // The host first, then three members that are not the host.
    const host = start();
    await waitFor(() => timesOf(host.pid as number, 1), "the host's own exchanges");
    const members = [start(), start(), start()];
    const pids = members.map((m) => m.pid as number);
    const first = await waitFor(() => {
      const all = pids.map((pid) => timesOf(pid, 1));
      return all.every((t) => t !== undefined) ? (all as number[][]) : undefined;
    }, "the members' exchanges");

    host.kill("SIGKILL");
    const afterFailover = await waitFor(() => {
      const all = pids.map((pid) => timesOf(pid, 2));
      return all.every((t) => t !== undefined) ? (all as number[][]) : undefined;
    }, "the members' exchanges after the failover");

    expect(reports.filter((r) => r.type === "error")).toEqual([]);
    for (const times of [...first, ...afterFailover]) expect(median(times)).toBeLessThan(5);
    // The first exchange on each new connection (it follows the handshake's last write).
    expect(median([...first, ...afterFailover].map((t) => t[0]))).toBeLessThan(20);
  });
});
