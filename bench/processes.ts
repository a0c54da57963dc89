// Child processes of the benchmark: CPU pinning, free ports, readiness polling, and one registry that kills
// everything the bench started, whatever way it ends.
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { waitFor } from '../test/support/wait.ts';

/** CPU cores a process is pinned to (`taskset -c`), or `any` for the scheduler's choice. */
export type CoreSet = number[] | 'any';

/** Prefix a command line with `taskset -c` when it is pinned. */
export function pinned(cores: CoreSet, argv: string[]): string[] {
  return cores === 'any' ? argv : ['taskset', '-c', cores.join(','), ...argv];
}

export function describeCores(cores: CoreSet): string {
  return cores === 'any' ? 'any core' : `core ${cores.join(',')}`;
}

/** A loopback port nothing listens on right now (listen on 0, keep the number, close). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** One GET on a fresh connection: status and body, or undefined if nothing answered. */
export function httpGet(port: number, host: string, path = '/'): Promise<{ status: number; body: string } | undefined> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', () => resolve(undefined));
    });
    req.setTimeout(2000, () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

/** True once something accepts TCP connections on 127.0.0.1:`port` (a TLS listener, which plain HTTP cannot probe). */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.setTimeout(2000, () => s.destroy());
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('close', () => resolve(false));
  });
}

const STOP_GRACE_MS = 5000;

/** Every process the bench starts goes through here, so `stopAll` can end them all (also on failure). */
/**
 * Run a load generator (wrk, h2load) as one of `children`, pinned to `cores`, and resolve with its report (stdout)
 * once it exits 0. It is killed when it overruns `timeoutMs`; a failure to start names `installHint`.
 */
