// The gateway as a process (`node gateway/main.ts`): graceful SIGTERM, configuration errors at start, and
// survival of malformed and hostile requests sent as raw bytes.
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { createRedis, waitReady } from '../shared/redis.ts';
import { RedisRouteStore } from '../shared/redis-route-store.ts';
import { runGatewayToExit, spawnGateway, type ChildGateway } from './support/child-gateway.ts';
import { startRedis, type RedisServer } from './support/redis-server.ts';
import { waitFor } from './support/wait.ts';

/** Long enough for the test's own steps between the signal and releasing the slow request on a loaded machine. */
const SHUTDOWN_TIMEOUT_MS = 10_000;
const ROUTE_READY_TIMEOUT_MS = 30_000;
/** Process start-up and exit on a loaded 2-core machine, on top of the shutdown deadline. */
const EXIT_SLACK_MS = 5_000;
const HEADERS_TIMEOUT_MS = 1_000;
/** A slowloris client drips one header line this often: far more often than the headers timeout. */
const DRIP_INTERVAL_MS = 100;
/** How long the test keeps dripping before it calls the gateway defenceless. */
const SLOWLORIS_GIVE_UP_MS = 15_000;
const RAW_EXCHANGE_DEADLINE_MS = 10_000;
const PUBLIC = { default: 'public' as const, ports: {} };
const GOING_AWAY = 1001;

/** Status of a GET through the gateway with an explicit Host. */
function get(url: string, host: string, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { headers: { host }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (s) => (body += s));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

interface RawAnswer {
  /** Status of the first response, if any arrived. */
  status: number | undefined;
  text: string;
  /** The gateway ended or reset the connection (rather than the test's deadline). */
  closedByGateway: boolean;
}

/**
 * Talk raw bytes to the gateway: `script` writes (and may wait, drip, half-close); the answer is whatever comes
 * back until the gateway closes the connection or the deadline passes.
 */
function raw(port: number, script: (socket: Socket) => Promise<void> | void, deadlineMs = RAW_EXCHANGE_DEADLINE_MS): Promise<RawAnswer> {
  return new Promise((resolve) => {
    // allowHalfOpen: the test may finish sending (FIN) and still read the answer.
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    let text = '';
    let finished = false;
    const finish = (closedByGateway: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1];
      resolve({ status: status ? Number(status) : undefined, text, closedByGateway });
    };
    const timer = setTimeout(() => finish(false), deadlineMs);
    socket.setEncoding('latin1');
    socket.on('data', (s: string) => (text += s));
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true)); // a reset is the gateway closing too
    socket.once('connect', () => {
      Promise.resolve(script(socket)).catch(() => finish(true));
    });
  });
}

let redis: RedisServer;
let writerClient: ReturnType<typeof createRedis>;
let writer: RedisRouteStore;
let pod: Server;
let podWs: WebSocketServer;
let podPort: number;
/** Close codes the pod's WebSocket server saw, oldest first. */
const podWsCloseCodes: number[] = [];
/** Errors the pod's WebSocket server saw (a corrupt frame, say). */
const podWsErrors: string[] = [];
const handlers = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();

async function publish(slug: string, port: number): Promise<void> {
  const ok = await writer.put({
    slug,
    host: '127.0.0.1',
    port,
    status: 'running',
    generation: await writer.nextGeneration(),
    defaultPort: 3000,
    updatedAt: new Date().toISOString(),
    access: PUBLIC,
  });
  if (!ok) throw new Error(`route ${slug} not written`);
}

async function startChild(env: Record<string, string> = {}): Promise<ChildGateway> {
  const gw = await spawnGateway({ REDIS_URL: redis.url, ACCESS_CONCEAL_PODS: 'false', ...env });
  await waitFor(async () => (await get(gw.url, 'pod-proc.localhost')).status === 200, {
    timeoutMs: ROUTE_READY_TIMEOUT_MS,
    what: 'the pod route in the gateway',
  });
  return gw;
}

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
  podWs = new WebSocketServer({ server: pod });
  podWs.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('close', (code) => podWsCloseCodes.push(code));
    ws.on('error', (err) => podWsErrors.push(err.message));
  });
  await new Promise<void>((r) => pod.listen(0, '127.0.0.1', () => r()));
  podPort = (pod.address() as AddressInfo).port;
  await publish('proc', podPort);
});
afterAll(async () => {
  for (const c of podWs?.clients ?? []) c.terminate();
  podWs?.close();
  pod?.closeAllConnections();
  await new Promise<void>((r) => (pod ? pod.close(() => r()) : r()));
  writerClient?.disconnect();
  await redis?.stop();
});

