// DOCKER_HOST=ssh://user@host: the real orchestrator reaches Docker through a real OpenSSH server (loopback, a port
// and keys of its own) with docker-modem's ssh2 client, which runs `docker system dial-stdio` there. The "pod host"
// is this machine, so the test checks through the local socket what the orchestrator did over ssh, and a gateway on
// the same Redis serves the pod. The sshd log proves the calls went through ssh (not the local socket).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import type { Redis } from 'ioredis';
import { ConfigError } from '../shared/errors.ts';
import { silentLogger } from '../shared/log.ts';
import { createRedis, waitReady } from '../shared/redis.ts';
import { loadConfig, type OrchestratorConfig } from '../orchestrator/config.ts';
import { LABELS } from '../orchestrator/container-runtime.ts';
import { startOrchestrator, type RunningOrchestrator } from '../orchestrator/main.ts';
import { portKeys } from '../orchestrator/redis-port-allocator.ts';
import { POD_RUNTIME, removePods, testOrchestratorConfig, testPodImage, uniqueSlug } from './support/orchestrator.ts';
import { PUBLIC, send, startTestGateway, startWorld, type AccessWorld, type TestGateway } from './support/access.ts';
import { generateKey, startSshAgent, startSshd, type SshAgent, type Sshd, type SshKey } from './support/sshd.ts';
import { waitFor } from './support/wait.ts';
import { adminCall } from './support/admin-api.ts';

const TOKEN = 'docker-ssh-admin-token-0123456789';
const PORT_RANGE = '38400-38419';
const APP_PORT = 3000;
/** Pod creation over ssh: one ssh connection per Docker call, plus booting the pod under gVisor. */
const POD_TEST_TIMEOUT_MS = 150_000;
/** The local daemon, the one the sshd's `docker system dial-stdio` talks to. */
const docker = new Docker();
const slugs = new Set<string>();
const orchestrators = new Set<RunningOrchestrator>();

let dir: string;
let goodKey: SshKey;
let wrongKey: SshKey;
let lockedKey: SshKey;
let sshd: Sshd;
let goodAgent: SshAgent;
let wrongAgent: SshAgent;
let world: AccessWorld;
let gw: TestGateway;
let redis: Redis;
let image: string;

function dockerHost(): string {
  return `ssh://root@127.0.0.1:${sshd.port}`;
}

/** An orchestrator on the world's Redis whose Docker is DOCKER_HOST=ssh://, authenticating as `env` says. */
async function startSshOrchestrator(env: Record<string, string>): Promise<{ orch: RunningOrchestrator; config: OrchestratorConfig }> {
  const config = testOrchestratorConfig({
    ADMIN_TOKEN: TOKEN,
    REDIS_URL: world.redis.url,
    POD_PORT_RANGE: PORT_RANGE,
    POD_IMAGE: image,
    POD_READY_TIMEOUT: '90s',
    DOCKER_HOST: dockerHost(),
    ...env,
  });
  const orch = await startOrchestrator(config, { logger: silentLogger() });
  orchestrators.add(orch);
  return { orch, config };
}

async function stopOrchestrator(orch: RunningOrchestrator): Promise<void> {
  orchestrators.delete(orch);
  await orch.close();
}

const api = (orch: RunningOrchestrator, method: string, path: string, body?: unknown) => adminCall(orch.port, TOKEN, method, path, body);

/** How many ssh logins sshd accepted with `key` so far. */
function acceptedLogins(key: SshKey): number {
  return sshd.log().split('\n').filter((line) => line.startsWith('Accepted publickey for root from 127.0.0.1') && line.includes(key.fingerprint)).length;
}

const containerExists = (slug: string) => docker.getContainer(`podgate-${slug}`).inspect().then(() => true, () => false);
const networkExists = (slug: string) => docker.getNetwork(`podgate-${slug}`).inspect().then(() => true, () => false);

/** Create a public pod through the API (201 expected), over ssh; the running route reaches the gateway. */
async function createPod(orch: RunningOrchestrator, stem: string): Promise<{ slug: string; hostPort: number }> {
  const slug = uniqueSlug(stem);
  slugs.add(slug);
  const created = await api(orch, 'POST', '/v1/pods', { slug, access: PUBLIC, services: [{ name: 'app', port: APP_PORT }] });
  expect(created.status, JSON.stringify(created.json)).toBe(201);
  return { slug, hostPort: created.json.hostPort };
}

