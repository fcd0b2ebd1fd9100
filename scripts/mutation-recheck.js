"use strict";
/**
 * `npm run mutation -- --recheck <group>`: the survivors of a group's last Stryker run, run again
 * against today's tests. A full run takes hours; tests written for its survivors need only these
 * mutants run again. Each surviving mutant is put into the built file (the source with the mutant
 * applied, compiled alone by TypeScript), and the group's tests run against it as Stryker runs them
 * (stopping at the first failure). The results docs/mutation/<group>.json are updated: a mutant now
 * killed gets the status Killed (or Timeout) and the date it was re-checked.
 *
 * A mutant whose lines changed since the run is left as it is and listed: only a full run says
 * what it does now. The mutants the run killed are not run again: a test weakened since would not
 * show here. Do not build or edit this checkout meanwhile: the built files are put back at the end.
 */
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");
const ts = require("typescript");

const ROOT = path.join(__dirname, "..");
const base = JSON.parse(fs.readFileSync(path.join(ROOT, "tsconfig.base.json"), "utf8")).compilerOptions;
const { options: compilerOptions } = ts.convertCompilerOptionsFromJson(
  { ...base, composite: false, declaration: false, declarationMap: false, sourceMap: false },
  ROOT,
);

/** The built file of a source file: packages/x/src/a.ts -> packages/x/dist/a.js. */
const builtOf = (file) => path.join(ROOT, file.replace("/src/", "/dist/").replace(/\.ts$/, ".js"));
const compile = (source) => ts.transpileModule(source, { compilerOptions }).outputText;

/** The group's tests once, with `command`: Killed, Timeout or Survived. */
function runTests(command, boundMs) {
  const run = spawnSync("sh", ["-c", command], { cwd: ROOT, stdio: "ignore", timeout: boundMs });
  if (run.error?.code === "ETIMEDOUT") return "Timeout";
  return run.status === 0 ? "Survived" : "Killed";
}

/** `source` with mutant `m` (located in `oldSource`) applied, or `undefined` when its lines changed. */
function applied(source, oldSource, m) {
  const { start, end } = m.location;
  const lines = source.split("\n");
  const span = end.line - start.line + 1;
  const oldText = oldSource
    .split("\n")
    .slice(start.line - 1, end.line)
    .join("\n");
  const matches = (i) => lines.slice(i, i + span).join("\n") === oldText;
  // At the same line if it is unchanged there; else wherever those lines are, if only once.
  const at = [];
  if (matches(start.line - 1)) at.push(start.line - 1);
  else for (let i = 0; i + span <= lines.length; i++) if (matches(i)) at.push(i);
  if (at.length !== 1) return undefined;
  const first = at[0];
  const last = first + span - 1;
  lines.splice(first, span, lines[first].slice(0, start.column - 1) + m.replacement + lines[last].slice(end.column - 1));
  return lines.join("\n");
}

/** Re-checks group `group`'s survivors with its test command `command`; returns how many are killed now. */
module.exports = function recheck(group, command, { readResults, writeResults, git }) {
  const report = readResults(group);
  if (report === undefined) {
    console.error(`mutation: no results of group ${group} to re-check (docs/mutation/${group}.json)`);
    return 0;
  }
  const originals = new Map();
  const restore = () => {
    for (const [file, text] of originals) fs.writeFileSync(file, text);
  };
  const onSignal = () => {
    restore();
    process.exit(130);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const today = new Date().toISOString().slice(0, 10);
  let killed = 0;
  try {
    // The unchanged sources, compiled the way the mutants are: the tests must pass on them.
    for (const file of Object.keys(report.files)) {
      const built = builtOf(file);
      originals.set(built, fs.readFileSync(built, "utf8"));
      fs.writeFileSync(built, compile(fs.readFileSync(path.join(ROOT, file), "utf8")));
    }
    const started = Date.now();
    if (runTests(command, 30 * 60 * 1000) !== "Survived") {
      console.error(`mutation: group ${group}: the tests do not pass on the unchanged sources; nothing re-checked`);
      return 0;
    }
    const bound = 3 * (Date.now() - started) + 10000;
    console.log(`mutation: group ${group}: re-checking its survivors (tests pass in ${Date.now() - started} ms; bound ${bound} ms)`);
    for (const [file, entry] of Object.entries(report.files)) {
      const source = fs.readFileSync(path.join(ROOT, file), "utf8");
      const built = builtOf(file);
      const plain = compile(source);
      // The source as the run mutated it.
      const runSource = git("show", `${report.commit}:${file}`);
      for (const m of entry.mutants) {
        if (m.status !== "Survived" && m.status !== "NoCoverage") continue;
        const label = `${file}:${m.location.start.line} ${m.mutatorName} ${JSON.stringify(m.replacement).slice(0, 60)}`;
        const mutated = applied(source, runSource, m);
        if (mutated === undefined) {
          console.log(`  changed  ${label}`);
          continue;
        }
        fs.writeFileSync(built, compile(mutated));
        const status = runTests(command, bound);
        fs.writeFileSync(built, plain);
        console.log(`  ${status.padEnd(8)} ${label}`);
        if (status !== "Survived") {
          m.status = status;
          m.recheckedOn = today;
          killed++;
        }
      }
    }
  } finally {
    restore();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  writeResults(group, report);
  console.log(`mutation: group ${group}: ${killed} survivors killed now; docs/mutation/${group}.json updated`);
  return killed;
};