describe('SIGTERM', () => {
  let gw: ChildGateway;
  afterAll(async () => {
    await gw?.kill();
  });

  it('finishes in-flight requests, closes WebSockets with 1001, refuses new connections and exits 0', { timeout: 60_000 }, async () => {
    gw = await startChild({ SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS) });

    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let podHasSlowRequest = false;
    handlers.set('/slow', (req, res) => {
      req.resume();
      podHasSlowRequest = true;
      void released.then(() => res.end('slow but complete'));
    });
    const slow = get(gw.url, 'pod-proc.localhost', '/slow');
    await waitFor(() => podHasSlowRequest, { what: 'the slow request to reach the pod' });

    const ws = new WebSocket(gw.url.replace('http:', 'ws:'), { headers: { host: 'pod-proc.localhost' } });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const wsClosed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.on('error', () => {});

    const signalledAt = Date.now();
    gw.child.kill('SIGTERM');
    await waitFor(() => gw.logs.some((l) => l.msg === 'gateway shutting down'), { what: 'the gateway to start shutting down' });

    expect(await wsClosed).toBe(GOING_AWAY);
    await waitFor(() => podWsCloseCodes.length > 0, { what: 'the pod to see its WebSocket closed' });
    expect(podWsCloseCodes).toEqual([GOING_AWAY]); // both ends are told the gateway is going away
    // The listener is closed: a new connection is refused (not accepted and left hanging).
    await waitFor(
      () =>
        new Promise<boolean>((resolve) => {
          const s = connect({ host: '127.0.0.1', port: gw.httpPort });
          s.once('connect', () => {
            s.destroy();
            resolve(false);
          });
          s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
        }),
      { what: 'new connections to be refused' },
    );
    expect(gw.child.exitCode).toBeNull(); // still draining the slow request

    release();
    expect(await slow).toEqual({ status: 200, body: 'slow but complete' });
    const exit = await gw.exited;
    const tookMs = Date.now() - signalledAt;
    console.log(`SIGTERM to exit: ${tookMs} ms (SHUTDOWN_TIMEOUT_MS ${SHUTDOWN_TIMEOUT_MS})`);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(tookMs).toBeLessThan(SHUTDOWN_TIMEOUT_MS + EXIT_SLACK_MS);
    expect(gw.logs.filter((l) => l.level >= 50)).toEqual([]);
    expect(gw.stderr()).toBe('');
  });
});

describe('SIGTERM with WebSocket traffic in flight', () => {
  let gw: ChildGateway;
  afterAll(async () => {
    await gw?.kill();
  });

  it('ends each busy tunnel on a frame boundary: both ends get a clean 1001, no corrupt frame', { timeout: 60_000 }, async () => {
    gw = await startChild({ SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS) });
    podWsCloseCodes.length = 0;
    podWsErrors.length = 0;
    const ws = new WebSocket(gw.url.replace('http:', 'ws:'), { headers: { host: 'pod-proc.localhost' } });
    const clientErrors: string[] = [];
    ws.on('error', (err) => clientErrors.push(err.message));
    await new Promise<void>((resolve) => ws.once('open', () => resolve()));
    // 8 MiB messages both ways (the pod echoes each): a SIGTERM almost surely lands inside a frame in both directions.
    const message = Buffer.alloc(8 * 1024 * 1024, 1);
    let echoes = 0;
    ws.on('message', () => {
      echoes++;
      if (ws.readyState === WebSocket.OPEN) ws.send(message);
    });
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.send(message);
    ws.send(message);
    await waitFor(() => echoes >= 2, { what: 'traffic through the tunnel', timeoutMs: 30_000 });

    gw.child.kill('SIGTERM');
    expect(await closed).toBe(GOING_AWAY);
    await waitFor(() => podWsCloseCodes.length > 0, { what: 'the pod to see its WebSocket closed' });
    expect(podWsCloseCodes).toEqual([GOING_AWAY]);
    expect(clientErrors).toEqual([]);
    expect(podWsErrors).toEqual([]);
    expect(await gw.exited).toEqual({ code: 0, signal: null });
  });
});

