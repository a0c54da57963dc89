// One place that builds ioredis clients, so every Redis call in podgate has a timeout and fails fast while
// Redis is down instead of queueing forever. Connections authenticate with the user and password in REDIS_URL
// (`redis://:<password>@host` or an ACL user's `redis://<user>:<password>@host`) and speak TLS for rediss://,
// trusting the CA of REDIS_TLS_CA when one is configured. With REDIS_SENTINELS every connection asks Sentinel for
// the master of REDIS_SENTINEL_NAME and follows its failovers. Errors name the setting to fix, never the password.
import { Redis, type RedisOptions } from 'ioredis';
import { z } from 'zod';
import { withoutPassword } from './config.ts';
import { ConfigError } from './errors.ts';
import type { Logger } from './log.ts';

/** Every command answers or fails within this time; the request path never waits on Redis anyway. */
export const REDIS_COMMAND_TIMEOUT_MS = 1000;
const MAX_RECONNECT_DELAY_MS = 2000;

/** Sentinel's default port. */
const SENTINEL_PORT = 26379;

export interface SentinelSettings {
  /** REDIS_SENTINELS: the sentinels to ask (any one answering is enough). */
  sentinels: { host: string; port: number }[];
  /** REDIS_SENTINEL_NAME: the master group they monitor (`sentinel monitor <name> ...`). */
  name: string;
  /** REDIS_SENTINEL_USERNAME / REDIS_SENTINEL_PASSWORD: the sentinels' own credentials, when they require some. */
  username?: string | undefined;
  password?: string | undefined;
}

export interface RedisConnection {
  /**
   * REDIS_URL: redis:// or rediss:// (TLS), with the credentials Redis asks for. With `sentinel`, only its scheme,
   * credentials and database are used: Sentinel names the host.
   */
  url: string;
  /** REDIS_TLS_CA's PEM certificates: when set, the only CAs a rediss:// server's certificate may chain to. */
  ca?: Buffer | undefined;
  /** Connect through Sentinel (REDIS_SENTINELS). */
  sentinel?: SentinelSettings | undefined;
}

/** A URL alone, or a URL with its TLS trust. */
export type RedisTarget = string | RedisConnection;

/** The REDIS_URL to assume with REDIS_SENTINELS alone: no credentials, no TLS, database 0. */
export function sentinelDefaultUrl(name: string): string {
  return `redis://${encodeURIComponent(name)}`;
}

const hostPort = /^(?:\[([0-9a-f:.]+)\]|([^\s:\[\]]+))(?::(\d{1,5}))?$/i;

/** The sentinel settings, shared by the gateway's and the orchestrator's configuration schemas. */
export const envRedisSentinel = {
  REDIS_SENTINELS: z
    .string()
    .optional()
    .transform((s) => (s ?? '').split(',').map((x) => x.trim()).filter(Boolean))
    .pipe(
      z.array(
        z
          .string()
          .regex(hostPort, 'each entry must be host:port (IPv6 as [address]:port)')
          .transform((entry) => {
            const m = hostPort.exec(entry)!;
            return { host: m[1] ?? m[2]!, port: m[3] === undefined ? SENTINEL_PORT : Number(m[3]) };
          })
          .refine((a) => a.port >= 1 && a.port <= 65535, 'each port must be 1-65535'),
      ),
    ),
  REDIS_SENTINEL_NAME: z.string().regex(/^[\w.-]{1,128}$/, 'the master group name sentinels monitor (letters, digits, _ . -)').optional().or(z.literal('').transform(() => undefined)),
  REDIS_SENTINEL_USERNAME: z.string().min(1).optional().or(z.literal('').transform(() => undefined)),
  REDIS_SENTINEL_PASSWORD: z.string().min(1).optional().or(z.literal('').transform(() => undefined)),
};

type SentinelEnv = z.infer<z.ZodObject<typeof envRedisSentinel>>;

/**
 * REDIS_SENTINELS and its companions as settings; undefined without REDIS_SENTINELS.
 * @throws ConfigError naming the setting that is missing or set alone
 */
