// `npm run bench`: the gateway side by side with nginx on the same small keep-alive response, plus WebSocket echo
// throughput and route-change latency. Everything runs on 127.0.0.1 and is started and stopped here.
//
// Placement on a 2-core machine: the process under test (nginx or the gateway) is pinned to core 1; wrk, the
// upstream and the WebSocket load are pinned to core 0. The multi-worker cases are unpinned (they may use both
// cores, sharing core 0 with the load generator, the same for nginx and the gateway).
//
// Upstream: nginx returning a fixed body (`return 200`), not a Node server. It is the fastest server available
// here, so neither proxy is held back by its upstream; a Node upstream sharing core 0 with wrk would cap nginx's
// throughput well below what nginx can proxy and flatter the gateway's ratio.
//
// Environment: BENCH_SECONDS (measured seconds per case, default 8), BENCH_PROFILE=1 (also run the 1-worker gateway
// under `node --cpu-prof`, profile written to bench/profiles/).
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { createRedis, waitReady } from '../shared/redis.ts';
import { RedisRouteStore } from '../shared/redis-route-store.ts';
import type { Route } from '../shared/route.ts';
import { startRedis, type RedisServer } from '../test/support/redis-server.ts';
import { BENCH_BODY, proxyConfig, startNginx, upstreamConfig } from './nginx.ts';
import { Children, describeCores, freePort, httpGet, pinned, treeCpuSeconds, waitServing, type CoreSet } from './processes.ts';
import { describeMachine, httpTable, wsTable, type HttpCaseResult, type WsCaseResult } from './report.ts';
import { measureRouteLatency, type RouteLatencyResult } from './route-latency.ts';
import { ratio } from './stats.ts';
import { runWrk, type WrkResult } from './wrk.ts';
import { waitFor } from '../test/support/wait.ts';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const SECONDS = boundedNumber('BENCH_SECONDS', 8, 1, 60);
const PROFILE = process.env.BENCH_PROFILE === '1';
/** Short warm-up before each measured run: Node's JIT and both connection pools settle. */
const WARMUP_SECONDS = 2;
/** Concurrent keep-alive connections from wrk (one thread: it shares core 0 with the upstream). */
const CONNECTIONS = 50;
const WS_CLIENTS = 32;
const WS_MESSAGE_BYTES = 64;
const WS_SECONDS = Math.min(SECONDS, 6);
const ROUTE_CHANGES = 200;
const MULTI_WORKERS = 2;
const SLUG = 'bench';
const WS_SLUG = 'benchws';
const HOST = `localhost-3000.pod-${SLUG}.localhost`;
const WS_HOST = `localhost-3000.pod-${WS_SLUG}.localhost`;
const REDIS_PREFIX = `podgate-bench-${process.pid}:`;

function boundedNumber(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) {
    process.stderr.write(`bench: ${name} must be a number from ${min} to ${max} (got ${JSON.stringify(raw)})\n`);
    process.exit(2);
  }
  return n;
}

interface Layout {
  load: CoreSet;
  proxy: CoreSet;
  note: string;
}

function layout(): Layout {
  const hasTaskset = spawnSync('taskset', ['--version']).status === 0;
  if (availableParallelism() >= 2 && hasTaskset) {
    return { load: [0], proxy: [1], note: 'proxy under test pinned to core 1; wrk, upstream and WebSocket load pinned to core 0' };
  }
  return { load: 'any', proxy: 'any', note: 'NOT pinned (needs taskset and 2 cores): figures mix the load generator with the proxy' };
}

const children = new Children();
/** Started by test/support (not a Children entry), so the signal handler kills it separately. */
let redis: RedisServer | undefined;
const tmp = mkdtempSync(join(tmpdir(), 'podgate-bench-'));
const L = layout();
const say = (line: string) => process.stdout.write(`${line}\n`);

interface GatewayRun {
  port: number;
  child: ChildProcess;
}

