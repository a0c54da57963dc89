// VS Code end to end: the real orchestrator creates a gVisor pod of podgate/pod:vscode through its admin API, a
// real gateway on the same Redis guards it, and a client holding an access link opens code-server the way a browser
// does: the link sets the cookie, the workbench page loads, and its WebSocket speaks VS Code's remote protocol
// (code-server runs with --auth none: the gateway is the only lock, so a client without the cookie gets nothing).
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../orchestrator/config.ts';
import { startOrchestrator, type RunningOrchestrator } from '../orchestrator/main.ts';
import { removePods, uniqueSlug } from '../orchestrator/testing.ts';
import { parseSetCookie, send, startTestGateway, startWorld, type AccessWorld, type TestGateway } from './access-support.ts';
import { vscodeHandshake, vscodeImage, VSCODE_PORT, workbenchCommitPath } from './support/vscode.ts';
import { waitFor } from './support/wait.ts';

const ADMIN_TOKEN = 'vscode-e2e-token-0123456789abcdef';
const slug = uniqueSlug('vsc');
const host = `localhost-${VSCODE_PORT}.pod-${slug}.localhost`;

let world: AccessWorld;
let gw: TestGateway;
let orch: RunningOrchestrator;

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`http://127.0.0.1:${orch.port}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

beforeAll(async () => {
  const image = await vscodeImage();
  world = await startWorld();
  gw = await startTestGateway(world);
  orch = await startOrchestrator(
    loadConfig({
      ADMIN_TOKEN,
      ORCHESTRATOR_PORT: '0',
      REDIS_URL: world.redis.url,
      POD_PORT_RANGE: '38350-38369',
      POD_NAMESPACE: `vsc-${process.pid}-${Date.now().toString(36)}`,
      POD_IMAGE: image,
      // code-server is the slowest service to start (about 15 s under gVisor on a loaded machine, measured).
      POD_READY_TIMEOUT: '150s',
      RECONCILE_INTERVAL: '1h',
    }),
    { logger: pino({ level: 'silent' }) },
  );
  const created = await api('POST', '/v1/pods', {
    slug,
    tier: 'dev.medium',
    services: [{ name: 'app', port: 3000 }, { name: 'terminal', port: 7681 }, { name: 'vscode', port: VSCODE_PORT }],
  });
  if (created.status !== 201) throw new Error(`pod not created: ${JSON.stringify(created.json)}`);
  expect(created.json.services).toContainEqual(expect.objectContaining({ name: 'vscode', port: VSCODE_PORT, url: `http://${host}/` }));
  await waitFor(() => gw.gateway.table.lookup(slug)?.status === 'running', { what: 'the running route on the gateway', timeoutMs: 30_000 });
}, 240_000);

afterAll(async () => {
  await orch?.close();
  await removePods([slug]);
  await gw?.close();
  await world?.close();
});

describe('VS Code in a pod, through the gateway', () => {
  it('is private: no workbench and no WebSocket without a link', async () => {
    expect((await send(gw.url, host, { headers: { accept: 'text/html' } })).status).toBe(401);
    await expect(vscodeHandshake(`ws://127.0.0.1:${gw.gateway.httpPort}/`, { host })).rejects.toThrow('WebSocket refused: 401');
  });

  it('opens with a link: cookie, workbench page, and the VS Code protocol over its WebSocket', async () => {
    const link = await api('POST', `/v1/pods/${slug}/links`, { port: VSCODE_PORT, expiresIn: '1h' });
    expect(link.status).toBe(201);
    const url = new URL(link.json.url);
    expect(url.host).toBe(host);
    const redeemed = await send(gw.url, host, { path: `${url.pathname}${url.search}`, headers: { accept: 'text/html' } });
    expect(redeemed.status).toBe(302);
    const cookie = parseSetCookie(String(redeemed.headers['set-cookie']));
    const jar = `${cookie.name}=${cookie.value}`;

    // code-server sends the browser to its folder (a relative Location, so it stays on the gateway's host).
    const root = await send(gw.url, host, { headers: { accept: 'text/html', cookie: jar } });
    expect(root.status).toBe(302);
    const folder = String(root.headers.location).replace(/^\.\//, '/');
    const workbench = await send(gw.url, host, { path: folder, headers: { accept: 'text/html', cookie: jar } });
    expect(workbench.status).toBe(200);
    expect(workbench.body).toContain('workbench');

    // The browser's WebSocket carries the cookie and its page's Origin; code-server answers VS Code's handshake.
    const wsUrl = `ws://127.0.0.1:${gw.gateway.httpPort}/${workbenchCommitPath(workbench.body)}`;
    const answer = await vscodeHandshake(wsUrl, { host, cookie: jar, origin: `http://${host}` });
    expect(answer.type).toBe('sign');
    expect(answer.data).toMatch(/\S/);
  });
});