export function sentinelSettings(env: SentinelEnv): SentinelSettings | undefined {
  if (env.REDIS_SENTINELS.length === 0) {
    for (const v of ['REDIS_SENTINEL_NAME', 'REDIS_SENTINEL_USERNAME', 'REDIS_SENTINEL_PASSWORD'] as const) {
      if (env[v] !== undefined) throw new ConfigError(v, 'only used with REDIS_SENTINELS (unset)');
    }
    return undefined;
  }
  if (env.REDIS_SENTINEL_NAME === undefined) {
    throw new ConfigError('REDIS_SENTINEL_NAME', 'required with REDIS_SENTINELS: the master group name the sentinels monitor (`sentinel monitor <name> ...`)');
  }
  if (env.REDIS_SENTINEL_USERNAME !== undefined && env.REDIS_SENTINEL_PASSWORD === undefined) {
    throw new ConfigError('REDIS_SENTINEL_PASSWORD', 'required with REDIS_SENTINEL_USERNAME');
  }
  return { sentinels: env.REDIS_SENTINELS, name: env.REDIS_SENTINEL_NAME, username: env.REDIS_SENTINEL_USERNAME, password: env.REDIS_SENTINEL_PASSWORD };
}

/** Where a connection goes, for logs: the URL without its password, or the sentinels and master name. */
export function describeRedis(target: RedisTarget): string {
  const { url, sentinel } = typeof target === 'string' ? { url: target, sentinel: undefined } : target;
  if (!sentinel) return withoutPassword(url);
  return `sentinel master ${sentinel.name} via ${sentinel.sentinels.map((s) => (s.host.includes(':') ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`)).join(',')}`;
}

/**
 * A replica answers writes with READONLY: the client still talks to a master that was demoted (Sentinel failed
 * over while it was cut off). Reconnecting asks Sentinel again, and the command is sent once more to the new master.
 */
function reconnectOnReadonly(err: Error): 1 | 2 | false {
  return err.message.startsWith('READONLY') ? 2 : false;
}

/** ioredis options for connecting through Sentinel: REDIS_URL's credentials, TLS and database for the data nodes. */
function sentinelOptions(url: string, ca: Buffer | undefined, sentinel: SentinelSettings): RedisOptions {
  const u = new URL(url);
  const tls = u.protocol === 'rediss:' ? (ca ? { ca } : {}) : undefined;
  const db = Number(u.pathname.replace(/^\//, '') || '0');
  return {
    sentinels: sentinel.sentinels,
    name: sentinel.name,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(Number.isInteger(db) && db > 0 ? { db } : {}),
    ...(sentinel.username ? { sentinelUsername: sentinel.username } : {}),
    ...(sentinel.password ? { sentinelPassword: sentinel.password } : {}),
    // rediss:// speaks TLS to the data nodes and to the sentinels alike, trusting the same CAs.
    ...(tls ? { tls, enableTLSForSentinelMode: true, sentinelTLS: tls } : {}),
    sentinelCommandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    // All sentinels unreachable: keep asking, as the plain client keeps reconnecting.
    sentinelRetryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 6), MAX_RECONNECT_DELAY_MS),
    // Subscribed to the sentinels' +switch-master: a failover moves the connection at once, even when the old
    // master is only cut off and still accepts it.
    failoverDetector: true,
  };
}

export function createRedis(target: RedisTarget, overrides: RedisOptions = {}): Redis {
  const { url, ca, sentinel } = typeof target === 'string' ? { url: target, ca: undefined, sentinel: undefined } : target;
  const common: RedisOptions = {
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    connectTimeout: 2000,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    // Reconnect forever with a capped backoff: Redis coming back must heal every gateway without a restart.
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 6), MAX_RECONNECT_DELAY_MS),
    reconnectOnError: reconnectOnReadonly,
  };
  const client = sentinel
    ? new Redis({ ...sentinelOptions(url, ca, sentinel), ...common, ...overrides })
    : new Redis(url, { ...(ca ? { tls: { ca } } : {}), ...common, ...overrides });
  // Without a listener ioredis prints every connection error; the owners log state changes themselves.
  client.on('error', () => {});
  return client;
}

/**
 * Does `url` send a password in clear text off this machine (redis:// with credentials to a host that is not
 * loopback)? Anyone on the path reads it, and with it every route, secret and certificate key in Redis.
 */
export function sendsPasswordInClear(url: string): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  if (u.protocol !== 'redis:' || (!u.password && !u.username)) return false;
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return !(host === 'localhost' || host.endsWith('.localhost') || host === '::1' || /^127\./.test(host));
}

/**
 * Warn at start when a password goes out in clear text (sendsPasswordInClear): REDIS_URL's, or with Sentinel the
 * data nodes' and the sentinels' passwords to any sentinel that is not on this machine (Sentinel names the data
 * nodes, which are then as far away).
 */
export function warnCleartextPassword(target: RedisTarget, log: Logger): void {
  const { url, sentinel } = typeof target === 'string' ? { url: target, sentinel: undefined } : target;
  if (!sentinel) {
    if (sendsPasswordInClear(url)) {
      log.warn({ redis: withoutPassword(url) }, 'REDIS_URL sends its password to another machine in clear text: use rediss:// (TLS), with REDIS_TLS_CA for a private CA');
    }
    return;
  }
  const u = new URL(url);
  if (u.protocol !== 'redis:' || (!u.password && !sentinel.password)) return;
  const far = sentinel.sentinels.find((s) => sendsPasswordInClear(`redis://:x@${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}`));
  if (far) {
    log.warn({ redis: describeRedis(target) }, 'Redis passwords go to another machine in clear text (REDIS_SENTINELS): use rediss:// in REDIS_URL (TLS to the sentinels and the data nodes), with REDIS_TLS_CA for a private CA');
  }
}

