// Sleep and wake, the gateway's side: a real gateway on real Redis, real HTTP and WebSocket servers as the pods,
// and the test playing the orchestrator with the real stores: it subscribes to wake requests and answers them by
// writing a `starting`, then a `running` route (a new port, generation and router key), as an orchestrator does.
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { TOKEN_HEADER } from '../gateway/access/credentials.ts';
import { createRedis, waitReady } from '../shared/redis.ts';
import { RedisPodActivity } from '../shared/redis-pod-activity.ts';
import type { Redis } from 'ioredis';
import type { Route } from '../shared/route.ts';
import { closedPort, startHarness, startUpstream, type Harness, type Upstream } from './support/gateway-harness.ts';
import { parseRawHead, PUBLIC, rawExchange, send, sendHttp2, startTestGateway, startWorld, type AccessWorld, type TestGateway } from './support/access.ts';
import { waitFor } from './support/wait.ts';

const BROWSER = { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' };
const API = { accept: 'application/json' };
const WAKE_TIMEOUT_MS = 4000;
const PAGE_AFTER_MS = 300;

let world: AccessWorld;
let gw: TestGateway;
let pod: Upstream;
let wsPod: { port: number; close(): Promise<void> };
let orchestratorClient: Redis;
/** The orchestrator's view of the activity store: wake requests and last activity. */
let activity: RedisPodActivity;
let stopWakes: () => Promise<void>;
/** Every wake request received, in order. */
const wakes: string[] = [];
/** How the playing orchestrator answers a wake request for a slug (none: it ignores it). */
const onWake = new Map<string, (slug: string) => void>();
let slugs = 0;

const newSlug = (name: string) => `${name}-${++slugs}`;
const routerKey = () => randomBytes(32).toString('hex');
const wakesOf = (slug: string) => wakes.filter((s) => s === slug).length;

/** A sleeping route: the stopped pod's old port (nothing listens there) and router key. */
async function sleeping(slug: string, extra: Partial<Route> = {}): Promise<Route> {
  return world.route(slug, await closedPort(), { status: 'sleeping', routerKey: routerKey(), ...extra }, [gw.gateway]);
}

/** What the orchestrator writes once the pod runs again: the live pod's port, a new router key. */
function running(slug: string, port: number, extra: Partial<Route> = {}): Promise<Route> {
  return world.route(slug, port, { status: 'running', routerKey: routerKey(), ...extra }, [gw.gateway]);
}

/** Serve a request to a pod of its own and wait until the flush carrying it has landed. */
async function flushed(): Promise<void> {
  const marker = newSlug('flush');
  await running(marker, pod.port, { access: PUBLIC });
  expect((await send(gw.url, `pod-${marker}.localhost`, { headers: API })).status).toBe(200);
  await waitFor(async () => (await activity.lastActive([marker])).last.has(marker), { what: 'a flush' });
}

async function metric(g: TestGateway, name: string, labels = ''): Promise<number> {
  const text = await g.gateway.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

beforeAll(async () => {
  world = await startWorld();
  gw = await startTestGateway(world, {
    ACCESS_CONCEAL_PODS: 'true',
    WAKE_TIMEOUT_MS: String(WAKE_TIMEOUT_MS),
    WAKE_PAGE_AFTER_MS: String(PAGE_AFTER_MS),
    ACTIVITY_FLUSH_MS: '200',
  });
  pod = await startUpstream();
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  wss.on('connection', (ws) => ws.on('message', (data) => ws.send(`echo ${data}`)));
  wsPod = {
    port: (wss.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => r());
      }),
  };
  orchestratorClient = createRedis(world.redis.url);
  await waitReady(orchestratorClient);
  activity = new RedisPodActivity(orchestratorClient);
  stopWakes = await activity.subscribeWakes({
    onWake: (slug) => {
      wakes.push(slug);
      onWake.get(slug)?.(slug);
    },
  });
});
afterAll(async () => {
  await stopWakes?.();
  await gw?.close();
  await pod?.close();
  await wsPod?.close();
  await activity?.close();
  orchestratorClient?.disconnect();
  await world?.close();
});
beforeEach(() => onWake.clear());

