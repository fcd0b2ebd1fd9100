import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

// Real installs of the packed tarballs into scratch projects, offline: what a user gets from npm.
const ROOT = path.join(__dirname, "..", "..", "..");
const tarballs: Record<string, string> = {};

beforeAll(() => {
  const out = execFileSync(process.execPath, [path.join(ROOT, "scripts", "pack.js")], { encoding: "utf8" });
  for (const file of out.trim().split("\n")) {
    const base = path.basename(file);
    const name = base.startsWith("open-channel-0")
      ? "open-channel"
      : `@open-channel/${base.replace(/^open-channel-/, "").replace(/-\d+\.\d+\.\d+\.tgz$/, "")}`;
    tarballs[name] = file;
  }
}, 120000);

/** A scratch project with `deps`; every @open-channel package resolves to its tarball. */
function project(deps: string[], npmArgs: string[] = []): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "oc-consumer-"));
  const manifest = {
    name: "consumer",
    version: "1.0.0",
    private: true,
    dependencies: Object.fromEntries(deps.map((d) => [d, `file:${tarballs[d]}`])),
    overrides: Object.fromEntries(
      Object.entries(tarballs)
        .filter(([n]) => n !== "open-channel")
        .map(([n, f]) => [n, `file:${f}`]),
    ),
  };
  fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify(manifest, null, 2));
  execFileSync("npm", ["install", "--offline", "--no-audit", "--no-fund", "--loglevel=error", ...npmArgs], { cwd: dir, stdio: "pipe" });
  return dir;
}

function installed(dir: string): string[] {
  const scoped = fs.existsSync(path.join(dir, "node_modules", "@open-channel"))
    ? fs.readdirSync(path.join(dir, "node_modules", "@open-channel")).map((n) => `@open-channel/${n}`)
    : [];
  const top = fs.readdirSync(path.join(dir, "node_modules")).filter((n) => !n.startsWith(".") && !n.startsWith("@"));
  return [...scoped, ...top].sort();
}

