// A/B of the gateway's HTTP path between two checkouts (say main's HEAD and a branch), the way `npm run bench`
// measures it: each gateway pinned to core 1, wrk and an nginx `return 200` upstream on core 0, interleaved rounds,
// req/s and requests per CPU-second of the gateway process, with ACCESS_LOG=false and =true; then WebSocket echo
// messages/s through each gateway and directly (32 clients, 64-byte messages, as bench/run.ts).
// Usage: node bench/ab.ts <checkout A> <checkout B>   (BENCH_SECONDS, BENCH_ROUNDS as for bench/run.ts;
// BENCH_PROFILE=1 also profiles B's gateway, access log off and on, with node --cpu-prof into bench/profiles/;
// AB_NODE_FLAGS_A, AB_NODE_FLAGS_B: space-separated Node flags for that side's gateways, so one checkout given twice
// compares a V8 setting)
import { mkdirSync, mkdtempSync, openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRedis, waitReady } from '../shared/redis.ts';
import { RedisRouteStore } from '../shared/redis-route-store.ts';
import { startRedis, type RedisServer } from '../test/support/redis-server.ts';
import { waitFor } from '../test/support/wait.ts';
import { BENCH_BODY, proxyConfig, startNginx, upstreamConfig } from './nginx.ts';
import { Children, freePort, httpGet, pinned, treeCpuSeconds, waitServing } from './processes.ts';
import { percentile } from './stats.ts';
import { runWrk } from './wrk.ts';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const PROFILE = process.env.BENCH_PROFILE === '1';
const CONNECTIONS = 50;
const HOST = 'localhost-3000.pod-bench.localhost';
const WS_HOST = 'pod-benchws.localhost';
const PREFIX = `podgate-ab-${process.pid}:`;
const LOAD = [0];
const PROXY = [1];

const [argA, argB] = process.argv.slice(2);
if (!argA || !argB || !Number.isFinite(SECONDS) || !Number.isFinite(ROUNDS)) {
  process.stderr.write('usage: node bench/ab.ts <checkout A> <checkout B>\n');
  process.exit(2);
}
const rootA = resolve(argA);
const rootB = resolve(argB);
const nodeFlags = (side: 'A' | 'B'): string[] => (process.env[`AB_NODE_FLAGS_${side}`] ?? '').split(/\s+/).filter((f) => f !== '');

const children = new Children();
const tmp = mkdtempSync(join(tmpdir(), 'podgate-ab-'));
let redis: RedisServer | undefined;

interface Target {
  name: string;
  port: number;
  pid: number;
  rps: number[];
  p99: number[];
  requests: number;
  cpu: number;
}

async function gateway(name: string, root: string, redisUrl: string, env: Record<string, string>, flags: string[] = []): Promise<Target & { child: ReturnType<Children['start']> }> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const out = openSync(join(tmp, `${name.replace(/\W+/g, '-')}.log`), 'a');
  const child = children.start(name, pinned(PROXY, [process.execPath, ...flags, join(root, 'gateway/main.ts')]), {
    cwd: root,
    stdio: ['ignore', out, 'pipe'],
    env: { PATH: process.env.PATH ?? '', HTTP_PORT: String(port), HTTP_HOST: '127.0.0.1', ADMIN_PORT: String(adminPort), REDIS_URL: redisUrl, REDIS_PREFIX: PREFIX, ACCESS_LOG: 'false', ...env },
  });
  closeSync(out);
  await waitFor(async () => (await httpGet(adminPort, 'localhost', '/readyz'))?.status === 200, { timeoutMs: 30_000, intervalMs: 100, what: `${name} ready` });
  await waitServing(port, HOST, name, BENCH_BODY);
  return { name, port, pid: child.pid!, rps: [], p99: [], requests: 0, cpu: 0, child };
}

