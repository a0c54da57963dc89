// A hostile client against a real gateway: raw-socket requests with every request-target and Host trick, and
// HTTP/2 requests whose :authority, Host and :path disagree. Each gets its precise status, the pod (when reached)
// sees only origin-form and the one authority the gateway decided on, and the gateway keeps serving.
import { connect as http2Connect, type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpsListener } from '../gateway/tls/https-server.ts';
import { listenHttp2, startHarness, startUpstream, type Harness, type Upstream } from './support/gateway-harness.ts';

const PUBLIC_HOST = 'localhost-3000.pod-half.localhost';
const PRIVATE_HOST = 'localhost-7681.pod-half.localhost';
const CLIENT_DEADLINE_MS = 10_000;

interface RawAnswer {
  status: number;
  head: string;
  body: string;
}

/** Send raw bytes on a fresh connection; the answer is read until the gateway closes (every request says close). */
function raw(port: number, bytes: string, overTls = false): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = overTls
      ? tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
      : netConnect({ host: '127.0.0.1', port });
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer within ${CLIENT_DEADLINE_MS} ms: ${JSON.stringify(data.slice(0, 200))}`));
    }, CLIENT_DEADLINE_MS);
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => (data += c));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      const status = /^HTTP\/1\.[01] (\d{3}) /.exec(data);
      if (!status) return reject(new Error(`not an HTTP answer: ${JSON.stringify(data.slice(0, 200))}`));
      const end = data.indexOf('\r\n\r\n');
      resolve({ status: Number(status[1]), head: data.slice(0, end), body: data.slice(end + 4) });
    });
    socket.write(Buffer.from(bytes, 'latin1'));
  });
}

const req = (line: string, ...headers: string[]) => `${line}\r\n${[...headers, 'Connection: close'].join('\r\n')}\r\n\r\n`;
const host = (name: string) => `Host: ${name}`;

interface ClientCase {
  request: string;
  status: number;
  /** The error code of a refusal (JSON body). */
  code?: string;
  /** What the pod saw, for requests it answered. */
  pod?: { url: string; host: string };
}

const TARGET_400 = 'invalid_request_target';
const HOST_400 = 'invalid_host';

const CASES: Record<string, ClientCase> = {
  // The reproduced bypass: the target's authority decides, never the Host header.
  'absolute-form names the private port, Host the public one': {
    request: req(`GET http://${PRIVATE_HOST}/ HTTP/1.1`, host(PUBLIC_HOST)),
    status: 401,
    code: 'unauthorized',
  },
  'absolute-form names the public port, Host the private one': {
    request: req(`GET http://${PUBLIC_HOST}/x?y=1 HTTP/1.1`, host(PRIVATE_HOST)),
    status: 200,
    pod: { url: '/x?y=1', host: PUBLIC_HOST },
  },
  // Host named as a connection option: the pod must still get it, or the in-pod router would route to the pod's
  // default port (private here) a request the gateway admitted for the public one.
  'Connection names Host': {
    request: req(`GET /h HTTP/1.1`, host(PUBLIC_HOST), 'Connection: Host'),
    status: 200,
    pod: { url: '/h', host: PUBLIC_HOST },
  },
  'absolute-form for another pod than Host': {
    request: req(`GET http://pod-other.localhost/ HTTP/1.1`, host(PUBLIC_HOST)),
    status: 404,
    code: 'pod_not_found',
  },
  'absolute-form with an upper-case scheme and no path': {
    request: req(`GET HTTP://${PUBLIC_HOST.toUpperCase()} HTTP/1.1`, host(PRIVATE_HOST)),
    status: 200,
    pod: { url: '/', host: PUBLIC_HOST.toUpperCase() },
  },
  'absolute-form with a query and no path': {
    request: req(`GET http://${PUBLIC_HOST}?q=1 HTTP/1.1`, host(PUBLIC_HOST)),
    status: 200,
    pod: { url: '/?q=1', host: PUBLIC_HOST },
  },
  'absolute-form https with a port': {
    request: req(`GET https://${PUBLIC_HOST}:8443/a HTTP/1.1`, host(PRIVATE_HOST)),
    status: 200,
    pod: { url: '/a', host: `${PUBLIC_HOST}:8443` },
  },
  'absolute-form over HTTP/1.0 without Host': {
    request: req(`GET http://${PUBLIC_HOST}/ten HTTP/1.0`),
    status: 200,
    pod: { url: '/ten', host: PUBLIC_HOST },
  },
  'absolute-form path starting with //': {
    request: req(`GET http://${PUBLIC_HOST}//evil.example/ HTTP/1.1`, host(PUBLIC_HOST)),
    status: 200,
    pod: { url: '//evil.example/', host: PUBLIC_HOST },
  },
  'absolute-form with userinfo': {
    request: req(`GET http://user:pw@${PUBLIC_HOST}/ HTTP/1.1`, host(PUBLIC_HOST)),
    status: 400,
    code: TARGET_400,
  },
  'absolute-form whose userinfo names the public port': {
    request: req(`GET http://${PUBLIC_HOST}@${PRIVATE_HOST}/ HTTP/1.1`, host(PUBLIC_HOST)),
    status: 400,
    code: TARGET_400,
  },
  'absolute-form with another scheme': {
    request: req(`GET ftp://${PUBLIC_HOST}/ HTTP/1.1`, host(PUBLIC_HOST)),
    status: 400,
    code: TARGET_400,
  },
  'absolute-form ws scheme': { request: req(`GET ws://${PUBLIC_HOST}/ HTTP/1.1`, host(PUBLIC_HOST)), status: 400, code: TARGET_400 },
  'absolute-form with an empty authority': { request: req('GET http:///x HTTP/1.1', host(PUBLIC_HOST)), status: 400, code: TARGET_400 },
  'absolute-form with a single slash': { request: req(`GET http:/${PUBLIC_HOST}/ HTTP/1.1`, host(PUBLIC_HOST)), status: 400 },
  'absolute-form with a non-numeric port': {
    request: req(`GET http://${PUBLIC_HOST}:80x/ HTTP/1.1`, host(PUBLIC_HOST)),
    status: 400,
    code: TARGET_400,
  },
  'absolute-form with a percent-encoded authority': {
    request: req(`GET http://localhost-7681%2epod-half.localhost/ HTTP/1.1`, host(PUBLIC_HOST)),
    status: 400,
    code: TARGET_400,
  },
  'absolute-form with a backslash authority': {
    request: req(`GET http://${PUBLIC_HOST}\\@${PRIVATE_HOST}/ HTTP/1.1`, host(PUBLIC_HOST)),
    status: 400,
  },
  'absolute-form with a fragment': { request: req(`GET http://${PUBLIC_HOST}/#x HTTP/1.1`, host(PUBLIC_HOST)), status: 400, code: TARGET_400 },
  'absolute-form with two Host headers': {
    request: req(`GET http://${PUBLIC_HOST}/ HTTP/1.1`, host(PUBLIC_HOST), host(PRIVATE_HOST)),
    status: 400,
    code: HOST_400,
  },
  // Other target forms
  'origin-form with a fragment': { request: req('GET /x#frag HTTP/1.1', host(PUBLIC_HOST)), status: 400, code: TARGET_400 },
  'relative target': { request: req('GET x HTTP/1.1', host(PUBLIC_HOST)), status: 400 },
  'authority-form with GET': { request: req(`GET ${PRIVATE_HOST}:80 HTTP/1.1`, host(PUBLIC_HOST)), status: 400 },
  'CONNECT (authority-form)': { request: req(`CONNECT ${PRIVATE_HOST}:80 HTTP/1.1`, host(PRIVATE_HOST)), status: 400, code: TARGET_400 },
  'asterisk-form with GET': { request: req('GET * HTTP/1.1', host(PUBLIC_HOST)), status: 400, code: TARGET_400 },
  'asterisk-form with OPTIONS is answered by the gateway': { request: req('OPTIONS * HTTP/1.1', host(PRIVATE_HOST)), status: 200 },
  // Host
  'two Host headers': { request: req('GET / HTTP/1.1', host(PUBLIC_HOST), host(PRIVATE_HOST)), status: 400, code: HOST_400 },
  'two Host headers, different case': { request: req('GET / HTTP/1.1', host(PUBLIC_HOST), `hOST: ${PRIVATE_HOST}`), status: 400, code: HOST_400 },
  'no Host over HTTP/1.1': { request: req('GET / HTTP/1.1'), status: 400 },
  'no Host over HTTP/1.0': { request: req('GET / HTTP/1.0'), status: 400, code: HOST_400 },
  'empty Host': { request: req('GET / HTTP/1.1', 'Host: '), status: 400 },
  'Host with userinfo': { request: req('GET / HTTP/1.1', host(`${PRIVATE_HOST}@${PUBLIC_HOST}`)), status: 400, code: HOST_400 },
  'Host with a path': { request: req('GET / HTTP/1.1', host(`${PUBLIC_HOST}/x`)), status: 400, code: HOST_400 },
  'Host with a list': { request: req('GET / HTTP/1.1', host(`${PUBLIC_HOST}, ${PRIVATE_HOST}`)), status: 400, code: HOST_400 },
  'Host with a port and more': { request: req('GET / HTTP/1.1', host(`${PUBLIC_HOST}:80:${PRIVATE_HOST}`)), status: 400, code: HOST_400 },
  'Host with a non-numeric port': { request: req('GET / HTTP/1.1', host(`${PUBLIC_HOST}:abc`)), status: 400, code: HOST_400 },
  'Host with a space': { request: req('GET / HTTP/1.1', host(`${PUBLIC_HOST} x`)), status: 400, code: HOST_400 },
  'Host with a control character': { request: req('GET / HTTP/1.1', host(`${PUBLIC_HOST}\x01`)), status: 400 },
  'Host with a NUL': { request: req('GET / HTTP/1.1', host(`${PUBLIC_HOST}\x00`)), status: 400 },
  'Host with percent-encoding': { request: req('GET / HTTP/1.1', host('localhost-7681%2epod-half.localhost')), status: 400, code: HOST_400 },
  'Host with obs-text': { request: req('GET / HTTP/1.1', host(`pod-h\xe4lf.localhost`)), status: 400, code: HOST_400 },
  'Host obs-folded': { request: req('GET / HTTP/1.1', host(PUBLIC_HOST), ` ${PRIVATE_HOST}`), status: 400 },
  'a valid Host with a port': { request: req('GET /ok HTTP/1.1', host(`${PUBLIC_HOST}:8080`)), status: 200, pod: { url: '/ok', host: `${PUBLIC_HOST}:8080` } },
  // Framing a proxy in front could read differently
  'Content-Length and Transfer-Encoding': {
    request: `POST / HTTP/1.1\r\n${host(PUBLIC_HOST)}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n`,
    status: 400,
  },
  'two different Content-Lengths': {
    request: `POST / HTTP/1.1\r\n${host(PUBLIC_HOST)}\r\nContent-Length: 1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab`,
    status: 400,
  },
  'a bare LF request line': { request: `GET / HTTP/1.1\n${host(PUBLIC_HOST)}\n\n`, status: 400 },
};

