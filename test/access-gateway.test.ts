// Access control through a real gateway: real Redis, real upstream HTTP/WebSocket servers on
// loopback; the test writes routes and links as the orchestrator would.
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { newLinkId } from '../shared/access-token.ts';
import { ACCESS_COOKIE, TOKEN_HEADER } from '../gateway/access/credentials.ts';
import { startUpstream, type Upstream } from './support/gateway-harness.ts';
import { waitFor } from './support/wait.ts';
import { parseSetCookie, PUBLIC, send, sendHttp2, startTestGateway, startWorld, type AccessWorld, type RequestOptions, type TestGateway } from './support/access.ts';

const BROWSER = { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' };

let world: AccessWorld;
let gw: TestGateway;
let up: Upstream;
let wsUp: { port: number; upgrades: IncomingMessage['headers'][]; urls: string[]; close(): Promise<void> };

const get = (host: string, options?: RequestOptions) => send(gw.url, host, options);
const seen = () => up.requests.at(-1)!;

beforeAll(async () => {
  world = await startWorld();
  gw = await startTestGateway(world, { ACCESS_CONCEAL_PODS: 'true' });
  up = await startUpstream();
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const upgrades: IncomingMessage['headers'][] = [];
  const urls: string[] = [];
  wss.on('connection', (ws, req) => {
    upgrades.push(req.headers);
    urls.push(req.url ?? '');
    ws.on('message', (data) => ws.send(`echo ${data}`));
  });
  wsUp = {
    port: (wss.address() as AddressInfo).port,
    upgrades,
    urls,
    close: () => new Promise<void>((r) => {
      for (const c of wss.clients) c.terminate();
      wss.close(() => r());
    }),
  };
  await world.route('secret', up.port, {}, [gw.gateway]);
  await world.route('other', up.port, {}, [gw.gateway]);
  await world.route('mixed', up.port, { access: { default: 'private', ports: { '3000': 'public' } } }, [gw.gateway]);
  await world.route('sock', wsUp.port, {}, [gw.gateway]);
});
afterAll(async () => {
  await gw?.close();
  await up?.close();
  await wsUp?.close();
  await world?.close();
});

describe('private by default', () => {
  it('refuses a pod whose route says nothing about access: JSON for API clients, a page for browsers', async () => {
    const before = up.requests.length;
    const api = await get('pod-secret.localhost');
    expect(api.status).toBe(401);
    expect(api.headers['content-type']).toBe('application/json');
    expect(JSON.parse(api.body).error.code).toBe('unauthorized');
    expect(api.headers['www-authenticate']).toMatch(/X-Podgate-Token/i);
    const page = await get('pod-secret.localhost', { headers: BROWSER });
    expect(page.status).toBe(401);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.body).toContain('401 Sign-in required');
    expect(up.requests.length).toBe(before);
  });

  it('does not reveal whether a pod exists: unknown, stopped and private pods get the same answer', async () => {
    await world.route('sleeping', up.port, { status: 'stopped' }, [gw.gateway]);
    const answers = await Promise.all(
      ['pod-secret.localhost', 'pod-nosuchpod.localhost', 'pod-sleeping.localhost', 'localhost-8080.pod-nosuchpod.localhost'].map((host) =>
        get(host, { headers: BROWSER }),
      ),
    );
    for (const a of answers) {
      expect(a.status).toBe(401);
      expect(a.body).toBe(answers[0]!.body);
    }
    // With a valid token for the pod, the truth is no secret.
    const { token } = await world.link('sleeping');
    expect((await get('pod-sleeping.localhost', { headers: { [TOKEN_HEADER]: token } })).status).toBe(503);
    const gone = await world.link('nosuchpod');
    expect((await get('pod-nosuchpod.localhost', { headers: { [TOKEN_HEADER]: gone.token } })).status).toBe(404);
  });

  it('on a public port, a link still becomes a cookie and the URL loses the token', async () => {
    const { token } = await world.link('mixed');
    const a = await get('localhost-3000.pod-mixed.localhost', { path: `/x?podgate_token=${token}`, headers: BROWSER });
    expect(a.status).toBe(302);
    expect(a.headers.location).toBe('/x');
    expect(parseSetCookie(String(a.headers['set-cookie'])).value).toBe(token);
  });

  it('lets a public port through with nothing, and keeps the other ports private', async () => {
    const open = await get('localhost-3000.pod-mixed.localhost');
    expect(open.status).toBe(200);
    expect((await get('pod-mixed.localhost')).status).toBe(200); // default port 3000
    expect((await get('localhost-8080.pod-mixed.localhost')).status).toBe(401);
  });

  it('follows visibility changes of a running pod (a new route generation)', async () => {
    await world.route('flip', up.port, {}, [gw.gateway]);
    expect((await get('pod-flip.localhost')).status).toBe(401);
    await world.route('flip', up.port, { access: PUBLIC }, [gw.gateway]);
    expect((await get('pod-flip.localhost')).status).toBe(200);
    await world.route('flip', up.port, { access: { default: 'public', ports: { '3000': 'private' } } }, [gw.gateway]);
    expect((await get('pod-flip.localhost')).status).toBe(401);
    expect((await get('localhost-5000.pod-flip.localhost')).status).toBe(200);
  });
});

