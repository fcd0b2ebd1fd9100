#!/usr/bin/env node
"use strict";
// The house rule "JSDoc with an example on each export" as a check: reads TypeDoc's JSON output
// (`npm run docs` writes docs/api/api.json) and lists every public export, and every public member
// of an exported class, whose documentation has no description or no @example block. TypeDoc's own
// validation.notDocumented already fails on a missing description; this adds the @example half.
//
// Checked: everything each package's src/index.ts exports (classes, interfaces, type aliases,
// functions, constants), and the public properties, accessors and methods of exported classes,
// inherited ones included unless they come from outside the repo (EventEmitter's, Error's).
// Interface members need a description (TypeDoc checks it) but no example of their own: the
// interface's example shows them in use. Constructors: the class's example shows the construction.
// Re-exports (`export { x as default }`) are checked where they point to.
//
// Usage: node scripts/check-doc-examples.js [docs/api/api.json]   (exit 1 when something lacks one)

const fs = require("node:fs");
const path = require("node:path");

// TypeDoc's ReflectionKind values (stable across 0.2x, see typedoc's models/kind.ts).
const KIND = {
  Module: 2,
  Variable: 32,
  Function: 64,
  Class: 128,
  Interface: 256,
  Constructor: 512,
  Property: 1024,
  Method: 2048,
  Accessor: 262144,
  TypeAlias: 2097152,
  Reference: 4194304,
};
const KIND_NAME = Object.fromEntries(Object.entries(KIND).map(([name, value]) => [value, name]));
const CHECKED_CLASS_MEMBERS = new Set([KIND.Property, KIND.Method, KIND.Accessor]);

/** The comments TypeDoc attached to a reflection: its own, its signatures', its accessors'. */
function commentsOf(reflection) {
  return [
    reflection.comment,
    ...(reflection.signatures ?? []).map((s) => s.comment),
    reflection.getSignature?.comment,
    reflection.setSignature?.comment,
  ].filter((c) => c !== undefined);
}

function text(parts) {
  return (parts ?? [])
    .map((p) => p.text)
    .join("")
    .trim();
}

function hasDescription(reflection) {
  return commentsOf(reflection).some((c) => text(c.summary) !== "");
}

function hasExample(reflection) {
  return commentsOf(reflection).some((c) => (c.blockTags ?? []).some((t) => t.tag === "@example" && text(t.content) !== ""));
}

/**
 * Lists what lacks a description or an @example in a TypeDoc JSON project (one package, or the
 * merged project of `entryPointStrategy: "packages"` with one module per package).
 *
 * @returns one entry per problem, e.g. `{ name: "@open-channel/core.ProcessChannel.close", kind: "Method", missing: ["@example"] }`
 */
function findMissingExamples(project) {
  const modules = (project.children ?? []).some((c) => c.kind === KIND.Module)
    ? project.children.filter((c) => c.kind === KIND.Module)
    : [project];
  const problems = [];
  const check = (reflection, name) => {
    const missing = [];
    if (!hasDescription(reflection)) missing.push("description");
    if (!hasExample(reflection)) missing.push("@example");
    if (missing.length > 0) problems.push({ name, kind: KIND_NAME[reflection.kind] ?? String(reflection.kind), missing });
  };
  for (const mod of modules) {
    for (const exported of mod.children ?? []) {
      if (exported.kind === KIND.Reference || exported.flags?.isExternal) continue;
      const name = `${mod.name}.${exported.name}`;
      check(exported, name);
      if (exported.kind !== KIND.Class) continue;
      for (const member of exported.children ?? []) {
        if (!CHECKED_CLASS_MEMBERS.has(member.kind)) continue;
        const flags = member.flags ?? {};
        if (flags.isExternal || flags.isPrivate || flags.isProtected || member.name.startsWith("#")) continue;
        check(member, `${name}.${member.name}`);
      }
    }
  }
  return problems;
}

/** Counts what the check looked at: exports and class members, per module. */
function countChecked(project) {
  const modules = (project.children ?? []).some((c) => c.kind === KIND.Module)
    ? project.children.filter((c) => c.kind === KIND.Module)
    : [project];
  let exportsCount = 0;
  let members = 0;
  for (const mod of modules) {
    for (const exported of mod.children ?? []) {
      if (exported.kind === KIND.Reference || exported.flags?.isExternal) continue;
      exportsCount++;
      if (exported.kind !== KIND.Class) continue;
      members += (exported.children ?? []).filter((m) => {
        const flags = m.flags ?? {};
        return CHECKED_CLASS_MEMBERS.has(m.kind) && !flags.isExternal && !flags.isPrivate && !flags.isProtected;
      }).length;
    }
  }
  return { modules: modules.length, exports: exportsCount, members };
}

module.exports = { findMissingExamples, countChecked };

if (require.main === module) {
  const file = path.resolve(process.argv[2] ?? path.join(__dirname, "..", "docs", "api", "api.json"));
  if (!fs.existsSync(file)) {
    console.error(`check-doc-examples: ${file} does not exist. Run \`npm run docs\` (TypeDoc writes it) first.`);
    process.exit(2);
  }
  const project = JSON.parse(fs.readFileSync(file, "utf8"));
  const problems = findMissingExamples(project);
  const { modules, exports: exportsCount, members } = countChecked(project);
  if (problems.length > 0) {
    console.error(`check-doc-examples: ${problems.length} public API item(s) lack documentation (JSDoc in packages/*/src):`);
    for (const p of problems) console.error(`  ${p.name} (${p.kind}): no ${p.missing.join(", no ")}`);
    process.exit(1);
  }
  console.log(
    `check-doc-examples: ok, ${exportsCount} exports and ${members} class members in ${modules} packages have a description and an @example`,
  );
}
