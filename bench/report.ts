// Formatting of the benchmark's results (pure): the console table and the machine description.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

export interface HttpCaseResult {
  name: string;
  /** Where the process under test ran, e.g. "core 1" or "any core, 2 workers". */
  placement: string;
  requestsPerSecond: number;
  /** Requests per CPU-second of the process under test: robust to other load stealing its core. */
  requestsPerCpuSecond: number | undefined;
  cpuSeconds: number;
  p50Ms: number;
  p99Ms: number;
  /** Ratios to other cases: first to nginx (the same placement), then e.g. the gateway to Caddy. */
  comparisons: Comparison[];
  non2xx: number;
  socketErrors: number;
  /** Each round's figures (the table shows their medians). */
  rounds: { requestsPerSecond: number; p50Ms: number; p99Ms: number; cpuSeconds: number }[];
}

export interface Comparison {
  versus: string;
  /** req/s over the compared case's. */
  ratio: number | undefined;
  /** req/CPU-s over the compared case's. */
  cpuRatio: number | undefined;
  /** p99 over the compared case's (below 1: better). */
  p99Ratio: number | undefined;
}

export interface WsCaseResult {
  name: string;
  placement: string;
  messagesPerSecond: number;
  errors: number;
  ratio?: number;
}

export interface Machine {
  date: string;
  cores: number;
  cpu: string;
  node: string;
  nginx: string;
  wrk: string;
  /** Versions of the other peers and load tools, e.g. "caddy v2.6.2", "h2load nghttp2/1.52.0". */
  tools: string[];
}

/** First line a tool prints about its version (nginx and wrk print it on stderr; wrk -v exits 1). */
function versionLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').find((l) => l.trim())?.trim() ?? 'unknown';
}

export function describeMachine(): Machine {
  let cpu = 'unknown';
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? 'unknown';
  } catch {
    // not Linux: leave unknown
  }
  return {
    date: new Date().toISOString(),
    cores: availableParallelism(),
    cpu,
    node: process.version,
    nginx: versionLine('nginx', ['-v']),
    wrk: versionLine('wrk', ['-v']),
    tools: [`caddy ${versionLine('caddy', ['version'])}`, versionLine('haproxy', ['-v']), versionLine('h2load', ['--version'])],
  };
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

function comparisonText(cs: Comparison[]): string {
  const x = (n: number | undefined) => (n === undefined ? '?' : `${n.toFixed(2)}x`);
  return cs.map((c) => `${x(c.ratio)}; ${x(c.cpuRatio)}; p99 ${x(c.p99Ratio)} vs ${c.versus}`).join(' | ');
}

export function httpTable(rows: HttpCaseResult[]): string {
  const header = `${pad('case', 26)} ${pad('placement', 20)} ${pad('req/s', 8, true)} ${pad('req/CPU-s', 10, true)} ${pad('p50 ms', 7, true)} ${pad('p99 ms', 7, true)}  ratio (req/s; per CPU-s; p99)`;
  const lines = rows.map((r) => {
    const bad = r.non2xx || r.socketErrors ? `  (!) ${r.non2xx} non-2xx, ${r.socketErrors} socket errors` : '';
    const perCpu = r.requestsPerCpuSecond === undefined ? '?' : fmt(r.requestsPerCpuSecond);
    return `${pad(r.name, 26)} ${pad(r.placement, 20)} ${pad(fmt(r.requestsPerSecond), 8, true)} ${pad(perCpu, 10, true)} ${pad(fmt(r.p50Ms, 2), 7, true)} ${pad(fmt(r.p99Ms, 2), 7, true)}  ${comparisonText(r.comparisons)}${bad}`;
  });
  return [header, '-'.repeat(header.length + 8), ...lines].join('\n');
}

export interface MemoryRow {
  name: string;
  open: number;
  requested: number;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  perConnectionBytes: number | undefined;
  fdsAfter: number;
  closedWhileHeld: number;
  failed: number;
  failures?: Record<string, number>;
}

const mb = (bytes: number) => fmt(bytes / 1_048_576, 1);

export function memoryTable(rows: MemoryRow[]): string {
  const header = `${pad('case', 42)} ${pad('open', 7, true)} ${pad('RSS before MB', 14, true)} ${pad('RSS after MB', 13, true)} ${pad('per conn KB', 12, true)} ${pad('fds', 7, true)}`;
  const lines = rows.map((r) => {
    const per = r.perConnectionBytes === undefined ? '?' : fmt(r.perConnectionBytes / 1024, 1);
    const why = Object.entries(r.failures ?? {}).map(([k, n]) => `${n} ${k}`).join(', ');
    const bad = r.failed || r.closedWhileHeld ? `  (!) ${r.failed} failed to open${why ? ` (${why})` : ''}, ${r.closedWhileHeld} closed while held` : '';
    return `${pad(r.name, 42)} ${pad(`${fmt(r.open)}`, 7, true)} ${pad(mb(r.rssBeforeBytes), 14, true)} ${pad(mb(r.rssAfterBytes), 13, true)} ${pad(per, 12, true)} ${pad(fmt(r.fdsAfter), 7, true)}${bad}`;
  });
  return [header, '-'.repeat(header.length), ...lines].join('\n');
}

export function wsTable(rows: WsCaseResult[]): string {
  const header = `${pad('case', 22)} ${pad('placement', 20)} ${pad('msg/s', 8, true)}  ratio`;
  const lines = rows.map(
    (r) =>
      `${pad(r.name, 22)} ${pad(r.placement, 20)} ${pad(fmt(r.messagesPerSecond), 8, true)}  ${r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}x direct`}${r.errors ? `  (!) ${r.errors} errors` : ''}`,
  );
  return [header, '-'.repeat(header.length + 12), ...lines].join('\n');
}
