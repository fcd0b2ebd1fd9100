import { spawn } from "node:child_process";
import { once } from "node:events";
import * as fs from "node:fs";
import { uniqueChannel } from "./helpers/group";

// A host checks twice a second that its address still leads to it (a probe connection to itself).
// The host's end of each probe must close once the prober leaves: the descriptors of a host that
// runs for a while stay flat.
const HOST = `
const openChannel = require("open-channel").default;
const channel = openChannel(process.env.OC_CHANNEL, (s) => s.pipe(s));
channel.on("hosting", (isHost) => isHost && console.log("hosting"));
channel.connect();
process.stdin.on("data", () => process.exit(0));
`;

const linuxOnly = process.platform === "linux" ? test : test.skip;

describe.each(["unix", "tcp"])("a host over %s", (transport) => {
  linuxOnly(
    "keeps its file descriptors flat across its address checks (6 in 3 s)",
    async () => {
      const child = spawn(process.execPath, ["-e", HOST], {
        env: { ...process.env, OC_CHANNEL: uniqueChannel(`fds-${transport}`), OPEN_CHANNEL_TRANSPORT: transport },
        stdio: ["pipe", "pipe", "inherit"],
      });
      try {
        const [line] = (await once(child.stdout, "data")) as [Buffer];
        expect(String(line).trim()).toBe("hosting");
        const fds = (): number => fs.readdirSync(`/proc/${child.pid}/fd`).length;
        await new Promise((r) => setTimeout(r, 700));
        const before = fds();
        await new Promise((r) => setTimeout(r, 3000));
        expect(fds() - before).toBeLessThanOrEqual(1);
      } finally {
        child.stdin.end("x");
        await once(child, "exit");
        child.stdout.destroy();
      }
    },
    20000,
  );
});
