// Orchestrator configuration from the environment, validated once at start (zod). A bad value stops the start
// with a ConfigError naming the variable; nothing here is read per request.
import { z } from 'zod';
import { envListenHost, envLogLevel, loadEnv, parseEnv } from '../shared/config.ts';
import { ConfigError } from '../shared/errors.ts';
import { normaliseBaseDomains } from '../shared/hostname.ts';
import { MIN_SECRET_LENGTH } from '../shared/access-token.ts';

export const DEFAULT_PORT_RANGE = '30000-39999';
export const DEFAULT_ORCHESTRATOR_PORT = 8090;
/** Five days, the seed's retention of provisioning logs. */
export const DEFAULT_LOG_RETENTION = '5d';
export const DEFAULT_LOG_MAX_ENTRIES = 1000;
export const DEFAULT_RECONCILE_INTERVAL_MS = 30_000;
export const DEFAULT_READY_TIMEOUT_MS = 60_000;
export const MIN_ADMIN_TOKEN_LENGTH = 16;

export interface PortRange {
  first: number;
  last: number;
}

export interface OrchestratorConfig {
  /** Pods of this orchestrator carry this label value; others on the same Docker host are not touched. */
  namespace: string;
  /** Docker runtime for pods; `runsc` (gVisor) unless explicitly weakened. */
  runtime: string;
  /** Host address the pod's single port is published on. */
  bindAddress: string;
  /** Address gateways use to reach pod ports (written into routes). */
  hostAddress: string;
  portRange: PortRange;
  adminToken: string;
  adminBind: string;
  /** 0 picks a free port (tests). */
  adminPort: number;
  logRetentionMs: number;
  logMaxEntries: number;
  redisUrl: string | undefined;
  redisPrefix: string;
  baseDomains: string[];
  /** How URLs of pods are shown: scheme and the gateway's public port (omitted when it is the scheme's default). */
  publicScheme: 'http' | 'https';
  publicPort: number | undefined;
  defaultImage: string;
  reconcileIntervalMs: number;
  readyTimeoutMs: number;
  logLevel: string;
  /** ACCESS_SECRET, comma list (first signs): shared with the gateways; empty means generated and shared via the store. */
  accessSecrets: string[];
}

const DURATION = /^(\d+)(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `500ms`, `30s`, `10m`, `12h`, `5d` -> milliseconds. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

export function parsePortRange(text: string): PortRange | undefined {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const first = Number(m[1]);
  const last = Number(m[2]);
  if (first < 1024 || last > 65535 || first > last) return undefined;
  return { first, last };
}

const port = (name: string) =>
  z.coerce.number({ error: `${name} must be a number` }).int().min(0).max(65535);

const EnvSchema = z.object({
  POD_RUNTIME: z.string().regex(/^[a-zA-Z0-9._-]+$/, 'a Docker runtime name').default('runsc'),
  POD_BIND_ADDRESS: z.union([z.ipv4(), z.ipv6()]).default('127.0.0.1'),
  POD_HOST_ADDRESS: z.string().min(1).max(253).default('127.0.0.1'),
  POD_PORT_RANGE: z.string().default(DEFAULT_PORT_RANGE),
  POD_IMAGE: z.string().min(1).default('podgate/pod:dev'),
  POD_NAMESPACE: z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'lowercase letters, digits, . _ -').default('default'),
  POD_READY_TIMEOUT: z.string().default(`${DEFAULT_READY_TIMEOUT_MS}ms`),
  ADMIN_TOKEN: z.string().min(MIN_ADMIN_TOKEN_LENGTH, `at least ${MIN_ADMIN_TOKEN_LENGTH} characters`),
  ORCHESTRATOR_BIND: envListenHost('127.0.0.1'),
  ORCHESTRATOR_PORT: port('ORCHESTRATOR_PORT').default(DEFAULT_ORCHESTRATOR_PORT),
  LOG_RETENTION: z.string().default(DEFAULT_LOG_RETENTION),
  LOG_MAX_ENTRIES: z.coerce.number().int().min(10).max(100_000).default(DEFAULT_LOG_MAX_ENTRIES),
  RECONCILE_INTERVAL: z.string().default(`${DEFAULT_RECONCILE_INTERVAL_MS}ms`),
  REDIS_URL: z.url().optional(),
  REDIS_PREFIX: z.string().max(100).default('podgate:'),
  BASE_DOMAINS: z.string().default('localhost'),
  PUBLIC_SCHEME: z.enum(['http', 'https']).default('http'),
  PUBLIC_PORT: port('PUBLIC_PORT').optional(),
  ACCESS_SECRET: z
    .string()
    .optional()
    .transform((s) => (s ?? '').split(',').map((x) => x.trim()).filter(Boolean))
    .pipe(z.array(z.string().min(MIN_SECRET_LENGTH, `each secret must be at least ${MIN_SECRET_LENGTH} characters`))),
  LOG_LEVEL: envLogLevel,
});

function duration(variable: string, text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) throw new ConfigError(variable, `expected a duration like 30s, 10m or 5d, got ${JSON.stringify(text)}`);
  return ms;
}

/** Read the configuration from an environment (process.env by default, plus CONFIG_FILE). @throws ConfigError */
export function loadConfig(env: Record<string, string | undefined> = process.env): OrchestratorConfig {
  const e = parseEnv(EnvSchema, loadEnv(env));
  const portRange = parsePortRange(e.POD_PORT_RANGE);
  if (!portRange) throw new ConfigError('POD_PORT_RANGE', `expected <first>-<last> within 1024-65535, got ${JSON.stringify(e.POD_PORT_RANGE)}`);
  const baseDomains = normaliseBaseDomains(e.BASE_DOMAINS.split(','));
  if (baseDomains.length === 0) throw new ConfigError('BASE_DOMAINS', 'at least one base domain');
  return {
    namespace: e.POD_NAMESPACE,
    runtime: e.POD_RUNTIME,
    bindAddress: e.POD_BIND_ADDRESS,
    hostAddress: e.POD_HOST_ADDRESS,
    portRange,
    adminToken: e.ADMIN_TOKEN,
    adminBind: e.ORCHESTRATOR_BIND,
    adminPort: e.ORCHESTRATOR_PORT,
    logRetentionMs: duration('LOG_RETENTION', e.LOG_RETENTION),
    logMaxEntries: e.LOG_MAX_ENTRIES,
    redisUrl: e.REDIS_URL,
    redisPrefix: e.REDIS_PREFIX,
    baseDomains,
    publicScheme: e.PUBLIC_SCHEME,
    publicPort: e.PUBLIC_PORT,
    defaultImage: e.POD_IMAGE,
    reconcileIntervalMs: duration('RECONCILE_INTERVAL', e.RECONCILE_INTERVAL),
    readyTimeoutMs: duration('POD_READY_TIMEOUT', e.POD_READY_TIMEOUT),
    logLevel: e.LOG_LEVEL,
    accessSecrets: e.ACCESS_SECRET,
  };
}
