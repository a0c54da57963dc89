// A hostile pod against a real gateway: a raw TCP server answers with malformed status lines, headers, framing
// and 1xx/101 tricks, through HTTP/1.1 clients and an HTTP/2 client (TLS). After every case the gateway must
// still be up and serve a normal request; the hostile answer gets 502 (or a cut stream once a valid head went
// out), or the pod's own status when its answer was valid once the gateway's rules were applied.
import { request, type IncomingHttpHeaders } from 'node:http';
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis, waitReady } from '../shared/redis.ts';
import { RedisRouteStore } from '../shared/redis-route-store.ts';
import type { HttpsListener } from '../gateway/tls/https-server.ts';
import { spawnGateway, type ChildGateway } from './support/child-gateway.ts';
import { listenHttp2, startHarness, startUpstream, type Harness, type Upstream } from './support/gateway-harness.ts';
import { startHostilePod, type HostileAnswer, type HostilePod } from './support/hostile-pod.ts';
import { startRedis, type RedisServer } from './support/redis-server.ts';
import { waitFor } from './support/wait.ts';

const HOST = 'pod-hostile.localhost';
const HEALTHY = 'pod-healthy.localhost';
const RESPONSE_TIMEOUT_MS = 3000;
const CLIENT_DEADLINE_MS = 15_000;

