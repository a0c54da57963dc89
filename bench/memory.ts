// Memory of the gateway holding many idle connections: resident memory (VmRSS of the process tree) before and
// after bench/idle-clients.ts opened them, and the difference per connection. Everything is bounded: the
// clients get OPEN_SECONDS to open, and are stopped (or stop themselves after HOLD_SECONDS) once measured.
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fdCount, pinned, treeRssBytes, type Children, type CoreSet } from './processes.ts';

/** Time the clients get to open every connection. */
const OPEN_SECONDS = 120;
/** The clients close everything by themselves after this, whatever happens to the bench. */
const HOLD_SECONDS = 60;
/** Time for the gateway to settle (allocations after the last handshake, a GC) before its memory is read. */
const SETTLE_MS = 2000;
/** Extra time the client process gets beyond its own bounds before it is killed. */
const CLIENT_GRACE_MS = 15_000;

export type IdleMode = 'ws' | 'http';

export interface IdleMemoryResult {
  mode: IdleMode;
  requested: number;
  open: number;
  failed: number;
  /** Why they failed, counted (`status 502`, `error ECONNRESET`, `closed`): empty when none did. */
  failures: Record<string, number>;
  /** Seconds the clients took to open them. */
  openSeconds: number;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  /** (after - before) / open. */
  perConnectionBytes: number | undefined;
  /** File descriptors of the gateway before and after: about 2 per WebSocket (client + pod side), 1 per HTTP client. */
  fdsBefore: number;
  fdsAfter: number;
  /** Connections the server closed while they were held (a keep-alive or idle timeout): should be 0. */
  closedWhileHeld: number;
}

export interface IdleMemoryOptions {
  root: string;
  mode: IdleMode;
  port: number;
  host: string;
  count: number;
  /** The process whose memory is measured (its descendants included). */
  pid: number;
  cores: CoreSet;
  /** Prefix for the client's command line (file-descriptor limit). */
  wrap: (argv: string[]) => string[];
}

/** What bench/idle-clients.ts reports: once opened, then once stopped. */
interface ClientsLine {
  open?: number;
  failed?: number;
  failures?: Record<string, number>;
  seconds?: number;
  closedWhileHeld?: number;
}

/** Lines of JSON the client prints, in order. */
function readJsonLines(child: ChildProcess, onLine: (value: ClientsLine) => void): void {
  let buf = '';
  child.stdout?.on('data', (d: Buffer) => {
    buf += d;
    for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) onLine(JSON.parse(line) as ClientsLine);
    }
  });
}

export async function measureIdleMemory(children: Children, o: IdleMemoryOptions): Promise<IdleMemoryResult> {
  const rssBefore = treeRssBytes(o.pid);
  const fdsBefore = fdCount(o.pid);
  const argv = [process.execPath, join(o.root, 'bench/idle-clients.ts'), o.mode, String(o.port), o.host, String(o.count), String(OPEN_SECONDS), String(HOLD_SECONDS)];
  const child = children.start(`idle ${o.mode} clients`, pinned(o.cores, o.wrap(argv)), { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: ClientsLine[] = [];
  let wake: (() => void) | undefined;
  readJsonLines(child, (v) => {
    lines.push(v);
    wake?.();
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const killer = setTimeout(() => child.kill('SIGKILL'), (OPEN_SECONDS + HOLD_SECONDS) * 1000 + CLIENT_GRACE_MS);
  try {
    const nextLine = (n: number) =>
      new Promise<void>((resolve, reject) => {
        if (lines.length >= n) return resolve();
        wake = () => lines.length >= n && resolve();
        void exited.then((code) => (lines.length >= n ? resolve() : reject(new Error(`idle-clients exited with ${code} before reporting`))));
      });
    await nextLine(1);
    const opened = lines[0]!;
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const rssAfter = treeRssBytes(o.pid);
    const fdsAfter = fdCount(o.pid);
    child.kill('SIGTERM');
    await nextLine(2);
    await exited;
    const open = opened.open ?? 0;
    return {
      mode: o.mode,
      requested: o.count,
      open,
      failed: opened.failed ?? 0,
      failures: opened.failures ?? {},
      openSeconds: Math.round((opened.seconds ?? 0) * 10) / 10,
      rssBeforeBytes: rssBefore,
      rssAfterBytes: rssAfter,
      perConnectionBytes: open > 0 ? Math.round((rssAfter - rssBefore) / open) : undefined,
      fdsBefore,
      fdsAfter,
      closedWhileHeld: lines[1]?.closedWhileHeld ?? 0,
    };
  } finally {
    clearTimeout(killer);
    if (child.exitCode === null) await children.stop(child);
  }
}
