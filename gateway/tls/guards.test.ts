// On-demand guards, single flight, the cross-replica lock and renewal backoff. The issuer is a stand-in here
// only because a CA's rate-limit answers and slow issuance cannot be produced with pebble (it has no rate
// limits); everything else is real (Redis-backed store, real manager, real renewer).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthorityError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/log.ts';
import { createRedis, waitReady } from '../../shared/redis.ts';
import { RedisCertStore } from '../../shared/redis-cert-store.ts';
import { certificate } from '../../shared/cert-store.contract.ts';
import { startRedis, type RedisServer } from '../../test/support/redis-server.ts';
import { waitFor } from '../../test/support/wait.ts';
import type { CertificateIssuer, IssuedCertificate } from './acme.ts';
import { CertificateManager } from './manager.ts';
import { OnDemandIssuance } from './on-demand.ts';
import { Renewer } from './renewer.ts';

const log = silentLogger();
const bases = ['example.test'];
let redis: RedisServer;
const clients: ReturnType<typeof createRedis>[] = [];
let n = 0;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  clients.forEach((c) => c.disconnect());
  await redis.stop();
});

async function store(prefix: string) {
  const c = createRedis(redis.url);
  clients.push(c);
  await waitReady(c);
  return new RedisCertStore(c, { prefix });
}

/** Issues fake certificates (PEM text is never parsed here) or fails as told; counts calls; can be held. */
class ScriptedIssuer implements CertificateIssuer {
  readonly supportsWildcards = true;
  calls: string[][] = [];
  failWith: Error | undefined;
  /** Issue time of the fake certificates (tests that move the clock move this too). */
  now: () => number = Date.now;
  private gate: Promise<void> = Promise.resolve();
  private open: () => void = () => {};
  hold(): void {
    this.gate = new Promise((r) => (this.open = r));
  }
  release(): void {
    this.open();
  }
  async issue(names: string[]): Promise<IssuedCertificate> {
    this.calls.push(names);
    await this.gate;
    if (this.failWith) throw this.failWith;
    const now = this.now();
    return { names, certPem: `cert-${this.calls.length}`, keyPem: 'key', notBefore: new Date(now).toISOString(), notAfter: new Date(now + 90 * 86_400_000).toISOString() };
  }
}

function manager(s: RedisCertStore, issuer: CertificateIssuer, owner: string, now?: () => number) {
  return new CertificateManager({ store: s, issuer, baseDomains: bases, log, owner, backoff: { minMs: 1000, maxMs: 60_000 }, ...(now ? { now } : {}) });
}

function onDemand(s: RedisCertStore, m: CertificateManager, extra: Partial<ConstructorParameters<typeof OnDemandIssuance>[0]> = {}) {
  return new OnDemandIssuance({
    store: s,
    manager: m,
    baseDomains: bases,
    lookupPod: (slug: string) => (slug.startsWith('pod') ? { defaultPort: 3000, ports: [3000] } : undefined),
    log,
    maxPerWindow: 100,
    maxPerPod: 100,
    windowMs: 3_600_000,
    maxConcurrent: 10,
    failureBackoff: { minMs: 60_000, maxMs: 3_600_000 },
    ...extra,
  });
}

