// A live dev server end to end: a node-template pod installs Vite from the npm registry and runs it on 5173;
// headless Chromium opens it through a real gateway with an access link
// (http://localhost-5173.pod-<slug>.localhost:<gateway>/), the page renders, Vite's HMR WebSocket connects through the
// gateway and the in-pod router, and an edit of a module inside the pod (exec API) changes the page without a reload.
// Nothing is configured in Vite: the router's `Host: localhost:5173` passes its host check, and its client opens the
// HMR socket on the page's own origin, which the gateway serves. The same for the nextjs template's dev server,
// whose service definition has WEBSOCKET_ORIGIN=same (the router refuses other pages' upgrades to it).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { TEMPLATES } from '../orchestrator/templates.ts';
import { startBrowser } from './support/browser.ts';
import { testPodImage, uniqueSlug } from './support/orchestrator.ts';
import { startPodWorld, type PodWorld } from './support/pod-world.ts';
import { waitFor } from './support/wait.ts';

const run = promisify(execFile);
const BUILD_SCRIPT = fileURLToPath(new URL('../docker/build-image.sh', import.meta.url));
const BUILD_TIMEOUT_MS = 20 * 60_000;
/** npm install of Vite from the registry inside gVisor on a busy shared machine. */
const INSTALL_TIMEOUT_MS = 8 * 60_000;
const VITE_PORT = 5173;
const VITE_VERSION = '8.4.0';
/** The node template's image; PODGATE_NODE_IMAGE names another build of it (docker/build-image.sh reads it too). */
const NODE_IMAGE = process.env.PODGATE_NODE_IMAGE ?? TEMPLATES.node.image;
const NEXTJS_IMAGE = process.env.PODGATE_NEXTJS_IMAGE ?? TEMPLATES.nextjs.image;
/** The way to the npm registry from this host may present a private CA: the pods' Node trusts the host's (POD_CA_FILE). */
const HOST_CA = [process.env.NODE_EXTRA_CA_CERTS, process.env.SSL_CERT_FILE, '/etc/ssl/certs/ca-certificates.crt'].find((p) => {
  try {
    return p !== undefined && readFileSync(p, 'utf8').includes('BEGIN CERTIFICATE');
  } catch {
    return false;
  }
});
const slug = uniqueSlug('vite');
let w: PodWorld;
let browser: Browser;

async function sh(script: string, timeoutMs = 60_000, pod = slug): Promise<string> {
  const r = await w.api('POST', `/v1/pods/${pod}/exec`, { command: ['bash', '-c', `set -euo pipefail\n${script}`], timeoutMs });
  expect(r.status, JSON.stringify(r.json)).toBe(200);
  expect(r.json.exitCode, JSON.stringify(r.json)).toBe(0);
  return r.json.stdout as string;
}

/** A file in the pod, written as dev (base64 keeps the shell out of its content). */
function writeFile(path: string, content: string): Promise<string> {
  return sh(`echo ${Buffer.from(content).toString('base64')} | base64 -d >${path}`);
}

const PACKAGE = JSON.stringify({ name: 'hmr', private: true, type: 'module', scripts: { dev: 'vite' }, devDependencies: { vite: VITE_VERSION } });
const INDEX = `<!doctype html>
<html><head><meta charset="utf-8"><title>vite in a pod</title></head>
<body><h1 id="message">loading</h1><script type="module" src="/main.js"></script></body></html>
`;
/** A module that accepts its own updates: Vite swaps it in place, the page is not reloaded. */
const main = (text: string) => `document.getElementById('message').textContent = ${JSON.stringify(text)};
if (import.meta.hot) import.meta.hot.accept();
`;

