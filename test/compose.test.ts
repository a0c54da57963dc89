// docker-compose.yml as shipped, run for real with Debian's docker-compose 1.29: the offline images
// (docker/build-image.sh --compose), a password-protected Redis with its volume, the orchestrator creating a gVisor pod
// on this host's Docker, two gateway replicas serving it, one of them restarted, Redis recreated on its volume; then
// everything is taken down again.
// The project has a name, a pod namespace and ports of its own (38960-38999), and nothing of it outlives the file.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { LABELS } from '../orchestrator/container-runtime.ts';
import { createRedis, waitReady } from '../shared/redis.ts';
import type { Redis } from 'ioredis';
import { testPodImage, uniqueSlug } from './support/orchestrator.ts';
import { waitFor } from './support/wait.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BUILD_SCRIPT = join(ROOT, 'docker/build-image.sh');
/** A cold build: the base image's debootstrap (when missing), Debian's packages, npm ci --omit=dev, two builds. */
const BUILD_TIMEOUT_MS = 360_000;
const PORTS = { redis: 38960, orchestrator: 38961, gateway1: 38962, gateway1Admin: 38963, gateway2: 38964, gateway2Admin: 38965 };
const POD_PORT_RANGE = '38970-38999';
const APP_PORT = 3000;
const run = `${process.pid.toString(36)}${randomBytes(3).toString('hex')}`;
/** docker-compose project names: lowercase letters, digits, dashes and underscores. */
const PROJECT_STEM = 'podgate-test-compose-';
const NAMESPACE_STEM = 'podgate-test-compose-';
const PROJECT = `${PROJECT_STEM}${run}`;
const NAMESPACE = `${NAMESPACE_STEM}${run}`;
/** A run lasts a few minutes at most (a cold image build included): older projects of this file are leftovers. */
const STALE_AFTER_SECONDS = 30 * 60;
const ADMIN_TOKEN = randomBytes(24).toString('hex');
const MARKER_KEY = 'podgate-test:compose-volume';
const REDIS_PASSWORD = randomBytes(24).toString('hex');
const docker = new Docker();
let workDir: string;
let composeEnv: NodeJS.ProcessEnv;
let slug: string;

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

function exec(command: string, args: string[], timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd: ROOT, env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr: err && code === -1 ? `${stderr}\n${err.message}` : stderr });
    });
  });
}

/** docker-compose on this file's project; the variables come from composeEnv only (an empty --env-file: a developer's .env stays out). */
function compose(args: string[], timeoutMs = 120_000): Promise<Outcome> {
  return exec('docker-compose', ['--env-file', join(workDir, 'empty.env'), '-p', PROJECT, '-f', join(ROOT, 'docker-compose.yml'), ...args], timeoutMs, composeEnv);
}

async function mustCompose(args: string[], timeoutMs?: number): Promise<string> {
  const r = await compose(args, timeoutMs);
  if (r.code !== 0) throw new Error(`docker-compose ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}\n${await serviceLogs()}`);
  return r.stdout;
}

/** The services' last log lines, for a failure's message. */
async function serviceLogs(): Promise<string> {
  const r = await compose(['logs', '--no-color', '--tail', '30'], 30_000);
  return `docker-compose logs:\n${r.stdout}${r.stderr}`;
}

/** Run a check; on failure, its error carries the services' logs. */
async function withLogs<T>(check: () => Promise<T>): Promise<T> {
  try {
    return await check();
  } catch (err) {
    (err as Error).message += `\n${await serviceLogs()}`;
    throw err;
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function viaGateway(port: number, host: string, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', () => resolve({ status: 0, body: '' }));
    });
    // Refused while a gateway restarts: status 0, so waits can poll through it.
    req.once('error', () => resolve({ status: 0, body: '' }));
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`http://127.0.0.1:${PORTS.orchestrator}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(90_000),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

async function answers(url: string): Promise<boolean> {
  try {
    return (await fetch(url, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, signal: AbortSignal.timeout(5_000) })).ok;
  } catch {
    return false;
  }
}

/** Redis's first answer to a command sent without the password. */
function redisAnswerWithoutPassword(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port: PORTS.redis });
    let text = '';
    socket.setTimeout(5_000, () => socket.destroy(new Error('Redis did not answer')));
    socket.once('connect', () => socket.write('GET podgate:anything\r\n'));
    socket.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('\r\n')) {
        socket.destroy();
        resolve(text.trim());
      }
    });
    socket.once('error', reject);
  });
}

/** The local addresses listening on a TCP port (ss, IPv4 and IPv6). */
async function listeningAddresses(port: number): Promise<string[]> {
  const r = await exec('ss', ['-Hltn', `sport = :${port}`], 10_000);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => line.trim().split(/\s+/)[3]!.replace(/:\d+$/, ''));
}

/** One command on the compose Redis, with the password. */
async function redis<T>(command: (client: Redis) => Promise<T>): Promise<T> {
  const client = createRedis(`redis://:${REDIS_PASSWORD}@127.0.0.1:${PORTS.redis}`);
  client.on('error', () => {});
  try {
    await waitReady(client, 5_000);
    return await command(client);
  } finally {
    client.disconnect();
  }
}

