// RouteTable semantics against the embedded store (the same code path as Redis, without a server).
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../shared/log.ts';
import { MemoryRouteStore } from '../shared/memory-route-store.ts';
import { route } from '../shared/route-store.contract.ts';
import type { Route } from '../shared/route.ts';
import type { RouteStore } from '../shared/route-store.ts';
import { waitFor } from '../test/support/wait.ts';
import { RouteTable } from './route-table.ts';

const tables: RouteTable[] = [];
afterEach(async () => {
  for (const t of tables.splice(0)) await t.close();
});

async function table(store: RouteStore, onChange?: (slug: string, prev?: Route, next?: Route) => void) {
  const t = new RouteTable(store, { resyncIntervalMs: 60_000, log: silentLogger(), onChange });
  tables.push(t);
  await t.start();
  return t;
}

describe('RouteTable', () => {
  it('loads existing routes at start and follows events', async () => {
    const store = new MemoryRouteStore();
    await store.put(route('a', 1));
    const t = await table(store);
    expect(t.ready).toBe(true);
    expect(t.lookup('a')?.generation).toBe(1);
    await store.put(route('b', 2));
    await waitFor(() => t.lookup('b') !== undefined);
    await store.delete('a', 3);
    await waitFor(() => t.lookup('a') === undefined);
    expect(t.size).toBe(1);
  });

  it('never lets an older event replace a newer route, even out of order', async () => {
    const t = await table(new MemoryRouteStore());
    t.apply({ type: 'put', route: route('a', 5, { port: 30005 }) });
    t.apply({ type: 'put', route: route('a', 4, { port: 30004 }) });
    t.apply({ type: 'delete', slug: 'a', generation: 3 });
    expect(t.lookup('a')?.port).toBe(30005);
    t.apply({ type: 'delete', slug: 'a', generation: 6 });
    t.apply({ type: 'put', route: route('a', 5) }); // a late put after the delete
    expect(t.lookup('a')).toBeUndefined();
  });

  it('a resync makes the store authoritative: drops what it lacks, takes what it has', async () => {
    const store = new MemoryRouteStore();
    const t = await table(store);
    t.apply({ type: 'put', route: route('ghost', 9) }); // an event for a route the store does not hold
    await store.put(route('real', 1));
    await t.resync();
    expect(t.lookup('ghost')).toBeUndefined();
    expect(t.lookup('real')).toBeDefined();
  });

  it('a resync never lets a lower generation win (a store restored from an old snapshot), and takes newer ones', async () => {
    let store = new MemoryRouteStore();
    await store.put(route('a', 100, { port: 30100 }));
    await store.put(route('b', 100, { port: 30200 }));
    const source: RouteStore = {
      get: (s) => store.get(s),
      scan: () => store.scan(),
      put: (r) => store.put(r),
      delete: (s, g) => store.delete(s, g),
      nextGeneration: () => store.nextGeneration(),
      subscribe: (sub) => store.subscribe(sub),
      close: () => store.close(),
    };
    const t = await table(source);
    store = new MemoryRouteStore(); // the old snapshot: a's port was freed since, b was republished
    await store.put(route('a', 2, { port: 30002 }));
    await store.put(route('b', 101, { port: 30201 }));
    await t.resync();
    expect(t.lookup('a')?.port).toBe(30100);
    expect(t.lookup('b')?.port).toBe(30201);
  });

  it('tells when a route is replaced or removed, so its pool can be retired', async () => {
    const changes: string[] = [];
    const t = await table(new MemoryRouteStore(), (slug, prev, next) => changes.push(`${slug}:${prev?.generation}->${next?.generation}`));
    t.apply({ type: 'put', route: route('a', 1) });
    t.apply({ type: 'put', route: route('a', 2) });
    t.apply({ type: 'delete', slug: 'a', generation: 3 });
    expect(changes).toEqual(['a:1->2', 'a:2->undefined']);
  });

  it('keeps its snapshot when a resync fails', async () => {
    const store = new MemoryRouteStore();
    await store.put(route('a', 1));
    const t = await table(store);
    store.scan = async function* () {
      throw new Error('Redis is down');
    };
    expect(await t.resync()).toBe(false);
    expect(t.lookup('a')).toBeDefined();
  });
});
