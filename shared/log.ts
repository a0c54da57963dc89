// Structured JSON logs (pino), one logger per process; modules take a child with their name.
import { pino, type Logger } from 'pino';
import type { LogLevel } from './config.ts';

export type { Logger };

/**
 * `level`: LOG_LEVEL from the caller's validated configuration (envLogLevel), so a CONFIG_FILE's value counts and a
 * bad one is reported naming the variable before any logger exists, never as pino's own throw.
 */
export function createLogger(name: string, level: LogLevel): Logger {
  return pino({ name, level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
}

/** A logger that drops everything: for tests and embedded use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
