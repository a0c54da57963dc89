// `npm run bench`: the gateway side by side with nginx, Caddy, HAProxy and bare Node reverse proxies on the same small
// keep-alive response; HTTP/2 over TLS through the gateway and nginx; WebSocket echo throughput; route-change
// latency; and the gateway's memory with many idle WebSockets and keep-alive clients. Everything runs on 127.0.0.1
// and is started and stopped here.
//
// Placement on a 2-core machine: the process under test (nginx, Caddy, HAProxy, a reference proxy or the gateway) is
// pinned to core 1; wrk, h2load, the upstream and the WebSocket load are pinned to core 0. The multi-worker cases are
// unpinned (they may use both cores, sharing core 0 with the load generator, the same for nginx and the gateway).
//
// Upstream: nginx returning a fixed body (`return 200`), not a Node server. It is the fastest server available
// here, so no proxy is held back by its upstream; a Node upstream sharing core 0 with wrk would cap nginx's
// throughput well below what nginx can proxy and flatter the gateway's ratio.
//
// Noise: the machine is shared, so every server is started first and the cases are measured in interleaved rounds
// (median reported), and the CPU time of the process under test is read from /proc: requests per CPU-second stay
// meaningful when other work steals the pinned core.
//
// A peer that is not installed (caddy, haproxy) or a reference that cannot run (undici not importable) is skipped
// with the reason printed; the rest of the run goes on.
//
// Environment: BENCH_SECONDS (measured seconds per case and round, default 3), BENCH_ROUNDS (default 3),
// BENCH_ONLY (comma-separated sections to run: http, h2, ws, route, memory; default all),
// BENCH_IDLE_CONNECTIONS (idle connections of each memory case, default 10000),
// BENCH_PROFILE=1 (also run the 1-worker gateway under `node --cpu-prof`, profile written to bench/profiles/),
// BENCH_GATEWAY_NODE_FLAGS (space-separated Node flags for every gateway the bench starts, e.g.
// `--max-semi-space-size=16`: a V8 setting's effect measured against the same peers),
// BENCH_KEEP=1 (keep the temporary directory: the gateways' logs, so `--trace-gc` output can be read afterwards).
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
import { createSelfSignedCertificate } from '../gateway/tls/self-signed.ts';
import { runH2load } from './h2load.ts';
import { measureIdleMemory, type IdleMemoryResult, type IdleMode } from './memory.ts';
import { BENCH_BODY, proxyConfig, startNginx, upstreamConfig } from './nginx.ts';
import { peerMissing, startPeer, type PeerKind } from './peers.ts';
import { accepts, Children, describeCores, freePort, httpGet, pinned, treeCpuSeconds, waitServing, withFdLimit, fdCount, hardFdLimit, type CoreSet } from './processes.ts';
import { describeMachine, httpTable, memoryTable, wsTable, type Comparison, type HttpCaseResult, type WsCaseResult } from './report.ts';
import { measureRouteLatency, type RouteLatencyResult } from './route-latency.ts';
import { percentile, ratio } from './stats.ts';
import { runWrk, type WrkResult } from './wrk.ts';
import { waitFor } from '../test/support/wait.ts';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
/** Measured seconds per case and round. */
const SECONDS = boundedNumber('BENCH_SECONDS', 3, 1, 60);
const ROUNDS = boundedNumber('BENCH_ROUNDS', 3, 1, 10);
const PROFILE = process.env.BENCH_PROFILE === '1';
const KEEP = process.env.BENCH_KEEP === '1';
const GATEWAY_NODE_FLAGS = (process.env.BENCH_GATEWAY_NODE_FLAGS ?? '').split(/\s+/).filter((f) => f !== '');
if (GATEWAY_NODE_FLAGS.some((f) => !f.startsWith('--'))) {
  process.stderr.write('BENCH_GATEWAY_NODE_FLAGS: Node flags only (each starting with --)\n');
  process.exit(2);
}
const SECTIONS = ['http', 'h2', 'ws', 'route', 'memory'] as const;
type Section = (typeof SECTIONS)[number];
const ONLY = sectionsToRun();
/** Idle connections opened through the gateway in each memory case. */
const IDLE_CONNECTIONS = boundedNumber('BENCH_IDLE_CONNECTIONS', 10_000, 100, 50_000);
/**
 * RLIMIT_NOFILE wanted for the processes holding the idle connections (the gateway holds two descriptors per
 * WebSocket), set through `prlimit` on their command lines. Where it cannot be raised that high (above the hard
 * limit without CAP_SYS_RESOURCE), the hard limit is what they get (Node raises its soft limit to it), and the
 * WebSocket case opens as many as fit, reporting the figure scaled to IDLE_CONNECTIONS as well.
 */
