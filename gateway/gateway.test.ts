// The gateway over plain HTTP, end to end: real Redis, real gateway, real upstream servers on loopback.
import { request, type IncomingHttpHeaders } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { closedPort, startHarness, startUpstream, type Harness, type Upstream } from '../test/support/gateway-harness.ts';
import { waitFor } from '../test/support/wait.ts';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request to the gateway with an explicit Host (no DNS involved), on a fresh connection unless an agent is given. */
function get(h: Harness, host: string, options: { path?: string; method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${h.url}${options.path ?? '/'}`,
      { method: options.method ?? 'GET', headers: { host, ...options.headers }, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject); // the response was cut
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

const json = (a: Answer) => JSON.parse(a.body);
/** Routes written directly (not through h.route()) are about proxying too; access control has its own tests. */
const PUBLIC = { default: 'public', ports: {} } as const;

let h: Harness;
let up: Upstream;
beforeAll(async () => {
  h = await startHarness({ UPSTREAM_RESPONSE_TIMEOUT_MS: '1500', RETRY_AFTER_SECONDS: '7' });
  up = await startUpstream();
  await h.route('myapp', up.port);
});
afterAll(async () => {
  await h?.close();
  await up?.close();
});

describe('routing by hostname', () => {
  it.each([
    'localhost-3000.pod-myapp.localhost:8080',
    'localhost-8726-pod-myapp.localhost:8080',
    'pod-myapp.localhost:8080',
    'POD-MYAPP.LOCALHOST.',
  ])('reaches the pod for %s and keeps the Host header', async (host) => {
    const a = await get(h, host, { path: '/some/path?q=1' });
    expect(a.status).toBe(200);
    expect(json(a)).toMatchObject({ url: '/some/path?q=1', headers: { host } });
  });

  it('streams request bodies to the pod', async () => {
    const a = await get(h, 'pod-myapp.localhost', { method: 'POST', body: 'x'.repeat(100_000) });
    expect(json(a).method).toBe('POST');
  });
});

describe('forwarding headers', () => {
  it('sets X-Forwarded-* and ignores client-supplied values from untrusted peers', async () => {
    const a = await get(h, 'pod-myapp.localhost:8080', {
      headers: { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil', forwarded: 'for=6.6.6.6' },
    });
    const headers = json(a).headers;
    expect(headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(headers['x-forwarded-proto']).toBe('http');
    expect(headers['x-forwarded-host']).toBe('pod-myapp.localhost:8080');
    expect(headers['x-forwarded-port']).toBe(String(h.gateway.httpPort));
    expect(headers.forwarded).toBeUndefined();
  });

  it('strips hop-by-hop request headers, including those named in Connection', async () => {
    const a = await get(h, 'pod-myapp.localhost', {
      // A chunked body, the only framing a Trailer header may announce (Node's client refuses it otherwise).
      method: 'POST',
      body: 'with trailers',
      headers: {
        'transfer-encoding': 'chunked',
        connection: 'keep-alive, x-secret-hop',
        'x-secret-hop': '1',
        'keep-alive': 'timeout=5',
        te: 'trailers',
        trailer: 'x-checksum',
        upgrade: 'h2c',
        'proxy-authorization': 'Basic Zm9vOmJhcg==',
        'proxy-connection': 'keep-alive',
        'x-end-to-end': 'kept',
      },
    });
    const headers = json(a).headers;
    for (const name of ['x-secret-hop', 'keep-alive', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-connection']) {
      expect(headers[name], name).toBeUndefined();
    }
    expect(headers['x-end-to-end']).toBe('kept');
  });

  it('strips the bare Proxy header (httpoxy) and every Proxy-* request header, and only those', async () => {
    await get(h, 'pod-myapp.localhost', {
      headers: {
        proxy: 'http://attacker.example:8080',
        'proxy-authorization': 'Basic Zm9vOmJhcg==',
        'proxy-connection': 'keep-alive',
        'proxy-authentication-info': 'nextnonce="x"',
        'proxy-x-anything': '1',
        proxyline: 'kept',
        'x-proxy-note': 'kept',
      },
    });
    const received = up.requests.at(-1)!.headers;
    for (const name of ['proxy', 'proxy-authorization', 'proxy-connection', 'proxy-authentication-info', 'proxy-x-anything']) {
      expect(received[name], name).toBeUndefined();
    }
    expect(received.proxyline).toBe('kept');
    expect(received['x-proxy-note']).toBe('kept');
  });

  it('strips hop-by-hop and Proxy-* response headers', async () => {
    const hop = await startUpstream((_req, res) => {
      res.writeHead(407, {
        connection: 'x-pod-hop',
        'x-pod-hop': '1',
        'keep-alive': 'timeout=1',
        'proxy-authenticate': 'Basic realm="your corporate proxy"',
        'proxy-authentication-info': 'nextnonce="x"',
        'proxy-status': 'pod-router; error=http_request_error',
        'x-kept': 'yes',
      });
      res.end('ok');
    });
    try {
      await h.route('hop', hop.port);
      const a = await get(h, 'pod-hop.localhost');
      expect(a.status).toBe(407);
      for (const name of ['x-pod-hop', 'proxy-authenticate', 'proxy-authentication-info', 'proxy-status']) {
        expect(a.headers[name], name).toBeUndefined();
      }
      expect(a.headers['x-kept']).toBe('yes');
    } finally {
      await hop.close();
    }
  });
});

describe('the pod router key', () => {
  it('is sent to the pod from its route, and a client-sent copy never reaches the pod (HTTP and WebSocket)', async () => {
    const key = 'a1'.repeat(32);
    const forged = 'b2'.repeat(32);
    const pod = await startUpstream();
    const upgrades: IncomingHttpHeaders[] = [];
    const wss = new WebSocketServer({ server: pod.server });
    wss.on('connection', (_socket, req) => upgrades.push(req.headers));
    try {
      await h.route('keyed', pod.port, { routerKey: key });
      const keyed = await get(h, 'pod-keyed.localhost', { headers: { 'x-podgate-router-key': forged } });
      expect(json(keyed).headers['x-podgate-router-key']).toBe(key);
      // A route without a key (a pod whose router needs none): the client's copy is dropped all the same.
      const plain = await get(h, 'pod-myapp.localhost', { headers: { 'X-Podgate-Router-Key': forged } });
      expect(json(plain).headers['x-podgate-router-key']).toBeUndefined();

      const ws = new WebSocket(`ws://127.0.0.1:${h.gateway.httpPort}/`, { headers: { host: 'pod-keyed.localhost', 'x-podgate-router-key': forged } });
      await new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      ws.terminate();
      expect(upgrades).toHaveLength(1);
      expect(upgrades[0]!['x-podgate-router-key']).toBe(key);
    } finally {
      for (const client of wss.clients) client.terminate();
      wss.close();
      await pod.close();
    }
  });
});

