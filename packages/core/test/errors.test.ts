/**
 * The error table (OPEN_CHANNEL_ERRORS) against what the README's "Errors" table documents and
 * what the sources raise, and each code's builder against its entry: class, code, channel, cause,
 * extra fields, a message that uses every argument it is given.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import {
  isOpenChannelError,
  OPEN_CHANNEL_ERRORS,
  OpenChannelError,
  type OpenChannelErrorArgs,
  type OpenChannelErrorCode,
  OpenChannelRangeError,
  OpenChannelTypeError,
  openChannelError,
  withChannel,
} from "@open-channel/core";

// Internal to core, not in its entry: the built module, the code the channel runs.
const { isFatal } = require("../dist/errors.js") as typeof import("../src/errors");

const ROOT = path.join(__dirname, "..", "..", "..");
const PACKAGES = path.join(ROOT, "packages");
const ERRORS_FILE = path.join("packages", "core", "src", "errors.ts");
const TABLE = OPEN_CHANNEL_ERRORS as Record<OpenChannelErrorCode, { base: string; fatal: boolean; fields?: readonly string[] }>;
const CODES = Object.keys(TABLE) as OpenChannelErrorCode[];

/** Every .ts file under packages/<package>/src, as [path from the root, text]. */
function sources(): [string, string][] {
  const files: [string, string][] = [];
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith(".ts")) files.push([path.relative(ROOT, full), fs.readFileSync(full, "utf8")]);
    }
  };
  for (const pkg of fs.readdirSync(PACKAGES)) {
    const src = path.join(PACKAGES, pkg, "src");
    if (fs.existsSync(src)) walk(src);
  }
  return files;
}

/** The README's "Errors" table: code -> the note after it (`(TypeError)`, `(messages)`, ...). */
function readmeErrors(): Map<string, string> {
  const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
  const start = readme.indexOf("### Errors\n");
  const end = readme.indexOf("\n## ", start);
  expect([start >= 0, end > start]).toEqual([true, true]);
  const rows = new Map<string, string>();
  for (const line of readme.slice(start, end).split("\n")) {
    const row = /^\| `([A-Z_]+)`([^|]*)\|/.exec(line);
    if (row) rows.set(row[1], row[2].trim());
  }
  return rows;
}

/** Line number of `index` in `text`. */
function lineOf(text: string, index: number): number {
  return text.slice(0, index).split("\n").length;
}

