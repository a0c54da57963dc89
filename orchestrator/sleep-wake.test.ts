// Sleep and wake, orchestrator side, against real Docker with gVisor and a real Redis: idle pods sleep (route
// `sleeping`, container exited, files kept), activity keeps them awake, wake requests from a gateway (published
// here through the same store a gateway uses) wake them once however many arrive, the wake limit, wakes that must do
// nothing, a wake during a sleep and a stop during a wake, an orchestrator restart, and the admin endpoints.
// The only stand-in: Docker's stop and start can be held at a gate (the real call runs once it opens), to put the
// second operation exactly inside the first.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Docker from 'dockerode';
import { pino } from 'pino';
import { createRedis, waitReady } from '../shared/redis.ts';
import { RedisPodActivity } from '../shared/redis-pod-activity.ts';
import { routeKeys } from '../shared/route.ts';
import { capturedLogger } from '../test/support/logs.ts';
import { startRedis, type RedisServer } from '../test/support/redis-server.ts';
import { waitFor } from '../test/support/wait.ts';
import { removePods, testOrchestratorConfig, testPodImage, uniqueSlug } from '../test/support/orchestrator.ts';
import type { OrchestratorConfig } from './config.ts';
import { startOrchestrator, type RunningOrchestrator } from './main.ts';
import { portKeys } from './redis-port-allocator.ts';

const TOKEN = 'sleep-wake-token-0123456789abcdef';
const PREFIX = `sleep${process.pid}:`;
const WAKE_LIMIT = 2;
const realDocker = new Docker();
const slugs = new Set<string>();
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
let server: RedisServer;
let gatewayRedis: ReturnType<typeof createRedis>;
/** What a gateway uses: the shared activity store (touch, requestWake). */
let gateway: RedisPodActivity;
let config: OrchestratorConfig;
let orch: RunningOrchestrator;

/** Docker calls held until released: `stop` and `start` of one container. */
const gates = new Map<string, Promise<void>>();
function gate(call: 'stop' | 'start', slug: string): () => void {
  let open = () => {};
  gates.set(`${call} podgate-${slug}`, new Promise<void>((resolve) => (open = resolve)));
  return () => {
    gates.delete(`${call} podgate-${slug}`);
    open();
  };
}
/** The real Docker client, whose container stop and start wait at a gate when one is set for them. */
const docker = new Proxy(realDocker, {
  get(target, prop, receiver) {
    if (prop !== 'getContainer') return Reflect.get(target, prop, receiver);
    return (name: string) => {
      const container = target.getContainer(name);
      return new Proxy(container, {
        get(c, p, r) {
          const value = Reflect.get(c, p, r) as unknown;
          if ((p !== 'stop' && p !== 'start') || typeof value !== 'function') return value;
          return async (...args: unknown[]) => {
            await gates.get(`${String(p)} ${name}`);
            return (value as (...a: unknown[]) => Promise<unknown>).apply(c, args);
          };
        },
      });
    };
  },
});

function slug(stem: string): string {
  const s = uniqueSlug(stem);
  slugs.add(s);
  return s;
}

