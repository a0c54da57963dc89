// VS Code end to end: the real orchestrator creates a gVisor pod of podgate/pod:vscode through its admin API, a
// real gateway on the same Redis guards it, and a client holding an access link opens code-server the way a browser
// does: the link sets the cookie, the workbench page loads, and its WebSocket speaks VS Code's remote protocol
// (code-server runs with --auth none: the gateway is the only lock, so a client without the cookie gets nothing).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueSlug } from './support/orchestrator.ts';
import { parseSetCookie, send } from './support/access.ts';
import { startPodWorld, type PodWorld } from './support/pod-world.ts';
import { vscodeHandshake, vscodeImage, VSCODE_PORT, workbenchCommitPath } from './support/vscode.ts';

const slug = uniqueSlug('vsc');
const host = `localhost-${VSCODE_PORT}.pod-${slug}.localhost`;
let pods: PodWorld;

beforeAll(async () => {
  // code-server is the slowest service to start (3-15 s under gVisor, measured; more on a loaded machine).
  pods = await startPodWorld({ image: await vscodeImage(), portRange: '38350-38369', readyTimeout: '150s' });
  const pod = await pods.createPod({
    slug,
    tier: 'dev.medium',
    services: [{ name: 'app', port: 3000 }, { name: 'terminal', port: 7681 }, { name: 'vscode', port: VSCODE_PORT }],
  });
  expect(pod.services).toContainEqual(expect.objectContaining({ name: 'vscode', port: VSCODE_PORT, url: `http://${host}/` }));
}, 240_000);

afterAll(async () => {
  await pods?.close();
});

describe('VS Code in a pod, through the gateway', () => {
  it('is private: no workbench and no WebSocket without a link', async () => {
    expect((await send(pods.gw.url, host, { headers: { accept: 'text/html' } })).status).toBe(401);
    await expect(vscodeHandshake(`ws://127.0.0.1:${pods.gw.gateway.httpPort}/`, { host })).rejects.toThrow('WebSocket refused: 401');
  });

  it('opens with a link: cookie, workbench page, and the VS Code protocol over its WebSocket', async () => {
    const link = await pods.api('POST', `/v1/pods/${slug}/links`, { port: VSCODE_PORT, expiresIn: '1h' });
    expect(link.status).toBe(201);
    const url = new URL(link.json.url);
    expect(url.host).toBe(host);
    const redeemed = await send(pods.gw.url, host, { path: `${url.pathname}${url.search}`, headers: { accept: 'text/html' } });
    expect(redeemed.status).toBe(302);
    const cookie = parseSetCookie(String(redeemed.headers['set-cookie']));
    const jar = `${cookie.name}=${cookie.value}`;

    // code-server sends the browser to its folder (a relative Location, so it stays on the gateway's host).
    const root = await send(pods.gw.url, host, { headers: { accept: 'text/html', cookie: jar } });
    expect(root.status).toBe(302);
    const folder = String(root.headers.location).replace(/^\.\//, '/');
    const workbench = await send(pods.gw.url, host, { path: folder, headers: { accept: 'text/html', cookie: jar } });
    expect(workbench.status).toBe(200);
    expect(workbench.body).toContain('workbench');

    // The browser's WebSocket carries the cookie and its page's Origin; code-server answers VS Code's handshake.
    const wsUrl = `ws://127.0.0.1:${pods.gw.gateway.httpPort}/${workbenchCommitPath(workbench.body)}`;
    const answer = await vscodeHandshake(wsUrl, { host, cookie: jar, origin: `http://${host}` });
    expect(answer.type).toBe('sign');
    expect(answer.data).toMatch(/\S/);
  });
});
