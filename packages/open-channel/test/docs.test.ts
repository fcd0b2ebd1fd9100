import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { stripVTControlCharacters } from "node:util";

// The API reference (`npm run docs`) stays complete: TypeDoc (validation.notDocumented,
// treatWarningsAsErrors) fails on a public export without a description, and
// scripts/check-doc-examples.js fails on one without an @example. TypeDoc runs here with JSON
// output only (no HTML), on the packages `npm test` has just built.
const ROOT = path.join(__dirname, "..", "..", "..");
const CHECK = path.join(ROOT, "scripts", "check-doc-examples.js");

interface Problem {
  name: string;
  kind: string;
  missing: string[];
}
const { findMissingExamples } = require(CHECK) as { findMissingExamples: (project: unknown) => Problem[] };

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "docs-test-"));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function check(file: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [CHECK, file], { cwd: ROOT, encoding: "utf8" });
  return { status: r.status, out: r.stdout + r.stderr };
}

test("TypeDoc documents every package with no warning, and every export and public class member has an @example", () => {
  const json = path.join(dir, "api.json");
  const typedoc = spawnSync(process.execPath, [path.join(ROOT, "node_modules", "typedoc", "bin", "typedoc"), "--json", json], {
    cwd: ROOT,
    encoding: "utf8",
  });
  const log = stripVTControlCharacters(typedoc.stdout + typedoc.stderr);
  expect(log).not.toMatch(/\[(warning|error)\]/);
  expect(typedoc.status).toBe(0);

  const project = JSON.parse(fs.readFileSync(json, "utf8")) as { children: { name: string; children: unknown[] }[] };
  expect(project.children.map((m) => m.name).sort()).toEqual([
    "@open-channel/core",
    "@open-channel/messages",
    "@open-channel/transport-pipe",
    "@open-channel/transport-redis",
    "@open-channel/transport-tcp",
    "@open-channel/transport-unix",
    "open-channel",
  ]);
  expect(findMissingExamples(project)).toEqual([]);
  const { status, out } = check(json);
  expect(out).toMatch(/^check-doc-examples: ok, \d+ exports and \d+ class members in 7 packages/);
  expect(status).toBe(0);
}, 180000);

test("the check names an export and a class member without an @example, and one without a description, and fails", () => {
  const example = { tag: "@example", content: [{ kind: "code", text: "```ts\nfoo()\n```" }] };
  const described = (text: string, withExample = true) => ({ summary: [{ kind: "text", text }], blockTags: withExample ? [example] : [] });
  const project = {
    kind: 1,
    name: "fixture",
    children: [
      {
        kind: 2,
        name: "pkg",
        children: [
          { kind: 64, name: "documented", signatures: [{ kind: 4096, name: "documented", comment: described("Does it.") }] },
          { kind: 64, name: "noExample", signatures: [{ kind: 4096, name: "noExample", comment: described("Does it.", false) }] },
          { kind: 32, name: "NO_COMMENT" },
          {
            kind: 128,
            name: "Thing",
            comment: described("A thing."),
            children: [
              { kind: 512, name: "constructor", signatures: [{ kind: 16384, name: "Thing", comment: described("Makes one.", false) }] },
              { kind: 1024, name: "size", comment: described("How big.", false) },
              { kind: 262144, name: "open", getSignature: { kind: 524288, name: "open", comment: described("Open or not.") } },
              { kind: 2048, name: "hidden", flags: { isPrivate: true }, signatures: [{ kind: 4096, name: "hidden" }] },
              { kind: 2048, name: "on", flags: { isExternal: true, isInherited: true }, signatures: [{ kind: 4096, name: "on" }] },
            ],
          },
          { kind: 4194304, name: "default", target: 1 },
        ],
      },
    ],
  };
  expect(findMissingExamples(project)).toEqual([
    { name: "pkg.noExample", kind: "Function", missing: ["@example"] },
    { name: "pkg.NO_COMMENT", kind: "Variable", missing: ["description", "@example"] },
    { name: "pkg.Thing.size", kind: "Property", missing: ["@example"] },
  ]);
  const file = path.join(dir, "fixture.json");
  fs.writeFileSync(file, JSON.stringify(project));
  const { status, out } = check(file);
  expect(status).toBe(1);
  expect(out).toContain("3 public API item(s) lack documentation");
  expect(out).toContain("pkg.Thing.size (Property): no @example");
  expect(out).toContain("pkg.NO_COMMENT (Variable): no description, no @example");
});

