// The orchestrator end to end against a real Docker daemon with gVisor and a real Redis: admin API, lifecycle,
// rollback, reconcile after changes behind its back, restart of the orchestrator, Redis data loss, isolation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { createServer } from 'node:net';
import Docker from 'dockerode';
import { pino } from 'pino';
import { createRedis, waitReady } from '../shared/redis.ts';
import { ROUTER_KEY_HEADER } from '../shared/route.ts';
import { LABELS } from './container-runtime.ts';
import { startRedis, type RedisServer } from '../test/support/redis-server.ts';
import { waitFor } from '../test/support/wait.ts';
import type { OrchestratorConfig } from './config.ts';
import { startOrchestrator, type RunningOrchestrator } from './main.ts';
import { portKeys } from './redis-port-allocator.ts';
import { removePods, testOrchestratorConfig, testPodImage, uniqueSlug } from '../test/support/orchestrator.ts';

const TOKEN = 'test-token-0123456789abcdef';
const PREFIX = `orch${process.pid}:`;
const docker = new Docker();
const slugs = new Set<string>();
let redis: RedisServer;
let image: string;
let config: OrchestratorConfig;
let orch: RunningOrchestrator;
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

function slug(stem: string): string {
  const s = uniqueSlug(stem);
  slugs.add(s);
  return s;
}

async function api(method: string, path: string, body?: unknown, token = TOKEN): Promise<{ status: number; json: any }> {
  const res = await fetch(`http://127.0.0.1:${orch.port}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

/** GET through the pod's host port, as a gateway would (Host names the pod, the route's router key goes along). */
function viaHostPort(port: number, host: string, routerKey: string | undefined): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers = { host, ...(routerKey === undefined ? {} : { [ROUTER_KEY_HEADER]: routerKey }) };
    const req = request({ host: '127.0.0.1', port, path: '/', headers, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.once('error', reject);
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

async function containerExists(s: string): Promise<boolean> {
  return docker.getContainer(`podgate-${s}`).inspect().then(() => true, () => false);
}
async function networkExists(s: string): Promise<boolean> {
  return docker.getNetwork(`podgate-${s}`).inspect().then(() => true, () => false);
}
async function volumeExists(s: string): Promise<boolean> {
  return docker.getVolume(`podgate-${s}-workspace`).inspect().then(() => true, () => false);
}
/** The file the workspace tests leave in a pod's /workspace, read back through the exec API. */
async function workspaceFile(s: string): Promise<string> {
  return (await api('POST', `/v1/pods/${s}/exec`, { command: 'cat /workspace/kept.txt' })).json.stdout;
}

beforeAll(async () => {
  [redis, image] = await Promise.all([startRedis(), testPodImage()]);
  // The egress policy on, as where podgate runs as root: readiness and routing must work through it.
  config = testOrchestratorConfig({ ADMIN_TOKEN: TOKEN, REDIS_URL: redis.url, REDIS_PREFIX: PREFIX, POD_PORT_RANGE: '38100-38199', POD_IMAGE: image, POD_EGRESS_POLICY: 'on' });
  orch = await startOrchestrator(config, { logger });
});

afterAll(async () => {
  await orch?.close();
  await removePods(slugs);
  await redis?.stop();
});

describe('admin API borders', () => {
  it('requires the bearer token', async () => {
    expect((await api('GET', '/v1/pods', undefined, 'wrong-token-wrong-token')).status).toBe(401);
    const res = await fetch(`http://127.0.0.1:${orch.port}/v1/pods`);
    expect(res.status).toBe(401);
    expect((await res.json()).error.code).toBe('unauthorized');
    expect((await fetch(`http://127.0.0.1:${orch.port}/healthz`)).status).toBe(200);
  });

  it('answers a bad spec with 400 naming the field, and creates nothing', async () => {
    const cases: [unknown, string][] = [
      [{ slug: 'Bad_Slug' }, 'slug'],
      [{ slug: 'ok', tier: 'dev.huge' }, 'tier'],
      [{ slug: 'ok', services: [{ name: 'web', port: 70000 }] }, 'services[0].port'],
      [{ slug: 'ok', environment: { '1BAD': 'x' } }, 'environment.1BAD'],
      [{ slug: 'ok', labels: { 'podgate.slug': 'evil' } }, 'labels.podgate.slug'],
      [{ slug: 'ok', unknownField: 1 }, 'body'],
      [{ slug: 'ok', postStart: [{ command: [] }] }, 'postStart[0].command'],
    ];
    for (const [body, field] of cases) {
      const r = await api('POST', '/v1/pods', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.error.field, JSON.stringify(body)).toBe(field);
    }
    const bad = await api('POST', '/v1/pods', '{not json');
    expect(bad.status).toBe(400);
    expect(bad.json.error.field).toBe('body');
    expect((await api('GET', '/v1/pods/Not_A_Slug')).json.error.field).toBe('slug');
    expect((await api('GET', '/v1/pods')).json.pods).toEqual([]);
  });

  it('an image the Docker host does not have is a 400 on the image field, and nothing is made', async () => {
    const s = slug('noimage');
    const r = await api('POST', '/v1/pods', { slug: s, image: 'podgate/not-here:never' });
    expect(r.status).toBe(400);
    expect(r.json.error.field).toBe('image');
    expect(await containerExists(s)).toBe(false);
    expect(await networkExists(s)).toBe(false);
    expect(Object.values(await createRedisOwners()).some((v) => v.startsWith(`${s}|`))).toBe(false);
    expect((await api('GET', `/v1/pods/${s}`)).status).toBe(404);
  });

  it('404 for unknown pods and endpoints', async () => {
    expect((await api('GET', '/v1/pods/nobody-here')).status).toBe(404);
    expect((await api('POST', '/v1/pods/nobody-here/stop')).status).toBe(404);
    expect((await api('DELETE', '/v1/pods/nobody-here')).status).toBe(404);
    expect((await api('GET', '/v1/nothing')).status).toBe(404);
  });

  it('a daemon without the configured runtime fails creation with instructions', async () => {
    const other = await startOrchestrator({ ...config, runtime: 'no-such-runtime', adminPort: 0, redisPrefix: `${PREFIX}rt:` }, { logger });
    try {
      const res = await fetch(`http://127.0.0.1:${other.port}/v1/pods`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify({ slug: slug('rt') }),
      });
      expect(res.status).toBe(503);
      expect((await res.json()).error.message).toMatch(/daemon\.json/);
    } finally {
      await other.close();
    }
  });
});

