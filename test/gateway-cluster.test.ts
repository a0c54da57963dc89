// GATEWAY_WORKERS: worker processes share the HTTP port, the primary serves aggregated metrics and readiness and
// restarts a worker that dies. Real processes, real Redis, a real upstream.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CONFIG } from '../shared/errors.ts';
import { createRedis, waitReady } from '../shared/redis.ts';
import { RedisRouteStore } from '../shared/redis-route-store.ts';
import { startUpstream, type Upstream } from './support/gateway-harness.ts';
import { startRedis, type RedisServer } from './support/redis-server.ts';
import { waitFor } from './support/wait.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Line {
  msg: string;
  pid: number;
  httpPort?: number;
  adminPort?: number;
}

let redis: RedisServer;
let upstream: Upstream;
let child: ChildProcess;
const lines: Line[] = [];

beforeAll(async () => {
  redis = await startRedis();
  upstream = await startUpstream((_req, res) => res.end(String(process.pid)));
  const client = createRedis(redis.url);
  await waitReady(client);
  const store = new RedisRouteStore(client);
  await store.put({ slug: 'app', host: '127.0.0.1', port: upstream.port, status: 'running', generation: 1, defaultPort: 3000, updatedAt: new Date().toISOString(), access: { default: 'public', ports: {} } });
  client.disconnect();
  child = spawn(process.execPath, ['gateway/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, GATEWAY_WORKERS: '2', REDIS_URL: redis.url, HTTP_PORT: '0', HTTP_HOST: '127.0.0.1', ADMIN_PORT: '0', ACCESS_LOG: 'false' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let pending = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (s: string) => {
    const parts = (pending + s).split('\n');
    pending = parts.pop()!;
    for (const p of parts) if (p.startsWith('{')) lines.push(JSON.parse(p));
  });
  await waitFor(() => lines.filter((l) => l.msg === 'gateway listening').length >= 2 && lines.some((l) => l.adminPort), {
    what: 'primary and two workers',
    timeoutMs: 60_000,
  });
});

afterAll(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGKILL');
  }
  await upstream?.close();
  await redis?.stop();
});

const httpPort = () => lines.find((l) => l.msg === 'gateway listening')!.httpPort!;
const adminUrl = () => `http://127.0.0.1:${lines.find((l) => l.msg === 'gateway primary started')!.adminPort}`;
/** A request on a fresh connection (fetch cannot set Host, and a pooled connection may belong to a killed worker). */
const get = () =>
  new Promise<{ status: number; text: () => Promise<string> }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: httpPort(), path: '/', headers: { host: 'pod-app.localhost' }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: async () => body }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
    req.end();
  });

describe('gateway workers', () => {
  it('both workers serve the same port', async () => {
    const workers = lines.filter((l) => l.msg === 'gateway listening');
    // On failure, the processes' own log lines say what happened (a worker that died at start, say).
    const seen = JSON.stringify(lines);
    expect(new Set(workers.map((w) => w.pid)).size, seen).toBe(2);
    expect(new Set(workers.map((w) => w.httpPort)).size, seen).toBe(1);
    for (let i = 0; i < 20; i++) expect((await get()).status, seen).toBe(200);
  });

  it('the primary is ready when every worker is, and sums their metrics', async () => {
    await waitFor(async () => (await fetch(`${adminUrl()}/readyz`)).status === 200, { what: 'readiness' });
    const before = await (await fetch(`${adminUrl()}/metrics`)).text();
    const count = (text: string) => Number(/podgate_http_requests_total\{status="200",pod="app"\} (\d+)/.exec(text)?.[1] ?? 0);
    for (let i = 0; i < 10; i++) await (await get()).text();
    const after = await (await fetch(`${adminUrl()}/metrics`)).text();
    expect(count(after) - count(before)).toBe(10);
    expect(after).toMatch(/podgate_route_table_size 1\b/); // the max over workers, not the sum
  });

  it('restarts a worker that dies; the other one serves meanwhile', async () => {
    const victim = lines.filter((l) => l.msg === 'gateway listening')[0]!.pid;
    process.kill(victim, 'SIGKILL');
    // Once the primary has noticed, it hands new connections only to the living worker.
    await waitFor(() => lines.some((l) => l.msg.startsWith('gateway worker died')), { what: 'the primary noticing' });
    for (let i = 0; i < 10; i++) expect((await get()).status).toBe(200);
    await waitFor(() => lines.filter((l) => l.msg === 'gateway listening').length >= 3, { what: 'a new worker', timeoutMs: 30_000 });
    await waitFor(async () => (await fetch(`${adminUrl()}/readyz`)).status === 200, { what: 'ready again', timeoutMs: 30_000 });
  });

  it('SIGTERM stops the primary and every worker', async () => {
    const pids = [...new Set(lines.map((l) => l.pid))];
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    for (const pid of pids) {
      await waitFor(() => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      }, { what: `process ${pid} gone` });
    }
  });
});

describe('gateway workers on a configuration that cannot work', () => {
  /** Run a 2-worker gateway whose `variable` names a port something else holds; its exit code, stderr and stdout. */
  async function runOnTakenPort(variable: 'HTTP_PORT' | 'ADMIN_PORT'): Promise<{ code: number | null; stderr: string; stdout: string }> {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const taken = String((holder.address() as AddressInfo).port);
    try {
      const gw = spawn(process.execPath, ['gateway/main.ts'], {
        cwd: ROOT,
        env: { PATH: process.env.PATH, GATEWAY_WORKERS: '2', REDIS_URL: redis.url, HTTP_HOST: '127.0.0.1', HTTP_PORT: '0', ADMIN_PORT: '0', [variable]: taken },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      gw.stdout!.on('data', (d: Buffer) => (stdout += d));
      gw.stderr!.on('data', (d: Buffer) => (stderr += d));
      const code = await new Promise<number | null>((resolve) => gw.once('exit', resolve));
      return { code, stderr, stdout };
    } finally {
      holder.close();
    }
  }

  it('stops with the configuration exit code when the workers cannot listen, instead of restarting them forever', async () => {
    const { code, stderr, stdout } = await runOnTakenPort('HTTP_PORT');
    expect(code).toBe(EXIT_CONFIG);
    expect(stderr).toContain('podgate: invalid configuration: HTTP_PORT: cannot listen on 127.0.0.1:');
    expect(stdout).not.toContain('restarting it');
  });

  it('stops with the configuration exit code, naming ADMIN_PORT, when the primary cannot serve the admin listener', async () => {
    const { code, stderr } = await runOnTakenPort('ADMIN_PORT');
    expect(code).toBe(EXIT_CONFIG);
    expect(stderr).toContain('podgate: invalid configuration: ADMIN_PORT: cannot listen on 127.0.0.1:');
    expect(stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});
