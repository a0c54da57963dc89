// The admin API's access endpoints (orchestrator/access-api.ts) mounted in the real admin app (bearer token, error
// answers), on real Redis, with a real gateway checking what the API minted and revoked. The pod lifecycle is
// played by a small PodAccessControl over the real route store; test/access-pod.test.ts runs the real one.
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOKEN_HEADER } from '../shared/access-token.ts';
import { PodNotFoundError } from '../shared/errors.ts';
import { silentLogger } from '../shared/log.ts';
import { PRIVATE_BY_DEFAULT, type AccessPolicy } from '../shared/route.ts';
import { createApi } from '../orchestrator/api.ts';
import { createAccessApi, type PodAccessControl } from '../orchestrator/access-api.ts';
import type { PodService } from '../orchestrator/pods.ts';
import { startUpstream, type Upstream } from './support/gateway-harness.ts';
import { waitFor } from './support/wait.ts';
import { send, startTestGateway, startWorld, type AccessWorld, type TestGateway } from './support/access.ts';

const ADMIN_TOKEN = 'admin-token-for-tests-0123456789';
/** A fixed clock for the API (real time, so revocations it writes apply to the gateway's real clock too). */
const NOW = Math.floor(Date.now() / 1000) * 1000;

let world: AccessWorld;
let gw: TestGateway;
let up: Upstream;
let app: Hono;
let clock = NOW;

/** The orchestrator's part, over the real route store: a policy change is a new route generation. */
function routeBackedPods(): PodAccessControl {
  return {
    policy(slug) {
      const route = gw.gateway.table.lookup(slug);
      if (!route) throw new PodNotFoundError(slug);
      return route.access ?? PRIVATE_BY_DEFAULT;
    },
    async linkable(slug) {
      this.policy(slug);
    },
    async setPolicy(slug, policy) {
      const route = await world.routes.get(slug);
      if (!route) throw new PodNotFoundError(slug);
      await world.route(slug, route.port, { access: policy }, [gw.gateway]);
    },
  };
}