/** The status of a WebSocket handshake to `url` (through the gateway) with `headers`: 101 when it opened. */
function upgradeStatus(url: URL, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${w.gw.gateway.httpPort}${url.pathname}${url.search}`, 'vite-hmr', { headers: { host: url.host, ...headers } });
    ws.once('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.once('unexpected-response', (req, res) => {
      res.resume();
      req.destroy();
      resolve(res.statusCode ?? 0);
    });
    ws.on('error', (err) => {
      if (ws.readyState !== WebSocket.CLOSED) reject(err);
    });
  });
}

async function templateImages(): Promise<void> {
  const docker = new Docker();
  const missing = await Promise.all([NODE_IMAGE, NEXTJS_IMAGE].map((i) => docker.getImage(i).inspect().then(() => false, () => true)));
  if (missing.some(Boolean)) await run('bash', [BUILD_SCRIPT, '--quiet', '--with-templates'], { timeout: BUILD_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 });
}

beforeAll(async () => {
  const [image] = await Promise.all([testPodImage(), templateImages()]);
  [w, browser] = await Promise.all([
    startPodWorld({ image, portRange: '38810-38819', ...(HOST_CA ? { env: { POD_CA_FILE: HOST_CA } } : {}) }),
    startBrowser(),
  ]);
  await w.createPod({ slug, template: 'node', ...(NODE_IMAGE !== TEMPLATES.node.image ? { image: NODE_IMAGE } : {}) });
  await sh('mkdir -p /workspace/hmr');
  await writeFile('/workspace/hmr/package.json', PACKAGE);
  await writeFile('/workspace/hmr/index.html', INDEX);
  await writeFile('/workspace/hmr/main.js', main('first version'));
  await sh('cd /workspace/hmr && npm install --no-audit --no-fund --loglevel=error', INSTALL_TIMEOUT_MS);
  // Detached, so it outlives the exec; the default settings (no --host: 127.0.0.1 is where the router connects).
  await sh(`cd /workspace/hmr && setsid npx vite --port ${VITE_PORT} --strictPort </dev/null >/tmp/vite.log 2>&1 &
    for i in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/${VITE_PORT}) 2>/dev/null && exit 0; sleep 0.1; done; cat /tmp/vite.log; exit 1`, 90_000);
}, BUILD_TIMEOUT_MS + INSTALL_TIMEOUT_MS + 180_000);

afterAll(async () => {
  await browser?.close();
  await w?.close();
});

describe('live dev servers in pods, in Chromium through the gateway', () => {
  it('Vite in a node pod: renders, connects its HMR WebSocket through the gateway, and applies an edit made in the pod without a reload', async () => {
    const link = await w.api('POST', `/v1/pods/${slug}/links`, { port: VITE_PORT, expiresIn: '1h' });
    expect(link.status).toBe(201);
    const url = new URL(link.json.url);
    url.port = String(w.gw.gateway.httpPort);
    const origin = `http://${url.host}`;

    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const logs: string[] = [];
      page.on('console', (m) => logs.push(m.text()));
      const sockets: string[] = [];
      page.on('websocket', (ws) => sockets.push(ws.url()));
      let loads = 0;
      page.on('load', () => loads++);

      const response = await page.goto(url.href);
      expect(response?.status()).toBe(200);
      expect(page.url()).toBe(`${origin}/`);
      expect(await page.title()).toBe('vite in a pod');
      await page.waitForFunction(`document.getElementById('message').textContent === 'first version'`, null, { timeout: 60_000 });

      // Vite's client says so once its HMR socket is open; the socket is on the page's own host, the gateway.
      await waitFor(() => logs.some((l) => l.includes('[vite] connected')), { what: "Vite's client to connect", timeoutMs: 60_000 }).catch(async (err: unknown) => {
        throw new Error(`${String(err)}; console: ${JSON.stringify(logs)}; sockets: ${JSON.stringify(sockets)}; vite: ${await sh('cat /tmp/vite.log')}`);
      });
      expect(sockets.length).toBeGreaterThan(0);
      for (const s of sockets) expect(new URL(s).host).toBe(url.host);
      // The same socket from another pod's page (the same site for the browser, so the cookie would go along) is
      // refused by the gateway: the access cookie does not open WebSockets for foreign origins.
      const cookie = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
      const foreign = `http://localhost-${VITE_PORT}.pod-other.localhost:${w.gw.gateway.httpPort}`;
      expect(await upgradeStatus(new URL(sockets[0]!), { cookie, origin: foreign })).toBe(401);
      expect(await upgradeStatus(new URL(sockets[0]!), { cookie, origin })).toBe(101);

      // An edit in the pod: the module is swapped in place; the page (and this marker on it) stays.
      await page.evaluate('window.podgateMarker = "same page"');
      await writeFile('/workspace/hmr/main.js', main('edited in the pod'));
      await page.waitForFunction(`document.getElementById('message').textContent === 'edited in the pod'`, null, { timeout: 60_000 });
      expect(await page.evaluate('window.podgateMarker')).toBe('same page');
      expect(loads).toBe(1);
      expect(logs.some((l) => l.includes('[vite] hot updated: /main.js'))).toBe(true);
    } finally {
      await context.close();
    }
  }, 240_000);

  it("the nextjs template's dev server: its HMR WebSocket passes the router's same-origin rule, and an edit is applied without a reload", async () => {
    const next = uniqueSlug('next-hmr');
    await w.createPod({ slug: next, template: 'nextjs', ...(NEXTJS_IMAGE !== TEMPLATES.nextjs.image ? { image: NEXTJS_IMAGE } : {}) });
    const link = await w.api('POST', `/v1/pods/${next}/links`, { port: 3000, expiresIn: '1h' });
    expect(link.status).toBe(201);
    const url = new URL(link.json.url);
    url.port = String(w.gw.gateway.httpPort);
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const sockets: string[] = [];
      page.on('websocket', (ws) => sockets.push(ws.url()));
      const logs: string[] = [];
      page.on('console', (m) => logs.push(m.text()));
      let loads = 0;
      page.on('load', () => loads++);
      // The first request compiles the page (slow in gVisor on a busy machine).
      const response = await page.goto(url.href, { timeout: 150_000 });
      expect(response?.status()).toBe(200);
      await page.waitForFunction(`document.querySelector('h1')?.textContent === 'Next.js on podgate'`, null, { timeout: 60_000 });
      // Next.js's client says so once its HMR socket (/_next/hmr) is open.
      await waitFor(() => logs.includes('[HMR] connected'), { what: "Next.js's HMR socket", timeoutMs: 60_000 }).catch((err: unknown) => {
        throw new Error(`${String(err)}; sockets: ${JSON.stringify(sockets)}; console: ${JSON.stringify(logs)}`);
      });
      expect(sockets.map((s) => new URL(s).pathname)).toContain('/_next/hmr');
      for (const s of sockets) expect(new URL(s).host).toBe(url.host);

      await page.evaluate('window.podgateMarker = "same page"');
      await sh("sed -i 's/Next.js on podgate/Edited in the pod/' ~/app/app/page.js", 60_000, next);
      await page.waitForFunction(`document.querySelector('h1')?.textContent === 'Edited in the pod'`, null, { timeout: 120_000 });
      expect(await page.evaluate('window.podgateMarker')).toBe('same page');
      expect(loads).toBe(1);
    } finally {
      await context.close();
    }
  }, 360_000);
});