/** `node gateway/main.ts` as a child, reading routes from the bench's Redis; resolves once it serves the bench route. */
async function startGateway(redisUrl: string, env: Record<string, string>, cores: CoreSet, nodeFlags: string[] = []): Promise<GatewayRun> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const logFile = join(tmp, `gateway-${port}.log`);
  const out = openSync(logFile, 'a');
  const child = children.start('gateway', pinned(cores, [process.execPath, ...nodeFlags, join(ROOT, 'gateway/main.ts')]), {
    cwd: ROOT,
    stdio: ['ignore', out, 'pipe'],
    // A clean environment: nothing from the caller's shell (TLS_*, CONFIG_FILE...) changes what is measured.
    env: {
      PATH: process.env.PATH ?? '',
      HTTP_PORT: String(port),
      HTTP_HOST: '127.0.0.1',
      ADMIN_PORT: String(adminPort),
      ADMIN_HOST: '127.0.0.1',
      BASE_DOMAINS: 'localhost',
      REDIS_URL: redisUrl,
      REDIS_PREFIX,
      ACCESS_LOG: 'false',
      ...env,
    },
  });
  closeSync(out);
  await waitFor(async () => (await httpGet(adminPort, 'localhost', '/readyz'))?.status === 200, {
    timeoutMs: 20_000,
    intervalMs: 100,
    what: `gateway readiness (log: ${logFile})`,
  });
  await waitServing(port, HOST, 'the bench route through the gateway', BENCH_BODY);
  return { port, child };
}

interface Measured extends WrkResult {
  /** CPU seconds the process under test (and its children) used during the measured run. */
  cpuSeconds: number;
}

/** Warm up, then measure; `pid` is the process under test, whose CPU time is taken around the measured run. */
async function measure(port: number, pid: number, host = HOST): Promise<Measured> {
  await runWrk({ url: `http://127.0.0.1:${port}/`, host, connections: CONNECTIONS, seconds: WARMUP_SECONDS, cores: L.load });
  const cpuBefore = treeCpuSeconds(pid);
  const r = await runWrk({ url: `http://127.0.0.1:${port}/`, host, connections: CONNECTIONS, seconds: SECONDS, cores: L.load });
  return { ...r, cpuSeconds: treeCpuSeconds(pid) - cpuBefore };
}

function row(name: string, placement: string, r: Measured, versus?: HttpCaseResult): HttpCaseResult {
  const perCpu = r.cpuSeconds > 0 ? Math.round(r.requests / r.cpuSeconds) : undefined;
  return {
    name,
    placement,
    requestsPerSecond: Math.round(r.requestsPerSecond),
    requestsPerCpuSecond: perCpu,
    cpuSeconds: Math.round(r.cpuSeconds * 100) / 100,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    non2xx: r.non2xx,
    socketErrors: r.socketErrors,
    ...(versus
      ? { versus: versus.name, ratio: ratio(r.requestsPerSecond, versus.requestsPerSecond), cpuRatio: ratio(perCpu, versus.requestsPerCpuSecond) }
      : {}),
  };
}

async function nginxProxyCase(name: string, upstreamPort: number, workers: number, accessLog: boolean, cores: CoreSet): Promise<HttpCaseResult> {
  const port = await freePort();
  const dir = join(tmp, `nginx-${port}`);
  const child = startNginx(children, name, dir, proxyConfig(dir, { listenPort: port, upstreamPort, workers, accessLog }), cores);
  try {
    await waitServing(port, HOST, name, BENCH_BODY);
    const r = await measure(port, child.pid!);
    const placement = workers > 1 ? `${describeCores(cores)}, ${workers} workers` : describeCores(cores);
    const result = row(name, placement, r);
    say(`  ${name}: ${result.requestsPerSecond} req/s`);
    return result;
  } finally {
    await children.stop(child);
  }
}