const ok = (head: string, body = 'ok') => `HTTP/1.1 ${head}\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
const withHeader = (line: string) => `HTTP/1.1 200 OK\r\n${line}\r\ncontent-length: 2\r\n\r\nok`;
const HUGE_HEADERS = `HTTP/1.1 200 OK\r\n${Array.from({ length: 100 }, (_, i) => `x-big-${i}: ${'a'.repeat(1000)}`).join('\r\n')}\r\ncontent-length: 2\r\n\r\nok`;
const EARLY_HINTS = 'HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload; as=style\r\n\r\n';

/** What a client must see: a relayed status (with its standard reason and some headers absent), a 502, or a cut. */
type Expect = { status: number; reason?: string; absent?: string[]; body?: string } | { cut: true };

interface Case {
  answer: HostileAnswer;
  expect: Expect;
  /** Only for HTTP/1.1 clients (an HTTP/2 response has no reason phrase to check). */
  h1Only?: boolean;
}

const BAD = { status: 502 } as const;
const CUT = { cut: true } as const;
const FORBIDDEN_IN_H2 = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'te', 'trailer'];

const CASES: Record<string, Case> = {
  // Status lines
  'reason-ctl': { answer: ok('200 O\x01K'), expect: { status: 200, reason: 'OK', body: 'ok' } },
  'reason-del': { answer: ok('404 N\x7fpe'), expect: { status: 404, reason: 'Not Found' } },
  'reason-obs-text': { answer: ok('200 \xe9t\xe9'), expect: { status: 200, reason: 'OK' } },
  'reason-long': { answer: ok(`200 ${'x'.repeat(8000)}`), expect: { status: 200, reason: 'OK' } },
  'reason-missing': { answer: 'HTTP/1.1 200\r\ncontent-length: 2\r\n\r\nok', expect: { status: 200, reason: 'OK' } },
  'reason-spoofed-status': { answer: ok('418 200 OK'), expect: { status: 418, reason: "I'm a Teapot" } },
  'status-000': { answer: ok('000 Zero'), expect: BAD },
  'status-099': { answer: ok('099 Low'), expect: BAD },
  'status-600': { answer: ok('600 High'), expect: BAD },
  'status-999': { answer: ok('999 Max'), expect: BAD },
  'status-2-digits': { answer: ok('20 OK'), expect: BAD },
  'status-4-digits': { answer: ok('2000 OK'), expect: BAD },
  'status-letters': { answer: ok('2x0 OK'), expect: BAD },
  'status-negative': { answer: ok('-20 OK'), expect: BAD },
  'version-2': { answer: 'HTTP/2.0 200 OK\r\ncontent-length: 2\r\n\r\nok', expect: BAD },
  'version-lowercase': { answer: 'http/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok', expect: BAD },
  'version-0.9': { answer: 'ok\r\n', expect: BAD },
  'line-ends-lf': { answer: 'HTTP/1.1 200 OK\ncontent-length: 2\n\nok', expect: BAD },
  'binary-garbage': { answer: '\x00\x01\x02\xff\xfe\r\n\r\n', expect: BAD },
  'nothing-then-close': { answer: (s) => s.end(), expect: BAD },
  'reset-before-answer': { answer: (s) => s.resetAndDestroy(), expect: BAD },
  'status-line-cut': { answer: 'HTTP/1.1 20', expect: BAD },
  'headers-cut': { answer: 'HTTP/1.1 200 OK\r\ncontent-len', expect: BAD },
  // Header names and values
  'value-nul': { answer: withHeader('x-a: a\x00b'), expect: BAD },
  'value-ctl': { answer: withHeader('x-a: a\x01b'), expect: BAD },
  'value-del': { answer: withHeader('x-a: a\x7fb'), expect: BAD },
  'value-bare-cr': { answer: withHeader('x-a: a\rset-cookie: evil=1'), expect: BAD },
  'value-bare-lf': { answer: withHeader('x-a: a\nset-cookie: evil=1'), expect: BAD },
  'value-obs-text': { answer: withHeader('x-a: caf\xe9'), expect: { status: 200 } },
  'obs-fold': { answer: withHeader('x-a: a\r\n folded'), expect: BAD },
  'name-space': { answer: withHeader('x a: b'), expect: BAD },
  'name-space-before-colon': { answer: withHeader('x-a : b'), expect: BAD },
  'name-separator': { answer: withHeader('x(a): b'), expect: BAD },
  'name-empty': { answer: withHeader(': b'), expect: BAD },
  'name-pseudo': { answer: withHeader(':status: 500'), expect: BAD },
  'name-obs-text': { answer: withHeader('x-\xe9: b'), expect: BAD },
  'huge-headers': { answer: HUGE_HEADERS, expect: BAD },
  // Headers HTTP/2 forbids (node:http2 throws on each), dropped for every client
  'h2-connection': { answer: withHeader('connection: keep-alive, x-hop\r\nx-hop: 1'), expect: { status: 200, absent: ['connection', 'x-hop'] } },
  'h2-keep-alive': { answer: withHeader('keep-alive: timeout=5'), expect: { status: 200, absent: ['keep-alive'] } },
  'h2-proxy-connection': { answer: withHeader('proxy-connection: keep-alive'), expect: { status: 200, absent: ['proxy-connection'] } },
  'h2-upgrade': { answer: withHeader('upgrade: h2c'), expect: { status: 200, absent: ['upgrade'] } },
  'h2-http2-settings': { answer: withHeader('http2-settings: AAMAAABkAAQAAP__'), expect: { status: 200, absent: ['http2-settings'] } },
  'h2-te': { answer: withHeader('te: trailers'), expect: { status: 200, absent: ['te'] } },
  'h2-all-at-once': {
    answer: 'HTTP/1.1 200 OK\r\nconnection: close\r\nkeep-alive: timeout=5\r\nproxy-connection: close\r\nupgrade: h2c\r\n' +
      'http2-settings: x\r\nte: trailers\r\ntrailer: x-t\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nx-t: 1\r\n\r\n',
    expect: { status: 200, absent: FORBIDDEN_IN_H2, body: 'ok' },
  },
  'set-cookie-twice': { answer: withHeader('set-cookie: a=1\r\nset-cookie: b=2'), expect: { status: 200 } },
  'content-type-twice': { answer: withHeader('content-type: text/plain\r\ncontent-type: text/html'), expect: { status: 200 } },
  // Framing
  'content-length-conflict': { answer: 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok', expect: BAD },
  'content-length-twice': { answer: 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\nok', expect: BAD },
  'content-length-list': { answer: 'HTTP/1.1 200 OK\r\ncontent-length: 2, 2\r\n\r\nok', expect: BAD },
  'content-length-negative': { answer: 'HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\nok', expect: BAD },
  'content-length-letters': { answer: 'HTTP/1.1 200 OK\r\ncontent-length: 2x\r\n\r\nok', expect: BAD },
  'content-length-overflow': { answer: 'HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\nok', expect: BAD },
  'content-length-and-chunked': { answer: 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n', expect: BAD },
  'content-length-short': { answer: 'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nok', expect: CUT },
  'chunk-size-bad': { answer: 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n', expect: CUT },
  'chunk-size-huge': { answer: 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffffff\r\nok', expect: CUT },
  'chunk-unterminated': { answer: 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n', expect: CUT },
  'chunk-data-overrun': { answer: 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nokEXTRA\r\n0\r\n\r\n', expect: CUT },
  'close-delimited': { answer: 'HTTP/1.1 200 OK\r\n\r\nuntil close', expect: { status: 200, body: 'until close' } },
  'no-content-with-body': { answer: 'HTTP/1.1 204 No Content\r\ncontent-length: 4\r\n\r\nbody', expect: { status: 204, body: '' } },
  // 1xx and 101
  'continue-unasked': { answer: `HTTP/1.1 100 Continue\r\n\r\n${ok('200 OK')}`, expect: { status: 200, body: 'ok' } },
  'processing': { answer: `HTTP/1.1 102 Processing\r\n\r\n${ok('200 OK')}`, expect: { status: 200, body: 'ok' } },
  'early-hints': { answer: `${EARLY_HINTS}${ok('200 OK')}`, expect: { status: 200, body: 'ok' } },
  'early-hints-bad-reason': { answer: `HTTP/1.1 103 E\x01\r\nlink: </a>\r\n\r\n${ok('200 OK')}`, expect: { status: 200, body: 'ok' } },
  'informational-flood': { answer: `${EARLY_HINTS.repeat(200)}${ok('200 OK')}`, expect: { status: 200, body: 'ok' } },
  'informational-only': { answer: 'HTTP/1.1 199 Odd\r\n\r\n', expect: BAD },
  'switching-unasked': { answer: 'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n', expect: BAD },
  'switching-unasked-with-data': { answer: 'HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\nHTTP/1.1 200 OK\r\n\r\nsmuggled', expect: BAD },
  'continue-then-switching': { answer: 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n', expect: BAD },
};

interface Seen {
  status?: number;
  reason?: string;
  headers: IncomingHttpHeaders;
  body: string;
  cut: boolean;
  /** 1xx heads the client received: the gateway relays none. */
  informational: number[];
}

/** One HTTP/1.1 request through the gateway on a fresh connection. */
function h1(url: string, host: string, path: string): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const seen: Seen = { headers: {}, body: '', cut: false, informational: [] };
    const timer = setTimeout(() => reject(new Error(`no answer to ${path} within ${CLIENT_DEADLINE_MS} ms`)), CLIENT_DEADLINE_MS);
    const done = () => {
      clearTimeout(timer);
      resolve(seen);
    };
    const req = request(`${url}${path}`, { headers: { host }, agent: false }, (res) => {
      seen.status = res.statusCode;
      seen.reason = res.statusMessage;
      seen.headers = res.headers;
      res.setEncoding('latin1');
      res.on('data', (c: string) => (seen.body += c));
      res.on('end', done);
      res.on('aborted', () => (seen.cut = true));
      res.on('error', () => {
        seen.cut = true;
        done();
      });
    });
    req.on('information', (info) => seen.informational.push(info.statusCode));
    // Before any response: the connection closed with nothing relayed (a cut whose head never went out), or no
    // answer at all, which the caller sees as a missing status.
    req.on('error', () => {
      seen.cut = true;
      done();
    });
    req.end();
  });
}

/** One HTTP/2 request on a session that must survive every case. */
function h2(session: ClientHttp2Session, host: string, path: string): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const seen: Seen = { headers: {}, body: '', cut: false, informational: [] };
    const timer = setTimeout(() => reject(new Error(`no HTTP/2 answer to ${path} within ${CLIENT_DEADLINE_MS} ms`)), CLIENT_DEADLINE_MS);
    const stream = session.request({ ':path': path, ':authority': host });
    stream.on('headers', (headers) => seen.informational.push(Number(headers[':status'])));
    stream.on('response', (headers) => {
      seen.status = Number(headers[':status']);
      seen.headers = headers as IncomingHttpHeaders;
    });
    stream.setEncoding('latin1');
    stream.on('data', (c: string) => (seen.body += c));
    stream.on('error', () => (seen.cut = true));
    stream.on('close', () => {
      clearTimeout(timer);
      if (stream.rstCode !== 0) seen.cut = true;
      if (seen.status === undefined) reject(new Error(`HTTP/2 stream for ${path} closed without a response (rst ${stream.rstCode})`));
      else resolve(seen);
    });
    stream.end();
  });
}

function check(seen: Seen, expected: Expect, http2: boolean): void {
  expect(seen.informational).toEqual([]);
  if ('cut' in expected) {
    // Nothing that reads as complete: the stream is cut, whether or not the head went out before it.
    expect([200, undefined]).toContain(seen.status);
    expect(seen.cut).toBe(true);
    return;
  }
  expect({ status: seen.status, cut: seen.cut }).toEqual({ status: expected.status, cut: false });
  if (expected.reason !== undefined && !http2) expect(seen.reason).toBe(expected.reason);
  for (const name of expected.absent ?? []) {
    // node:http sets its own Connection and chunking for an HTTP/1.1 client; none of the pod's values survive.
    if (name === 'connection' && !http2 && seen.headers.connection !== undefined) expect(['close', 'keep-alive']).toContain(seen.headers.connection);
    else if (name === 'transfer-encoding' && !http2 && seen.headers[name] !== undefined) expect(seen.headers[name]).toBe('chunked');
    else expect(seen.headers[name], name).toBeUndefined();
  }
  if (expected.body !== undefined) expect(seen.body).toBe(expected.body);
  if (expected.status === 502) expect(JSON.parse(seen.body).error.code).toMatch(/^upstream_/);
}

let h: Harness;
let pod: HostilePod;
let healthy: Upstream;
let tls: HttpsListener;
let session: ClientHttp2Session;

function openSession(): ClientHttp2Session {
  const s = http2Connect(`https://127.0.0.1:${tls.port}`, { rejectUnauthorized: false });
  s.on('error', () => {});
  return s;
}