/** Delete through the API: container, network, route and port are gone. */
async function deletePod(orch: RunningOrchestrator, config: OrchestratorConfig, slug: string, hostPort: number): Promise<void> {
  expect((await api(orch, 'DELETE', `/v1/pods/${slug}`)).status).toBe(204);
  expect(await containerExists(slug)).toBe(false);
  expect(await networkExists(slug)).toBe(false);
  const keys = portKeys(`${config.redisPrefix}host:${config.hostAddress}:`);
  expect(await redis.hget(keys.owners, String(hostPort))).toBeNull();
  expect(await redis.sismember(keys.free, String(hostPort))).toBe(1);
  expect(await world.routes.get(slug)).toBeUndefined();
  expect((await api(orch, 'GET', `/v1/pods/${slug}`)).status).toBe(404);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'podgate-docker-ssh-'));
  [goodKey, wrongKey, lockedKey] = await Promise.all([
    generateKey(dir, 'good_ed25519'),
    generateKey(dir, 'wrong_ed25519'),
    generateKey(dir, 'locked_ed25519', 'a passphrase nobody types'),
  ]);
  // Only the good key is authorized; the wrong agent holds a valid key sshd has never heard of.
  sshd = await startSshd(dir, [goodKey]);
  [goodAgent, wrongAgent] = await Promise.all([startSshAgent(dir, 'good-agent', [goodKey]), startSshAgent(dir, 'wrong-agent', [wrongKey])]);
  [world, image] = await Promise.all([startWorld(), testPodImage()]);
  gw = await startTestGateway(world);
  redis = createRedis(world.redis.url);
  await waitReady(redis);
});

