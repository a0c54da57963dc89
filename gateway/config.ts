// Gateway settings: environment variables (see README "Configuration"), validated once at start.
import { BlockList, isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { DOMAIN_NAME, envBool, envList, envListenHost, envLogLevel, envMs, envPort, envRedisPrefix, envRedisTlsCa, envRedisUrl, parseEnv, redisConnection } from '../shared/config.ts';
import { ConfigError } from '../shared/errors.ts';
import { normaliseBaseDomains } from '../shared/hostname.ts';
import { MIN_SECRET_LENGTH } from '../shared/access-token.ts';
import { MIN_ADMIN_TOKEN_LENGTH } from '../shared/admin-token.ts';
import { envRedisSentinel, sentinelSettings, type RedisConnection } from '../shared/redis.ts';

const GatewayEnv = z.object({
  HTTP_PORT: envPort(8080),
  HTTP_HOST: envListenHost('0.0.0.0'),
  BASE_DOMAINS: envList('localhost').pipe(
    z.array(z.string().regex(DOMAIN_NAME, 'each entry must be a domain name')).min(1, 'at least one base domain'),
  ),
  REDIS_URL: envRedisUrl,
  REDIS_TLS_CA: envRedisTlsCa,
  REDIS_PREFIX: envRedisPrefix,
  /** REDIS_SENTINELS, REDIS_SENTINEL_NAME, REDIS_SENTINEL_USERNAME, REDIS_SENTINEL_PASSWORD: Redis through Sentinel. */
  ...envRedisSentinel,
  ADMIN_PORT: envPort(9090),
  ADMIN_HOST: envListenHost('127.0.0.1'),
  /**
   * Bearer token of the admin listener's /v1 APIs (the certificates API). Unset: those APIs are not served;
   * health, readiness and metrics stay open either way.
   */
  GATEWAY_ADMIN_TOKEN: z
    .string()
    .min(MIN_ADMIN_TOKEN_LENGTH, `at least ${MIN_ADMIN_TOKEN_LENGTH} characters`)
    .optional()
    .or(z.literal('').transform(() => undefined)),
  /** Peers whose X-Forwarded-* headers are trusted (IPs or CIDRs, comma list). */
  TRUSTED_PROXIES: envList('').pipe(z.array(z.string().refine(isAddressOrCidr, 'each entry must be an IP or CIDR'))),
  /** Slowloris guard: the whole request head must arrive within this time. */
  HEADERS_TIMEOUT_MS: envMs(15_000),
  /** Idle keep-alive connections from clients are closed after this. */
  CLIENT_KEEPALIVE_MS: envMs(65_000),
  UPSTREAM_CONNECT_TIMEOUT_MS: envMs(5_000),
  /** Time allowed between sending a request and the pod's response headers or upgrade answer (504 after). */
  UPSTREAM_RESPONSE_TIMEOUT_MS: envMs(60_000),
  /** Idle sockets kept in each pod's pool. */
  UPSTREAM_MAX_FREE_SOCKETS: z.coerce.number().int().min(0).max(10_000).default(256),
  /** Close WebSockets with no traffic for this long; 0 keeps them forever (VS Code, terminals). */
  WS_IDLE_TIMEOUT_MS: envMs(0),
  /** Full route-table re-read period. */
  ROUTE_RESYNC_INTERVAL_MS: envMs(30_000).pipe(z.number().min(100)),
  RETRY_AFTER_SECONDS: z.coerce.number().int().min(1).max(3600).default(5),
  SHUTDOWN_TIMEOUT_MS: envMs(10_000),
  /** Worker processes sharing the HTTP port: a number, or `auto` for one per core. */
  GATEWAY_WORKERS: z
    .union([z.literal('auto'), z.coerce.number().int().min(1).max(256)])
    .default(1)
    .transform((v) => (v === 'auto' ? availableParallelism() : v)),
  ACCESS_LOG: envBool(true),
  /** Validated here with the rest (CONFIG_FILE included), then handed to createLogger by main.ts. */
  LOG_LEVEL: envLogLevel,
  // Access control (gateway/access). Signing secrets shared with the orchestrator, comma list: the first signs,
  // all verify. Unset: a generated one is shared through the store (see shared/access-token.ts).
  ACCESS_SECRET: z
    .string()
    .optional()
    .transform((s) => (s ?? '').split(',').map((x) => x.trim()).filter(Boolean))
    .pipe(z.array(z.string().min(MIN_SECRET_LENGTH, `each secret must be at least ${MIN_SECRET_LENGTH} characters`))),
  /** Browsers without access are sent here with `return_to=<the URL they asked for>` instead of the 401 page. */
  ACCESS_LOGIN_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional().or(z.literal('').transform(() => undefined)),
  /** Full re-read of revocations (events deliver them at once; this bounds the delay when one is lost). */
  ACCESS_RESYNC_INTERVAL_MS: envMs(5_000).pipe(z.number().min(100)),
  /** Forged or damaged tokens one client address may send per window before it gets 429. */
  ACCESS_BAD_TOKEN_LIMIT: z.coerce.number().int().min(1).max(1_000_000).default(20),
  ACCESS_BAD_TOKEN_WINDOW_MS: envMs(60_000).pipe(z.number().min(1000)),
  // Sleep and wake (activity.ts, waker.ts).
  /** Pods served (or holding a WebSocket open) are reported to the activity store once per this period. */
  ACTIVITY_FLUSH_MS: envMs(5_000).pipe(z.number().min(100, 'at least 100 ms')),
  /** An admitted request for a sleeping pod is held this long for the pod to run, then answered 503. */
  WAKE_TIMEOUT_MS: envMs(30_000).pipe(z.number().min(100, 'at least 100 ms')),
  /** A browser navigation (GET, Accept: text/html) held this long gets the self-refreshing "waking up" page. */
  WAKE_PAGE_AFTER_MS: envMs(2_000),
  /** Requests held for waking pods at once in this process; beyond it, 503 at once (a flood cannot pin memory). */
  WAKE_MAX_WAITING: z.coerce.number().int().min(1).max(1_000_000).default(1000),
  /** Unknown and stopped pods answer clients without access exactly like private ones (401), hiding which pods exist. */
  ACCESS_CONCEAL_PODS: envBool(true),
});

export type GatewayEnv = z.infer<typeof GatewayEnv>;

export interface GatewayConfig extends GatewayEnv {
  /** REDIS_URL with REDIS_TLS_CA's certificates (and Sentinel); undefined: the embedded stores. */
  redis: RedisConnection | undefined;
  baseDomains: string[];
  trustedProxies: BlockList;
}

function isAddressOrCidr(entry: string): boolean {
  const [address, bits, ...rest] = entry.split('/');
  if (rest.length > 0 || !address) return false;
  const family = isIP(address);
  if (!family) return false;
  if (bits === undefined) return true;
  const n = Number(bits);
  return /^\d+$/.test(bits) && n <= (family === 4 ? 32 : 128);
}

function blockList(entries: string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address, bits] = entry.split('/') as [string, string | undefined];
    const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(bits), type);
  }
  return list;
}

export function loadGatewayConfig(env: Record<string, string | undefined>): GatewayConfig {
  const parsed = parseEnv(GatewayEnv, env);
  const redis = redisConnection(parsed.REDIS_URL, parsed.REDIS_TLS_CA, sentinelSettings(parsed));
  if (parsed.GATEWAY_WORKERS > 1 && !redis) {
    // Each worker is its own process: only a shared store gives them all the same routes.
    throw new ConfigError('GATEWAY_WORKERS', `${parsed.GATEWAY_WORKERS} workers need REDIS_URL or REDIS_SENTINELS (the embedded route store lives in one process)`);
  }
  return { ...parsed, redis, baseDomains: normaliseBaseDomains(parsed.BASE_DOMAINS), trustedProxies: blockList(parsed.TRUSTED_PROXIES) };
}