describe('trusted proxies', () => {
  it('appends to X-Forwarded-For and keeps proto/host from a trusted peer', async () => {
    const trusting = await startHarness({ TRUSTED_PROXIES: '127.0.0.0/8' });
    try {
      await trusting.route('myapp', up.port);
      const a = await get(trusting, 'pod-myapp.localhost', { headers: { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https' } });
      expect(json(a).headers['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1');
      expect(json(a).headers['x-forwarded-proto']).toBe('https');
    } finally {
      await trusting.close();
    }
  });
});

describe('clear answers', () => {
  it('400 for a malformed pod hostname, JSON for API clients and HTML for browsers', async () => {
    const api = await get(h, 'localhost-99999.pod-myapp.localhost', { headers: { accept: 'application/json' } });
    expect(api.status).toBe(400);
    expect(api.headers['content-type']).toBe('application/json');
    expect(json(api).error.code).toBe('invalid_host');
    const browser = await get(h, 'pod-my_app.localhost', { headers: { accept: 'text/html,application/xhtml+xml' } });
    expect(browser.status).toBe(400);
    expect(browser.headers['content-type']).toMatch(/text\/html/);
    expect(browser.body).toContain('<h1>400 Bad request</h1>');
    expect(browser.body).not.toContain('<script');
  });

  it('421 for hosts outside the base domains', async () => {
    expect((await get(h, '127.0.0.1')).status).toBe(421);
    expect((await get(h, 'pod-myapp.example.org')).status).toBe(421);
  });

  it('404 for an unknown pod, the same answer whether or not the pod ever existed', async () => {
    await h.route('gone', up.port);
    await h.remove('gone');
    const never = await get(h, 'pod-never.localhost');
    const gone = await get(h, 'pod-gone.localhost');
    expect(never.status).toBe(404);
    expect(gone.status).toBe(404);
    expect(gone.body.replace('gone', 'SLUG')).toBe(never.body.replace('never', 'SLUG'));
  });

  it('503 with Retry-After for a stopped or starting pod', async () => {
    await h.route('sleepy', up.port, { status: 'stopped' });
    const a = await get(h, 'pod-sleepy.localhost');
    expect(a.status).toBe(503);
    expect(a.headers['retry-after']).toBe('7');
    await h.route('sleepy', up.port, { status: 'starting' });
    expect((await get(h, 'pod-sleepy.localhost')).status).toBe(503);
    await h.route('sleepy', up.port, { status: 'running' });
    expect((await get(h, 'pod-sleepy.localhost')).status).toBe(200);
  });

  it('502 when nothing listens on the pod port', async () => {
    await h.route('refused', await closedPort());
    const a = await get(h, 'pod-refused.localhost');
    expect(a.status).toBe(502);
    expect(json(a).error.code).toBe('upstream_unreachable');
  });

  it('502 when the pod resets the connection before answering', async () => {
    const rude = await startUpstream((req) => req.socket.destroy());
    try {
      await h.route('rude', rude.port);
      expect((await get(h, 'pod-rude.localhost', { method: 'POST', body: 'x' })).status).toBe(502);
    } finally {
      await rude.close();
    }
  });

  it('504 when the pod does not answer within the response timeout, and the slow request is torn down', async () => {
    let closedUpstream = false;
    const slow = await startUpstream((req) => req.on('close', () => (closedUpstream = true)));
    try {
      await h.route('slow', slow.port);
      const a = await get(h, 'pod-slow.localhost');
      expect(a.status).toBe(504);
      expect(json(a).error.code).toBe('upstream_timeout');
      await waitFor(() => closedUpstream, { what: 'upstream request closed' });
    } finally {
      await slow.close();
    }
  });

  it('a slow response body after the head is not cut by the response timeout', async () => {
    const trickle = await startUpstream((_req, res) => {
      res.writeHead(200);
      res.write('a');
      setTimeout(() => res.end('b'), 2500); // longer than UPSTREAM_RESPONSE_TIMEOUT_MS (1500)
    });
    try {
      await h.route('trickle', trickle.port);
      const a = await get(h, 'pod-trickle.localhost');
      expect(a).toMatchObject({ status: 200, body: 'ab' });
    } finally {
      await trickle.close();
    }
  });
});

describe('one log line per request', () => {
  let logged: Harness;
  let debugOnly: Harness;
  let silent: Upstream;
  let breaking: Upstream;
  beforeAll(async () => {
    // Sends its head and some body, then drops the connection: a pod crashing mid-response.
    breaking = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial', () => res.socket?.destroy());
    });
    logged = await startHarness({ ACCESS_LOG: 'true', UPSTREAM_RESPONSE_TIMEOUT_MS: '500' });
    debugOnly = await startHarness({ ACCESS_LOG: 'false', LOG_LEVEL: 'debug' });
    silent = await startUpstream(() => {}); // takes the request, never answers
    await logged.route('deadlog', await closedPort());
    await logged.route('silentlog', silent.port);
    await debugOnly.route('deadquiet', await closedPort());
    await logged.route('breaklog', breaking.port);
  });
  afterAll(async () => {
    await logged?.close();
    await debugOnly?.close();
    await silent?.close();
    await breaking?.close();
  });
  const linesAbout = (harness: Harness, host: string) => harness.logs.filter((l) => l.host === host);

  it.each([
    [502, 'deadlog', 'upstream_unreachable', /connection refused/],
    [504, 'silentlog', 'upstream_timeout', /no response within 500 ms/],
  ] as const)('a %s writes its access line only, carrying the reason', async (status, pod, err, reason) => {
    const host = `pod-${pod}.localhost`;
    expect((await get(logged, host)).status).toBe(status);
    await waitFor(() => linesAbout(logged, host).some((l) => l.msg === 'request'), { what: 'the access line' });
    const lines = linesAbout(logged, host);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 30, msg: 'request', status, pod, err });
    expect(lines[0]!.reason).toMatch(reason);
    expect(logged.logs.filter((l) => l.level >= 40)).toEqual([]);
  });

  it('a pod breaking off its response is logged with its status and the reason, not as a client abort (499)', async () => {
    const host = 'pod-breaklog.localhost';
    await expect(get(logged, host)).rejects.toThrow();
    await waitFor(() => linesAbout(logged, host).some((l) => l.msg === 'request'), { what: 'the access line' });
    const lines = linesAbout(logged, host);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ msg: 'request', status: 200, pod: 'breaklog', err: 'upstream_unreachable' });
    expect(lines[0]!.reason).toMatch(/response broke off/);
  });

  it('without access lines, a failure is one debug line', async () => {
    expect((await get(debugOnly, 'pod-deadquiet.localhost')).status).toBe(502);
    await waitFor(() => linesAbout(debugOnly, 'pod-deadquiet.localhost').length > 0, { what: 'the debug line' });
    const lines = linesAbout(debugOnly, 'pod-deadquiet.localhost');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 20, msg: 'upstream error', status: 502, err: 'upstream_unreachable' });
    expect(debugOnly.logs.filter((l) => l.level >= 40)).toEqual([]);
  });
});