const IDLE_FD_LIMIT = 2 * IDLE_CONNECTIONS + 4096;
/** Descriptors the gateway needs beyond the idle connections (listeners, Redis, the upstream pool, node itself). */
const FD_RESERVE = 512;
/** HTTP/2 load: h2load clients (TLS connections) and concurrent streams on each: 50 requests in flight, as wrk's. */
const H2_CLIENTS = 10;
const H2_STREAMS = 5;
/** Exit code of bench/undici-proxy.ts when undici cannot be imported: the case is skipped, not failed. */
const NO_UNDICI_EXIT = 3;
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

function sectionsToRun(): Set<Section> {
  const raw = process.env.BENCH_ONLY?.trim();
  if (!raw) return new Set(SECTIONS);
  const asked = raw.split(',').map((x) => x.trim()).filter(Boolean);
  const unknown = asked.filter((x) => !(SECTIONS as readonly string[]).includes(x));
  if (unknown.length > 0 || asked.length === 0) {
    process.stderr.write(`bench: BENCH_ONLY must list sections from ${SECTIONS.join(', ')} (got ${JSON.stringify(raw)})\n`);
    process.exit(2);
  }
  return new Set(asked as Section[]);
}

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

interface GatewayOptions {
  env?: Record<string, string>;
  cores: CoreSet;
  nodeFlags?: string[];
  /** RLIMIT_NOFILE for the gateway (through prlimit), for the cases holding thousands of connections. */
  fdLimit?: number;
}

/**
 * The gateway runs as `npm run gateway` runs it: with the module compile cache scripts/node-env.sh sets up, so its
 * memory is not that of Node's TypeScript stripper (about 22 MB, loaded only when a module is not in the cache).
 */
const COMPILE_CACHE_ENV: Record<string, string> = process.env.NODE_COMPILE_CACHE ? { NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE } : {};

/** Loads the gateway's modules once without starting it, so the first gateway measured finds them all cached. */
function warmCompileCache(): void {
  if (!COMPILE_CACHE_ENV.NODE_COMPILE_CACHE) return;
  const entry = JSON.stringify(join(ROOT, 'gateway/main.ts'));
  const tls = JSON.stringify(join(ROOT, 'gateway/tls/index.ts'));
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `await import(${entry}); await import(${tls});`], {
    env: { PATH: process.env.PATH ?? '', ...COMPILE_CACHE_ENV },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`loading the gateway's modules failed: ${r.stderr}`);
}

