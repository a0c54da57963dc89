// PodService when Docker fails in the middle of an operation, against real Docker (gVisor) and a real Redis.
// Docker cannot be asked to fail a stop or a remove, so the real runtime is wrapped and one call made to throw the
// error Docker gives; everything else is real. What must hold: no pod stays between states (`stopping`,
// `terminating`: no operation accepts those), its state and route come from what Docker reports, the API says
// what went wrong, and a retry works.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Docker from 'dockerode';
import { pino } from 'pino';
import { isRevoked, type AccessStore } from '../shared/access-store.ts';
import { AccessTokens, generateSecret } from '../shared/access-token.ts';
import { createRedis, waitReady } from '../shared/redis.ts';
import { RedisAccessStore } from '../shared/redis-access-store.ts';
import { RedisRouteStore } from '../shared/redis-route-store.ts';
import { startRedis, type RedisServer } from '../test/support/redis-server.ts';
import { waitFor } from '../test/support/wait.ts';
import { createAccessApi, podAccessControl } from './access-api.ts';
import { createApi } from './api.ts';
import type { ContainerRuntime } from './container-runtime.ts';
import { DockerRuntime } from './docker-runtime.ts';
import { MemoryExecLog } from './exec-log.ts';
import { isPortBindable } from './port-allocator.ts';
import { PodService, PodTable } from './pods.ts';
import { RedisPortAllocator } from './redis-port-allocator.ts';
import { POD_RUNTIME, POOLS_EXHAUSTED_TEXT, removePods, testPodImage, uniqueSlug, withNetworkCreateError } from '../test/support/orchestrator.ts';

const TOKEN = 'pods-test-token-0123456789';
const namespace = `pods-${process.pid}-${Date.now().toString(36)}`;
const docker = new Docker();
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const slugs = new Set<string>();
let server: RedisServer;
let redis: ReturnType<typeof createRedis>;
let image: string;

beforeAll(async () => {
  [server, image] = await Promise.all([startRedis(), testPodImage()]);
  redis = createRedis(server.url);
  await waitReady(redis);
});
afterAll(async () => {
  await removePods(slugs);
  redis?.disconnect();
  await server?.stop();
});

/** An error as dockerode reports a daemon's 500 (same shape: message, statusCode, json). */
function dockerError(statusCode: number, message: string): Error {
  return Object.assign(new Error(`(HTTP code ${statusCode}) server error - ${message} `), { statusCode, reason: 'server error', json: { message } });
}

type Fault = (...args: unknown[]) => Promise<never>;

/** The real runtime; a call named in `faults` runs the fault instead, once. */
function faultyRuntime(real: ContainerRuntime): { runtime: ContainerRuntime; faults: Map<keyof ContainerRuntime, Fault> } {
  const faults = new Map<keyof ContainerRuntime, Fault>();
  const runtime = new Proxy(real, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const fault = faults.get(prop as keyof ContainerRuntime);
        if (!fault) return (value as (...a: unknown[]) => unknown).apply(target, args);
        faults.delete(prop as keyof ContainerRuntime);
        return fault(...args);
      };
    },
  });
  return { runtime, faults };
}

function setup(docker: Docker, range: { first: number; last: number }, links: AccessStore = new RedisAccessStore(redis, { prefix: `${namespace}:` })) {
  const { runtime, faults } = faultyRuntime(new DockerRuntime(docker, { namespace }));
  const routes = new RedisRouteStore(redis, { prefix: `${namespace}:` });
  const ports = new RedisPortAllocator(redis, range, { prefix: `${namespace}:${range.first}:` });
  const config = {
    runtime: POD_RUNTIME, bindAddress: '127.0.0.1', hostAddress: '127.0.0.1', defaultImage: image,
    readyTimeoutMs: 60_000, baseDomains: ['localhost'], publicScheme: 'http' as const, publicPort: undefined, sudo: false,
  };
  const table = new PodTable();
  const pods = new PodService({
    runtime, routes, ports, execLog: new MemoryExecLog({ retentionMs: 60_000, maxEntries: 10 }), links, table, logger, config,
    isBindable: (port) => isPortBindable('127.0.0.1', port),
  });
  const accessApi = createAccessApi({ store: links, tokens: new AccessTokens([generateSecret()]), pods: podAccessControl(pods), urls: config });
  const app = createApi({ pods, routes, reconciler: undefined, adminToken: TOKEN, accessApi, logger });
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await app.request(path, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined };
  };
  return { faults, routes, ports, pods, api, links };
}

async function containerState(s: string): Promise<string | undefined> {
  return docker.getContainer(`podgate-${s}`).inspect().then((i) => i.State.Status, () => undefined);
}
async function networkExists(s: string): Promise<boolean> {
  return docker.getNetwork(`podgate-${s}`).inspect().then(() => true, () => false);
}

