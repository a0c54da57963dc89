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

/** A store whose contents can be swapped under the table, as a Redis that restarts empty or from an old dump. */
function swappable(first: MemoryRouteStore) {
  let store = first;
  const source: RouteStore = {
    get: (s) => store.get(s),
    scan: () => store.scan(),
    put: (r) => store.put(r),
    delete: (s, g) => store.delete(s, g),
    nextGeneration: () => store.nextGeneration(),
    subscribe: (sub) => store.subscribe(sub),
    epochs: () => store.epochs(),
    beginEpochPass: (h) => store.beginEpochPass(h),
    endEpochPass: (h, t) => store.endEpochPass(h, t),
    close: () => store.close(),
  };
  return { source, swap: (next: MemoryRouteStore) => (store = next), get store() { return store; } };
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
    const first = new MemoryRouteStore();
    await first.put(route('a', 100, { port: 30100 }));
    await first.put(route('b', 100, { port: 30200 }));
    const swapped = swappable(first);
    const t = await table(swapped.source);
    const old = swapped.swap(new MemoryRouteStore()); // the old snapshot: a's port was freed since, b was republished
    await old.put(route('a', 2, { port: 30002 }));
    await old.put(route('b', 101, { port: 30201 }));
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

  describe('a store that lost its data, told from deletions by the writer\'s epoch', () => {
    // Separate memory stores count generations from the clock (milliseconds), as a Redis that lost its data
    // counts from its own: a later epoch is a later millisecond.
    const assertEpoch = async (store: RouteStore, host: string) => {
      const since = Date.now();
      await waitFor(() => Date.now() > since, { what: 'the next millisecond' });
      return (await store.endEpochPass(host, await store.beginEpochPass(host)))!;
    };

    it('keeps serving routes of a writer whose epoch is gone, until it republished and asserted it again', async () => {
      const s = swappable(new MemoryRouteStore());
      await s.store.put(route('a', 10, { host: 'h1' }));
      await s.store.put(route('b', 11, { host: 'h1' }));
      await s.store.put(route('c', 12, { host: 'h1' }));
      await s.store.put(route('other', 13, { host: 'h2' })); // a writer that keeps no epoch
      const epoch = await assertEpoch(s.store, 'h1');
      const t = await table(s.source);

      const emptied = new MemoryRouteStore();
      await emptied.put(route('fresh', 20, { host: 'h1' }));
      s.swap(emptied);
      await t.resync();
      expect([t.lookup('a')?.generation, t.lookup('b')?.generation, t.lookup('c')?.generation]).toEqual([10, 11, 12]);
      expect(t.lookup('fresh')).toBeDefined();
      expect(t.lookup('other')).toBeUndefined(); // nothing tells loss from deletion for it
      // A deletion published meanwhile is a deletion.
      t.apply({ type: 'delete', slug: 'c', generation: 21 });
      expect(t.lookup('c')).toBeUndefined();

      // The writer republishes a (not b: deleted while Redis was empty, its delete event lost) and asserts a new epoch.
      await emptied.put(route('a', 22, { host: 'h1' }));
      const renewed = await assertEpoch(emptied, 'h1');
      expect(renewed).not.toBe(epoch);
      await t.resync();
      expect(t.lookup('a')?.generation).toBe(22);
      expect(t.lookup('b')).toBeUndefined();
      expect(t.size).toBe(2);
    });

    it('learns a new writer\'s epoch with its first route event, so a loss before the next re-read is one', async () => {
      const s = swappable(new MemoryRouteStore());
      const t = await table(s.source); // started before the writer: no epoch read yet
      const epoch = await assertEpoch(s.store, 'h1');
      await s.store.put(route('a', 10, { host: 'h1' }));
      await waitFor(() => t.knownEpoch('h1') === epoch, { what: 'the epoch learnt' });
      s.swap(new MemoryRouteStore());
      await t.resync();
      expect(t.lookup('a')).toBeDefined();
    });

    it('an epoch lower than one seen (a store restored from an old dump) is not believed', async () => {
      const old = new MemoryRouteStore();
      const oldEpoch = await assertEpoch(old, 'h1');
      const s = swappable(new MemoryRouteStore());
      await s.store.put(route('a', 10, { host: 'h1' }));
      const epoch = await assertEpoch(s.store, 'h1');
      expect(epoch).toBeGreaterThan(oldEpoch);
      const t = await table(s.source);
      s.swap(old);
      await t.resync();
      expect(t.lookup('a')).toBeDefined();
      // The writer notices and renews: from then on its deletions are followed.
      await assertEpoch(old, 'h1');
      await t.resync();
      expect(t.lookup('a')).toBeUndefined();
    });

    it('an epoch that changes during the scan is believed only on the next re-read', async () => {
      const s = swappable(new MemoryRouteStore());
      await s.store.put(route('a', 10, { host: 'h1' }));
      await assertEpoch(s.store, 'h1');
      const t = await table(s.source);
      const emptied = new MemoryRouteStore();
      s.swap(emptied);
      const scan = emptied.scan.bind(emptied);
      let renewDuringScan = true;
      emptied.scan = async function* () {
        yield* scan();
        if (renewDuringScan) await assertEpoch(emptied, 'h1');
      };
      await t.resync();
      expect(t.lookup('a')).toBeDefined();
      renewDuringScan = false;
      await t.resync();
      expect(t.lookup('a')).toBeUndefined();
    });

    it('follows deletions while the epoch stays (the table is right)', async () => {
      const store = new MemoryRouteStore();
      await store.put(route('a', 10, { host: 'h1' }));
      await assertEpoch(store, 'h1');
      const t = await table(store);
      t.apply({ type: 'put', route: route('ghost', 11, { host: 'h1' }) }); // never in the store: its delete was lost
      await t.resync();
      expect(t.lookup('ghost')).toBeUndefined();
      expect(t.lookup('a')).toBeDefined();
    });
  });
});
