// Builds the certificate store named by the configuration: Redis when REDIS_URL is set (shared by every
// gateway replica), the embedded one otherwise.
import type { CertStore } from './cert-store.ts';
import type { Logger } from './log.ts';
import { MemoryCertStore } from './memory-cert-store.ts';
import { createRedis, reportRedisProblems, type RedisTarget } from './redis.ts';
import { RedisCertStore } from './redis-cert-store.ts';

export function createCertStore(target: RedisTarget | undefined, prefix: string, log: Logger): CertStore {
  if (!target) return new MemoryCertStore();
  const redis = createRedis(target);
  reportRedisProblems(redis, log, 'certificate store');
  const store = new RedisCertStore(redis, {
    prefix,
    onInvalid: (where, error) => log.warn({ where, error }, 'invalid certificate-store entry skipped'),
  });
  const close = store.close.bind(store);
  store.close = async () => {
    await close();
    redis.disconnect();
  };
  return store;
}