/** The bullets of the README's guarantee lists: each one's first line, without the "- ". */
function readmeGuarantees(readme: string): string[] {
  const sections = [
    ["What is guaranteed and what is not:", "\nMeasured on"],
    ["**The guarantees**", "\n**Codecs**"],
    ["## Security and bad input", "\n## PM2"],
  ];
  const bullets: string[] = [];
  for (const [from, to] of sections) {
    const start = readme.indexOf(from);
    const end = readme.indexOf(to, start);
    expect([from, start >= 0 && end > start]).toEqual([from, true]);
    for (const line of readme.slice(start, end).split("\n")) if (line.startsWith("- ")) bullets.push(line.slice(2));
  }
  return bullets;
}

test("docs/guarantees.md has a row for each guarantee the README lists, and every test it names exists", () => {
  const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
  const table = fs.readFileSync(path.join(ROOT, "docs", "guarantees.md"), "utf8");
  const rows = table.split("\n").filter((l) => l.startsWith("| ") && !l.startsWith("| guarantee"));
  const bullets = readmeGuarantees(readme);
  expect(bullets.length).toBeGreaterThanOrEqual(10);
  // A row starts with the bullet's opening words (up to its first period, or its first 8 words).
  const opening = (bullet: string): string => {
    const words = bullet.split(/\s+/).slice(0, 8).join(" ");
    const sentence = bullet.split(/(?<=[.:])\s/)[0];
    return sentence.length < words.length ? sentence : words;
  };
  const missing = bullets.filter((b) => !rows.some((r) => r.slice(2).startsWith(opening(b).replace(/[:.,;]$/, ""))));
  expect(missing).toEqual([]);
  // Every `file › name` names a test (or test.each) of that file, with that exact name.
  const refs = [...table.matchAll(/`([^`]+\.test\.ts) › ([^`]+)`/g)].map((m) => [m[1], m[2]] as const);
  expect(refs.length).toBeGreaterThanOrEqual(bullets.length);
  const absent = refs.filter(([file, name]) => {
    const full = path.join(ROOT, file);
    if (!fs.existsSync(full)) return true;
    const source = fs.readFileSync(full, "utf8");
    return ![`"${name}"`, `'${name}'`, `\`${name}\``].some((quoted) => source.includes(quoted));
  });
  expect(absent).toEqual([]);
});

test("docs/architecture.md names every source file of core and the message layer, and only files that exist", () => {
  const doc = fs.readFileSync(path.join(ROOT, "docs", "architecture.md"), "utf8");
  const named = new Set([...doc.matchAll(/`([a-z-]+\.ts)`/g)].map((m) => m[1]));
  const sources = (pkg: string): string[] =>
    fs.readdirSync(path.join(ROOT, "packages", pkg, "src")).filter((f) => f.endsWith(".ts") && f !== "index.ts");
  const all = [...sources("core"), ...sources("messages")];
  expect(all.filter((f) => !named.has(f))).toEqual([]);
  const elsewhere = new Set(sources("transport-unix"));
  expect([...named].filter((f) => !all.includes(f) && !elsewhere.has(f))).toEqual([]);
});

/** GitHub's anchor for a heading: lower case, punctuation but `-` and `_` dropped, spaces to `-`. */
const slug = (heading: string): string =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");

test("every relative link of the README and the docs leads to a file that exists, and every #anchor to a heading", () => {
  const pages = ["README.md", "SECURITY.md", "bench/README.md", "examples/README.md"]
    .concat(fs.readdirSync(path.join(ROOT, "docs")).flatMap((f) => (f.endsWith(".md") ? [`docs/${f}`] : [])))
    .concat(fs.readdirSync(path.join(ROOT, "packages")).map((p) => `packages/${p}/README.md`))
    .filter((p) => fs.existsSync(path.join(ROOT, p)));
  const broken: string[] = [];
  for (const page of pages) {
    const text = fs.readFileSync(path.join(ROOT, page), "utf8");
    for (const [, link] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(link)) continue;
      const [file, anchor] = link.split("#");
      const target = file === "" ? path.join(ROOT, page) : path.resolve(path.dirname(path.join(ROOT, page)), file);
      if (!fs.existsSync(target)) broken.push(`${page}: ${link}`);
      else if (anchor !== undefined && target.endsWith(".md")) {
        const headings = fs
          .readFileSync(target, "utf8")
          .split("\n")
          .filter((l) => /^#{1,6} /.test(l))
          .map((l) => slug(l.replace(/^#+ /, "")));
        if (!headings.includes(anchor)) broken.push(`${page}: ${link} (no such heading)`);
      }
    }
  }
  expect(broken).toEqual([]);
});