async function startedAt(service: string): Promise<string> {
  const id = (await mustCompose(['ps', '-q', service])).trim();
  expect(id, `the ${service} container`).not.toBe('');
  return (await docker.getContainer(id).inspect()).State.StartedAt;
}

/** What is left of the project and of the pods its orchestrator made. */
async function leftovers(): Promise<string[]> {
  const project = { label: [`com.docker.compose.project=${PROJECT}`] };
  const pods = { label: [`${LABELS.namespace}=${NAMESPACE}`] };
  const [containers, volumes, networks, podContainers, podVolumes, podNetworks] = await Promise.all([
    docker.listContainers({ all: true, filters: project }),
    docker.listVolumes({ filters: project }),
    docker.listNetworks({ filters: project }),
    docker.listContainers({ all: true, filters: pods }),
    docker.listVolumes({ filters: pods }),
    docker.listNetworks({ filters: pods }),
  ]);
  return [
    ...[...containers, ...podContainers].map((c) => `container ${c.Names.join(',')}`),
    ...[...(volumes.Volumes ?? []), ...(podVolumes.Volumes ?? [])].map((v) => `volume ${v.Name}`),
    ...[...networks, ...podNetworks].map((n) => `network ${n.Name}`),
  ];
}

/**
 * docker-compose down (containers, the Redis volume, networks), then what the orchestrator made: every container,
 * volume and network of its namespace. Tolerant of what is already gone; returns what could not be removed.
 */
async function tearDown(): Promise<string[]> {
  const problems: string[] = [];
  const down = await compose(['down', '--volumes', '--remove-orphans', '--timeout', '10']);
  if (down.code !== 0) problems.push(`docker-compose down: ${down.stderr.trim()}`);
  const pods = { label: [`${LABELS.namespace}=${NAMESPACE}`] };
  for (const c of await docker.listContainers({ all: true, filters: pods })) {
    await docker.getContainer(c.Id).remove({ force: true }).catch((err: Error) => problems.push(`container ${c.Id}: ${err.message}`));
  }
  for (const v of (await docker.listVolumes({ filters: pods })).Volumes ?? []) {
    await docker.getVolume(v.Name).remove().catch((err: Error) => problems.push(`volume ${v.Name}: ${err.message}`));
  }
  for (const n of await docker.listNetworks({ filters: pods })) {
    await docker.getNetwork(n.Id).remove().catch((err: Error) => problems.push(`network ${n.Name}: ${err.message}`));
  }
  return problems;
}

/**
 * What a run killed before its teardown left (its services restart with the Docker daemon and hold the ports):
 * projects of this file older than any run lasts, their volumes, and the pods of their namespaces.
 */