describe('PodService: a Docker call failing mid-operation', () => {
  it('a failed stop or delete settles the pod from what Docker reports, answers 503, and a retry works', async () => {
    const { faults, routes, ports, api } = setup(docker, { first: 38500, last: 38519 });
    const s = uniqueSlug('settle');
    slugs.add(s);
    const created = await api('POST', '/v1/pods', { slug: s });
    expect(created.status, JSON.stringify(created.json)).toBe(201);
    const hostPort = created.json.hostPort as number;

    // Docker's answer when the runtime does not stop the container in time.
    faults.set('stop', async () => {
      throw dockerError(500, `cannot stop container: podgate-${s}: tried to kill container, but did not receive an exit event`);
    });
    const stop = await api('POST', `/v1/pods/${s}/stop`);
    expect(stop.status).toBe(503);
    expect(stop.json.error.code).toBe('service_unavailable');
    expect(stop.json.error.message).toMatch(/could not stop pod .*did not receive an exit event.*Docker reports its container running/);
    // Still running in Docker, so running here, and routed again (the route said stopped while stopping).
    expect(await containerState(s)).toBe('running');
    expect((await api('GET', `/v1/pods/${s}`)).json.status).toBe('running');
    expect(await routes.get(s)).toMatchObject({ status: 'running', port: hostPort });
    const retried = await api('POST', `/v1/pods/${s}/stop`);
    expect(retried.status).toBe(200);
    expect(retried.json.status).toBe('stopped');

    faults.set('remove', async () => {
      throw dockerError(500, `could not kill running container podgate-${s}, cannot remove - tried to kill container, but did not receive an exit event`);
    });
    const del = await api('DELETE', `/v1/pods/${s}`);
    expect(del.status).toBe(503);
    expect(del.json.error.message).toMatch(/could not delete pod .*cannot remove.*Docker reports its container exited/);
    expect(await containerState(s)).toBe('exited');
    expect((await api('GET', `/v1/pods/${s}`)).json.status).toBe('stopped');
    expect(await routes.get(s)).toMatchObject({ status: 'stopped', port: hostPort });
    expect((await ports.owners()).get(hostPort)?.owner).toBe(s);

    // The container goes but its network cannot be removed: the pod is gone (route, port, record); the network
    // is an orphan reconcile removes.
    faults.set('remove', async () => {
      await docker.getContainer(`podgate-${s}`).remove({ force: true });
      throw dockerError(500, `error while removing network: network podgate-${s} id 0123 has active endpoints`);
    });
    expect((await api('DELETE', `/v1/pods/${s}`)).status).toBe(204);
    expect(await containerState(s)).toBeUndefined();
    expect((await api('GET', `/v1/pods/${s}`)).status).toBe(404);
    expect(await routes.get(s)).toBeUndefined();
    expect((await ports.owners()).has(hostPort)).toBe(false);
    expect(await networkExists(s)).toBe(true);
  });

  it('Docker out of address pools for pod networks: the API answers 503 with the fix, and nothing is left', async () => {
    const { api, routes, ports } = setup(withNetworkCreateError(docker, POOLS_EXHAUSTED_TEXT), { first: 38520, last: 38529 });
    const s = uniqueSlug('nopool');
    slugs.add(s);
    const r = await api('POST', '/v1/pods', { slug: s });
    expect(r.status).toBe(503);
    expect(r.json.error.code).toBe('service_unavailable');
    expect(r.json.error.message).toMatch(/pod networks are exhausted.*default-address-pools/);
    expect((await api('GET', `/v1/pods/${s}`)).status).toBe(404);
    expect(await containerState(s)).toBeUndefined();
    expect(await networkExists(s)).toBe(false);
    expect(await routes.get(s)).toBeUndefined();
    expect([...(await ports.owners()).values()].map((o) => o.owner)).not.toContain(s);
  });

  it('a link minted while a create is still checking Docker belongs to the new pod: valid and listed once it runs', async () => {
    const { faults, api, links } = setup(docker, { first: 38540, last: 38549 });
    const s = uniqueSlug('early');
    slugs.add(s);
    // A slow Docker daemon: the create's checks wait until the link is asked for.
    let release = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const real = new DockerRuntime(docker, { namespace });
    faults.set('hostCpus', (async () => {
      await gate;
      return real.hostCpus();
    }) as Fault);
    const created = await api('POST', '/v1/pods?wait=false', { slug: s });
    expect(created.status).toBe(202);
    const minting = api('POST', `/v1/pods/${s}/links`, {});
    let answered = false;
    void minting.then(() => (answered = true));
    // Nothing in the mint waits on Docker: unless it waits for the create's not-before, it answers at once.
    await waitFor(() => answered, { timeoutMs: 1000, what: 'the link' }).catch(() => {});
    expect(answered).toBe(false);
    release();
    const link = await minting;
    expect(link.status).toBe(201);
    await waitFor(async () => (await api('GET', `/v1/pods/${s}`)).json.status === 'running', { what: 'the pod to run', timeoutMs: 60_000 });
    const revocations = await links.revocations(Date.now());
    expect(revocations.notBefore.get(s)).toBeGreaterThan(0);
    expect(isRevoked(revocations, { id: link.json.id, pod: s, iat: Date.parse(link.json.createdAt) })).toBe(false);
    expect((await api('GET', `/v1/pods/${s}/links`)).json.links.map((l: { id: string }) => l.id)).toEqual([link.json.id]);
    expect((await api('DELETE', `/v1/pods/${s}`)).status).toBe(204);
  });

  it('an access store that cannot void earlier links of the slug fails the create with 503, and nothing is left', async () => {
    // A real Redis that is gone: the route store and the port pool work, the access store refuses every write.
    const gone = await startRedis();
    const goneClient = createRedis(gone.url);
    await waitReady(goneClient);
    await gone.stop();
    try {
      const { api, routes, ports } = setup(docker, { first: 38530, last: 38539 }, new RedisAccessStore(goneClient, { prefix: `${namespace}:` }));
      const s = uniqueSlug('nolinks');
      slugs.add(s);
      const r = await api('POST', '/v1/pods', { slug: s });
      expect(r.status).toBe(503);
      expect(r.json.error.code).toBe('service_unavailable');
      expect(r.json.error.message).toMatch(/not created: links of an earlier pod of this name could not be voided/);
      expect((await api('GET', `/v1/pods/${s}`)).status).toBe(404);
      expect(await containerState(s)).toBeUndefined();
      expect(await networkExists(s)).toBe(false);
      expect(await routes.get(s)).toBeUndefined();
      expect([...(await ports.owners()).values()].map((o) => o.owner)).not.toContain(s);
    } finally {
      goneClient.disconnect();
    }
  });
});