describe('a request for a sleeping pod', () => {
  it('100 at once cause one wake request, and each gets the woken pod’s answer through its new route', async () => {
    const slug = newSlug('crowd');
    await sleeping(slug, { access: PUBLIC });
    // The orchestrator starts the pod at the first request; it runs once the test has seen all 100 held.
    onWake.set(slug, () => void world.route(slug, pod.port, { status: 'starting', access: PUBLIC }));
    const seenBefore = pod.requests.length;
    const answers = Array.from({ length: 100 }, (_, i) => send(gw.url, `pod-${slug}.localhost`, { path: `/n/${i}`, headers: API }));
    await waitFor(async () => (await metric(gw, 'podgate_wake_waiting')) === 100, { what: '100 requests held' });
    const live = await running(slug, pod.port, { access: PUBLIC });
    const results = await Promise.all(answers);
    expect(results.map((r) => r.status)).toEqual(Array(100).fill(200));
    expect(wakesOf(slug)).toBe(1);
    const reached = pod.requests.slice(seenBefore);
    expect(reached).toHaveLength(100);
    expect(new Set(reached.map((r) => r.headers['x-podgate-router-key']))).toEqual(new Set([live.routerKey]));
    expect(await metric(gw, 'podgate_wake_waiting')).toBe(0);
  });

  it('from an API client is held until the pod runs, then proxied with the pod’s answer', async () => {
    const slug = newSlug('api');
    await sleeping(slug);
    const { token } = await world.link(slug);
    onWake.set(slug, () => {
      void (async () => {
        await world.route(slug, pod.port, { status: 'starting' });
        await new Promise((r) => setTimeout(r, 300)); // the pod starting up
        await running(slug, pod.port);
      })();
    });
    const answer = await send(gw.url, `pod-${slug}.localhost`, { path: '/api/items?x=1', headers: { ...API, [TOKEN_HEADER]: token } });
    expect(answer.status).toBe(200);
    const echoed = JSON.parse(answer.body);
    expect(echoed.url).toBe('/api/items?x=1');
    expect(echoed.headers[TOKEN_HEADER.toLowerCase()]).toBeUndefined();
    expect(wakesOf(slug)).toBe(1);
  });

  it('from a browser gets the waking page after WAKE_PAGE_AFTER_MS, and its reload gets the pod’s page once it runs', async () => {
    const slug = newSlug('browser');
    await sleeping(slug, { access: PUBLIC });
    onWake.set(slug, () => void world.route(slug, pod.port, { status: 'starting', access: PUBLIC }));
    const path = '/<script>alert(1)</script>?q="quoted"';
    const page = await send(gw.url, `pod-${slug}.localhost`, { path: encodeURI(path), headers: BROWSER });
    expect(page.status).toBe(503);
    expect(page.headers['retry-after']).toMatch(/^\d+$/);
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toMatch(/<meta http-equiv="refresh" content="\d+">/);
    // Nothing of the request is in it, and it loads nothing.
    expect(page.body).not.toContain(slug);
    expect(page.body).not.toContain('script');
    expect(page.body).not.toMatch(/src=|href=|url\(/i);
    // The reload while the pod is starting is held again (no bare 503 for "starting"), and gets the page again.
    await waitFor(() => gw.gateway.table.lookup(slug)?.status === 'starting', { what: 'starting route' });
    const again = await send(gw.url, `pod-${slug}.localhost`, { headers: BROWSER });
    expect(again.status).toBe(503);
    expect(again.body).toContain('Waking up');
    await running(slug, pod.port, { access: PUBLIC });
    const woken = await send(gw.url, `pod-${slug}.localhost`, { path: '/index.html', headers: BROWSER });
    expect(woken.status).toBe(200);
    expect(JSON.parse(woken.body).url).toBe('/index.html');
    expect(wakesOf(slug)).toBe(1);
  });

  it('is answered 503 with Retry-After at WAKE_TIMEOUT_MS; the wake request is repeated while it waits', async () => {
    const slug = newSlug('never');
    await sleeping(slug, { access: PUBLIC });
    const answer = await send(gw.url, `pod-${slug}.localhost`, { headers: API });
    expect(answer.status).toBe(503);
    expect(answer.headers['retry-after']).toMatch(/^\d+$/);
    expect(JSON.parse(answer.body).error.code).toBe('pod_unavailable');
    // Pub/sub may lose a message: the gateway asks again while requests wait (every 2 s, the timeout is 4 s).
    expect(wakesOf(slug)).toBeGreaterThanOrEqual(2);
  });

  it('is answered like a stopped pod when the route is deleted, or the start fails, while it waits', async () => {
    const deleted = newSlug('deleted');
    await sleeping(deleted, { access: PUBLIC });
    onWake.set(deleted, () => void world.routes.nextGeneration().then((g) => world.routes.delete(deleted, g)));
    const a = await send(gw.url, `pod-${deleted}.localhost`, { headers: API });
    expect(a.status).toBe(503);
    expect(JSON.parse(a.body).error).toMatchObject({ code: 'pod_unavailable', message: `pod "${deleted}" is stopped` });

    const failed = newSlug('failed');
    await sleeping(failed, { access: PUBLIC });
    onWake.set(failed, () => {
      void (async () => {
        await world.route(failed, pod.port, { status: 'starting', access: PUBLIC });
        await world.route(failed, pod.port, { status: 'stopped', access: PUBLIC });
      })();
    });
    const b = await send(gw.url, `pod-${failed}.localhost`, { headers: API });
    expect(b.status).toBe(503);
    expect(JSON.parse(b.body).error.message).toBe(`pod "${failed}" is stopped`);
    // An orchestrator whose start failed may put the pod back to sleep: answered at once, not at the deadline.
    const relapsed = newSlug('relapsed');
    await sleeping(relapsed, { access: PUBLIC });
    onWake.set(relapsed, () => {
      void (async () => {
        await world.route(relapsed, pod.port, { status: 'starting', access: PUBLIC });
        await world.route(relapsed, await closedPort(), { status: 'sleeping', access: PUBLIC });
      })();
    });
    const c = await send(gw.url, `pod-${relapsed}.localhost`, { headers: API });
    expect(c.status).toBe(503);
    expect(JSON.parse(c.body).error.message).toBe(`pod "${relapsed}" is not starting: its wake failed`);
  });

  it('stops waiting when its client goes away, freeing its connection slot', async () => {
    const slug = newSlug('leaver');
    await sleeping(slug, { access: PUBLIC, maxConnections: 1 });
    const closedBefore = await metric(gw, 'podgate_wake_held_requests_total', 'outcome="client_closed"');
    const req = request(`${gw.url}/`, { headers: { host: `pod-${slug}.localhost`, ...API }, agent: false });
    req.on('error', () => {});
    req.end();
    await waitFor(async () => (await metric(gw, 'podgate_wake_waiting')) === 1, { what: 'one request held' });
    req.destroy();
    await waitFor(async () => (await metric(gw, 'podgate_wake_held_requests_total', 'outcome="client_closed"')) === closedBefore + 1, { what: 'client_closed' });
    expect(await metric(gw, 'podgate_wake_waiting')).toBe(0);
    // The single connection slot is free again: the next request is held (not 503 pod_busy) and served once it runs.
    onWake.set(slug, () => void running(slug, pod.port, { access: PUBLIC, maxConnections: 1 }));
    const next = await send(gw.url, `pod-${slug}.localhost`, { headers: API });
    expect(next.status).toBe(200);
  });
});

describe('an HTTP/2 request for a sleeping pod', () => {
  it('is held on its stream and answered by the woken pod', async () => {
    const tls = await startTestGateway(world, { HTTPS_PORT: '0', WAKE_PAGE_AFTER_MS: '20000' });
    try {
      const slug = newSlug('h2');
      await world.route(slug, await closedPort(), { status: 'sleeping', access: PUBLIC }, [tls.gateway]);
      onWake.set(slug, () => void world.route(slug, pod.port, { status: 'running', access: PUBLIC }, [tls.gateway]));
      const answer = await sendHttp2(tls.httpsUrl!, `pod-${slug}.localhost`, '/over/h2');
      expect(answer.status).toBe(200);
      expect(pod.requests.at(-1)?.url).toBe('/over/h2');
    } finally {
      await tls.close();
    }
  });
});

describe('a WebSocket opened while the pod sleeps', () => {
  it('connects once the pod runs, and messages flow', async () => {
    const slug = newSlug('ws');
    await sleeping(slug, { access: PUBLIC });
    onWake.set(slug, () => {
      void (async () => {
        await world.route(slug, wsPod.port, { status: 'starting', access: PUBLIC });
        await new Promise((r) => setTimeout(r, 300));
        await running(slug, wsPod.port, { access: PUBLIC });
      })();
    });
    const ws = new WebSocket(`ws://127.0.0.1:${gw.gateway.httpPort}/socket`, { headers: { host: `localhost-7681.pod-${slug}.localhost` } });
    const echoed = await new Promise<string>((resolve, reject) => {
      ws.once('open', () => ws.send('hello'));
      ws.once('message', (data) => resolve(String(data)));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`status ${res.statusCode}`)));
    });
    expect(echoed).toBe('echo hello');
    expect(wakesOf(slug)).toBe(1);
    // Open WebSockets keep the pod active with no request at all: every flush touches it again.
    const touched = async () => (await activity.lastActive([slug])).last.get(slug) ?? 0;
    await waitFor(async () => (await touched()) > 0, { what: 'activity reported' });
    const first = await touched();
    await waitFor(async () => (await touched()) > first, { what: 'activity touched again' });
    // Closed, it no longer counts: once the flush that carries a later request has landed, the pod's time stands.
    const openBefore = await metric(gw, 'podgate_websockets_open');
    ws.close();
    await waitFor(async () => (await metric(gw, 'podgate_websockets_open')) === openBefore - 1, { what: 'tunnel closed' });
    await flushed();
    const closedAt = await touched();
    await flushed();
    expect(await touched()).toBe(closedAt);
  });

  it('that goes away while held stops waiting', async () => {
    const slug = newSlug('wsleaver');
    await sleeping(slug, { access: PUBLIC });
    const closedBefore = await metric(gw, 'podgate_wake_held_requests_total', 'outcome="client_closed"');
    const ws = new WebSocket(`ws://127.0.0.1:${gw.gateway.httpPort}/`, { headers: { host: `localhost-7681.pod-${slug}.localhost` } });
    ws.on('error', () => {});
    await waitFor(async () => (await metric(gw, 'podgate_wake_waiting')) === 1, { what: 'the upgrade held' });
    ws.terminate();
    await waitFor(async () => (await metric(gw, 'podgate_wake_held_requests_total', 'outcome="client_closed"')) === closedBefore + 1, { what: 'client_closed' });
    expect(await metric(gw, 'podgate_wake_waiting')).toBe(0);
  });
});

