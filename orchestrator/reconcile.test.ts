// Reconcile's slow paths (grace periods of minutes) against real Docker and Redis, with the reconciler's clock
// moved forward instead of waiting: orphan networks, ports of vanished pods, quarantined ports, foreign routes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Docker from 'dockerode';
import { pino } from 'pino';
import { createRedis, waitReady } from '../shared/redis.ts';
import { RedisAccessStore } from '../shared/redis-access-store.ts';
import { RedisRouteStore } from '../shared/redis-route-store.ts';
import { startRedis, type RedisServer } from '../test/support/redis-server.ts';
import { LABELS } from './container-runtime.ts';
import { DockerRuntime } from './docker-runtime.ts';
import { MemoryExecLog } from './exec-log.ts';
import { HOST_BOUND_OWNER } from './port-allocator.ts';
import { PodService, PodTable, type PodRecord } from './pods.ts';
import { HOST_BOUND_QUARANTINE_MS, ORPHAN_NETWORK_GRACE_MS, ORPHAN_VOLUME_GRACE_MS, PORT_GRACE_MS, Reconciler } from './reconcile.ts';
import { RedisPortAllocator } from './redis-port-allocator.ts';
import { POD_RUNTIME, uniqueSlug } from '../test/support/orchestrator.ts';

const docker = new Docker();
const namespace = `rc-${process.pid}-${Date.now().toString(36)}`;
const logger = pino({ level: 'silent' });
let server: RedisServer;
let redis: ReturnType<typeof createRedis>;
const networks: string[] = [];
const volumes: string[] = [];

beforeAll(async () => {
  server = await startRedis();
  redis = createRedis(server.url);
  await waitReady(redis);
});
afterAll(async () => {
  for (const n of networks) await docker.getNetwork(n).remove().catch(() => {});
  for (const v of volumes) await docker.getVolume(v).remove().catch(() => {});
  redis?.disconnect();
  await server?.stop();
});

function setup(now: () => number) {
  const runtime = new DockerRuntime(docker, { namespace });
  const routes = new RedisRouteStore(redis, { prefix: `${namespace}:` });
  const ports = new RedisPortAllocator(redis, { first: 38600, last: 38699 }, { prefix: `${namespace}:`, now: () => Date.now() });
  const table = new PodTable();
  const config = {
    runtime: POD_RUNTIME, bindAddress: '127.0.0.1', hostAddress: '127.0.0.1', defaultImage: 'podgate/pod:dev',
    readyTimeoutMs: 60_000, baseDomains: ['localhost'], publicScheme: 'http' as const, publicPort: undefined, sudo: false,
  };
  const pods = new PodService({ runtime, routes, ports, execLog: new MemoryExecLog({ retentionMs: 1000, maxEntries: 10 }), links: new RedisAccessStore(redis, { prefix: `${namespace}:` }), table, logger, config, isBindable: async () => true });
  const reconciler = new Reconciler({ runtime, routes, ports, table, pods, hostAddress: '127.0.0.1', intervalMs: 3_600_000, logger, now });
  return { runtime, routes, ports, reconciler, table };
}

