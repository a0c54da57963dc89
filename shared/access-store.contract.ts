// One contract suite for every AccessStore implementation (run by access-store.test.ts against both).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isRevoked, type AccessEvent, type AccessLink, type AccessStore } from './access-store.ts';
import { newLinkId } from './access-token.ts';
import { waitFor } from '../test/support/wait.ts';

const NOW = Date.parse('2030-01-01T00:00:00Z');
const HOUR = 3_600_000;

export function link(pod: string, extra: Partial<AccessLink> = {}): AccessLink {
  return {
    id: newLinkId(),
    pod,
    createdAt: new Date(NOW).toISOString(),
    expiresAt: new Date(NOW + HOUR).toISOString(),
    ...extra,
  };
}

export function runAccessStoreContract(name: string, newStore: () => Promise<AccessStore>) {
  describe(`AccessStore contract: ${name}`, () => {
    let store: AccessStore;
    beforeEach(async () => {
      store = await newStore();
    });
    afterEach(async () => {
      await store.close();
    });

    it('keeps the first secret: every process sharing the store signs with the same one', async () => {
      expect(await store.sharedSecret('a'.repeat(40))).toBe('a'.repeat(40));
      expect(await store.sharedSecret('b'.repeat(40))).toBe('a'.repeat(40));
    });

    it('lists live links of a pod, oldest first, without expired ones or other pods', async () => {
      const first = link('app', { label: 'first', createdAt: new Date(NOW - 2000).toISOString() });
      const second = link('app', { port: 3000, createdAt: new Date(NOW - 1000).toISOString() });
      const expired = link('app', { expiresAt: new Date(NOW - 1).toISOString() });
      await store.addLink(second);
      await store.addLink(first);
      await store.addLink(expired);
      await store.addLink(link('other'));
      expect(await store.listLinks('app', NOW)).toEqual([first, second]);
      expect(await store.listLinks('nobody', NOW)).toEqual([]);
    });

    it('revokes one link: gone from the list, in the revocations until it would have expired', async () => {
      const a = link('app');
      const b = link('app');
      await store.addLink(a);
      await store.addLink(b);
      expect(await store.revokeLink('app', a.id, NOW)).toBe(true);
      expect(await store.revokeLink('app', a.id, NOW)).toBe(false);
      expect(await store.revokeLink('other', b.id, NOW)).toBe(false);
      expect((await store.listLinks('app', NOW)).map((l) => l.id)).toEqual([b.id]);
      const r = await store.revocations(NOW);
      expect(isRevoked(r, { id: a.id, pod: 'app', iat: NOW })).toBe(true);
      expect(isRevoked(r, { id: b.id, pod: 'app', iat: NOW })).toBe(false);
      // After its expiry the signature check rejects it anyway: the list may forget it.
      expect((await store.revocations(NOW + HOUR + 1)).ids.has(a.id)).toBe(false);
    });

    it('revokes every link of a pod issued before a time, and never moves that time back', async () => {
      await store.addLink(link('app'));
      await store.revokePod('app', NOW);
      expect(await store.listLinks('app', NOW)).toEqual([]);
      let r = await store.revocations(NOW);
      expect(isRevoked(r, { id: newLinkId(), pod: 'app', iat: NOW - 1 })).toBe(true);
      expect(isRevoked(r, { id: newLinkId(), pod: 'app', iat: NOW })).toBe(false);
      expect(isRevoked(r, { id: newLinkId(), pod: 'other', iat: NOW - 1 })).toBe(false);
      await store.revokePod('app', NOW - HOUR);
      r = await store.revocations(NOW);
      expect(r.notBefore.get('app')).toBe(NOW);
    });

    it('counts forged tokens per client in a fixed window that starts again once it ends', async () => {
      const window = 300;
      expect(await store.countForgeries('198.51.100.7', 2, 60_000, Date.now())).toMatchObject({ count: 2 });
      const second = await store.countForgeries('198.51.100.7', 3, 60_000, Date.now());
      expect(second.count).toBe(5);
      expect(second.resetInMs).toBeGreaterThan(0);
      expect(second.resetInMs).toBeLessThanOrEqual(60_000);
      expect((await store.countForgeries('2001:db8::1', 1, 60_000, Date.now())).count).toBe(1);
      // A short window: counting goes on until it ends, then begins at the new forgery alone.
      expect((await store.countForgeries('short', 1, window, Date.now())).count).toBe(1);
      await waitFor(async () => (await store.countForgeries('short', 1, window, Date.now())).count === 1, {
        what: 'the window to end',
        timeoutMs: 5_000,
        intervalMs: 50,
      });
    });

    it('tells subscribers about every revocation', async () => {
      const events: AccessEvent[] = [];
      const unsubscribe = await store.subscribe({ onEvent: (e) => events.push(e), onResync: () => {} });
      const a = link('app');
      await store.addLink(a);
      await store.revokeLink('app', a.id, NOW);
      await store.revokePod('app', NOW);
      await waitFor(() => events.length === 2, { what: 'two events' });
      expect(events).toEqual([
        { type: 'revoke', pod: 'app', id: a.id, exp: NOW + HOUR },
        { type: 'revoke-pod', pod: 'app', notBefore: NOW },
      ]);
      await unsubscribe();
    });
  });
}
