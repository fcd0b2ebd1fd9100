import { type ChannelStatus, errorCode, openChannelError, queryChannelStatus, type Transport } from "@open-channel/core";
import { loadTransport, platformTransports } from "./select-transport";

/**
 * Where the command writes; the process's own streams by default.
 *
 * @example
 * let text = "";
 * await runCli(["list"], { stdout: (t) => (text += t), stderr: (t) => process.stderr.write(t) });
 */
export interface CliOutput {
  /** Receives what the command prints (the answer). */
  stdout: (text: string) => void;
  /** Receives errors and the usage. */
  stderr: (text: string) => void;
}

/**
 * The host's status, with the heir when one stands by (`host` of a {@link ChannelReport}).
 *
 * @example
 * const host: HostReport | undefined = report.host;
 * if (host) console.log(`pid ${host.pid}, heir ${host.heirPid ?? "none"}`);
 */
export type HostReport = ChannelStatus & {
  /** The member standing by to take over, if one does. */
  heirPid?: number;
};

/**
 * One transport's answer about one channel: an entry of `open-channel list --json`, and of
 * `transports` in `open-channel status NAME --json`.
 *
 * @example
 * const reports: ChannelReport[] = JSON.parse(execFileSync("npx", ["open-channel", "list", "--json"], { encoding: "utf8" }));
 * for (const r of reports) console.log(r.channel, r.host?.pid);
 */
export interface ChannelReport {
  /** The channel's name. */
  channel: string;
  /** The transport asked (`"unix"`, `"tcp"`, `"pipe"`). */
  transport: string;
  /** `hosted`: a host answered; `no-host`: nobody listens (or only a dead host's leftovers); `error`: see `reason`. */
  state: "hosted" | "no-host" | "error";
  /** The address checked (a socket file, a port file, a pipe). */
  address?: string;
  /** The host's own status, when hosted. */
  host?: HostReport;
  /** Why there is no host, or what went wrong. */
  reason?: string;
  /** The error's code, for `error`. */
  code?: string;
}

const USAGE = `Usage:
  open-channel status NAME [--json] [--transport unix|tcp|pipe] [--timeout MS]
      Who hosts channel NAME: host pid, transport, address, members connected, uptime, heir.
      Exit status: 0 hosted, 1 no host, 2 usage error, 3 the host could not be asked.
  open-channel list [--all] [--json] [--transport unix|tcp|pipe] [--timeout MS]
      Every hosted channel of this user, with its host; --all also shows addresses with no host
      (files left by hosts that were killed: harmless, the next host reuses them).
  open-channel --help | --version

Only channels of the user running the command are seen. Without --transport, every transport of
this platform is asked (unix and tcp; on Windows pipe and tcp).`;

const EXIT = { ok: 0, noHost: 1, usage: 2, error: 3 } as const;

interface Options {
  command: string;
  name?: string;
  json: boolean;
  all: boolean;
  transports: string[];
  timeoutMs: number;
}

function parseArgs(argv: readonly string[]): Options | string {
  const positional: string[] = [];
  const options: Options = { command: "", json: false, all: false, transports: [], timeoutMs: 2000 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--json") options.json = true;
    else if (arg === "--all") options.all = true;
    else if (arg === "--transport" || arg === "--timeout") {
      const value = argv[++i];
      if (value === undefined) return `${arg} needs a value`;
      if (arg === "--transport") options.transports.push(...value.split(","));
      else {
        options.timeoutMs = Number(value);
        if (!Number.isInteger(options.timeoutMs) || options.timeoutMs <= 0)
          return `--timeout must be a positive number of ms, not ${JSON.stringify(value)}`;
      }
    } else if (arg === "--help" || arg === "-h") positional.unshift("help");
    else if (arg === "--version" || arg === "-v") positional.unshift("version");
    else if (arg.startsWith("--")) return `unknown option ${arg}`;
    else positional.push(arg);
  }
  if (positional.length === 0) return "a command is needed (status or list)";
  options.command = positional[0];
  if (options.command === "status") {
    if (positional.length !== 2) return "status needs exactly one channel NAME";
    options.name = positional[1];
  } else if (options.command === "list") {
    if (positional.length !== 1) return "list takes no NAME";
  } else if (options.command !== "help" && options.command !== "version") return `unknown command ${JSON.stringify(options.command)}`;
  if (options.transports.length === 0) options.transports = platformTransports();
  return options;
}

/** The transports to ask; those not installed are skipped unless asked for by name. */
function transportsFor(options: Options, explicit: boolean, out: CliOutput): Transport[] | undefined {
  const transports: Transport[] = [];
  for (const name of options.transports) {
    try {
      transports.push(loadTransport(name, options.name ?? "(list)"));
    } catch (err) {
      if (explicit || errorCode(err) !== "ERR_OPEN_CHANNEL_TRANSPORT_MISSING") {
        out.stderr(`open-channel: ${(err as Error).message}\n`);
        return undefined;
      }
    }
  }
  return transports;
}

async function ask(transport: Transport, channel: string, timeoutMs: number, address?: string): Promise<ChannelReport> {
  const report: ChannelReport = { channel, transport: transport.name, state: "no-host" };
  try {
    report.address = address ?? transport.address?.(channel);
    const result = await queryChannelStatus(transport, channel, { timeoutMs });
    if (result.state === "hosted") {
      report.state = "hosted";
      report.host = result.heirPid === undefined ? result.status : { ...result.status, heirPid: result.heirPid };
      if (result.status.address) report.address = result.status.address;
    } else report.reason = result.reason;
  } catch (err) {
    failed(report, err);
  }
  return report;
}

