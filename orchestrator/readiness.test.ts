// Readiness against real HTTP servers on loopback standing in for an in-pod router at its three stages.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { probeOnce, ROUTER_STATUS_HOST, waitReady } from './readiness.ts';

const servers: Server[] = [];

/** A router whose /readyz answers `answer(n)` on its n-th request (from 1); records the Host it was asked with. */
async function router(answer: (n: number) => { status: number; body: string }, hosts: string[] = []): Promise<number> {
  let n = 0;
  const server = createServer((req, res) => {
    hosts.push(`${req.headers.host} ${req.url}`);
    const { status, body } = answer(++n);
    res.writeHead(status, { 'content-type': 'text/plain' }).end(body);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

const alive = async () => true;

describe('probeOnce', () => {
  it('asks the router status host for /readyz and tells down, booting and ready apart', async () => {
    const hosts: string[] = [];
    const booting = await router(() => ({ status: 503, body: 'not ready: terminal\n' }), hosts);
    expect(await probeOnce('127.0.0.1', booting)).toEqual({ state: 'booting', detail: 'not ready: terminal' });
    expect(hosts).toEqual([`${ROUTER_STATUS_HOST} /readyz`]);
    expect(await probeOnce('127.0.0.1', await router(() => ({ status: 200, body: 'ready\n' })))).toEqual({ state: 'ready' });
    expect(await probeOnce('127.0.0.1', await closedPort())).toEqual({ state: 'down' });
  });

  it('counts any answer but 503 as ready: a router of a foreign image without /readyz can only say it answers', async () => {
    expect(await probeOnce('127.0.0.1', await router(() => ({ status: 404, body: 'no such page' })))).toEqual({ state: 'ready' });
  });
});

describe('waitReady', () => {
  it('waits through 503s until the router reports every service ready', async () => {
    let asked = 0;
    const port = await router((n) => {
      asked = n;
      return n < 4 ? { status: 503, body: 'not ready: app\n' } : { status: 200, body: 'ready\n' };
    });
    await waitReady('127.0.0.1', port, { timeoutMs: 10_000, alive });
    expect(asked).toBe(4);
  });

  it('names the service it still waits for when the deadline passes', async () => {
    const port = await router(() => ({ status: 503, body: 'not ready: terminal\n' }));
    await expect(waitReady('127.0.0.1', port, { timeoutMs: 100, alive })).rejects.toThrow(
      "the pod's services were not ready within 100 ms (not ready: terminal)",
    );
  });

  it('says the router never answered when nothing listens', async () => {
    const port = await closedPort();
    await expect(waitReady('127.0.0.1', port, { timeoutMs: 100, alive })).rejects.toThrow(
      `the in-pod router did not answer on 127.0.0.1:${port} within 100 ms`,
    );
  });

  it('stops waiting as soon as the container is gone', async () => {
    const port = await router(() => ({ status: 503, body: 'not ready: app\n' }));
    await expect(waitReady('127.0.0.1', port, { timeoutMs: 60_000, alive: async () => false })).rejects.toThrow(
      'the container exited before it was ready (not ready: app)',
    );
  });
});