describe('Reconciler grace periods', () => {
  it('reports an orphan pod network at once and removes it once orphaned long enough', async () => {
    let now = Date.now();
    const { reconciler } = setup(() => now);
    const slug = uniqueSlug('orphan');
    const name = `podgate-${slug}`;
    networks.push(name);
    await docker.createNetwork({ Name: name, Labels: { [LABELS.managed]: 'true', [LABELS.namespace]: namespace, [LABELS.slug]: slug } });
    const first = await reconciler.reconcile();
    expect(first.orphans).toContainEqual({ kind: 'network', name, reason: 'no pod container', removed: false });
    now += ORPHAN_NETWORK_GRACE_MS + 60_000;
    const later = await reconciler.reconcile();
    expect(later.orphans).toContainEqual({ kind: 'network', name, reason: 'no pod container', removed: true });
    expect(await docker.getNetwork(name).inspect().then(() => true, () => false)).toBe(false);
  });

  it('removes the workspace volume of a gone pod once orphaned long enough, never one of a pod it knows', async () => {
    let now = Date.now();
    const { reconciler, table } = setup(() => now);
    const volumeOf = (slug: string) => `podgate-${slug}-workspace`;
    const labels = (slug: string) => ({ [LABELS.managed]: 'true', [LABELS.namespace]: namespace, [LABELS.slug]: slug });
    const gone = uniqueSlug('vol-gone');
    const known = uniqueSlug('vol-known');
    volumes.push(volumeOf(gone), volumeOf(known));
    await docker.createVolume({ Name: volumeOf(gone), Labels: labels(gone) });
    await docker.createVolume({ Name: volumeOf(known), Labels: labels(known) });
    // A pod this process still knows (its failed creation kept to show the error) keeps its volume however long.
    const at = new Date(now).toISOString();
    const record: PodRecord = {
      slug: known, spec: {} as PodRecord['spec'], state: 'failed', hostPort: undefined, containerId: undefined, generation: 1,
      routerKey: undefined, routeGeneration: 0, createdAt: at, updatedAt: at, error: 'kept',
    };
    table.records.set(known, record);
    const exists = (name: string) => docker.getVolume(name).inspect().then(() => true, () => false);
    const first = await reconciler.reconcile();
    expect(first.orphans).toContainEqual({ kind: 'volume', name: volumeOf(gone), reason: 'no pod', removed: false });
    expect(first.orphans.map((o) => o.name)).not.toContain(volumeOf(known));
    // Past the network grace, within the volume's: the developer's work is not removed early.
    now += ORPHAN_NETWORK_GRACE_MS + 60_000;
    await reconciler.reconcile();
    expect(await exists(volumeOf(gone))).toBe(true);
    now += ORPHAN_VOLUME_GRACE_MS;
    const later = await reconciler.reconcile();
    expect(later.orphans).toContainEqual({ kind: 'volume', name: volumeOf(gone), reason: 'no pod', removed: true });
    expect(await exists(volumeOf(gone))).toBe(false);
    expect(await exists(volumeOf(known))).toBe(true);
  });

  it('frees ports of pods without a container after the grace, and quarantined ports after theirs', async () => {
    let now = Date.now();
    const { reconciler, ports } = setup(() => now);
    const ghost = await ports.allocate('ghost-pod');
    const bound = await ports.allocate('probe');
    await ports.release(bound, 'probe');
    await ports.claim(bound, HOST_BOUND_OWNER);
    // Within the grace: a creation may be in flight in another process.
    expect((await reconciler.reconcile()).releasedPorts).toEqual([]);
    // A minute of margin: the ports' own timestamps come from the real clock, a little after `now` was read.
    now += PORT_GRACE_MS + 60_000;
    expect((await reconciler.reconcile()).releasedPorts).toEqual([ghost]);
    now += HOST_BOUND_QUARANTINE_MS;
    expect((await reconciler.reconcile()).releasedPorts).toEqual([bound]);
    expect((await ports.owners()).size).toBe(0);
  });

  it('removes routes of this host that have no container, but never another host\'s', async () => {
    const { reconciler, routes } = setup(Date.now);
    const at = new Date().toISOString();
    const g = await routes.nextGeneration();
    await routes.put({ slug: 'gone-pod', host: '127.0.0.1', port: 38650, status: 'running', generation: g, defaultPort: 3000, updatedAt: at });
    await routes.put({ slug: 'elsewhere', host: '10.9.9.9', port: 38651, status: 'running', generation: g, defaultPort: 3000, updatedAt: at });
    const report = await reconciler.reconcile();
    expect(report.removedRoutes).toEqual(['gone-pod']);
    expect(await routes.get('gone-pod')).toBeUndefined();
    expect(await routes.get('elsewhere')).toBeDefined();
  });
});