beforeAll(async () => {
  h = await startHarness({ ACCESS_LOG: 'true', UPSTREAM_RESPONSE_TIMEOUT_MS: String(RESPONSE_TIMEOUT_MS) });
  pod = await startHostilePod(Object.fromEntries(Object.entries(CASES).map(([name, c]) => [name, c.answer])));
  healthy = await startUpstream();
  await h.route('hostile', pod.port);
  await h.route('healthy', healthy.port);
  tls = await listenHttp2(h.gateway.handler, 'hostile-pod-test');
  session = openSession();
});
afterAll(async () => {
  session?.destroy();
  await tls?.close(500);
  await h?.close();
  await pod?.close();
  await healthy?.close();
});

/** The gateway is still up: a normal request answers 200 over HTTP/1.1, and over HTTP/2 on the same session. */
async function stillServing(): Promise<void> {
  expect((await h1(h.url, HEALTHY, '/after')).status).toBe(200);
  expect(session.destroyed, 'the HTTP/2 session survived').toBe(false);
  expect((await h2(session, HEALTHY, '/after')).status).toBe(200);
}

describe('a hostile pod, HTTP/1.1 clients', () => {
  it.each(Object.entries(CASES))('%s', async (name, c) => {
    check(await h1(h.url, HOST, `/case/${name}`), c.expect, false);
    await stillServing();
  });
});

