// SNI selection among real certificates (self-signed, so createSecureContext loads them). Validity is read from
// the records, as the index does; the clock is the index's own, moved instead of waited for.
import { beforeAll, describe, expect, it } from 'vitest';
import { certificate } from '../../shared/cert-store.contract.ts';
import type { CertificateRecord } from '../../shared/cert-store.ts';
import { CertIndex } from './cert-index.ts';
import { createSelfSignedCertificate, type KeyAndCert } from './self-signed.ts';

const DAY_MS = 86_400_000;
let pair: KeyAndCert;
let renewed: KeyAndCert;
let now = Date.now();

beforeAll(async () => {
  [pair, renewed] = await Promise.all([createSelfSignedCertificate('cert-index test'), createSelfSignedCertificate('cert-index renewed')]);
});

function record(id: string, names: string[], notAfterMs: number, pem = pair): CertificateRecord {
  return certificate(id, {
    names,
    certPem: pem.certPem,
    keyPem: pem.keyPem,
    notBefore: new Date(notAfterMs - 90 * DAY_MS).toISOString(),
    notAfter: new Date(notAfterMs).toISOString(),
  });
}

function index(...records: CertificateRecord[]): CertIndex {
  const i = new CertIndex(() => now);
  for (const r of records) i.set(r);
  return i;
}

describe('SNI selection', () => {
  it('prefers the exact name, then the wildcard, then nothing (the default certificate)', () => {
    const i = index(record('pod-a.example.test', ['pod-a.example.test'], now + DAY_MS), record('*.example.test', ['*.example.test'], now + 2 * DAY_MS));
    expect(i.select('pod-a.example.test')?.id).toBe('pod-a.example.test');
    expect(i.select('pod-b.example.test')?.id).toBe('*.example.test');
    expect(i.select('x.pod-b.example.test')).toBeUndefined();
  });

  it('never picks an expired certificate: a valid wildcard beats an expired exact one', () => {
    const i = index(record('pod-a.example.test', ['pod-a.example.test'], now - 1000), record('*.example.test', ['*.example.test'], now + DAY_MS));
    expect(i.select('pod-a.example.test')?.id).toBe('*.example.test');
  });

  it('answers nothing for a name covered only by expired certificates, so on-demand issuance can start', () => {
    const i = index(record('pod-a.example.test', ['pod-a.example.test'], now - 1000), record('*.example.test', ['*.example.test'], now - 1000));
    expect(i.select('pod-a.example.test')).toBeUndefined();
    expect(i.select('pod-b.example.test')).toBeUndefined();
  });

  it('stops serving a certificate at the moment it expires, and serves its replacement', () => {
    const started = now;
    try {
      const i = index(record('pod-a.example.test', ['pod-a.example.test'], now + DAY_MS));
      expect(i.select('pod-a.example.test')?.id).toBe('pod-a.example.test');
      now += DAY_MS;
      expect(i.select('pod-a.example.test')).toBeUndefined();
      i.set(record('pod-a.example.test', ['pod-a.example.test'], now + 90 * DAY_MS, renewed));
      expect(i.select('pod-a.example.test')?.id).toBe('pod-a.example.test');
    } finally {
      now = started;
    }
  });

  it('among several valid certificates for one name, serves the longest-lived', () => {
    const i = index(
      record('pod-a.example.test', ['pod-a.example.test'], now + DAY_MS),
      record('pod-a-admin.example.test', ['pod-a-admin.example.test', 'pod-a.example.test'], now + 30 * DAY_MS),
    );
    expect(i.select('pod-a.example.test')?.id).toBe('pod-a-admin.example.test');
  });
});
