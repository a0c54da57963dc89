import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { RedisCertStore } from './redis-cert-store.ts';
import { certificate, runCertStoreContract } from './cert-store.contract.ts';
import { useRedis } from '../test/support/redis-server.ts';

const redisServer = useRedis();

let n = 0;
/** The connection of the store newStore() made last. */
let lastClient: Redis | undefined;
async function newStore(onInvalid?: (where: string, error: string) => void) {
  const redis = await redisServer.client();
  lastClient = redis;
  // A fresh prefix per test: each test owns its keys.
  return new RedisCertStore(redis, { prefix: `c${++n}:`, onInvalid });
}

runCertStoreContract('redis', () => newStore());

describe('RedisCertStore specifics', () => {
  it('skips certificates other tools wrote badly, and says where', async () => {
    const invalid: string[] = [];
    const store = await newStore((where) => invalid.push(where));
    await store.putCertificate(certificate('good.example.test'));
    const redis = lastClient!;
    await redis.hset(`c${n}:tls:certs`, 'bad.example.test', '{"id":"bad.example.test"}', 'x.example.test', JSON.stringify(certificate('y.example.test')));
    expect((await store.listCertificates()).map((c) => c.id)).toEqual(['good.example.test']);
    expect(invalid.sort()).toEqual([`c${n}:tls:certs[bad.example.test]`, `c${n}:tls:certs[x.example.test]`]);
  });

  it('two stores on one Redis agree on one account key', async () => {
    const a = await newStore();
    const redis = await redisServer.client();
    const b = new RedisCertStore(redis, { prefix: `c${n}:` });
    const dir = 'https://ca.example/dir';
    const [x, y] = await Promise.all([
      a.putAccountIfAbsent({ directoryUrl: dir, keyPem: 'ka', createdAt: new Date().toISOString() }),
      b.putAccountIfAbsent({ directoryUrl: dir, keyPem: 'kb', createdAt: new Date().toISOString() }),
    ]);
    expect(x.keyPem).toBe(y.keyPem);
  });
});