async function gatewayCase(
  name: string,
  redisUrl: string,
  env: Record<string, string>,
  cores: CoreSet,
  versus: HttpCaseResult,
  during?: (g: GatewayRun) => Promise<void>,
): Promise<HttpCaseResult> {
  const g = await startGateway(redisUrl, env, cores);
  try {
    const r = await measure(g.port, g.child.pid!);
    await during?.(g);
    const workers = Number(env.GATEWAY_WORKERS ?? 1);
    const result = row(name, workers > 1 ? `${describeCores(cores)}, ${workers} workers` : describeCores(cores), r, versus);
    say(`  ${name}: ${result.requestsPerSecond} req/s (${result.ratio}x ${versus.name})`);
    return result;
  } finally {
    await children.stop(g.child);
  }
}

async function wsLoad(port: number, host: string): Promise<{ messagesPerSecond: number; errors: number }> {
  const argv = pinned(L.load, [process.execPath, join(ROOT, 'bench/ws-load.ts'), `ws://127.0.0.1:${port}/`, host, String(WS_CLIENTS), String(WS_SECONDS), String(WS_MESSAGE_BYTES)]);
  const child = children.start('ws-load', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d));
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  if (code !== 0) throw new Error(`ws-load exited with ${code}`);
  const parsed = JSON.parse(out.trim()) as { messagesPerSecond: number; errors: number };
  return { messagesPerSecond: Math.round(parsed.messagesPerSecond), errors: parsed.errors };
}

