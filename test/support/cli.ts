// Test helpers for the CLI (not used by the CLI itself): run bin/podgate as a real child process, as a user does,
// with an environment of the test's own (never the test runner's: it may hold real tokens).
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/podgate', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Calls answer within seconds; pods create waits for a gVisor pod (about a second here, minutes when loaded). */
const RUN_TIMEOUT_MS = 150_000;

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment children get: PATH (a Node >= 22.19 is first on it under vitest), HOME, and `env`. */
export function childEnv(home: string, env: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: home, ...env };
}

function collect(child: ChildProcess, input?: string): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  if (input !== undefined) child.stdin?.end(input);
  else child.stdin?.end();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `podgate <args>` with pipes for stdin, stdout and stderr (none of them a terminal). */
export function podgate(args: string[], env: NodeJS.ProcessEnv, input?: string): Promise<CliResult> {
  return collect(spawn(BIN, args, { env, cwd: ROOT, stdio: 'pipe' }), input);
}

/** A `podgate` that keeps running (logs -f): the child, and its output so far. */
export function podgateRunning(args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; output: () => CliResult; done: Promise<CliResult> } {
  const child = spawn(BIN, args, { env, cwd: ROOT, stdio: 'pipe' });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
  return { child, output: () => ({ code: child.exitCode, stdout, stderr }), done };
}

/**
 * `podgate <args>` on a pseudo-terminal (util-linux `script`), as in an admin's shell: stdout and stderr are the
 * terminal, merged into `stdout`. The arguments go on script's command line, so they never carry a token.
 */
export function podgateOnTerminal(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  const quoted = [BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return collect(spawn('script', ['--quiet', '--return', '--command', quoted, '/dev/null'], { env, cwd: ROOT, stdio: 'pipe' }));
}