/** Node's codes for a server certificate that chains to no trusted CA. */
const UNTRUSTED_CERTIFICATE = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

/**
 * A connection error that retrying cannot cure, as a ConfigError naming the setting to fix; undefined for the
 * others (Redis down, network), which reconnecting heals. Redis's and Node's messages carry no password.
 */
export function explainRedisError(err: Error & { code?: string }): ConfigError | undefined {
  const m = err.message;
  // Sentinel's answers come as ioredis's "failed to connect to sentinel <address> because <reason>".
  if (/^failed to connect to sentinel \S+ because (WRONGPASS|NOAUTH)/.test(m)) {
    return new ConfigError('REDIS_SENTINEL_PASSWORD', `a sentinel refused the credentials (${m}): set REDIS_SENTINEL_PASSWORD (and REDIS_SENTINEL_USERNAME for an ACL user) to the sentinels' own`);
  }
  // Redis 7's sentinels answer an unknown name with an error, older ones with a null reply.
  if (/No such master with that name|^connected to sentinel \S+ successfully, but got an invalid reply: null/.test(m)) {
    return new ConfigError('REDIS_SENTINEL_NAME', `the sentinels monitor no master of that name (${m})`);
  }
  if (m.startsWith('WRONGPASS')) return new ConfigError('REDIS_URL', `Redis refused the user name or password (${m})`);
  if (m.startsWith('NOAUTH')) {
    return new ConfigError('REDIS_URL', `Redis requires a password: redis[s]://:<password>@host:port, or redis[s]://<user>:<password>@host:port for an ACL user (${m})`);
  }
  if (err.code && UNTRUSTED_CERTIFICATE.has(err.code)) {
    return new ConfigError('REDIS_TLS_CA', `the Redis server's TLS certificate is not trusted (${m}): set REDIS_TLS_CA to the PEM file of the CA that signs it`);
  }
  if (err.code === 'ERR_TLS_CERT_ALTNAME_INVALID') return new ConfigError('REDIS_URL', `the Redis server's TLS certificate is not for the host in the URL (${m})`);
  if (err.code === 'CERT_HAS_EXPIRED' || err.code === 'CERT_NOT_YET_VALID') return new ConfigError('REDIS_URL', `the Redis server's TLS certificate is not valid now (${m})`);
  if (err.code === 'EPROTO' || /wrong version number|packet length too long/.test(m)) {
    return new ConfigError('REDIS_URL', `TLS handshake failed (${m}): rediss:// needs the server's TLS port, redis:// its plain one`);
  }
  return undefined;
}

/**
 * Log, once until the connection is ready again, each error that reconnecting cannot cure (explainRedisError):
 * a store keeps retrying (a rotated password may be fixed on the Redis side), and the log says what to fix.
 */
export function reportRedisProblems(client: Redis, log: Logger, what: string): void {
  let last: string | undefined;
  const onError = (err: Error) => {
    const problem = explainRedisError(err);
    if (!problem || problem.message === last) return;
    last = problem.message;
    log.error({ variable: problem.variable, err: problem.message }, `${what} cannot use Redis: ${problem.message}`);
  };
  client.on('error', onError);
  client.on('sentinelError', onError);
  client.on('ready', () => {
    last = undefined;
  });
}

/**
 * Wait until the client is ready. Throws the ConfigError of explainRedisError at once for a problem retrying cannot
 * cure, else an Error with the last connection error after `timeoutMs`.
 */