describe('access links', () => {
  it('turn into a host-only cookie and a redirect to the same URL without the token', async () => {
    const { token } = await world.link('secret');
    const before = up.requests.length;
    const a = await get('localhost-3000.pod-secret.localhost:8080', { path: `/app/page?a=1&podgate_token=${token}&b=two`, headers: BROWSER });
    expect(a.status).toBe(302);
    expect(a.headers.location).toBe('/app/page?a=1&b=two');
    expect(a.headers['referrer-policy']).toBe('no-referrer');
    expect(a.headers['cache-control']).toBe('no-store');
    expect(up.requests.length).toBe(before); // the pod never saw the URL with the token
    const cookie = parseSetCookie(String(a.headers['set-cookie']));
    expect(cookie.name).toBe(ACCESS_COOKIE);
    expect(cookie.value).toBe(token);
    expect(cookie.attributes.has('httponly')).toBe(true);
    expect(cookie.attributes.get('samesite')).toBe('Lax');
    expect(cookie.attributes.get('path')).toBe('/');
    expect(cookie.attributes.has('domain')).toBe(false); // host-only: exactly this hostname
    expect(cookie.attributes.has('secure')).toBe(false); // plain HTTP here
    expect(Number(cookie.attributes.get('max-age'))).toBeGreaterThan(3500);
    expect(Number(cookie.attributes.get('max-age'))).toBeLessThanOrEqual(3600);

    const b = await get('localhost-3000.pod-secret.localhost:8080', {
      path: '/app/page?a=1&b=two',
      headers: { ...BROWSER, cookie: `theme=dark; ${ACCESS_COOKIE}=${token}; session=abc` },
    });
    expect(b.status).toBe(200);
    expect(seen().url).toBe('/app/page?a=1&b=two');
    expect(seen().headers.cookie).toBe('theme=dark; session=abc');
  });

  it('turn into a Secure cookie when redeemed over HTTPS, on HTTP/1.1 and HTTP/2 alike', async () => {
    // A second gateway with an HTTPS listener and its self-signed default certificate (no CA involved).
    const tls = await startTestGateway(world, { HTTPS_PORT: '0', ACCESS_CONCEAL_PODS: 'true' });
    try {
      await waitFor(() => tls.gateway.table.lookup('secret') !== undefined, { what: 'routes' });
      const { token } = await world.link('secret');
      const path = `/app?podgate_token=${token}`;
      const h1 = await send(tls.httpsUrl!, 'pod-secret.localhost', { path, headers: BROWSER });
      expect(h1.status).toBe(302);
      const h1Cookie = parseSetCookie(String(h1.headers['set-cookie']));
      expect(h1Cookie.value).toBe(token);
      expect(h1Cookie.attributes.has('secure')).toBe(true);
      const h2 = await sendHttp2(tls.httpsUrl!, 'pod-secret.localhost', path);
      expect(h2.status).toBe(302);
      expect(h2.location).toBe('/app');
      const h2Cookie = parseSetCookie(h2.setCookie);
      expect(h2Cookie.value).toBe(token);
      expect(h2Cookie.attributes.has('secure')).toBe(true);
    } finally {
      await tls.close();
    }
  });

  it('a link with only the token leaves a URL without a query', async () => {
    const { token } = await world.link('secret');
    const a = await get('pod-secret.localhost', { path: `/?podgate_token=${token}`, headers: BROWSER });
    expect(a.status).toBe(302);
    expect(a.headers.location).toBe('/');
  });

  it('accept the token in the X-Podgate-Token header for API clients; the pod never sees it', async () => {
    const { token } = await world.link('secret');
    const a = await get('pod-secret.localhost', { path: '/api', headers: { [TOKEN_HEADER]: token, cookie: 'x=1' } });
    expect(a.status).toBe(200);
    expect(seen().headers[TOKEN_HEADER]).toBeUndefined();
    expect(seen().headers.cookie).toBe('x=1');
    expect(JSON.stringify(seen().headers)).not.toContain(token);
  });

  it('authorise a POST carrying the token in the query, and strip it from the URL the pod sees', async () => {
    const { token } = await world.link('secret');
    const a = await get('pod-secret.localhost', { method: 'POST', path: `/submit?podgate_token=${token}&x=1`, body: 'data' });
    expect(a.status).toBe(200);
    expect(seen()).toMatchObject({ method: 'POST', url: '/submit?x=1' });
  });

  it('never open another pod, nor another port when scoped to one', async () => {
    const forSecret = await world.link('secret');
    expect((await get('pod-other.localhost', { headers: { [TOKEN_HEADER]: forSecret.token } })).status).toBe(401);
    const port3000 = await world.link('secret', { port: 3000 });
    expect((await get('localhost-3000.pod-secret.localhost', { headers: { [TOKEN_HEADER]: port3000.token } })).status).toBe(200);
    expect((await get('pod-secret.localhost', { headers: { [TOKEN_HEADER]: port3000.token } })).status).toBe(200);
    expect((await get('localhost-8080.pod-secret.localhost', { headers: { [TOKEN_HEADER]: port3000.token } })).status).toBe(401);
    // A scoped link redeemed on the wrong port sets no cookie.
    const wrong = await get('localhost-8080.pod-secret.localhost', { path: `/?podgate_token=${port3000.token}`, headers: BROWSER });
    expect(wrong.status).toBe(401);
    expect(wrong.headers['set-cookie']).toBeUndefined();
  });

  it('reject expired, forged and truncated tokens', async () => {
    const expired = await world.link('secret', { expiresInS: -1 });
    const { token } = await world.link('secret');
    const [head, payload, sig] = token.split('.') as [string, string, string];
    const other = JSON.parse(Buffer.from(payload, 'base64url').toString());
    const forgedPayload = Buffer.from(JSON.stringify({ ...other, p: 'other' })).toString('base64url');
    for (const bad of [expired.token, token.slice(0, -1), token.slice(0, 40), `${head}.${forgedPayload}.${sig}`, `${head}.${payload}.${'A'.repeat(43)}`, 'garbage']) {
      const a = await get('pod-secret.localhost', { headers: { [TOKEN_HEADER]: bad } });
      expect(a.status, bad).toBe(401);
    }
  });

  it('clear a cookie that no longer opens anything', async () => {
    const expired = await world.link('secret', { expiresInS: -1 });
    const a = await get('pod-secret.localhost', { headers: { ...BROWSER, cookie: `${ACCESS_COOKIE}=${expired.token}` } });
    expect(a.status).toBe(401);
    const cleared = parseSetCookie(String(a.headers['set-cookie']));
    expect(cleared).toMatchObject({ name: ACCESS_COOKIE, value: '' });
    expect(cleared.attributes.get('max-age')).toBe('0');
  });

  it('a cookie tossed at a parent domain by another pod does not shadow the real one', async () => {
    const mine = await world.link('secret');
    const theirs = await world.link('other');
    const a = await get('pod-secret.localhost', { headers: { cookie: `${ACCESS_COOKIE}=${theirs.token}; ${ACCESS_COOKIE}=${mine.token}` } });
    expect(a.status).toBe(200);
    expect(seen().headers.cookie).toBeUndefined();
  });

  it('stop working on this gateway within seconds of revocation, one link or all of a pod', async () => {
    const one = await world.link('secret');
    const two = await world.link('secret');
    const ask = (token: string) => get('pod-secret.localhost', { headers: { [TOKEN_HEADER]: token } });
    expect((await ask(one.token)).status).toBe(200);
    expect(await world.access.revokeLink('secret', one.id, Date.now())).toBe(true);
    await waitFor(async () => (await ask(one.token)).status === 401, { what: 'the revoked link to be refused', timeoutMs: 5_000 });
    expect((await ask(two.token)).status).toBe(200);
    await world.access.revokePod('secret', Date.now() + 1);
    await waitFor(async () => (await ask(two.token)).status === 401, { what: 'every link of the pod to be refused', timeoutMs: 5_000 });
    // Links minted afterwards work.
    const three = await world.link('secret', { iat: Date.now() + 2 });
    expect((await ask(three.token)).status).toBe(200);
  });
});

