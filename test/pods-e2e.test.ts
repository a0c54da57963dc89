// End to end: the orchestrator creates a gVisor pod through its admin API, a gateway (sharing one Redis) routes
// HTTP and WebSocket to two services inside it by port; the route follows stop/start/delete and survives
// restarts of both the orchestrator and the gateway.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import Docker from 'dockerode';
import { silentLogger } from '../shared/log.ts';
import { startRedis, type RedisServer } from './support/redis-server.ts';
import { shellOverWebSocket } from './support/pod-shell.ts';
import { waitFor } from './support/wait.ts';
import { loadConfig, type OrchestratorConfig } from '../orchestrator/config.ts';
import { startOrchestrator, type RunningOrchestrator } from '../orchestrator/main.ts';
import { POD_RUNTIME, removePods, testPodImage, uniqueSlug } from './support/orchestrator.ts';
import { loadGatewayConfig, runGateway, type GatewayProcess } from '../gateway/main.ts';

const TOKEN = 'e2e-token-0123456789abcdef';
const PREFIX = `e2e${process.pid}:`;
const TERMINAL_PORT = 7681;
const APP_PORT = 3000;
const docker = new Docker();
const slugs = new Set<string>();
let redis: RedisServer;
let orchConfig: OrchestratorConfig;
let orch: RunningOrchestrator;
let gw: GatewayProcess;

async function startGw(): Promise<GatewayProcess> {
  const config = loadGatewayConfig({
    REDIS_URL: redis.url,
    REDIS_PREFIX: PREFIX,
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: '0',
    ADMIN_PORT: '0',
    ACCESS_LOG: 'false',
    // Plain answers (404, 503) instead of hiding which pods exist: this test checks them.
    ACCESS_CONCEAL_PODS: 'false',
  });
  return runGateway(config, { log: silentLogger() });
}

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`http://127.0.0.1:${orch.port}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

function viaGateway(host: string, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: gw.gateway.httpPort, path, headers: { host }, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.once('error', reject);
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

beforeAll(async () => {
  const [r, image] = await Promise.all([startRedis(), testPodImage()]);
  redis = r;
  orchConfig = loadConfig({
    ADMIN_TOKEN: TOKEN,
    ORCHESTRATOR_PORT: '0',
    REDIS_URL: redis.url,
    REDIS_PREFIX: PREFIX,
    POD_PORT_RANGE: '38200-38299',
    POD_IMAGE: image,
    POD_NAMESPACE: `e2e-${process.pid}-${Date.now().toString(36)}`,
    RECONCILE_INTERVAL: '1h',
    POD_RUNTIME,
  });
  orch = await startOrchestrator(orchConfig, { logger: silentLogger() });
  gw = await startGw();
});

afterAll(async () => {
  await gw?.stop();
  await orch?.close();
  await removePods(slugs);
  await redis?.stop();
});

describe('pods through the gateway', () => {
  it('HTTP and WebSocket reach two services by port; stop 503, start, restarts, delete 404', async () => {
    const slug = uniqueSlug('e2e');
    slugs.add(slug);
    const created = await api('POST', '/v1/pods', {
      slug,
      access: { default: 'public' },
      services: [
        { name: 'app', port: APP_PORT },
        { name: 'terminal', port: TERMINAL_PORT },
      ],
    });
    expect(created.status, JSON.stringify(created.json)).toBe(201);
    const { hostPort } = created.json;
    const appHost = `localhost-${APP_PORT}.pod-${slug}.localhost`;
    const termHost = `localhost-${TERMINAL_PORT}-pod-${slug}.localhost`;

    // The gateway learns the route from Redis; then HTTP to the app on 3000, WebSocket to the terminal on 7681.
    await waitFor(async () => (await viaGateway(appHost)).status === 200, { timeoutMs: 30_000, what: 'the app through the gateway' });
    const echo = await viaGateway(appHost, '/cgi-bin/echo');
    expect(echo.status).toBe(200);
    expect(echo.body.toLowerCase()).toContain(appHost);
    expect((await viaGateway(`pod-${slug}.localhost`)).status).toBe(200);
    // Created means ready: the terminal answers as soon as the route is served, not a 502 of a booting service.
    expect((await viaGateway(termHost)).status).toBe(200);
    expect(await shellOverWebSocket(gw.gateway.httpPort, { host: termHost })).toContain('sum=42');

    // Stop: the gateway answers 503; start: it works again.
    expect((await api('POST', `/v1/pods/${slug}/stop`)).json.status).toBe('stopped');
    await waitFor(async () => (await viaGateway(appHost)).status === 503, { timeoutMs: 10_000, what: '503 after stop' });
    expect((await api('POST', `/v1/pods/${slug}/start`)).json.status).toBe('running');
    await waitFor(async () => (await viaGateway(appHost)).status === 200, { timeoutMs: 30_000, what: '200 after start' });

    // Restart the orchestrator and the gateway: the route is still served.
    await gw.stop();
    await orch.close();
    orch = await startOrchestrator(orchConfig, { logger: silentLogger() });
    gw = await startGw();
    expect((await api('GET', `/v1/pods/${slug}`)).json).toMatchObject({ status: 'running', hostPort });
    await waitFor(async () => (await viaGateway(appHost)).status === 200, { timeoutMs: 10_000, what: '200 after restarts' });
    expect((await viaGateway(termHost)).status).toBe(200);
    expect(await shellOverWebSocket(gw.gateway.httpPort, { host: termHost })).toContain('sum=42');

    // Delete: 404, and container, network and port are gone.
    expect((await api('DELETE', `/v1/pods/${slug}`)).status).toBe(204);
    await waitFor(async () => (await viaGateway(appHost)).status === 404, { timeoutMs: 10_000, what: '404 after delete' });
    expect(await docker.getContainer(`podgate-${slug}`).inspect().then(() => true, () => false)).toBe(false);
    expect(await docker.getNetwork(`podgate-${slug}`).inspect().then(() => true, () => false)).toBe(false);
    expect((await api('GET', `/v1/pods/${slug}`)).status).toBe(404);
  });

  it('a container killed behind the orchestrator\'s back: the gateway stops routing to it', async () => {
    const slug = uniqueSlug('e2e-kill');
    slugs.add(slug);
    const created = await api('POST', '/v1/pods', { slug, access: { default: 'public' }, services: [{ name: 'app', port: APP_PORT }] });
    expect(created.status).toBe(201);
    const host = `pod-${slug}.localhost`;
    await waitFor(async () => (await viaGateway(host)).status === 200, { timeoutMs: 30_000, what: 'the app through the gateway' });
    await docker.getContainer(`podgate-${slug}`).kill();
    await waitFor(async () => (await viaGateway(host)).status === 503, { timeoutMs: 20_000, what: 'the route marked stopped' });
    expect((await api('DELETE', `/v1/pods/${slug}`)).status).toBe(204);
  });
});
