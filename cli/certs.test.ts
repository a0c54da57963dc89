// `podgate certs` (and `npm run certs`, its alias) as child processes against a real gateway's admin listener on
// loopback. The certificates in the store are real (openssl, self-signed); issuance itself is tls.e2e.test.ts's
// (pebble): here the ACME directory is an address nothing listens on, so an issue fails at the CA.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { silentLogger } from '../shared/log.ts';
import { MemoryCertStore } from '../shared/memory-cert-store.ts';
import { MemoryRouteStore } from '../shared/memory-route-store.ts';
import { loadGatewayConfig } from '../gateway/config.ts';
import { startGateway, type RunningGateway } from '../gateway/main.ts';
import { loadTlsConfig } from '../gateway/tls/config.ts';
import { createSelfSignedCertificate } from '../gateway/tls/self-signed.ts';
import { childEnv, podgate, type CliResult } from '../test/support/cli.ts';
import { loopbackTlsGatewayEnv } from '../test/support/logs.ts';

const TOKEN = 'cli-certs-admin-token-0123456789';
const log = silentLogger();
const running: RunningGateway[] = [];
const outputs: CliResult[] = [];
let store: MemoryCertStore;
let keyPem: string;
let url: string;
let offUrl: string;
let home: string;

async function start(extra: Record<string, string>, certStore: MemoryCertStore): Promise<string> {
  const env = loopbackTlsGatewayEnv(extra);
  const config = loadGatewayConfig(env);
  const gateway = await startGateway(config, { store: new MemoryRouteStore(), log, tls: { config: loadTlsConfig(env), store: certStore } });
  running.push(gateway);
  return `http://127.0.0.1:${gateway.adminPort}`;
}

async function certs(args: string[], env: Record<string, string> = { PODGATE_GATEWAY_URL: url, PODGATE_GATEWAY_TOKEN: TOKEN }): Promise<CliResult> {
  const r = await podgate(['certs', ...args], childEnv(home, env));
  outputs.push(r);
  return r;
}

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'podgate-certs-home-'));
  store = new MemoryCertStore();
  const now = Date.now();
  const pem = await createSelfSignedCertificate('app.example.test');
  keyPem = pem.keyPem;
  await store.putCertificate({
    id: 'app.example.test', names: ['app.example.test', '*.app.example.test'], ...pem,
    notBefore: new Date(now).toISOString(), notAfter: new Date(now + 90 * 86_400_000).toISOString(), issuedAt: new Date(now).toISOString(),
    origin: 'admin', renewal: { failures: 2, lastError: 'the CA is down' },
  });
  url = await start({ GATEWAY_ADMIN_TOKEN: TOKEN }, store);
  offUrl = await start({}, new MemoryCertStore());
});

afterAll(async () => {
  for (const gateway of running) await gateway.shutdown(1000);
  if (home) rmSync(home, { recursive: true, force: true });
});

describe('podgate certs', () => {
  it('lists as a table and as JSON, shows one, deletes it', async () => {
    const ls = await certs(['ls']);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout.split('\n')[0]).toMatch(/^ID\s+STATUS\s+EXPIRES\s+RENEW AT\s+ORIGIN\s+NAMES\s+RENEWAL$/);
    expect(ls.stdout).toMatch(/^app\.example\.test\s+renewal-failing\s+\S+Z\s+\S+Z\s+admin\s+app\.example\.test,\*\.app\.example\.test\s+failed 2x: the CA is down$/m);
    const lsJson = JSON.parse((await certs(['--json', 'ls'])).stdout) as { certificates: { id: string; names: string[] }[] };
    expect(lsJson.certificates.map((c) => c.id)).toEqual(['app.example.test']);

    expect(JSON.parse((await certs(['show', 'app.example.test', '--json'])).stdout)).toMatchObject({ id: 'app.example.test', origin: 'admin' });
    expect(await certs(['rm', 'app.example.test'])).toMatchObject({ code: 0, stdout: 'deleted app.example.test\n' });
    expect(await certs(['list'])).toMatchObject({ code: 0, stdout: 'no certificates\n' });
    expect(await store.getCertificate('app.example.test')).toBeUndefined();
  });

  it('exits 1 with the gateway\'s message: wrong token, unknown certificate, a name it refuses, the CA unreachable, the API off', async () => {
    expect(await certs(['ls'], { PODGATE_GATEWAY_URL: url, PODGATE_GATEWAY_TOKEN: 'wrong-token-0123456789abcdef' })).toEqual({
      code: 1, stdout: '', stderr: 'podgate: a valid bearer token (GATEWAY_ADMIN_TOKEN) is required (HTTP 401 unauthorized)\n',
    });
    expect(await certs(['renew', 'nosuch.example.test'])).toMatchObject({ code: 1, stderr: 'podgate: no certificate "nosuch.example.test" (HTTP 404 not_found)\n' });
    const foreign = await certs(['issue', 'evil.example.com']);
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toMatch(/^podgate: .*evil\.example\.com.* \(HTTP 400 invalid_request\)\n$/);
    const ca = await certs(['issue', 'new.example.test']);
    expect(ca.code).toBe(1);
    expect(ca.stderr).toMatch(/^podgate: .+ \(HTTP 5\d\d \w+\)\n$/);
    expect(await certs(['ls'], { PODGATE_GATEWAY_URL: offUrl, PODGATE_GATEWAY_TOKEN: TOKEN })).toMatchObject({
      code: 1, stderr: 'podgate: the certificates API is off: set GATEWAY_ADMIN_TOKEN on the gateway to serve it (HTTP 404 not_found)\n',
    });
    expect((await certs(['issue'])).code).toBe(2);
  });

  it('runs as `npm run certs` with the gateway\'s own variables', async () => {
    const root = fileURLToPath(new URL('..', import.meta.url));
    const { stdout } = await promisify(execFile)('npm', ['run', '--silent', 'certs', '--', 'list'], {
      cwd: root, env: childEnv(home, { ADMIN_URL: url, GATEWAY_ADMIN_TOKEN: TOKEN }),
    });
    expect(stdout).toBe('no certificates\n');
  });

  it('never printed a token or a private key', () => {
    expect(outputs.length).toBeGreaterThanOrEqual(11);
    for (const r of outputs) {
      expect(`${r.stdout}${r.stderr}`).not.toContain(TOKEN);
      expect(`${r.stdout}${r.stderr}`).not.toContain(keyPem.split('\n')[1]);
      expect(`${r.stdout}${r.stderr}`).not.toContain('PRIVATE KEY');
    }
  });
});
