// One place that builds ioredis clients, so every Redis call in podgate has a timeout and fails fast while
// Redis is down instead of queueing forever. Connections authenticate with the user and password in REDIS_URL
// (`redis://:<password>@host` or an ACL user's `redis://<user>:<password>@host`) and speak TLS for rediss://,
// trusting the CA of REDIS_TLS_CA when one is configured. Errors name the setting to fix, never the password.
import { Redis, type RedisOptions } from 'ioredis';
import { withoutPassword } from './config.ts';
import { ConfigError } from './errors.ts';
import type { Logger } from './log.ts';

/** Every command answers or fails within this time; the request path never waits on Redis anyway. */
export const REDIS_COMMAND_TIMEOUT_MS = 1000;
const MAX_RECONNECT_DELAY_MS = 2000;

export interface RedisConnection {
  /** REDIS_URL: redis:// or rediss:// (TLS), with the credentials Redis asks for. */
  url: string;
  /** REDIS_TLS_CA's PEM certificates: when set, the only CAs a rediss:// server's certificate may chain to. */
  ca?: Buffer | undefined;
}

/** A URL alone, or a URL with its TLS trust. */
export type RedisTarget = string | RedisConnection;

export function createRedis(target: RedisTarget, overrides: RedisOptions = {}): Redis {
  const { url, ca } = typeof target === 'string' ? { url: target, ca: undefined } : target;
  const client = new Redis(url, {
    ...(ca ? { tls: { ca } } : {}),
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    connectTimeout: 2000,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    // Reconnect forever with a capped backoff: Redis coming back must heal every gateway without a restart.
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.min(attempt, 6), MAX_RECONNECT_DELAY_MS),
    ...overrides,
  });
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

/** Warn at start when REDIS_URL sends its password in clear text (sendsPasswordInClear). */
export function warnCleartextPassword(url: string, log: Logger): void {
  if (sendsPasswordInClear(url)) {
    log.warn({ redis: withoutPassword(url) }, 'REDIS_URL sends its password to another machine in clear text: use rediss:// (TLS), with REDIS_TLS_CA for a private CA');
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
  client.on('error', (err: Error) => {
    const problem = explainRedisError(err);
    if (!problem || problem.message === last) return;
    last = problem.message;
    log.error({ variable: problem.variable, err: problem.message }, `${what} cannot use Redis: ${problem.message}`);
  });
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
    };
    const timer = setTimeout(() => {
      done();
      const last = lastError ? `; last error: ${withoutPassword(lastError.message)}` : '';
      reject(new Error(`Redis (REDIS_URL) at ${client.options.host}:${client.options.port} not ready after ${timeoutMs} ms (status ${client.status}${last})`));
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
  });
}

export interface ChannelHandlers {
  onMessage(message: string): void;
  /** The connection came back after a loss: messages published meanwhile are gone, re-read the state. */
  onResync(): void;
}

/**
 * Subscriptions to one pub/sub channel, each on a connection of its own (a subscribed connection can do nothing
 * else). The connection queues commands while offline so ioredis can re-subscribe by itself after a reconnect.
 */
export class ChannelSubscriber {
  private readonly redis: Redis;
  private readonly channel: string;
  private readonly connections = new Set<Redis>();

  constructor(redis: Redis, channel: string) {
    this.redis = redis;
    this.channel = channel;
  }

  async subscribe(handlers: ChannelHandlers): Promise<() => Promise<void>> {
    const sub = this.redis.duplicate({ enableOfflineQueue: true });
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
        handlers.onResync();
      }
    });
    sub.on('message', (channel: string, message: string) => {
      // Messages already buffered when the subscription is closed must not reach the handlers.
      if (!closed && channel === this.channel) handlers.onMessage(message);
    });
    await sub.subscribe(this.channel);
    return async () => {
      closed = true;
      this.connections.delete(sub);
      sub.disconnect();
    };
  }

  close(): void {
    for (const sub of this.connections) sub.disconnect();
    this.connections.clear();
  }
}
