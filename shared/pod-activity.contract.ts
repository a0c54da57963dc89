// One contract suite for every PodActivityStore implementation (run by pod-activity.test.ts against both).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PodActivityStore } from './pod-activity.ts';
import { waitFor } from '../test/support/wait.ts';

export function runPodActivityContract(name: string, newStore: () => Promise<PodActivityStore>) {
  describe(`PodActivityStore contract: ${name}`, () => {
    let store: PodActivityStore;
    beforeEach(async () => {
      store = await newStore();
    });
    afterEach(async () => {
      await store.close();
    });

    it('knows nothing of pods never touched, and tells its clock', async () => {
      const before = Date.now();
      const { nowMs, last } = await store.lastActive(['a', 'b']);
      expect(last.size).toBe(0);
      // The store's clock (Redis's own for the Redis store) is a plausible wall-clock time.
      expect(Math.abs(nowMs - before)).toBeLessThan(60_000);
    });

    it('records a touch at the store clock, per slug, and never moves a time back', async () => {
      await store.touch(['a', 'b']);
      const first = await store.lastActive(['a', 'b', 'c']);
      expect([...first.last.keys()].sort()).toEqual(['a', 'b']);
      expect(first.last.get('a')!).toBeLessThanOrEqual(first.nowMs);
      await waitFor(async () => (await store.lastActive([])).nowMs > first.last.get('a')!, { what: 'the store clock to move on' });
      await store.touch(['a']);
      const second = await store.lastActive(['a', 'b']);
      expect(second.last.get('a')!).toBeGreaterThan(first.last.get('a')!);
      expect(second.last.get('b')).toBe(first.last.get('b'));
    });

    it('forgets a slug', async () => {
      await store.touch(['a', 'b']);
      await store.forget('a');
      const { last } = await store.lastActive(['a', 'b']);
      expect([...last.keys()]).toEqual(['b']);
    });

    it('an empty touch does nothing', async () => {
      await store.touch([]);
      expect((await store.lastActive(['a'])).last.size).toBe(0);
    });

    it('delivers wake requests to every subscriber, and none after unsubscribing', async () => {
      const a: string[] = [];
      const b: string[] = [];
      const offA = await store.subscribeWakes({ onWake: (slug) => a.push(slug) });
      const offB = await store.subscribeWakes({ onWake: (slug) => b.push(slug) });
      await store.requestWake('app');
      await waitFor(() => a.length === 1 && b.length === 1, { what: 'both subscribers to hear the wake' });
      expect(a).toEqual(['app']);
      await offA();
      await store.requestWake('other');
      await waitFor(() => b.length === 2, { what: 'the remaining subscriber to hear the second wake' });
      expect(b).toEqual(['app', 'other']);
      expect(a).toEqual(['app']);
      await offB();
    });
  });
}
