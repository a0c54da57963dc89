import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors.ts';
import { covers, normaliseCertNames, onDemandVerdict, sniCandidates } from './names.ts';
import { backoffMs, certificateStatus, isRenewalDue } from './renewal-policy.ts';
import { certificate } from '../../shared/cert-store.contract.ts';

const bases = ['example.test'];

describe('certificate names', () => {
  it('normalises and de-duplicates names under a base domain, wildcards included', () => {
    expect(normaliseCertNames(['Pod-App.Example.Test', 'pod-app.example.test', '*.pod-app.example.test', 'example.test'], bases)).toEqual([
      'pod-app.example.test',
      '*.pod-app.example.test',
      'example.test',
    ]);
  });

  it('refuses foreign names, bad wildcards, empty lists and non-strings, naming the field', () => {
    for (const bad of [['evil.example.com'], ['a.*.example.test'], ['**.example.test'], [], 'pod-a.example.test', [42], ['-x.example.test']]) {
      let caught: unknown;
      try {
        normaliseCertNames(bad, bases);
      } catch (err) {
        caught = err;
      }
      expect(caught, JSON.stringify(bad)).toBeInstanceOf(ValidationError);
      expect((caught as ValidationError).field).toBe('names');
    }
  });

  it('looks up the exact name first, then the one-label wildcard', () => {
    expect(sniCandidates('localhost-3000.pod-a.example.test')).toEqual(['localhost-3000.pod-a.example.test', '*.pod-a.example.test']);
    expect(sniCandidates('Pod-A.Example.Test.')).toEqual(['pod-a.example.test', '*.example.test']);
    expect(sniCandidates('example.test')).toEqual(['example.test']); // never *.test
    expect(covers(['*.example.test'], 'localhost-3000-pod-a.example.test')).toBe(true);
    expect(covers(['*.example.test'], 'localhost-3000.pod-a.example.test')).toBe(false);
  });

  it('allows on-demand issuance only for pod hostnames of existing pods', () => {
    const lookup = (slug: string) => (slug === 'app' ? { defaultPort: 3000, ports: [3000] } : undefined);
    expect(onDemandVerdict('localhost-3000.pod-app.example.test', bases, lookup)).toEqual({ allowed: true, slug: 'app' });
    expect(onDemandVerdict('pod-ghost.example.test', bases, lookup)).toEqual({ allowed: false, reason: 'pod_not_found' });
    expect(onDemandVerdict('www.example.test', bases, lookup)).toMatchObject({ allowed: false, reason: 'invalid_host' });
    expect(onDemandVerdict('pod-app.other.test', bases, lookup)).toMatchObject({ allowed: false, reason: 'host_not_served' });
    expect(onDemandVerdict(undefined, bases, lookup)).toMatchObject({ allowed: false });
  });

  it('allows on-demand issuance only for the ports a pod declares; without the list, its default port only', () => {
    const routes: Record<string, { defaultPort: number; ports?: number[] }> = {
      app: { defaultPort: 3000, ports: [3000, 7681] },
      old: { defaultPort: 8080 }, // a route written before `ports` existed
    };
    const lookup = (slug: string) => routes[slug];
    const verdict = (host: string) => onDemandVerdict(host, bases, lookup);
    for (const host of ['pod-app.example.test', 'localhost-3000.pod-app.example.test', 'localhost-7681-pod-app.example.test']) {
      expect(verdict(host), host).toEqual({ allowed: true, slug: 'app' });
    }
    for (const host of ['localhost-1.pod-app.example.test', 'localhost-5173-pod-app.example.test', 'localhost-65535.pod-app.example.test']) {
      expect(verdict(host), host).toEqual({ allowed: false, reason: 'port_not_declared' });
    }
    for (const host of ['pod-old.example.test', 'localhost-8080.pod-old.example.test', 'localhost-8080-pod-old.example.test']) {
      expect(verdict(host), host).toEqual({ allowed: true, slug: 'old' });
    }
    expect(verdict('localhost-3000.pod-old.example.test')).toEqual({ allowed: false, reason: 'port_not_declared' });
  });
});

describe('renewal policy', () => {
  const day = 86_400_000;
  const start = Date.parse('2026-01-01T00:00:00Z');
  const record = certificate('a.example.test', { notBefore: new Date(start).toISOString(), notAfter: new Date(start + 90 * day).toISOString() });

  it('is due at two thirds of the lifetime, unless backing off', () => {
    expect(isRenewalDue(record, start + 59 * day)).toBe(false);
    expect(isRenewalDue(record, start + 61 * day)).toBe(true);
    const failing = { ...record, renewal: { failures: 1, nextAttemptAt: new Date(start + 62 * day).toISOString() } };
    expect(isRenewalDue(failing, start + 61 * day)).toBe(false);
    expect(isRenewalDue(failing, start + 62 * day)).toBe(true);
    expect(certificateStatus(failing, start + 61 * day)).toBe('renewal-failing');
    expect(certificateStatus(record, start + 91 * day)).toBe('expired');
  });

  it('backs off exponentially, capped, and never less than Retry-After', () => {
    const settings = { minMs: 1000, maxMs: 8000 };
    expect([1, 2, 3, 4, 5].map((f) => backoffMs(f, undefined, settings))).toEqual([1000, 2000, 4000, 8000, 8000]);
    expect(backoffMs(1, 3600, settings)).toBe(3_600_000);
  });
});
