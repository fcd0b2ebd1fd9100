import { fork } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { encodeHello, HANDSHAKE } from "@open-channel/core";
import { bindOrTakeOver, ensurePrivateDir, maxSocketPathBytes, probe, socketFileName, unixTransport } from "@open-channel/transport-unix";

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), "oc-unix-"));

describe("socket file names", () => {
  const dir = "/run/user/1000/open-channel";

  test("any string maps to one plain file name inside the directory", () => {
    const names = ["jobs", "../../etc/passwd", "a/b\\c", ".", "..", "", "ünï cödé ✓", "x\0y", "%41", "A"];
    const files = names.map((n) => socketFileName(n, dir));
    for (const file of files) {
      expect(file).not.toContain("/");
      expect(file).not.toContain("\0");
      expect(path.join(dir, file).startsWith(`${dir}/`)).toBe(true);
      expect(path.dirname(path.join(dir, file))).toBe(dir);
      expect(file.startsWith("c.") || file.startsWith("h.")).toBe(true);
    }
    expect(new Set(files).size).toBe(names.length);
  });

  test("readable names stay readable", () => {
    expect(socketFileName("my-app_1.0", dir)).toBe("c.my-app_1.0.sock");
    expect(socketFileName("my app", dir)).toBe("c.my%20app.sock");
    expect(socketFileName("%20", dir)).toBe("c.%2520.sock");
  });

  test("names too long for sun_path are hashed, distinct, and fit on Linux and macOS", () => {
    for (const platform of ["linux", "darwin"] as const) {
      const a = socketFileName("x".repeat(200), dir, platform);
      const b = socketFileName("x".repeat(201), dir, platform);
      expect(a).toMatch(/^h\.[0-9a-f]{32}\.sock$/);
      expect(a).not.toBe(b);
      expect(Buffer.byteLength(path.join(dir, a))).toBeLessThanOrEqual(maxSocketPathBytes(platform));
    }
    expect(maxSocketPathBytes("linux")).toBe(107);
    expect(maxSocketPathBytes("darwin")).toBe(103);
  });
});

describe("the private directory", () => {
  test("is created with mode 0700", () => {
    const dir = path.join(tmp(), "sockets");
    ensurePrivateDir(dir, "jobs");
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
  });

  test("a directory others can enter is refused with ERR_OPEN_CHANNEL_UNSAFE_DIR", () => {
    const dir = tmp();
    fs.chmodSync(dir, 0o755);
    expect(() => ensurePrivateDir(dir, "jobs")).toThrow(expect.objectContaining({ code: "ERR_OPEN_CHANNEL_UNSAFE_DIR" }));
    expect(() => ensurePrivateDir(dir, "jobs")).toThrow(/"jobs"/);
  });

  test("a folder above it that others may write to is refused, unless sticky (as /tmp)", () => {
    for (const [mode, ok] of [
      [0o777, false],
      [0o775, false],
      [0o757, false],
      [0o1777, true],
      [0o755, true],
    ] as const) {
      const parent = tmp();
      fs.chmodSync(parent, mode);
      const dir = path.join(parent, "private");
      if (ok) expect(() => ensurePrivateDir(dir, "jobs")).not.toThrow();
      else {
        expect(() => ensurePrivateDir(dir, "jobs")).toThrow(expect.objectContaining({ code: "ERR_OPEN_CHANNEL_UNSAFE_DIR" }));
        // Refused before it made anything there.
        expect(fs.existsSync(dir)).toBe(false);
      }
    }
  });

  // As root the test can give a folder to another uid; elsewhere it cannot make one.
  const asRoot = typeof process.getuid === "function" && process.getuid() === 0 ? test : test.skip;
  asRoot("a 0700 directory that belongs to another uid is refused, naming its owner", () => {
    const dir = tmp();
    fs.chmodSync(dir, 0o700);
    fs.chownSync(dir, 40103, 40103);
    expect(() => ensurePrivateDir(dir, "jobs")).toThrow(expect.objectContaining({ code: "ERR_OPEN_CHANNEL_UNSAFE_DIR" }));
    expect(() => ensurePrivateDir(dir, "jobs")).toThrow(/belongs to uid 40103/);
  });

  test("a symlink in place of the directory is refused", () => {
    const base = tmp();
    const real = path.join(base, "real");
    fs.mkdirSync(real, { mode: 0o700 });
    const link = path.join(base, "link");
    fs.symlinkSync(real, link);
    expect(() => ensurePrivateDir(link, "jobs")).toThrow(expect.objectContaining({ code: "ERR_OPEN_CHANNEL_UNSAFE_DIR" }));
  });
});