async function sweepStaleRuns(): Promise<void> {
  const cutoff = Date.now() / 1000 - STALE_AFTER_SECONDS;
  const runs = new Set<string>();
  for (const c of await docker.listContainers({ all: true, filters: { label: ['com.docker.compose.project'] } })) {
    const project = c.Labels['com.docker.compose.project'] ?? '';
    if (project.startsWith(PROJECT_STEM) && project !== PROJECT && c.Created < cutoff) runs.add(project.slice(PROJECT_STEM.length));
  }
  for (const stale of runs) {
    const project = { label: [`com.docker.compose.project=${PROJECT_STEM}${stale}`] };
    const pods = { label: [`${LABELS.namespace}=${NAMESPACE_STEM}${stale}`] };
    for (const filters of [project, pods]) {
      for (const c of await docker.listContainers({ all: true, filters })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
      for (const v of (await docker.listVolumes({ filters })).Volumes ?? []) await docker.getVolume(v.Name).remove().catch(() => {});
      for (const n of await docker.listNetworks({ filters })) await docker.getNetwork(n.Id).remove().catch(() => {});
    }
  }
}

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'podgate-compose-'));
  await writeFile(join(workDir, 'empty.env'), '');
  await sweepStaleRuns();
  // These ports are in the kernel's ephemeral range too: a client socket may hold one for a moment.
  let taken: number[] = [];
  const free = async () => {
    taken = [];
    for (const port of Object.values(PORTS)) if (!(await portFree(port))) taken.push(port);
    return taken.length === 0;
  };
  await waitFor(free, { timeoutMs: 10_000, intervalMs: 500, what: 'free ports' }).catch(() => {
    throw new Error(`ports ${taken.join(', ')} are in use: this file needs 38960-38965 (and 38970-38999 for pods)`);
  });

  // The images: a no-op (about half a second) when their inputs are unchanged; scripts/setup.sh builds them too.
  const [build, podImage] = await Promise.all([exec('bash', [BUILD_SCRIPT, '--compose', '--quiet'], BUILD_TIMEOUT_MS), testPodImage()]);
  if (build.code !== 0) throw new Error(`docker/build-image.sh --compose failed (${build.code}): ${build.stderr}`);

  composeEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DOCKER_HOST: process.env.DOCKER_HOST,
    PODGATE_APP_IMAGE: process.env.PODGATE_APP_IMAGE,
    PODGATE_REDIS_IMAGE: process.env.PODGATE_REDIS_IMAGE,
    ADMIN_TOKEN,
    REDIS_PASSWORD,
    REDIS_PORT: String(PORTS.redis),
    ORCHESTRATOR_PORT: String(PORTS.orchestrator),
    GATEWAY_1_HTTP_PORT: String(PORTS.gateway1),
    GATEWAY_1_ADMIN_PORT: String(PORTS.gateway1Admin),
    GATEWAY_2_HTTP_PORT: String(PORTS.gateway2),
    GATEWAY_2_ADMIN_PORT: String(PORTS.gateway2Admin),
    // Test traffic stays on loopback; one worker per replica on a shared 2-core machine.
    GATEWAY_HTTP_HOST: '127.0.0.1',
    GATEWAY_WORKERS: '1',
    POD_PORT_RANGE,
    POD_NAMESPACE: NAMESPACE,
    POD_IMAGE: podImage,
    BASE_DOMAINS: 'localhost',
    LOG_LEVEL: 'info',
  };
  for (const [key, value] of Object.entries(composeEnv)) if (value === undefined) delete composeEnv[key];

  await mustCompose(['up', '-d'], 180_000);
  await withLogs(async () => {
    await waitFor(() => answers(`http://127.0.0.1:${PORTS.orchestrator}/v1/pods`), { timeoutMs: 60_000, intervalMs: 200, what: "the orchestrator's admin API" });
    await waitFor(() => answers(`http://127.0.0.1:${PORTS.gateway1Admin}/readyz`), { timeoutMs: 60_000, intervalMs: 200, what: 'gateway-1 ready' });
    await waitFor(() => answers(`http://127.0.0.1:${PORTS.gateway2Admin}/readyz`), { timeoutMs: 60_000, intervalMs: 200, what: 'gateway-2 ready' });
  });
}, BUILD_TIMEOUT_MS + 300_000);

afterAll(async () => {
  if (composeEnv) {
    const problems = await tearDown();
    if (problems.length) console.error(`compose test: teardown left ${problems.join('; ')}`);
  }
  if (workDir) await rm(workDir, { recursive: true, force: true });
}, 120_000);