async function api(method: string, path: string, body?: unknown, token = TOKEN): Promise<{ status: number; json: any; text: string }> {
  const res = await fetch(`http://127.0.0.1:${orch.port}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

async function create(s: string, extra: Record<string, unknown> = {}): Promise<{ hostPort: number }> {
  const r = await api('POST', '/v1/pods', { slug: s, ...extra });
  expect(r.status, r.text).toBe(201);
  return r.json;
}
const status = async (s: string) => (await api('GET', `/v1/pods/${s}`)).json?.status as string | undefined;
const routeStatus = async (s: string) => (await orch.routes.get(s))?.status;
const containerState = (s: string) => realDocker.getContainer(`podgate-${s}`).inspect().then((i) => i.State.Status, () => undefined);
const exec = async (s: string, command: string) => (await api('POST', `/v1/pods/${s}/exec`, { command })).json;
type Entry = { label: string; note?: string; error?: string };
/** The pod's log, oldest first. */
const logOf = async (s: string): Promise<Entry[]> => ((await api('GET', `/v1/pods/${s}/logs?limit=100`)).json.entries as Entry[]).reverse();
const events = async (s: string) => (await logOf(s)).filter((e) => ['sleep', 'wake', 'wake refused'].includes(e.label));

/** Ask for a wake as a waiting gateway does, again every half second, until `done`. */
async function askToWakeUntil(s: string, done: () => Promise<boolean>, options: { timeoutMs: number; intervalMs: number; what: string }): Promise<void> {
  let last = 0;
  await waitFor(async () => {
    if (Date.now() - last > 500) {
      last = Date.now();
      await gateway.requestWake(s);
    }
    return done();
  }, options);
}

/** Ask for a wake as a waiting gateway does until the route runs. */
async function wakeByRequest(s: string, timeoutMs = 90_000): Promise<void> {
  await askToWakeUntil(s, async () => (await routeStatus(s)) === 'running', { timeoutMs, intervalMs: 50, what: `${s} to wake` });
}

async function sleepByAdmin(s: string): Promise<void> {
  const r = await api('POST', `/v1/pods/${s}/sleep`);
  expect(r.status, r.text).toBe(200);
  expect(r.json.status).toBe('sleeping');
}

async function metric(line: RegExp): Promise<number> {
  const text = (await api('GET', '/metrics')).text;
  const m = text.split('\n').find((l) => line.test(l));
  return m === undefined ? 0 : Number(m.split(' ').at(-1));
}

beforeAll(async () => {
  let image: string;
  [server, image] = await Promise.all([startRedis(), testPodImage()]);
  gatewayRedis = createRedis(server.url);
  await waitReady(gatewayRedis);
  gateway = new RedisPodActivity(gatewayRedis, { prefix: PREFIX });
  config = testOrchestratorConfig({
    ADMIN_TOKEN: TOKEN, REDIS_URL: server.url, REDIS_PREFIX: PREFIX, POD_PORT_RANGE: '38760-38779', POD_IMAGE: image,
    POD_WAKE_LIMIT: String(WAKE_LIMIT), POD_WAKE_WINDOW: '1h',
  });
  orch = await startOrchestrator(config, { logger, docker });
}, 240_000);

afterAll(async () => {
  for (const open of [...gates.keys()]) gates.delete(open);
  await orch?.close();
  await removePods(slugs);
  await gateway?.close();
  gatewayRedis?.disconnect();
  await server?.stop();
});

describe('going to sleep', () => {
  it('a pod idle past its idleTimeout sleeps: route sleeping, container exited, port kept; a wake request wakes it with its files', async () => {
    const s = slug('idle');
    const pod = await create(s, { idleTimeout: '5s' });
    expect((await api('GET', `/v1/pods/${s}`)).json.idleTimeout).toBe('5s');
    const wrote = await exec(s, 'echo ws > /workspace/ws.txt && echo home > "$HOME/home.txt" && echo tmp > /tmp/tmp.txt && echo ok');
    expect(wrote.stdout).toBe('ok\n');

    await waitFor(async () => (await routeStatus(s)) === 'sleeping', { timeoutMs: 60_000, intervalMs: 200, what: `${s} to fall asleep` });
    await waitFor(async () => (await status(s)) === 'sleeping', { timeoutMs: 30_000, what: 'the sleep to finish' });
    expect(await containerState(s)).toBe('exited');
    expect((await orch.routes.get(s))?.port).toBe(pod.hostPort);
    // The host port stays the pod's while it sleeps.
    const owners = await gatewayRedis.hgetall(portKeys(`${PREFIX}host:127.0.0.1:`).owners);
    expect(owners[String(pod.hostPort)]?.startsWith(`${s}|`)).toBe(true);
    expect((await api('POST', `/v1/pods/${s}/exec`, { command: 'true' })).status).toBe(409);
    const [sleep] = await events(s);
    expect(sleep).toMatchObject({ label: 'sleep' });
    expect(sleep!.note).toMatch(/^asleep: idle for \d+ s$/);
    expect(await metric(/^podgate_orchestrator_pods_asleep /)).toBe(1);

    await wakeByRequest(s);
    expect(await status(s)).toBe('running');
    expect(await containerState(s)).toBe('running');
    expect((await orch.routes.get(s))?.port).toBe(pod.hostPort);
    // The workspace volume and the container's own filesystem survive; gVisor's /tmp is a tmpfs of the sandbox.
    const read = await exec(s, 'cat /workspace/ws.txt "$HOME/home.txt"; cat /tmp/tmp.txt 2>/dev/null || echo no-tmp');
    expect(read.stdout).toBe('ws\nhome\nno-tmp\n');
    const wake = (await events(s)).at(-1);
    expect(wake).toMatchObject({ label: 'wake' });
    expect(wake!.note).toMatch(/^woken by a request through a gateway, running \d+ ms after the wake was asked$/);
    expect(await metric(/^podgate_orchestrator_wakes_total\{reason="request",outcome="woken"\}/)).toBe(1);
    expect(await metric(/^podgate_orchestrator_wake_duration_seconds_count\{reason="request"\}/)).toBe(1);
    expect(await metric(/^podgate_orchestrator_sleeps_total\{reason="idle"\}/)).toBe(1);
    expect(await metric(/^podgate_orchestrator_pods_asleep /)).toBe(0);
    // Behind the admin token.
    expect((await api('GET', '/metrics', undefined, 'wrong-token-wrong-token')).status).toBe(401);
    expect((await api('DELETE', `/v1/pods/${s}`)).status).toBe(204);
  }, 180_000);

  it('a pod with activity stays awake past its timeout, and sleeps once the activity stops', async () => {
    const s = slug('busy');
    await create(s, { idleTimeout: '5s' });
    const { nowMs: began } = await gateway.lastActive([]);
    // A gateway serving it: a report every second, for well past the timeout by the store's clock.
    await waitFor(
      async () => {
        await gateway.touch([s]);
        return (await gateway.lastActive([])).nowMs - began > 12_000;
      },
      { timeoutMs: 60_000, intervalMs: 1000, what: '12 s of activity' },
    );
    expect(await status(s)).toBe('running');
    expect(await routeStatus(s)).toBe('running');
    expect(await events(s)).toEqual([]);
    await waitFor(async () => (await routeStatus(s)) === 'sleeping', { timeoutMs: 60_000, intervalMs: 200, what: `${s} to fall asleep` });
  }, 180_000);

  it("a spec's idleTimeout off, or none under the default POD_IDLE_TIMEOUT (off), never sleeps", async () => {
    const own = slug('optout');
    const d = slug('default');
    await Promise.all([create(own, { idleTimeout: 'off' }), create(d)]);
    expect((await api('GET', `/v1/pods/${own}`)).json.idleTimeout).toBe('off');
    expect((await api('GET', `/v1/pods/${d}`)).json.idleTimeout).toBe('off');
    expect(await orch.sleepWake.checkIdle()).toEqual([]);
    expect((await api('DELETE', `/v1/pods/${d}`)).status).toBe(204);
    expect((await api('DELETE', `/v1/pods/${own}`)).status).toBe(204);
  }, 120_000);
});

describe('the activity store unreachable', () => {
  it('puts nothing to sleep while it cannot read activity, and sleeps the idle pod once it can', async () => {
    // An orchestrator of its own (namespace, Redis, ports): its Redis goes away for a while.
    const own = await startRedis();
    const { log, logs } = capturedLogger('info');
    const other = await startOrchestrator(
      testOrchestratorConfig({ ADMIN_TOKEN: TOKEN, REDIS_URL: own.url, REDIS_PREFIX: PREFIX, POD_PORT_RANGE: '38780-38789', POD_IMAGE: config.defaultImage }),
      { logger: log },
    );
    try {
      const s = slug('noredis');
      const pod = await other.pods.create({ slug: s, idleTimeout: '5s' });
      expect(pod.status).toBe('running');
      await own.kill();
      // Past twice its timeout by this machine's clock, looking every second: nothing to go on, nothing sleeps.
      const began = Date.now();
      await waitFor(
        async () => {
          expect(await other.sleepWake.checkIdle()).toEqual([]);
          return Date.now() - began > 11_000;
        },
        { timeoutMs: 60_000, intervalMs: 1000, what: '11 s without the store' },
      );
      expect(other.pods.get(s).status).toBe('running');
      expect(await containerState(s)).toBe('running');
      // Not even tried (the route write would fail as well), and said once.
      expect(logs.filter((l) => l.msg === 'idle pod not put to sleep')).toEqual([]);
      expect(logs.filter((l) => l.msg.startsWith('pod activity unreadable')).length).toBe(1);
      await own.restart();
      // Asleep from the moment its route says so; its container stops right after.
      await waitFor(async () => other.pods.get(s).status === 'sleeping' && (await containerState(s)) === 'exited', {
        timeoutMs: 90_000, intervalMs: 200, what: `${s} to fall asleep once the store is back`,
      });
    } finally {
      await other.close();
      await own.stop();
    }
  }, 240_000);
});

describe('waking up', () => {
  it('100 wake requests at once start the pod once', async () => {
    const s = slug('hundred');
    await create(s);
    await sleepByAdmin(s);
    const starts: string[] = [];
    const stream = (await realDocker.getEvents({ filters: { type: ['container'], event: ['start'], container: [`podgate-${s}`] } })) as NodeJS.ReadableStream & { destroy(): void };
    stream.on('data', (d: Buffer) => starts.push(d.toString()));
    try {
      await Promise.all(Array.from({ length: 100 }, () => gateway.requestWake(s)));
      await waitFor(async () => (await routeStatus(s)) === 'running', { timeoutMs: 90_000, intervalMs: 50, what: `${s} to wake` });
      // Another hundred while it runs: nothing to do.
      await Promise.all(Array.from({ length: 100 }, () => gateway.requestWake(s)));
      await waitFor(() => starts.length >= 1, { timeoutMs: 10_000, what: 'the start event' });
      // An admin call queues behind any wake that was still queued on the pod's lock.
      expect((await api('POST', `/v1/pods/${s}/restart`)).status).toBe(200);
      const wakes = (await events(s)).filter((e) => e.label === 'wake');
      expect(wakes.length).toBe(1);
      // The wake's start, then the restart's.
      await waitFor(() => starts.length >= 2, { timeoutMs: 10_000, what: "the restart's start event" });
      expect(starts.length).toBe(2);
    } finally {
      stream.destroy();
    }
  }, 180_000);

  it(`refuses more than POD_WAKE_LIMIT (${WAKE_LIMIT}) wakes by request per window, logging it once; the admin may still wake it`, async () => {
    const s = slug('limit');
    await create(s);
    for (let i = 0; i < WAKE_LIMIT; i++) {
      await sleepByAdmin(s);
      await wakeByRequest(s);
    }
    await sleepByAdmin(s);
    for (let i = 0; i < 5; i++) await gateway.requestWake(s);
    await waitFor(async () => (await events(s)).some((e) => e.label === 'wake refused'), { timeoutMs: 10_000, what: 'the refusal in the log' });
    for (let i = 0; i < 5; i++) await gateway.requestWake(s);
    // The admin's wake is not limited, and is answered after everything asked before it.
    const woken = await api('POST', `/v1/pods/${s}/wake`);
    expect(woken.status, woken.text).toBe(200);
    expect(woken.json.status).toBe('running');
    const log = await events(s);
    expect(log.map((e) => e.label)).toEqual(['sleep', 'wake', 'sleep', 'wake', 'sleep', 'wake refused', 'wake']);
    expect(log[5]!.note).toMatch(/^wake refused: 2 wakes within 3600 s \(POD_WAKE_LIMIT, POD_WAKE_WINDOW\); wakeable again in \d+ s$/);
    expect(log[6]!.note).toMatch(/^woken by the admin API, running \d+ ms after the wake was asked$/);
    expect(await metric(/^podgate_orchestrator_wakes_total\{reason="request",outcome="refused"\}/)).toBe(1);
  }, 240_000);

  it('a pod that fails to come up sleeps again with the reason, and POD_WAKE_LIMIT stops the retries', async () => {
    const s = slug('broken');
    // Its postStart hook fails on every start after the first.
    await create(s, { postStart: [{ command: '[ ! -e /workspace/broken ]', label: 'healthy' }] });
    expect((await exec(s, 'touch /workspace/broken && echo ok')).stdout).toBe('ok\n');
    await sleepByAdmin(s);
    // A gateway waiting for it asks again and again.
    await askToWakeUntil(s, async () => (await events(s)).some((e) => e.label === 'wake refused'), {
      timeoutMs: 120_000,
      intervalMs: 100,
      what: 'the wake limit to refuse',
    });
    const log = await events(s);
    expect(log.map((e) => e.label)).toEqual(['sleep', ...Array(WAKE_LIMIT).fill('wake'), 'wake refused']);
    for (const e of log.filter((e) => e.label === 'wake')) {
      expect(e.note).toMatch(/^wake by a request through a gateway failed: postStart hook "healthy" exited with 1; asleep again$/);
      expect(e.error).toMatch(/healthy/);
    }
    const pod = (await api('GET', `/v1/pods/${s}`)).json;
    expect(pod.status).toBe('sleeping');
    expect(pod.error).toMatch(/^wake failed: postStart hook "healthy" exited with 1/);
    expect(await routeStatus(s)).toBe('sleeping');
    expect(await containerState(s)).toBe('exited');
    // The admin's wake is told why, and leaves it asleep as well.
    const woken = await api('POST', `/v1/pods/${s}/wake`);
    expect(woken.status).toBe(502);
    expect(woken.json.error.code).toBe('pod_start_failed');
    expect(await status(s)).toBe('sleeping');
    expect(await metric(/^podgate_orchestrator_wakes_total\{reason="request",outcome="failed"\}/)).toBe(WAKE_LIMIT);
    expect(await metric(/^podgate_orchestrator_wakes_total\{reason="admin",outcome="failed"\}/)).toBe(1);
  }, 240_000);

  it('a wake for an unknown or deleted pod, or one an admin stopped, does nothing', async () => {
    const gone = slug('gone');
    const stopped = slug('stopped');
    const sentinel = slug('sentinel');
    await Promise.all([create(gone), create(stopped), create(sentinel)]);
    await gateway.touch([gone]);
    await sleepByAdmin(gone);
    expect((await api('DELETE', `/v1/pods/${gone}`)).status).toBe(204);
    // Its activity went with it.
    expect((await gateway.lastActive([gone])).last.has(gone)).toBe(false);
    expect((await api('POST', `/v1/pods/${stopped}/stop`)).status).toBe(200);
    await sleepByAdmin(sentinel);
    for (const s of [gone, stopped, 'nobody-here-at-all']) await gateway.requestWake(s);
    // Wake requests are handled in the order they were published: once the sentinel wakes, the others were judged.
    await wakeByRequest(sentinel);
    expect(await containerState(gone)).toBeUndefined();
    expect(await orch.routes.get(gone)).toBeUndefined();
    expect((await api('GET', `/v1/pods/${gone}`)).status).toBe(404);
    expect(await status(stopped)).toBe('stopped');
    expect(await routeStatus(stopped)).toBe('stopped');
    expect(await containerState(stopped)).toBe('exited');
    expect(await orch.routes.get('nobody-here-at-all')).toBeUndefined();
  }, 180_000);

  it('a wake asked while the pod falls asleep runs after the sleep and wakes it', async () => {
    const s = slug('fall');
    await create(s);
    const release = gate('stop', s);
    try {
      const sleeping = api('POST', `/v1/pods/${s}/sleep`);
      // The route says sleeping before the container stops.
      await waitFor(async () => (await routeStatus(s)) === 'sleeping', { timeoutMs: 10_000, what: 'the sleeping route' });
      expect(await containerState(s)).toBe('running');
      // Between states while its container stops; then sleeping.
      expect(await status(s)).toBe('stopping');
      await gateway.requestWake(s);
      await waitFor(() => orch.sleepWake.wakesUnderWay.has(s), { timeoutMs: 10_000, what: 'the wake to queue' });
      release();
      const slept = await sleeping;
      expect(slept.status, slept.text).toBe(200);
      expect(slept.json.status).toBe('sleeping');
    } finally {
      release();
    }
    await waitFor(async () => (await status(s)) === 'running', { timeoutMs: 90_000, what: `${s} to wake` });
    expect(await routeStatus(s)).toBe('running');
    expect((await events(s)).map((e) => e.label)).toEqual(['sleep', 'wake']);
  }, 180_000);

  it('an admin stop during a wake runs after it: the pod ends stopped, and further requests do not wake it', async () => {
    const s = slug('halt');
    await create(s);
    await sleepByAdmin(s);
    const release = gate('start', s);
    let stopping: ReturnType<RunningOrchestrator['pods']['stop']> | undefined;
    try {
      await gateway.requestWake(s);
      await waitFor(async () => (await routeStatus(s)) === 'starting', { timeoutMs: 10_000, what: 'the starting route' });
      // The admin API's stop, called in process: it is queued on the pod's lock before this line returns.
      stopping = orch.pods.stop(s);
      release();
    } finally {
      release();
    }
    expect((await stopping!).status).toBe('stopped');
    expect(await routeStatus(s)).toBe('stopped');
    expect(await containerState(s)).toBe('exited');
    expect((await events(s)).map((e) => e.label)).toEqual(['sleep', 'wake']);
    const sentinel = slug('halt-sentinel');
    await create(sentinel);
    await sleepByAdmin(sentinel);
    await gateway.requestWake(s);
    await wakeByRequest(sentinel);
    expect(await status(s)).toBe('stopped');
  }, 180_000);
});

describe('admin API', () => {
  it('sleep and wake: 409 for the wrong state, 404 for none; stop, start and delete of a sleeping pod', async () => {
    const s = slug('admin');
    await create(s);
    expect((await api('POST', '/v1/pods/nobody-here/sleep')).status).toBe(404);
    expect((await api('POST', '/v1/pods/nobody-here/wake')).status).toBe(404);
    expect((await api('POST', '/v1/pods/Not_A_Slug/wake')).json.error.field).toBe('slug');
    // Running: waking answers the pod as it is (like start).
    expect((await api('POST', `/v1/pods/${s}/wake`)).json.status).toBe('running');
    await sleepByAdmin(s);
    const again = await api('POST', `/v1/pods/${s}/sleep`);
    expect(again.status).toBe(409);
    expect(again.json.error.message).toMatch(/cannot sleep pod .* while it is sleeping/);
    expect(await containerState(s)).toBe('exited');
    // Stop of a sleeping pod: stopped, not wakeable by requests.
    const stopped = await api('POST', `/v1/pods/${s}/stop`);
    expect(stopped.json.status).toBe('stopped');
    expect(await routeStatus(s)).toBe('stopped');
    expect((await api('POST', `/v1/pods/${s}/wake`)).status).toBe(409);
    expect((await api('POST', `/v1/pods/${s}/sleep`)).status).toBe(409);
    // Start of a sleeping pod wakes it.
    expect((await api('POST', `/v1/pods/${s}/start`)).json.status).toBe('running');
    await sleepByAdmin(s);
    const started = await api('POST', `/v1/pods/${s}/start`);
    expect(started.json.status).toBe('running');
    const log = await events(s);
    expect(log.map((e) => e.label)).toEqual(['sleep', 'sleep', 'wake']);
    expect(log[0]!.note).toBe('asleep: asked by the admin API');
    expect(log[2]!.note).toMatch(/^woken by the admin API, running \d+ ms after the wake was asked$/);
    // Delete of a sleeping pod.
    await sleepByAdmin(s);
    expect((await api('DELETE', `/v1/pods/${s}`)).status).toBe(204);
    expect(await containerState(s)).toBeUndefined();
    expect(await orch.routes.get(s)).toBeUndefined();
  }, 180_000);
});

describe('orchestrator restart', () => {
  it('a sleeping pod stays asleep across a restart and wakes on request; with its route lost it comes back stopped', async () => {
    const s = slug('restart');
    const lost = slug('lost');
    await Promise.all([create(s), create(lost)]);
    await sleepByAdmin(s);
    await sleepByAdmin(lost);
    await orch.close();
    // Redis lost the second pod's route while no orchestrator ran.
    await gatewayRedis.hdel(routeKeys(PREFIX).routes, lost);
    const captured = capturedLogger('info');
    orch = await startOrchestrator(config, { logger: captured.log, docker });
    expect(await status(s)).toBe('sleeping');
    expect(await routeStatus(s)).toBe('sleeping');
    expect(await containerState(s)).toBe('exited');
    expect(await status(lost)).toBe('stopped');
    expect(await routeStatus(lost)).toBe('stopped');
    // Said, since nothing tells it from a pod an admin stopped.
    expect(captured.logs.filter((l) => l.msg.startsWith('stopped pod adopted without a route')).map((l) => l.slug)).toEqual([lost]);
    // The lost one is not woken by requests (judged before the other's, asked after it); an admin start brings it back.
    await gateway.requestWake(lost);
    await wakeByRequest(s);
    expect(await status(s)).toBe('running');
    expect(await status(lost)).toBe('stopped');
    expect((await api('POST', `/v1/pods/${lost}/start`)).json.status).toBe('running');
  }, 240_000);
});