describe('a hostile pod, HTTP/2 clients (TLS)', () => {
  it.each(Object.entries(CASES).filter(([, c]) => !c.h1Only))('%s', async (name, c) => {
    check(await h2(session, HOST, `/case/${name}`), c.expect, true);
    await stillServing();
  });
});

describe('a refused pod response is logged once', () => {
  it('one access line with the reason, for the HTTP/1.1 and HTTP/2 requests alike', async () => {
    const path = '/case/status-999';
    expect((await h1(h.url, HOST, `${path}?one`)).status).toBe(502);
    expect((await h2(session, HOST, `${path}?two`)).status).toBe(502);
    for (const query of ['?one', '?two']) {
      await waitFor(() => h.logs.some((l) => l.path === `${path}${query}`), { what: `the access line of ${query}` });
      const lines = h.logs.filter((l) => l.path === `${path}${query}`);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ msg: 'request', status: 502, pod: 'hostile', err: 'upstream_invalid_response' });
      expect(lines[0]!.reason).toMatch(/status 999 is not a final status/);
    }
  });
});

// WebSocket upgrades go through websocket-upgrade.ts, which checks the pod's answer before anything reaches the client.
const WS_CASES: Record<string, { answer: HostileAnswer; expectHead: RegExp }> = {
  'ws-ok': {
    answer: (s) => s.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nhttp2-settings: x\r\nkeep-alive: 1\r\n\r\n'),
    expectHead: /^HTTP\/1\.1 101 Switching Protocols\r\n/,
  },
  'ws-other-protocol': { answer: 'HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\n', expectHead: /^HTTP\/1\.1 502 / },
  'ws-no-upgrade-header': { answer: 'HTTP/1.1 101 Switching Protocols\r\n\r\nsmuggled', expectHead: /^HTTP\/1\.1 502 / },
  'ws-refusal-bad-reason': { answer: 'HTTP/1.1 403 F\x01rbidden\r\ncontent-length: 2\r\n\r\nno', expectHead: /^HTTP\/1\.1 403 Forbidden\r\n/ },
  'ws-refusal-bad-status': { answer: 'HTTP/1.1 999 Odd\r\ncontent-length: 2\r\n\r\nno', expectHead: /^HTTP\/1\.1 502 Bad Gateway\r\n/ },
  'ws-refusal-nul-header': { answer: 'HTTP/1.1 403 Forbidden\r\nx-a: \x00\r\ncontent-length: 2\r\n\r\nno', expectHead: /^HTTP\/1\.1 502 /},
};

