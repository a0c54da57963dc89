// Builds the route store named by the configuration: Redis when REDIS_URL is set, the embedded one otherwise.
import type { Logger } from './log.ts';
import { MemoryRouteStore } from './memory-route-store.ts';
import { createRedis, describeRedis, reportRedisProblems, warnCleartextPassword, type RedisTarget } from './redis.ts';
import { RedisRouteStore } from './redis-route-store.ts';
import type { RouteStore } from './route-store.ts';

export function createRouteStore(target: RedisTarget | undefined, prefix: string, log: Logger): RouteStore {
  if (!target) return new MemoryRouteStore();
  warnCleartextPassword(target, log);
  const redis = createRedis(target);
  reportRedisProblems(redis, log, 'route store');
  let wasReady = false;
  redis.on('ready', () => {
    log.info({ redis: describeRedis(target) }, wasReady ? 'Redis reconnected' : 'Redis connected');
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
