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
// Noise: the machine is shared, so every server is started first and the cases are measured in interleaved rounds
// (median reported), and the CPU time of the process under test is read from /proc: requests per CPU-second stay
// meaningful when other work steals the pinned core.
//
// Environment: BENCH_SECONDS (measured seconds per case and round, default 3), BENCH_ROUNDS (default 3),
// BENCH_PROFILE=1 (also run the 1-worker gateway under `node --cpu-prof`, profile written to bench/profiles/).
import type { ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
import { measureRouteLatency } from './route-latency.ts';
import { percentile, ratio } from './stats.ts';
import { runWrk, type WrkResult } from './wrk.ts';
import { waitFor } from '../test/support/wait.ts';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
/** Measured seconds per case and round. */
const SECONDS = boundedNumber('BENCH_SECONDS', 3, 1, 60);
const ROUNDS = boundedNumber('BENCH_ROUNDS', 3, 1, 10);
const PROFILE = process.env.BENCH_PROFILE === '1';
/** Warm-up of each server before the first round: Node's JIT and both connection pools settle. */
const WARMUP_SECONDS = 1;
/** Concurrent keep-alive connections from wrk (one thread: it shares core 0 with the upstream). */
const CONNECTIONS = 50;
const WS_CLIENTS = 32;
const WS_MESSAGE_BYTES = 64;
const WS_SECONDS = Math.min(SECONDS, 3);
const ROUTE_CHANGES = 200;
const MULTI_WORKERS = 2;
/** Start-up includes type-stripping every module and the first full read of the route table. */
const GATEWAY_START_TIMEOUT_MS = 30_000;
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
  try {
    await waitFor(async () => child.exitCode !== null || (await httpGet(adminPort, 'localhost', '/readyz'))?.status === 200, {
      timeoutMs: GATEWAY_START_TIMEOUT_MS,
      intervalMs: 100,
      what: 'gateway readiness (/readyz)',
    });
    if (child.exitCode !== null) throw new Error(`the gateway exited with ${child.exitCode}`);
    await waitServing(port, HOST, 'the bench route through the gateway', BENCH_BODY);
  } catch (err) {
    // The temporary directory goes away with the bench: show the gateway's own account now.
    const tail = readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n');
    throw new Error(`${(err as Error).message}\n--- gateway log (last lines) ---\n${tail}`);
  }
  return { port, child };
}

interface Measured extends WrkResult {
  /** CPU seconds the process under test (and its children) used during the measured run. */
  cpuSeconds: number;
}

/** One thing to load: a server on `port` whose process tree `pid` is the thing measured. */
interface LoadTarget {
  name: string;
  placement: string;
  port: number;
  pid: number;
  child?: ChildProcess;
  /** The nginx case a gateway case is compared with. */
  versus?: string;
  rounds: Measured[];
}

function wrkOnce(port: number, seconds: number, host = HOST): Promise<WrkResult> {
  return runWrk(children, { url: `http://127.0.0.1:${port}/`, host, connections: CONNECTIONS, seconds, cores: L.load });
}

/** One measured run; the CPU time of the process under test is taken around it. */
async function measure(t: LoadTarget): Promise<Measured> {
  const cpuBefore = treeCpuSeconds(t.pid);
  const r = await wrkOnce(t.port, SECONDS);
  return { ...r, cpuSeconds: treeCpuSeconds(t.pid) - cpuBefore };
}

/**
 * Every target is started first, warmed up, then measured in ROUNDS interleaved rounds (a, b, c, a, b, c...):
 * on a shared machine a burst of someone else's work then hits every case about equally instead of one case
 * in full, and the median round is reported.
 */
async function runRounds(targets: LoadTarget[]): Promise<void> {
  for (const t of targets) await wrkOnce(t.port, WARMUP_SECONDS);
  for (let round = 1; round <= ROUNDS; round++) {
    const line: string[] = [];
    for (const t of targets) {
      const m = await measure(t);
      t.rounds.push(m);
      line.push(`${t.name} ${Math.round(m.requestsPerSecond)}`);
    }
    say(`  round ${round}/${ROUNDS}: ${line.join(', ')} req/s`);
  }
}