describe("bind or take over (the election for one socket path)", () => {
  async function staleSocket(file: string): Promise<void> {
    const child = fork(path.join(__dirname, "..", "..", "open-channel", "test", "fixtures", "stale-socket.js"), [file], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    await new Promise((resolve) => child.once("message", resolve));
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }

  const bindTo = (file: string, servers: net.Server[]) => (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const server = net.createServer((c) => c.destroy());
      servers.push(server);
      server.once("error", reject);
      server.listen(file, () => resolve());
    });

  test("a dead host's file is probed as refused, removed, and a new server bound in its place", async () => {
    const file = path.join(tmp(), "dead.sock");
    await staleSocket(file);
    expect(await probe(file)).toBe("refused");
    const servers: net.Server[] = [];
    try {
      await bindOrTakeOver(file, bindTo(file, servers));
      expect(servers.filter((s) => s.listening)).toHaveLength(1);
      expect(await probe(file)).toBe("live");
    } finally {
      for (const s of servers) s.close();
    }
  });

  test("a listener that resets the probe before answering is asked again: a dying one is found gone, a live one stays live", async () => {
    // Dying: it resets the first connection and is gone by the second try.
    const dying = path.join(tmp(), "dying.sock");
    let seen = 0;
    const server = net.createServer((s) => {
      seen++;
      s.destroy();
      server.close();
    });
    await new Promise<void>((resolve) => server.listen(dying, resolve));
    expect(await probe(dying, "some-channel")).toBe("gone");
    expect(seen).toBe(1);
    // Resetting every time while it keeps listening: never taken for dead.
    const stubborn = path.join(tmp(), "stubborn.sock");
    let resets = 0;
    const other = net.createServer((s) => {
      resets++;
      s.destroy();
    });
    await new Promise<void>((resolve) => other.listen(stubborn, resolve));
    try {
      expect(await probe(stubborn, "some-channel")).toBe("live");
      expect(resets).toBe(3);
    } finally {
      other.close();
    }
  });

  /** A listener at a fresh path; `onSocket` gets every connection. */
  async function listener(name: string, onSocket: (s: net.Socket) => void): Promise<{ file: string; server: net.Server }> {
    const file = path.join(tmp(), name);
    const server = net.createServer(onSocket);
    await new Promise<void>((resolve) => server.listen(file, resolve));
    return { file, server };
  }

  test("a host killed while a probe waits in its backlog is found dead: the reset is asked again, then refused", async () => {
    const file = path.join(tmp(), "killed.sock");
    const child = fork(path.join(__dirname, "..", "..", "open-channel", "test", "fixtures", "stale-socket.js"), [file], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    await new Promise((resolve) => child.once("message", resolve));
    // Stopped, it accepts nothing: the probe's connection and hello wait in its backlog, and its
    // death resets them (ECONNRESET), as a host killed mid-probe does.
    child.kill("SIGSTOP");
    const result = probe(file, "some-channel");
    await new Promise((r) => setTimeout(r, 200));
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
    expect(await result).toBe("refused");
  });

  test("a probe asks the way a host answers (a probe hello), and one answer is enough", async () => {
    const received: Buffer[] = [];
    // It answers and keeps the connection: the answer itself ends the probe.
    const { file, server } = await listener("answers.sock", (s) =>
      s.on("data", (d) => {
        received.push(d);
        s.write("any answer");
      }),
    );
    try {
      const started = Date.now();
      expect(await probe(file, "some-channel")).toBe("live");
      // Far within the second after which a silent listener counts as live.
      expect(Date.now() - started).toBeLessThan(900);
      expect(received).toEqual([encodeHello("some-channel", undefined, HANDSHAKE.kindProbe)]);
    } finally {
      server.close();
    }
  });

  test("a listener that reads the probe and closes without a word is asked three times, then counted live", async () => {
    let connections = 0;
    const { file, server } = await listener("mute.sock", (s) => {
      connections++;
      // It reads what came (no unread bytes: a clean close, not a reset).
      s.once("data", () => s.end());
    });
    try {
      expect(await probe(file, "some-channel")).toBe("live");
      expect(connections).toBe(3);
    } finally {
      server.close();
    }
  });

  test("a listener that never answers is counted live once the probe's second has passed", async () => {
    const held: net.Socket[] = [];
    const { file, server } = await listener("silent.sock", (s) => held.push(s));
    try {
      const started = Date.now();
      expect(await probe(file, "some-channel")).toBe("live");
      expect(held).toHaveLength(1);
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    } finally {
      for (const s of held) s.destroy();
      server.close();
    }
  });

  test("a live host's file is never removed", async () => {
    const file = path.join(tmp(), "live.sock");
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((resolve) => server.listen(file, resolve));
    try {
      expect(await probe(file)).toBe("live");
      const servers: net.Server[] = [];
      await expect(bindOrTakeOver(file, bindTo(file, servers))).rejects.toMatchObject({
        code: "EADDRINUSE",
        message: expect.stringContaining(`${file} has a live host`),
      });
      expect(servers.filter((s) => s.listening)).toHaveLength(0);
      expect(await probe(file)).toBe("live");
    } finally {
      server.close();
    }
  });

  test("a file that is not a socket is never removed", async () => {
    const file = path.join(tmp(), "plain.sock");
    fs.writeFileSync(file, "data");
    await expect(bindOrTakeOver(file, bindTo(file, []))).rejects.toMatchObject({
      code: "EACCES",
      message: expect.stringMatching(/not a socket/),
    });
    expect(fs.readFileSync(file, "utf8")).toBe("data");
  });

  test("many processes' worth of binders over one stale file at once: exactly one binds, the others wait for it", async () => {
    for (let round = 0; round < 5; round++) {
      const file = path.join(tmp(), "many.sock");
      await staleSocket(file);
      const servers: net.Server[] = [];
      try {
        const results = await Promise.allSettled(Array.from({ length: 8 }, () => bindOrTakeOver(file, bindTo(file, servers))));
        expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
        for (const r of results) if (r.status === "rejected") expect(r.reason).toMatchObject({ code: "EADDRINUSE" });
        expect(servers.filter((s) => s.listening)).toHaveLength(1);
        // The losers resolved only after the winner listened: a connect now reaches it.
        expect(await probe(file)).toBe("live");
      } finally {
        for (const s of servers) s.close();
      }
    }
  });
});

describe("unixTransport()", () => {
  test("listen is exclusive: a second bind gets EADDRINUSE", async () => {
    const transport = unixTransport({ dir: path.join(tmp(), "s") });
    // `a` hangs up on what it accepts (b's transport probes it before giving up): open, that
    // connection would outlive the test.
    const a = net.createServer((s) => s.destroy());
    const b = net.createServer();
    await transport.listen("excl", a);
    try {
      await expect(transport.listen("excl", b)).rejects.toMatchObject({ code: "EADDRINUSE" });
    } finally {
      await new Promise((r) => a.close(r));
    }
  });

  test("uses $XDG_RUNTIME_DIR/open-channel when set, else a per-uid folder in the temp dir", () => {
    const saved = process.env.XDG_RUNTIME_DIR;
    try {
      process.env.XDG_RUNTIME_DIR = "/run/user/4242";
      expect(unixTransport().dir).toBe("/run/user/4242/open-channel");
      delete process.env.XDG_RUNTIME_DIR;
      expect(unixTransport().dir).toBe(path.join(os.tmpdir(), `open-channel-${process.getuid?.() ?? 0}`));
    } finally {
      if (saved === undefined) delete process.env.XDG_RUNTIME_DIR;
      else process.env.XDG_RUNTIME_DIR = saved;
    }
  });
});
