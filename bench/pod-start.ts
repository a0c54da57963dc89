// Pod start benchmark: time from the admin API's create call to the first byte of the pod's service through a
// gateway (p50/p95 over a series of pods, first one reported apart as the cold start), the create call's own
// duration, how many pods served both their services (app, terminal) to the first request after the create call
// returned, the time from a stop call to the gateway answering 503 (route change -> gateway routing by it), and
// wake -> first byte: a pod put to sleep (POST /sleep), then one request through the gateway, held while the pod wakes,
// timed from sent to the status line (p50/p99 over --wakes wakes of one pod).
// Real parts: redis-server, Docker with gVisor (runsc), podgate/pod:dev, orchestrator and gateway in this process.
//   node bench/pod-start.ts [--pods 8] [--wakes 10] [--template node]   (PODGATE_POD_RUNTIME picks the Docker runtime, default runsc)
// With --template the pods are created from that stack template (orchestrator/templates.ts) and served means all of
// the template's services answer (its first one is the one timed); without, the quick start's pod.
import { request } from 'node:http';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { silentLogger } from '../shared/log.ts';
import { startRedis } from '../test/support/redis-server.ts';
import { loadConfig } from '../orchestrator/config.ts';
import { startOrchestrator } from '../orchestrator/main.ts';
import { POD_RUNTIME, removePods, testPodImage } from '../test/support/orchestrator.ts';
import { loadGatewayConfig, runGateway } from '../gateway/main.ts';
import { TEMPLATES, TEMPLATE_NAMES, type TemplateName } from '../orchestrator/templates.ts';
import { percentile } from './stats.ts';

const { values } = parseArgs({ options: { pods: { type: 'string', default: '8' }, wakes: { type: 'string', default: '10' }, template: { type: 'string' } } });
if (values.template !== undefined && !TEMPLATE_NAMES.includes(values.template as TemplateName)) {
  throw new Error(`--template: one of ${TEMPLATE_NAMES.join(', ')}`);
}
const TEMPLATE = values.template as TemplateName | undefined;
const PODS = Math.min(Math.max(Number(values.pods) || 8, 2), 30);
const WAKES = Math.min(Math.max(Number(values.wakes) || 0, 0), 30);
/** A wake not served by then counts as failed (the gateway's WAKE_TIMEOUT_MS is 30 s). */
const WAKE_DEADLINE_MS = 35_000;
const TOKEN = 'bench-token-0123456789abcdef';
/** A pod not serving by then counts as failed (the run goes on). */
const FIRST_BYTE_DEADLINE_MS = 60_000;
const POLL_MS = 10;
/** The quick start's pod (README): the demo app and the web terminal. */
const QUICK_START_SERVICES = [{ name: 'app', port: 3000 }, { name: 'terminal', port: 7681 }];
const templateServices = TEMPLATE === undefined ? [] : TEMPLATES[TEMPLATE].services;
/** A template with services of its own runs those; otherwise the quick start's. */
const SERVICES = templateServices.length > 0 ? templateServices : QUICK_START_SERVICES;
const serviceHost = (slug: string, port: number) => `localhost-${port}.pod-${slug}.localhost`;
/** Served: a page or a redirect to one (Jupyter answers / with 302 to /tree). */
const served = (status: number) => status >= 200 && status < 400;

function status(port: number, host: string, timeoutMs = 5000): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent: false, timeout: timeoutMs }, (res) => {
      // First byte: the status line has arrived.
      resolve(res.statusCode ?? 0);
      res.resume();
    });
    req.once('error', () => resolve(0));
    req.once('timeout', () => req.destroy());
    req.end();
  });
}

async function until(check: () => Promise<boolean>, deadlineMs: number): Promise<boolean> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return false;
}

/** The orchestrator logs where each pod's start spent its time; sum it up per phase. */
const phaseSamples: Record<string, number[]> = {};
function collectPhases(line: string): void {
  const entry = JSON.parse(line) as { msg?: string; phases?: Record<string, number> };
  if (entry.msg !== 'pod running' || !entry.phases) return;
  for (const [k, v] of Object.entries(entry.phases)) (phaseSamples[k] ??= []).push(v);
}

const redis = await startRedis();
const image = await testPodImage();
const prefix = `bench${process.pid}:`;
const orch = await startOrchestrator(
  loadConfig({
    ADMIN_TOKEN: TOKEN, ORCHESTRATOR_PORT: '0', REDIS_URL: redis.url, REDIS_PREFIX: prefix, POD_IMAGE: image,
    POD_PORT_RANGE: '38300-38399', POD_NAMESPACE: `bench-${process.pid}`, RECONCILE_INTERVAL: '1h', POD_RUNTIME,
    // Every wake of the series is asked by the gateway: none may be refused by the per-pod wake limit.
    POD_WAKE_LIMIT: '1000',
  }),
  { logger: pino({ level: 'info' }, { write: (line: string) => collectPhases(line) }) },
);
const gw = await runGateway(
  loadGatewayConfig({ REDIS_URL: redis.url, REDIS_PREFIX: prefix, HTTP_HOST: '127.0.0.1', HTTP_PORT: '0', ADMIN_PORT: '0', ACCESS_LOG: 'false', ACCESS_CONCEAL_PODS: 'false' }),
  { log: silentLogger() },
);
const gwPort = gw.gateway.httpPort;
const api = (method: string, path: string, body?: unknown) =>
  fetch(`http://127.0.0.1:${orch.port}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` }, body: body === undefined ? undefined : JSON.stringify(body) });