async function api(method: string, path: string, body?: unknown, token = ADMIN_TOKEN) {
  const res = await app.request(path, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

beforeAll(async () => {
  world = await startWorld();
  gw = await startTestGateway(world);
  up = await startUpstream();
  await world.route('app', up.port, {}, [gw.gateway]);
  app = createApi({
    pods: undefined as unknown as PodService, // the pod routes are not exercised here
    routes: world.routes,
    reconciler: undefined,
    adminToken: ADMIN_TOKEN,
    logger: silentLogger(),
    accessApi: createAccessApi({
      store: world.access,
      tokens: world.tokens,
      pods: routeBackedPods(),
      urls: { baseDomains: ['localhost'], publicScheme: 'http', publicPort: 8080 },
      now: () => clock,
    }),
  });
});
afterAll(async () => {
  await gw?.close();
  await up?.close();
  await world?.close();
});

describe('links', () => {
  it('need the admin bearer token', async () => {
    const a = await api('POST', '/v1/pods/app/links', {}, 'wrong-token-wrong-token');
    expect(a.status).toBe(401);
  });

  it('are minted with a URL carrying the token, scoped and labelled as asked', async () => {
    const a = await api('POST', '/v1/pods/app/links', { port: 8000, expiresIn: '2h', label: 'for Ana' });
    expect(a.status).toBe(201);
    expect(a.json).toMatchObject({ pod: 'app', port: 8000, label: 'for Ana', expiresAt: new Date(NOW + 2 * 3600_000).toISOString() });
    expect(a.json.url).toBe(`http://localhost-8000.pod-app.localhost:8080/?podgate_token=${a.json.token}`);
    const verified = world.tokens.verify(a.json.token, NOW);
    expect(verified).toMatchObject({ ok: true, claims: { pod: 'app', port: 8000, id: a.json.id, iat: NOW } });
    const pod = await api('POST', '/v1/pods/app/links', {});
    expect(pod.json.url).toBe(`http://pod-app.localhost:8080/?podgate_token=${pod.json.token}`);
    expect(pod.json.expiresAt).toBe(new Date(NOW + 7 * 86400_000).toISOString());
    expect((await api('POST', '/v1/pods/app/links', { expiresIn: 60 })).json.expiresAt).toBe(new Date(NOW + 60_000).toISOString());
  });

  it('refuse bad input naming the field, and unknown pods', async () => {
    const cases: [unknown, string][] = [
      [{ port: 0 }, 'port'],
      [{ port: 'x' }, 'port'],
      [{ expiresIn: 'forever' }, 'expiresIn'],
      [{ expiresIn: '400d' }, 'expiresIn'],
      [{ expiresIn: -5 }, 'expiresIn'],
      [{ label: '' }, 'label'],
      [{ admin: true }, 'body'],
      ['{nope', 'body'],
    ];
    for (const [body, field] of cases) {
      const a = await api('POST', '/v1/pods/app/links', body);
      expect(a.status, JSON.stringify(body)).toBe(400);
      expect(a.json.error.field).toBe(field);
    }
    expect((await api('POST', '/v1/pods/Bad_Slug/links', {})).json.error.field).toBe('slug');
    const unknown = await api('POST', '/v1/pods/nosuchpod/links', {});
    expect(unknown.status).toBe(404);
    expect(unknown.json.error.code).toBe('pod_not_found');
  });

  it('are listed without their tokens, and revoked one by one or all at once', async () => {
    const fresh = await api('POST', '/v1/pods/app/links', { label: 'listed' });
    const listed = await api('GET', '/v1/pods/app/links');
    expect(listed.status).toBe(200);
    const mine = listed.json.links.find((l: { id: string }) => l.id === fresh.json.id);
    expect(mine).toMatchObject({ label: 'listed', pod: 'app' });
    expect(JSON.stringify(listed.json)).not.toContain(fresh.json.token);

    expect((await api('DELETE', `/v1/pods/app/links/${fresh.json.id}`)).status).toBe(204);
    const again = await api('DELETE', `/v1/pods/app/links/${fresh.json.id}`);
    expect(again.status).toBe(404);
    expect((await api('DELETE', '/v1/pods/app/links/bad!id')).json.error.field).toBe('id');
    expect((await api('GET', '/v1/pods/app/links')).json.links.some((l: { id: string }) => l.id === fresh.json.id)).toBe(false);

    expect((await api('DELETE', '/v1/pods/app/links')).status).toBe(204);
    expect((await api('GET', '/v1/pods/app/links')).json.links).toEqual([]);
    expect((await world.access.revocations(NOW)).notBefore.get('app')).toBe(NOW + 1);
  });
});

describe('visibility', () => {
  it('is private by default and changes while the pod runs (new route generation on every gateway)', async () => {
    expect((await api('GET', '/v1/pods/app/access')).json).toEqual({ access: PRIVATE_BY_DEFAULT });
    expect((await send(gw.url, 'pod-app.localhost')).status).toBe(401);
    const before = (await world.routes.get('app'))!.generation;
    const policy: AccessPolicy = { default: 'private', ports: { '3000': 'public' } };
    const put = await api('PUT', '/v1/pods/app/access', policy);
    expect(put).toEqual({ status: 200, json: { access: policy } });
    expect((await world.routes.get('app'))!.generation).toBeGreaterThan(before);
    expect((await send(gw.url, 'pod-app.localhost')).status).toBe(200);
    expect((await send(gw.url, 'localhost-8080.pod-app.localhost')).status).toBe(401);
    await api('PUT', '/v1/pods/app/access', PRIVATE_BY_DEFAULT);
    expect((await send(gw.url, 'pod-app.localhost')).status).toBe(401);
  });

  it('refuses bad policies naming the field', async () => {
    expect((await api('PUT', '/v1/pods/app/access', { default: 'open', ports: {} })).json.error.field).toBe('default');
    expect((await api('PUT', '/v1/pods/app/access', { default: 'public', ports: { abc: 'public' } })).json.error.field).toMatch(/^ports/);
    expect((await api('PUT', '/v1/pods/app/access', { default: 'public', ports: { '3000': 'maybe' } })).json.error.field).toBe('ports.3000');
    expect((await api('PUT', '/v1/pods/nosuchpod/access', { default: 'public', ports: {} })).status).toBe(404);
  });
});

describe('the whole loop: API -> Redis -> gateway', () => {
  it('a minted link opens the pod through the gateway, and stops within seconds of its revocation', async () => {
    clock = Date.now();
    const link = await api('POST', '/v1/pods/app/links', { expiresIn: '1h' });
    const ask = () => send(gw.url, 'pod-app.localhost', { headers: { [TOKEN_HEADER]: link.json.token } });
    expect((await ask()).status).toBe(200);
    // The URL itself, as a browser would open it.
    const url = new URL(link.json.url);
    const opened = await send(gw.url, url.host, { path: `${url.pathname}${url.search}`, headers: { accept: 'text/html' } });
    expect(opened.status).toBe(302);
    expect(opened.headers.location).toBe('/');
    expect((await api('DELETE', `/v1/pods/app/links/${link.json.id}`)).status).toBe(204);
    await waitFor(async () => (await ask()).status === 401, { what: 'the gateway to refuse the revoked link', timeoutMs: 5_000 });
  });
});
