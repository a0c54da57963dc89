// AcmeIssuer against a real pebble: HTTP-01 answered through the challenge handler on a plain HTTP server,
// DNS-01 (wildcard) through pebble-challtestsrv, and a clear typed error when the CA is gone.
import { createServer, type Server } from 'node:http';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryCertStore } from '../../shared/memory-cert-store.ts';
import { CertificateAuthorityError, ValidationError } from '../../shared/errors.ts';
import { pino } from 'pino';
import { silentLogger } from '../../shared/log.ts';
import { startPebble, type Pebble } from '../../test/support/pebble.ts';
import { closedPort } from '../../test/support/gateway-harness.ts';
import { AcmeIssuer } from './acme.ts';
import { ChallTestSrvDnsHook, ExecDnsHook } from './dns-hooks.ts';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createChallengeHandler } from './http.ts';

const log = silentLogger();
const store = new MemoryCertStore();
let server: Server;
let pebble: Pebble;

beforeAll(async () => {
  const handle = createChallengeHandler(store, log);
  server = createServer((req, res) => {
    if (!handle(req, res)) res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  pebble = await startPebble({ httpPort: (server.address() as { port: number }).port });
});
afterAll(async () => {
  await pebble?.stop();
  await new Promise((r) => server?.close(r));
});

function issuer(withDns = false) {
  return new AcmeIssuer({
    store,
    directoryUrl: pebble.directoryUrl,
    caBundlePem: pebble.listenerCaPem,
    email: 'ops@example.test',
    log,
    ...(withDns ? { dnsHook: new ChallTestSrvDnsHook(pebble.challtestsrvUrl) } : {}),
  });
}

function verifiesAgainstRoot(certPem: string, rootPem: string): boolean {
  // Leaf <- intermediate (in the chain) <- pebble's root.
  const chain = certPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!.map((p) => new X509Certificate(p));
  const root = new X509Certificate(rootPem);
  return chain[0]!.verify(chain[1]!.publicKey) && chain[1]!.verify(root.publicKey);
}

describe('AcmeIssuer', () => {
  it('issues through HTTP-01, validated by pebble through the challenge route', async () => {
    const cert = await issuer().issue(['localhost-3000.pod-app.example.test', 'pod-app.example.test']);
    const leaf = new X509Certificate(cert.certPem);
    expect(leaf.subjectAltName).toContain('DNS:localhost-3000.pod-app.example.test');
    expect(leaf.checkPrivateKey((await import('node:crypto')).createPrivateKey(cert.keyPem))).toBe(true);
    expect(verifiesAgainstRoot(cert.certPem, pebble.rootPem)).toBe(true);
    expect(Date.parse(cert.notAfter)).toBeGreaterThan(Date.now());
    // One account for the directory, stored with its URL.
    expect((await store.getAccount(pebble.directoryUrl))?.url).toMatch(/^https:/);
  });

  it('issues a wildcard through DNS-01 with the challtestsrv hook', async () => {
    const cert = await issuer(true).issue(['*.pod-app.example.test']);
    expect(new X509Certificate(cert.certPem).subjectAltName).toBe('DNS:*.pod-app.example.test');
  });

  /** An operator's hook script driving challtestsrv; `clear` may be made to fail. */
  async function withHookScript<T>(clearFails: boolean, use: (script: string) => Promise<T>): Promise<T> {
    const dir = await mkdtemp(join(tmpdir(), 'podgate-hook-'));
    const script = join(dir, 'hook.sh');
    // The same contract as scripts/dns-hook-nsupdate.sh (RFC 2136): `<script> set|clear <fqdn> <value>`.
    await writeFile(script, [
      '#!/bin/sh',
      'set -e',
      `api=${pebble.challtestsrvUrl}`,
      'case "$1" in',
      '  set) curl -sf -X POST -d "{\\"host\\":\\"$2.\\",\\"value\\":\\"$3\\"}" "$api/set-txt" ;;',
      clearFails
        ? '  clear) echo "zone is read-only" >&2; exit 1 ;;'
        : '  clear) curl -sf -X POST -d "{\\"host\\":\\"$2.\\"}" "$api/clear-txt" ;;',
      '  *) echo "unknown action $1" >&2; exit 2 ;;',
      'esac',
      '',
    ].join('\n'), { mode: 0o755 });
    try {
      return await use(script);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  it('issues a wildcard through DNS-01 with the exec hook (an operator script)', async () => {
    const cert = await withHookScript(false, (script) =>
      new AcmeIssuer({ store, directoryUrl: pebble.directoryUrl, caBundlePem: pebble.listenerCaPem, dnsHook: new ExecDnsHook(script), log }).issue(['*.example.test']),
    );
    expect(new X509Certificate(cert.certPem).subjectAltName).toBe('DNS:*.example.test');
  });

  it('says when a challenge answer could not be removed (acme-client would swallow it), and still issues', async () => {
    const lines: Array<{ level: number; msg: string; err?: string }> = [];
    const recording = pino({ level: 'warn' }, { write: (l: string) => lines.push(JSON.parse(l)) });
    const cert = await withHookScript(true, (script) =>
      new AcmeIssuer({ store, directoryUrl: pebble.directoryUrl, caBundlePem: pebble.listenerCaPem, dnsHook: new ExecDnsHook(script), log: recording }).issue(['*.leftover.example.test']),
    );
    expect(new X509Certificate(cert.certPem).subjectAltName).toBe('DNS:*.leftover.example.test');
    const warning = lines.find((l) => l.msg.startsWith('ACME challenge answer could not be removed'));
    expect(warning?.err).toContain('zone is read-only');
    // Leave challtestsrv as the other tests expect it.
    await fetch(`${pebble.challtestsrvUrl}/clear-txt`, { method: 'POST', body: JSON.stringify({ host: '_acme-challenge.leftover.example.test.' }) });
  });

  it('refuses wildcards without a DNS hook, naming the field', async () => {
    await expect(issuer().issue(['*.example.test'])).rejects.toBeInstanceOf(ValidationError);
  });

  it('reports the CA rate limit and its Retry-After to the caller instead of sleeping on it', async () => {
    // A real HTTP server answering like a rate-limited CA (pebble has no rate limits to hit).
    const limited = createServer((_req, res) => {
      res.writeHead(429, { 'content-type': 'application/problem+json', 'retry-after': '120' });
      res.end(JSON.stringify({ type: 'urn:ietf:params:acme:error:rateLimited', detail: 'too many new orders' }));
    });
    await new Promise<void>((r) => limited.listen(0, '127.0.0.1', r));
    try {
      const port = (limited.address() as { port: number }).port;
      const err = await new AcmeIssuer({ store: new MemoryCertStore(), directoryUrl: `http://127.0.0.1:${port}/dir`, log })
        .issue(['pod-app.example.test'])
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CertificateAuthorityError);
      expect(err).toMatchObject({ rateLimited: true, retryAfterSeconds: 120 });
    } finally {
      await new Promise((r) => limited.close(r));
    }
  });

  it('says the CA did not answer when nothing listens there', async () => {
    const err = await new AcmeIssuer({ store: new MemoryCertStore(), directoryUrl: `http://127.0.0.1:${await closedPort()}/dir`, log })
      .issue(['pod-app.example.test'])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CertificateAuthorityError);
    expect((err as Error).message).toMatch(/no answer from the CA/);
  });

  it('fails with a typed error when validation fails', async () => {
    // No pod answers this name's challenge: the handler is bypassed by a store that drops answers.
    const failing = new AcmeIssuer({
      store: Object.assign(Object.create(store), { putChallenge: async () => {} }),
      directoryUrl: pebble.directoryUrl,
      caBundlePem: pebble.listenerCaPem,
      log,
    });
    await expect(failing.issue(['pod-nochallenge.example.test'])).rejects.toBeInstanceOf(CertificateAuthorityError);
  });
});
