import { type ChildProcess, fork, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { tryLock, waitForRelease } from "@open-channel/core";

// The same module instance as the package's (tests import the built code); not part of the API.
const { lockInternals } = require("../dist/lock") as { lockInternals: { portable: boolean } };
const WORKER = path.join(__dirname, "fixtures", "lock-worker.js");
const isLinux = process.platform === "linux";
const linuxOnly = isLinux ? test : test.skip;

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
  lockInternals.portable = !isLinux;
});

/** A fresh private folder, as the transports' (0700), and a lock path in it. */
function lockPath(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "oc-lock-"));
  return path.join(dir, "c.test.sock.lock");
}

/** Sets a file's times `ms` into the past. */
function age(file: string, ms: number): void {
  const then = new Date(Date.now() - ms);
  fs.utimesSync(file, then, then);
}

/** A pid that was just alive and is dead now. */
function deadPid(): number {
  const pid = spawnSync(process.execPath, ["-e", ""]).pid;
  if (pid === undefined) throw new Error("no pid");
  return pid;
}

/** A live process that has nothing to do with any lock. */
async function livePid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
  children.push(child);
  await new Promise((resolve) => child.once("spawn", resolve));
  return child.pid as number;
}

/** Linux: how a lock file records a process: start time field of /proc/<pid>/stat, boot id, pid namespace. */
function recordedStart(pid: number): { ticks: string; boot: string; ns: string; all: string } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const ticks = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  const boot = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim().replace(/-/g, "").slice(0, 16);
  const ns = /\[(\d+)\]/.exec(fs.readlinkSync("/proc/self/ns/pid"))?.[1] ?? "";
  return { ticks, boot, ns, all: `${ticks}@${boot}@${ns}` };
}

function worker(env: Record<string, string>, onMessage: (m: Record<string, unknown>) => void = () => undefined): ChildProcess {
  const child = fork(WORKER, [], { env: { ...process.env, ...env }, stdio: ["ignore", "inherit", "inherit", "ipc"] });
  child.on("message", (m) => onMessage(m as Record<string, unknown>));
  children.push(child);
  return child;
}

function message(child: ChildProcess, type: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: Record<string, unknown>): void => {
      if (m.type !== type) return;
      child.off("message", onMessage);
      resolve(m);
    };
    child.on("message", onMessage);
    child.once("exit", (code, signal) => reject(new Error(`worker exited (${code ?? signal}) before "${type}"`)));
  });
}

async function taken(file: string): Promise<boolean> {
  const lock = await tryLock(file);
  lock?.release();
  return lock !== undefined;
}

