// Builds the route store named by the configuration: Redis when REDIS_URL is set, the embedded one otherwise.
import type { Logger } from './log.ts';
import { MemoryRouteStore } from './memory-route-store.ts';
import { createRedis } from './redis.ts';
import { RedisRouteStore } from './redis-route-store.ts';
import type { RouteStore } from './route-store.ts';

export function createRouteStore(redisUrl: string | undefined, prefix: string, log: Logger): RouteStore {
  if (!redisUrl) return new MemoryRouteStore();
  const redis = createRedis(redisUrl);
  let wasReady = false;
  redis.on('ready', () => {
    log.info({ redis: redisUrl.replace(/\/\/[^@]*@/, '//***@') }, wasReady ? 'Redis reconnected' : 'Redis connected');
    wasReady = true;
  });
  redis.on('end', () => log.warn('Redis connection ended'));
  const store = new RedisRouteStore(redis, {
    prefix,
    onInvalid: (where, error) => log.warn({ where, error }, 'invalid route-table entry skipped'),
  });
  const close = store.close.bind(store);
  store.close = async () => {
    await close();
    redis.disconnect();
  };
  return store;
}
