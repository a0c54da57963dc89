// Runs wrk (the HTTP load generator) and parses its text report. The parser is pure so it is unit-tested on
// recorded output; the runner only spawns the process.
import { runReport, type Children, type CoreSet } from './processes.ts';

export interface WrkResult {
  requests: number;
  requestsPerSecond: number;
  /** Milliseconds, from `--latency` (wrk's HdrHistogram, corrected for coordinated omission). */
  p50Ms: number;
  p99Ms: number;
  /** Responses that were not 2xx/3xx: a run with any is not a valid measurement. */
  non2xx: number;
  socketErrors: number;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `812.00us`, `1.23ms`, `2.00s` -> milliseconds. */
export function parseDuration(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (!m) throw new Error(`wrk: unrecognised duration ${JSON.stringify(text)}`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

/** Parse wrk 4's report (run with `--latency`); throws naming the missing line if the format is unexpected. */
export function parseWrkOutput(out: string): WrkResult {
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(out);
  const total = /^\s*(\d+) requests in /m.exec(out);
  const p50 = /^\s+50(?:\.0+)?%\s+(\S+)/m.exec(out);
  const p99 = /^\s+99(?:\.0+)?%\s+(\S+)/m.exec(out);
  if (!rps) throw new Error(`wrk: no "Requests/sec" line in output:\n${out}`);
  if (!total) throw new Error(`wrk: no "N requests in" line in output:\n${out}`);
  if (!p50 || !p99) throw new Error(`wrk: no latency distribution (was --latency given?) in output:\n${out}`);
  const non2xx = /^\s*Non-2xx or 3xx responses:\s+(\d+)/m.exec(out);
  const sock = /^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/m.exec(out);
  return {
    requests: Number(total[1]),
    requestsPerSecond: Number(rps[1]),
    p50Ms: parseDuration(p50[1]!),
    p99Ms: parseDuration(p99[1]!),
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors: sock ? sock.slice(1, 5).reduce((sum, n) => sum + Number(n), 0) : 0,
  };
}

export interface WrkOptions {
  url: string;
  host: string;
  connections: number;
  seconds: number;
  cores: CoreSet;
}

/** Extra time wrk gets to finish on its own before it is killed (it prints its report after the duration). */
const WRK_GRACE_MS = 10_000;

/** Run wrk as one of `children` (so an interrupted bench stops it too) and parse its report. */
export async function runWrk(children: Children, options: WrkOptions): Promise<WrkResult> {
  const args = ['-t1', `-c${options.connections}`, `-d${options.seconds}s`, '--latency', '-H', `Host: ${options.host}`, options.url];
  const out = await runReport(children, 'wrk', ['wrk', ...args], options.cores, options.seconds * 1000 + WRK_GRACE_MS, 'scripts/setup.sh installs it');
  return parseWrkOutput(out);
}