describe('a hostile pod answering WebSocket upgrades', () => {
  let wsPod: HostilePod;
  beforeAll(async () => {
    wsPod = await startHostilePod(Object.fromEntries(Object.entries(WS_CASES).map(([name, c]) => [name, c.answer])));
    await h.route('hostilews', wsPod.port);
  });
  afterAll(async () => {
    await wsPod?.close();
  });

  it.each(Object.entries(WS_CASES))('%s', async (name, c) => {
    const port = Number(new URL(h.url).port);
    const host = 'pod-hostilews.localhost';
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = netConnect({ host: '127.0.0.1', port });
      let data = '';
      const finish = () => {
        clearTimeout(timer);
        resolve(data);
      };
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no end to the upgrade ${name} within ${CLIENT_DEADLINE_MS} ms: ${JSON.stringify(data)}`));
      }, CLIENT_DEADLINE_MS);
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => {
        data += chunk;
        if (data.includes('\r\n\r\n') && data.startsWith('HTTP/1.1 101 ')) {
          socket.destroy();
          finish();
        }
      });
      socket.on('error', () => {});
      socket.on('close', finish);
      socket.write(
        `GET /case/${name} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      );
    });
    expect(raw).toMatch(c.expectHead);
    // Exactly one answer: no 101 after a 502, nothing from the pod after the refusal.
    expect(raw.match(/HTTP\/1\.1 \d{3} /g)).toHaveLength(1);
    expect(raw).not.toContain('smuggled');
    const head = raw.split('\r\n\r\n')[0]!.toLowerCase();
    for (const name of ['http2-settings', 'keep-alive']) expect(head).not.toContain(`${name}:`);
    for (const line of head.split('\r\n')) expect(line).not.toMatch(/[\x00-\x08\x0a-\x1f\x7f]/);
    if (raw.startsWith('HTTP/1.1 502 ')) {
      // One access line, saying why.
      const path = `/case/${name}`;
      await waitFor(() => h.logs.some((l) => l.path === path), { what: `the access line of ${name}` });
      const lines = h.logs.filter((l) => l.path === path);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ status: 502, pod: 'hostilews', err: expect.stringMatching(/^upstream_/) });
    }
    await stillServing();
  });
});