describe('docker-compose.yml on this machine', () => {
  it('Redis wants its password; every admin port listens on loopback only', async () => {
    expect(await redisAnswerWithoutPassword()).toMatch(/^-NOAUTH/);
    for (const port of [PORTS.redis, PORTS.orchestrator, PORTS.gateway1Admin, PORTS.gateway2Admin]) {
      expect(await listeningAddresses(port), `port ${port}`).toEqual(['127.0.0.1']);
    }
  });

  it('a pod created through the orchestrator is reached through both gateway replicas', () =>
    withLogs(async () => {
      slug = uniqueSlug('compose');
      const created = await api('POST', '/v1/pods', { slug, access: { default: 'public' }, services: [{ name: 'app', port: APP_PORT }] });
      expect(created.status, JSON.stringify(created.json)).toBe(201);
      const [low, high] = POD_PORT_RANGE.split('-').map(Number);
      expect(created.json.hostPort).toBeGreaterThanOrEqual(low!);
      expect(created.json.hostPort).toBeLessThanOrEqual(high!);
      const container = await docker.getContainer(`podgate-${slug}`).inspect();
      expect(container.HostConfig.Runtime).toBe('runsc');
      expect(container.Config.Labels?.[LABELS.namespace]).toBe(NAMESPACE);

      const host = `localhost-${APP_PORT}.pod-${slug}.localhost`;
      for (const port of [PORTS.gateway1, PORTS.gateway2]) {
        await waitFor(async () => (await viaGateway(port, host)).status === 200, { timeoutMs: 30_000, intervalMs: 100, what: `the pod through the gateway on ${port}` });
        // The pod's own answer: its CGI echo names the Host the gateway kept.
        const echo = await viaGateway(port, host, '/cgi-bin/echo');
        expect(echo.status).toBe(200);
        expect(echo.body.toLowerCase()).toContain(host);
      }
    }));

  it('is still reached after docker-compose restart of one gateway', () =>
    withLogs(async () => {
      expect(slug, 'the pod of the test before').toBeDefined();
      const host = `pod-${slug}.localhost`;
      const before = await startedAt('gateway-2');
      await mustCompose(['restart', '--timeout', '10', 'gateway-2']);
      expect(await startedAt('gateway-2')).not.toBe(before);
      // The other replica served throughout; the restarted one serves again once it has read the route table.
      expect((await viaGateway(PORTS.gateway1, host)).status).toBe(200);
      await waitFor(async () => (await viaGateway(PORTS.gateway2, host)).status === 200, { timeoutMs: 30_000, intervalMs: 100, what: 'the restarted gateway-2 serving the pod' });
      expect((await viaGateway(PORTS.gateway1, host)).status).toBe(200);
    }));

  it("Redis's data lives on its volume: a recreated Redis container still holds it, and both gateways serve on", () =>
    withLogs(async () => {
      expect(slug, 'the pod of the test before').toBeDefined();
      // A key of this test's own: the orchestrator would write its routes again into an empty Redis, this nobody.
      const marker = randomBytes(8).toString('hex');
      await redis((c) => c.set(MARKER_KEY, marker));
      const oldId = (await mustCompose(['ps', '-q', 'redis'])).trim();
      await mustCompose(['up', '-d', '--force-recreate', '--no-deps', 'redis']);
      const newId = (await mustCompose(['ps', '-q', 'redis'])).trim();
      expect(newId).not.toBe(oldId);
      const mounts = (await docker.getContainer(newId).inspect()).Mounts.map((m) => `${m.Name}:${m.Destination}`);
      expect(mounts).toEqual([`${PROJECT}_redis-data:/data`]);
      await waitFor(async () => (await redis((c) => c.ping()).catch(() => '')) === 'PONG', { timeoutMs: 30_000, intervalMs: 200, what: 'the new Redis container' });
      expect(await redis((c) => c.get(MARKER_KEY))).toBe(marker);
      for (const port of [PORTS.gateway1, PORTS.gateway2]) {
        await waitFor(async () => (await viaGateway(port, `pod-${slug}.localhost`)).status === 200, { timeoutMs: 30_000, intervalMs: 100, what: `the pod through the gateway on ${port}` });
      }
    }));

  it('the app image holds the application as JavaScript and the production dependencies, no tests, no dev tools, no .env', async () => {
    const image = process.env.PODGATE_APP_IMAGE ?? 'podgate/app:dev';
    const script = [
      'ls -A /app',
      'echo ---',
      'find /app -path /app/node_modules -prune -o \\( -name "*.ts" -o -name "*.test.*" -o -name "*.contract.*" \\) -print',
      'echo ---',
      'ls /app/node_modules/hono /app/node_modules/vitest /app/node_modules/typescript 2>&1 | grep -c "No such file"',
      'id -un',
    ].join('; ');
    const r = await exec('docker', ['run', '--rm', '--network', 'none', image, 'sh', '-c', script], 60_000);
    expect(r.code, r.stderr).toBe(0);
    const [listing, tests, rest] = r.stdout.split('---\n');
    expect(listing!.split('\n').filter(Boolean).sort()).toEqual(['config', 'gateway', 'main.js', 'node_modules', 'orchestrator', 'package-lock.json', 'package.json', 'shared']);
    expect(tests).toBe('');
    // hono there; vitest and typescript (devDependencies) not; the process is not root.
    expect(rest!.trim().split('\n')).toEqual(['2', 'podgate']);
  });

  it('the upstream variant (docker-compose.upstream.yml) builds the app from Dockerfile.podgate and runs redis:7', async () => {
    const r = await exec('docker-compose', ['--env-file', join(workDir, 'empty.env'), '-p', PROJECT, '-f', join(ROOT, 'docker-compose.yml'),
      '-f', join(ROOT, 'docker-compose.upstream.yml'), 'config'], 30_000, { ...composeEnv, PODGATE_APP_IMAGE: undefined, PODGATE_REDIS_IMAGE: undefined });
    expect(r.code, r.stderr).toBe(0);
    const config = r.stdout;
    for (const service of ['orchestrator', 'gateway-1', 'gateway-2']) {
      const block = config.slice(config.indexOf(`  ${service}:\n`)).split(/\n  \S/)[0]!;
      expect(block, service).toContain('dockerfile: docker/Dockerfile.podgate');
      expect(block, service).toContain('image: podgate/app:upstream');
      expect(block, service).toContain('network_mode: host');
    }
    expect(config).toContain('image: redis:7-bookworm');
  });

  it('docker-compose down and the pod cleanup leave no container, volume or network behind', async () => {
    expect(await leftovers()).not.toEqual([]);
    expect(await tearDown()).toEqual([]);
    expect(await leftovers()).toEqual([]);
  });
});
