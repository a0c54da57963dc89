// The stores a process works with, named by the configuration: with REDIS_URL the Redis ones, all over one
// connection (pub/sub subscriptions open their own, redis.ts ChannelSubscriber); without it the embedded ones.
// Built only by composition roots (gateway/main.ts, orchestrator/main.ts, the all-in-one main.ts).
import type { Redis } from 'ioredis';
import { MemoryAccessStore, type AccessStore } from './access-store.ts';
import type { CertStore } from './cert-store.ts';
import type { Logger } from './log.ts';
import { MemoryCertStore } from './memory-cert-store.ts';
import { MemoryRouteStore } from './memory-route-store.ts';
import { MemoryPodActivity, type PodActivityStore } from './pod-activity.ts';
import { createRedis, describeRedis, reportRedisProblems, warnCleartextPassword, type RedisTarget } from './redis.ts';
import { RedisAccessStore } from './redis-access-store.ts';
import { RedisCertStore } from './redis-cert-store.ts';
import { RedisPodActivity } from './redis-pod-activity.ts';
import { RedisRouteStore } from './redis-route-store.ts';
import type { RouteStore } from './route-store.ts';

export interface StoresConfig {
  /** REDIS_URL with its TLS trust; undefined: the embedded stores. */
  redis: RedisTarget | undefined;
  /** REDIS_PREFIX. */
  prefix: string;
  /** Who uses Redis, in the log line of a problem reconnecting cannot cure ("gateway cannot use Redis: ..."). */
  user: string;
}

export interface Stores {
  /** The connection the Redis stores share; undefined for the embedded ones. */
  redis: Redis | undefined;
  routes: RouteStore;
  access: AccessStore;
  certs: CertStore;
  /** Pod activity and wake requests (sleep and wake). */
  activity: PodActivityStore;
  /** Close the stores and the connection. */
  close(): Promise<void>;
}

export function createStores(config: StoresConfig, log: Logger): Stores {
  if (!config.redis) {
    const stores = { routes: new MemoryRouteStore(), access: new MemoryAccessStore(), certs: new MemoryCertStore(), activity: new MemoryPodActivity() };
    return { redis: undefined, ...stores, close: () => closeAll(stores) };
  }
  warnCleartextPassword(config.redis, log);
  const redis = createRedis(config.redis);
  reportRedisProblems(redis, log, config.user);
  let wasReady = false;
  redis.on('ready', () => {
    log.info({ redis: describeRedis(config.redis!) }, wasReady ? 'Redis reconnected' : 'Redis connected');
    wasReady = true;
  });
  redis.on('end', () => log.warn('Redis connection ended'));
  const { prefix } = config;
  const stores = {
    routes: new RedisRouteStore(redis, { prefix, onInvalid: (where, error) => log.warn({ where, error }, 'invalid route-table entry skipped') }),
    access: new RedisAccessStore(redis, { prefix, onInvalid: (where) => log.warn({ where }, 'invalid access-store entry skipped') }),
    certs: new RedisCertStore(redis, { prefix, onInvalid: (where, error) => log.warn({ where, error }, 'invalid certificate-store entry skipped') }),
    activity: new RedisPodActivity(redis, { prefix, onInvalid: (where) => log.warn({ where }, 'invalid wake request dropped') }),
  };
  return {
    redis,
    ...stores,
    async close() {
      await closeAll(stores);
      redis.disconnect();
    },
  };
}

async function closeAll(stores: Omit<Stores, 'redis' | 'close'>): Promise<void> {
  await Promise.all([stores.routes.close(), stores.access.close(), stores.certs.close(), stores.activity.close()]);
}
