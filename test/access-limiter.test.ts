// The forged-token limiter punishes only failures, and its count is shared: two gateway processes
// (`node gateway/main.ts`) on one real Redis. A page that makes its visitor's browser send 20 forged
// `?podgate_token=x` (images, say) to both of them must not lock that visitor out: their valid cookie, a valid
// header token, a fresh link and public ports keep working, while the forgeries themselves get 429 from either
// gateway once the address's total reached the limit. Valid requests never cost a Redis round trip.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACCESS_COOKIE, TOKEN_HEADER } from '../gateway/access/credentials.ts';
import { createRedis, waitReady } from '../shared/redis.ts';
import { startUpstream, type Upstream } from './support/gateway-harness.ts';
import { spawnGateway, type ChildGateway } from './support/child-gateway.ts';
import { waitFor } from './support/wait.ts';
import { send, startTestGateway, startWorld, type AccessWorld } from './support/access.ts';

/** ACCESS_BAD_TOKEN_LIMIT's default: what a page of 20 images with a forged cookie reaches. */
const LIMIT = 20;
const IMAGE = { accept: 'image/avif,image/webp,*/*' };

let world: AccessWorld;
let up: Upstream;
let a: ChildGateway;
let b: ChildGateway;

beforeAll(async () => {
  world = await startWorld();
  up = await startUpstream();
  const env = { REDIS_URL: world.redis.url, ACCESS_LOG: 'false', ACCESS_RESYNC_INTERVAL_MS: '1000' };
  [a, b] = await Promise.all([spawnGateway(env), spawnGateway(env)]);
  await world.route('victim', up.port, { access: { default: 'private', ports: { '3000': 'public' } } });
  const { token } = await world.link('victim');
  for (const g of [a, b]) {
    await waitFor(async () => (await send(g.url, 'localhost-8080.pod-victim.localhost', { headers: { [TOKEN_HEADER]: token } })).status === 200, {
      what: 'both gateways to serve the route and verify tokens',
    });
  }
});
afterAll(async () => {
  await Promise.all([a?.kill(), b?.kill()]);
  await up?.close();
  await world?.close();
});

/** How many EVAL calls Redis has run (the limiter's only command). */
async function evalCalls(): Promise<number> {
  const redis = createRedis(world.redis.url);
  try {
    await waitReady(redis);
    const stats = await redis.info('commandstats');
    return Number(/^cmdstat_eval:calls=(\d+)/m.exec(stats)?.[1] ?? 0);
  } finally {
    redis.disconnect();
  }
}

describe('forged tokens from one address', () => {
  it('are limited across both gateways, and never lock out that address’s valid credentials or public ports', async () => {
    const host = 'localhost-8080.pod-victim.localhost';
    const { token } = await world.link('victim');
    const cookie = { cookie: `${ACCESS_COOKIE}=${token}` };
    // The victim's own traffic costs no Redis round trip, before and after the attack.
    const evalsBefore = await evalCalls();
    for (const g of [a, b]) {
      expect((await send(g.url, host, { headers: cookie })).status).toBe(200);
      expect((await send(g.url, host, { headers: { [TOKEN_HEADER]: token } })).status).toBe(200);
    }
    expect(await evalCalls()).toBe(evalsBefore);

    // The attack: half the images reach each gateway. Each gateway saw only 10, so only the shared count can know
    // that the address has reached 20.
    for (let i = 0; i < LIMIT; i++) {
      const g = i % 2 === 0 ? a : b;
      expect((await send(g.url, host, { path: '/?podgate_token=x', headers: IMAGE })).status, `forgery ${i + 1}`).toBe(401);
    }
    expect(await evalCalls()).toBe(evalsBefore + LIMIT);
    for (const g of [a, b]) {
      const limited = await send(g.url, host, { path: '/?podgate_token=x', headers: IMAGE });
      expect(limited.status).toBe(429);
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      // Another pod, another port, an unknown pod: forged tokens from this address are limited everywhere.
      expect((await send(g.url, 'pod-nosuch.localhost', { headers: { [TOKEN_HEADER]: 'pg1.forged.x' } })).status).toBe(429);
    }

    // Everything legitimate still passes, on both gateways.
    const evalsAfterAttack = await evalCalls();
    for (const g of [a, b]) {
      expect((await send(g.url, host, { headers: cookie })).status, 'valid cookie').toBe(200);
      expect((await send(g.url, host, { headers: { [TOKEN_HEADER]: token } })).status, 'valid header token').toBe(200);
      // The victim's browser attaching its cookie to the attacker's image: the cookie wins.
      expect((await send(g.url, host, { path: '/?podgate_token=x', headers: { ...IMAGE, ...cookie } })).status, 'cookie with a forgery').toBe(200);
      const fresh = await world.link('victim');
      const redeemed = await send(g.url, host, { path: `/?podgate_token=${fresh.token}`, headers: { accept: 'text/html' } });
      expect(redeemed.status, 'a fresh link').toBe(302);
      expect(String(redeemed.headers['set-cookie'])).toContain(fresh.token);
      expect((await send(g.url, 'localhost-3000.pod-victim.localhost')).status, 'public port').toBe(200);
      expect((await send(g.url, 'localhost-3000.pod-victim.localhost', { path: '/?podgate_token=x', headers: IMAGE })).status, 'public port, forgery').toBe(302);
      // Without any token: the ordinary refusal (a sign-in page can still be offered), not a 429.
      expect((await send(g.url, host)).status, 'no token').toBe(401);
    }
    expect(await evalCalls()).toBe(evalsAfterAttack);
  });
});

describe('IPv6 clients', () => {
  it('count together per /64: rotating addresses inside one network gains a guesser nothing', async () => {
    const gw = await startTestGateway(world, { ACCESS_BAD_TOKEN_LIMIT: '3', TRUSTED_PROXIES: '127.0.0.1' });
    try {
      await waitFor(() => gw.gateway.table.lookup('victim') !== undefined, { what: 'routes' });
      const ask = (client: string) =>
        send(gw.url, 'localhost-8080.pod-victim.localhost', { headers: { 'x-forwarded-for': client, [TOKEN_HEADER]: 'pg1.forged.x' } });
      for (let i = 1; i <= 3; i++) expect((await ask(`2001:db8:77:1::${i}`)).status).toBe(401);
      expect((await ask('2001:db8:77:1:ffff:ffff:ffff:ffff')).status).toBe(429);
      expect((await ask('2001:db8:77:2::1')).status).toBe(401); // the next /64 is someone else
    } finally {
      await gw.close();
    }
  });
});

describe('while Redis is down', () => {
  it('counts forgeries in the gateway’s own memory, warns once, and still lets valid tokens through', async () => {
    const own = await startWorld();
    const gw = await startTestGateway(own, { ACCESS_BAD_TOKEN_LIMIT: '3' });
    try {
      await own.route('solo', up.port, {}, [gw.gateway]);
      const { token } = await own.link('solo');
      const ask = (t: string) => send(gw.url, 'pod-solo.localhost', { headers: { [TOKEN_HEADER]: t } });
      expect((await ask(token)).status).toBe(200);
      await own.redis.kill();
      for (let i = 0; i < 3; i++) expect((await ask('pg1.forged.x')).status, `forgery ${i + 1}`).toBe(401);
      expect((await ask('pg1.forged.x')).status).toBe(429);
      expect((await ask(token)).status).toBe(200);
      expect(gw.logs.filter((l) => l.msg.startsWith('forged-token counter unavailable'))).toHaveLength(1);
    } finally {
      await gw.close();
      await own.close();
    }
  });
});