export function waitReady(client: Redis, timeoutMs = 5000): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    let lastError: Error | undefined;
    const done = () => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('error', onError);
      client.off('sentinelError', onError);
    };
    const timer = setTimeout(() => {
      done();
      const last = lastError ? `; last error: ${withoutPassword(lastError.message)}` : '';
      const where = client.options.sentinels
        ? `REDIS_SENTINELS, master ${client.options.name}`
        : `REDIS_URL at ${client.options.host}:${client.options.port}`;
      reject(new Error(`Redis (${where}) not ready after ${timeoutMs} ms (status ${client.status}${last})`));
    }, timeoutMs);
    const onReady = () => {
      done();
      resolve();
    };
    const onError = (err: Error) => {
      const problem = explainRedisError(err);
      if (!problem) {
        lastError = err;
        return;
      }
      done();
      reject(problem);
    };
    client.once('ready', onReady);
    client.on('error', onError);
    client.on('sentinelError', onError);
  });
}

/**
 * ioredis's words for a command that never reached a working master: no connection (down, reconnecting, failing
 * over), no answer in time, or an answer from a node that cannot take writes now.
 */
const UNAVAILABLE = /^(Stream isn't writeable|Connection is closed|Command timed out|Reached the max retries per request|All sentinels are unreachable|READONLY|LOADING|MASTERDOWN|NOREPLICAS)/;

/** Whether `err` says Redis could not be reached (rather than refusing the command itself). */
export function isRedisUnavailable(err: unknown): boolean {
  return err instanceof Error && UNAVAILABLE.test(err.message);
}

/** An error's message, saying that it was Redis that could not be reached when it was. */
export function storeErrorText(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  return isRedisUnavailable(err) ? `Redis is unavailable: ${m}` : m;
}

export interface ChannelHandlers {
  onMessage(message: string): void;
  /** The connection came back after a loss: messages published meanwhile are gone, re-read the state. */
  onResync(): void;
}

/**
 * Subscriptions to one pub/sub channel, each on a connection of its own (a subscribed connection can do nothing
 * else). The connection queues commands while offline and never gives up on them, so ioredis re-subscribes by
 * itself after a reconnect, and a subscription asked for while Redis is down is made once it answers.
 */
export class ChannelSubscriber {
  private readonly redis: Redis;
  private readonly channel: string;
  private readonly connections = new Set<Redis>();

  constructor(redis: Redis, channel: string) {
    this.redis = redis;
    this.channel = channel;
  }

  /**
   * Resolves once subscribed, or after REDIS_COMMAND_TIMEOUT_MS with the subscription still under way (Redis is
   * down): the caller never waits on Redis to start. A subscription made late calls `onResync`, since whatever was
   * published before it is missed.
   */
  async subscribe(handlers: ChannelHandlers): Promise<() => Promise<void>> {
    // No command timeout either: SUBSCRIBE waits for the connection however long Redis is away.
    const sub = this.redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, commandTimeout: undefined });
    sub.on('error', () => {});
    this.connections.add(sub);
    let lost = false;
    let closed = false;
    sub.on('close', () => {
      lost = true;
    });
    sub.on('ready', () => {
      if (lost) {
        lost = false;
        if (!closed) handlers.onResync();
      }
    });
    sub.on('message', (channel: string, message: string) => {
      // Messages already buffered when the subscription is closed must not reach the handlers.
      if (!closed && channel === this.channel) handlers.onMessage(message);
    });
    const unsubscribe = async () => {
      closed = true;
      this.connections.delete(sub);
      sub.disconnect();
    };
    let late = false;
    const subscribed = sub.subscribe(this.channel).then(
      () => {
        if (late && !closed) handlers.onResync();
      },
      (err: unknown) => {
        // Only a closed connection fails the command (no retry limit): nothing more to do.
        if (!closed) throw err;
      },
    );
    let timer: NodeJS.Timeout | undefined;
    let inTime: boolean;
    try {
      inTime = await Promise.race([
        subscribed.then(() => true),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), REDIS_COMMAND_TIMEOUT_MS);
          timer.unref();
        }),
      ]);
    } catch (err) {
      // Refused (an ACL without the channel, say): no connection left behind.
      await unsubscribe();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    if (!inTime) {
      late = true;
      subscribed.catch(() => {});
    }
    return unsubscribe;
  }

  close(): void {
    for (const sub of this.connections) sub.disconnect();
    this.connections.clear();
  }
}
