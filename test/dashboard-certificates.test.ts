// The dashboard's certificates page against a real gateway's certificates API (its admin listener, bearer token,
// memory certificate store): a stored certificate is listed, issuing and renewing show the CA's failure (the ACME
// directory is a loopback address nothing listens on, so the CA is really unreachable), and delete removes it from
// the gateway's store. Issuance itself, against pebble, is gateway/tls's tls.e2e.test.ts.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../gateway/config.ts';
import { startGateway, type RunningGateway } from '../gateway/main.ts';
import { loadTlsConfig } from '../gateway/tls/config.ts';
import { createSelfSignedCertificate } from '../gateway/tls/self-signed.ts';
import { startOrchestrator, type RunningOrchestrator } from '../orchestrator/main.ts';
import { loadConfig } from '../orchestrator/config.ts';
import { testOrchestratorConfig } from './support/orchestrator.ts';
import { ConfigError } from '../shared/errors.ts';
import { silentLogger } from '../shared/log.ts';
import { MemoryCertStore } from '../shared/memory-cert-store.ts';
import { MemoryRouteStore } from '../shared/memory-route-store.ts';
import { loopbackTlsGatewayEnv } from './support/logs.ts';

const ADMIN_TOKEN = 'dashboard-certs-admin-token-0123456789';
const GATEWAY_TOKEN = 'dashboard-certs-gateway-token-0123456789';
const CERT_ID = 'pod-shown.example.test';
const certStore = new MemoryCertStore();
let gateway: RunningGateway;
let orch: RunningOrchestrator;
let base: string;

beforeAll(async () => {
  const env = loopbackTlsGatewayEnv({ GATEWAY_ADMIN_TOKEN: GATEWAY_TOKEN });
  const log = silentLogger();
  const config = loadGatewayConfig(env);
  gateway = await startGateway(config, { store: new MemoryRouteStore(), log, tls: { config: loadTlsConfig(env), store: certStore } });
  const { keyPem, certPem } = await createSelfSignedCertificate(CERT_ID);
  const now = Date.now();
  await certStore.putCertificate({
    id: CERT_ID,
    names: [CERT_ID, '<b>second</b>.example.test'],
    keyPem,
    certPem,
    notBefore: new Date(now).toISOString(),
    notAfter: new Date(now + 90 * 86_400_000).toISOString(),
    issuedAt: new Date(now).toISOString(),
    origin: 'admin',
    renewal: { failures: 0 },
  });
  orch = await startOrchestrator(
    testOrchestratorConfig({
      ADMIN_TOKEN,
      POD_PORT_RANGE: '38940-38941',
      GATEWAY_ADMIN_URL: `http://127.0.0.1:${gateway.adminPort}`,
      GATEWAY_ADMIN_TOKEN: GATEWAY_TOKEN,
    }),
    { logger: pino({ level: 'silent' }) },
  );
  base = `http://127.0.0.1:${orch.port}`;
});

afterAll(async () => {
  await orch?.close();
  await gateway?.shutdown(1000);
});

let cookie: string;
let csrf: string;

async function page(path: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${base}${path}`, { headers: { cookie } });
  return { status: res.status, text: await res.text() };
}

async function post(path: string, form: Record<string, string> = {}): Promise<string> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie, origin: base, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ ...form, _csrf: csrf }).toString(),
  });
  expect(res.status).toBe(303);
  return res.headers.get('location')!;
}

describe('the dashboard\'s certificates page', () => {
  beforeAll(async () => {
    const res = await fetch(`${base}/ui/sign-in`, {
      method: 'POST',
      redirect: 'manual',
      headers: { origin: base, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: ADMIN_TOKEN }).toString(),
    });
    cookie = (res.headers.get('set-cookie') ?? '').split(';')[0]!;
    csrf = /name="_csrf" value="([^"]+)"/.exec((await page('/ui')).text)![1]!;
  });

  it('lists the gateway\'s certificates, escaped, without keys', async () => {
    const { status, text } = await page('/ui/certificates');
    expect(status).toBe(200);
    expect(text).toContain(`<td>${CERT_ID}</td>`);
    expect(text).toContain('&lt;b&gt;second&lt;/b&gt;.example.test');
    expect(text).not.toContain('PRIVATE KEY');
    expect(text).not.toContain('BEGIN CERTIFICATE');
  });

  it('shows the CA\'s failure when issuing or renewing, and deletes from the gateway\'s store', async () => {
    expect(await post('/ui/certificates', { names: 'new.example.test' })).toBe('/ui/certificates');
    const issued = await page('/ui/certificates');
    expect(issued.text).toMatch(/class="flash error" role="alert">issuing new\.example\.test failed: no answer from the CA/);
    expect(await certStore.getCertificate('new.example.test')).toBeUndefined();

    await post(`/ui/certificates/${CERT_ID}/renew`);
    expect((await page('/ui/certificates')).text).toMatch(/class="flash error" role="alert">/);

    await post(`/ui/certificates/${CERT_ID}/delete`);
    const after = await page('/ui/certificates');
    expect(after.text).toContain(`Certificate ${CERT_ID} is deleted.`);
    expect(after.text).not.toContain(`<td>${CERT_ID}</td>`);
    expect(await certStore.getCertificate(CERT_ID)).toBeUndefined();
  });

  it('refuses a change without the CSRF token before asking the gateway', async () => {
    const res = await fetch(`${base}/ui/certificates`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie, origin: base, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ names: 'x.example.test' }).toString(),
    });
    expect(res.status).toBe(403);
  });
});

describe('GATEWAY_ADMIN_URL and GATEWAY_ADMIN_TOKEN', () => {
  const env = { ADMIN_TOKEN, GATEWAY_ADMIN_URL: 'http://127.0.0.1:9090/', GATEWAY_ADMIN_TOKEN: GATEWAY_TOKEN };
  it('are both needed, or neither', () => {
    expect(loadConfig(env).gatewayAdmin).toEqual({ url: 'http://127.0.0.1:9090', token: GATEWAY_TOKEN });
    expect(loadConfig({ ADMIN_TOKEN }).gatewayAdmin).toBeUndefined();
    for (const [missing, rest] of [
      ['GATEWAY_ADMIN_TOKEN', { ADMIN_TOKEN, GATEWAY_ADMIN_URL: env.GATEWAY_ADMIN_URL }],
      ['GATEWAY_ADMIN_URL', { ADMIN_TOKEN, GATEWAY_ADMIN_TOKEN: GATEWAY_TOKEN }],
    ] as const) {
      expect(() => loadConfig(rest)).toThrow(expect.objectContaining({ variable: missing }));
    }
  });
  it('refuse a URL that is not http(s) and a short token', () => {
    expect(() => loadConfig({ ...env, GATEWAY_ADMIN_URL: 'ftp://127.0.0.1/' })).toThrow(ConfigError);
    expect(() => loadConfig({ ...env, GATEWAY_ADMIN_TOKEN: 'short' })).toThrow(expect.objectContaining({ variable: 'GATEWAY_ADMIN_TOKEN' }));
  });
});
