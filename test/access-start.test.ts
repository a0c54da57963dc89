// A gateway process started while Redis is down, with zero access configuration: it cannot read the shared signing
// secret yet, so it refuses every token; once Redis answers it must read the secret and accept tokens at once, not
// one ACCESS_RESYNC_INTERVAL_MS later (ten minutes here), and say nothing louder than a warning meanwhile.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOKEN_HEADER } from '../gateway/access/credentials.ts';
import { AccessTokens, newLinkId } from '../shared/access-token.ts';
import { startUpstream, type Upstream } from './support/gateway-harness.ts';
import { spawnGateway, type ChildGateway } from './support/child-gateway.ts';
import { waitFor } from './support/wait.ts';
import { HOUR_S, send, startWorld, type AccessWorld } from './support/access.ts';

let world: AccessWorld;
let up: Upstream;
let gw: ChildGateway;

beforeAll(async () => {
  world = await startWorld();
  up = await startUpstream();
  await world.redis.kill();
  gw = await spawnGateway({ REDIS_URL: world.redis.url, ACCESS_LOG: 'false', ACCESS_RESYNC_INTERVAL_MS: '600000', ROUTE_RESYNC_INTERVAL_MS: '600000' });
});
afterAll(async () => {
  await gw?.kill();
  await up?.close();
  await world?.close();
});

describe('a gateway started while Redis is down', () => {
  it('accepts tokens signed with the shared secret as soon as Redis answers', async () => {
    await world.redis.restart();
    // Redis came back empty (no persistence): the secret is whichever process writes it first (SET NX), the
    // orchestrator's side here or the gateway's own retry; both end up with the same one.
    let secret = '';
    await waitFor(async () => {
      secret = await world.access.sharedSecret('s'.repeat(43)).catch(() => '');
      return secret !== '';
    }, { what: 'the test side to reach Redis again' });
    await waitFor(async () => !!(await world.route('boot', up.port).catch(() => undefined)), { what: 'the route written' });

    const now = Date.now();
    const id = newLinkId();
    const exp = Math.floor(now / 1000) + HOUR_S;
    const token = new AccessTokens([secret]).mint({ pod: 'boot', port: undefined, exp, id, iat: now });
    await world.access.addLink({ id, pod: 'boot', createdAt: new Date(now).toISOString(), expiresAt: new Date(exp * 1000).toISOString() });

    await waitFor(async () => (await send(gw.url, 'pod-boot.localhost', { headers: { [TOKEN_HEADER]: token } })).status === 200, {
      what: 'the token accepted well before the 10-minute re-read',
      timeoutMs: 30_000,
    });
    expect(gw.logs.filter((l) => l.level >= 50)).toEqual([]);
  });
});
