// TLS end to end against a real ACME server: pebble (-strict, random nonce rejection) validating HTTP-01
// through the real gateway's plain-HTTP listener, DNS-01 through pebble-challtestsrv, a real Redis shared by
// two gateway processes (this one, and `node gateway/main.ts` as a child), HTTPS verified against pebble's root.
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { connect as http2Connect } from 'node:http2';
import { Agent, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { WebSocket, WebSocketServer, type ClientOptions } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../config.ts';
import { startGateway, type RunningGateway } from '../main.ts';
import { createRedis, waitReady } from '../../shared/redis.ts';
import { RedisRouteStore } from '../../shared/redis-route-store.ts';
import { RedisCertStore } from '../../shared/redis-cert-store.ts';
import { RouteSchema } from '../../shared/route.ts';
import { startRedis, type RedisServer } from '../../test/support/redis-server.ts';
import { freePorts, startPebble, type Pebble } from '../../test/support/pebble.ts';
import { startUpstream, type Upstream } from '../../test/support/gateway-harness.ts';
import { waitFor } from '../../test/support/wait.ts';
import { loadTlsConfig } from './config.ts';
import type { Tls } from './index.ts';
import { createSelfSignedCertificate } from './self-signed.ts';

const BASE = 'example.test';
const PREFIX = `tlse2e${process.pid}:`;
const ADMIN_TOKEN = 'tls-e2e-admin-token-0123456789';
const logs: { level: number; msg: string; [k: string]: unknown }[] = [];
const log = pino(
  { level: 'debug' },
  new Writable({
    write(chunk, _e, done) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line));
      done();
    },
  }),
);

let redis: RedisServer;
let pebble: Pebble;
let upstream: Upstream;
let gateway: RunningGateway;
let tls: Tls;
let httpPort: number;
let httpsPort: number;
let adminUrl: string;
let writer: RedisRouteStore;
let dir: string;
let clockOffsetMs = 0;
const clients: ReturnType<typeof createRedis>[] = [];

async function client() {
  const c = createRedis(redis.url);
  clients.push(c);
  await waitReady(c);
  return c;
}

async function publishRoute(slug: string, port = upstream.port, declared?: number[]) {
  const route = RouteSchema.parse({
    ...(declared ? { ports: declared } : {}),
    slug,
    host: '127.0.0.1',
    port,
    status: 'running',
    generation: await writer.nextGeneration(),
    updatedAt: new Date().toISOString(),
    access: { default: 'public', ports: {} },
  });
  await writer.put(route);
  await waitFor(() => gateway.table.lookup(slug) !== undefined, { what: `route ${slug}` });
}

function env(extra: Record<string, string> = {}): Record<string, string> {
  return {
    HTTP_HOST: '127.0.0.1',
    HTTPS_HOST: '127.0.0.1',
    ADMIN_HOST: '127.0.0.1',
    BASE_DOMAINS: BASE,
    REDIS_URL: redis.url,
    REDIS_PREFIX: PREFIX,
    ACCESS_LOG: 'false',
    ACME_DIRECTORY_URL: pebble.directoryUrl,
    ACME_CA_BUNDLE: join(dir, 'pebble-listener.pem'),
    ACME_EMAIL: 'ops@example.test',
    TLS_DNS_HOOK: 'challtestsrv',
    TLS_DNS_CHALLTESTSRV_URL: pebble.challtestsrvUrl,
    TLS_ON_DEMAND_BACKOFF_MS: '1000',
    TLS_ON_DEMAND_MAX_PER_POD: '2',
    GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN,
    TLS_RENEW_BACKOFF_MIN_MS: '1000',
    TLS_RENEW_BACKOFF_MAX_MS: '5000',
    TLS_RELOAD_INTERVAL_MS: '1000',
    ...extra,
  };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'podgate-tls-'));
  redis = await startRedis();
  upstream = await startUpstream();
  [httpPort] = (await freePorts(1)) as [number];
  pebble = await startPebble({ httpPort, nonceRejectPercent: 20 });
  await writeFile(join(dir, 'pebble-listener.pem'), pebble.listenerCaPem);
  const e = env({ HTTP_PORT: String(httpPort), HTTPS_PORT: '0', ADMIN_PORT: '0' });
  const config = loadGatewayConfig(e);
  gateway = await startGateway(config, {
    store: new RedisRouteStore(await client(), { prefix: PREFIX }),
    log,
    tls: {
      config: loadTlsConfig(e),
      store: new RedisCertStore(await client(), { prefix: PREFIX }),
      now: () => Date.now() + clockOffsetMs,
    },
  });
  tls = gateway.tls!;
  httpsPort = gateway.httpsPort!;
  adminUrl = `http://127.0.0.1:${gateway.adminPort}`;
  writer = new RedisRouteStore(await client(), { prefix: PREFIX });
  await publishRoute('app');
});