describe('browsers talking to a private service', () => {
  it('open a WebSocket with the cookie; the pod never sees it; without it the upgrade is refused', async () => {
    const { token } = await world.link('sock');
    const ws = new WebSocket(`ws://127.0.0.1:${gw.gateway.httpPort}/ws`, {
      headers: { host: 'pod-sock.localhost', cookie: `${ACCESS_COOKIE}=${token}; keep=1`, origin: 'http://pod-sock.localhost' },
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const reply = new Promise<string>((r) => ws.once('message', (d) => r(String(d))));
    ws.send('hi');
    expect(await reply).toBe('echo hi');
    expect(wsUp.upgrades.at(-1)!.cookie).toBe('keep=1');
    ws.close();

    const status = await new Promise<number>((resolve, reject) => {
      const anon = new WebSocket(`ws://127.0.0.1:${gw.gateway.httpPort}/ws`, { headers: { host: 'pod-sock.localhost' } });
      anon.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      anon.once('open', () => reject(new Error('opened without credentials')));
      anon.once('error', () => {});
    });
    expect(status).toBe(401);
  });

  it('open a WebSocket with the token in the query (non-browser clients), stripped before the pod', async () => {
    const { token } = await world.link('sock');
    const ws = new WebSocket(`ws://127.0.0.1:${gw.gateway.httpPort}/ws?podgate_token=${token}&room=1`, { headers: { host: 'pod-sock.localhost' } });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.close();
    // The pod's server records the upgrade as it answers 101, so before the client can open.
    expect(wsUp.urls.at(-1)).toBe('/ws?room=1');
  });

  it('refuse the cookie on WebSockets and requests opened by another pod (same site, so the browser sends it)', async () => {
    const { token } = await world.link('sock');
    const status = (origin: string) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${gw.gateway.httpPort}/ws`, {
          headers: { host: 'localhost-7681.pod-sock.localhost', cookie: `${ACCESS_COOKIE}=${token}`, origin },
        });
        ws.once('open', () => {
          ws.close();
          resolve(101);
        });
        ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.once('error', () => {});
      });
    expect(await status('http://localhost-3000.pod-evil.localhost')).toBe(401);
    expect(await status('https://attacker.example')).toBe(401);
    expect(await status('null')).toBe(401);
    // The pod's own pages, on any of its ports, may.
    expect(await status('http://localhost-3000.pod-sock.localhost:8080')).toBe(101);
    const { token: secretToken } = await world.link('secret');
    const post = await get('pod-secret.localhost', {
      method: 'POST',
      headers: { origin: 'http://pod-evil.localhost', cookie: `${ACCESS_COOKIE}=${secretToken}` },
      body: 'x',
    });
    expect(post.status).toBe(401);
    // A header token is not something another page can know: it still works.
    expect((await get('pod-secret.localhost', { headers: { origin: 'http://pod-evil.localhost', [TOKEN_HEADER]: secretToken } })).status).toBe(200);
  });

  it('receive Server-Sent Events with the cookie', async () => {
    const sse = await startUpstream((_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: one\n\n');
      res.write('data: two\n\n');
      res.end();
    });
    try {
      await world.route('events', sse.port, {}, [gw.gateway]);
      const { token } = await world.link('events');
      const events = await new Promise<string>((resolve, reject) => {
        const req = request(
          `${gw.url}/stream`,
          { headers: { host: 'pod-events.localhost', accept: 'text/event-stream', cookie: `${ACCESS_COOKIE}=${token}` }, agent: false },
          (res) => {
            expect(res.statusCode).toBe(200);
            expect(res.headers['content-type']).toBe('text/event-stream');
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (c) => (body += c));
            res.on('end', () => resolve(body));
          },
        );
        req.on('error', reject);
        req.end();
      });
      expect(events).toBe('data: one\n\ndata: two\n\n');
      expect(sse.requests.at(-1)!.headers.cookie).toBeUndefined();
      const anon = await get('pod-events.localhost', { path: '/stream', headers: { accept: 'text/event-stream' } });
      expect(anon.status).toBe(401);
    } finally {
      await sse.close();
    }
  });

  it('get CORS preflights answered by the pod without any credentials when pods are not concealed; other OPTIONS stay private', async () => {
    const open = await startTestGateway(world, { ACCESS_CONCEAL_PODS: 'false' });
    const cors = await startUpstream((req, res) => {
      res.writeHead(204, {
        'access-control-allow-origin': String(req.headers.origin),
        'access-control-allow-credentials': 'true',
        'access-control-allow-methods': 'GET, POST, PUT',
      });
      res.end();
    });
    try {
      await world.route('corsapi', cors.port, {}, [gw.gateway, open.gateway]);
      const get = (host: string, options?: RequestOptions) => send(open.url, host, options);
      const preflight = await get('localhost-8080.pod-corsapi.localhost', {
        method: 'OPTIONS',
        path: '/api/items',
        headers: { origin: 'http://localhost-3000.pod-corsapi.localhost', 'access-control-request-method': 'PUT' },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers['access-control-allow-origin']).toBe('http://localhost-3000.pod-corsapi.localhost');
      expect(cors.requests.at(-1)).toMatchObject({ method: 'OPTIONS', url: '/api/items' });
      const plain = await get('localhost-8080.pod-corsapi.localhost', { method: 'OPTIONS', headers: { origin: 'http://x.localhost' } });
      expect(plain.status).toBe(401);
      const withBody = await get('localhost-8080.pod-corsapi.localhost', {
        method: 'OPTIONS',
        headers: { origin: 'http://x.localhost', 'access-control-request-method': 'PUT', 'content-length': '4' },
        body: 'data',
      });
      expect(withBody.status).toBe(401);
    } finally {
      await open.close();
      await cors.close();
    }
  });
});

describe('limits', () => {
  it('rate-limits a client that keeps sending forged tokens, and says when to retry', async () => {
    // The count is shared through Redis with the other gateways of this file: this client is an address of its own
    // (as a trusted proxy in front reports it).
    const own = await startTestGateway(world, { ACCESS_BAD_TOKEN_LIMIT: '5', ACCESS_BAD_TOKEN_WINDOW_MS: '60000', TRUSTED_PROXIES: '127.0.0.1' });
    try {
      await waitFor(() => own.gateway.table.lookup('secret') !== undefined, { what: 'routes' });
      const client = { 'x-forwarded-for': '198.51.100.20' };
      const ask = (token: string) => send(own.url, 'pod-secret.localhost', { headers: { ...client, [TOKEN_HEADER]: token } });
      // Real tokens that are merely expired are not guesses: they never count.
      const expired = await world.link('secret', { expiresInS: -1 });
      for (let i = 0; i < 10; i++) expect((await ask(expired.token)).status).toBe(401);
      for (let i = 0; i < 5; i++) expect((await ask(`pg1.forged${i}.x`)).status).toBe(401);
      const limited = await ask('pg1.forged.x');
      expect(limited.status).toBe(429);
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      // Only forgeries are limited: a valid token, and public services, still pass.
      const { token } = await world.link('secret');
      expect((await ask(token)).status).toBe(200);
      expect((await send(own.url, 'pod-mixed.localhost', { headers: client })).status).toBe(200);
      expect(own.logs.some((l) => l.msg.includes('too many forged access tokens'))).toBe(true);
    } finally {
      await own.close();
    }
  });

  it('sends browsers to a configured login page with a return address; API clients still get JSON', async () => {
    const own = await startTestGateway(world, { ACCESS_LOGIN_URL: 'https://login.example.test/start?app=podgate', ACCESS_CONCEAL_PODS: 'true' });
    try {
      await waitFor(() => own.gateway.table.lookup('secret') !== undefined, { what: 'routes' });
      for (const host of ['pod-secret.localhost:8080', 'pod-unknownpod.localhost:8080']) {
        const a = await send(own.url, host, { path: '/deep/link?x=1', headers: BROWSER });
        expect(a.status).toBe(302);
        const to = new URL(String(a.headers.location));
        expect(to.origin + to.pathname).toBe('https://login.example.test/start');
        expect(to.searchParams.get('app')).toBe('podgate');
        expect(to.searchParams.get('return_to')).toBe(`http://${host}/deep/link?x=1`);
      }
      expect((await send(own.url, 'pod-secret.localhost')).status).toBe(401);
    } finally {
      await own.close();
    }
  });

  it('caps concurrent connections of a pod (HTTP in flight and WebSockets), public ports included', async () => {
    const held: ServerResponse[] = [];
    const slow = await startUpstream((_req, res) => {
      held.push(res);
    });
    try {
      await world.route('capped', slow.port, { access: PUBLIC, maxConnections: 2 }, [gw.gateway]);
      const first = get('pod-capped.localhost');
      const second = get('pod-capped.localhost');
      await waitFor(() => held.length === 2, { what: 'two requests in flight' });
      const third = await get('pod-capped.localhost');
      expect(third.status).toBe(503);
      expect(JSON.parse(third.body).error.code).toBe('pod_busy');
      expect(third.headers['retry-after']).toBe('1');
      for (const r of held.splice(0)) r.end('done');
      expect((await first).status).toBe(200);
      expect((await second).status).toBe(200);
      await waitFor(() => gw.gateway !== undefined && held.length === 0, { what: 'nothing held' });
      const again = get('pod-capped.localhost');
      await waitFor(() => held.length === 1, { what: 'a slot free again' });
      held.splice(0).forEach((r) => r.end('done'));
      expect((await again).status).toBe(200);
    } finally {
      await slow.close();
    }
  });

  it('counts open WebSockets against the cap until they close', async () => {
    await world.route('wscap', wsUp.port, { access: PUBLIC, maxConnections: 1 }, [gw.gateway]);
    const open = () =>
      new Promise<{ ws?: WebSocket; status?: number }>((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${gw.gateway.httpPort}/`, { headers: { host: 'pod-wscap.localhost' } });
        ws.once('open', () => resolve({ ws }));
        ws.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode }));
        ws.once('error', () => {});
      });
    const a = await open();
    expect(a.ws).toBeDefined();
    expect((await open()).status).toBe(503);
    a.ws!.close();
    await waitFor(async () => {
      const b = await open();
      b.ws?.close();
      return b.ws !== undefined;
    }, { what: 'the slot to be released' });
  });
});

describe('link ids', () => {
  it('unknown link ids cannot be revoked', async () => {
    expect(await world.access.revokeLink('secret', newLinkId(), Date.now())).toBe(false);
  });
});
