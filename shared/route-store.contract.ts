// One contract suite for every RouteStore implementation (run by memory- and redis-route-store.test.ts).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Route, RouteEvent } from './route.ts';
import { allRoutes, type RouteStore } from './route-store.ts';
import { waitFor } from '../test/support/wait.ts';

export function route(slug: string, generation: number, extra: Partial<Route> = {}): Route {
  return {
    slug,
    host: '127.0.0.1',
    port: 30001,
    status: 'running',
    generation,
    defaultPort: 3000,
    updatedAt: new Date().toISOString(),
    ...extra,
  };
}

export function runRouteStoreContract(name: string, newStore: () => Promise<RouteStore>) {
  describe(`RouteStore contract: ${name}`, () => {
    let store: RouteStore;
    beforeEach(async () => {
      store = await newStore();
    });
    afterEach(async () => {
      await store.close();
    });

    it('stores and reads a route', async () => {
      expect(await store.put(route('app', 1))).toBe(true);
      expect(await store.get('app')).toMatchObject({ slug: 'app', generation: 1, port: 30001 });
      expect(await store.get('missing')).toBeUndefined();
    });

    it('never lets a lower or equal generation replace a higher one', async () => {
      await store.put(route('app', 5, { port: 30005 }));
      expect(await store.put(route('app', 4, { port: 30004 }))).toBe(false);
      expect(await store.put(route('app', 5, { port: 30006 }))).toBe(false);
      expect((await store.get('app'))?.port).toBe(30005);
      expect(await store.put(route('app', 6, { port: 30007 }))).toBe(true);
      expect((await store.get('app'))?.port).toBe(30007);
    });

    it('a late delete of an older generation does not remove a newer route', async () => {
      await store.put(route('app', 10));
      expect(await store.delete('app', 9)).toBe(false);
      expect(await store.get('app')).toBeDefined();
      expect(await store.delete('app', 11)).toBe(true);
      expect(await store.get('app')).toBeUndefined();
    });

    it('a late write of an older generation cannot resurrect a deleted route', async () => {
      await store.put(route('app', 10));
      await store.delete('app', 12);
      expect(await store.put(route('app', 11))).toBe(false);
      expect(await store.get('app')).toBeUndefined();
      expect(await store.put(route('app', 13))).toBe(true);
    });

    it('hands out increasing generations', async () => {
      const a = await store.nextGeneration();
      const b = await store.nextGeneration();
      expect(b).toBeGreaterThan(a);
      expect(Number.isSafeInteger(b)).toBe(true);
    });

    it('scans every route in batches', async () => {
      for (let i = 0; i < 2500; i++) await store.put(route(`pod${i}`, 1));
      const all = await allRoutes(store);
      expect(all).toHaveLength(2500);
      expect(new Set(all.map((r) => r.slug)).size).toBe(2500);
    });

    it('publishes puts and deletes to subscribers', async () => {
      const events: RouteEvent[] = [];
      const unsubscribe = await store.subscribe({ onEvent: (e) => events.push(e), onResync: () => {} });
      await store.put(route('app', 1));
      await store.put(route('app', 0)); // stale: no event
      await store.delete('app', 2);
      await waitFor(() => events.length >= 2, { what: 'two events' });
      expect(events[0]).toMatchObject({ type: 'put', route: { slug: 'app', generation: 1 } });
      expect(events[1]).toEqual({ type: 'delete', slug: 'app', generation: 2 });
      await unsubscribe();
      await store.put(route('app', 3));
      await new Promise((r) => setTimeout(r, 50));
      expect(events).toHaveLength(2);
    });

    it('keeps a writer epoch: a new one at the end of every pass, above every generation handed out', async () => {
      expect(await store.epochs()).toEqual(new Map());
      const before = await store.nextGeneration();
      const first = await store.endEpochPass('10.0.0.1', await store.beginEpochPass('10.0.0.1'));
      expect(first).toBeGreaterThan(before);
      expect(await store.epochs()).toEqual(new Map([['10.0.0.1', first]]));
      const renewed = await store.endEpochPass('10.0.0.1', await store.beginEpochPass('10.0.0.1'));
      expect(renewed).toBeGreaterThan(first!);
      expect(await store.nextGeneration()).toBeGreaterThan(renewed!);
      // One epoch per writer host.
      const other = await store.endEpochPass('10.0.0.2', await store.beginEpochPass('10.0.0.2'));
      expect(await store.epochs()).toEqual(new Map([['10.0.0.1', renewed], ['10.0.0.2', other]]));
    });

    it('a pass whose token is not the latest asserts nothing', async () => {
      const stale = await store.beginEpochPass('10.0.0.1');
      const latest = await store.beginEpochPass('10.0.0.1');
      expect(await store.endEpochPass('10.0.0.1', stale)).toBeUndefined();
      expect(await store.epochs()).toEqual(new Map());
      expect(await store.endEpochPass('10.0.0.1', latest)).toBeDefined();
      // A token ends one pass only.
      expect(await store.endEpochPass('10.0.0.1', latest)).toBeUndefined();
    });
  });
}