describe('pod lifecycle', () => {
  it('create, exec, stop, start, restart, delete: the route follows and nothing is left behind', async () => {
    const s = slug('life');
    const created = await api('POST', '/v1/pods', {
      slug: s,
      name: 'Life',
      tier: 'dev.medium',
      services: [{ name: 'app', port: 3000 }],
      postStart: [{ command: 'echo provisioned', label: 'hello' }],
      labels: { team: 'qa' },
    });
    expect(created.status, JSON.stringify(created.json)).toBe(201);
    const pod = created.json;
    expect(pod).toMatchObject({ slug: s, name: 'Life', status: 'running', tier: 'dev.medium', defaultPort: 3000, labels: { team: 'qa' } });
    // The tier reaches Docker: dev.medium is 1 CPU guaranteed (1024 shares), at most 2 (fewer on a smaller host), 2 GiB.
    const hostConfig = (await docker.getContainer(`podgate-${s}`).inspect()).HostConfig;
    const hostCpus = (await docker.info()).NCPU as number;
    expect(hostConfig).toMatchObject({ CpuShares: 1024, NanoCpus: Math.min(2, hostCpus) * 1e9, Memory: 2 * 1024 ** 3, MemorySwap: 2 * 1024 ** 3 });
    expect(pod.hostPort).toBeGreaterThanOrEqual(38100);
    expect(pod.hostPort).toBeLessThanOrEqual(38199);
    expect(pod.url).toBe(`http://pod-${s}.localhost/`);
    expect(pod.services).toEqual([{ name: 'app', port: 3000, url: `http://localhost-3000.pod-${s}.localhost/` }]);

    const route = await orch.routes.get(s);
    expect(route).toMatchObject({ slug: s, host: '127.0.0.1', port: pod.hostPort, status: 'running', defaultPort: 3000 });
    // The pod's router key: made at create, in the route for the gateways, in the container (env and label).
    const key = route!.routerKey!;
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    const container = await docker.getContainer(`podgate-${s}`).inspect();
    expect(container.Config.Labels[LABELS.routerKey]).toBe(key);
    expect(container.Config.Env).toContain(`PODGATE_ROUTER_KEY=${key}`);
    // Not in what the admin API shows.
    expect(JSON.stringify(pod)).not.toContain(key);
    expect(JSON.stringify((await api('GET', '/v1/routes')).json)).not.toContain(key);
    // The host port serves nothing without it (any local process, a browser page): 403.
    const direct = await viaHostPort(pod.hostPort, `pod-${s}.localhost`, undefined);
    expect(direct.status).toBe(403);
    expect(direct.body).not.toContain('demo app');
    // The router sends the pod's own hostname to the default port: the image's demo app.
    const first = await viaHostPort(pod.hostPort, `pod-${s}.localhost`, key);
    expect(first.status).toBe(200);
    expect(first.body).toContain('podgate demo app on port 3000');
    expect((await api('GET', '/v1/routes')).json.routes.map((r: { slug: string }) => r.slug)).toContain(s);
    expect((await api('GET', `/v1/pods/${s}`)).json.status).toBe('running');

    // The sandbox is gVisor: its own kernel log.
    const dmesg = await api('POST', `/v1/pods/${s}/exec`, { command: ['dmesg'], label: 'prove-gvisor' });
    expect(dmesg.status).toBe(200);
    expect(dmesg.json.stdout).toMatch(/gVisor/);
    const failing = await api('POST', `/v1/pods/${s}/exec`, { command: 'echo out; echo err >&2; exit 4' });
    expect(failing.json).toMatchObject({ exitCode: 4, stdout: 'out\n', stderr: 'err\n', label: 'exec' });
    const logs = await api('GET', `/v1/pods/${s}/logs?limit=10`);
    expect(logs.json.entries.map((e: { label: string }) => e.label)).toEqual(['exec', 'prove-gvisor', 'hello']);
    expect(logs.json.entries[2]).toMatchObject({ exitCode: 0, stdout: 'provisioned\n' });
    expect(logs.json.entries[0].durationMs).toBeGreaterThanOrEqual(0);
    expect((await api('GET', `/v1/pods/${s}/logs?limit=0`)).status).toBe(400);

    // The developer's work: on the pod's own volume, as the pod user; it stays through stop, start and restart.
    const wrote = await api('POST', `/v1/pods/${s}/exec`, { command: 'pwd; id -un; echo mine > kept.txt' });
    expect(wrote.json.stdout).toBe('/workspace\ndev\n');
    expect(await volumeExists(s)).toBe(true);

    const gen1 = route!.generation;
    const stopped = await api('POST', `/v1/pods/${s}/stop`);
    expect(stopped.json.status).toBe('stopped');
    const r2 = await orch.routes.get(s);
    expect(r2).toMatchObject({ status: 'stopped', port: pod.hostPort });
    expect(r2!.generation).toBeGreaterThan(gen1);
    expect((await docker.getContainer(`podgate-${s}`).inspect()).State.Status).toBe('exited');
    expect((await api('POST', `/v1/pods/${s}/exec`, { command: 'true' })).status).toBe(409);

    const started = await api('POST', `/v1/pods/${s}/start`);
    expect(started.json.status).toBe('running');
    expect((await orch.routes.get(s))?.status).toBe('running');
    // Running again means serving again (the route goes running only once the app is ready), with the same key: it
    // lives as long as the container.
    expect((await orch.routes.get(s))?.routerKey).toBe(key);
    const again = await viaHostPort(pod.hostPort, `pod-${s}.localhost`, key);
    expect(again.status).toBe(200);
    expect(again.body).toContain('podgate demo app on port 3000');

    const restarted = await api('POST', `/v1/pods/${s}/restart`);
    expect(restarted.json.status).toBe('running');
    expect(restarted.json.hostPort).toBe(pod.hostPort);
    expect((await orch.routes.get(s))?.routerKey).toBe(key);
    expect(await workspaceFile(s)).toBe('mine\n');

    expect((await api('DELETE', `/v1/pods/${s}`)).status).toBe(204);
    expect((await api('GET', `/v1/pods/${s}`)).status).toBe(404);
    expect(await orch.routes.get(s)).toBeUndefined();
    expect(await containerExists(s)).toBe(false);
    expect(await networkExists(s)).toBe(false);
    expect(await volumeExists(s)).toBe(false);
    const owners = await createRedisOwners();
    expect(Object.values(owners).some((v) => v.startsWith(`${s}|`))).toBe(false);
  });

  it('a creation that fails half-way is rolled back completely, and its log kept', async () => {
    const s = slug('fail');
    const r = await api('POST', '/v1/pods', { slug: s, postStart: [{ command: 'echo going down; exit 7', label: 'breaks' }] });
    expect(r.status).toBe(502);
    expect(r.json.error.code).toBe('pod_start_failed');
    expect(r.json.error.message).toMatch(/breaks/);
    expect(await containerExists(s)).toBe(false);
    expect(await networkExists(s)).toBe(false);
    expect(await volumeExists(s)).toBe(false);
    expect(await orch.routes.get(s)).toBeUndefined();
    const owners = await createRedisOwners();
    expect(Object.values(owners).some((v) => v.startsWith(`${s}|`))).toBe(false);
    expect((await api('GET', `/v1/pods/${s}`)).status).toBe(404);
    const logs = await api('GET', `/v1/pods/${s}/logs`);
    expect(logs.json.entries[0]).toMatchObject({ label: 'breaks', exitCode: 7, stdout: 'going down\n' });
  });

  it('a host port Docker finds taken at start is skipped, and the pod starts on another', async () => {
    // As with a remote Docker host, where ports cannot be probed from here: Docker's bind error is the backstop.
    const blocker = createServer();
    await new Promise<void>((resolve, reject) => blocker.once('error', reject).listen({ host: '127.0.0.1', port: 38420 }, resolve));
    const other = await startOrchestrator(
      { ...config, adminPort: 0, redisUrl: undefined, portRange: { first: 38420, last: 38421 }, namespace: `${config.namespace}-busy` },
      { logger, probeHostPorts: false },
    );
    try {
      const s = slug('busy');
      const pod = await other.pods.create({ slug: s });
      expect(pod).toMatchObject({ status: 'running', hostPort: 38421 });
      await other.pods.delete(s);
    } finally {
      await other.close();
      await new Promise<void>((r) => blocker.close(() => r()));
    }
  });

  it('a second create of the same slug is a conflict', async () => {
    const s = slug('dup');
    const first = api('POST', '/v1/pods?wait=false', { slug: s });
    const accepted = await first;
    expect(accepted.status).toBe(202);
    expect(['pending', 'provisioning', 'starting', 'running']).toContain(accepted.json.status);
    expect((await api('POST', '/v1/pods', { slug: s })).status).toBe(409);
    await waitFor(async () => (await api('GET', `/v1/pods/${s}`)).json.status === 'running', { timeoutMs: 60_000, what: 'async create' });
    expect((await api('DELETE', `/v1/pods/${s}`)).status).toBe(204);
  });
});