describe('on-demand guards', () => {
  it('issues once per name however many handshakes arrive', async () => {
    const s = await store(`g${++n}:`);
    const issuer = new ScriptedIssuer();
    issuer.hold();
    const od = onDemand(s, manager(s, issuer, 'r1'));
    expect(od.request('pod-pod1.example.test')).toBe('started');
    for (let i = 0; i < 20; i++) expect(od.request('POD-POD1.example.test')).toBe('pending');
    issuer.release();
    await od.settled();
    expect(issuer.calls).toEqual([['pod-pod1.example.test']]);
    expect((await s.getCertificate('pod-pod1.example.test'))?.origin).toBe('on-demand');
  });

  it('stops at the rate limit shared by all replicas', async () => {
    const s = await store(`g${++n}:`);
    const issuer = new ScriptedIssuer();
    const a = onDemand(s, manager(s, issuer, 'r1'), { maxPerWindow: 2 });
    const b = onDemand(await store(`g${n}:`), manager(s, issuer, 'r2'), { maxPerWindow: 2 });
    a.request('pod-pod1.example.test');
    await a.settled();
    b.request('pod-pod2.example.test');
    await b.settled();
    a.request('pod-pod3.example.test');
    await a.settled();
    expect(issuer.calls.map((c) => c[0])).toEqual(['pod-pod1.example.test', 'pod-pod2.example.test']);
    // The refused name waits for its backoff instead of asking again on every handshake.
    expect(a.request('pod-pod3.example.test')).toBe('refused:backoff');
  });

  it('a name another replica is issuing costs no quota and is not asked for on every handshake', async () => {
    const prefix = `g${++n}:`;
    const s1 = await store(prefix);
    const s2 = await store(prefix);
    const issuer = new ScriptedIssuer();
    let now = Date.now();
    const a = onDemand(s1, manager(s1, issuer, 'r1'), { maxPerWindow: 2 });
    const b = onDemand(s2, manager(s2, issuer, 'r2'), { maxPerWindow: 2, now: () => now });
    const name = 'pod-pod1.example.test';
    issuer.hold();
    expect(a.request(name)).toBe('started');
    await waitFor(() => issuer.calls.length === 1, { what: 'replica A to reach the CA' });
    // B's first handshake finds A's lock; the next ones leave the name to A without asking the store again.
    expect(b.request(name)).toBe('started');
    await b.settled();
    for (let i = 0; i < 20; i++) expect(b.request(name)).toBe('pending-elsewhere');
    now += 60_000; // a while later B looks again (A might have died), and finds A still at it
    expect(b.request(name)).toBe('started');
    await b.settled();
    expect(b.request(name)).toBe('pending-elsewhere');
    issuer.release();
    await a.settled();
    // B's index may not have A's certificate yet when it looks again: under the lock it finds it stored.
    now += 60_000;
    expect(b.request(name)).toBe('started');
    await b.settled();
    expect(issuer.calls).toHaveLength(1);
    // Only A's issuance counted: the window of two still has room for exactly one more.
    for (const other of ['pod-pod2.example.test', 'pod-pod3.example.test']) {
      b.request(other);
      await b.settled();
    }
    expect(issuer.calls.map((c) => c[0])).toEqual([name, 'pod-pod2.example.test']);
  });

  it('issues again for a name whose stored certificate has expired', async () => {
    const s = await store(`g${++n}:`);
    const issuer = new ScriptedIssuer();
    const name = 'pod-pod1.example.test';
    await s.putCertificate(certificate(name, { origin: 'on-demand', notBefore: new Date(Date.now() - 2 * 86_400_000).toISOString(), notAfter: new Date(Date.now() - 1000).toISOString() }));
    const od = onDemand(s, manager(s, issuer, 'r1'));
    expect(od.request(name)).toBe('started');
    await od.settled();
    expect(issuer.calls).toEqual([[name]]);
    expect((await s.getCertificate(name))?.certPem).toBe('cert-1');
  });

  it('caps concurrent issuances and backs off a failing name for at least Retry-After', async () => {
    const s = await store(`g${++n}:`);
    const issuer = new ScriptedIssuer();
    let now = Date.now();
    const od = onDemand(s, manager(s, issuer, 'r1'), { maxConcurrent: 1, now: () => now });
    issuer.hold();
    issuer.failWith = new CertificateAuthorityError('rate limited', { rateLimited: true, retryAfterSeconds: 7200 });
    expect(od.request('pod-pod1.example.test')).toBe('started');
    expect(od.request('pod-pod2.example.test')).toBe('refused:busy');
    issuer.release();
    await od.settled();
    now += 3_600_000; // past the exponential backoff (1 min), still inside Retry-After (2 h)
    expect(od.request('pod-pod1.example.test')).toBe('refused:backoff');
    now += 3_600_001;
    issuer.failWith = undefined;
    expect(od.request('pod-pod1.example.test')).toBe('started');
    await od.settled();
  });

  it('a client walking localhost-1...65535 of a pod gets only the ports the pod declares issued', async () => {
    const s = await store(`g${++n}:`);
    const issuer = new ScriptedIssuer();
    const declared = { defaultPort: 3000, ports: [3000, 5173, 7681] };
    const od = onDemand(s, manager(s, issuer, 'r1'), { lookupPod: (slug) => (slug === 'walk' ? declared : undefined) });
    const outcomes = new Map<string, number>();
    for (let port = 1; port <= 65535; port++) {
      for (const host of [`localhost-${port}.pod-walk.example.test`, `localhost-${port}-pod-walk.example.test`]) {
        const outcome = od.request(host);
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      }
    }
    await od.settled();
    expect(outcomes.get('started')).toBe(6);
    expect(outcomes.get('refused:undeclared-port')).toBe(2 * 65535 - 6);
    expect(issuer.calls.map((c) => c[0]).sort()).toEqual(
      [3000, 5173, 7681].flatMap((p) => [`localhost-${p}.pod-walk.example.test`, `localhost-${p}-pod-walk.example.test`]).sort(),
    );
  });

  it('caps issuances per pod across replicas, without spending the shared window on refused ones', async () => {
    const prefix = `g${++n}:`;
    const issuer = new ScriptedIssuer();
    const lookupPod = (slug: string) => (['big', 'small'].includes(slug) ? { defaultPort: 3000, ports: [3000, 3001, 3002, 3003, 3004] } : undefined);
    const limits = { lookupPod, maxPerPod: 2, maxPerWindow: 5 };
    const s1 = await store(prefix);
    const s2 = await store(prefix);
    const a = onDemand(s1, manager(s1, issuer, 'r1'), limits);
    const b = onDemand(s2, manager(s2, issuer, 'r2'), limits);
    for (const [replica, port] of [[a, 3000], [b, 3001], [a, 3002], [b, 3003], [a, 3004]] as const) {
      expect(replica.request(`localhost-${port}.pod-big.example.test`)).toBe('started');
      await replica.settled();
    }
    expect(issuer.calls.map((c) => c[0])).toEqual(['localhost-3000.pod-big.example.test', 'localhost-3001.pod-big.example.test']);
    // A refused name waits instead of asking the store on every handshake.
    expect(a.request('localhost-3002.pod-big.example.test')).toBe('refused:backoff');
    // The three refusals took nothing from the shared window of five: another pod still gets its two.
    for (const port of [3000, 3001, 3002]) {
      b.request(`localhost-${port}.pod-small.example.test`);
      await b.settled();
    }
    expect(issuer.calls.map((c) => c[0]).slice(2)).toEqual(['localhost-3000.pod-small.example.test', 'localhost-3001.pod-small.example.test']);
  });

  it('refuses unknown pods and foreign names without touching the CA', async () => {
    const s = await store(`g${++n}:`);
    const issuer = new ScriptedIssuer();
    const od = onDemand(s, manager(s, issuer, 'r1'));
    expect(od.request('pod-ghost-x.example.test'.replace('pod-ghost', 'ghost'))).toBe('refused:not-a-pod-name');
    expect(od.request('pod-zzz.example.test')).toBe('refused:unknown-pod');
    expect(od.request('pod-pod1.elsewhere.test')).toBe('refused:not-a-pod-name');
    expect(issuer.calls).toEqual([]);
  });
});