describe('bad configuration', () => {
  it.each([
    ['HTTP_PORT', { HTTP_PORT: 'abc' }],
    ['HTTP_PORT', { HTTP_PORT: '70000' }],
    ['BASE_DOMAINS', { BASE_DOMAINS: ',,' }],
    ['BASE_DOMAINS', { BASE_DOMAINS: 'exa mple.com' }],
    ['REDIS_URL', { REDIS_URL: 'http://x' }],
    ['SHUTDOWN_TIMEOUT_MS', { SHUTDOWN_TIMEOUT_MS: '-5' }],
    ['UPSTREAM_CONNECT_TIMEOUT_MS', { UPSTREAM_CONNECT_TIMEOUT_MS: 'soon' }],
    ['ACCESS_LOG', { ACCESS_LOG: 'maybe' }],
    ['LOG_LEVEL', { LOG_LEVEL: 'verbose' }],
    ['HTTP_HOST', { HTTP_HOST: 'exa mple' }],
    ['ADMIN_HOST', { ADMIN_HOST: '' }],
    // Well-formed but on no interface of this machine (a documentation address): listen() itself fails.
    ['HTTP_HOST', { HTTP_HOST: '192.0.2.1' }],
    ['ADMIN_HOST', { ADMIN_HOST: '192.0.2.1' }],
  ])('stops with a message naming %s (%o)', async (variable, env) => {
    expectConfigExit(await runGatewayToExit({ REDIS_URL: redis.url, ...env }), variable);
  });

  it('stops with a message naming LOG_LEVEL when CONFIG_FILE holds a bad one', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'podgate-process-')), 'gateway.json');
    writeFileSync(file, JSON.stringify({ LOG_LEVEL: 'verbose' }));
    expectConfigExit(await runGatewayToExit({ REDIS_URL: redis.url, CONFIG_FILE: file }), 'LOG_LEVEL');
  });

  it.each(['ADMIN_PORT', 'HTTPS_PORT'])('stops with a message naming %s when that port is taken', async (variable) => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    try {
      const port = String((taken.address() as AddressInfo).port);
      // HTTPS: no CA is ever asked (no on-demand issuance; nothing to renew in this fresh Redis).
      const tls: Record<string, string> = variable === 'HTTPS_PORT' ? { HTTPS_HOST: '127.0.0.1', TLS_ON_DEMAND: 'false', ACME_DIRECTORY_URL: 'https://127.0.0.1:9/dir' } : {};
      expectConfigExit(await runGatewayToExit({ REDIS_URL: redis.url, ...tls, [variable]: port }), variable);
    } finally {
      await new Promise<void>((r) => taken.close(() => r()));
    }
  });
});

function expectConfigExit(result: { code: number | null; stderr: string }, variable: string): void {
  expect(result.code).not.toBe(0);
  expect(result.code).not.toBeNull();
  expect(result.stderr).toContain(`podgate: invalid configuration: ${variable}: `);
  expect(result.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
}

describe('logging', () => {
  let gw: ChildGateway;
  afterAll(async () => {
    await gw?.kill();
  });

  it("takes LOG_LEVEL from CONFIG_FILE; without access lines a failed request is one debug line", async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'podgate-process-')), 'gateway.json');
    writeFileSync(file, JSON.stringify({ LOG_LEVEL: 'debug', ACCESS_LOG: false }));
    gw = await startChild({ CONFIG_FILE: file });
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', () => r()));
    const deadPort = (dead.address() as AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    await publish('deadproc', deadPort);
    await waitFor(async () => (await get(gw.url, 'pod-deadproc.localhost')).status === 502, {
      timeoutMs: ROUTE_READY_TIMEOUT_MS,
      what: 'the dead pod route in the gateway',
    });
    const about = () => gw.logs.filter((l) => l.host === 'pod-deadproc.localhost');
    // Each 502 answer above (the wait may have taken several) has its one line, all of them at debug.
    await waitFor(() => about().length > 0, { what: 'the debug line' });
    for (const line of about()) {
      expect(line).toMatchObject({ level: 20, msg: 'upstream error', status: 502, err: 'upstream_unreachable' });
    }
  });
});