async function createRedisOwners(): Promise<Record<string, string>> {
  const c = createRedis(redis.url);
  try {
    await waitReady(c);
    return await c.hgetall(portKeys(`${PREFIX}host:127.0.0.1:`).owners);
  } finally {
    c.disconnect();
  }
}

describe('reconcile: Docker is the source of truth', () => {
  it('follows a container killed and removed behind its back', async () => {
    const s = slug('kill');
    const pod = (await api('POST', '/v1/pods', { slug: s })).json;
    expect(pod.status).toBe('running');
    await docker.getContainer(`podgate-${s}`).kill();
    await waitFor(async () => (await orch.routes.get(s))?.status === 'stopped', { timeoutMs: 20_000, what: 'route marked stopped' });
    expect((await api('GET', `/v1/pods/${s}`)).json.status).toBe('stopped');
    await docker.getContainer(`podgate-${s}`).remove({ force: true });
    await waitFor(async () => (await orch.routes.get(s)) === undefined, { timeoutMs: 20_000, what: 'route removed' });
    expect((await api('GET', `/v1/pods/${s}`)).status).toBe(404);
    await waitFor(async () => !Object.values(await createRedisOwners()).some((v) => v.startsWith(`${s}|`)), { what: 'port released' });
    // The network and the workspace stay orphans until orphaned for a while; reconcile reports them meanwhile.
    const report = await orch.reconciler.reconcile();
    expect(report.orphans.some((o) => o.kind === 'network' && o.name === `podgate-${s}`)).toBe(true);
    expect(report.orphans).toContainEqual({ kind: 'volume', name: `podgate-${s}-workspace`, reason: 'no pod', removed: false });
    expect(await volumeExists(s)).toBe(true);
    await docker.getNetwork(`podgate-${s}`).remove();
    await docker.getVolume(`podgate-${s}-workspace`).remove();
  });

  it('a restarted orchestrator, and one whose Redis lost its data, loses nothing', async () => {
    const s = slug('keep');
    const pod = (await api('POST', '/v1/pods', { slug: s, defaultPort: 7681, services: [{ name: 'terminal', port: 7681 }] })).json;
    expect(pod.status).toBe('running');

    // Made public after creation: the container's labels cannot say so, the route does.
    expect((await api('PUT', `/v1/pods/${s}/access`, { default: 'public', ports: {} })).status).toBe(200);
    expect((await orch.routes.get(s))?.access).toEqual({ default: 'public', ports: {} });
    const key = (await orch.routes.get(s))!.routerKey!;
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect((await api('POST', `/v1/pods/${s}/exec`, { command: 'echo still > /workspace/kept.txt' })).json.exitCode).toBe(0);

    await orch.close();
    orch = await startOrchestrator(config, { logger });
    expect((await orch.routes.get(s))?.access).toEqual({ default: 'public', ports: {} });
    expect((await orch.routes.get(s))?.routerKey).toBe(key);
    expect((await api('GET', `/v1/pods/${s}/access`)).json.access).toEqual({ default: 'public', ports: {} });
    const adopted = (await api('GET', `/v1/pods/${s}`)).json;
    expect(adopted).toMatchObject({ slug: s, status: 'running', hostPort: pod.hostPort, defaultPort: 7681 });
    expect(adopted.services).toEqual(pod.services);
    expect((await orch.routes.get(s))?.port).toBe(pod.hostPort);

    // Redis loses everything: reconcile republishes the route and claims the port back.
    const c = createRedis(redis.url);
    await waitReady(c);
    await c.flushall();
    c.disconnect();
    // (The orchestrator notices the loss by itself within a second, so which pass repairs it is not asserted.)
    await orch.reconciler.reconcile();
    // With the container's own router key (read back from its label), so the gateways keep reaching it.
    expect(await orch.routes.get(s)).toMatchObject({ status: 'running', port: pod.hostPort, defaultPort: 7681, routerKey: key });
    expect((await viaHostPort(pod.hostPort, `pod-${s}.localhost`, key)).body).toContain('<title>pod terminal</title>');
    expect((await createRedisOwners())[String(pod.hostPort)]).toMatch(new RegExp(`^${s}\\|`));

    // Reconcile after a restart and a loss never touches the workspace of a pod it knows.
    expect((await orch.reconciler.reconcile()).orphans.map((o) => o.name)).not.toContain(`podgate-${s}-workspace`);
    expect(await workspaceFile(s)).toBe('still\n');

    // Someone deletes the route by hand: it comes back.
    const route = (await orch.routes.get(s))!;
    await orch.routes.delete(s, route.generation);
    await waitFor(async () => (await orch.routes.get(s)) !== undefined, { timeoutMs: 20_000, what: 'route republished' });
    expect((await api('DELETE', `/v1/pods/${s}`)).status).toBe(204);
  });
});

