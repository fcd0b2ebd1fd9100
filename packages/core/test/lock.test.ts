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

  test("the lock file names its holder (pid, start time where known, nonce), readable by this user only", async () => {
    const file = lockPath();
    const mine = await tryLock(file);
    const start = portable || !isLinux ? "-" : recordedStart(process.pid).all;
    expect(fs.readFileSync(file, "utf8")).toMatch(new RegExp(`^${process.pid} ${start} [0-9a-f]{32}\\n$`));
    if (process.platform !== "win32") expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    mine?.release();
  });

  (process.platform === "win32" ? test.skip : test)(
    "a lock that cannot be read (a symlink loop) is an error, not a lock held forever",
    async () => {
      const file = lockPath();
      fs.symlinkSync(path.basename(file), file);
      await expect(tryLock(file)).rejects.toThrow(/ELOOP/);
      // A waiter treats it as released: the caller's next tryLock reports the error.
      await waitForRelease(file, 20000);
    },
  );

  test("waiting for a lock that is not there, or stale, ends at once", async () => {
    const file = lockPath();
    const started = Date.now();
    await waitForRelease(file, 20000);
    fs.writeFileSync(file, `${deadPid()} - 0123456789abcdef\n`);
    await waitForRelease(file, 20000);
    expect(Date.now() - started).toBeLessThan(10000);
  });

  test("a waiter wakes when the lock is released and taken anew before it looks (another lock now)", async () => {
    const file = lockPath();
    const first = await tryLock(file);
    const started = Date.now();
    const waiting = waitForRelease(file, 20000);
    // In one go: no timer of the waiter's runs between the release and the new lock.
    first?.release();
    const second = await tryLock(file);
    expect(second).toBeDefined();
    await waiting;
    expect(Date.now() - started).toBeLessThan(10000);
    second?.release();
  });

  test("a breaker's leftover break lock: removed when its holder is dead, and the lock broken in one try", async () => {
    const file = lockPath();
    fs.writeFileSync(`${file}.break`, `${deadPid()} - 0123456789abcdef\n`);
    fs.writeFileSync(file, `${deadPid()} - 0123456789abcdef\n`);
    const mine = await tryLock(file);
    expect(mine).toBeDefined();
    mine?.release();
    expect(fs.readdirSync(path.dirname(file))).toEqual([]);
  });

  test("a live breaker's break lock keeps others from breaking; by the rules without start times only for a second", async () => {
    const file = lockPath();
    const start = portable || !isLinux ? "-" : recordedStart(process.pid).all;
    fs.writeFileSync(`${file}.break`, `${process.pid} ${start} 0123456789abcdef\n`);
    fs.writeFileSync(file, `${deadPid()} - 0123456789abcdef\n`);
    expect(await taken(file)).toBe(false);
    expect(fs.existsSync(file)).toBe(true);
    // Five seconds: past the break lock's bound, far from the lock's (ten).
    age(`${file}.break`, 5000);
    expect(await taken(file)).toBe(!(isLinux && !portable));
  });

  test("a lock naming a live pid with a start time that is not its own", async () => {
    // The Linux rules break it (the pid was reused); the others cannot read start times, so it is held.
    const file = lockPath();
    const { boot, ns } = isLinux ? recordedStart(process.pid) : { boot: "0000000000000000", ns: "1" };
    fs.writeFileSync(file, `${process.pid} 1@${boot}@${ns} 0123456789abcdef\n`);
    expect(await taken(file)).toBe(isLinux && !portable);
  });

  (isLinux ? test : test.skip)("trying a held lock again and again leaves no file descriptor open", async () => {
    const file = lockPath();
    const mine = await tryLock(file);
    const open = (): number => fs.readdirSync("/proc/self/fd").length;
    const before = open();
    for (let i = 0; i < 50; i++) expect(await tryLock(file)).toBeUndefined();
    // The tries' wake-up sockets close on the next turns of the loop.
    await new Promise((r) => setTimeout(r, 50));
    expect(open() - before).toBeLessThan(10);
    mine?.release();
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

  /** A lock file naming this (live) process, whose wake-up hint is `nonce`'s socket. */
  function heldByUs(file: string, nonce: string): void {
    fs.writeFileSync(file, `${process.pid} ${recordedStart(process.pid).all} ${nonce}\n`);
  }

  linuxOnly("the holder's wake-up hint alone wakes a waiter: its close, though the file is unchanged", async () => {
    const file = lockPath();
    const nonce = "0123456789abcdef0123456789abcdef";
    heldByUs(file, nonce);
    const hint = net.createServer((s) => {
      // Connected: the waiter now sleeps on the hint; the close below is the holder letting go.
      hint.close();
      s.destroy();
    });
    await new Promise<void>((resolve) => hint.listen({ path: `\0open-channel-wake-${nonce}` }, resolve));
    const started = Date.now();
    await waitForRelease(file, 20000);
    expect(Date.now() - started).toBeLessThan(10000);
    expect(fs.existsSync(file)).toBe(true);
  });

  linuxOnly("a hint that refuses (its holder not listening yet) wakes nobody: the file tells", async () => {
    const file = lockPath();
    heldByUs(file, "fedcba9876543210fedcba9876543210");
    const started = Date.now();
    await waitForRelease(file, 400);
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
  });

  linuxOnly("a holder's release closes every waiter's connection to its hint", async () => {
    const file = lockPath();
    const mine = await tryLock(file);
    const nonce = fs.readFileSync(file, "utf8").trim().split(" ")[2];
    const waiter = net.connect({ path: `\0open-channel-wake-${nonce}` });
    await new Promise((resolve, reject) => waiter.once("connect", resolve).once("error", reject));
    const closed = new Promise<string>((resolve) => waiter.once("close", () => resolve("closed")));
    waiter.resume();
    mine?.release();
    const bound = new Promise<string>((resolve) => setTimeout(() => resolve("still open after 10 s"), 10000).unref());
    const outcome = await Promise.race([closed, bound]);
    waiter.destroy();
    expect(outcome).toBe("closed");
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

// Only our own processes hold our locks: a live pid we may not signal (EPERM) belongs to another
// user now (the holder died and its pid was reused), so its lock is stale. Run as a real other
// uid: as root, the test forks the lock's taker under an unprivileged uid.
const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
(isRoot ? describe : describe.skip)("a lock naming another user's live process", () => {
  const UID = 40103;

  /** Tries `file` as uid UID, by the given rules; resolves whether it took the lock. */
  function takenAsOtherUser(file: string, portable: boolean): boolean {
    // The uid may not read this checkout: it runs a copy of the lock's code, readable by all.
    const code = fs.mkdtempSync(path.join(os.tmpdir(), "oc-lock-code-"));
    for (const f of ["lock.js", "debug.js"]) fs.copyFileSync(path.join(__dirname, "..", "dist", f), path.join(code, f));
    for (const p of [code, ...fs.readdirSync(code).map((f) => path.join(code, f))]) fs.chmodSync(p, 0o755);
    const script = `const lock = require(${JSON.stringify(path.join(code, "lock.js"))});
      lock.lockInternals.portable = ${portable};
      lock.tryLock(${JSON.stringify(file)}).then((l) => process.stdout.write(l ? "taken" : "busy"), (e) => process.stdout.write(String(e)));`;
    const run = spawnSync(process.execPath, ["-e", script], { uid: UID, gid: UID, encoding: "utf8", timeout: 20000 });
    fs.rmSync(code, { recursive: true, force: true });
    expect(run.stderr).toBe("");
    return run.stdout === "taken";
  }

  test.each([
    ["Linux", false],
    ["macOS and Windows", true],
  ] as const)("is stale by the %s rules, however fresh", async (_rules, portable) => {
    const file = lockPath();
    fs.chownSync(path.dirname(file), UID, UID);
    // This test process (root's), alive, with its real start time where the rules read one.
    const start = portable || !isLinux ? "-" : recordedStart(process.pid).all;
    fs.writeFileSync(file, `${process.pid} ${start} 0123456789abcdef\n`);
    expect(takenAsOtherUser(file, portable)).toBe(true);
    // The same lock tried by its holder's own user (who may signal it): held.
    fs.writeFileSync(file, `${process.pid} ${start} 0123456789abcdef\n`);
    lockInternals.portable = portable || !isLinux;
    expect(await taken(file)).toBe(false);
  });
});
