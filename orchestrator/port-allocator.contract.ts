// One contract suite for every PortAllocator (run by port-allocator.test.ts and redis-port-allocator.test.ts).
import { describe, expect, it } from 'vitest';
import type { PortRange } from './config.ts';
import { allocateBindablePort, HOST_BOUND_OWNER, type PortAllocator } from './port-allocator.ts';
import { PortsExhaustedError } from '../shared/errors.ts';

export function runPortAllocatorContract(name: string, newAllocator: (range: PortRange) => Promise<PortAllocator>) {
  describe(`PortAllocator contract: ${name}`, () => {
    it('hands out distinct ports of the range until it is exhausted', async () => {
      const a = await newAllocator({ first: 31000, last: 31009 });
      const got = new Set<number>();
      for (let i = 0; i < 10; i++) got.add(await a.allocate(`pod${i}`));
      expect(got.size).toBe(10);
      for (const p of got) expect(p >= 31000 && p <= 31009).toBe(true);
      await expect(a.allocate('one-too-many')).rejects.toBeInstanceOf(PortsExhaustedError);
    });

    it('reuses a freed port', async () => {
      const a = await newAllocator({ first: 31000, last: 31002 });
      const ports = [await a.allocate('a'), await a.allocate('b'), await a.allocate('c')];
      expect(await a.release(ports[1]!, 'b')).toBe(true);
      expect(await a.allocate('d')).toBe(ports[1]);
    });

    it('only the owner releases a port', async () => {
      const a = await newAllocator({ first: 31000, last: 31000 });
      const p = await a.allocate('a');
      expect(await a.release(p, 'b')).toBe(false);
      expect(await a.release(p, 'a-longer')).toBe(false);
      expect((await a.owners()).get(p)?.owner).toBe('a');
      expect(await a.release(p, 'a')).toBe(true);
      expect(await a.release(p, 'a')).toBe(false);
      expect((await a.owners()).size).toBe(0);
    });

    it('claims a port for an owner found in Docker, and never steals one', async () => {
      const a = await newAllocator({ first: 31000, last: 31001 });
      expect(await a.claim(31001, 'found')).toBe(true);
      expect(await a.claim(31001, 'found')).toBe(true);
      expect(await a.claim(31001, 'other')).toBe(false);
      expect(await a.allocate('x')).toBe(31000);
      await expect(a.allocate('y')).rejects.toBeInstanceOf(PortsExhaustedError);
      const owners = await a.owners();
      expect(owners.get(31001)?.owner).toBe('found');
      expect(owners.get(31000)?.owner).toBe('x');
      expect(owners.get(31000)!.sinceMs).toBeGreaterThan(0);
    });

    it('a claim takes a port out of the host-bound quarantine (a live pod is what the probe found bound)', async () => {
      const a = await newAllocator({ first: 31000, last: 31001 });
      expect(await a.claim(31000, HOST_BOUND_OWNER)).toBe(true);
      expect(await a.claim(31000, 'live-pod')).toBe(true);
      expect((await a.owners()).get(31000)?.owner).toBe('live-pod');
      expect(await a.claim(31000, HOST_BOUND_OWNER)).toBe(false);
      expect(await a.allocate('next')).toBe(31001);
    });

    it('skips a port bound on the host and keeps it away from the next allocation', async () => {
      const a = await newAllocator({ first: 31000, last: 31002 });
      const bound = new Set<number>();
      // Whatever comes first is "bound by something else".
      const first = await allocateBindablePort(a, 'probe', async (p) => {
        if (bound.size === 0) {
          bound.add(p);
          return false;
        }
        return true;
      });
      expect(bound.has(first)).toBe(false);
      const [b] = bound;
      expect((await a.owners()).get(b!)?.owner).toBe(HOST_BOUND_OWNER);
      const third = await a.allocate('next');
      expect([first, b]).not.toContain(third);
    });
  });
}