afterAll(async () => {
  await gateway?.shutdown(1000);
  await upstream?.close();
  clients.forEach((c) => c.disconnect());
  await pebble?.stop();
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  body: string;
  cert: PeerCertificate;
  headers: Record<string, unknown>;
}

/** One HTTPS request with SNI `host`, verified against pebble's root (unless `verify` is false). */
function get(host: string, options: { port?: number; verify?: boolean; agent?: Agent; path?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port: options.port ?? httpsPort,
        path: options.path ?? '/hello',
        servername: host,
        headers: { host },
        ca: pebble.rootPem,
        rejectUnauthorized: options.verify ?? true,
        agent: options.agent ?? false,
      },
      (res) => {
        const cert = (res.socket as import('node:tls').TLSSocket).getPeerCertificate();
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, cert, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** The certificate a handshake with SNI `host` gets (no verification: it may be the default one). */
function peerCertificate(host: string, port = httpsPort): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: host, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      const cert = socket.getPeerCertificate();
      socket.end();
      resolve(cert);
    });
    socket.on('error', reject);
  });
}

async function admin(method: string, path: string, body?: unknown, url = adminUrl) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(method === 'GET' ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined, text };
}

const servedBy = (cert: PeerCertificate): string => String(cert.issuer?.CN ?? '');