/** `node gateway/main.ts` as a child, reading routes from the bench's Redis; resolves once it serves the bench route. */
async function startGateway(redisUrl: string, o: GatewayOptions): Promise<GatewayRun> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const logFile = join(tmp, `gateway-${port}.log`);
  const out = openSync(logFile, 'a');
  const node = [process.execPath, ...GATEWAY_NODE_FLAGS, ...(o.nodeFlags ?? []), join(ROOT, 'gateway/main.ts')];
  const argv = o.fdLimit === undefined ? node : withFdLimit(o.fdLimit, node);
  if (!argv) throw new Error(`cannot raise the gateway's file-descriptor limit to ${o.fdLimit} (needs root or a hard limit that high, and prlimit from util-linux)`);
  const child = children.start('gateway', pinned(o.cores, argv), {
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
      ...COMPILE_CACHE_ENV,
      ...o.env,
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

/** What one load run measured, in wrk's terms (an h2load run is mapped onto them). */
type Sample = WrkResult;

interface Measured extends Sample {
  /** CPU seconds the process under test (and its children) used during the measured run. */
  cpuSeconds: number;
}

/** One thing to load: a server whose process tree `pid` is the thing measured, and the load generator for it. */
interface LoadTarget {
  name: string;
  placement: string;
  pid: number;
  child?: ChildProcess;
  /** One load run of `seconds` against it. */
  load: (seconds: number) => Promise<Sample>;
  /** The cases this one is compared with, nginx's first. */
  versus: string[];
  rounds: Measured[];
}

function wrkLoad(port: number, host = HOST): (seconds: number) => Promise<Sample> {
  return (seconds) => runWrk(children, { url: `http://127.0.0.1:${port}/`, host, connections: CONNECTIONS, seconds, cores: L.load });
}

/** h2load over TLS with ALPN h2; a run that did not negotiate h2 is an error, not a measurement. */
function h2Load(port: number): (seconds: number) => Promise<Sample> {
  return async (seconds) => {
    const r = await runH2load(children, {
      url: `https://127.0.0.1:${port}/`,
      authority: HOST,
      clients: H2_CLIENTS,
      streams: H2_STREAMS,
      seconds,
      cores: L.load,
      logFile: join(tmp, `h2load-${port}.log`),
    });
    if (r.protocol !== 'h2') throw new Error(`h2load negotiated ${r.protocol}, not h2, with port ${port}`);
    return { requests: r.requests, requestsPerSecond: r.requestsPerSecond, p50Ms: r.p50Ms, p99Ms: r.p99Ms, non2xx: r.bad, socketErrors: 0 };
  };
}

/** One measured run; the CPU time of the process under test is taken around it. */
async function measure(t: LoadTarget): Promise<Measured> {
  const cpuBefore = treeCpuSeconds(t.pid);
  const r = await t.load(SECONDS);
  return { ...r, cpuSeconds: treeCpuSeconds(t.pid) - cpuBefore };
}

/**
 * Every target is started first, warmed up, then measured in ROUNDS interleaved rounds (a, b, c, a, b, c...):
 * on a shared machine a burst of someone else's work then hits every case about equally instead of one case
 * in full, and the median round is reported.
 */
async function runRounds(targets: LoadTarget[], unit = 'req/s'): Promise<void> {
  for (const t of targets) await t.load(WARMUP_SECONDS);
  for (let round = 1; round <= ROUNDS; round++) {
    const line: string[] = [];
    for (const t of targets) {
      const m = await measure(t);
      t.rounds.push(m);
      line.push(`${t.name} ${Math.round(m.requestsPerSecond)}`);
    }
    say(`  round ${round}/${ROUNDS}: ${line.join(', ')} ${unit}`);
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
    comparisons: [],
    non2xx: t.rounds.reduce((n, r) => n + r.non2xx, 0),
    socketErrors: t.rounds.reduce((n, r) => n + r.socketErrors, 0),
    rounds: t.rounds.map((r) => ({ requestsPerSecond: Math.round(r.requestsPerSecond), p50Ms: r.p50Ms, p99Ms: r.p99Ms, cpuSeconds: Math.round(r.cpuSeconds * 100) / 100 })),
  };
  for (const name of t.versus) {
    const ref = all.find((x) => x.name === name);
    if (!ref) continue; // skipped peer
    const r = summarise({ ...ref, versus: [] }, []);
    const c: Comparison = {
      versus: ref.name,
      ratio: ratio(result.requestsPerSecond, r.requestsPerSecond),
      cpuRatio: ratio(result.requestsPerCpuSecond, r.requestsPerCpuSecond),
      p99Ratio: ratio(result.p99Ms, r.p99Ms),
    };
    result.comparisons.push(c);
  }
  return result;
}

function placement(cores: CoreSet, workers: number): string {
  return workers > 1 ? `${describeCores(cores)}, ${workers} workers` : describeCores(cores);
}

interface NginxOptions {
  upstreamPort: number;
  workers: number;
  accessLog: boolean;
  cores: CoreSet;
  versus?: string[];
  /** TLS + HTTP/2 listener, loaded with h2load instead of wrk. */
  tls?: { certFile: string; keyFile: string };
}

async function nginxTarget(name: string, o: NginxOptions): Promise<LoadTarget> {
  const port = await freePort();
  const dir = join(tmp, `nginx-${port}`);
  const child = startNginx(children, name, dir, proxyConfig(dir, { listenPort: port, upstreamPort: o.upstreamPort, workers: o.workers, accessLog: o.accessLog, tls: o.tls }), o.cores);
  if (!o.tls) await waitServing(port, HOST, name, BENCH_BODY);
  else await waitFor(async () => child.exitCode !== null || (await accepts(port)), { timeoutMs: 15_000, intervalMs: 50, what: name });
  if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}`);
  return { name, placement: placement(o.cores, o.workers), pid: child.pid!, child, load: o.tls ? h2Load(port) : wrkLoad(port), versus: o.versus ?? [], rounds: [] };
}

async function peerTarget(name: string, kind: PeerKind, upstreamPort: number, cores: CoreSet, versus: string[]): Promise<LoadTarget | undefined> {
  const missing = peerMissing(kind);
  if (missing) {
    say(`  skipped ${name}: ${missing}`);
    skipped.push({ name, reason: missing });
    return undefined;
  }
  const port = await freePort();
  const child = startPeer(children, kind, name, join(tmp, `${kind}-${port}`), { listenPort: port, upstreamPort }, cores);
  await waitServing(port, HOST, name, BENCH_BODY);
  return { name, placement: describeCores(cores), pid: child.pid!, child, load: wrkLoad(port), versus, rounds: [] };
}

/** Cases left out of this run, with the reason (printed as they are skipped, and in results.json). */
const skipped: { name: string; reason: string }[] = [];

type ReferenceKind = 'node-http' | 'http-proxy-3' | 'undici';

/** A minimal Node reverse proxy (bench/reference-proxy.ts, bench/undici-proxy.ts): what the HTTP stack alone costs. */
async function referenceTarget(name: string, kind: ReferenceKind, upstreamPort: number, cores: CoreSet, versus: string[]): Promise<LoadTarget | undefined> {
  const port = await freePort();
  const script = kind === 'undici' ? ['bench/undici-proxy.ts', String(port), String(upstreamPort)] : ['bench/reference-proxy.ts', kind, String(port), String(upstreamPort)];
  const child = children.start(name, pinned(cores, [process.execPath, ...script.map((a, i) => (i === 0 ? join(ROOT, a) : a))]), { cwd: ROOT, quietExitCodes: [NO_UNDICI_EXIT] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d));
  await waitFor(async () => child.exitCode !== null || (await httpGet(port, HOST))?.body === BENCH_BODY, { timeoutMs: 15_000, intervalMs: 50, what: name });
  if (child.exitCode === NO_UNDICI_EXIT) {
    const reason = `${stderr.trim().split('\n')[0] ?? 'undici cannot be imported'} (it comes with the project's dependencies once the gateway uses it)`;
    say(`  skipped ${name}: ${reason}`);
    skipped.push({ name, reason });
    return undefined;
  }
  if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}: ${stderr}`);
  return { name, placement: describeCores(cores), pid: child.pid!, child, load: wrkLoad(port), versus, rounds: [] };
}

async function gatewayTarget(name: string, redisUrl: string, o: GatewayOptions, versus: string[], loadOn?: (run: GatewayRun) => (seconds: number) => Promise<Sample>): Promise<LoadTarget & { run: GatewayRun }> {
  const run = await startGateway(redisUrl, o);
  const workers = Number(o.env?.GATEWAY_WORKERS ?? 1);
  return { name, placement: placement(o.cores, workers), pid: run.child.pid!, child: run.child, load: loadOn ? loadOn(run) : wrkLoad(run.port), versus, rounds: [], run };
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
  const g = await startGateway(redisUrl, { cores: L.proxy, nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${dir}`] });
  try {
    await wrkLoad(g.port)(WARMUP_SECONDS);
    await wrkLoad(g.port)(SECONDS);
  } finally {
    await children.stop(g.child); // the profile is written when the process exits
  }
  return dir;
}

