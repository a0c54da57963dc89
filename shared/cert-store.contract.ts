// One contract suite for every CertStore implementation (run by memory- and redis-cert-store.test.ts).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AcmeAccount, CertificateRecord, CertStore } from './cert-store.ts';
import { waitFor } from '../test/support/wait.ts';

export function certificate(id: string, extra: Partial<CertificateRecord> = {}): CertificateRecord {
  const now = Date.now();
  return {
    id,
    names: [id],
    certPem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
    keyPem: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n',
    notBefore: new Date(now).toISOString(),
    notAfter: new Date(now + 90 * 86_400_000).toISOString(),
    issuedAt: new Date(now).toISOString(),
    origin: 'admin',
    renewal: { failures: 0 },
    ...extra,
  };
}

function account(directoryUrl: string, keyPem: string): AcmeAccount {
  return { directoryUrl, keyPem, createdAt: new Date().toISOString() };
}

export function runCertStoreContract(name: string, newStore: () => Promise<CertStore>) {
  describe(`CertStore contract: ${name}`, () => {
    let store: CertStore;
    beforeEach(async () => {
      store = await newStore();
    });
    afterEach(async () => {
      await store.close();
    });

    it('keeps the first account key stored for a directory', async () => {
      const dir = 'https://ca.example/dir';
      expect(await store.getAccount(dir)).toBeUndefined();
      expect((await store.putAccountIfAbsent(account(dir, 'key-a'))).keyPem).toBe('key-a');
      expect((await store.putAccountIfAbsent(account(dir, 'key-b'))).keyPem).toBe('key-a');
      await store.putAccount({ ...account(dir, 'key-a'), url: 'https://ca.example/acct/1' });
      expect(await store.getAccount(dir)).toMatchObject({ keyPem: 'key-a', url: 'https://ca.example/acct/1' });
      expect(await store.getAccount('https://other.example/dir')).toBeUndefined();
    });

    it('stores, lists, replaces and deletes certificates', async () => {
      await store.putCertificate(certificate('a.example.test'));
      await store.putCertificate(certificate('*.example.test', { names: ['*.example.test', 'example.test'] }));
      expect((await store.listCertificates()).map((c) => c.id).sort()).toEqual(['*.example.test', 'a.example.test']);
      await store.putCertificate(certificate('a.example.test', { origin: 'on-demand' }));
      expect((await store.getCertificate('a.example.test'))?.origin).toBe('on-demand');
      expect(await store.deleteCertificate('a.example.test')).toBe(true);
      expect(await store.deleteCertificate('a.example.test')).toBe(false);
      expect(await store.getCertificate('a.example.test')).toBeUndefined();
    });

    it('remembers deletions until the id is stored again, and restores only what is neither there nor deleted', async () => {
      const lost = certificate('lost.example.test');
      expect(await store.restoreCertificate(lost)).toBe(true);
      expect((await store.getCertificate('lost.example.test'))?.id).toBe('lost.example.test');
      // Never over a certificate the store holds (a newer one another replica stored meanwhile).
      await store.putCertificate(certificate('lost.example.test', { origin: 'on-demand' }));
      expect(await store.restoreCertificate(lost)).toBe(false);
      expect((await store.getCertificate('lost.example.test'))?.origin).toBe('on-demand');
      // Never what was deleted on purpose.
      await store.deleteCertificate('lost.example.test');
      expect(await store.deletedCertificateIds()).toEqual(new Set(['lost.example.test']));
      expect(await store.restoreCertificate(lost)).toBe(false);
      expect(await store.getCertificate('lost.example.test')).toBeUndefined();
      // Issued again: no longer counted as deleted.
      await store.putCertificate(lost);
      expect(await store.deletedCertificateIds()).toEqual(new Set());
    });

    it('answers challenges until they are deleted or expire', async () => {
      await store.putChallenge('tok-1234567890abcdef', 'tok.thumb', 60_000);
      await store.putChallenge('tok-short-123456789', 'x', 1);
      expect(await store.getChallenge('tok-1234567890abcdef')).toBe('tok.thumb');
      await waitFor(async () => (await store.getChallenge('tok-short-123456789')) === undefined, { what: 'expiry' });
      await store.deleteChallenge('tok-1234567890abcdef');
      expect(await store.getChallenge('tok-1234567890abcdef')).toBeUndefined();
    });

    it('gives a lock to one owner at a time and lets only the owner release it', async () => {
      expect(await store.tryLock('renew:a', 'r1', 60_000)).toBe(true);
      expect(await store.tryLock('renew:a', 'r2', 60_000)).toBe(false);
      await store.unlock('renew:a', 'r2');
      expect(await store.tryLock('renew:a', 'r2', 60_000)).toBe(false);
      await store.unlock('renew:a', 'r1');
      expect(await store.tryLock('renew:a', 'r2', 60_000)).toBe(true);
      expect(await store.tryLock('renew:b', 'r1', 1)).toBe(true);
      await waitFor(() => store.tryLock('renew:b', 'r2', 60_000), { what: 'an expired lock to be free' });
    });

    it('counts events per window', async () => {
      const window = 3_600_000;
      expect(await store.countInWindow('od', window)).toBe(1);
      expect(await store.countInWindow('od', window)).toBe(2);
      expect(await store.countInWindow('other', window)).toBe(1);
    });

    it('tells subscribers which certificate changed', async () => {
      const changed: string[] = [];
      const unsubscribe = await store.subscribe({ onChange: (id) => changed.push(id), onResync: () => {} });
      await store.putCertificate(certificate('a.example.test'));
      await store.deleteCertificate('a.example.test');
      await waitFor(() => changed.length >= 2, { what: 'two change events' });
      expect(changed).toEqual(['a.example.test', 'a.example.test']);
      await unsubscribe();
    });
  });
}
