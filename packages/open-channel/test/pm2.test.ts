import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { uniqueChannel } from "./helpers/group";

// End to end under real PM2 (cluster mode, 4 instances), its daemon in a temporary PM2_HOME that is
// always killed afterwards. This is the case open-channel exists for.
const ROOT = path.join(__dirname, "..", "..", "..");
const PM2 = path.join(ROOT, "node_modules", "pm2", "bin", "pm2");
const APP = path.join(ROOT, "examples", "pm2", "app.js");
const pm2Home = fs.mkdtempSync(path.join(os.tmpdir(), "oc-pm2-home-"));
const statusDir = fs.mkdtempSync(path.join(os.tmpdir(), "oc-pm2-status-"));
const channel = uniqueChannel("pm2");
const NAME = `oc-pm2-${process.pid}`;
const env = { ...process.env, PM2_HOME: pm2Home, OC_CHANNEL: channel, OC_STATUS_DIR: statusDir, PM2_DISABLE_VERSION_CHECK: "true" };
delete (env as Record<string, string | undefined>).NODE_OPTIONS;

function pm2(...args: string[]): string {
  return execFileSync(process.execPath, [PM2, ...args], { env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Pids of the app's instances that PM2 reports online. */
function onlinePids(): number[] {
  const list = JSON.parse(pm2("jlist")) as { name: string; pid: number; pm2_env: { status: string } }[];
  return list.filter((p) => p.name === NAME && p.pm2_env.status === "online" && p.pid > 0).map((p) => p.pid);
}

interface Status {
  pid: number;
  hostPid?: number;
  isHost?: boolean;
  ackFrom?: number;
  connects: number;
  error?: string;
  transport?: string;
}

function status(pid: number): Status | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(statusDir, `${pid}.json`), "utf8")) as Status;
  } catch {
    return undefined;
  }
}

/** Waits until 4 online instances agree on one host among them, which answered each one's hello. */
async function agreement(exclude: number[] = []): Promise<{ pids: number[]; host: number }> {
  const end = Date.now() + 60000;
  let last = "";
  while (Date.now() < end) {
    const pids = onlinePids().filter((p) => !exclude.includes(p));
    const statuses = pids.map(status);
    last = JSON.stringify(statuses);
    if (pids.length === 4 && statuses.every((s) => s !== undefined)) {
      const hosts = new Set(statuses.map((s) => s?.hostPid));
      const host = statuses[0]?.hostPid as number;
      const hostsSay = statuses.filter((s) => s?.isHost).map((s) => s?.pid);
      if (
        hosts.size === 1 &&
        pids.includes(host) &&
        hostsSay.length === 1 &&
        hostsSay[0] === host &&
        statuses.every((s) => s?.ackFrom === host)
      ) {
        return { pids, host };
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no agreement under PM2: ${last}`);
}

afterAll(() => {
  try {
    pm2("kill");
  } catch {
    // the daemon may already be gone
  }
  fs.rmSync(statusDir, { recursive: true, force: true });
});

describe("under real PM2 in cluster mode (4 instances)", () => {
  let first: { pids: number[]; host: number };

  test("all instances talk through one host", async () => {
    pm2("start", APP, "--name", NAME, "-i", "4");
    first = await agreement();
    expect(first.pids).toHaveLength(4);
    for (const pid of first.pids) expect(status(pid)?.error).toBeUndefined();
  }, 90000);

  test("open-channel status names the app's script, not PM2's ProcessContainer.js", () => {
    const cli = path.join(ROOT, "packages", "open-channel", "bin", "open-channel.js");
    const out = execFileSync(process.execPath, [cli, "status", channel, "--json"], { env, encoding: "utf8" });
    const report = JSON.parse(out) as { state: string; host: { pid: number; script: string } };
    expect(report.state).toBe("hosted");
    expect(report.host.pid).toBe(first.host);
    expect(report.host.script).toBe(APP);
  });

  test("kill -9 of the host instance: PM2 restarts it and the channel recovers", async () => {
    process.kill(first.host, "SIGKILL");
    const after = await agreement([first.host]);
    expect(after.host).not.toBe(first.host);
    // The survivors reconnected (a second connect) and PM2's replacement joined.
    const survivors = first.pids.filter((p) => p !== first.host);
    for (const pid of survivors) expect(status(pid)?.connects).toBeGreaterThanOrEqual(2);
    for (const pid of after.pids) expect(status(pid)?.error).toBeUndefined();
    first = after;
  }, 90000);

  test("pm2 reload (a rolling restart of every instance, the host included): the channel recovers", async () => {
    pm2("reload", NAME);
    const after = await agreement(first.pids);
    for (const pid of after.pids) expect(first.pids).not.toContain(pid);
    for (const pid of after.pids) expect(status(pid)?.error).toBeUndefined();
  }, 120000);
});
