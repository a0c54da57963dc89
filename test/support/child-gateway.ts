// The gateway as a separate process (`node gateway/main.ts`), for tests that need what only a process has:
// its own memory to measure, signals, exit codes, and a crash that cannot take the test runner with it.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { waitFor } from './wait.ts';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const STARTUP_TIMEOUT_MS = 30_000;

export interface ChildLogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ChildGateway {
  child: ChildProcess;
  pid: number;
  httpPort: number;
  adminPort: number;
  url: string;
  adminUrl: string;
  /** Every JSON line the process printed on stdout, parsed. */
  logs: ChildLogLine[];
  /** Lines on stdout that were not JSON (there should be none). */
  otherStdout: string[];
  stderr(): string;
  /** Resolves when the process has exited. */
  exited: Promise<ChildExit>;
  /** Resident memory of the process now, in bytes (from /proc/<pid>/status). */
  rss(): number;
  /** SIGKILL if still running; for cleanup. */
  kill(): Promise<void>;
}

/** The environment handed to the child: only what it needs, so the developer's own settings never leak in. */
function childEnv(env: Record<string, string>): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/tmp',
    HTTP_PORT: '0',
    HTTP_HOST: '127.0.0.1',
    ADMIN_PORT: '0',
    ...env,
  };
}

function launch(env: Record<string, string>) {
  const child = spawn(process.execPath, ['gateway/main.ts'], {
    cwd: REPO_ROOT,
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<ChildExit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => (stderr += s));
  return { child, exited, stderr: () => stderr };
}

/** Start a gateway process and wait until it reports its listening ports. */
export async function spawnGateway(env: Record<string, string>): Promise<ChildGateway> {
  const { child, exited, stderr } = launch(env);
  const logs: ChildLogLine[] = [];
  const otherStdout: string[] = [];
  let pending = '';
  let exitedEarly = false;
  void exited.then(() => (exitedEarly = true));
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (s: string) => {
    pending += s;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      if (!line) continue;
      try {
        logs.push(JSON.parse(line));
      } catch {
        otherStdout.push(line);
      }
    }
  });
  const listening = () => logs.find((l) => l.msg === 'gateway listening');
  try {
    await waitFor(() => exitedEarly || listening() !== undefined, { timeoutMs: STARTUP_TIMEOUT_MS, what: 'the gateway process to listen' });
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  const ready = listening();
  if (!ready) throw new Error(`gateway process exited during start: ${stderr()}`);
  const httpPort = ready.httpPort as number;
  const adminPort = ready.adminPort as number;
  const pid = child.pid!;
  return {
    child,
    pid,
    httpPort,
    adminPort,
    url: `http://127.0.0.1:${httpPort}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    logs,
    otherStdout,
    stderr,
    exited,
    rss() {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status);
      if (!kb) throw new Error(`no VmRSS in /proc/${pid}/status`);
      return Number(kb[1]) * 1024;
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Run a gateway process that is expected to stop by itself (bad configuration); returns its exit and stderr. */
export async function runGatewayToExit(env: Record<string, string>, timeoutMs = STARTUP_TIMEOUT_MS): Promise<ChildExit & { stderr: string }> {
  const { child, exited, stderr } = launch(env);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const result = await exited;
  clearTimeout(timer);
  return { ...result, stderr: stderr() };
}