describe.each([
  ["Linux", false],
  ["macOS and Windows", true],
] as const)("the lock file by the %s rules", (_rules, portable) => {
  beforeEach(() => {
    lockInternals.portable = portable || !isLinux;
  });

  test("one holder at a time; release gives it back and removes the file", async () => {
    const file = lockPath();
    const first = await tryLock(file);
    expect(first).toBeDefined();
    expect(await tryLock(file)).toBeUndefined();
    first?.release();
    first?.release(); // twice is harmless
    expect(fs.existsSync(file)).toBe(false);
    expect(await taken(file)).toBe(true);
    // Nothing left behind in the folder: no temporary file, no break lock.
    expect(fs.readdirSync(path.dirname(file))).toEqual([]);
  });

  test("an empty lock file (a crash between open and write) is taken once it is a second old", async () => {
    const file = lockPath();
    fs.writeFileSync(file, "");
    // Fresh, it may be an older version's holder about to write its pid: left alone.
    expect(await taken(file)).toBe(false);
    age(file, 5000);
    expect(await taken(file)).toBe(true);
    fs.writeFileSync(file, "not a lock");
    age(file, 5000);
    expect(await taken(file)).toBe(true);
  });

  test("a lock file that does not parse is judged as unreadable (taken once a second old), whatever pid it seems to name", async () => {
    const file = lockPath();
    // Our own pid is alive: a parse that took it from these would keep the lock for 10 s.
    const me = process.pid;
    for (const raw of [`x${me} - 0123456789abcdef\n`, `${me} - 0123456789abcdef junk\n`, "0 - 0123456789abcdef\n", `-${me}\n`]) {
      fs.writeFileSync(file, raw);
      expect([raw, await taken(file)]).toEqual([raw, false]);
      age(file, 5000);
      expect([raw, await taken(file)]).toEqual([raw, true]);
    }
  });

  test('a live holder\'s lock with no start time ("-", as macOS writes it) is judged by its age only', async () => {
    const file = lockPath();
    fs.writeFileSync(file, `${process.pid} - 0123456789abcdef\n`);
    age(file, 5000);
    expect(await taken(file)).toBe(false);
    age(file, 11000);
    expect(await taken(file)).toBe(true);
  });

  test("a lock file naming a dead pid is broken at once (an older version's too)", async () => {
    const file = lockPath();
    fs.writeFileSync(file, `${deadPid()} - 0123456789abcdef\n`);
    expect(await taken(file)).toBe(true);
    fs.writeFileSync(file, String(deadPid()));
    expect(await taken(file)).toBe(true);
  });

  test("a live holder's lock is never broken; its release wakes a waiter, its death too", async () => {
    const file = lockPath();
    const env = { OC_ROLE: "hold", OC_LOCK: file, OC_PORTABLE: portable ? "1" : "0" };
    const holder = worker(env);
    await message(holder, "held");
    expect(await tryLock(file)).toBeUndefined();
    // Old enough to be past any age rule... were its pid not alive and, on Linux, its own.
    if (!portable) age(file, 60000);
    expect(await tryLock(file)).toBeUndefined();
    const started = Date.now();
    const woken = waitForRelease(file, 20000);
    setTimeout(() => holder.send("release"), 100);
    await woken;
    expect(Date.now() - started).toBeLessThan(10000);
    expect(await taken(file)).toBe(true);

    // Killed while holding: its lock stays, stale; waiters wake and the next tryLock breaks it.
    const dying = worker(env);
    await message(dying, "held");
    const waiting = waitForRelease(file, 20000);
    const killedAt = Date.now();
    dying.kill("SIGKILL");
    await waiting;
    expect(Date.now() - killedAt).toBeLessThan(10000);
    // The wake-up socket closes while the kernel is still tearing the holder down (not yet dead nor
    // a zombie to /proc): a waiter may have to ask again, as the transports' loops do.
    let broken = false;
    for (let i = 0; i < 100 && !broken; i++) {
      broken = await taken(file);
      if (!broken) await waitForRelease(file, 50);
    }
    expect(broken).toBe(true);
  });

  test("waiting is bounded by its timeout while the holder keeps the lock", async () => {
    const file = lockPath();
    const holder = worker({ OC_ROLE: "hold", OC_LOCK: file, OC_PORTABLE: portable ? "1" : "0" });
    await message(holder, "held");
    const started = Date.now();
    await waitForRelease(file, 300);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(await tryLock(file)).toBeUndefined();
  });

  test("release leaves alone a lock that is no longer ours", async () => {
    const file = lockPath();
    const mine = await tryLock(file);
    const other = `${process.pid} - ffffffffffffffff\n`;
    fs.writeFileSync(file, other);
    mine?.release();
    expect(fs.readFileSync(file, "utf8")).toBe(other);
  });

  // Six processes take the lock in turn; holders die holding it (SIGKILL), or leave it naming a
  // dead pid, so stale locks are broken again and again while the others try to take it: never
  // two holders at once. (The old lock file's breaker deleted whatever lock was there after it
  // had read a dead pid: B reads it, A breaks it and C takes the lock, B deletes C's.)
  // Three runs catch a rare race; a mutation run (OC_MUTATION_RUN) needs one to see a broken lock.
  test.each(process.env.OC_MUTATION_RUN === "1" ? [1] : [1, 2, 3])(
    "the break race, run %d: never two holders, six processes, holders dying",
    async () => {
      const file = lockPath();
      const log = path.join(path.dirname(file), "..", `${path.basename(path.dirname(file))}.log`);
      const stop = `${log}.stop`;
      fs.writeFileSync(log, "");
      // The race runs until holders have died and stale locks were broken often enough (however
      // slow the machine), within a bound that fails the test rather than hang it.
      const bound = Date.now() + 20000;
      const env = {
        OC_ROLE: "race",
        OC_LOCK: file,
        OC_LOG: log,
        OC_STOP: stop,
        OC_UNTIL: String(bound),
        OC_PORTABLE: portable ? "1" : "0",
      };
      const count = (mark: string): number =>
        fs
          .readFileSync(log, "utf8")
          .split("\n")
          .filter((l) => l.startsWith(mark)).length;
      let running = 0;
      const finished: Promise<void>[] = [];
      const start = (more: Record<string, string> = {}): void => {
        running++;
        const child = worker({ ...env, ...more });
        finished.push(
          new Promise((resolve) =>
            child.once("exit", () => {
              running--;
              // A holder that killed itself: another process takes its place while the race runs.
              if (!fs.existsSync(stop)) start();
              resolve();
            }),
          ),
        );
      };
      // The first one surely dies holding the lock, at its third hold; the rest by chance.
      start({ OC_DIE_AT: "3" });
      for (let i = 1; i < 6; i++) start();
      while (Date.now() < bound && (count("D") < 1 || count("A") < 10)) await new Promise((r) => setTimeout(r, 20));
      fs.writeFileSync(stop, "");
      while (running > 0) await Promise.all(finished.slice());
      const lines = fs.readFileSync(log, "utf8").trim().split("\n");
      // Strictly: enter, then the same process's exit (or death), then the next enter.
      const overlaps: string[] = [];
      let holder: string | undefined;
      for (const [i, line] of lines.entries()) {
        const [mark, pid] = line.split(" ");
        if (mark === "E") {
          if (holder !== undefined) overlaps.push(`line ${i + 1}: ${pid} entered while ${holder} held it`);
          holder = pid;
        } else {
          if (holder !== pid) overlaps.push(`line ${i + 1}: ${pid} left while ${holder} held it`);
          holder = undefined;
        }
      }
      expect(overlaps).toEqual([]);
      // The race was really run: holders killed, stale locks broken many times.
      expect(lines.filter((l) => l.startsWith("D")).length).toBeGreaterThanOrEqual(1);
      expect(lines.filter((l) => l.startsWith("A")).length).toBeGreaterThanOrEqual(10);
    },
  );
});