const firstByte: number[] = [];
const createCall: number[] = [];
const stopTo503: number[] = [];
/** Pods whose services all answered (2xx/3xx) the first request after the create call returned. */
let servedAtOnce = 0;
const slugs: string[] = [];
let failures = 0;
/** Sleeping pod -> first byte of one request through the gateway (it asks for the wake and holds the request). */
const wakeToFirstByte: number[] = [];
let wakeFailures = 0;
try {
  for (let i = 0; i < PODS; i++) {
    const slug = `bench-${process.pid.toString(36)}-${i}`;
    slugs.push(slug);
    const host = serviceHost(slug, SERVICES[0]!.port);
    const t0 = performance.now();
    const res = await api('POST', '/v1/pods', {
      slug, access: { default: 'public' }, ...(TEMPLATE ? { template: TEMPLATE } : {}), ...(templateServices.length > 0 ? {} : { services: QUICK_START_SERVICES }),
    });
    const t1 = performance.now();
    if (res.status !== 201) {
      failures++;
      console.error(`pod ${i}: create answered ${res.status}: ${await res.text()}`);
      continue;
    }
    // What a user who opens the pod as soon as the API answered gets: both services at once, or a 502 of one
    // still starting. (The gateway learns the running route a few ms after the API answered: wait for that.)
    if (await until(async () => gw.gateway.table.lookup(slug)?.status === 'running', 5_000)) {
      const first = await Promise.all(SERVICES.map((s) => status(gwPort, serviceHost(slug, s.port))));
      if (first.every(served)) servedAtOnce++;
      else console.error(`pod ${i}: right after the create call: ${SERVICES.map((s, j) => `${s.name} ${first[j]}`).join(', ')}`);
    }
    const answered = await until(async () => served(await status(gwPort, host)), FIRST_BYTE_DEADLINE_MS);
    const t2 = performance.now();
    if (!answered) {
      failures++;
      console.error(`pod ${i}: no answer (2xx/3xx) through the gateway within ${FIRST_BYTE_DEADLINE_MS} ms`);
    } else {
      createCall.push(t1 - t0);
      firstByte.push(t2 - t0);
    }
    const s0 = performance.now();
    const stop = api('POST', `/v1/pods/${slug}/stop`);
    if (await until(async () => (await status(gwPort, host)) === 503, 10_000)) stopTo503.push(performance.now() - s0);
    await stop;
    await api('DELETE', `/v1/pods/${slug}`);
    console.error(`pod ${i}: create call ${(t1 - t0).toFixed(0)} ms, first byte ${(t2 - t0).toFixed(0)} ms`);
  }
  if (WAKES > 0) await measureWakes();
} finally {
  await gw.stop();
  await orch.close();
  await removePods(slugs);
  await redis.stop();
}

/** One pod (the quick start's, or the template's) put to sleep and woken by a request, WAKES times. */
async function measureWakes(): Promise<void> {
  const slug = `bench-${process.pid.toString(36)}-wake`;
  slugs.push(slug);
  const host = serviceHost(slug, SERVICES[0]!.port);
  const res = await api('POST', '/v1/pods', {
    slug, access: { default: 'public' }, ...(TEMPLATE ? { template: TEMPLATE } : {}), ...(templateServices.length > 0 ? {} : { services: QUICK_START_SERVICES }),
  });
  if (res.status !== 201) {
    wakeFailures = WAKES;
    console.error(`wake pod: create answered ${res.status}: ${await res.text()}`);
    return;
  }
  for (let i = 0; i < WAKES; i++) {
    const slept = await api('POST', `/v1/pods/${slug}/sleep`);
    if (slept.status !== 200 || !(await until(async () => gw.gateway.table.lookup(slug)?.status === 'sleeping', 30_000))) {
      wakeFailures++;
      console.error(`wake ${i}: the pod did not go to sleep (${slept.status})`);
      continue;
    }
    const t0 = performance.now();
    const answer = await status(gwPort, host, WAKE_DEADLINE_MS);
    const ms = performance.now() - t0;
    if (served(answer)) wakeToFirstByte.push(ms);
    else wakeFailures++;
    console.error(`wake ${i}: ${answer} after ${ms.toFixed(0)} ms`);
  }
}

const round = (n: number) => Math.round(n);
const warm = firstByte.slice(1);
const result = {
  template: TEMPLATE ?? null,
  pods: PODS,
  failures,
  servedAtOnceAfterCreate: `${servedAtOnce}/${PODS - failures}`,
  coldFirstByteMs: firstByte[0] === undefined ? null : round(firstByte[0]),
  firstByteMs: { p50: round(percentile(firstByte, 50)), p95: round(percentile(firstByte, 95)), max: round(Math.max(...firstByte)) },
  warmFirstByteMs: { p50: round(percentile(warm, 50)), p95: round(percentile(warm, 95)) },
  createCallMs: { p50: round(percentile(createCall, 50)), p95: round(percentile(createCall, 95)) },
  orchestratorPhasesP50Ms: Object.fromEntries(Object.entries(phaseSamples).map(([k, v]) => [k, round(percentile(v, 50))])),
  stopCallTo503Ms: { p50: round(percentile(stopTo503, 50)), p95: round(percentile(stopTo503, 95)) },
  wakes: WAKES,
  wakeFailures,
  wakeToFirstByteMs: wakeToFirstByte.length === 0 ? null : { p50: round(percentile(wakeToFirstByte, 50)), p99: round(percentile(wakeToFirstByte, 99)), max: round(Math.max(...wakeToFirstByte)) },
};
console.log(JSON.stringify(result, null, 2));