describe('TLS with pebble through the real gateway', () => {
  it('issues through HTTP-01 on the admin API, validated by pebble through the gateway challenge route', async () => {
    const res = await admin('POST', '/v1/certificates', { names: ['localhost-3000.pod-app.example.test', 'pod-app.example.test'] });
    expect(res.status).toBe(201);
    expect(res.json).toMatchObject({ id: 'localhost-3000.pod-app.example.test', names: ['localhost-3000.pod-app.example.test', 'pod-app.example.test'], status: 'valid', origin: 'admin' });
    // Private keys never appear in API answers.
    expect(res.text).not.toContain('PRIVATE KEY');
    expect(res.text).not.toContain('BEGIN CERTIFICATE');
    const list = await admin('GET', '/v1/certificates');
    expect(list.json.certificates.map((c: { id: string }) => c.id)).toContain('localhost-3000.pod-app.example.test');
    expect(list.json.certificates[0].notAfter).toMatch(/^\d{4}-/);
    expect(JSON.stringify(logs)).not.toContain('PRIVATE KEY');
  });

  it('serves an HTTPS request to the pod through the gateway, verified against pebble root', async () => {
    await waitFor(async () => servedBy(await peerCertificate('pod-app.example.test')).startsWith('Pebble'), { what: 'the issued certificate to be served' });
    const res = await get('localhost-3000.pod-app.example.test');
    expect(res.status).toBe(200);
    const echoed = JSON.parse(res.body);
    expect(echoed.url).toBe('/hello');
    expect(echoed.headers.host).toBe('localhost-3000.pod-app.example.test');
    expect(echoed.headers['x-forwarded-proto']).toBe('https');
    expect(res.cert.subjectaltname).toContain('DNS:localhost-3000.pod-app.example.test');
  });

  it('serves HTTP/2 to clients that offer it', async () => {
    const session = http2Connect(`https://127.0.0.1:${httpsPort}`, { servername: 'pod-app.example.test', ca: pebble.rootPem });
    try {
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const stream = session.request({ ':path': '/h2', ':authority': 'pod-app.example.test' });
        let status = 0;
        let body = '';
        stream.on('response', (h) => (status = Number(h[':status'])));
        stream.setEncoding('utf8');
        stream.on('data', (c: string) => (body += c));
        stream.on('end', () => resolve({ status, body }));
        stream.on('error', reject);
        stream.end();
      });
      expect(session.alpnProtocol).toBe('h2');
      expect(status).toBe(200);
      expect(JSON.parse(body)).toMatchObject({ url: '/h2', headers: { host: 'pod-app.example.test' } });
    } finally {
      session.close();
    }
  });

  it('carries WebSockets over HTTPS (HTTP/1.1 upgrade on the HTTP/2-capable listener)', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    wss.on('connection', (ws) => ws.on('message', (m) => ws.send(`echo:${String(m)}`)));
    await new Promise((r) => wss.once('listening', r));
    try {
      await publishRoute('wspod', (wss.address() as { port: number }).port);
      await admin('POST', '/v1/certificates', { names: ['pod-wspod.example.test'] });
      await waitFor(async () => servedBy(await peerCertificate('pod-wspod.example.test')).startsWith('Pebble'), { what: 'wspod certificate' });
      // ws passes TLS options such as servername through to tls.connect (its types do not list them).
      const tlsOptions = { servername: 'pod-wspod.example.test', headers: { host: 'pod-wspod.example.test' }, ca: pebble.rootPem };
      const ws = new WebSocket(`wss://127.0.0.1:${httpsPort}/socket`, tlsOptions as ClientOptions);
      const reply = await new Promise<string>((resolve, reject) => {
        ws.once('open', () => ws.send('hi'));
        ws.once('message', (m) => resolve(String(m)));
        ws.once('error', reject);
      });
      expect(reply).toBe('echo:hi');
      ws.close();
    } finally {
      wss.close();
    }
  });

  it('redirects plain HTTP to HTTPS, except ACME challenges', async () => {
    const plain = (path: string, host: string) =>
      new Promise<{ status: number; location?: string }>((resolve, reject) => {
        httpRequest({ host: '127.0.0.1', port: httpPort, path, headers: { host } }, (res) => {
          res.resume();
          resolve({ status: res.statusCode ?? 0, location: res.headers.location });
        })
          .on('error', reject)
          .end();
      });
    expect(await plain('/x?y=1', 'pod-app.example.test')).toEqual({ status: 308, location: `https://pod-app.example.test:${httpsPort}/x?y=1` });
    expect((await plain('/.well-known/acme-challenge/unknown-token-1234567890', 'pod-app.example.test')).status).toBe(404);
  });

  it('issues a wildcard through DNS-01 and serves it for every port of the pod', async () => {
    const res = await admin('POST', '/v1/certificates', { names: ['*.pod-app.example.test'] });
    expect(res.status).toBe(201);
    await waitFor(async () => (await peerCertificate('localhost-5173.pod-app.example.test')).subjectaltname === 'DNS:*.pod-app.example.test', {
      what: 'the wildcard to be served',
    });
    const answer = await get('localhost-5173.pod-app.example.test');
    expect(answer.status).toBe(200);
    expect((await admin('GET', '/v1/certificates/%2A.pod-app.example.test')).json).toMatchObject({ id: '*.pod-app.example.test' });
    expect((await admin('GET', '/v1/certificates/*.pod-app.example.test')).status).toBe(200);
    // The exact name still wins over the wildcard.
    expect((await peerCertificate('localhost-3000.pod-app.example.test')).subjectaltname).toContain('DNS:localhost-3000.pod-app.example.test');
  });

  it('rejects bad names with an error naming the field', async () => {
    const res = await admin('POST', '/v1/certificates', { names: ['evil.example.com'] });
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ code: 'invalid_request' });
    expect(res.json.error.message).toMatch(/^names: /);
    expect((await admin('POST', '/v1/certificates', { nope: 1 })).json.error.message).toMatch(/^names/);
    expect((await admin('DELETE', '/v1/certificates/missing.example.test')).status).toBe(404);
  });

  it('issues on demand for an existing pod, serving the default certificate meanwhile', async () => {
    await publishRoute('ondemand', upstream.port, [3000, 8080]);
    const host = 'localhost-8080-pod-ondemand.example.test';
    const first = await peerCertificate(host);
    expect(servedBy(first)).not.toMatch(/^Pebble/); // the default certificate while it issues
    await waitFor(async () => servedBy(await peerCertificate(host)).startsWith('Pebble'), { what: 'on-demand certificate', timeoutMs: 30_000 });
    expect((await get(host)).status).toBe(200);
    const stored = await admin('GET', `/v1/certificates/${host}`);
    expect(stored.json).toMatchObject({ origin: 'on-demand', names: [host] });
  });

  it('a client walking the ports of a pod gets certificates only for declared ones, and only as many as the per-pod cap', async () => {
    await publishRoute('walk', upstream.port, [4000, 4001, 4002]);
    const hosts = Array.from({ length: 11 }, (_, i) => `localhost-${3995 + i}.pod-walk.example.test`);
    for (const host of hosts) expect(servedBy(await peerCertificate(host))).toBe('podgate default certificate');
    await tls.onDemand?.settled();
    const outcomes = logs.filter((l) => typeof l.servername === 'string' && hosts.includes(l.servername as string) && l.outcome);
    expect(outcomes.map((l) => l.outcome)).toEqual(Array(8).fill('refused:undeclared-port'));
    const walked = (await admin('GET', '/v1/certificates')).json.certificates.filter((c: { id: string }) => c.id.endsWith('.pod-walk.example.test'));
    // Three declared ports were asked for; TLS_ON_DEMAND_MAX_PER_POD=2 let two reach pebble.
    expect(walked).toHaveLength(2);
    for (const c of walked) expect(['localhost-4000.pod-walk.example.test', 'localhost-4001.pod-walk.example.test', 'localhost-4002.pod-walk.example.test']).toContain(c.id);
    expect(logs.filter((l) => l.msg === 'on-demand issuance refused: the pod reached its limit' && l.slug === 'walk')).toHaveLength(1);
    for (const c of walked) expect(servedBy(await peerCertificate(c.id))).toMatch(/^Pebble/);
    // Undeclared names never got as far as the store.
    for (const host of hosts.filter((h) => !walked.some((c: { id: string }) => c.id === h))) {
      expect(servedBy(await peerCertificate(host))).toBe('podgate default certificate');
    }
  });

  it('never serves an expired certificate: its name gets the default one and is issued on demand again', async () => {
    await publishRoute('lapsed');
    const host = 'pod-lapsed.example.test';
    const lapsed = await createSelfSignedCertificate('lapsed stored certificate');
    const lapsedAt = Date.now() - 60_000;
    await new RedisCertStore(await client(), { prefix: PREFIX }).putCertificate({
      id: host,
      names: [host],
      certPem: lapsed.certPem,
      keyPem: lapsed.keyPem,
      notBefore: new Date(lapsedAt - 90 * 86_400_000).toISOString(),
      notAfter: new Date(lapsedAt).toISOString(),
      issuedAt: new Date(lapsedAt - 90 * 86_400_000).toISOString(),
      origin: 'on-demand',
      renewal: { failures: 0 },
    });
    await tls.reload();
    expect(servedBy(await peerCertificate(host))).toBe('podgate default certificate');
    await waitFor(async () => servedBy(await peerCertificate(host)).startsWith('Pebble'), { what: 'a new on-demand certificate', timeoutMs: 30_000 });
    expect(Date.parse((await admin('GET', `/v1/certificates/${host}`)).json.notAfter)).toBeGreaterThan(Date.now());
  });

  it('refuses on-demand issuance for an unknown pod and for names that are not pod hostnames', async () => {
    for (const host of ['pod-ghost.example.test', 'www.example.test', 'pod-app.other.test']) {
      const cert = await peerCertificate(host);
      expect(servedBy(cert)).not.toMatch(/^Pebble/);
      expect(tls.onDemand?.isPending(host)).toBe(false);
    }
    await tls.onDemand?.settled();
    expect((await admin('GET', '/v1/certificates/pod-ghost.example.test')).status).toBe(404);
  });

  it('renews in the background and swaps the certificate without dropping an open connection', async () => {
    const host = 'pod-app.example.test';
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: pebble.rootPem });
    try {
      const before = await get(host, { agent });
      // Move the renewal clock past two thirds of the lifetime, then let one renewal pass run.
      const record = (await admin('GET', `/v1/certificates/localhost-3000.pod-app.example.test`)).json;
      clockOffsetMs = Date.parse(record.renewAt) - Date.now() + 60_000;
      await tls.renewer.runOnce();
      await waitFor(async () => (await peerCertificate(host)).serialNumber !== before.cert.serialNumber, { what: 'the renewed certificate' });
      // The kept-alive connection still works, on the same TLS session with the old certificate.
      const after = await get(host, { agent });
      expect(after.status).toBe(200);
      expect(after.cert.serialNumber).toBe(before.cert.serialNumber);
      // A new connection gets the renewed certificate, valid against pebble's root.
      const fresh = await get(host);
      expect(fresh.status).toBe(200);
      expect(fresh.cert.serialNumber).not.toBe(before.cert.serialNumber);
      expect(logs.some((l) => l.msg === 'certificate renewed')).toBe(true);
    } finally {
      agent.destroy();
      clockOffsetMs = 0;
    }
  });

  it('a second gateway process on the same store serves the same certificate and can issue', async () => {
    const [childHttp, childHttps, childAdmin] = (await freePorts(3)) as [number, number, number];
    const child: ChildProcess = spawn(process.execPath, ['gateway/main.ts'], {
      env: { ...process.env, ...env({ HTTP_PORT: String(childHttp), HTTPS_PORT: String(childHttps), ADMIN_PORT: String(childAdmin), LOG_LEVEL: 'warn' }) },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    try {
      await waitFor(async () => {
        if (child.exitCode !== null) throw new Error(`child gateway exited: ${stderr}`);
        return (await fetch(`http://127.0.0.1:${childAdmin}/readyz`).catch(() => undefined))?.status === 200;
      }, { timeoutMs: 30_000, what: 'the second gateway' });
      const host = 'localhost-3000.pod-app.example.test';
      await waitFor(async () => (await peerCertificate(host, childHttps).catch(() => undefined))?.serialNumber === (await peerCertificate(host)).serialNumber, {
        what: 'the same certificate on both gateways',
      });
      // Issued through the second gateway's API; pebble validates HTTP-01 at the first gateway, which reads the
      // answer the second one put in the shared store.
      const res = await admin('POST', '/v1/certificates', { names: ['pod-second.example.test'] }, `http://127.0.0.1:${childAdmin}`);
      expect(res.status).toBe(201);
      await waitFor(async () => servedBy(await peerCertificate('pod-second.example.test')).startsWith('Pebble'), { what: 'the first gateway to serve it' });
    } finally {
      await new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      });
    }
  });

  it('issues, lists and deletes from the command line through the admin API', async () => {
    const run = (token: string, args: string[]) =>
      new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        // `npm run certs` is `podgate certs`: the gateway's own variables are what it reads.
        const child = spawn('bin/podgate', ['certs', ...args], {
          env: { ...process.env, ADMIN_URL: adminUrl, GATEWAY_ADMIN_TOKEN: token, ADMIN_TOKEN: '' },
        });
        let out = '';
        let err = '';
        child.stdout.on('data', (c: Buffer) => (out += c.toString()));
        child.stderr.on('data', (c: Buffer) => (err += c.toString()));
        child.on('exit', (code) => resolve({ code, out, err }));
      });
    const cli = (...args: string[]) => run(ADMIN_TOKEN, args);
    const issued = await cli('--json', 'issue', 'pod-cli.example.test');
    expect(issued).toMatchObject({ code: 0 });
    expect(JSON.parse(issued.out)).toMatchObject({ id: 'pod-cli.example.test', status: 'valid' });
    const listed = JSON.parse((await cli('--json', 'list')).out) as { certificates: { id: string; status: string }[] };
    expect(listed.certificates).toContainEqual(expect.objectContaining({ id: '*.pod-app.example.test', status: 'valid' }));
    expect(await cli('delete', 'pod-cli.example.test')).toMatchObject({ code: 0 });
    expect(await cli('delete', 'pod-cli.example.test')).toMatchObject({ code: 1, err: expect.stringMatching(/no certificate/) });
    expect((await cli('frobnicate')).code).toBe(2);
    expect((await cli('issue', 'evil.example.com')).err).toMatch(/names: /);
    // The CLI sends the token; without one it says which setting to set, with a wrong one the gateway refuses.
    expect(await run('', ['list'])).toMatchObject({ code: 1, err: expect.stringMatching(/GATEWAY_ADMIN_TOKEN/) });
    expect(await run('wrong-token-0123456789abcdef', ['list'])).toMatchObject({ code: 1, err: expect.stringMatching(/bearer token/) });
  });

  it('a store that lost its certificates gets them back from the gateway; one deleted on purpose stays gone', async () => {
    const redisClient = await client();
    const kept = 'pod-app.example.test';
    const dropped = 'pod-dropped.example.test';
    const pair = await createSelfSignedCertificate(dropped);
    const at = Date.now();
    await new RedisCertStore(redisClient, { prefix: PREFIX }).putCertificate({
      id: dropped, names: [dropped], certPem: pair.certPem, keyPem: pair.keyPem,
      notBefore: new Date(at).toISOString(), notAfter: new Date(at + 30 * 86_400_000).toISOString(), issuedAt: new Date(at).toISOString(),
      origin: 'admin', renewal: { failures: 0 },
    });
    await waitFor(async () => servedBy(await peerCertificate(dropped)) === dropped, { what: 'the stored certificate to be served' });
    const before = servedBy(await peerCertificate(kept));
    expect(before).toMatch(/^Pebble/);
    // Deleted on purpose while this gateway missed the event (no PUBLISH): the next reload drops it.
    await redisClient.multi().hdel(`${PREFIX}tls:certs`, dropped).hset(`${PREFIX}tls:certs:deleted`, dropped, String(Date.now())).exec();
    await tls.reload();
    expect(servedBy(await peerCertificate(dropped))).toBe('podgate default certificate');
    const storedIds = async () => ((await admin('GET', '/v1/certificates')).json.certificates as { id: string }[]).map((c) => c.id).sort();
    const held = await storedIds();
    expect(held.length).toBeGreaterThan(1);
    // Then the store loses all its certificates (a Redis restarted empty, as far as the certificates go).
    await redisClient.del(`${PREFIX}tls:certs`, `${PREFIX}tls:certs:deleted`);
    await tls.reload();
    expect(servedBy(await peerCertificate(kept))).toBe(before);
    // Every certificate the gateway held is in the store again, for the other replicas and the renewer.
    expect(await storedIds()).toEqual(held);
    expect((await admin('GET', `/v1/certificates/${dropped}`)).status).toBe(404);
  });

  it('keeps serving the old certificate when the CA fails, and says so in the list and logs', async () => {
    const host = 'localhost-3000.pod-app.example.test';
    const before = await peerCertificate(host);
    await pebble.stopCa();
    const res = await admin('POST', `/v1/certificates/${host}/renew`);
    expect(res.status).toBe(502);
    expect(res.json.error.code).toBe('certificate_authority_error');
    const listed = (await admin('GET', '/v1/certificates')).json.certificates.find((c: { id: string }) => c.id === host);
    expect(listed.status).toBe('renewal-failing');
    expect(listed.renewal.failures).toBe(1);
    expect(listed.renewal.lastError).toMatch(/CA/);
    expect(logs.some((l) => l.msg.startsWith('certificate renewal failed'))).toBe(true);
    const after = await get(host);
    expect(after.status).toBe(200);
    expect(after.cert.serialNumber).toBe(before.serialNumber);
    expect(new X509Certificate(after.cert.raw).checkHost(host)).toBe(host);
  });
});
