import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { stripVTControlCharacters } from "node:util";

// The repository passes its linter and formatter (Biome, biome.json): `npm run lint` in CI, here as
// a test so that a lint error fails the suite. `npm run format` fixes formatting and import order.
test("biome ci: no lint error, every file formatted", () => {
  const root = path.join(__dirname, "..", "..", "..");
  const biome = path.join(root, "node_modules", "@biomejs", "biome", "bin", "biome");
  const r = spawnSync(process.execPath, [biome, "ci", "--max-diagnostics=50", "."], { cwd: root, encoding: "utf8" });
  const out = stripVTControlCharacters(r.stdout + r.stderr);
  expect({ status: r.status, out: r.status === 0 ? "" : out }).toEqual({ status: 0, out: "" });
  expect(out).toMatch(/Checked \d+ files/);
});