test("the README's error table, the code table and the codes the sources raise name the same codes", () => {
  const readme = readmeErrors();
  const table = new Set<string>(CODES);
  const raised = new Set<string>();
  for (const [, text] of sources()) {
    for (const m of text.matchAll(/(?:openChannelError|argError)\(\s*"([A-Z_]+)"/g)) raised.add(m[1]);
  }
  const all = [...new Set([...readme.keys(), ...table, ...raised])].sort();
  const disagreements = all
    .map((code) => {
      const missing = [
        readme.has(code) ? "" : "has no row in the README's Errors table",
        table.has(code) ? "" : "is not in OPEN_CHANNEL_ERRORS",
        raised.has(code) ? "" : "is raised nowhere in packages/*/src",
      ].filter((why) => why !== "");
      return missing.length === 0 ? "" : `${code} ${missing.join(", ")}`;
    })
    .filter((line) => line !== "");
  expect(disagreements).toEqual([]);
  expect(all.length).toBeGreaterThanOrEqual(18);
});

test("the README names the class of each code that is not an OpenChannelError", () => {
  const readme = readmeErrors();
  const wrong = CODES.filter((code) => {
    const base = TABLE[code].base;
    const note = readme.get(code) ?? "";
    return base === "Error" ? /TypeError|RangeError/.test(note) : !note.includes(`(${base})`);
  });
  expect(wrong).toEqual([]);
});

test("the sources raise open-channel's errors only through openChannelError, and name only codes of the table", () => {
  const problems: string[] = [];
  for (const [file, text] of sources()) {
    if (file === ERRORS_FILE) continue;
    for (const m of text.matchAll(/new OpenChannel(Type|Range)?Error\(|code: "ERR_|Object\.assign\(new Error\([^)]*\), \{ code/g)) {
      problems.push(`${file}:${lineOf(text, m.index)}: ${m[0]} (use openChannelError)`);
    }
    // Comments too: a code that the table lacks is a drifted name.
    for (const m of text.matchAll(/\bERR_OPEN_CHANNEL_[A-Z][A-Z_]*\b/g)) {
      if (!Object.hasOwn(TABLE, m[0])) problems.push(`${file}:${lineOf(text, m.index)}: ${m[0]} is not in OPEN_CHANNEL_ERRORS`);
    }
  }
  expect(problems).toEqual([]);
});

/** Arguments for each code's builder; a new code fails to compile here until it has some. */
const SAMPLES: { [C in OpenChannelErrorCode]: OpenChannelErrorArgs<C>[] } = {
  ERR_INVALID_ARG_TYPE: [{ name: "options.handover", expected: "of type boolean", value: "yes" }],
  ERR_INVALID_ARG_VALUE: [{ name: "name", expected: "a non-empty string", value: "" }],
  ERR_OUT_OF_RANGE: [{ name: "timeout", expected: "a finite number >= 0", value: -5 }],
  ETIMEDOUT: [
    {
      channel: "jobs",
      waiting: "connection",
      ms: 1234,
      transport: "unix",
      address: "/run/x/c.jobs",
      lastError: "EACCES x",
      cause: new Error("x"),
    },
    { channel: "jobs", waiting: "status", ms: 2345, transport: "tcp" },
    { channel: "jobs", waiting: "reply", ms: 3456, seq: 77 },
    { channel: "jobs", waiting: "member", ms: 4567, pid: 4242 },
  ],
  ERR_OPEN_CHANNEL_NO_TRANSPORT: [{ channel: "jobs" }, { channel: "jobs", transport: "pigeon", known: ["unix", "tcp"] }],
  ERR_OPEN_CHANNEL_TRANSPORT_MISSING: [{ channel: "jobs", transport: "pipe", pkg: "@open-channel/transport-pipe", cause: new Error("x") }],
  ERR_OPEN_CHANNEL_TRANSPORT_MISMATCH: [{ channel: "jobs", transport: "unix", otherTransport: "tcp", otherPid: 4242 }],
  ERR_OPEN_CHANNEL_HANDSHAKE: [
    { channel: "jobs", reason: "the peer sent no proof", transport: "tcp", address: "/run/x/p.jobs", stranger: true },
    { channel: "jobs", reason: "no handshake reply within 2000 ms", transport: "unix", unanswered: true },
  ],
  ERR_OPEN_CHANNEL_CLOSED: [
    { channel: "jobs", closed: "channel" },
    { channel: "jobs", closed: "messenger" },
  ],
  ERR_OPEN_CHANNEL_UNSAFE_DIR: [
    { channel: "jobs", dir: "/run/x", why: "it belongs to uid 7", cause: new Error("x") },
    { channel: "jobs", secretFile: "/run/x/s.jobs", why: "it holds 3 bytes" },
  ],
  ERR_OPEN_CHANNEL_ADDRESS: [{ channel: "jobs", transport: "unix", address: "/run/x/c.jobs", reason: "listen EACCES", errno: "EACCES" }],
  ERR_OPEN_CHANNEL_FRAME_TOO_LARGE: [
    { channel: "jobs", what: "a reply", bytes: 5000, limit: 4096 },
    { channel: "jobs", what: "what a member holds", bytes: 3000, limit: 2048 },
  ],
  ERR_OPEN_CHANNEL_REMOTE: [
    { channel: "jobs", remoteMessage: "no such job", remoteCode: "ENOJOB", remoteName: "JobError" },
    {
      channel: "jobs",
      remoteMessage: "the host has no onRequest handler",
      remoteCode: "ERR_OPEN_CHANNEL_NO_HANDLER",
      remoteName: "OpenChannelError",
    },
  ],
  ERR_OPEN_CHANNEL_NO_HANDLER: [{}, { member: true }],
  ERR_OPEN_CHANNEL_BAD_BODY: [{}, { detail: "Unable to deserialize cloned data" }],
  ERR_OPEN_CHANNEL_UNSERIALIZABLE: [{ channel: "jobs", what: "a message", codec: "structured", detail: "() => 1 could not be cloned" }],
  ERR_OPEN_CHANNEL_HUGE_ARRAY: [{ bytes: 40, length: 4294967295, limit: 1048576, minLimit: 1048576 }],
  ERR_OPEN_CHANNEL_REPLY_LOST: [
    { channel: "jobs", seq: 42, request: true },
    { channel: "jobs", seq: 43, request: false },
  ],
  ERR_OPEN_CHANNEL_MEMBER_LEFT: [
    { channel: "jobs", pid: 4242, session: "00ff", reason: "closed" },
    { channel: "jobs", pid: 4243, session: "01ff", reason: "lost" },
  ],
  ERR_OPEN_CHANNEL_MEMBER_FAILED: [
    { channel: "jobs", pid: 4242, remoteMessage: "no such job", remoteCode: "ENOJOB", remoteName: "JobError" },
    { channel: "jobs", pid: 4242, remoteMessage: "the member has no onRequest handler", remoteCode: "ERR_OPEN_CHANNEL_NO_HANDLER" },
  ],
  ERR_OPEN_CHANNEL_MEMBER_UNSUPPORTED: [{ channel: "jobs", pid: 4242 }],
  ERR_OPEN_CHANNEL_NOT_HOST: [{ channel: "jobs" }],
  ERR_OPEN_CHANNEL_BAD_FRAME: [{ channel: "jobs", reason: "frame claims 5000 bytes", cause: new Error("x") }],
  ERR_OPEN_CHANNEL_HASHED_NAME: [{}],
};

/** The strings and numbers among `value` (and its arrays), as they would read in a message. */
function shown(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(shown);
  return typeof value === "string" || typeof value === "number" ? [String(value)] : [];
}

describe.each(CODES)("%s", (code) => {
  const spec = TABLE[code];
  const build = openChannelError as unknown as (code: OpenChannelErrorCode, args: object) => Error & Record<string, unknown>;

  test.each(SAMPLES[code].map((args) => [JSON.stringify(args), args] as const))("built from %s", (_, args: Record<string, unknown>) => {
    const err = build(code, args);
    expect(err.code).toBe(code);
    expect(isOpenChannelError(err, code)).toBe(true);
    const cls = { Error: OpenChannelError, TypeError: OpenChannelTypeError, RangeError: OpenChannelRangeError }[spec.base];
    expect(err).toBeInstanceOf(cls);
    expect(err.name).toBe(spec.base === "Error" ? "OpenChannelError" : spec.base);
    if (typeof args.channel === "string") {
      expect(err.channel).toBe(args.channel);
      expect(err.message.startsWith(`open-channel "${args.channel}": `)).toBe(true);
    } else expect(err.channel).toBeUndefined();
    if (spec.base === "Error") expect(err.cause).toBe(args.cause);
    const fields = spec.fields ?? [];
    for (const field of fields) expect([field, err[field]]).toEqual([field, args[field]]);
    // Every argument that is not a field or the cause shows in the message.
    const unused = Object.entries(args)
      .filter(([key]) => key !== "cause" && !fields.includes(key))
      .flatMap(([key, value]) => shown(value).map((text) => [key, text]))
      .filter(([, text]) => !err.message.includes(text));
    expect([err.message, unused]).toEqual([err.message, []]);
  });
});

test("isOpenChannelError tells codes apart; withChannel names the channel of a codec's error once", () => {
  const bad = openChannelError("ERR_OPEN_CHANNEL_BAD_BODY", {});
  expect(isOpenChannelError(bad, "ERR_OPEN_CHANNEL_HUGE_ARRAY")).toBe(false);
  expect(isOpenChannelError("ERR_OPEN_CHANNEL_BAD_BODY", "ERR_OPEN_CHANNEL_BAD_BODY")).toBe(false);
  const named = withChannel(bad, "jobs") as OpenChannelError;
  expect(named).toMatchObject({ code: "ERR_OPEN_CHANNEL_BAD_BODY", channel: "jobs", cause: bad });
  expect(named.message).toBe(`open-channel "jobs": ${bad.message}`);
  expect(withChannel(named, "other")).toBe(named);
  const plain = new Error("plain");
  expect(withChannel(plain, "jobs")).toBe(plain);
});

test("the old constructor still makes an OpenChannelError", () => {
  const err = new OpenChannelError("ETIMEDOUT", "message", { channel: "x", cause: 1 });
  expect(err).toMatchObject({ name: "OpenChannelError", code: "ETIMEDOUT", channel: "x", cause: 1, message: "message" });
});

test("fatal errors are what transport.ts says: these system codes, ERR_INVALID_ARG_TYPE, ERR_OPEN_CHANNEL_* but the handshake's", () => {
  const doc = fs.readFileSync(path.join(ROOT, "packages", "core", "src", "transport.ts"), "utf8");
  const paragraph = /\* Errors from `listen`\/`connect` with codes ([\s\S]*?) are fatal/.exec(doc);
  expect(paragraph).not.toBeNull();
  const systemCodes = [...(paragraph as RegExpExecArray)[1].matchAll(/`(E[A-Z]+)`/g)].map((m) => m[1]);
  expect(systemCodes).toEqual(["EACCES", "EPERM", "ENOTDIR", "ENAMETOOLONG", "ELOOP", "EROFS"]);
  const withCode = (code: string | undefined) => Object.assign(new Error(code ?? "none"), { code });
  for (const code of systemCodes) expect([code, isFatal(withCode(code))]).toEqual([code, true]);
  const fatalCodes = CODES.filter((code) => TABLE[code].fatal);
  const said = CODES.filter(
    (code) => code === "ERR_INVALID_ARG_TYPE" || (code.startsWith("ERR_OPEN_CHANNEL_") && code !== "ERR_OPEN_CHANNEL_HANDSHAKE"),
  );
  expect(fatalCodes).toEqual(said);
  for (const code of CODES) expect([code, isFatal(withCode(code))]).toEqual([code, TABLE[code].fatal]);
  // Retried: no live host yet, a timeout, anything without a code, others' codes.
  for (const code of ["ECONNREFUSED", "ENOENT", "EADDRINUSE", "ETIMEDOUT", "ERR_SOCKET_BAD_PORT", undefined]) {
    expect([code, isFatal(withCode(code))]).toEqual([code, false]);
  }
  expect(isFatal("EACCES")).toBe(false);
});