async function main(): Promise<void> {
  redis = await startRedis();
  const client = createRedis(redis.url);
  await waitReady(client);
  const writer = new RedisRouteStore(client, { prefix: PREFIX });
  const upstreamPort = await freePort();
  const upDir = join(tmp, 'upstream');
  startNginx(children, 'upstream', upDir, upstreamConfig(upDir, [upstreamPort]), LOAD);
  await waitServing(upstreamPort, HOST, 'upstream', BENCH_BODY);
  const ok = await writer.put({
    slug: 'bench', host: '127.0.0.1', port: upstreamPort, status: 'running', defaultPort: 3000,
    access: { default: 'public', ports: {} }, generation: await writer.nextGeneration(), updatedAt: new Date().toISOString(),
  });
  const wsPort = await freePort();
  children.start('ws echo', pinned(LOAD, [process.execPath, join(ROOT, 'bench/ws-echo-server.ts'), String(wsPort)]));
  await waitServing(wsPort, WS_HOST, 'ws echo');
  const wsOk = await writer.put({
    slug: 'benchws', host: '127.0.0.1', port: wsPort, status: 'running', defaultPort: 3000,
    access: { default: 'public', ports: {} }, generation: await writer.nextGeneration(), updatedAt: new Date().toISOString(),
  });
  if (!ok || !wsOk) throw new Error('routes not written');

  const nginxPort = await freePort();
  const nginxDir = join(tmp, 'nginx');
  const nginx = startNginx(children, 'nginx', nginxDir, proxyConfig(nginxDir, { listenPort: nginxPort, upstreamPort, workers: 1, accessLog: false }), PROXY);
  await waitServing(nginxPort, HOST, 'nginx', BENCH_BODY);
  const targets: Target[] = [{ name: 'nginx', port: nginxPort, pid: nginx.pid!, rps: [], p99: [], requests: 0, cpu: 0 }];
  for (const [label, root] of [['A', rootA], ['B', rootB]] as const) {
    targets.push(await gateway(`${label}`, root, redis.url, {}, nodeFlags(label)));
    targets.push(await gateway(`${label} + ACCESS_LOG`, root, redis.url, { ACCESS_LOG: 'true' }, nodeFlags(label)));
  }
  const wrk = (port: number, seconds: number) => runWrk(children, { url: `http://127.0.0.1:${port}/`, host: HOST, connections: CONNECTIONS, seconds, cores: LOAD });
  for (const t of targets) await wrk(t.port, 1);
  for (let round = 1; round <= ROUNDS; round++) {
    const line: string[] = [];
    for (const t of targets) {
      const before = treeCpuSeconds(t.pid);
      const r = await wrk(t.port, SECONDS);
      const cpu = treeCpuSeconds(t.pid) - before;
      t.rps.push(r.requestsPerSecond);
      t.p99.push(r.p99Ms);
      t.requests += r.requests;
      t.cpu += cpu;
      line.push(`${t.name} ${Math.round(r.requestsPerSecond)} (${Math.round(r.requests / cpu)}/CPU-s)`);
    }
    process.stdout.write(`round ${round}: ${line.join(', ')}\n`);
  }
  const nginxPerCpu = targets[0]!.requests / targets[0]!.cpu;
  process.stdout.write(`\nA = ${rootA}\nB = ${rootB}\n\n| case | req/s (median) | req/CPU-s | × nginx per CPU-s | p99 ms (median) |\n| --- | ---: | ---: | ---: | ---: |\n`);
  for (const t of targets) {
    const perCpu = t.requests / t.cpu;
    process.stdout.write(`| ${t.name} | ${Math.round(percentile(t.rps, 50))} | ${Math.round(perCpu)} | ${(perCpu / nginxPerCpu).toFixed(2)} | ${percentile(t.p99, 50).toFixed(2)} |\n`);
  }
  const wsLoad = async (port: number): Promise<number> => {
    const argv = pinned(LOAD, [process.execPath, join(ROOT, 'bench/ws-load.ts'), `ws://127.0.0.1:${port}/`, WS_HOST, '32', String(SECONDS), '64']);
    const child = children.start('ws-load', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d));
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    if (code !== 0) throw new Error(`ws-load exited with ${code}`);
    return (JSON.parse(out.trim()) as { messagesPerSecond: number }).messagesPerSecond;
  };
  const ws: Record<string, number[]> = { direct: [], A: [], B: [] };
  const wsPorts: Record<string, number> = { direct: wsPort, A: targets[1]!.port, B: targets[3]!.port };
  for (let round = 1; round <= ROUNDS; round++) for (const k of Object.keys(ws)) ws[k]!.push(await wsLoad(wsPorts[k]!));
  const wsMedian = (k: string) => Math.round(percentile(ws[k]!, 50));
  process.stdout.write(`\nWebSocket echo msg/s (median of ${ROUNDS}): direct ${wsMedian('direct')}, A ${wsMedian('A')} (${(wsMedian('A') / wsMedian('direct')).toFixed(2)}x), B ${wsMedian('B')} (${(wsMedian('B') / wsMedian('direct')).toFixed(2)}x)\n`);
  if (PROFILE) {
    for (const t of targets.slice(1)) await children.stop((t as Target & { child: ReturnType<Children['start']> }).child);
    const dir = join(ROOT, 'bench/profiles');
    mkdirSync(dir, { recursive: true });
    for (const accessLog of ['false', 'true']) {
      const g = await gateway(`B profiled, ACCESS_LOG=${accessLog}`, rootB, redis.url, { ACCESS_LOG: accessLog }, ['--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=ab-B-access-log-${accessLog}.cpuprofile`]);
      await wrk(g.port, 1);
      await wrk(g.port, SECONDS * 3);
      await children.stop(g.child);
    }
    process.stdout.write(`\nprofiles of B (ACCESS_LOG=false, =true) in ${dir}\n`);
  }
  client.disconnect();
}

main()
  .catch((err) => {
    process.stderr.write(`ab: ${(err as Error).stack}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    await children.stopAll();
    await redis?.stop();
  });