describe('renewal across replicas', () => {
  it('one replica renews a due certificate; the other finds it renewed under the lock', async () => {
    const prefix = `g${++n}:`;
    const s1 = await store(prefix);
    const s2 = await store(prefix);
    const issuer = new ScriptedIssuer();
    const later = () => Date.now() + 70 * 86_400_000;
    issuer.now = later;
    await s1.putCertificate(certificate('pod-a.example.test'));
    const r1 = new Renewer({ store: s1, manager: manager(s1, issuer, 'r1', later), log, intervalMs: 60_000, now: later });
    const r2 = new Renewer({ store: s2, manager: manager(s2, issuer, 'r2', later), log, intervalMs: 60_000, now: later });
    issuer.hold();
    const both = Promise.all([r1.runOnce(), r2.runOnce()]);
    await waitFor(() => issuer.calls.length === 1, { what: 'one renewal to start' });
    issuer.release();
    await both;
    await Promise.all([r1.runOnce(), r2.runOnce()]); // not due any more
    expect(issuer.calls).toHaveLength(1);
    expect((await s1.getCertificate('pod-a.example.test'))?.certPem).toBe('cert-1');
  });

  it('does not renew on-demand certificates of pods that are gone', async () => {
    const s = await store(`g${++n}:`);
    const issuer = new ScriptedIssuer();
    const later = () => Date.now() + 70 * 86_400_000;
    issuer.now = later;
    await s.putCertificate(certificate('pod-gone.example.test', { origin: 'on-demand' }));
    await s.putCertificate(certificate('pod-here.example.test', { origin: 'on-demand' }));
    const renewer = new Renewer({
      store: s,
      manager: manager(s, issuer, 'r1', later),
      log,
      intervalMs: 60_000,
      now: later,
      wanted: (r) => r.origin !== 'on-demand' || r.id !== 'pod-gone.example.test',
    });
    await renewer.runOnce();
    expect(issuer.calls).toEqual([['pod-here.example.test']]);
    expect(await s.getCertificate('pod-gone.example.test')).toBeDefined(); // left to expire, not deleted
  });

  it('a failed renewal keeps the certificate, records the error and waits for Retry-After', async () => {
    const s = await store(`g${++n}:`);
    const issuer = new ScriptedIssuer();
    let now = Date.now() + 70 * 86_400_000;
    const m = manager(s, issuer, 'r1', () => now);
    const renewer = new Renewer({ store: s, manager: m, log, intervalMs: 60_000, now: () => now });
    await s.putCertificate(certificate('pod-a.example.test'));
    issuer.failWith = new CertificateAuthorityError('too many certificates', { rateLimited: true, retryAfterSeconds: 3 * 3600 });
    await renewer.runOnce();
    const failed = (await s.getCertificate('pod-a.example.test'))!;
    expect(failed.certPem).toBe(certificate('x').certPem); // the old certificate is kept
    expect(failed.renewal).toMatchObject({ failures: 1, lastError: 'too many certificates' });
    expect(Date.parse(failed.renewal.nextAttemptAt!)).toBe(now + 3 * 3_600_000);
    expect(m.view(failed).status).toBe('renewal-failing');
    now += 2 * 3_600_000;
    await renewer.runOnce();
    expect(issuer.calls).toHaveLength(1); // still inside Retry-After
    now += 3_600_000;
    issuer.failWith = undefined;
    await renewer.runOnce();
    expect(issuer.calls).toHaveLength(2);
    expect((await s.getCertificate('pod-a.example.test'))?.renewal).toEqual({ failures: 0 });
  });
});
