// The certificates API's guard through a real gateway's admin listener on loopback: the bearer token as the
// orchestrator's admin API takes it, JSON only for changes, health/readiness/metrics open to anyone. Every
// request here is answered before anything reaches the CA (issuance itself: tls.e2e.test.ts, against pebble),
// so the ACME directory is an address nothing listens on.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../shared/log.ts';
import { MemoryCertStore } from '../../shared/memory-cert-store.ts';
import { MemoryRouteStore } from '../../shared/memory-route-store.ts';
import { loadGatewayConfig } from '../config.ts';
import { startGateway, type RunningGateway } from '../main.ts';
import { loadTlsConfig } from './config.ts';
import { loopbackTlsGatewayEnv } from '../../test/support/logs.ts';

const TOKEN = 'certificates-admin-token-0123456789';
const log = silentLogger();

interface Running {
  gateway: RunningGateway;
  url: string;
}
const running: Running[] = [];

async function start(extra: Record<string, string>): Promise<Running> {
  const env = loopbackTlsGatewayEnv(extra);
  const config = loadGatewayConfig(env);
  const tls = { config: loadTlsConfig(env), store: new MemoryCertStore() };
  const gateway = await startGateway(config, { store: new MemoryRouteStore(), log, tls });
  const r = { gateway, url: `http://127.0.0.1:${gateway.adminPort}` };
  running.push(r);
  return r;
}

let guarded: Running;
beforeAll(async () => {
  guarded = await start({ GATEWAY_ADMIN_TOKEN: TOKEN });
});
afterAll(async () => {
  for (const r of running) {
    await r.gateway.shutdown(1000);
  }
});

async function call(path: string, init: RequestInit = {}, base = guarded.url) {
  const res = await fetch(`${base}${path}`, init);
  const text = await res.text();
  let json: { error?: { code?: string; message?: string }; certificates?: unknown[] } | undefined;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const names = JSON.stringify({ names: ['evil.example.com'] });

describe('certificates API authentication', () => {
  it('answers 401 without the token, with a wrong one, or with another scheme', async () => {
    const attempts: RequestInit[] = [
      {},
      { headers: bearer('wrong-token-0123456789abcdef') },
      { headers: bearer(`${TOKEN}x`) },
      { headers: bearer(TOKEN.slice(0, -1)) },
      { headers: { authorization: `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}` } },
      { headers: { authorization: TOKEN } },
      { method: 'POST', headers: { 'content-type': 'application/json' }, body: names },
      { method: 'POST', headers: { ...bearer('nope-nope-nope-nope-nope'), 'content-type': 'application/json' }, body: names },
      { method: 'DELETE' },
    ];
    for (const init of attempts) {
      for (const path of ['/v1/certificates', '/v1/certificates/pod-a.example.test', '/v1/certificates/pod-a.example.test/renew']) {
        const res = await call(path, init);
        expect(res.status, `${init.method ?? 'GET'} ${path} ${JSON.stringify(init.headers)}`).toBe(401);
        expect(res.headers.get('www-authenticate')).toBe('Bearer');
        expect(res.json?.error).toMatchObject({ code: 'unauthorized', message: expect.stringContaining('GATEWAY_ADMIN_TOKEN') });
      }
    }
  });

  it('answers a browser no-cors form POST (text/plain, no Authorization) with 401, before reading it', async () => {
    const res = await call('/v1/certificates', {
      method: 'POST',
      headers: { 'content-type': 'text/plain;charset=UTF-8', origin: 'http://evil.example' },
      body: JSON.stringify({ names: ['pod-a.example.test'] }),
    });
    expect(res.status).toBe(401);
  });

  it('with the token, reads and takes JSON', async () => {
    const list = await call('/v1/certificates', { headers: bearer(TOKEN) });
    expect(list.status).toBe(200);
    expect(list.json).toEqual({ certificates: [] });
    // Past the guard: the names are judged (and refused before any CA is asked).
    for (const type of ['application/json', 'application/json; charset=utf-8', 'Application/JSON']) {
      const post = await call('/v1/certificates', { method: 'POST', headers: { ...bearer(TOKEN), 'content-type': type }, body: names });
      expect(post.status, type).toBe(400);
      expect(post.json?.error?.message).toMatch(/^names: /);
    }
    const gone = await call('/v1/certificates/missing.example.test', { method: 'DELETE', headers: { ...bearer(TOKEN), 'content-type': 'application/json' } });
    expect(gone.status).toBe(404);
    // The lowercase scheme and surrounding spaces are the orchestrator's rules too.
    expect((await call('/v1/certificates', { headers: { authorization: `bearer  ${TOKEN} ` } })).status).toBe(200);
  });

  it('answers 415 to changes with the token that are not declared application/json', async () => {
    const body = JSON.stringify({ names: ['pod-a.example.test'] });
    const types = ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx', 'application/json-seq', 'application/problem+json'];
    for (const type of types) {
      const res = await call('/v1/certificates', { method: 'POST', headers: { ...bearer(TOKEN), 'content-type': type }, body });
      expect(res.status, type).toBe(415);
      expect(res.json?.error?.code).toBe('unsupported_media_type');
    }
    // Without any Content-Type (fetch sends none for a bodiless request), bodiless changes included.
    expect((await call('/v1/certificates/pod-a.example.test/renew', { method: 'POST', headers: bearer(TOKEN) })).status).toBe(415);
    expect((await call('/v1/certificates/pod-a.example.test', { method: 'DELETE', headers: bearer(TOKEN) })).status).toBe(415);
  });

  it('bounds a chunked body that names no length', async () => {
    const chunk = new TextEncoder().encode(`{"names":["${'a'.repeat(1000)}`);
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 100) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const res = await call('/v1/certificates', {
      method: 'POST',
      headers: { ...bearer(TOKEN), 'content-type': 'application/json' },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(400);
    expect(res.json?.error?.message).toMatch(/^body: larger than/);
  });

  it('keeps /healthz, /readyz and /metrics open', async () => {
    expect((await call('/healthz')).status).toBe(200);
    expect((await call('/readyz')).status).toBe(200);
    const metrics = await call('/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.text).toContain('# TYPE');
  });

  it('without GATEWAY_ADMIN_TOKEN, does not serve the API and says which setting turns it on', async () => {
    const open = await start({});
    for (const init of [{}, { headers: bearer(TOKEN) }, { method: 'POST', headers: { 'content-type': 'application/json' }, body: names }]) {
      const res = await call('/v1/certificates', init, open.url);
      expect(res.status).toBe(404);
      expect(res.json?.error?.message).toContain('GATEWAY_ADMIN_TOKEN');
    }
    expect((await call('/v1/certificates/pod-a.example.test/renew', { method: 'POST' }, open.url)).status).toBe(404);
    expect((await call('/healthz', {}, open.url)).status).toBe(200);
  });
});