/** Every HTTP/1.1 case, interleaved. Leaves the 1-worker gateway running for the sections after it. */
async function httpSection(redisUrl: string, upstream: ChildProcess, upA: number): Promise<{ http: HttpCaseResult[]; gateway: GatewayRun }> {
  say('HTTP (every server started first, then measured in interleaved rounds):');
  const direct: LoadTarget = { name: 'direct (upstream)', placement: describeCores(L.load), pid: upstream.pid!, load: wrkLoad(upA), versus: [], rounds: [] };
  const n = 'nginx';
  const nginx1 = await nginxTarget(n, { upstreamPort: upA, workers: 1, accessLog: false, cores: L.proxy });
  const caddy = await peerTarget('caddy', 'caddy', upA, L.proxy, [n]);
  const haproxy = await peerTarget('haproxy', 'haproxy', upA, L.proxy, [n]);
  const refNode = await referenceTarget('ref: node:http proxy', 'node-http', upA, L.proxy, [n]);
  const refHp3 = await referenceTarget('ref: http-proxy-3 proxy', 'http-proxy-3', upA, L.proxy, [n]);
  const refUndici = await referenceTarget('ref: undici proxy', 'undici', upA, L.proxy, [n]);
  const gateway1 = await gatewayTarget('gateway', redisUrl, { cores: L.proxy }, [n, 'caddy']);
  const nginxLog = await nginxTarget('nginx + access log', { upstreamPort: upA, workers: 1, accessLog: true, cores: L.proxy });
  const gatewayLog = await gatewayTarget('gateway + ACCESS_LOG', redisUrl, { env: { ACCESS_LOG: 'true' }, cores: L.proxy }, [nginxLog.name]);
  const nginx2 = await nginxTarget(`nginx x${MULTI_WORKERS}`, { upstreamPort: upA, workers: MULTI_WORKERS, accessLog: false, cores: 'any' });
  const gateway2 = await gatewayTarget(`gateway x${MULTI_WORKERS}`, redisUrl, { env: { GATEWAY_WORKERS: String(MULTI_WORKERS) }, cores: 'any' }, [nginx2.name, gateway1.name]);
  const targets = [direct, nginx1, caddy, haproxy, refNode, refHp3, refUndici, gateway1, nginxLog, gatewayLog, nginx2, gateway2].filter((t): t is LoadTarget => t !== undefined);
  await runRounds(targets);
  const http = targets.map((t) => summarise(t, targets));
  // Only the 1-worker gateway is needed from here on.
  for (const t of targets) if (t.child && t !== gateway1) await children.stop(t.child);
  return { http, gateway: gateway1.run };
}