function run(dir: string, file: string, code: string): { status: number | null; stdout: string; stderr: string } {
  fs.writeFileSync(path.join(dir, file), code);
  const r = spawnSync(process.execPath, [file], { cwd: dir, encoding: "utf8", timeout: 30000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const ECHO_CHECK = (req: string, name: string): string => `
const openChannel = ${req};
const channel = openChannel("pack-check-${name}-" + process.pid, (s) => s.pipe(s));
const socket = channel.connect();
socket.write("ping");
socket.on("data", (d) => { console.log(channel.transport.name + " " + String(d)); socket.destroy(); });
`;

test("every package's ESM entry has the same named exports as its CommonJS build, and its default", () => {
  const packages = ["core", "transport-unix", "transport-tcp", "transport-pipe", "transport-redis", "messages", "open-channel"];
  const code = `
    import { createRequire } from "node:module";
    const require = createRequire(${JSON.stringify(path.join(ROOT, "package.json"))});
    const out = {};
    for (const p of ${JSON.stringify(packages)}) {
      const dir = ${JSON.stringify(path.join(ROOT, "packages"))} + "/" + p;
      const cjs = require(dir + "/dist/index.js");
      const esm = await import(dir + "/index.mjs");
      out[p] = {
        missing: Object.keys(cjs).filter((k) => k !== "default" && k !== "__esModule" && !(k in esm)),
        extra: Object.keys(esm).filter((k) => k !== "default" && !(k in cjs)),
        undefinedInEsm: Object.keys(esm).filter((k) => esm[k] === undefined),
        defaultSame: esm.default === cjs.default,
      };
    }
    console.log(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", code], { encoding: "utf8" });
  expect(r.stderr).toBe("");
  const result = JSON.parse(r.stdout) as Record<string, unknown>;
  for (const p of packages) expect([p, result[p]]).toEqual([p, { missing: [], extra: [], undefinedInEsm: [], defaultSame: true }]);
});

const testOffWindows = process.platform === "win32" ? test.skip : test;

describe("installing the packed packages", () => {
  testOffWindows(
    "the README's install command installs this platform's packages into a new project, where both quick starts run as written",
    () => {
      const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
      const command = readme.split("\n").find((l) => l.startsWith("npm run pack -- --install "));
      expect(command).toBe("npm run pack -- --install ../my-app");
      // The command as the README writes it, with a scratch folder for ../my-app (npm ci is done).
      const app = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "oc-readme-")), "my-app");
      execFileSync("npm", ["run", "pack", "--", "--install", app], {
        cwd: ROOT,
        env: { ...process.env, npm_config_offline: "true" },
        stdio: "pipe",
      });
      expect(installed(app)).toEqual([
        "@open-channel/core",
        "@open-channel/messages",
        "@open-channel/transport-redis",
        "@open-channel/transport-tcp",
        "@open-channel/transport-unix",
        "open-channel",
      ]);
      const quickStarts = [...readme.matchAll(/<!-- quick start: (\S+) -->\n```js\n([\s\S]*?)```/g)];
      expect(quickStarts.map((m) => m[1])).toEqual(["chat.js", "jobs.js"]);
      const outputs = quickStarts.map(([, file, code]) => {
        const r = run(app, file, code);
        expect([file, r.status, r.stderr]).toEqual([file, 0, ""]);
        return r.stdout;
      });
      expect(outputs[0]).toMatch(/^echo: hello \(host pid \d+, this pid \d+\)\n$/);
      expect(outputs[1]).toMatch(/^host \d+ got \{ job: 1 \} from pid \d+\n\{ echo: 'ping' \}\n$/);
    },
    120000,
  );

  // These install the packed packages for the platform they run on: on Windows the other set.
  testOffWindows(
    "open-channel on Linux installs core, unix and tcp, never the Windows-only pipe transport; CJS and ESM work",
    () => {
      const dir = project(["open-channel"]);
      expect(installed(dir)).toEqual([
        "@open-channel/core",
        "@open-channel/messages",
        "@open-channel/transport-tcp",
        "@open-channel/transport-unix",
        "open-channel",
      ]);
      const cjs = run(dir, "check.js", ECHO_CHECK('require("open-channel").default', "cjs"));
      expect(cjs.stderr).toBe("");
      expect(cjs.stdout.trim()).toBe("unix ping");
      const esm = run(
        dir,
        "check.mjs",
        `import openChannel, { openChannel as named, ProcessChannel } from "open-channel";
if (openChannel !== named || typeof ProcessChannel !== "function") throw new Error("bad exports");
${ECHO_CHECK("openChannel", "esm").replace("const openChannel = openChannel;", "")}`,
      );
      expect(esm.stderr).toBe("");
      expect(esm.stdout.trim()).toBe("unix ping");
      // The command comes with it: `npx open-channel ...` in the user's project.
      const bin = spawnSync(path.join(dir, "node_modules", ".bin", "open-channel"), ["status", "no-such-channel"], { encoding: "utf8" });
      expect(bin.status).toBe(1);
      expect(bin.stdout).toContain('channel "no-such-channel": no host');
    },
    120000,
  );

  testOffWindows(
    "TypeScript (module nodenext, strict) type-checks the public surface, from ESM and from CommonJS",
    () => {
      const dir = project(["open-channel", "@open-channel/core", "@open-channel/transport-unix", "@open-channel/transport-tcp"]);
      const tsconfig = {
        compilerOptions: {
          module: "nodenext",
          moduleResolution: "nodenext",
          target: "es2022",
          strict: true,
          noEmit: true,
          types: ["node"],
          typeRoots: [path.join(ROOT, "node_modules", "@types")],
        },
        files: ["check.mts", "check.cts"],
      };
      fs.writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify(tsconfig, null, 2));
      fs.writeFileSync(
        path.join(dir, "check.mts"),
        `import type { Socket } from "node:net";
import openChannel, { openChannel as named, ProcessChannel, OpenChannelError, selectTransportName, type ChannelState, type ConnectionListener, type OpenChannelOptions, type Transport } from "open-channel";
import { HANDSHAKE, probeChannel, type ProbeVerdict } from "@open-channel/core";
import { transportComplianceCases } from "@open-channel/core/compliance";
import { unixTransport, UnixTransport } from "@open-channel/transport-unix";
import { tcpTransport } from "@open-channel/transport-tcp";

const listener: ConnectionListener = (socket: Socket) => void socket.write("hello");
const options: OpenChannelOptions = { transport: unixTransport() };
const a: ProcessChannel = openChannel("ts-esm", listener);
const b: ProcessChannel = named(listener, options);
const c: ProcessChannel = openChannel("ts-tcp", listener, { transport: tcpTransport() });
const state: ChannelState = a.state;
const socket: Socket = b.connect(1000);
const flags: [boolean, boolean, boolean, number | undefined, string] = [a.connected, a.isHost, a.isHeir, a.hostPid, a.name];
a.on("failover", (f: { previousHostPid?: number; hostPid: number; ms: number }) => void f);
const transport: Transport = c.transport;
const unix: UnixTransport = unixTransport({ dir: "/tmp/x" });
const verdict: Promise<ProbeVerdict> = probeChannel(unix, "x");
const err = new OpenChannelError("ETIMEDOUT", "message", { channel: "x" });
const code: string = err.code;
void [state, socket, flags, transport, verdict, code, HANDSHAKE.version, transportComplianceCases, selectTransportName()];
`,
      );
      fs.writeFileSync(
        path.join(dir, "check.cts"),
        `import oc = require("open-channel");
import core = require("@open-channel/core");
const channel: oc.ProcessChannel = oc.default("ts-cjs", (socket) => void socket.end());
const same: core.ProcessChannel = oc.openChannel("ts-cjs", () => undefined);
void [channel.connect(), same.state];
`,
      );
      const tsc = spawnSync(process.execPath, [path.join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", dir], {
        encoding: "utf8",
      });
      expect(tsc.stdout + tsc.stderr).toBe("");
      expect(tsc.status).toBe(0);
    },
    120000,
  );

  test("what Windows would get (npm install --os=win32): core, pipe and tcp, never unix", () => {
    const dir = project(["open-channel"], ["--os=win32"]);
    expect(installed(dir)).toEqual([
      "@open-channel/core",
      "@open-channel/messages",
      "@open-channel/transport-pipe",
      "@open-channel/transport-tcp",
      "open-channel",
    ]);
  }, 120000);

  testOffWindows(
    "a Linux user can install just @open-channel/core and @open-channel/transport-unix, and nothing else comes",
    () => {
      const dir = project(["@open-channel/core", "@open-channel/transport-unix"]);
      expect(installed(dir)).toEqual(["@open-channel/core", "@open-channel/transport-unix"]);
      const r = run(
        dir,
        "check.js",
        `
const { openChannel } = require("@open-channel/core");
const { unixTransport } = require("@open-channel/transport-unix");
const channel = openChannel("pack-core-" + process.pid, (s) => s.pipe(s), { transport: unixTransport() });
const socket = channel.connect();
socket.write("ping");
socket.on("data", (d) => { console.log(channel.transport.name + " " + String(d)); socket.destroy(); });
`,
      );
      expect(r.stderr).toBe("");
      expect(r.stdout.trim()).toBe("unix ping");
    },
    120000,
  );

  test("without the platform's transport package, the error names the package to install", () => {
    const dir = project(["open-channel"], ["--omit=optional"]);
    expect(installed(dir)).toEqual(["@open-channel/core", "@open-channel/messages", "open-channel"]);
    const r = run(
      dir,
      "check.js",
      `
try { require("open-channel").default("x", () => {}); }
catch (err) { console.log(err.code + " " + err.message); }
`,
    );
    expect(r.stdout).toContain("ERR_OPEN_CHANNEL_TRANSPORT_MISSING");
    expect(r.stdout).toContain("npm install @open-channel/transport-unix");
  }, 120000);
});
