import { describe, expect, it } from 'vitest';
import { HostNotServedError, InvalidHostError, PodNotFoundError } from '../shared/errors.ts';
import { normaliseBaseDomains, parsePodHost } from '../shared/hostname.ts';
import type { Route } from '../shared/route.ts';
import { HostParser, resolveTarget } from './resolve.ts';

const bases = normaliseBaseDomains(['localhost', 'pods.example.com']);

describe('HostParser', () => {
  it('answers as parsePodHost does, the same object for a repeated Host', () => {
    const hosts = new HostParser(bases);
    for (const host of ['pod-a.localhost', 'LOCALHOST-3000.Pod-A.localhost:8080', 'localhost-8726-pod-b.pods.example.com.']) {
      const first = hosts.parse(host);
      expect(first).toEqual(parsePodHost(host, bases));
      expect(hosts.parse(host)).toBe(first);
    }
  });

  it('keeps no failures: a bad or foreign host throws every time', () => {
    const hosts = new HostParser(bases);
    for (let i = 0; i < 2; i++) {
      expect(() => hosts.parse('localhost-0.pod-a.localhost')).toThrow(InvalidHostError);
      expect(() => hosts.parse('evil.example')).toThrow(HostNotServedError);
      expect(() => hosts.parse(undefined)).toThrow(InvalidHostError);
    }
    expect(hosts.size).toBe(0);
  });

  it('stays within its bound when every request names another host, and still answers right', () => {
    const hosts = new HostParser(bases, 8);
    for (let i = 0; i < 100; i++) {
      expect(hosts.parse(`localhost-${1000 + i}.pod-a.localhost`).port).toBe(1000 + i);
      expect(hosts.size).toBeLessThanOrEqual(8);
    }
  });

  it('hands out answers no caller can change for the next request', () => {
    const hosts = new HostParser(bases);
    const address = hosts.parse('pod-a.localhost');
    expect(() => {
      (address as { slug: string }).slug = 'b';
    }).toThrow(TypeError);
    expect(hosts.parse('pod-a.localhost').slug).toBe('a');
  });
});

describe('resolveTarget', () => {
  const route = (slug: string, status: Route['status']) => ({ slug, status, defaultPort: 3000 }) as Route;
  const routes = new Map([
    ['a', route('a', 'running')],
    ['s', route('s', 'starting')],
  ]);

  it('resolves a known pod, its default port when the host names none', () => {
    const hosts = new HostParser(bases);
    expect(resolveTarget('pod-a.localhost', hosts, (s) => routes.get(s), 5)).toMatchObject({ slug: 'a', podPort: 3000 });
    expect(resolveTarget('localhost-8726.pod-a.localhost', hosts, (s) => routes.get(s), 5).podPort).toBe(8726);
  });

  it('refuses an unknown pod, and a starting one unless this process wakes it', () => {
    const hosts = new HostParser(bases);
    expect(() => resolveTarget('pod-x.localhost', hosts, (s) => routes.get(s), 5)).toThrow(PodNotFoundError);
    expect(() => resolveTarget('pod-s.localhost', hosts, (s) => routes.get(s), 5)).toThrow(/starting/);
    expect(resolveTarget('pod-s.localhost', hosts, (s) => routes.get(s), 5, () => true).slug).toBe('s');
  });
});
