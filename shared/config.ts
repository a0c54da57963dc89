// Configuration from the environment (and an optional JSON file), validated with zod once at start.
// A bad value stops the process with a message naming the variable.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { z } from 'zod';
import { ConfigError } from './errors.ts';

/** Parse `env` with a zod object schema whose keys are the variable names. */
export function parseEnv<S extends z.ZodObject>(schema: S, env: Record<string, string | undefined>): z.infer<S> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const variable = String(issue.path[0] ?? 'environment');
  const value = env[variable];
  const shown = value === undefined ? 'unset' : JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}...` : value);
  throw new ConfigError(variable, `${issue.message} (got ${shown})`);
}

/**
 * The environment, with defaults from the JSON file named by CONFIG_FILE (if any) underneath it:
 * the file holds `{ "VARIABLE": "value" }` pairs, and the environment wins.
 */
export function loadEnv(env: Record<string, string | undefined> = process.env): Record<string, string | undefined> {
  const file = env.CONFIG_FILE;
  if (!file) return env;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError('CONFIG_FILE', `cannot read ${file}: ${(err as Error).message}`);
  }
  const values = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).safeParse(parsed);
  if (!values.success) throw new ConfigError('CONFIG_FILE', `${file} must be a JSON object of VARIABLE: value`);
  const fromFile = Object.fromEntries(Object.entries(values.data).map(([k, v]) => [k, String(v)]));
  return { ...fromFile, ...env };
}

// Reusable field schemas (environment values are strings).
export const envPort = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);
export const envMs = (fallback: number) => z.coerce.number().int().min(0).max(2_147_483_647).default(fallback);
export const envList = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean));
export const envBool = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'])
    .default(fallback ? 'true' : 'false')
    .transform((v) => ['true', '1', 'yes', 'on'].includes(v));
export const envRedisUrl = z
  .string()
  .regex(/^rediss?:\/\//, 'must start with redis:// or rediss://')
  .optional()
  .or(z.literal('').transform(() => undefined));
export const envRedisPrefix = z.string().regex(/^[\w:.-]{1,64}$/, 'letters, digits, _ : . - (at most 64)').default('podgate:');

/** A DNS name: dot-separated labels of letters, digits and inner hyphens, 253 characters at most. */
export const DOMAIN_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/**
 * An address to listen on: an IP literal (IPv6 without brackets) or a host name, resolved when listening.
 * Checked here so a typo stops the start with the variable named instead of a stack trace out of listen().
 */
export const envListenHost = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .refine((host) => isIP(host) !== 0 || DOMAIN_NAME.test(host), 'must be an IP address (IPv6 without brackets) or a host name');

/** pino's levels. Anything else made pino throw at start with a stack trace that never named LOG_LEVEL. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const envLogLevel = z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info');

/**
 * A listener that cannot start (port taken or privileged, address not on this machine, name not resolving) is a
 * setting to fix: a ConfigError naming it, reported like every other configuration error instead of a stack trace.
 */
export function listenError(err: NodeJS.ErrnoException, host: string, port: number, variables: { host: string; port: string }): ConfigError {
  const portProblem = err.code === 'EADDRINUSE' || err.code === 'EACCES';
  return new ConfigError(portProblem ? variables.port : variables.host, `cannot listen on ${host}:${port}: ${err.message}`);
}
