import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { transportComplianceCases } from "@open-channel/core/compliance";
import { pipeName, pipeTransport } from "@open-channel/transport-pipe";

describe("pipe names", () => {
  test("any channel name maps to one pipe under the user's prefix", () => {
    const names = ["jobs", "a\\b", "..\\..\\other-user\\x", "ünï ✓", "x".repeat(500), ""];
    const pipes = names.map((n) => pipeName(n, "alice"));
    for (const p of pipes) {
      expect(p.startsWith("\\\\?\\pipe\\open-channel\\alice\\")).toBe(true);
      expect(p.slice("\\\\?\\pipe\\open-channel\\alice\\".length)).not.toContain("\\");
      expect(p.length).toBeLessThanOrEqual(200);
    }
    expect(new Set(pipes).size).toBe(names.length);
    expect(pipeName("jobs", "dom\\alice")).toBe("\\\\?\\pipe\\open-channel\\dom%5Calice\\c.jobs");
  });
});

// Named pipes exist on Windows only: there the pipe transport runs the same compliance suite as
// every other transport. Under Wine, `npm run test:windows` runs these cases in a Windows Node.
const onWindows = process.platform === "win32" ? describe : describe.skip;
onWindows("the pipe transport passes the transport compliance suite (Windows)", () => {
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "oc-pipe-")), "private");
  for (const c of transportComplianceCases({ transport: () => pipeTransport({ dir, user: `test-${process.pid}` }) })) test(c.name, c.run);
});
