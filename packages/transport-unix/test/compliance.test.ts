import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { transportComplianceCases } from "@open-channel/core/compliance";
import { unixTransport } from "@open-channel/transport-unix";

describe("the unix transport passes the transport compliance suite", () => {
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "oc-unix-compliance-")), "sockets");
  const cases = transportComplianceCases({
    transport: () => unixTransport({ dir }),
    child: { module: require.resolve("@open-channel/transport-unix"), factory: "unixTransport", options: { dir } },
  });
  for (const c of cases) test(c.name, c.run);
});
