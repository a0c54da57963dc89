// Access links belong to one lifetime of a pod, end to end: the real orchestrator (admin API, Docker with runsc)
// and a real gateway on one Redis. A pod that reuses a slug must never be opened by links of an earlier pod of
// that slug, whether the earlier one was deleted through the API or vanished behind the orchestrator's back, and
// the new pod's first route must reach gateways only after those links are void.
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOKEN_HEADER } from '../shared/access-token.ts';
import { accessKeys, parseAccessEvent } from '../shared/access-store.ts';
import { createRedis, waitReady } from '../shared/redis.ts';
import { routeKeys } from '../shared/route.ts';
import { testPodImage, uniqueSlug } from './support/orchestrator.ts';
import { startPodWorld, type PodWorld } from './support/pod-world.ts';
import { waitFor } from './support/wait.ts';
import { send } from './support/access.ts';

let pods: PodWorld;
const slug = uniqueSlug('life');
const host = `pod-${slug}.localhost`;
const docker = new Docker();

/** The gateway's answer to a request carrying `token` (200: it opens the private pod). */
async function statusWith(token: string): Promise<number> {
  return (await send(pods.gw.url, host, { headers: { [TOKEN_HEADER]: token } })).status;
}

/** Both event channels on one connection: Redis delivers them in the order it published them. */
async function watchEvents() {
  const sub = createRedis(pods.world.redis.url, { enableOfflineQueue: true });
  const seen: { channel: 'access' | 'routes'; json: string }[] = [];
  const access = accessKeys('podgate:').events;
  const routes = routeKeys('podgate:').events;
  sub.on('message', (channel: string, json: string) => seen.push({ channel: channel === access ? 'access' : 'routes', json }));
  await sub.subscribe(access, routes);
  return { seen, close: () => sub.disconnect() };
}

beforeAll(async () => {
  pods = await startPodWorld({ image: await testPodImage(), portRange: '38870-38889' });
});
afterAll(async () => {
  await pods?.close();
});

describe('links belong to one pod lifetime', () => {
  it('a create voids links of an earlier pod of the slug before its first route reaches any gateway', async () => {
    // A link of an earlier pod whose deletion never voided it (an orchestrator that died between removing the
    // container and writing the revocation, or Redis refusing that write).
    const earlier = await pods.world.link(slug);
    const events = await watchEvents();
    try {
      await pods.createPod({ slug });
      expect(await statusWith(earlier.token)).toBe(401);
      const firstRoute = events.seen.findIndex((e) => e.channel === 'routes' && JSON.parse(e.json).route?.slug === slug);
      expect(firstRoute).toBeGreaterThanOrEqual(0);
      const voided = events.seen.slice(0, firstRoute).map((e) => (e.channel === 'access' ? parseAccessEvent(e.json) : undefined));
      expect(voided).toContainEqual({ type: 'revoke-pod', pod: slug, notBefore: expect.any(Number) });
    } finally {
      events.close();
    }
    // The earlier pod's link is gone from the list; a link of this pod opens it.
    expect((await pods.api('GET', `/v1/pods/${slug}/links`)).json.links).toEqual([]);
    const link = await pods.api('POST', `/v1/pods/${slug}/links`, {});
    expect(link.status).toBe(201);
    expect(await statusWith(link.json.token)).toBe(200);
  });

  it('delete, then create again with the same slug: the old link gives 401, a link minted during the create works', async () => {
    const old = await pods.api('POST', `/v1/pods/${slug}/links`, { label: 'first lifetime' });
    expect(await statusWith(old.json.token)).toBe(200);
    expect((await pods.api('DELETE', `/v1/pods/${slug}`)).status).toBe(204);
    await waitFor(() => pods.gw.gateway.table.lookup(slug) === undefined, { what: 'the route to go' });

    // Without waiting: the link is minted while the create is still in flight.
    const created = await pods.api('POST', '/v1/pods?wait=false', { slug });
    expect(created.status, JSON.stringify(created.json)).toBe(202);
    const early = await pods.api('POST', `/v1/pods/${slug}/links`, { label: 'second lifetime' });
    expect(early.status).toBe(201);
    await waitFor(() => pods.gw.gateway.table.lookup(slug)?.status === 'running', { what: 'the new pod running on the gateway', timeoutMs: 60_000 });

    expect(await statusWith(old.json.token)).toBe(401);
    expect(await statusWith(early.json.token)).toBe(200);
    expect((await pods.api('GET', `/v1/pods/${slug}/links`)).json.links.map((l: { id: string }) => l.id)).toEqual([early.json.id]);
  });

  it('reconcile forgetting a pod whose container vanished voids its links', async () => {
    const link = await pods.api('POST', `/v1/pods/${slug}/links`, {});
    expect(await statusWith(link.json.token)).toBe(200);
    await docker.getContainer(`podgate-${slug}`).remove({ force: true });
    const report = await pods.orch.reconciler.reconcile();
    expect(report.forgotten).toContain(slug);
    await waitFor(() => pods.gw.gateway.table.lookup(slug) === undefined, { what: 'the route to go' });
    // A valid token for a pod without a route is told 404; a voided one is refused like any other (401).
    await waitFor(async () => (await statusWith(link.json.token)) === 401, { what: 'the link to be void', timeoutMs: 5_000 });
    expect((await pods.world.access.revocations(Date.now())).notBefore.get(slug)).toBeGreaterThan(Date.parse(link.json.createdAt));
    expect((await pods.api('GET', `/v1/pods/${slug}/links`)).json.links).toEqual([]);
  });
});
