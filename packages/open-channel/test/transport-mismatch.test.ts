import { spawn } from "node:child_process";
import { once } from "node:events";
import { uniqueChannel } from "./helpers/group";

// Processes of one channel that picked different transports form two channels: the second host
// says so (a warning with a code) instead of keeping quiet.
const HOST = `
const openChannel = require("open-channel").default;
const channel = openChannel(process.env.OC_CHANNEL, (s) => s.pipe(s));
channel.on("hosting", (isHost) => isHost && console.log("hosting"));
channel.connect();
process.stdin.on("data", () => process.exit(0));
`;

/** A process hosting `channel` over `transport` (unset: the umbrella's choice); its stderr as it comes. */
async function host(channel: string, transport?: string): Promise<{ stderr: () => string; stop: () => Promise<void> }> {
  const env: NodeJS.ProcessEnv = { ...process.env, OC_CHANNEL: channel };
  if (transport === undefined) delete env.OPEN_CHANNEL_TRANSPORT;
  else env.OPEN_CHANNEL_TRANSPORT = transport;
  const child = spawn(process.execPath, ["-e", HOST], { env, stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    stderr += String(d);
  });
  const [line] = (await once(child.stdout, "data")) as [Buffer];
  expect(String(line).trim()).toBe("hosting");
  return {
    stderr: () => stderr,
    stop: async () => {
      child.stdin.end("x");
      await once(child, "exit");
      for (const stream of [child.stdout, child.stderr]) stream.destroy();
    },
  };
}

const testOffWindows = process.platform === "win32" ? test.skip : test;

testOffWindows("processes hosting one channel over unix and over tcp each warn once, naming the other", async () => {
  const channel = uniqueChannel("mismatch");
  const overTcp = await host(channel, "tcp");
  const overUnix = await host(channel);
  // The host looks at the other transports 1 s after it starts hosting: give it that, and a moment.
  await new Promise((r) => setTimeout(r, 2000));
  const tcpPid = /process (\d+) hosts it over tcp/.exec(overUnix.stderr())?.[1];
  await overUnix.stop();
  await overTcp.stop();
  const warnings = overUnix
    .stderr()
    .split("\n")
    .filter((l) => l.includes("[ERR_OPEN_CHANNEL_TRANSPORT_MISMATCH] Warning:"));
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toContain(`open-channel "${channel}": this process hosts the channel over unix`);
  expect(Number(tcpPid)).toBeGreaterThan(0);
  // The first host looked a second after it started: if the other was there by then, it warned
  // too (once); on a slow machine it may have looked too early.
  const tcpWarnings = overTcp
    .stderr()
    .split("\n")
    .filter((l) => l.includes("[ERR_OPEN_CHANNEL_TRANSPORT_MISMATCH] Warning:"));
  expect(tcpWarnings.length).toBeLessThanOrEqual(1);
  for (const w of tcpWarnings) expect(w).toContain("this process hosts the channel over tcp, and process");
});

testOffWindows("processes on the same transport, and a channel hosted alone, get no warning", async () => {
  const channel = uniqueChannel("mismatch-none");
  const first = await host(channel);
  await new Promise((r) => setTimeout(r, 1800));
  await first.stop();
  // The next host over unix: the channel's previous host is gone, nothing elsewhere.
  const second = await host(channel);
  await new Promise((r) => setTimeout(r, 1800));
  await second.stop();
  expect(first.stderr()).toBe("");
  expect(second.stderr()).toBe("");
});
