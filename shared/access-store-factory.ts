// Builds the access store named by the configuration: Redis when REDIS_URL is set, the embedded one otherwise.
import { MemoryAccessStore, type AccessStore } from './access-store.ts';
import type { Logger } from './log.ts';
import { createRedis, reportRedisProblems, type RedisTarget } from './redis.ts';
import { RedisAccessStore } from './redis-access-store.ts';

export function createAccessStore(target: RedisTarget | undefined, prefix: string, log: Logger): AccessStore {
  if (!target) return new MemoryAccessStore();
  const redis = createRedis(target);
  reportRedisProblems(redis, log, 'access store');
  const store = new RedisAccessStore(redis, {
    prefix,
    onInvalid: (where) => log.warn({ where }, 'invalid access-store entry skipped'),
  });
  const close = store.close.bind(store);
  store.close = async () => {
    await close();
    redis.disconnect();
  };
  return store;
}