let h: Harness;
let up: Upstream;
let port: number;
let tls: HttpsListener;
let session: ClientHttp2Session;

beforeAll(async () => {
  h = await startHarness();
  up = await startUpstream();
  // A pod with a public app port (3000) and a private web terminal (7681).
  await h.route('half', up.port, { access: { default: 'private', ports: { '3000': 'public' } } });
  port = Number(new URL(h.url).port);
  tls = await listenHttp2(h.gateway.handler, 'hostile-client-test');
  session = http2Connect(`https://127.0.0.1:${tls.port}`, { rejectUnauthorized: false });
  session.on('error', () => {});
});
afterAll(async () => {
  session?.destroy();
  await tls?.close(500);
  await h?.close();
  await up?.close();
});

async function stillServing(): Promise<void> {
  expect((await raw(port, req('GET /alive HTTP/1.1', host(PUBLIC_HOST)))).status).toBe(200);
}

describe('a hostile client, raw HTTP/1.1', () => {
  it.each(Object.entries(CASES))('%s', async (_name, c) => {
    const before = up.requests.length;
    const answer = await raw(port, c.request);
    expect(answer.status).toBe(c.status);
    if (c.code) expect(JSON.parse(answer.body).error.code).toBe(c.code);
    if (c.pod) {
      expect(up.requests.length).toBe(before + 1);
      const seen = up.requests.at(-1)!;
      expect({ url: seen.url, host: seen.headers.host, forwardedHost: seen.headers['x-forwarded-host'] }).toEqual({
        url: c.pod.url,
        host: c.pod.host,
        forwardedHost: c.pod.host,
      });
    } else {
      expect(up.requests.length, 'the pod was not reached').toBe(before);
    }
    await stillServing();
  });

  it('OPTIONS * is answered by the gateway with what it accepts', async () => {
    const answer = await raw(port, req('OPTIONS * HTTP/1.1', host(PUBLIC_HOST)));
    expect(answer.head.toLowerCase()).toContain('allow: get, head, post, put, patch, delete, options');
    expect(answer.body).toBe('');
  });

  it('a WebSocket upgrade with an absolute-form target is decided and forwarded by the target authority', async () => {
    const upgrades: { url: string; host: string | undefined }[] = [];
    up.server.on('upgrade', (r, socket) => {
      upgrades.push({ url: r.url ?? '', host: r.headers.host });
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    });
    const ws = (line: string, hostHeader: string) =>
      raw(port, `${line}\r\n${host(hostHeader)}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
    expect((await ws(`GET http://${PRIVATE_HOST}/ HTTP/1.1`, PUBLIC_HOST)).status).toBe(401);
    expect(upgrades).toEqual([]);
    expect((await ws(`GET http://${PUBLIC_HOST}/socket?a=1 HTTP/1.1`, PRIVATE_HOST)).status).toBe(403);
    expect(upgrades).toEqual([{ url: '/socket?a=1', host: PUBLIC_HOST }]);
    expect((await ws(`GET http://u@${PUBLIC_HOST}/ HTTP/1.1`, PUBLIC_HOST)).status).toBe(400);
    expect((await ws('OPTIONS * HTTP/1.1', PUBLIC_HOST)).status).toBe(400);
    expect(upgrades).toHaveLength(1);
  });
});

/** One HTTP/2 request: its status and error code. */
function h2(headers: OutgoingHttpHeaders): Promise<{ status: number; code?: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': '/', ...headers });
    let status = 0;
    let body = '';
    const timer = setTimeout(() => reject(new Error('no HTTP/2 answer')), CLIENT_DEADLINE_MS);
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.setEncoding('utf8');
    stream.on('data', (c: string) => (body += c));
    stream.on('error', () => {});
    stream.on('close', () => {
      clearTimeout(timer);
      let code: string | undefined;
      try {
        code = JSON.parse(body).error?.code;
      } catch {
        code = undefined;
      }
      resolve({ status, code });
    });
    stream.end();
  });
}

