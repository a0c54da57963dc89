// Configuration from the environment (and an optional JSON file), validated with zod once at start.
// A bad value stops the process with a message naming the variable.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { z } from 'zod';
import { ConfigError } from './errors.ts';
import { sentinelDefaultUrl, type RedisConnection, type SentinelSettings } from './redis.ts';

/** `text` with the password of every `scheme://user:password@` in it replaced by `***` (for messages and logs). */
export function withoutPassword(text: string): string {
  return text.replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^/@:\s]*):\S*@/gi, '$1:***@');
}

/** Parse `env` with a zod object schema whose keys are the variable names. */
export function parseEnv<S extends z.ZodObject>(schema: S, env: Record<string, string | undefined>): z.infer<S> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const variable = String(issue.path[0] ?? 'environment');
  const value = env[variable];
  // A URL's password (REDIS_URL) never reaches the message.
  const clean = value === undefined ? undefined : withoutPassword(value);
  const shown = clean === undefined ? 'unset' : JSON.stringify(clean.length > 80 ? `${clean.slice(0, 80)}...` : clean);
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
  .refine((url) => URL.canParse(url), 'must be a URL: redis[s]://[[user]:password@]host[:port][/db], with special characters of the password %-encoded')
  .optional()
  .or(z.literal('').transform(() => undefined));
/** REDIS_TLS_CA: a PEM file path (read by redisConnection). */
export const envRedisTlsCa = z
  .string()
  .optional()
  .transform((s) => s || undefined);

/**
 * REDIS_URL, REDIS_TLS_CA and the sentinel settings as one connection; the CA file is read now, so a wrong path
 * stops the start naming it. With sentinels, REDIS_URL (credentials, TLS, database) is optional.
 * @throws ConfigError naming REDIS_TLS_CA
 */
export function redisConnection(givenUrl: string | undefined, caFile: string | undefined, sentinel?: SentinelSettings): RedisConnection | undefined {
  const url = givenUrl ?? (sentinel ? sentinelDefaultUrl(sentinel.name) : undefined);
  if (caFile !== undefined && !url?.startsWith('rediss://')) {
    throw new ConfigError('REDIS_TLS_CA', `only used with REDIS_URL=rediss://... (TLS); REDIS_URL is ${url === undefined ? 'unset' : 'redis:// (no TLS)'}`);
  }
  if (url === undefined) return undefined;
  if (caFile === undefined) return { url, sentinel };
  let ca: Buffer;
  try {
    ca = readFileSync(caFile);
  } catch (err) {
    throw new ConfigError('REDIS_TLS_CA', `cannot read ${caFile}: ${(err as Error).message}`);
  }
  if (!ca.toString('latin1').includes('-----BEGIN CERTIFICATE-----')) {
    throw new ConfigError('REDIS_TLS_CA', `${caFile} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  return { url, ca, sentinel };
}
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
