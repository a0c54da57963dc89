// The waker over a real route table on the embedded stores (the same code path as Redis, without a server): one
// wake per pod however many wait, the route table's changes ending the wait, the wake outliving a browser's page
// so the reload that finds the route `starting` is held too, and the bound on held requests.
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../shared/log.ts';
import { MemoryRouteStore } from '../shared/memory-route-store.ts';
import { MemoryPodActivity } from '../shared/pod-activity.ts';
import { route } from '../shared/route-store.contract.ts';
import type { Route } from '../shared/route.ts';
import { waitFor } from '../test/support/wait.ts';
import { RouteTable } from './route-table.ts';
import { routeVerdict, Waker, type WakeOutcomeKind } from './waker.ts';

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function world(options: { timeoutMs?: number; maxWaiting?: number; repeatMs?: number } = {}) {
  const store = new MemoryRouteStore();
  const table = new RouteTable(store, { resyncIntervalMs: 60_000, log: silentLogger() });
  await table.start();
  const activity = new MemoryPodActivity();
  const wakes: string[] = [];
  await activity.subscribeWakes({ onWake: (slug) => wakes.push(slug) });
  const settled: WakeOutcomeKind[] = [];
  const waker = new Waker(
    { lookup: (s) => table.lookup(s), onRouteChange: (l) => table.onRouteChange(l), activity },
    {
      timeoutMs: options.timeoutMs ?? 10_000,
      maxWaiting: options.maxWaiting ?? 100,
      repeatMs: options.repeatMs,
      log: silentLogger(),
      metrics: { wakeRequested: () => {}, settled: (o) => settled.push(o) },
    },
  );
  closers.push(() => table.close(), () => waker.close());
  const put = async (slug: string, extra: Partial<Route>) => {
    const r = route(slug, await store.nextGeneration(), extra);
    await store.put(r);
    await waitFor(() => table.lookup(slug)?.generation === r.generation, { what: `route ${slug}` });
    return r;
  };
  return { store, table, waker, wakes, settled, put };
}

describe('routeVerdict', () => {
  it('keeps waiting while the route sleeps or starts; running is woken; anything else is gone', () => {
    expect(routeVerdict(route('a', 1, { status: 'sleeping' }))).toBeUndefined();
    expect(routeVerdict(route('a', 1, { status: 'starting' }))).toBeUndefined();
    expect(routeVerdict(route('a', 1, { status: 'running' }))?.kind).toBe('woken');
    expect(routeVerdict(route('a', 1, { status: 'stopped' }))?.kind).toBe('gone');
    expect(routeVerdict(undefined)?.kind).toBe('gone');
  });
});

describe('Waker', () => {
  it('asks once for many held requests, and hands each the running route', async () => {
    const w = await world();
    await w.put('p', { status: 'sleeping' });
    const held = Array.from({ length: 50 }, () => w.waker.hold('p'));
    expect(w.waker.waiting).toBe(50);
    await waitFor(() => w.wakes.length === 1, { what: 'the wake request' });
    const live = await w.put('p', { status: 'running', port: 30002 });
    const outcomes = await Promise.all(held.map((h) => h.outcome));
    expect(outcomes.every((o) => o.kind === 'woken' && o.route.generation === live.generation)).toBe(true);
    expect(w.wakes).toEqual(['p']);
    expect(w.waker.waiting).toBe(0);
    expect(w.waker.isWaking('p')).toBe(false);
  });

  it('repeats the wake request while requests wait and the pod still sleeps', async () => {
    const w = await world({ repeatMs: 100 });
    await w.put('p', { status: 'sleeping' });
    const held = w.waker.hold('p');
    await waitFor(() => w.wakes.length >= 3, { what: 'repeated wake requests' });
    expect(new Set(w.wakes)).toEqual(new Set(['p']));
    held.cancel();
    expect((await held.outcome).kind).toBe('client_closed');
    expect(w.waker.waiting).toBe(0);
  });

  it('ends the wait when the route stops or is deleted', async () => {
    const w = await world();
    await w.put('a', { status: 'sleeping' });
    await w.put('b', { status: 'sleeping' });
    const a = w.waker.hold('a');
    const b = w.waker.hold('b');
    await w.put('a', { status: 'stopped' });
    await w.store.delete('b', await w.store.nextGeneration());
    expect((await a.outcome).kind).toBe('gone');
    expect((await b.outcome).kind).toBe('gone');
  });

  it('ends the wait as failed when the pod starts and falls back asleep; a new sleeping generation alone keeps it', async () => {
    const w = await world();
    await w.put('p', { status: 'sleeping' });
    const held = w.waker.hold('p');
    await w.put('p', { status: 'sleeping' });
    expect(w.waker.waiting).toBe(1);
    await w.put('p', { status: 'starting' });
    await w.put('p', { status: 'sleeping' });
    expect((await held.outcome).kind).toBe('failed');
    expect(w.waker.isWaking('p')).toBe(false);
  });

  it('keeps the wake after a browser got its page, so the reload that finds the route starting is held', async () => {
    const w = await world();
    await w.put('p', { status: 'sleeping' });
    const first = w.waker.hold('p', { pageAfterMs: 20 });
    expect((await first.outcome).kind).toBe('page');
    await w.put('p', { status: 'starting' });
    expect(w.waker.isWaking('p')).toBe(true);
    const reload = w.waker.hold('p', { pageAfterMs: 5_000 });
    await w.put('p', { status: 'running' });
    expect((await reload.outcome).kind).toBe('woken');
    expect(w.wakes).toEqual(['p']);
  });

  it('forgets a wake nobody asked for within the timeout', async () => {
    const w = await world({ timeoutMs: 200 });
    await w.put('p', { status: 'sleeping' });
    expect((await w.waker.hold('p').outcome).kind).toBe('timeout');
    expect(w.waker.isWaking('p')).toBe(true);
    await waitFor(() => !w.waker.isWaking('p'), { what: 'the wake forgotten' });
  });

  it('holds at most maxWaiting requests, and none once closed', async () => {
    const w = await world({ maxWaiting: 2 });
    await w.put('p', { status: 'sleeping' });
    const held = [w.waker.hold('p'), w.waker.hold('p')];
    expect((await w.waker.hold('p').outcome).kind).toBe('full');
    w.waker.close();
    expect((await Promise.all(held.map((h) => h.outcome))).map((o) => o.kind)).toEqual(['shutdown', 'shutdown']);
    expect((await w.waker.hold('p').outcome).kind).toBe('shutdown');
    expect(w.waker.waiting).toBe(0);
  });

  it('answers at once for a route that runs already or is gone', async () => {
    const w = await world();
    await w.put('up', { status: 'running' });
    expect((await w.waker.hold('up').outcome).kind).toBe('woken');
    expect((await w.waker.hold('nobody').outcome).kind).toBe('gone');
    expect(w.wakes).toEqual([]);
  });
});
