// Structured JSON logs (pino), one logger per process; modules take a child with their name.
import { pino, type Logger } from 'pino';
import type { LogLevel } from './config.ts';

export type { Logger };

/**
 * Lines are gathered in memory and written in one system call once this many bytes wait, or at the latest after
 * LOG_FLUSH_INTERVAL_MS: a synchronous write per access line cost more than the rest of the gateway's own work.
 */
const LOG_BUFFER_BYTES = 8192;
const LOG_FLUSH_INTERVAL_MS = 100;

/**
 * `level`: LOG_LEVEL from the caller's validated configuration (envLogLevel), so a CONFIG_FILE's value counts and a
 * bad one is reported naming the variable before any logger exists, never as pino's own throw.
 *
 * The destination is asynchronous and buffered (sonic-boom). Nothing is lost when the process exits: pino writes
 * what is still buffered synchronously on `exit` (a SIGTERM ends in process.exit, after the shutdown); only a
 * SIGKILL loses the last LOG_FLUSH_INTERVAL_MS of lines.
 */
export function createLogger(name: string, level: LogLevel): Logger {
  const destination = pino.destination({ dest: 1, sync: false, minLength: LOG_BUFFER_BYTES, periodicFlush: LOG_FLUSH_INTERVAL_MS });
  return pino({ name, level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

/** A logger that drops everything: for tests and embedded use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