describe("the Linux rules", () => {
  beforeEach(() => {
    lockInternals.portable = false;
  });

  linuxOnly("a lock naming a live unrelated process (a reused pid: another start time) is broken", async () => {
    const file = lockPath();
    const pid = await livePid();
    const { ticks, boot, ns, all } = recordedStart(pid);
    fs.writeFileSync(file, `${pid} 1@${boot}@${ns} 0123456789abcdef\n`);
    expect(await taken(file)).toBe(true);
    // From another boot: the same pid and tick count after a reboot is another process too.
    fs.writeFileSync(file, `${pid} ${ticks}@0000000000000000@${ns} 0123456789abcdef\n`);
    expect(await taken(file)).toBe(true);
    // Its real start time: that process is the holder, and holds it.
    fs.writeFileSync(file, `${pid} ${all} 0123456789abcdef\n`);
    expect(await taken(file)).toBe(false);
  });

  linuxOnly("a holder in another pid namespace (a container sharing the folder) is judged by age only", async () => {
    const file = lockPath();
    // Its pid is dead here, which says nothing about a process in another namespace.
    fs.writeFileSync(file, `${deadPid()} 1@${recordedStart(process.pid).boot}@1 0123456789abcdef\n`);
    expect(await taken(file)).toBe(false);
    age(file, 60000);
    expect(await taken(file)).toBe(true);
  });

  linuxOnly("a killed holder its parent has not reaped yet (a zombie) holds nothing", async () => {
    const file = lockPath();
    const ready = `${file}.ready`;
    // The holder's parent is `sleep`, which never reaps it: once killed, it stays a zombie.
    const shell = spawn("sh", ["-c", `"${process.execPath}" "${WORKER}" & exec sleep 60`], {
      env: { ...process.env, OC_ROLE: "hold-quietly", OC_LOCK: file, OC_READY: ready },
      stdio: "ignore",
    });
    children.push(shell);
    const end = Date.now() + 20000;
    while (!fs.existsSync(ready) || fs.readFileSync(ready, "utf8") === "") {
      if (Date.now() > end) throw new Error("the holder never took the lock");
      await new Promise((r) => setTimeout(r, 20));
    }
    const pid = Number(fs.readFileSync(ready, "utf8"));
    expect(await taken(file)).toBe(false);
    process.kill(pid, "SIGKILL");
    while (!/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"))) await new Promise((r) => setTimeout(r, 5));
    expect(() => process.kill(pid, 0)).not.toThrow(); // signal 0 still reaches a zombie
    expect(await taken(file)).toBe(true);
  });

  linuxOnly("the old predictable abstract name, bound by someone else, blocks nothing", async () => {
    const file = lockPath();
    // What the Linux lock was: any user could bind this name first and no process would ever host.
    const digest = createHash("sha256").update(file).digest("hex").slice(0, 32);
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen({ path: `\0open-channel-lock-${process.getuid?.()}-${digest}` }, resolve));
    try {
      expect(await taken(file)).toBe(true);
    } finally {
      squatter.close();
    }
  });
});