/** nghttp2 itself resets these streams as malformed (PROTOCOL_ERROR) before the gateway sees them. */
const RESET = 0;

describe('a hostile client, HTTP/2', () => {
  it.each<[string, OutgoingHttpHeaders, number, string | undefined, string | undefined]>([
    // [case, headers, status, error code, the Host the pod sees (undefined: not reached)]
    ['the private port in :authority, the public one in Host', { ':authority': PRIVATE_HOST, host: PUBLIC_HOST }, 400, HOST_400, undefined],
    ['the public port in :authority, the private one in Host', { ':authority': PUBLIC_HOST, host: PRIVATE_HOST }, 400, HOST_400, undefined],
    [':authority with userinfo', { ':authority': `u@${PUBLIC_HOST}` }, RESET, undefined, undefined],
    [':authority with a path-like suffix', { ':authority': `${PUBLIC_HOST}/x` }, RESET, undefined, undefined],
    [':authority with a list', { ':authority': `${PUBLIC_HOST},${PRIVATE_HOST}` }, 400, HOST_400, undefined],
    ['an absolute-form :path naming the private port', { ':authority': PUBLIC_HOST, ':path': `http://${PRIVATE_HOST}/` }, RESET, undefined, undefined],
    ['asterisk :path with GET', { ':authority': PUBLIC_HOST, ':path': '*' }, RESET, undefined, undefined],
    ['a :path with a fragment', { ':authority': PUBLIC_HOST, ':path': '/x#y' }, 400, TARGET_400, undefined],
    ['asterisk :path with OPTIONS', { ':authority': PUBLIC_HOST, ':path': '*', ':method': 'OPTIONS' }, 200, undefined, undefined],
    ['the private port alone', { ':authority': PRIVATE_HOST }, 401, 'unauthorized', undefined],
    ['Host equal to :authority but for case', { ':authority': PUBLIC_HOST, host: PUBLIC_HOST.toUpperCase() }, 200, undefined, PUBLIC_HOST],
    ['the public port alone', { ':authority': PUBLIC_HOST }, 200, undefined, PUBLIC_HOST],
  ])('%s', async (_name, headers, status, code, podHost) => {
    const before = up.requests.length;
    const answer = await h2(headers);
    expect(answer.status).toBe(status);
    if (code) expect(answer.code).toBe(code);
    if (podHost) expect(up.requests.at(-1)).toMatchObject({ url: '/', headers: { host: podHost } });
    else expect(up.requests.length).toBe(before);
    expect(session.destroyed).toBe(false);
    await stillServing();
  });

  it('CONNECT and absolute-form over HTTP/1.1 on the HTTPS listener (an HTTP/2 server taking HTTP/1.1) as over plain HTTP', async () => {
    const connect = await raw(tls.port, req(`CONNECT ${PRIVATE_HOST}:443 HTTP/1.1`, host(PRIVATE_HOST)), true);
    expect(connect.status).toBe(400);
    expect(JSON.parse(connect.body).error.code).toBe(TARGET_400);
    expect((await raw(tls.port, req(`GET https://${PRIVATE_HOST}/ HTTP/1.1`, host(PUBLIC_HOST)), true)).status).toBe(401);
    expect((await raw(tls.port, req(`GET https://${PUBLIC_HOST}/tls HTTP/1.1`, host(PRIVATE_HOST)), true)).status).toBe(200);
    expect(up.requests.at(-1)).toMatchObject({ url: '/tls', headers: { host: PUBLIC_HOST, 'x-forwarded-proto': 'https' } });
    await stillServing();
  });

  it('CONNECT over HTTP/2 is refused with 400', async () => {
    const stream = session.request({ ':method': 'CONNECT', ':authority': `${PRIVATE_HOST}:80` });
    const status = await new Promise<number>((resolve) => {
      stream.on('response', (h) => resolve(Number(h[':status'])));
      stream.on('error', () => resolve(0));
    });
    stream.destroy();
    expect(status).toBe(400);
    await stillServing();
  });
});