// The two crashes reproduced against the unfixed gateway, in a gateway process of its own: the status line
// `HTTP/1.1 200 O\x01K` (res.writeHead threw ERR_INVALID_CHAR) and an HTTP/2-forbidden response header under
// TLS/h2 (node:http2 threw ERR_HTTP2_INVALID_CONNECTION_HEADERS). Both ended the process.
describe('the gateway process survives the reproduced crashes', () => {
  let redis: RedisServer;
  let writerClient: ReturnType<typeof createRedis>;
  let crashPod: HostilePod;
  const children: ChildGateway[] = [];
  beforeAll(async () => {
    redis = await startRedis();
    writerClient = createRedis(redis.url);
    await waitReady(writerClient);
    const writer = new RedisRouteStore(writerClient);
    crashPod = await startHostilePod({
      'reason-ctl': CASES['reason-ctl']!.answer,
      'h2-http2-settings': CASES['h2-http2-settings']!.answer,
      'h2-keep-alive': CASES['h2-keep-alive']!.answer,
      fine: ok('200 OK'),
    });
    for (const slug of ['hostile', 'healthy']) {
      const written = await writer.put({
        slug,
        host: '127.0.0.1',
        port: crashPod.port,
        status: 'running',
        generation: await writer.nextGeneration(),
        defaultPort: 3000,
        updatedAt: new Date().toISOString(),
        access: { default: 'public', ports: {} },
      });
      if (!written) throw new Error(`route ${slug} not written`);
    }
  });
  afterAll(async () => {
    for (const child of children) await child.kill();
    writerClient?.disconnect();
    await crashPod?.close();
    await redis?.stop();
  });

  /** A gateway process of its own per case, so each crash is shown on its own. */
  async function startChild(): Promise<{ gw: ChildGateway; httpsPort: number }> {
    const gw = await spawnGateway({
      REDIS_URL: redis.url,
      ACCESS_CONCEAL_PODS: 'false',
      HTTPS_PORT: '0',
      HTTPS_HOST: '127.0.0.1',
      TLS_HTTP2: 'true',
      TLS_REDIRECT_HTTP: 'false',
      TLS_ON_DEMAND: 'false',
    });
    children.push(gw);
    await waitFor(() => gw.logs.some((l) => l.msg === 'HTTPS listening'), { what: 'the HTTPS listener', timeoutMs: 30_000 });
    await waitFor(async () => (await h1(gw.url, HEALTHY, '/case/fine')).status === 200, { what: 'the routes in the gateway process', timeoutMs: 30_000 });
    return { gw, httpsPort: gw.logs.find((l) => l.msg === 'HTTPS listening')!.httpsPort as number };
  }

  /** Still serving, and not exited (what the unfixed gateway did, with the exception on stderr). */
  async function alive(gw: ChildGateway): Promise<void> {
    const after = await h1(gw.url, HEALTHY, '/case/fine');
    if (after.status !== 200) await Promise.race([gw.exited, new Promise((r) => setTimeout(r, 5000))]);
    expect(gw.child.exitCode, `the gateway process exited: ${gw.stderr().slice(-600)}`).toBeNull();
    expect(after.status).toBe(200);
  }

  it('HTTP/1.1 200 O\\x01K: the client gets 200 OK and the process lives on', async () => {
    const { gw } = await startChild();
    const seen = await h1(gw.url, HOST, '/case/reason-ctl');
    await alive(gw);
    expect({ status: seen.status, reason: seen.reason }).toEqual({ status: 200, reason: 'OK' });
  });

  it('an HTTP/2-forbidden response header over TLS/h2: the header is dropped and the process lives on', async () => {
    const { gw, httpsPort } = await startChild();
    const s = http2Connect(`https://127.0.0.1:${httpsPort}`, { rejectUnauthorized: false });
    s.on('error', () => {});
    try {
      for (const name of ['h2-http2-settings', 'h2-keep-alive']) {
        const seen = await h2(s, HOST, `/case/${name}`).catch((err: Error) => err);
        await alive(gw);
        expect(seen).not.toBeInstanceOf(Error);
        const answer = seen as Seen;
        expect(answer.status).toBe(200);
        expect(answer.headers['http2-settings']).toBeUndefined();
        expect(answer.headers['keep-alive']).toBeUndefined();
      }
    } finally {
      s.destroy();
    }
  });
});