/** `report` as an error: `err`'s message is the reason, its code the code. */
function failed(report: ChannelReport, err: unknown): ChannelReport {
  report.state = "error";
  report.reason = (err as Error).message;
  report.code = errorCode(err);
  return report;
}

/** `5m 03s` style durations. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d ${String(h % 24).padStart(2, "0")}h`;
}

function statusText(reports: ChannelReport[], name: string): string {
  const hosted = reports.filter((r) => r.state === "hosted");
  const lines: string[] = [];
  if (hosted.length === 0) {
    lines.push(`channel ${JSON.stringify(name)}: no host`);
    for (const r of reports)
      lines.push(`  ${r.transport.padEnd(9)} ${r.state === "error" ? `error: ${r.reason}` : (r.reason ?? "no host")}`);
    return `${lines.join("\n")}\n`;
  }
  if (hosted.length > 1)
    lines.push(
      `channel ${JSON.stringify(name)}: hosted over ${hosted.length} transports (its processes do not all use the same transport: set OPEN_CHANNEL_TRANSPORT for all of them)`,
    );
  for (const r of hosted) {
    const h = r.host as NonNullable<ChannelReport["host"]>;
    lines.push(`channel ${JSON.stringify(name)}: hosted by pid ${h.pid} over ${r.transport}`);
    lines.push(`  address   ${h.address || r.address || "-"}`);
    lines.push(`  members   ${h.members} connected (the host's own connection included)`);
    lines.push(`  uptime    ${formatDuration(h.uptimeMs)} (since ${new Date(h.since).toISOString()})`);
    lines.push(`  heir      ${h.heirPid === undefined ? "none yet" : `pid ${h.heirPid}`}`);
    lines.push(`  server    ${h.serverId}`);
    lines.push(`  host      node ${h.node}${h.script ? `, ${h.script}` : ""}`);
  }
  for (const r of reports) if (r.state === "error") lines.push(`  ${r.transport}: error: ${r.reason}`);
  return `${lines.join("\n")}\n`;
}

function listText(reports: ChannelReport[], hidden: number): string {
  const note = hidden === 0 ? "" : `(${hidden} address${hidden === 1 ? "" : "es"} with no host not shown: --all shows them)\n`;
  if (reports.length === 0) return `no hosted channels\n${note}`;
  const rows = [["CHANNEL", "TRANSPORT", "HOST PID", "MEMBERS", "UPTIME", "HEIR", "ADDRESS"]];
  for (const r of reports) {
    const h = r.host;
    rows.push([
      r.channel,
      r.transport,
      h ? String(h.pid) : r.state === "error" ? "error" : "no host",
      h ? String(h.members) : "-",
      h ? formatDuration(h.uptimeMs) : "-",
      h?.heirPid === undefined ? "-" : String(h.heirPid),
      r.address ?? "-",
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return `${rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join("  ")).join("\n")}\n${note}`;
}

/**
 * The `open-channel` command (`npx open-channel status NAME`, `npx open-channel list`). Returns the
 * exit status instead of exiting, so that it can be tested and embedded.
 *
 * @example
 * process.exitCode = await runCli(["status", "jobs", "--json"]);
 */
export async function runCli(
  argv: readonly string[],
  out: CliOutput = { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t) },
): Promise<number> {
  const explicit = argv.includes("--transport");
  const options = parseArgs(argv);
  if (typeof options === "string") {
    out.stderr(`open-channel: ${options}\n\n${USAGE}\n`);
    return EXIT.usage;
  }
  if (options.command === "help") {
    out.stdout(`${USAGE}\n`);
    return EXIT.ok;
  }
  if (options.command === "version") {
    out.stdout(`${(require("../package.json") as { version: string }).version}\n`);
    return EXIT.ok;
  }
  const transports = transportsFor(options, explicit, out);
  if (transports === undefined) return EXIT.usage;

  if (options.command === "status") {
    const name = options.name as string;
    const reports = await Promise.all(transports.map((t) => ask(t, name, options.timeoutMs)));
    if (options.json) {
      const hosted = reports.find((r) => r.state === "hosted");
      out.stdout(
        `${JSON.stringify({ channel: name, state: hosted ? "hosted" : "no-host", host: hosted?.host ?? null, transports: reports }, null, 2)}\n`,
      );
    } else out.stdout(statusText(reports, name));
    if (reports.some((r) => r.state === "hosted")) return EXIT.ok;
    return reports.some((r) => r.state === "error") ? EXIT.error : EXIT.noHost;
  }

  // list
  const reports: ChannelReport[] = [];
  for (const transport of transports) {
    const entries = transport.channels?.() ?? [];
    const asked = await Promise.all(
      entries.map((entry) =>
        entry.name === undefined
          ? Promise.resolve(
              failed(
                { channel: "(name too long to show)", transport: transport.name, state: "error", address: entry.address },
                openChannelError("ERR_OPEN_CHANNEL_HASHED_NAME", {}),
              ),
            )
          : ask(transport, entry.name, options.timeoutMs, entry.address),
      ),
    );
    reports.push(...asked);
  }
  const shown = options.all ? reports : reports.filter((r) => r.state !== "no-host");
  if (options.json) out.stdout(`${JSON.stringify(shown, null, 2)}\n`);
  else out.stdout(listText(shown, reports.length - shown.length));
  return EXIT.ok;
}

/** Runs the command with this process's arguments and sets the exit status. */
export function main(): void {
  runCli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`open-channel: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = EXIT.error;
    },
  );
}