/** HTTP/2 over TLS to the client (HTTP/1.1 keep-alive to the upstream), gateway and nginx interleaved, h2load. */
async function h2Section(redisUrl: string, upA: number): Promise<HttpCaseResult[]> {
  say(`\nHTTP/2 over TLS (h2load, ${H2_CLIENTS} connections x ${H2_STREAMS} streams, interleaved rounds):`);
  // One self-signed certificate for both (h2load does not verify it); the gateway serves it as its default.
  const { certPem, keyPem } = await createSelfSignedCertificate('localhost');
  const certFile = join(tmp, 'bench-cert.pem');
  const keyFile = join(tmp, 'bench-key.pem');
  writeFileSync(certFile, certPem);
  writeFileSync(keyFile, keyPem, { mode: 0o600 });
  const nginx = await nginxTarget('nginx h2', { upstreamPort: upA, workers: 1, accessLog: false, cores: L.proxy, tls: { certFile, keyFile } });
  const httpsPort = await freePort();
  const gatewayTls = {
    HTTPS_PORT: String(httpsPort),
    HTTPS_HOST: '127.0.0.1',
    TLS_DEFAULT_CERT_FILE: certFile,
    TLS_DEFAULT_KEY_FILE: keyFile,
    // No certificate is ever requested here: no on-demand issuance, and a CA address that is loopback's own.
    TLS_ON_DEMAND: 'false',
    ACME_DIRECTORY_URL: 'https://127.0.0.1:9/directory',
    TLS_REDIRECT_HTTP: 'false',
  };
  const gateway = await gatewayTarget('gateway h2', redisUrl, { env: gatewayTls, cores: L.proxy }, [nginx.name], () => h2Load(httpsPort));
  await waitFor(() => accepts(httpsPort), { timeoutMs: 15_000, intervalMs: 50, what: "the gateway's HTTPS listener" });
  const targets = [nginx, gateway];
  try {
    await runRounds(targets);
    return targets.map((t) => summarise(t, targets));
  } finally {
    for (const t of targets) if (t.child) await children.stop(t.child);
  }
}