export function runReport(children: Children, name: string, argv: string[], cores: CoreSet, timeoutMs: number, installHint: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = children.start(name, pinned(cores, argv), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d));
    child.stderr?.on('data', (d: Buffer) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${name} could not start (${installHint}): ${e.message}`));
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`${name} exited with ${code}: ${err || out}`));
      else resolve(out);
    });
  });
}

export class Children {
  private readonly live = new Set<ChildProcess>();

  /** `quietExitCodes`: exit codes the caller handles itself (no "exited with" report for them). */
  start(name: string, argv: string[], options: SpawnOptions & { quietExitCodes?: number[] } = {}): ChildProcess {
    const { quietExitCodes = [], ...spawnOptions } = options;
    const [cmd, ...args] = argv;
    // Its own process group, so stopping it also stops what it started (nginx's and the gateway's workers would
    // otherwise outlive a killed master).
    const child = spawn(cmd!, args, { stdio: ['ignore', 'ignore', 'pipe'], ...spawnOptions, detached: true });
    this.live.add(child);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d).slice(-4000);
    });
    child.once('error', (e) => {
      process.stderr.write(`bench: ${name} could not start: ${e.message}\n`);
    });
    child.once('exit', (code, signal) => {
      this.live.delete(child);
      if (code && !quietExitCodes.includes(code) && !(child as ChildProcess & { stopping?: boolean }).stopping) {
        process.stderr.write(`bench: ${name} exited with ${code ?? signal}\n${stderr}\n`);
      }
    });
    return child;
  }

  /** SIGTERM, then SIGKILL after a grace period; resolves when the process is gone. */
  async stop(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    (child as ChildProcess & { stopping?: boolean }).stopping = true;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    signalGroup(child, 'SIGTERM');
    const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), STOP_GRACE_MS);
    await gone;
    clearTimeout(timer);
    // Workers that outlived their master (it exited first) go with their group.
    signalGroup(child, 'SIGKILL');
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.live].map((c) => this.stop(c)));
  }

  /** Synchronous last resort (process exit handlers cannot await). */
  killAllNow(): void {
    for (const c of this.live) signalGroup(c, 'SIGKILL');
  }
}

/** Signal a child's whole process group (it leads one: spawned detached). */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // the group is already gone
  }
}

/** Wait until `port` answers `host` with 200 (and, if given, the expected body). */
export async function waitServing(port: number, host: string, what: string, body?: string, path = '/'): Promise<void> {
  await waitFor(
    async () => {
      const res = await httpGet(port, host, path);
      return res?.status === 200 && (body === undefined || res.body === body);
    },
    { timeoutMs: 15_000, intervalMs: 50, what },
  );
}

/** Kernel clock ticks per second, the unit of /proc/<pid>/stat times (USER_HZ: 100 on every Linux port). */
const CLOCK_TICKS_PER_SECOND = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

interface ProcStat {
  ppid: number;
  /** utime + stime, in ticks. */
  ticks: number;
}

/** Parse /proc/<pid>/stat (pure); the command name in parentheses may itself hold spaces and parentheses. */
export function parseProcStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  if (close === -1) return undefined;
  // Fields after the name start at field 3 (state): ppid is field 4, utime 14, stime 15.
  const f = text.slice(close + 2).split(' ');
  const ppid = Number(f[1]);
  const ticks = Number(f[11]) + Number(f[12]);
  return Number.isFinite(ppid) && Number.isFinite(ticks) ? { ppid, ticks } : undefined;
}

/** `pid` and its live descendants (nginx's workers, the gateway's cluster workers), each with its stat. */
function processTree(pid: number): Map<number, ProcStat> {
  const stats = new Map<number, ProcStat>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const s = parseProcStat(readFileSync(`/proc/${entry}/stat`, 'utf8'));
      if (s) stats.set(Number(entry), s);
    } catch {
      // the process ended while we listed it
    }
  }
  const tree = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [p, s] of stats) {
      if (!tree.has(p) && tree.has(s.ppid)) {
        tree.add(p);
        grew = true;
      }
    }
  }
  return new Map([...tree].filter((p) => stats.has(p)).map((p) => [p, stats.get(p)!]));
}

/**
 * CPU seconds used so far by `pid` and its live descendants.
 * Used to report requests per CPU-second, which holds up when other work on a shared machine steals the core.
 */
export function treeCpuSeconds(pid: number): number {
  let ticks = 0;
  for (const s of processTree(pid).values()) ticks += s.ticks;
  return ticks / CLOCK_TICKS_PER_SECOND;
}

/** Resident set size in bytes from /proc/<pid>/status (pure); undefined without a VmRSS line. */
export function parseVmRss(status: string): number | undefined {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  return m ? Number(m[1]) * 1024 : undefined;
}

/** Resident memory of `pid` and its live descendants, bytes (shared pages counted once per process). */
export function treeRssBytes(pid: number): number {
  let bytes = 0;
  for (const p of processTree(pid).keys()) {
    try {
      bytes += parseVmRss(readFileSync(`/proc/${p}/status`, 'utf8')) ?? 0;
    } catch {
      // gone meanwhile
    }
  }
  return bytes;
}

/** Open file descriptors of `pid` (sockets included). */
export function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

/** The hard RLIMIT_NOFILE of this process (what children inherit and Node raises its soft limit to). */
export function hardFdLimit(): number {
  const r = spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return r.stdout?.trim() === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number.isFinite(n) && n > 0 ? n : 1024;
}

/**
 * Run `argv` with RLIMIT_NOFILE `n` (soft and hard) through util-linux `prlimit`. Returns undefined when that is not
 * possible here: above the current hard limit it needs CAP_SYS_RESOURCE, which root in a container may lack.
 */
export function withFdLimit(n: number, argv: string[]): string[] | undefined {
  const prefix = ['prlimit', `--nofile=${n}:${n}`, '--'];
  if (!fdLimitWorks.has(n)) fdLimitWorks.set(n, spawnSync(prefix[0]!, [...prefix.slice(1), 'true']).status === 0);
  return fdLimitWorks.get(n) ? [...prefix, ...argv] : undefined;
}
const fdLimitWorks = new Map<number, boolean>();