async function profileGateway(redisUrl: string): Promise<string> {
  const dir = join(ROOT, 'bench/profiles');
  mkdirSync(dir, { recursive: true });
  const g = await startGateway(redisUrl, {}, L.proxy, ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
  try {
    await measure(g.port, g.child.pid!);
  } finally {
    await children.stop(g.child); // the profile is written when the process exits
  }
  return dir;
}

async function main(): Promise<void> {
  const machine = describeMachine();
  say(`podgate bench — ${machine.date}`);
  say(`machine: ${machine.cores} cores, ${machine.cpu}; node ${machine.node}; ${machine.nginx}; ${machine.wrk}`);
  say(`placement: ${L.note}`);
  say(`load: wrk 1 thread, ${CONNECTIONS} keep-alive connections, ${WARMUP_SECONDS} s warm-up + ${SECONDS} s per case; body ${BENCH_BODY.length} bytes\n`);

  const writerClient = { current: undefined as ReturnType<typeof createRedis> | undefined };
  try {
    redis = await startRedis();
    writerClient.current = createRedis(redis.url);
    await waitReady(writerClient.current);
    const writer = new RedisRouteStore(writerClient.current, { prefix: REDIS_PREFIX });

    const [upA, upB, wsPort] = [await freePort(), await freePort(), await freePort()];
    const upDir = join(tmp, 'upstream');
    const upstream = startNginx(children, 'upstream nginx', upDir, upstreamConfig(upDir, [upA, upB]), L.load);
    children.start('ws echo server', pinned(L.load, [process.execPath, join(ROOT, 'bench/ws-echo-server.ts'), String(wsPort)]));
    await waitServing(upA, HOST, 'upstream nginx', BENCH_BODY);
    await waitServing(wsPort, WS_HOST, 'ws echo server');

    const base = { host: '127.0.0.1', status: 'running' as const, defaultPort: 3000, access: { default: 'public' as const, ports: {} } };
    const route: Route = { ...base, slug: SLUG, port: upA, generation: await writer.nextGeneration(), updatedAt: new Date().toISOString() };
    const wsRoute: Route = { ...base, slug: WS_SLUG, port: wsPort, generation: await writer.nextGeneration(), updatedAt: new Date().toISOString() };
    if (!(await writer.put(route)) || !(await writer.put(wsRoute))) throw new Error('could not write the bench routes');

    say('HTTP:');
    const direct = row('direct (upstream)', describeCores(L.load), await measure(upA, upstream.pid!));
    say(`  direct: ${direct.requestsPerSecond} req/s`);
    const nginx1 = await nginxProxyCase('nginx', upA, 1, false, L.proxy);
    let latency: RouteLatencyResult | undefined;
    const gateway1 = await gatewayCase('gateway', redis.url, {}, L.proxy, nginx1, async (g) => {
      // The gateway just measured is the one whose route-change latency is taken (after the load, so undisturbed).
      latency = await measureRouteLatency({ writer, gatewayPort: g.port, route, host: HOST, upstreamPorts: [upA, upB], changes: ROUTE_CHANGES });
      // Leave the route on upstream A for the next cases.
      const back: Route = { ...route, port: upA, generation: await writer.nextGeneration(), updatedAt: new Date().toISOString() };
      await writer.put(back);
      await waitServing(g.port, HOST, 'route back on upstream A', String(upA), '/port');
    });
    const nginxLog = await nginxProxyCase('nginx + access log', upA, 1, true, L.proxy);
    const gatewayLog = await gatewayCase('gateway + ACCESS_LOG', redis.url, { ACCESS_LOG: 'true' }, L.proxy, nginxLog);
    const nginx2 = await nginxProxyCase(`nginx x${MULTI_WORKERS}`, upA, MULTI_WORKERS, false, 'any');
    const gateway2 = await gatewayCase(`gateway x${MULTI_WORKERS}`, redis.url, { GATEWAY_WORKERS: String(MULTI_WORKERS) }, 'any', nginx2);
    const http = [direct, nginx1, gateway1, nginxLog, gatewayLog, nginx2, gateway2];

    say('\nWebSocket echo:');
    const wsDirect = await wsLoad(wsPort, WS_HOST);
    say(`  direct: ${wsDirect.messagesPerSecond} msg/s`);
    const g = await startGateway(redis.url, {}, L.proxy);
    let wsGateway: { messagesPerSecond: number; errors: number };
    try {
      wsGateway = await wsLoad(g.port, WS_HOST);
    } finally {
      await children.stop(g.child);
    }
    say(`  gateway: ${wsGateway.messagesPerSecond} msg/s`);
    const ws: WsCaseResult[] = [
      { name: 'direct (echo server)', placement: describeCores(L.load), ...wsDirect },
      { name: 'gateway', placement: describeCores(L.proxy), ...wsGateway, ratio: ratio(wsGateway.messagesPerSecond, wsDirect.messagesPerSecond) },
    ];

    let profileDir: string | undefined;
    if (PROFILE) {
      say('\nprofiling the 1-worker gateway under the same load...');
      profileDir = await profileGateway(redis.url);
    }

    say(`\n== HTTP: ${BENCH_BODY.length}-byte keep-alive response (${L.note}) ==`);
    say(httpTable(http));
    say(`\n== WebSocket echo: ${WS_CLIENTS} clients, ${WS_MESSAGE_BYTES}-byte messages, next message on echo, ${WS_SECONDS} s ==`);
    say(wsTable(ws));
    if (latency) {
      say(`\n== Route change -> routed by the gateway (${latency.changes} changes via Redis) ==`);
      say(`p50 ${latency.p50Ms.toFixed(2)} ms, p99 ${latency.p99Ms.toFixed(2)} ms, max ${latency.maxMs.toFixed(2)} ms (probe resolution ~${latency.probeMs.toFixed(2)} ms)`);
    }
    if (profileDir) say(`\nCPU profile written to ${profileDir} (summarise: node bench/profile-summary.ts <file>)`);

    const results = {
      machine,
      placement: L.note,
      settings: { connections: CONNECTIONS, warmupSeconds: WARMUP_SECONDS, seconds: SECONDS, bodyBytes: BENCH_BODY.length, wsClients: WS_CLIENTS, wsMessageBytes: WS_MESSAGE_BYTES, wsSeconds: WS_SECONDS },
      http,
      websocket: ws,
      routeLatency: latency,
    };
    writeFileSync(join(ROOT, 'bench/results.json'), `${JSON.stringify(results, null, 2)}\n`);
    say('\nresults written to bench/results.json');
  } finally {
    await children.stopAll();
    writerClient.current?.disconnect();
    await redis?.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

// Ctrl-C or a kill: stop the children first (their exit handlers cannot run after ours).
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    children.killAllNow();
    void redis?.kill();
    rmSync(tmp, { recursive: true, force: true });
    process.exit(130);
  });
}
process.once('exit', () => children.killAllNow());

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
