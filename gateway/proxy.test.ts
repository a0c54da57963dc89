// The HTTP path to pods (undici): request bodies of every framing, HTTP/2 clients uploading, the one retry of an
// idempotent request on a pooled connection the pod had closed, and the cap on idle pooled connections. Real gateway, real pods on loopback.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpsListener } from './tls/https-server.ts';
import { listenHttp2, startHarness, startUpstream, type Harness, type Upstream } from '../test/support/gateway-harness.ts';
import { waitFor } from '../test/support/wait.ts';

const UPLOAD_BYTES = 4 * 1024 * 1024 + 17;
const HOST = 'pod-bodies.localhost';

let h: Harness;
let pod: Upstream;
let tls: HttpsListener;
let session: ClientHttp2Session;

/** The pod answers every request with what it received: method, framing headers, byte count and hash. */
function hashingPod(): Promise<Upstream> {
  return startUpstream((req, res) => {
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (c: Buffer) => {
      bytes += c.length;
      hash.update(c);
    });
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ method: req.method, bytes, sha256: hash.digest('hex'), length: req.headers['content-length'] ?? null, te: req.headers['transfer-encoding'] ?? null, expect: req.headers.expect ?? null }));
    });
  });
}

function payload(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

function h1(method: string, path: string, headers: Record<string, string>, pieces: Buffer[] = []): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${h.url}${path}`, { method, headers: { host: HOST, ...headers }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (s) => (body += s));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    for (const p of pieces) req.write(p);
    req.end();
  });
}

function h2(method: string, path: string, body?: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': method, ':path': path, ':authority': HOST }, { endStream: body === undefined });
    let status = 0;
    let text = '';
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.setEncoding('utf8');
    stream.on('data', (s: string) => (text += s));
    stream.on('error', reject);
    stream.on('close', () => (stream.rstCode ? reject(new Error(`stream reset (${stream.rstCode})`)) : resolve({ status, body: text })));
    if (body !== undefined) stream.end(body);
  });
}

beforeAll(async () => {
  h = await startHarness();
  pod = await hashingPod();
  await h.route('bodies', pod.port);
  tls = await listenHttp2(h.gateway.handler, 'proxy-test');
  session = http2Connect(`https://127.0.0.1:${tls.port}`, { rejectUnauthorized: false });
  session.on('error', () => {});
});
afterAll(async () => {
  session?.destroy();
  await tls?.close(500);
  await h?.close();
  await pod?.close();
});

describe('request bodies reach the pod whole, in every framing', () => {
  const body = payload(UPLOAD_BYTES);
  const sha256 = createHash('sha256').update(body).digest('hex');

  it('Content-Length', async () => {
    const a = await h1('PUT', '/cl', { 'content-length': String(body.length) }, [body]);
    expect(JSON.parse(a.body)).toMatchObject({ method: 'PUT', bytes: body.length, sha256, length: String(body.length) });
  });

  it('chunked, with Expect: 100-continue answered by the gateway and not passed on', async () => {
    const a = await h1('POST', '/chunked', { 'transfer-encoding': 'chunked', expect: '100-continue' }, [body.subarray(0, 1000), body.subarray(1000)]);
    expect(a.status).toBe(200);
    expect(JSON.parse(a.body)).toMatchObject({ bytes: body.length, sha256, te: 'chunked', expect: null });
  });

  it('none: a GET carries no framing headers', async () => {
    const a = await h1('GET', '/none', {});
    expect(JSON.parse(a.body)).toMatchObject({ method: 'GET', bytes: 0, length: null, te: null });
  });

  it('an HTTP/2 upload, and the session and its stream survive it', async () => {
    const a = await h2('POST', '/h2-upload', body);
    expect(a.status).toBe(200);
    expect(JSON.parse(a.body)).toMatchObject({ method: 'POST', bytes: body.length, sha256 });
    const b = await h2('GET', '/h2-after');
    expect(JSON.parse(b.body)).toMatchObject({ method: 'GET', bytes: 0, te: null });
    expect(session.destroyed).toBe(false);
  });
});

/**
 * A pod that answers the first request of each connection with keep-alive, then drops that connection when its
 * second request arrives (the race of a pod closing an idle connection just as the gateway reuses it).
 */
