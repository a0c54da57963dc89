// Structured JSON logs (pino), one logger per process; modules take a child with their name.
import { pino, type Logger } from 'pino';
import { z } from 'zod';
import { envLogLevel, parseEnv } from './config.ts';

export type { Logger };

/**
 * `level`: LOG_LEVEL from the caller's validated configuration (envLogLevel), so a CONFIG_FILE's value counts and a
 * bad one is reported naming the variable before any logger exists. Without it (the all-in-one main.ts for now),
 * LOG_LEVEL is read from the environment through the same schema: a ConfigError naming it, never pino's own throw.
 */
export function createLogger(name: string, level?: string): Logger {
  const chosen = level ?? parseEnv(z.object({ LOG_LEVEL: envLogLevel }), process.env).LOG_LEVEL;
  return pino({ name, level: chosen, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
}

/** A logger that drops everything: for tests and embedded use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
