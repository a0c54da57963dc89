// Streaming through the gateway: Server-Sent Events unbuffered, 1 GiB each way in constant memory (the gateway
// runs as its own process so its memory can be measured), slow uploads, and clean client aborts.
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis, waitReady } from '../shared/redis.ts';
import { RedisRouteStore } from '../shared/redis-route-store.ts';
import { spawnGateway, type ChildGateway } from './support/child-gateway.ts';
import { startHarness, startUpstream, type Harness } from './support/gateway-harness.ts';
import { startRedis, type RedisServer } from './support/redis-server.ts';
import { waitFor } from './support/wait.ts';

const GIB = 1024 * 1024 * 1024;
const CHUNK_BYTES = 256 * 1024;
/** Generous: a streaming proxy needs a few socket buffers, not a copy of the body. */
const MAX_RSS_GROWTH_BYTES = 300 * 1024 * 1024;
const RSS_SAMPLE_INTERVAL_MS = 25;
const TRANSFER_TIMEOUT_MS = 240_000;
/** Short, so a slow upload lasts several times longer than it. */
const RESPONSE_TIMEOUT_MS = 1_000;
const SLOW_UPLOAD_PIECES = 3;
/** Each pause of the client alone is longer than the response timeout: only the pod's delays may count. */
const SLOW_UPLOAD_PAUSE_MS = RESPONSE_TIMEOUT_MS + 500;
/** Enough to fill every socket buffer between the client and a pod that does not read. */
const STALLED_UPLOAD_BYTES = 256 * 1024 * 1024;
const ROUTE_READY_TIMEOUT_MS = 30_000;
const SSE_EVENTS = 5;
const ABORT_AFTER_BYTES = 8 * 1024 * 1024;
const HEADERS_ONLY = /^\s*$/;
const PUBLIC = { default: 'public' as const, ports: {} };

/**
 * `total` bytes made on the fly: a random block, each chunk stamped with its index so reordered or repeated
 * chunks change the hash. Honours backpressure (read() is only called when the consumer wants more).
 */
function generated(total: number, hash?: Hash): Readable {
  const block = randomBytes(CHUNK_BYTES);
  let sent = 0;
  let index = 0;
  return new Readable({
    highWaterMark: CHUNK_BYTES,
    read() {
      if (sent >= total) {
        this.push(null);
        return;
      }
      const size = Math.min(CHUNK_BYTES, total - sent);
      const chunk = Buffer.allocUnsafe(size);
      block.copy(chunk, 0, 0, size);
      chunk.writeUInt32BE(index++ >>> 0, 0);
      sent += size;
      hash?.update(chunk);
      this.push(chunk);
    },
  });
}

/** Sample a process's RSS until stopped; returns the peak. */
function sampleRss(gw: ChildGateway): { stop(): number } {
  let peak = gw.rss();
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, gw.rss());
    } catch {
      // the process is gone: the test will say so
    }
  }, RSS_SAMPLE_INTERVAL_MS);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as AddressInfo).port;
}