function summarise(t: LoadTarget, all: LoadTarget[]): HttpCaseResult {
  const requests = t.rounds.reduce((n, r) => n + r.requests, 0);
  const cpu = t.rounds.reduce((n, r) => n + r.cpuSeconds, 0);
  const result: HttpCaseResult = {
    name: t.name,
    placement: t.placement,
    requestsPerSecond: Math.round(percentile(t.rounds.map((r) => r.requestsPerSecond), 50)),
    requestsPerCpuSecond: cpu > 0 ? Math.round(requests / cpu) : undefined,
    cpuSeconds: Math.round(cpu * 100) / 100,
    p50Ms: percentile(t.rounds.map((r) => r.p50Ms), 50),
    p99Ms: percentile(t.rounds.map((r) => r.p99Ms), 50),
    non2xx: t.rounds.reduce((n, r) => n + r.non2xx, 0),
    socketErrors: t.rounds.reduce((n, r) => n + r.socketErrors, 0),
    rounds: t.rounds.map((r) => ({ requestsPerSecond: Math.round(r.requestsPerSecond), p50Ms: r.p50Ms, p99Ms: r.p99Ms, cpuSeconds: Math.round(r.cpuSeconds * 100) / 100 })),
  };
  const ref = t.versus ? all.find((x) => x.name === t.versus) : undefined;
  if (ref) {
    const refResult = summarise(ref, []);
    result.versus = ref.name;
    result.ratio = ratio(result.requestsPerSecond, refResult.requestsPerSecond);
    result.cpuRatio = ratio(result.requestsPerCpuSecond, refResult.requestsPerCpuSecond);
  }
  return result;
}

function placement(cores: CoreSet, workers: number): string {
  return workers > 1 ? `${describeCores(cores)}, ${workers} workers` : describeCores(cores);
}

async function nginxTarget(name: string, upstreamPort: number, workers: number, accessLog: boolean, cores: CoreSet): Promise<LoadTarget> {
  const port = await freePort();
  const dir = join(tmp, `nginx-${port}`);
  const child = startNginx(children, name, dir, proxyConfig(dir, { listenPort: port, upstreamPort, workers, accessLog }), cores);
  await waitServing(port, HOST, name, BENCH_BODY);
  return { name, placement: placement(cores, workers), port, pid: child.pid!, child, rounds: [] };
}

/** A minimal Node reverse proxy (bench/reference-proxy.ts): what Node's HTTP stack alone costs. */
async function referenceTarget(name: string, kind: 'node-http' | 'http-proxy-3', upstreamPort: number, cores: CoreSet, versus: string): Promise<LoadTarget> {
  const port = await freePort();
  const child = children.start(name, pinned(cores, [process.execPath, join(ROOT, 'bench/reference-proxy.ts'), kind, String(port), String(upstreamPort)]), { cwd: ROOT });
  await waitServing(port, HOST, name, BENCH_BODY);
  return { name, placement: describeCores(cores), port, pid: child.pid!, child, versus, rounds: [] };
}

async function gatewayTarget(name: string, redisUrl: string, env: Record<string, string>, cores: CoreSet, versus: string): Promise<LoadTarget & { run: GatewayRun }> {
  const run = await startGateway(redisUrl, env, cores);
  return { name, placement: placement(cores, Number(env.GATEWAY_WORKERS ?? 1)), port: run.port, pid: run.child.pid!, child: run.child, versus, rounds: [], run };
}

async function wsLoad(port: number, host: string): Promise<{ messagesPerSecond: number; errors: number }> {
  const argv = pinned(L.load, [process.execPath, join(ROOT, 'bench/ws-load.ts'), `ws://127.0.0.1:${port}/`, host, String(WS_CLIENTS), String(WS_SECONDS), String(WS_MESSAGE_BYTES)]);
  const child = children.start('ws-load', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d));
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  if (code !== 0) throw new Error(`ws-load exited with ${code}`);
  return JSON.parse(out.trim()) as { messagesPerSecond: number; errors: number };
}

/** Direct and through the gateway, interleaved over ROUNDS rounds; medians. */
async function wsRounds(echoPort: number, gatewayPort: number): Promise<WsCaseResult[]> {
  const direct: number[] = [];
  const gateway: number[] = [];
  let directErrors = 0;
  let gatewayErrors = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    const d = await wsLoad(echoPort, WS_HOST);
    const g = await wsLoad(gatewayPort, WS_HOST);
    direct.push(d.messagesPerSecond);
    gateway.push(g.messagesPerSecond);
    directErrors += d.errors;
    gatewayErrors += g.errors;
    say(`  round ${round}/${ROUNDS}: direct ${Math.round(d.messagesPerSecond)}, gateway ${Math.round(g.messagesPerSecond)} msg/s`);
  }
  const d = Math.round(percentile(direct, 50));
  const g = Math.round(percentile(gateway, 50));
  return [
    { name: 'direct (echo server)', placement: describeCores(L.load), messagesPerSecond: d, errors: directErrors },
    { name: 'gateway', placement: describeCores(L.proxy), messagesPerSecond: g, errors: gatewayErrors, ratio: ratio(g, d) },
  ];
}