describe('isolation', () => {
  /** `nc -v -z` from inside a pod: the exec call itself must succeed (200), whatever the connection does. */
  async function connect(from: string, host: string, port: number): Promise<{ exitCode: number; stderr: string }> {
    const r = await api('POST', `/v1/pods/${from}/exec`, { command: ['nc', '-v', '-z', '-w', '3', host, String(port)], timeoutMs: 20_000 });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json.timedOut).toBe(false);
    return { exitCode: r.json.exitCode, stderr: r.json.stderr };
  }

  it('pod A cannot open a connection to pod B', async () => {
    const a = slug('iso-a');
    const b = slug('iso-b');
    const [ra, rb] = await Promise.all([api('POST', '/v1/pods', { slug: a }), api('POST', '/v1/pods', { slug: b })]);
    expect(ra.status).toBe(201);
    expect(rb.status).toBe(201);
    const infoB = await docker.getContainer(`podgate-${b}`).inspect();
    const ipB = infoB.NetworkSettings.Networks[`podgate-${b}`]!.IPAddress;
    const infoA = await docker.getContainer(`podgate-${a}`).inspect();
    const gatewayA = infoA.NetworkSettings.Networks[`podgate-${a}`]!.Gateway;
    const hostPortB = rb.json.hostPort as number;
    // Controls: the same command reaches A's own router, and B's router answers on B's address and on its
    // published port, so the failures below are the network's, not the tool's or B's.
    expect(await connect(a, '127.0.0.1', 80)).toMatchObject({ exitCode: 0, stderr: expect.stringMatching(/succeeded/) });
    expect(await connect(b, ipB, 80)).toMatchObject({ exitCode: 0, stderr: expect.stringMatching(/succeeded/) });
    expect((await viaHostPort(hostPortB, `pod-${b}.localhost`, (await orch.routes.get(b))?.routerKey)).status).toBe(200);
    // B's container address on B's network: the egress policy refuses another pod's bridge (Docker, which
    // isolates bridge networks too, would drop the packets without an answer).
    expect(await connect(a, ipB, 80)).toEqual({ exitCode: 1, stderr: `nc: connect to ${ipB} port 80 (tcp) failed: No route to host\n` });
    // B's published port through the host side of A's bridge: the host's own address, refused by the egress
    // policy (and bound to 127.0.0.1 only).
    expect(await connect(a, gatewayA, hostPortB)).toEqual({ exitCode: 1, stderr: `nc: connect to ${gatewayA} port ${hostPortB} (tcp) failed: No route to host\n` });
    await Promise.all([api('DELETE', `/v1/pods/${a}`), api('DELETE', `/v1/pods/${b}`)]);
  });
});
