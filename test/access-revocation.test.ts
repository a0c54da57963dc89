// Revocation across replicas: two gateway processes (`node gateway/main.ts`) on one Redis, zero access
// configuration (the signing secret is generated once and shared through Redis). A link revoked on the
// orchestrator's side must be refused by both within seconds; so must every link of a pod after "revoke all".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOKEN_HEADER } from '../gateway/access/credentials.ts';
import { createRedis, waitReady } from '../shared/redis.ts';
import { startUpstream, type Upstream } from './support/gateway-harness.ts';
import { spawnGateway, type ChildGateway } from './support/child-gateway.ts';
import { waitFor } from './support/wait.ts';
import { send, startWorld, type AccessWorld } from './support/access.ts';

/** Revocations take effect "within seconds": events make it immediate, the periodic re-read bounds it when one is lost. */
const REVOCATION_DEADLINE_MS = 5_000;

let world: AccessWorld;
let up: Upstream;
const gateways: ChildGateway[] = [];

beforeAll(async () => {
  world = await startWorld();
  up = await startUpstream();
  const env = { REDIS_URL: world.redis.url, ACCESS_LOG: 'false', ACCESS_RESYNC_INTERVAL_MS: '1000' };
  gateways.push(...(await Promise.all([spawnGateway(env), spawnGateway(env)])));
});
afterAll(async () => {
  await Promise.all(gateways.map((g) => g.kill()));
  await up?.close();
  await world?.close();
});

async function statusOnAll(token: string): Promise<number[]> {
  return Promise.all(gateways.map(async (g) => (await send(g.url, 'pod-shared.localhost', { headers: { [TOKEN_HEADER]: token } })).status));
}

describe('revocation across two gateway processes', () => {
  it('both processes share one generated secret, and tokens signed with it open the pod on both', async () => {
    // startWorld() read the secret the way the orchestrator does (SET NX, first writer wins); the gateways did too.
    expect(await world.access.sharedSecret('x'.repeat(43))).toBe('w'.repeat(43));
    const { token } = await world.link('shared');
    // No route yet: a client holding a valid token is told the truth (404), where one without gets the concealing
    // 401 that a private pod gets too (so a wait for 401 without a token proves nothing).
    await waitFor(async () => (await statusOnAll(token)).every((s) => s === 404), { what: 'both gateways to verify the token' });
    await world.route('shared', up.port);
    await waitFor(async () => (await statusOnAll(token)).every((s) => s === 200), { what: 'route on both gateways, token accepted' });
    expect(await statusOnAll('none')).toEqual([401, 401]); // private by default
  });

  it('a revoked link is refused by both within seconds; other links keep working', async () => {
    const doomed = await world.link('shared');
    const kept = await world.link('shared');
    expect(await statusOnAll(doomed.token)).toEqual([200, 200]);
    const revokedAt = Date.now();
    expect(await world.access.revokeLink('shared', doomed.id, Date.now())).toBe(true);
    await waitFor(async () => (await statusOnAll(doomed.token)).every((s) => s === 401), {
      what: 'both gateways to refuse the revoked link',
      timeoutMs: REVOCATION_DEADLINE_MS,
    });
    const tookMs = Date.now() - revokedAt;
    expect(await statusOnAll(kept.token)).toEqual([200, 200]);
    console.log(`revocation of one link reached both gateway processes in ${tookMs} ms`);
  });

  it('revoking every link of the pod is refused by both within seconds', async () => {
    const a = await world.link('shared');
    const b = await world.link('shared', { port: 3000 });
    expect([...(await statusOnAll(a.token)), ...(await statusOnAll(b.token))]).toEqual([200, 200, 200, 200]);
    await world.access.revokePod('shared', Date.now() + 1);
    await waitFor(async () => [...(await statusOnAll(a.token)), ...(await statusOnAll(b.token))].every((s) => s === 401), {
      what: 'both gateways to refuse every link of the pod',
      timeoutMs: REVOCATION_DEADLINE_MS,
    });
    expect(await world.access.listLinks('shared', Date.now())).toEqual([]);
  });

  it('a revocation whose event was missed still arrives through the periodic re-read', async () => {
    const missed = await world.link('shared', { iat: Date.now() + 10 });
    expect(await statusOnAll(missed.token)).toEqual([200, 200]);
    // Written behind the gateways' backs: no event is published, only the stored revocation changes.
    const raw = createRedis(world.redis.url);
    await waitReady(raw);
    try {
      await raw.zadd('podgate:access:revoked', Date.now() + 3_600_000, missed.id);
      await waitFor(async () => (await statusOnAll(missed.token)).every((s) => s === 401), {
        what: 'the periodic re-read to pick up the revocation',
        timeoutMs: REVOCATION_DEADLINE_MS,
      });
    } finally {
      raw.disconnect();
    }
  });
});