async function profileGateway(redisUrl: string): Promise<string> {
  const dir = join(ROOT, 'bench/profiles');
  mkdirSync(dir, { recursive: true });
  const g = await startGateway(redisUrl, {}, L.proxy, ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
  try {
    await wrkOnce(g.port, WARMUP_SECONDS);
    await wrkOnce(g.port, SECONDS);
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
  say(`load: wrk 1 thread, ${CONNECTIONS} keep-alive connections, ${WARMUP_SECONDS} s warm-up, then ${ROUNDS} interleaved rounds of ${SECONDS} s per case (median reported); body ${BENCH_BODY.length} bytes\n`);

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

    say('HTTP (every server started first, then measured in interleaved rounds):');
    const direct: LoadTarget = { name: 'direct (upstream)', placement: describeCores(L.load), port: upA, pid: upstream.pid!, rounds: [] };
    const nginx1 = await nginxTarget('nginx', upA, 1, false, L.proxy);
    const refNode = await referenceTarget('ref: node:http proxy', 'node-http', upA, L.proxy, nginx1.name);
    const refHp3 = await referenceTarget('ref: http-proxy-3 proxy', 'http-proxy-3', upA, L.proxy, nginx1.name);
    const gateway1 = await gatewayTarget('gateway', redis.url, {}, L.proxy, nginx1.name);
    const nginxLog = await nginxTarget('nginx + access log', upA, 1, true, L.proxy);
    const gatewayLog = await gatewayTarget('gateway + ACCESS_LOG', redis.url, { ACCESS_LOG: 'true' }, L.proxy, nginxLog.name);
    const nginx2 = await nginxTarget(`nginx x${MULTI_WORKERS}`, upA, MULTI_WORKERS, false, 'any');
    const gateway2 = await gatewayTarget(`gateway x${MULTI_WORKERS}`, redis.url, { GATEWAY_WORKERS: String(MULTI_WORKERS) }, 'any', nginx2.name);
    const targets = [direct, nginx1, refNode, refHp3, gateway1, nginxLog, gatewayLog, nginx2, gateway2];
    await runRounds(targets);
    const http = targets.map((t) => summarise(t, targets));
    // Only the 1-worker gateway is needed from here on.
    for (const t of [nginx1, refNode, refHp3, nginxLog, nginx2, gatewayLog, gateway2]) if (t.child) await children.stop(t.child);

    say(`\nroute-change latency (${ROUTE_CHANGES} changes through Redis)...`);
    const latency = await measureRouteLatency({ writer, gatewayPort: gateway1.port, route, host: HOST, upstreamPorts: [upA, upB], changes: ROUTE_CHANGES });

    say('\nWebSocket echo (interleaved rounds):');
    const ws = await wsRounds(wsPort, gateway1.port);
    await children.stop(gateway1.run.child);

    let profileDir: string | undefined;
    if (PROFILE) {
      say('\nprofiling the 1-worker gateway under the same load...');
      profileDir = await profileGateway(redis.url);
    }

    say(`\n== HTTP: ${BENCH_BODY.length}-byte keep-alive response (${L.note}) ==`);
    say(httpTable(http));
    say(`\n== WebSocket echo: ${WS_CLIENTS} clients, ${WS_MESSAGE_BYTES}-byte messages, next message on echo, median of ${ROUNDS} rounds of ${WS_SECONDS} s ==`);
    say(wsTable(ws));
    {
      say(`\n== Route change -> routed by the gateway (${latency.changes} changes via Redis) ==`);
      say(`p50 ${latency.p50Ms.toFixed(2)} ms, p99 ${latency.p99Ms.toFixed(2)} ms, max ${latency.maxMs.toFixed(2)} ms (probe resolution ~${latency.probeMs.toFixed(2)} ms)`);
    }
    if (profileDir) say(`\nCPU profile written to ${profileDir} (summarise: node bench/profile-summary.ts <file>)`);

    const results = {
      machine,
      placement: L.note,
      settings: { connections: CONNECTIONS, warmupSeconds: WARMUP_SECONDS, seconds: SECONDS, rounds: ROUNDS, bodyBytes: BENCH_BODY.length, wsClients: WS_CLIENTS, wsMessageBytes: WS_MESSAGE_BYTES, wsSeconds: WS_SECONDS },
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