describe('malformed and hostile requests', () => {
  let gw: ChildGateway;
  beforeAll(async () => {
    gw = await startChild({ HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS), ACCESS_LOG: 'false' });
  });
  afterAll(async () => {
    await gw?.kill();
  });

  const send = (bytes: string | Buffer) => (socket: Socket) => {
    socket.write(bytes);
  };

  it.each<[string, string | Buffer, number[]]>([
    ['garbage bytes', Buffer.concat([Buffer.from([0, 1, 2, 0xff, 0xfe, 0x1b]), Buffer.from('\r\n\r\n')]), [400]],
    ['an invalid header name', 'GET / HTTP/1.1\r\nHost: pod-proc.localhost\r\nBad Header: x\r\n\r\n', [400]],
    ['a 64 KiB header', `GET / HTTP/1.1\r\nHost: pod-proc.localhost\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`, [431]],
    ['a 64 KiB URL', `GET /${'a'.repeat(64 * 1024)} HTTP/1.1\r\nHost: pod-proc.localhost\r\n\r\n`, [431, 414]],
    ['no Host header', 'GET / HTTP/1.1\r\n\r\n', [400]],
    ['control characters in Host', 'GET / HTTP/1.1\r\nHost: pod-pr\x01oc.localhost\r\n\r\n', [400]],
    ['DEL in Host', 'GET / HTTP/1.1\r\nHost: pod-pr\x7foc.localhost\r\n\r\n', [400]],
    ['a space in Host', 'GET / HTTP/1.1\r\nHost: pod-pr oc.localhost\r\nConnection: close\r\n\r\n', [400]],
    ['two Host headers (RFC 9112 3.2)', 'GET / HTTP/1.1\r\nHost: pod-proc.localhost\r\nHost: pod-other.localhost\r\nConnection: close\r\n\r\n', [400]],
    ['an absurd Content-Length', 'POST / HTTP/1.1\r\nHost: pod-proc.localhost\r\nContent-Length: 99999999999999999999999999\r\n\r\n', [400]],
    ['a negative Content-Length', 'POST / HTTP/1.1\r\nHost: pod-proc.localhost\r\nContent-Length: -1\r\n\r\n', [400]],
    ['Content-Length and Transfer-Encoding together', 'POST / HTTP/1.1\r\nHost: pod-proc.localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', [400]],
    ['an invalid chunk size', 'POST / HTTP/1.1\r\nHost: pod-proc.localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n', [400, 502]],
    ['a request line with no path', 'GET HTTP/1.1\r\nHost: pod-proc.localhost\r\n\r\n', [400]],
    ['HTTP/0.9', 'GET /\r\n\r\n', [400]],
    ['an unknown HTTP version', 'GET / HTTP/7.5\r\nHost: pod-proc.localhost\r\n\r\n', [400, 505]],
    ['a method with invalid characters', 'GE@T / HTTP/1.1\r\nHost: pod-proc.localhost\r\n\r\n', [400]],
    ['a NUL in the path', 'GET /a\x00b HTTP/1.1\r\nHost: pod-proc.localhost\r\n\r\n', [400]],
    ['a bare LF line ending', 'GET / HTTP/1.1\nHost: pod-proc.localhost\n\n', [400]],
    ['obsolete header folding', 'GET / HTTP/1.1\r\nHost: pod-proc.localhost\r\nX-Folded: a\r\n b\r\n\r\n', [400]],
  ])('answers %s with a clear status and closes', async (_name, bytes, statuses) => {
    const answer = await raw(gw.httpPort, send(bytes));
    expect(answer.closedByGateway).toBe(true);
    expect(statuses).toContain(answer.status);
  });

  it('answers a WebSocket upgrade without a key the way the pod does, without breaking the tunnel bookkeeping', async () => {
    const answer = await raw(gw.httpPort, send('GET / HTTP/1.1\r\nHost: pod-proc.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'));
    expect(answer.closedByGateway).toBe(true);
    expect(answer.status).toBe(400);
  });

  it('drops a client that goes away in the middle of a huge upload', async () => {
    let podSawIt = false;
    handlers.set('/sink', (req, res) => {
      podSawIt = true;
      req.resume();
      req.on('end', () => res.end('done'));
    });
    const answer = await raw(gw.httpPort, async (socket) => {
      socket.write('POST /sink HTTP/1.1\r\nHost: pod-proc.localhost\r\nContent-Length: 1000000000000\r\n\r\n');
      socket.write(Buffer.alloc(64 * 1024, 'x'));
      await waitFor(() => podSawIt, { what: 'the pod to see the upload' });
      socket.destroy();
    });
    expect(answer.status).toBeUndefined();
  });

  it('closes a half-closed connection after a complete request', async () => {
    // Node's HTTP server (httpAllowHalfOpen off) treats the client's FIN as an abort: it may or may not have
    // answered by then. What matters here: the connection is closed, not left half-open, and nothing breaks.
    const answer = await raw(gw.httpPort, (socket) => {
      socket.end('GET / HTTP/1.1\r\nHost: pod-proc.localhost\r\n\r\n');
    });
    expect(answer.closedByGateway).toBe(true);
    expect([undefined, 200]).toContain(answer.status);
  });

  it('closes a half-closed connection whose request is incomplete', async () => {
    const answer = await raw(gw.httpPort, (socket) => {
      socket.end('GET / HTTP/1.1\r\nHost: pod-proc.lo');
    });
    expect(answer.closedByGateway).toBe(true);
    expect([undefined, 400]).toContain(answer.status);
  });

  it('closes a connection that never sends anything, after the headers timeout', async () => {
    const answer = await raw(gw.httpPort, () => {}, SLOWLORIS_GIVE_UP_MS);
    expect(answer.closedByGateway).toBe(true);
    expect([undefined, 408]).toContain(answer.status);
  });

  it('cuts a slowloris client that drips header lines, after the headers timeout (408 or close)', { timeout: 30_000 }, async () => {
    const started = Date.now();
    let dripping = true;
    const answer = await raw(
      gw.httpPort,
      async (socket) => {
        socket.write('GET / HTTP/1.1\r\nHost: pod-proc.localhost\r\n');
        for (let i = 0; dripping && Date.now() - started < SLOWLORIS_GIVE_UP_MS; i++) {
          await sleep(DRIP_INTERVAL_MS);
          if (socket.destroyed) return;
          socket.write(`X-Drip-${i}: ${i}\r\n`);
        }
      },
      SLOWLORIS_GIVE_UP_MS + RAW_EXCHANGE_DEADLINE_MS,
    );
    dripping = false;
    console.log(`slowloris cut after ${Date.now() - started} ms (HEADERS_TIMEOUT_MS ${HEADERS_TIMEOUT_MS})`);
    expect(answer.closedByGateway).toBe(true);
    expect([undefined, 408]).toContain(answer.status);
  });

  it('survives WebSocket clients that reset their connection with echoes in flight (a closed tab, a NAT drop)', async () => {
    for (let round = 0; round < 5; round++) {
      const ws = new WebSocket(gw.url.replace('http:', 'ws:'), { headers: { host: 'pod-proc.localhost' } });
      await new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      for (let i = 0; i < 200; i++) ws.send('x'.repeat(1000));
      await new Promise<void>((resolve) => ws.once('message', () => resolve()));
      (ws as unknown as { _socket: Socket })._socket.resetAndDestroy();
    }
    await waitFor(async () => (await get(gw.url, 'pod-proc.localhost')).status === 200, { what: 'the gateway still serving' });
    expect(gw.child.exitCode).toBeNull();
  });

  it('is still alive and serving afterwards, with nothing on stderr and no error logged', async () => {
    expect(await get(gw.url, 'pod-proc.localhost')).toEqual({ status: 200, body: 'ok' });
    expect(gw.child.exitCode).toBeNull();
    expect(() => process.kill(gw.pid, 0)).not.toThrow();
    expect(gw.stderr()).toBe('');
    expect(gw.otherStdout).toEqual([]);
    expect(gw.logs.filter((l) => l.level >= 50)).toEqual([]);
  });
});
