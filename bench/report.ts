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
  /** The nginx case this one is compared with (gateway cases only). */
  versus?: string;
  ratio?: number;
  /** Ratio of requestsPerCpuSecond to the compared case's. */
  cpuRatio?: number;
  non2xx: number;
  socketErrors: number;
  /** Each round's figures (the table shows their medians). */
  rounds: { requestsPerSecond: number; p50Ms: number; p99Ms: number; cpuSeconds: number }[];
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
  };
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

export function httpTable(rows: HttpCaseResult[]): string {
  const header = `${pad('case', 24)} ${pad('placement', 20)} ${pad('req/s', 8, true)} ${pad('req/CPU-s', 10, true)} ${pad('p50 ms', 7, true)} ${pad('p99 ms', 7, true)}  ratio (req/s; per CPU-s)`;
  const lines = rows.map((r) => {
    const ratio = r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}x; ${r.cpuRatio?.toFixed(2) ?? '?'}x  vs ${r.versus}`;
    const bad = r.non2xx || r.socketErrors ? `  (!) ${r.non2xx} non-2xx, ${r.socketErrors} socket errors` : '';
    const perCpu = r.requestsPerCpuSecond === undefined ? '?' : fmt(r.requestsPerCpuSecond);
    return `${pad(r.name, 24)} ${pad(r.placement, 20)} ${pad(fmt(r.requestsPerSecond), 8, true)} ${pad(perCpu, 10, true)} ${pad(fmt(r.p50Ms, 2), 7, true)} ${pad(fmt(r.p99Ms, 2), 7, true)}  ${ratio}${bad}`;
  });
  return [header, '-'.repeat(header.length + 8), ...lines].join('\n');
}

export function wsTable(rows: WsCaseResult[]): string {
  const header = `${pad('case', 22)} ${pad('placement', 20)} ${pad('msg/s', 8, true)}  ratio`;
  const lines = rows.map(
    (r) =>
      `${pad(r.name, 22)} ${pad(r.placement, 20)} ${pad(fmt(r.messagesPerSecond), 8, true)}  ${r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}x direct`}${r.errors ? `  (!) ${r.errors} errors` : ''}`,
  );
  return [header, '-'.repeat(header.length + 12), ...lines].join('\n');
}
