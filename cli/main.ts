#!/usr/bin/env node
// Entry point of `podgate` (bin/podgate runs it with Node >= 22.19): parses the command line, runs the command,
// and turns what went wrong into a message on stderr and an exit code: 1 for a refused or failed call (with the
// API's message, code and field), 2 for usage.
import { CommanderError } from 'commander';
import { ApiError, TransportError } from './client.ts';
import { processCtx, UsageError } from './context.ts';
import { json, printable, processOut } from './output.ts';
import { buildProgram } from './program.ts';
import { PodNotReadyError } from './pods.ts';
import { SettingsError } from './settings.ts';

export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** The line (or JSON object, with --json) stderr gets for a failure. */
export function describeFailure(err: unknown, asJson: boolean): string {
  if (err instanceof ApiError) {
    if (asJson) return json({ error: { status: err.status, code: err.code, message: err.message, ...(err.field ? { field: err.field } : {}) } });
    const field = err.field ? `, field ${err.field}` : '';
    return `podgate: ${printable(err.message)} (HTTP ${err.status} ${err.code}${field})\n`;
  }
  const known = err instanceof SettingsError || err instanceof TransportError || err instanceof PodNotReadyError || err instanceof UsageError;
  const message = known ? (err as Error).message : `unexpected error: ${err instanceof Error ? err.message : String(err)}`;
  const code = err instanceof SettingsError ? 'settings' : err instanceof TransportError ? 'unreachable' : err instanceof PodNotReadyError ? 'pod_not_ready' : err instanceof UsageError ? 'usage' : 'internal';
  return asJson ? json({ error: { code, message } }) : `podgate: ${printable(message)}\n`;
}

export async function run(argv: string[]): Promise<number> {
  const out = processOut();
  let exitCode = 0;
  let asJson = false;
  const program = buildProgram(
    (options) => {
      asJson = options.json === true;
      return processCtx(process.env, out, options);
    },
    (code) => (exitCode = code),
  );
  // Ctrl-C while a create waits: end the progress line first, so the shell prompt starts on a clean line.
  process.once('SIGINT', () => {
    out.progressDone();
    process.exit(130);
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (err) {
    out.progressDone();
    if (err instanceof CommanderError) {
      // Help and version are CommanderErrors too, with exit code 0; the parser has printed its message.
      return err.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    out.stderr(describeFailure(err, asJson));
    return err instanceof UsageError ? EXIT_USAGE : EXIT_FAILURE;
  }
}

if (import.meta.main) {
  // `podgate pods ls | head`: the reader went away, and there is nobody left to tell.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  // process.exitCode rather than exit(): stdout is flushed first when it is a pipe.
  run(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