describe('a stranger without a token', () => {
  const raw = (slug: string, lines: string[]) =>
    rawExchange(gw.gateway.httpPort, [lines[0], `Host: pod-${slug}.localhost`, ...lines.slice(1), 'Connection: close', '', ''].join('\r\n'));
  const normalise = (answer: string, slug: string) => answer.replace(/^date: .*\r\n/im, '').replaceAll(slug, 'SLUG');
  const CASES: Record<string, string[]> = {
    'an API request': ['GET /api HTTP/1.1', 'Accept: application/json'],
    'a browser navigation': ['GET / HTTP/1.1', 'Accept: text/html'],
    'a WebSocket upgrade': ['GET /ws HTTP/1.1', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`],
  };

  it('is refused by a private sleeping pod exactly as by a running one, and wakes nothing', async () => {
    const asleep = newSlug('private-asleep');
    const awake = newSlug('private-awake');
    await sleeping(asleep);
    await running(awake, pod.port);
    const seenByPod = pod.requests.length;
    for (const [name, lines] of Object.entries(CASES)) {
      const a = normalise(await raw(asleep, lines), asleep);
      const b = normalise(await raw(awake, lines), awake);
      expect(parseRawHead(a).status, name).toBe(401);
      expect(a, name).toBe(b);
    }
    expect(pod.requests.length).toBe(seenByPod);
    // A wake published for a later admitted request arrives after any the stranger's would have caused (one
    // connection publishes both, in order): it is the proof that none was.
    const marker = newSlug('marker');
    await sleeping(marker, { access: PUBLIC });
    onWake.set(marker, () => void running(marker, pod.port, { access: PUBLIC }));
    expect((await send(gw.url, `pod-${marker}.localhost`, { headers: API })).status).toBe(200);
    expect(wakesOf(marker)).toBe(1);
    expect(wakesOf(asleep)).toBe(0);
    expect(gw.gateway.table.lookup(asleep)?.status).toBe('sleeping');
  });
});

describe('activity', () => {
  it('is reported for pods served, and not for requests the access check refused', async () => {
    const refused = newSlug('refused');
    const served = newSlug('served');
    await running(refused, pod.port);
    await running(served, pod.port, { access: PUBLIC });
    expect((await send(gw.url, `pod-${refused}.localhost`, { headers: API })).status).toBe(401);
    expect((await send(gw.url, `pod-${refused}.localhost`, { headers: { ...API, [TOKEN_HEADER]: 'pg1.forged.sig' } })).status).toBe(401);
    expect((await send(gw.url, `pod-${served}.localhost`, { headers: API })).status).toBe(200);
    // Flushes go out one at a time in order: once the served pod is seen, a touch of the refused one would be too.
    await waitFor(async () => (await activity.lastActive([served])).last.has(served), { what: 'served pod touched' });
    expect((await activity.lastActive([refused])).last.has(refused)).toBe(false);
  });

  it('is flushed on shutdown', async () => {
    const other = await startTestGateway(world, { ACTIVITY_FLUSH_MS: '600000' });
    const slug = newSlug('lastwords');
    await world.route(slug, pod.port, { access: PUBLIC }, [other.gateway]);
    expect((await send(other.url, `pod-${slug}.localhost`, { headers: API })).status).toBe(200);
    expect((await activity.lastActive([slug])).last.has(slug)).toBe(false);
    await other.close();
    expect((await activity.lastActive([slug])).last.has(slug)).toBe(true);
  });
});

describe('bounds', () => {
  it('holds at most WAKE_MAX_WAITING requests; beyond it, 503 at once', async () => {
    const small = await startTestGateway(world, { WAKE_MAX_WAITING: '2', WAKE_TIMEOUT_MS: '20000' });
    try {
      const slug = newSlug('full');
      await world.route(slug, await closedPort(), { status: 'sleeping', access: PUBLIC }, [small.gateway]);
      const held = [0, 1].map(() => send(small.url, `pod-${slug}.localhost`, { headers: API }));
      await waitFor(async () => (await metric(small, 'podgate_wake_waiting')) === 2, { what: 'two held' });
      const third = await send(small.url, `pod-${slug}.localhost`, { headers: API });
      expect(third.status).toBe(503);
      expect(third.headers['retry-after']).toMatch(/^\d+$/);
      await world.route(slug, pod.port, { status: 'running', access: PUBLIC }, [small.gateway]);
      expect((await Promise.all(held)).map((a) => a.status)).toEqual([200, 200]);
    } finally {
      await small.close();
    }
  });
});

describe('shutdown', () => {
  it('answers held requests 503 with Retry-After at once, not at their wake deadline', async () => {
    const other = await startTestGateway(world, { WAKE_TIMEOUT_MS: '60000' });
    const slug = newSlug('closing');
    await world.route(slug, await closedPort(), { status: 'sleeping', access: PUBLIC }, [other.gateway]);
    const held = send(other.url, `pod-${slug}.localhost`, { headers: API });
    await waitFor(async () => (await metric(other, 'podgate_wake_waiting')) === 1, { what: 'one held' });
    const [answer] = await Promise.all([held, other.close()]);
    expect(answer.status).toBe(503);
    expect(answer.headers['retry-after']).toMatch(/^\d+$/);
  });
});

describe('while Redis is down', () => {
  let h: Harness | undefined;
  afterAll(async () => h?.close());

  it('requests are served, the failed activity report is logged once, and reports resume with Redis', async () => {
    h = await startHarness({ ACTIVITY_FLUSH_MS: '100', LOG_LEVEL: 'info' });
    const up = await startUpstream();
    try {
      await h.route('steady', up.port);
      expect((await send(h.url, 'pod-steady.localhost')).status).toBe(200);
      await h.redis.kill();
      const failures = async () => Number((await h!.gateway.registry.metrics()).match(/^podgate_activity_flush_failures_total (\d+)/m)?.[1] ?? 0);
      for (let i = 0; i < 3; i++) {
        const before = await failures();
        expect((await send(h!.url, 'pod-steady.localhost')).status).toBe(200);
        await waitFor(async () => (await failures()) > before, { what: `failed flush ${i + 1}` });
      }
      expect(h.logs.filter((l) => l.msg.startsWith('pod activity could not be reported'))).toHaveLength(1);
      await h.redis.restart();
      await waitFor(() => h!.logs.some((l) => l.msg === 'pod activity is reported again'), { what: 'reports resumed', timeoutMs: 15_000 });
      const reader = createRedis(h.redis.url);
      try {
        await waitReady(reader);
        // The activity of the outage was carried to the first flush that worked.
        expect((await new RedisPodActivity(reader).lastActive(['steady'])).last.has('steady')).toBe(true);
      } finally {
        reader.disconnect();
      }
    } finally {
      await up.close();
    }
  });
});