async function droppingPod(drop: (s: Socket) => void): Promise<{ server: NetServer; port: number; requests: string[] }> {
  const requests: string[] = [];
  let n = 0;
  const server = createNetServer((socket) => {
    let served = 0;
    const id = n++;
    socket.on('error', () => {});
    socket.on('data', (d) => {
      const line = d.toString('latin1').split('\r\n')[0]!;
      requests.push(`${id} ${served} ${line}`);
      if (served++ === 0) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nkeep-alive: timeout=60\r\n\r\nok');
      else drop(socket);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, port: (server.address() as AddressInfo).port, requests };
}

describe('a pooled connection the pod dropped as it was reused', () => {
  for (const [how, drop] of [
    ['closed', (s: Socket) => s.end()],
    ['reset', (s: Socket) => s.resetAndDestroy()],
  ] as const) {
    it(`${how}: an idempotent request is sent once more, on a new connection; a POST is not`, async () => {
      const p = await droppingPod(drop);
      try {
        await h.route(`drop${how}`, p.port);
        const host = `pod-drop${how}.localhost`;
        const get = (method: string) =>
          new Promise<number>((resolve, reject) => {
            const req = request(`${h.url}/`, { method, headers: { host }, agent: false }, (res) => {
              res.resume();
              res.on('end', () => resolve(res.statusCode ?? 0));
            });
            req.on('error', reject);
            req.end();
          });
        expect(await get('GET')).toBe(200); // opens the pooled connection
        expect(await get('POST')).toBe(502); // reused, dropped by the pod: not sent again
        expect(await get('GET')).toBe(200); // a new connection
        expect(await get('GET')).toBe(200); // reused, dropped by the pod, sent again on a new connection
        // connection, requests it had served before, request line
        expect(p.requests).toEqual(['0 0 GET / HTTP/1.1', '0 1 POST / HTTP/1.1', '1 0 GET / HTTP/1.1', '1 1 GET / HTTP/1.1', '2 0 GET / HTTP/1.1']);
      } finally {
        p.server.close();
      }
    });
  }
});

describe('the connect timeout', () => {
  it('answers 504 when the pod does not accept the connection in time', { timeout: 30_000 }, async () => {
    // A listener that never accepts, with its accept queue full: the kernel drops further SYNs, so a connection
    // attempt hangs as it would to a pod host that does not answer. Python, because node:net always accepts.
    const listener = spawn('python3', ['-c', 'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const fillers: Socket[] = [];
    const quick = await startHarness({ UPSTREAM_CONNECT_TIMEOUT_MS: '500' }, h.redis);
    try {
      const port = await new Promise<number>((resolve, reject) => {
        listener.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
        listener.once('exit', () => reject(new Error('the listener exited')));
      });
      // Fill the queue: these connect (the kernel completes them), the next attempts are left hanging.
      for (let i = 0; i < 3; i++) {
        const s = netConnect({ host: '127.0.0.1', port });
        s.on('error', () => {});
        fillers.push(s);
      }
      await quick.route('silent', port);
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request(`${quick.url}/`, { headers: { host: 'pod-silent.localhost' }, agent: false }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (s) => (body += s));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
      });
      expect(answer.status).toBe(504);
      expect(JSON.parse(answer.body).error).toMatchObject({ code: 'upstream_timeout', message: expect.stringMatching(/connection timed out/) });
    } finally {
      for (const s of fillers) s.destroy();
      listener.kill('SIGKILL');
      await quick.close();
    }
  });
});

describe('keep-alive to pods', () => {
  it('HEAD requests reuse the pooled connection like any other', async () => {
    const p = await startUpstream((_req, res) => res.end('body of a GET'));
    try {
      await h.route('heads', p.port);
      for (let i = 0; i < 3; i++) {
        const status = await new Promise<number>((resolve, reject) => {
          const req = request(`${h.url}/`, { method: 'HEAD', headers: { host: 'pod-heads.localhost' }, agent: false }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          });
          req.on('error', reject);
          req.end();
        });
        expect(status).toBe(200);
      }
      expect(p.connections).toBe(1);
    } finally {
      await p.close();
    }
  });
});

describe('UPSTREAM_MAX_FREE_SOCKETS', () => {
  const MAX_FREE = 2;
  const BURST = 10;
  let capped: Harness;
  let burstPod: Upstream;
  /** The pod's open connections from the gateway, and the requests it holds until the whole burst has arrived. */
  const open = new Set<Socket>();
  let held: (() => void)[] = [];

  beforeAll(async () => {
    capped = await startHarness({ UPSTREAM_MAX_FREE_SOCKETS: String(MAX_FREE) });
    burstPod = await startUpstream((_req, res) => {
      held.push(() => res.end('ok'));
      if (held.length === BURST) for (const answer of held.splice(0)) answer();
    });
    burstPod.server.on('connection', (s: Socket) => {
      open.add(s);
      s.once('close', () => open.delete(s));
    });
    await capped.route('burst', burstPod.port);
  });
  afterAll(async () => {
    await capped?.close();
    await burstPod?.close();
  });

  function get(path: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = request(`${capped.url}${path}`, { headers: { host: 'pod-burst.localhost' }, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('closes the connections a burst opened beyond the cap as they become idle, and reuses the ones kept', async () => {
    held = [];
    expect(await Promise.all(Array.from({ length: BURST }, (_, i) => get(`/burst-${i}`)))).toEqual(Array(BURST).fill(200));
    // Closed as each answer completes; the pool's idle timeout alone would close all ten at once, later.
    await waitFor(() => open.size <= MAX_FREE, { what: `at most ${MAX_FREE} idle connections to the pod` });
    expect(open.size).toBe(MAX_FREE);
    const connections = burstPod.connections;
    // The kept ones serve what comes next: no new connection for two requests at once.
    held = [];
    const next = Promise.all([get('/after-1'), get('/after-2')]);
    await waitFor(() => held.length === 2, { what: 'both requests at the pod' });
    for (const answer of held.splice(0)) answer();
    expect(await next).toEqual([200, 200]);
    expect(burstPod.connections).toBe(connections);
  });
});
