// Runs h2load (Debian's nghttp2-client: HTTP/2 load over TLS) and parses its report and per-request log. The
// parsers are pure so they are unit-tested on recorded output; the runner only spawns the process.
import { readFileSync, rmSync } from 'node:fs';
import { runReport, type Children, type CoreSet } from './processes.ts';
import { percentile } from './stats.ts';

export interface H2loadResult {
  requests: number;
  requestsPerSecond: number;
  /** Milliseconds, from the per-request log (h2load's report has no percentiles). Closed loop: no correction for coordinated omission, unlike wrk's. */
  p50Ms: number;
  p99Ms: number;
  /** Requests that were not 2xx, failed, errored or timed out: a run with any is not a valid measurement. */
  bad: number;
  /** ALPN protocol h2load negotiated (must be h2). */
  protocol: string;
}

/** Parse h2load's text report (nghttp2 1.52). Throws naming the missing line. */
export function parseH2loadOutput(out: string): Omit<H2loadResult, 'p50Ms' | 'p99Ms'> {
  const rps = /^finished in [\d.]+m?s, ([\d.]+) req\/s/m.exec(out);
  const req = /^requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/m.exec(out);
  const codes = /^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/m.exec(out);
  const proto = /^Application protocol: (\S+)/m.exec(out);
  if (!rps) throw new Error(`h2load: no "finished in ... req/s" line in output:\n${out}`);
  if (!req) throw new Error(`h2load: no "requests:" line in output:\n${out}`);
  if (!codes) throw new Error(`h2load: no "status codes:" line in output:\n${out}`);
  const failed = Number(req[3]) + Number(req[4]) + Number(req[5]);
  const not2xx = Number(codes[2]) + Number(codes[3]) + Number(codes[4]);
  return {
    // Succeeded, not the 2xx count: status codes also count responses that arrived after the measured window.
    requests: Number(req[2]),
    requestsPerSecond: Number(rps[1]),
    bad: not2xx + failed,
    protocol: proto?.[1] ?? 'none',
  };
}

/** p50/p99 in ms from h2load's `--log-file` (tab-separated: start µs, status, µs until the end of the response). */
export function latencyFromLog(log: string): { p50Ms: number; p99Ms: number } {
  const micros: number[] = [];
  for (const line of log.split('\n')) {
    const us = Number(line.split('\t')[2]);
    if (line && Number.isFinite(us)) micros.push(us);
  }
  return { p50Ms: percentile(micros, 50) / 1000, p99Ms: percentile(micros, 99) / 1000 };
}

export interface H2loadOptions {
  /** `https://127.0.0.1:<port>/`: h2load sends no SNI to an IP address, so the server's default certificate answers. */
  url: string;
  /** Sent as `:authority` (the gateway routes by it). */
  authority: string;
  clients: number;
  streams: number;
  seconds: number;
  cores: CoreSet;
  /** Where the per-request log is written (removed after parsing). */
  logFile: string;
}

/** Extra time h2load gets to finish on its own before it is killed. */
const H2LOAD_GRACE_MS = 15_000;

/** Run h2load as one of `children` and parse its report and log. */
export async function runH2load(children: Children, o: H2loadOptions): Promise<H2loadResult> {
  const args = ['-t1', `-c${o.clients}`, `-m${o.streams}`, `-D${o.seconds}`, '-H', `:authority: ${o.authority}`, `--log-file=${o.logFile}`, o.url];
  try {
    const out = await runReport(children, 'h2load', ['h2load', ...args], o.cores, o.seconds * 1000 + H2LOAD_GRACE_MS, 'scripts/setup.sh installs nghttp2-client');
    return { ...parseH2loadOutput(out), ...latencyFromLog(readFileSync(o.logFile, 'utf8')) };
  } finally {
    rmSync(o.logFile, { force: true });
  }
}