/**
 * A fresh 1-worker gateway (its memory is not what earlier load left behind), warmed up with a short wrk run and a
 * few hundred connections of the measured kind, then `count` idle ones.
 */
async function memoryCase(redisUrl: string, mode: IdleMode, count: number, fdLimit: number | undefined): Promise<IdleMemoryResult> {
  const g = await startGateway(redisUrl, { cores: L.proxy, fdLimit });
  try {
    const host = mode === 'ws' ? WS_HOST : HOST;
    const wrap = (argv: string[]) => (fdLimit === undefined ? argv : (withFdLimit(fdLimit, argv) ?? argv));
    const pid = g.child.pid!;
    await wrkLoad(g.port)(WARMUP_SECONDS);
    await measureIdleMemory(children, { root: ROOT, mode, port: g.port, host, count: 200, pid, cores: L.load, wrap });
    const settledFds = fdCount(pid) + 50;
    await waitFor(() => fdCount(pid) <= settledFds, { timeoutMs: 10_000, intervalMs: 100, what: 'the warm-up connections to close' });
    return await measureIdleMemory(children, { root: ROOT, mode, port: g.port, host, count, pid, cores: L.load, wrap });
  } finally {
    await children.stop(g.child);
  }
}

async function memorySection(redisUrl: string): Promise<(IdleMemoryResult & { note?: string; rssAtRequestedBytes?: number })[]> {
  const raised = withFdLimit(IDLE_FD_LIMIT, ['true']) !== undefined;
  const fdLimit = raised ? IDLE_FD_LIMIT : hardFdLimit();
  say(`\nmemory: ${IDLE_CONNECTIONS} idle connections through a fresh gateway; file-descriptor limit ${fdLimit} (${raised ? 'raised with prlimit' : 'the hard limit: prlimit cannot raise it here'})...`);
  const results: (IdleMemoryResult & { note?: string; rssAtRequestedBytes?: number })[] = [];
  for (const mode of ['ws', 'http'] as const) {
    const perConnection = mode === 'ws' ? 2 : 1;
    const fit = Math.floor((fdLimit - FD_RESERVE) / perConnection);
    const count = Math.min(IDLE_CONNECTIONS, fit);
    const note = count < IDLE_CONNECTIONS ? `${count} of ${IDLE_CONNECTIONS}: the gateway's file-descriptor limit is ${fdLimit} and each ${mode === 'ws' ? 'WebSocket holds 2' : 'client holds 1'}` : undefined;
    if (note) say(`  ${mode}: ${note}`);
    const r = await memoryCase(redisUrl, mode, count, raised ? fdLimit : undefined);
    const rssAtRequestedBytes = note && r.perConnectionBytes !== undefined ? r.rssBeforeBytes + r.perConnectionBytes * IDLE_CONNECTIONS : undefined;
    say(`  ${mode}: ${r.open} open in ${r.openSeconds} s, RSS ${(r.rssBeforeBytes / 1_048_576).toFixed(1)} -> ${(r.rssAfterBytes / 1_048_576).toFixed(1)} MB`);
    results.push({ ...r, ...(note ? { note, rssAtRequestedBytes } : {}) });
  }
  return results;
}

