import { transportComplianceCases } from "@open-channel/core/compliance";
import { testTransport } from "./test-transport";

// A transport that exists only in these tests runs the same suite as the shipped ones: injection is real.
describe("a custom test-only transport passes the transport compliance suite", () => {
  const transport = testTransport();
  for (const c of transportComplianceCases({ transport: () => transport })) test(c.name, c.run);
});