describe('connection pools', () => {
  it('reuses keep-alive connections to a pod but never across its generations', async () => {
    const pod = await startUpstream();
    try {
      await h.route('pooled', pod.port);
      for (let i = 0; i < 5; i++) expect((await get(h, 'pod-pooled.localhost')).status).toBe(200);
      expect(pod.connections).toBe(1);
      // Same host:port, new generation (the port was freed and handed to another pod): a new connection.
      await h.route('pooled', pod.port);
      expect((await get(h, 'pod-pooled.localhost')).status).toBe(200);
      expect(pod.connections).toBe(2);
    } finally {
      await pod.close();
    }
  });

  it('follows route changes while traffic flows', async () => {
    const a = await startUpstream((_req, res) => res.end('A'));
    const b = await startUpstream((_req, res) => res.end('B'));
    try {
      await h.route('moving', a.port);
      const seen: string[] = [];
      let stop = false;
      const traffic = (async () => {
        for (let i = 0; i < 2000 && !stop; i++) {
          const r = await get(h, 'pod-moving.localhost');
          expect(r.status).toBe(200);
          seen.push(r.body);
        }
      })();
      await waitFor(() => seen.length > 20, { what: 'traffic to A' });
      await h.route('moving', b.port);
      const switchedAt = seen.length;
      await waitFor(() => seen.length > switchedAt + 20, { what: 'traffic after the switch' });
      stop = true;
      await traffic;
      // Every answer after the route change came from B.
      expect(seen.slice(switchedAt + 1).every((x) => x === 'B')).toBe(true);
      expect(seen[0]).toBe('A');
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('route table and Redis', () => {
  it('keeps routing while Redis is down, and converges on changes after it comes back', async () => {
    const own = await startHarness({ ROUTE_RESYNC_INTERVAL_MS: '500' });
    const a = await startUpstream((_req, res) => res.end('A'));
    const b = await startUpstream((_req, res) => res.end('B'));
    try {
      await own.route('steady', a.port);
      await own.route('moved', a.port);
      await own.redis.kill();
      for (let i = 0; i < 20; i++) expect((await get(own, 'pod-steady.localhost')).body).toBe('A');
      await own.redis.restart(); // empty: Redis lost its data, as after a crash without persistence
      // The orchestrator republishes (reconcile) with a change made meanwhile, plus a brand-new pod.
      await waitFor(async () => {
        try {
          await own.writer.put({ slug: 'moved', host: '127.0.0.1', port: b.port, status: 'running', generation: await own.writer.nextGeneration(), defaultPort: 3000, updatedAt: new Date().toISOString(), access: PUBLIC });
          await own.writer.put({ slug: 'steady', host: '127.0.0.1', port: a.port, status: 'running', generation: await own.writer.nextGeneration(), defaultPort: 3000, updatedAt: new Date().toISOString(), access: PUBLIC });
          await own.writer.put({ slug: 'fresh', host: '127.0.0.1', port: b.port, status: 'running', generation: await own.writer.nextGeneration(), defaultPort: 3000, updatedAt: new Date().toISOString(), access: PUBLIC });
          return true;
        } catch {
          return false;
        }
      }, { what: 'writer reconnected', timeoutMs: 15_000 });
      await waitFor(async () => (await get(own, 'pod-moved.localhost')).body === 'B', { what: 'moved converges', timeoutMs: 15_000 });
      expect((await get(own, 'pod-fresh.localhost')).body).toBe('B');
      expect((await get(own, 'pod-steady.localhost')).body).toBe('A');
    } finally {
      await own.close();
      await a.close();
      await b.close();
    }
  });

  it('starts while Redis is down and becomes ready as soon as Redis answers, not one resync interval later', async () => {
    const { startRedis } = await import('../test/support/redis-server.ts');
    const { loadGatewayConfig } = await import('./config.ts');
    const { startGateway } = await import('./main.ts');
    const { createStores } = await import('../shared/stores.ts');
    const { silentLogger } = await import('../shared/log.ts');
    const redis = await startRedis();
    await redis.kill();
    const config = loadGatewayConfig({ HTTP_PORT: '0', HTTP_HOST: '127.0.0.1', ADMIN_PORT: '0', REDIS_URL: redis.url, ROUTE_RESYNC_INTERVAL_MS: '600000', ACCESS_LOG: 'false' });
    const stores = createStores({ redis: config.redis, prefix: config.REDIS_PREFIX, user: 'gateway' }, silentLogger());
    const gateway = await startGateway(config, { store: stores.routes, log: silentLogger() });
    try {
      expect((await fetch(`http://127.0.0.1:${gateway.adminPort}/readyz`)).status).toBe(503);
      await redis.restart();
      await waitFor(async () => (await fetch(`http://127.0.0.1:${gateway.adminPort}/readyz`)).status === 200, {
        what: 'readiness well before the 10-minute resync',
        timeoutMs: 30_000,
      });
    } finally {
      await gateway.shutdown(1000);
      await stores.close();
      await redis.stop();
    }
  });

  it('re-reads a 100,000-route table completely (HSCAN), as the issue sizes it', async () => {
    const big = await startHarness();
    try {
      for (let start = 0; start < 100_000; start += 1000) {
        const batch = [];
        for (let i = start; i < start + 1000; i++) {
          batch.push(big.writer.put({ slug: `p${i}`, host: '127.0.0.1', port: up.port, status: 'running', generation: 1, defaultPort: 3000, updatedAt: new Date().toISOString(), access: PUBLIC }));
        }
        await Promise.all(batch);
      }
      await big.gateway.table.resync();
      expect(big.gateway.table.size).toBe(100_000);
      expect((await get(big, 'pod-p99999.localhost')).status).toBe(200);
      // A gateway starting on this table has it all (HSCAN at start) before it says it is ready.
      const late = await startHarness({}, big.redis);
      try {
        expect(late.gateway.table.ready).toBe(true);
        expect(late.gateway.table.size).toBe(100_000);
        expect((await get(late, 'pod-p54321.localhost')).status).toBe(200);
      } finally {
        await late.close();
      }
    } finally {
      await big.close();
    }
  });
});

describe('admin listener', () => {
  it('answers health, readiness and Prometheus metrics', async () => {
    expect((await fetch(`${h.adminUrl}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${h.adminUrl}/readyz`)).json()).toEqual({ status: 'ready' });
    await get(h, 'pod-myapp.localhost');
    const metrics = await (await fetch(`${h.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/podgate_http_requests_total\{status="200",pod="myapp"\} \d+/);
    expect(metrics).toMatch(/podgate_http_request_duration_seconds_bucket/);
    expect(metrics).toMatch(/podgate_websockets_open 0/);
    expect(metrics).toMatch(/podgate_route_table_size \d+/);
    expect(metrics).toMatch(/podgate_route_table_sync_age_seconds \d/);
  });

  it('is bound to loopback by default', async () => {
    const { loadGatewayConfig } = await import('./config.ts');
    expect(loadGatewayConfig({}).ADMIN_HOST).toBe('127.0.0.1');
  });
});
