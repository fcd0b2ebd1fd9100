import { spawnSync } from "node:child_process";
import * as path from "node:path";

// The public types hold what they promise: typed events, bodies that cannot be sent refused at
// compile time, typed replies, subscriptions and handlers, remoteCode declared. types/checks.ts
// says it line by line; here TypeScript compiles it against the built packages.
test("types/checks.ts compiles, and each of its @ts-expect-error lines is an error", () => {
  const tsc = require.resolve("typescript/bin/tsc");
  const r = spawnSync(process.execPath, [tsc, "-p", path.join(__dirname, "types", "tsconfig.json")], { encoding: "utf8" });
  expect(r.stdout + r.stderr).toBe("");
  expect(r.status).toBe(0);
}, 60000);
