// The access log is written through an asynchronous, buffered destination: a gateway process that is stopped with
// SIGTERM right after answering must still have written one access line per request it answered. And when whatever
// reads the gateway's standard output goes away (a log collector that dies, `| head`), the gateway goes on serving
// and still stops on SIGTERM: its lines are dropped, never retried forever.
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis, waitReady } from '../shared/redis.ts';
import { RedisRouteStore } from '../shared/redis-route-store.ts';
import { spawnGateway, type ChildGateway } from './support/child-gateway.ts';
import { startRedis, type RedisServer } from './support/redis-server.ts';
import { waitFor } from './support/wait.ts';

const REQUESTS = 2000;
const CONCURRENCY = 20;
const HOST = 'pod-logged.localhost';

let redis: RedisServer;
let writerClient: ReturnType<typeof createRedis>;
let pod: Server;
let gw: ChildGateway | undefined;

function get(url: string, path: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { headers: { host: HOST }, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  redis = await startRedis();
  writerClient = createRedis(redis.url);
  await waitReady(writerClient);
  pod = createServer((req, res) => {
    req.resume();
    res.end('ok');
  });
  await new Promise<void>((r) => pod.listen(0, '127.0.0.1', () => r()));
  const writer = new RedisRouteStore(writerClient);
  const written = await writer.put({
    slug: 'logged',
    host: '127.0.0.1',
    port: (pod.address() as AddressInfo).port,
    status: 'running',
    generation: await writer.nextGeneration(),
    defaultPort: 3000,
    updatedAt: new Date().toISOString(),
    access: { default: 'public', ports: {} },
  });
  if (!written) throw new Error('route not written');
});
afterAll(async () => {
  await gw?.kill();
  pod?.closeAllConnections();
  await new Promise<void>((r) => (pod ? pod.close(() => r()) : r()));
  writerClient?.disconnect();
  await redis?.stop();
});

describe('access log on SIGTERM', () => {
  it('has one line per answered request once the process has exited', { timeout: 90_000 }, async () => {
    gw = await spawnGateway({ REDIS_URL: redis.url, ACCESS_LOG: 'true', ACCESS_CONCEAL_PODS: 'false' });
    const stdioClosed = new Promise<void>((r) => gw!.child.once('close', () => r()));
    const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    await waitFor(async () => (await get(gw!.url, '/ready', agent)) === 200, { timeoutMs: 30_000, what: 'the route in the gateway' });

    let next = 0;
    const statuses: number[] = [];
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < REQUESTS) statuses.push(await get(gw!.url, `/n/${next++}`, agent));
      }),
    );
    agent.destroy();
    expect(statuses.filter((s) => s === 200)).toHaveLength(REQUESTS);
    // Signalled at once: lines still buffered in the process must reach stdout before it exits.
    gw.child.kill('SIGTERM');
    expect(await gw.exited).toEqual({ code: 0, signal: null });
    await stdioClosed;
    const paths = new Set(gw.logs.filter((l) => l.msg === 'request' && String(l.path).startsWith('/n/')).map((l) => l.path));
    expect(paths.size).toBe(REQUESTS);
    expect(gw.otherStdout).toEqual([]);
  });
});

/** `promise`, or a failure naming `what` after `ms`: a stalled gateway fails the test at once, not at its timeout. */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

describe('standard output that nobody reads any more', () => {
  it.each(['stdout', 'stdout and stderr'])('leaves the gateway serving, and stopping on SIGTERM (%s gone)', { timeout: 90_000 }, async (gone) => {
    await gw?.kill();
    gw = await spawnGateway({ REDIS_URL: redis.url, ACCESS_LOG: 'true', ACCESS_CONCEAL_PODS: 'false' });
    const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    await waitFor(async () => (await get(gw!.url, '/ready', agent)) === 200, { timeoutMs: 30_000, what: 'the route in the gateway' });
    // The reading end of the gateway's stdout pipe closes: every write to it now fails with EPIPE. Its note about
    // that goes to stderr, which may be gone too.
    gw.child.stdout!.destroy();
    if (gone.includes('stderr')) gw.child.stderr!.destroy();
    const statuses: number[] = [];
    // Spread over more than one flush interval (100 ms), so buffered lines are written, and fail, in between.
    for (let round = 0; round < 5; round++) {
      const answers = Promise.all(Array.from({ length: 40 }, (_, i) => get(gw!.url, `/after/${round}/${i}`, agent)));
      statuses.push(...(await within(10_000, `round ${round} of requests after stdout closed`, answers)));
      await new Promise((r) => setTimeout(r, 150));
    }
    agent.destroy();
    expect(statuses.filter((s) => s === 200)).toHaveLength(200);
    gw.child.kill('SIGTERM');
    expect(await within(15_000, 'the gateway exiting on SIGTERM', gw.exited)).toEqual({ code: 0, signal: null });
    if (gone === 'stdout') expect(gw.stderr()).toContain('standard output cannot be written (EPIPE): its log lines are dropped from now on');
  });
});