/** Status of a GET with an explicit Host (fetch() does not let a caller set Host). */
function statusOf(url: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { host }, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

const MB = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;

describe('Server-Sent Events', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('are relayed as they are sent, not buffered', async () => {
    // The pod sends one event and waits until the test has received it before the next: a buffering gateway
    // would hold the first event and the exchange would stall (the waitFor below would time out).
    let received = 0;
    const up = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      let sent = 0;
      const next = () => {
        if (sent === SSE_EVENTS) return res.end();
        res.write(`id: ${sent}\ndata: event ${sent}\n\n`);
        sent++;
        waitFor(() => received >= sent, { timeoutMs: 10_000, what: `client to receive event ${sent}` }).then(next, () => res.destroy());
      };
      next();
    });
    try {
      await h.route('sse', up.port);
      const events = await new Promise<string[]>((resolve, reject) => {
        const req = request(`${h.url}/events`, { headers: { host: 'pod-sse.localhost', accept: 'text/event-stream' }, agent: false }, (res) => {
          expect(res.statusCode).toBe(200);
          expect(res.headers['content-type']).toBe('text/event-stream');
          const seen: string[] = [];
          let buffer = '';
          res.setEncoding('utf8');
          res.on('data', (s: string) => {
            buffer += s;
            let end: number;
            while ((end = buffer.indexOf('\n\n')) >= 0) {
              const event = buffer.slice(0, end);
              buffer = buffer.slice(end + 2);
              if (HEADERS_ONLY.test(event)) continue;
              seen.push(/^data: (.*)$/m.exec(event)?.[1] ?? '');
              received++;
            }
          });
          res.on('end', () => resolve(seen));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
      expect(events).toEqual(Array.from({ length: SSE_EVENTS }, (_, i) => `event ${i}`));
    } finally {
      await up.close();
    }
  });
});

describe('the gateway process', () => {
  let redis: RedisServer;
  let writer: RedisRouteStore;
  let writerClient: ReturnType<typeof createRedis>;
  /** Default timeouts: the bulk transfers must not depend on the machine never pausing for a second. */
  let gw: ChildGateway;
  /** A 1 s response timeout, for the tests about that timeout. */
  let quick: ChildGateway;
  let pod: Server;
  /** Per-request behaviour of the pod, by path. */
  const handlers = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();

  beforeAll(async () => {
    redis = await startRedis();
    writerClient = createRedis(redis.url);
    await waitReady(writerClient);
    writer = new RedisRouteStore(writerClient);
    pod = createServer((req, res) => {
      const handler = handlers.get(new URL(req.url ?? '/', 'http://x').pathname);
      if (handler) return handler(req, res);
      req.resume();
      res.end('ok');
    });
    const port = await listen(pod);
    const put = await writer.put({
      slug: 'bulk',
      host: '127.0.0.1',
      port,
      status: 'running',
      generation: await writer.nextGeneration(),
      defaultPort: 3000,
      updatedAt: new Date().toISOString(),
      access: PUBLIC, // this file is about streaming; access control has its own tests
    });
    expect(put).toBe(true);
    [gw, quick] = await Promise.all([
      spawnGateway({ REDIS_URL: redis.url, ACCESS_LOG: 'true' }),
      spawnGateway({ REDIS_URL: redis.url, UPSTREAM_RESPONSE_TIMEOUT_MS: String(RESPONSE_TIMEOUT_MS) }),
    ]);
    for (const g of [gw, quick]) {
      let last = 0;
      await waitFor(async () => (last = await statusOf(g.url, 'pod-bulk.localhost')) === 200, {
        timeoutMs: ROUTE_READY_TIMEOUT_MS,
        what: 'the pod route',
      }).catch((err) => {
        throw new Error(`${err.message} (last status ${last})`);
      });
    }
  });
  afterAll(async () => {
    await gw?.kill();
    await quick?.kill();
    pod?.closeAllConnections();
    await new Promise<void>((r) => (pod ? pod.close(() => r()) : r()));
    writerClient?.disconnect();
    await redis?.stop();
  });

  it('uploads 1 GiB through the gateway in constant memory', { timeout: TRANSFER_TIMEOUT_MS }, async () => {
    handlers.set('/upload', (req, res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (c: Buffer) => {
        bytes += c.length;
        hash.update(c);
      });
      req.on('end', () => res.end(JSON.stringify({ bytes, sha256: hash.digest('hex') })));
    });
    const idle = gw.rss();
    const sampler = sampleRss(gw);
    const sent = createHash('sha256');
    const started = Date.now();
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        `${gw.url}/upload`,
        { method: 'POST', headers: { host: 'pod-bulk.localhost', 'content-length': String(GIB) }, agent: false },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (s) => (body += s));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      generated(GIB, sent).pipe(req);
    });
    const seconds = (Date.now() - started) / 1000;
    const peak = sampler.stop();
    console.log(`upload 1 GiB: ${seconds.toFixed(1)} s, ${(1024 / seconds).toFixed(0)} MiB/s; gateway RSS idle ${MB(idle)}, peak ${MB(peak)}`);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ bytes: GIB, sha256: sent.digest('hex') });
    expect(peak - idle).toBeLessThan(MAX_RSS_GROWTH_BYTES);
  });

  it('downloads 1 GiB through the gateway in constant memory', { timeout: TRANSFER_TIMEOUT_MS }, async () => {
    let podHash = '';
    handlers.set('/download', (req, res) => {
      req.resume();
      const hash = createHash('sha256');
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(GIB) });
      const body = generated(GIB, hash);
      body.on('end', () => (podHash = hash.digest('hex')));
      body.pipe(res);
    });
    const idle = gw.rss();
    const sampler = sampleRss(gw);
    const started = Date.now();
    const got = await new Promise<{ status: number; bytes: number; sha256: string }>((resolve, reject) => {
      const req = request(`${gw.url}/download`, { headers: { host: 'pod-bulk.localhost' }, agent: false }, (res) => {
        const hash = createHash('sha256');
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          hash.update(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, sha256: hash.digest('hex') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    const seconds = (Date.now() - started) / 1000;
    const peak = sampler.stop();
    console.log(`download 1 GiB: ${seconds.toFixed(1)} s, ${(1024 / seconds).toFixed(0)} MiB/s; gateway RSS idle ${MB(idle)}, peak ${MB(peak)}`);
    expect(got.status).toBe(200);
    expect(got.bytes).toBe(GIB);
    expect(got.sha256).toBe(podHash);
    expect(peak - idle).toBeLessThan(MAX_RSS_GROWTH_BYTES);
  });

  it('does not count a slow client against the response timeout', async () => {
    let podGotFirstPiece = false;
    handlers.set('/slow-upload', (req, res) => {
      let bytes = 0;
      req.on('data', (c: Buffer) => {
        bytes += c.length;
        podGotFirstPiece = true;
      });
      req.on('end', () => res.end(String(bytes)));
    });
    const piece = Buffer.alloc(1024, 'u');
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        `${quick.url}/slow-upload`,
        { method: 'POST', headers: { host: 'pod-bulk.localhost', 'content-length': String(piece.length * SLOW_UPLOAD_PIECES) }, agent: false },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (s) => (body += s));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      void (async () => {
        req.write(piece);
        await waitFor(() => podGotFirstPiece, { what: 'the pod to receive the first piece' });
        // A client uploading slowly: each of its pauses is longer than the response timeout.
        for (let i = 1; i < SLOW_UPLOAD_PIECES; i++) {
          await sleep(SLOW_UPLOAD_PAUSE_MS);
          req.write(piece);
        }
        req.end();
      })().catch(reject);
    });
    expect(answer).toEqual({ status: 200, body: String(piece.length * SLOW_UPLOAD_PIECES) });
  });

  it('answers 504 when the pod stops reading an upload and never answers, and tears the pod request down', { timeout: 60_000 }, async () => {
    let podClosed = false;
    let podReq: IncomingMessage | undefined;
    handlers.set('/stalled', (req) => {
      // Reads nothing, answers nothing: the upload backs up until the gateway's own buffers are full.
      podReq = req;
      req.pause();
      req.on('close', () => (podClosed = true));
    });
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        `${quick.url}/stalled`,
        { method: 'POST', headers: { host: 'pod-bulk.localhost', 'content-length': String(STALLED_UPLOAD_BYTES) }, agent: false },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      // After the 504 the gateway may close while the client is still writing: only an error before it counts.
      req.on('error', (err) => reject(err));
      const body = generated(STALLED_UPLOAD_BYTES);
      body.pipe(req);
      req.on('response', () => {
        body.unpipe(req);
        body.destroy();
        req.removeAllListeners('error');
        req.on('error', () => {});
      });
    });
    expect(status).toBe(504);
    // A paused socket does not notice its peer going away: read again, and what follows the buffered bytes must
    // be the end of the connection, not the rest of the upload.
    podReq!.resume();
    await waitFor(() => podClosed, { what: 'the stalled pod request to be torn down' });
  });

  it('tears the pod request down when the client aborts a download, and logs no error', async () => {
    let podClosed = false;
    let podSent = 0;
    handlers.set('/endless', (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.on('close', () => (podClosed = true));
      const body = generated(Number.MAX_SAFE_INTEGER);
      body.on('data', (c: Buffer) => (podSent += c.length));
      body.pipe(res);
      res.on('close', () => body.destroy());
    });
    const firstLogLine = gw.logs.length;
    await new Promise<void>((resolve, reject) => {
      const req = request(`${gw.url}/endless`, { headers: { host: 'pod-bulk.localhost' }, agent: false }, (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          if (bytes >= ABORT_AFTER_BYTES) {
            req.destroy();
            resolve();
          }
        });
      });
      req.on('error', () => {}); // our own abort
      req.end();
      req.on('close', () => resolve());
      setTimeout(() => reject(new Error('download never reached the abort point')), 30_000).unref();
    });
    await waitFor(() => podClosed, { what: 'the pod to see its response torn down' });
    // The access-log line for the aborted request is written after the proxy has handled the abort: once it is
    // there, any error the abort caused would have been logged before it.
    await waitFor(() => gw.logs.slice(firstLogLine).some((l) => l.msg === 'request' && l.path === '/endless'), {
      what: 'the access-log line of the aborted request',
    });
    const mine = gw.logs.slice(firstLogLine);
    expect(mine.find((l) => l.path === '/endless')).toMatchObject({ status: 499 });
    expect(mine.filter((l) => l.level >= 40)).toEqual([]);
    expect(JSON.stringify(mine)).not.toMatch(/stack|Error:/);
    expect(gw.stderr()).toBe('');
    expect(gw.otherStdout).toEqual([]);
    expect(podSent).toBeLessThan(GIB); // it stopped, it did not run on into the void
    expect(gw.child.exitCode).toBeNull();
  });
});
