// Sleep and wake end to end: a real orchestrator, a real gateway and a real gVisor pod on real Redis. The pod has a
// short idle timeout and falls asleep by itself; a browser-style request (following the waking page's refresh as a
// browser does) wakes it and gets its page; a WebSocket to its terminal opened while it sleeps connects once it
// runs; 100 requests at once cause one start; a stranger's request for a private port wakes nothing.
import { request } from 'node:http';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOKEN_HEADER } from '../shared/access-token.ts';
import { createRedis, waitReady } from '../shared/redis.ts';
import { RedisPodActivity } from '../shared/redis-pod-activity.ts';
import type { Redis } from 'ioredis';
import { closedPort } from './support/gateway-harness.ts';
import { testPodImage, uniqueSlug } from './support/orchestrator.ts';
import { shellOverWebSocket } from './support/pod-shell.ts';
import { startPodWorld, type PodWorld } from './support/pod-world.ts';
import { waitFor } from './support/wait.ts';
import { send, type Answer } from './support/access.ts';

const APP_PORT = 3000;
const TERMINAL_PORT = 7681;
/** The shortest idle timeout a spec may set. */
const IDLE_TIMEOUT = '5s';
/** Falling asleep takes the idle timeout, the orchestrator's next idle check and the stop; with room for a busy machine. */
const ASLEEP_WITHIN_MS = 60_000;
/** Shorter than any start: the browser always meets the waking page first, and its reload gets the pod's page. */
const PAGE_AFTER_MS = 200;
const BROWSER = { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' };

let pods: PodWorld;
let subscriber: Redis;
let activity: RedisPodActivity;
let stopWakes: () => Promise<void>;
const wakes: string[] = [];
const slug = uniqueSlug('zz');
const host = (port: number) => `localhost-${port}.pod-${slug}.localhost`;
const route = () => pods.gw.gateway.table.lookup(slug);

/** The pod's container runs (Docker's view). */
function running(): Promise<boolean> {
  return new Docker().getContainer(`podgate-${slug}`).inspect().then((c) => c.State.Running, () => false);
}

/** Wake entries of the pod's log: one per start of the sleeping pod. */
async function wakeEntries(): Promise<number> {
  const logs = await pods.api('GET', `/v1/pods/${slug}/logs`);
  return (logs.json.entries as { label?: string; note?: string }[]).filter((e) => e.label === 'wake' && e.note?.startsWith('woken')).length;
}

async function putToSleep(): Promise<void> {
  expect((await pods.api('POST', `/v1/pods/${slug}/sleep`)).status).toBe(200);
  await waitFor(() => route()?.status === 'sleeping', { what: 'the sleeping route on the gateway', timeoutMs: 30_000 });
}

/** GET as a browser does: the waking page reloads itself (meta refresh) until the pod's own page comes. */
async function browse(path = '/'): Promise<{ answer: Answer; pages: number }> {
  let pages = 0;
  for (let i = 0; i < 60; i++) {
    const answer = await send(pods.gw.url, host(APP_PORT), { path, headers: BROWSER });
    const refresh = /<meta http-equiv="refresh" content="(\d+)">/.exec(answer.body);
    if (answer.status !== 503 || !refresh) return { answer, pages };
    pages++;
    await new Promise((r) => setTimeout(r, Number(refresh[1]) * 1000));
  }
  throw new Error('the waking page never gave way to the pod');
}

beforeAll(async () => {
  pods = await startPodWorld({ image: await testPodImage(), portRange: '38820-38839', gatewayEnv: { ACTIVITY_FLUSH_MS: '1000', WAKE_PAGE_AFTER_MS: String(PAGE_AFTER_MS) } });
  subscriber = createRedis(pods.world.redis.url);
  await waitReady(subscriber);
  activity = new RedisPodActivity(subscriber);
  stopWakes = await activity.subscribeWakes({ onWake: (s) => wakes.push(s) });
  await pods.createPod({
    slug,
    services: [{ name: 'app', port: APP_PORT }, { name: 'terminal', port: TERMINAL_PORT }],
    access: { default: 'private', ports: { [String(APP_PORT)]: 'public' } },
    idleTimeout: IDLE_TIMEOUT,
  });
});

afterAll(async () => {
  await stopWakes?.();
  await activity?.close();
  subscriber?.disconnect();
  await pods?.close();
});

describe('a real gVisor pod with an idle timeout', () => {
  it('falls asleep once idle: its route says sleeping and its container is stopped', async () => {
    expect((await send(pods.gw.url, host(APP_PORT))).status).toBe(200);
    await waitFor(() => route()?.status === 'sleeping', { what: 'the pod to fall asleep', timeoutMs: ASLEEP_WITHIN_MS, intervalMs: 200 });
    // The route says sleeping as the stop begins; the container follows.
    await waitFor(async () => !(await running()), { what: 'the container stopped', timeoutMs: 30_000, intervalMs: 200 });
  });

  it('is not woken by a stranger’s request for its private terminal', async () => {
    expect(route()?.status).toBe('sleeping');
    const refused = await send(pods.gw.url, host(TERMINAL_PORT), { headers: BROWSER });
    expect(refused.status).toBe(401);
    // A wake request for a route of the test's own (no pod behind it: no orchestrator acts on it) is published after
    // any the stranger's request would have caused, on the same connection: once it arrives, none came before it.
    const marker = `marker-${slug}`.slice(0, 40);
    await pods.world.route(marker, await closedPort(), { status: 'sleeping', access: { default: 'public', ports: {} } }, [pods.gw.gateway]);
    const held = request(`${pods.gw.url}/`, { headers: { host: `pod-${marker}.localhost`, accept: 'application/json' }, agent: false });
    held.on('error', () => {});
    held.end();
    await waitFor(() => wakes.includes(marker), { what: 'the marker wake request' });
    held.destroy();
    expect(wakes).not.toContain(slug);
    expect(route()?.status).toBe('sleeping');
    expect(await running()).toBe(false);
  });

  it('wakes for a browser, which gets the waking page, reloads by itself and gets the pod’s page', async () => {
    const before = await wakeEntries();
    const { answer, pages } = await browse('/');
    expect(pages).toBeGreaterThanOrEqual(1);
    expect(answer.status).toBe(200);
    expect(answer.body).toContain('demo app on port 3000');
    expect(route()?.status).toBe('running');
    expect(await running()).toBe(true);
    expect(await wakeEntries()).toBe(before + 1);
  });

  it('connects a WebSocket to its terminal opened while it sleeps, once it runs', async () => {
    await putToSleep();
    const link = await pods.api('POST', `/v1/pods/${slug}/links`, { port: TERMINAL_PORT });
    expect(link.status).toBe(201);
    expect(await shellOverWebSocket(pods.gw.gateway.httpPort, { host: host(TERMINAL_PORT), [TOKEN_HEADER]: link.json.token })).toContain('sum=42');
    expect(route()?.status).toBe('running');
  });

  it('starts once for 100 requests at once', async () => {
    await putToSleep();
    const before = await wakeEntries();
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) => send(pods.gw.url, host(APP_PORT), { path: `/?n=${i}`, headers: { accept: 'application/json' } })),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(100).fill(200));
    expect(await wakeEntries()).toBe(before + 1);
  });
});