async function main(): Promise<void> {
  const machine = describeMachine();
  say(`podgate bench — ${machine.date}`);
  say(`machine: ${machine.cores} cores, ${machine.cpu}; node ${machine.node}; ${machine.nginx}; ${machine.wrk}; ${machine.tools.join('; ')}`);
  say(`placement: ${L.note}`);
  say(`load: wrk 1 thread, ${CONNECTIONS} keep-alive connections, ${WARMUP_SECONDS} s warm-up, then ${ROUNDS} interleaved rounds of ${SECONDS} s per case (median reported); body ${BENCH_BODY.length} bytes`);
  say(`sections: ${[...ONLY].join(', ')}\n`);

  const writerClient = { current: undefined as ReturnType<typeof createRedis> | undefined };
  try {
    warmCompileCache();
    redis = await startRedis();
    writerClient.current = createRedis(redis.url);
    await waitReady(writerClient.current);
    const writer = new RedisRouteStore(writerClient.current, { prefix: REDIS_PREFIX });

    const [upA, upB, wsPort] = [await freePort(), await freePort(), await freePort()];
    const upDir = join(tmp, 'upstream');
    const upstream = startNginx(children, 'upstream nginx', upDir, upstreamConfig(upDir, [upA, upB]), L.load);
    // The echo server holds one socket per idle WebSocket of the memory section.
    const echo = [process.execPath, join(ROOT, 'bench/ws-echo-server.ts'), String(wsPort)];
    children.start('ws echo server', pinned(L.load, withFdLimit(IDLE_FD_LIMIT, echo) ?? echo));
    await waitServing(upA, HOST, 'upstream nginx', BENCH_BODY);
    await waitServing(wsPort, WS_HOST, 'ws echo server');

    const base = { host: '127.0.0.1', status: 'running' as const, defaultPort: 3000, access: { default: 'public' as const, ports: {} } };
    const route: Route = { ...base, slug: SLUG, port: upA, generation: await writer.nextGeneration(), updatedAt: new Date().toISOString() };
    const wsRoute: Route = { ...base, slug: WS_SLUG, port: wsPort, generation: await writer.nextGeneration(), updatedAt: new Date().toISOString() };
    if (!(await writer.put(route)) || !(await writer.put(wsRoute))) throw new Error('could not write the bench routes');

    let http: HttpCaseResult[] | undefined;
    let gateway1: GatewayRun | undefined;
    if (ONLY.has('http')) ({ http, gateway: gateway1 } = await httpSection(redis.url, upstream, upA));
    if (!gateway1 && (ONLY.has('route') || ONLY.has('ws'))) gateway1 = await startGateway(redis.url, { cores: L.proxy });

    let latency: RouteLatencyResult | undefined;
    if (ONLY.has('route')) {
      say(`\nroute-change latency (${ROUTE_CHANGES} changes through Redis)...`);
      latency = await measureRouteLatency({ writer, gatewayPort: gateway1!.port, route, host: HOST, upstreamPorts: [upA, upB], changes: ROUTE_CHANGES });
    }
    let ws: WsCaseResult[] | undefined;
    if (ONLY.has('ws')) {
      say('\nWebSocket echo (interleaved rounds):');
      ws = await wsRounds(wsPort, gateway1!.port);
    }
    if (gateway1) await children.stop(gateway1.child);

    const h2 = ONLY.has('h2') ? await h2Section(redis.url, upA) : undefined;
    const memory = ONLY.has('memory') ? await memorySection(redis.url) : undefined;

    let profileDir: string | undefined;
    if (PROFILE) {
      say('\nprofiling the 1-worker gateway under the same load...');
      profileDir = await profileGateway(redis.url);
    }

    if (http) {
      say(`\n== HTTP: ${BENCH_BODY.length}-byte keep-alive response (${L.note}) ==`);
      say(httpTable(http));
    }
    if (h2) {
      say(`\n== HTTP/2 over TLS: h2load ${H2_CLIENTS} connections x ${H2_STREAMS} streams, HTTP/1.1 keep-alive to the upstream ==`);
      say(httpTable(h2));
    }
    if (ws) {
      say(`\n== WebSocket echo: ${WS_CLIENTS} clients, ${WS_MESSAGE_BYTES}-byte messages, next message on echo, median of ${ROUNDS} rounds of ${WS_SECONDS} s ==`);
      say(wsTable(ws));
    }
    if (latency) {
      say(`\n== Route change -> routed by the gateway (${latency.changes} changes via Redis) ==`);
      say(`p50 ${latency.p50Ms.toFixed(2)} ms, p99 ${latency.p99Ms.toFixed(2)} ms, max ${latency.maxMs.toFixed(2)} ms (probe resolution ~${latency.probeMs.toFixed(2)} ms)`);
    }
    if (memory) {
      say(`\n== Gateway memory with ${IDLE_CONNECTIONS} idle connections (VmRSS of the gateway process, fresh gateway per case) ==`);
      const names: Record<IdleMode, string> = { ws: 'idle WebSockets (to the echo server)', http: 'idle keep-alive clients (1 request each)' };
      say(memoryTable(memory.map((m) => ({ ...m, name: names[m.mode] }))));
      for (const m of memory) {
        if (m.note && m.rssAtRequestedBytes !== undefined) say(`${m.mode}: ${m.note}; scaled to ${IDLE_CONNECTIONS}: ${(m.rssAtRequestedBytes / 1_048_576).toFixed(1)} MB`);
      }
    }
    for (const s of skipped) say(`(skipped: ${s.name}: ${s.reason})`);
    if (profileDir) say(`\nCPU profile written to ${profileDir} (summarise: node bench/profile-summary.ts <file>)`);

    const results = {
      machine,
      placement: L.note,
      settings: {
        connections: CONNECTIONS,
        warmupSeconds: WARMUP_SECONDS,
        seconds: SECONDS,
        rounds: ROUNDS,
        bodyBytes: BENCH_BODY.length,
        wsClients: WS_CLIENTS,
        wsMessageBytes: WS_MESSAGE_BYTES,
        wsSeconds: WS_SECONDS,
        h2Clients: H2_CLIENTS,
        h2Streams: H2_STREAMS,
        idleConnections: IDLE_CONNECTIONS,
        sections: [...ONLY],
      },
      http,
      http2: h2,
      websocket: ws,
      routeLatency: latency,
      memory,
      skipped,
    };
    writeFileSync(join(ROOT, 'bench/results.json'), `${JSON.stringify(results, null, 2)}\n`);
    say('\nresults written to bench/results.json');
  } finally {
    await children.stopAll();
    writerClient.current?.disconnect();
    await redis?.stop();
    if (KEEP) say(`kept: ${tmp}`);
    else rmSync(tmp, { recursive: true, force: true });
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