afterAll(async () => {
  for (const orch of orchestrators) await orch.close();
  await removePods(slugs);
  redis?.disconnect();
  await gw?.close();
  await world?.close();
  await goodAgent?.stop();
  await wrongAgent?.stop();
  await sshd?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('Docker over DOCKER_HOST=ssh://', () => {
  it(
    'with the agent holding an authorized key: the pod runs under runsc, a gateway serves it, delete removes it all',
    async () => {
      // The pod host's key is pinned: the calls below succeed only because sshd's key is the one named.
      const { orch, config } = await startSshOrchestrator({ SSH_AUTH_SOCK: goodAgent.socket, DOCKER_SSH_HOST_KEY: sshd.hostKeyFingerprint });
      const loginsBefore = acceptedLogins(goodKey);
      const { slug, hostPort } = await createPod(orch, 'ssh');
      // The Docker calls of this create went through this sshd, signed by the agent's key.
      expect(acceptedLogins(goodKey)).toBeGreaterThan(loginsBefore);

      const container = await docker.getContainer(`podgate-${slug}`).inspect();
      expect(container.HostConfig.Runtime).toBe(POD_RUNTIME);
      expect(container.State.Running).toBe(true);
      expect(container.Config.Labels).toMatchObject({
        [LABELS.managed]: 'true',
        [LABELS.namespace]: config.namespace,
        [LABELS.slug]: slug,
        [LABELS.hostPort]: String(hostPort),
      });
      expect(container.HostConfig.PortBindings?.['80/tcp']).toEqual([{ HostIp: '127.0.0.1', HostPort: String(hostPort) }]);

      // A gateway that only shares Redis with the orchestrator reaches the pod's app.
      const host = `pod-${slug}.localhost`;
      await waitFor(() => gw.gateway.table.lookup(slug)?.status === 'running', { what: 'the running route on the gateway', timeoutMs: 30_000 });
      const echo = await send(gw.url, host, { path: '/cgi-bin/echo' });
      expect(echo.status).toBe(200);
      expect(echo.body.toLowerCase()).toContain(host);

      await deletePod(orch, config, slug, hostPort);
      await waitFor(() => gw.gateway.table.lookup(slug) === undefined, { what: 'the route gone from the gateway' });
      await stopOrchestrator(orch);
    },
    POD_TEST_TIMEOUT_MS,
  );

  it('with an agent holding a key the host refuses: create answers 503 naming DOCKER_HOST and ssh, nothing is left', async () => {
    const { orch, config } = await startSshOrchestrator({ SSH_AUTH_SOCK: wrongAgent.socket });
    const slug = uniqueSlug('ssh-refused');
    slugs.add(slug);
    const created = await api(orch, 'POST', '/v1/pods', { slug, access: PUBLIC, services: [{ name: 'app', port: APP_PORT }] });
    expect(created.status, JSON.stringify(created.json)).toBe(503);
    expect(created.json.error.code).toBe('service_unavailable');
    const message: string = created.json.error.message;
    expect(message).toContain(`Docker is not reachable over ssh (DOCKER_HOST=${dockerHost()})`);
    expect(message).toContain('All configured authentication methods failed');
    expect(message).toContain(`SSH_AUTH_SOCK=${wrongAgent.socket}`);
    expect(message).toContain('~root/.ssh/authorized_keys');
    expect(acceptedLogins(wrongKey)).toBe(0);

    expect(await containerExists(slug)).toBe(false);
    expect(await networkExists(slug)).toBe(false);
    expect((await api(orch, 'GET', `/v1/pods/${slug}`)).status).toBe(404);
    expect(await world.routes.get(slug)).toBeUndefined();
    const owners = await redis.hvals(portKeys(`${config.redisPrefix}host:${config.hostAddress}:`).owners);
    expect(owners.filter((owner) => owner.startsWith(`${slug}|`))).toEqual([]);
    await stopOrchestrator(orch);
  });

  it('with DOCKER_SSH_HOST_KEY naming another key: create answers 503 naming it, and no key is offered to that host', async () => {
    const other = wrongKey.fingerprint; // a valid fingerprint, of a key that is not sshd's host key
    const { orch, config } = await startSshOrchestrator({ SSH_AUTH_SOCK: goodAgent.socket, DOCKER_SSH_HOST_KEY: other });
    const loginsBefore = acceptedLogins(goodKey);
    const slug = uniqueSlug('ssh-hostkey');
    slugs.add(slug);
    const created = await api(orch, 'POST', '/v1/pods', { slug, access: PUBLIC, services: [{ name: 'app', port: APP_PORT }] });
    expect(created.status, JSON.stringify(created.json)).toBe(503);
    expect(created.json.error.message).toContain(`DOCKER_SSH_HOST_KEY=${other}`);
    // The host was refused before authentication: the agent's key never logged in.
    expect(acceptedLogins(goodKey)).toBe(loginsBefore);
    expect(await containerExists(slug)).toBe(false);
    expect(await networkExists(slug)).toBe(false);
    const owners = await redis.hvals(portKeys(`${config.redisPrefix}host:${config.hostAddress}:`).owners);
    expect(owners.filter((owner) => owner.startsWith(`${slug}|`))).toEqual([]);
    await stopOrchestrator(orch);
  });

  it('a pod host whose sshd refuses to run the command: create answers 503 saying so, and the orchestrator keeps running', async () => {
    // MaxSessions 0: logins are accepted, every command refused. docker-modem's own ssh agent threw a TypeError
    // inside ssh2's callback here, which ended the whole process.
    const refusing = await startSshd(await mkdtemp(join(dir, 'refusing-')), [goodKey], ['MaxSessions 0']);
    try {
      const { orch, config } = await startSshOrchestrator({ SSH_AUTH_SOCK: goodAgent.socket, DOCKER_HOST: `ssh://root@127.0.0.1:${refusing.port}` });
      const slug = uniqueSlug('ssh-nosession');
      slugs.add(slug);
      const created = await api(orch, 'POST', '/v1/pods', { slug, access: PUBLIC, services: [{ name: 'app', port: APP_PORT }] });
      expect(created.status, JSON.stringify(created.json)).toBe(503);
      expect(created.json.error.message).toContain('the pod host refused to run docker system dial-stdio');
      expect(created.json.error.message).toContain('MaxSessions');
      // Still serving, and nothing was left behind.
      expect((await api(orch, 'GET', '/v1/pods')).status).toBe(200);
      const owners = await redis.hvals(portKeys(`${config.redisPrefix}host:${config.hostAddress}:`).owners);
      expect(owners.filter((owner) => owner.startsWith(`${slug}|`))).toEqual([]);
      await stopOrchestrator(orch);
    } finally {
      await refusing.stop();
    }
  });

  it(
    'DOCKER_SSH_IDENTITY without any agent: the key file alone creates and deletes a pod',
    async () => {
      // No SSH_AUTH_SOCK in this configuration: the orchestrator has no agent, whatever this process has.
      const { orch, config } = await startSshOrchestrator({ DOCKER_SSH_IDENTITY: goodKey.path });
      expect(config.dockerSsh).toEqual({ user: 'root', host: '127.0.0.1', port: sshd.port, agent: undefined, identity: goodKey.path, hostKey: undefined });
      const loginsBefore = acceptedLogins(goodKey);
      const { slug, hostPort } = await createPod(orch, 'ssh-key');
      expect(acceptedLogins(goodKey)).toBeGreaterThan(loginsBefore);
      expect((await docker.getContainer(`podgate-${slug}`).inspect()).HostConfig.Runtime).toBe(POD_RUNTIME);
      await deletePod(orch, config, slug, hostPort);
      await stopOrchestrator(orch);
    },
    POD_TEST_TIMEOUT_MS,
  );

  it('a DOCKER_SSH_IDENTITY or ssh:// DOCKER_HOST that cannot work stops the start with a ConfigError naming it', () => {
    const failure = (env: Record<string, string>): ConfigError => {
      try {
        loadConfig({ ADMIN_TOKEN: TOKEN, ...env });
      } catch (err) {
        if (err instanceof ConfigError) return err;
        throw err;
      }
      throw new Error(`accepted: ${JSON.stringify(env)}`);
    };
    const ssh = dockerHost();
    expect(failure({ DOCKER_HOST: ssh, DOCKER_SSH_IDENTITY: join(dir, 'missing') })).toMatchObject({
      variable: 'DOCKER_SSH_IDENTITY',
      message: expect.stringContaining('cannot read'),
    });
    expect(failure({ DOCKER_HOST: ssh, DOCKER_SSH_IDENTITY: `${goodKey.path}.pub` })).toMatchObject({
      variable: 'DOCKER_SSH_IDENTITY',
      message: expect.stringContaining('not a private key'),
    });
    expect(failure({ DOCKER_HOST: ssh, DOCKER_SSH_IDENTITY: lockedKey.path })).toMatchObject({
      variable: 'DOCKER_SSH_IDENTITY',
      message: expect.stringContaining('passphrase'),
    });
    expect(failure({ DOCKER_HOST: ssh, SSH_AUTH_SOCK: goodAgent.socket, DOCKER_SSH_HOST_KEY: 'ab:cd:ef' })).toMatchObject({
      variable: 'DOCKER_SSH_HOST_KEY',
      message: expect.stringContaining('ssh-keygen -lf'),
    });
    expect(failure({ DOCKER_SSH_HOST_KEY: sshd.hostKeyFingerprint })).toMatchObject({ variable: 'DOCKER_SSH_HOST_KEY' });
    expect(failure({ DOCKER_SSH_IDENTITY: goodKey.path })).toMatchObject({ variable: 'DOCKER_SSH_IDENTITY', message: expect.stringContaining('DOCKER_HOST=ssh://') });
    expect(failure({ DOCKER_HOST: ssh })).toMatchObject({ variable: 'DOCKER_HOST', message: expect.stringContaining('SSH_AUTH_SOCK') });
    expect(failure({ DOCKER_HOST: `ssh://127.0.0.1:${sshd.port}`, SSH_AUTH_SOCK: goodAgent.socket })).toMatchObject({
      variable: 'DOCKER_HOST',
      message: expect.stringContaining('the user is required'),
    });
    // docker-modem reads a tcp:// one from process.env only: given here and not there, it would be silently ignored.
    expect(failure({ DOCKER_HOST: `tcp://127.0.0.1:${sshd.port}` })).toMatchObject({ variable: 'DOCKER_HOST', message: expect.stringContaining('process environment') });
    // The same values, right: accepted.
    expect(loadConfig({ ADMIN_TOKEN: TOKEN, DOCKER_HOST: ssh, DOCKER_SSH_IDENTITY: goodKey.path }).dockerSsh?.identity).toBe(goodKey.path);
  });
});
