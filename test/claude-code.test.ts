// Claude Code in a real gVisor pod of the node template: its web terminal on 2528 answers through a real gateway with
// an access link (the xterm.js page, then a WebSocket session whose pty runs `claude`, which draws its own first
// screen), the supervisor restarts it, and the user's API key reaches claude's process but no view, log or answer
// of podgate. claude's first screen checks that it can reach Anthropic: the pod's HTTPS_PROXY points at a listener
// inside the pod that answers 403 to every CONNECT and writes down what was asked, so nothing leaves the pod.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { TEMPLATES } from '../orchestrator/templates.ts';
import { send } from './support/access.ts';
import { terminalSession } from './support/pod-shell.ts';
import { testPodImage, uniqueSlug } from './support/orchestrator.ts';
import { startPodWorld, type PodWorld } from './support/pod-world.ts';
import { waitFor } from './support/wait.ts';

const run = promisify(execFile);
const BUILD_SCRIPT = fileURLToPath(new URL('../docker/build-image.sh', import.meta.url));
const BUILD_TIMEOUT_MS = 20 * 60_000;
const EXEC_TIMEOUT_MS = 60_000;
const CLAUDE_PORT = 2528;
const PROXY_PORT = 3128;
/** The node template's image; PODGATE_NODE_IMAGE names another build of it (docker/build-image.sh reads it too). */
const NODE_IMAGE = process.env.PODGATE_NODE_IMAGE ?? TEMPLATES.node.image;
/** What the user would paste: never sent anywhere (the pod's only way out is the proxy in the pod). */
const API_KEY = `sk-ant-api03-podgate-test-${Math.random().toString(36).slice(2)}-${Date.now().toString(36)}`;
const slug = uniqueSlug('claude');
const logLines: string[] = [];
let w: PodWorld;
let created: any;

async function nodeImage(): Promise<void> {
  const missing = await new Docker().getImage(NODE_IMAGE).inspect().then(() => false, () => true);
  if (missing) await run('bash', [BUILD_SCRIPT, '--quiet', '--with-templates'], { timeout: BUILD_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 });
}

async function sh(script: string): Promise<string> {
  const r = await w.api('POST', `/v1/pods/${slug}/exec`, { command: ['bash', '-c', `set -euo pipefail\n${script}`], timeoutMs: EXEC_TIMEOUT_MS });
  expect(r.status, JSON.stringify(r.json)).toBe(200);
  expect(r.json.exitCode, JSON.stringify(r.json)).toBe(0);
  return r.json.stdout as string;
}

const host = `localhost-${CLAUDE_PORT}.pod-${slug}.localhost`;

/** The access cookie an access link for `port` sets. */
async function accessCookie(port = CLAUDE_PORT): Promise<string> {
  const link = await w.api('POST', `/v1/pods/${slug}/links`, { port, expiresIn: '1h' });
  expect(link.status).toBe(201);
  const url = new URL(link.json.url);
  const r = await send(w.gw.url, url.host.replace(/:\d+$/, ''), { path: `${url.pathname}${url.search}` });
  expect(r.status).toBe(302);
  const cookie = [r.headers['set-cookie'] ?? []].flat().map((c) => c.split(';')[0] ?? '').find((c) => c.startsWith('podgate_access='));
  expect(cookie).toBeDefined();
  return cookie!;
}

/**
 * A WebSocket session of the claude-code terminal through the gateway, as the page opens it (its window size first).
 * `text()` is what arrived with the terminal's control sequences taken out: claude positions words with cursor
 * movements rather than spaces, so each sequence counts as one space.
 */
async function openSession(): Promise<{ text(): string; close(): void }> {
  const ws = new WebSocket(`ws://127.0.0.1:${w.gw.gateway.httpPort}/`, { headers: { host, cookie: await accessCookie() } });
  const chunks: Buffer[] = [];
  ws.on('message', (d: Buffer) => chunks.push(d));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  ws.send(Buffer.from('\x1bPpodgate-resize;40;120\x1b\\'));
  return {
    text: () => Buffer.concat(chunks).toString('utf8').replace(/\x1b\[[0-9;?]*[ -\/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[78=>]/g, ' ').replace(/[ \t]+/g, ' '),
    close: () => ws.terminate(),
  };
}

/**
 * A CONNECT recorder on 127.0.0.1:3128 in the pod (its own Node), detached so it outlives the exec. It writes down
 * each request line and never answers: claude waits for it (until its own timeout), which keeps the session's claude
 * running while the test looks at its environment.
 */
const PROXY = `require('net').createServer((s) => {
  s.setTimeout(120000, () => s.destroy());
  s.once('data', (d) => require('fs').appendFileSync('/tmp/connects.log', d.toString('latin1').split('\\r\\n')[0] + '\\n'));
}).listen(${PROXY_PORT}, '127.0.0.1')`;

beforeAll(async () => {
  const [image] = await Promise.all([testPodImage(), nodeImage()]);
  const logs = new Writable({ write(chunk, _enc, done) { logLines.push(String(chunk)); done(); } });
  w = await startPodWorld({ image, portRange: '38800-38809', logger: pino({ level: 'trace' }, logs) });
  created = await w.createPod({
    slug,
    template: 'node',
    ...(NODE_IMAGE !== TEMPLATES.node.image ? { image: NODE_IMAGE } : {}),
    environment: { ANTHROPIC_API_KEY: API_KEY, HTTPS_PROXY: `http://127.0.0.1:${PROXY_PORT}` },
  });
  await sh(`: >/tmp/connects.log; echo ${Buffer.from(PROXY).toString('base64')} | base64 -d >/tmp/proxy.js
    setsid node /tmp/proxy.js </dev/null >/tmp/proxy.log 2>&1 &
    for i in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/${PROXY_PORT}) 2>/dev/null && exit 0; sleep 0.1; done; cat /tmp/proxy.log; exit 1`);
}, BUILD_TIMEOUT_MS + 120_000);

afterAll(async () => {
  await w?.close();
});

describe('claude-code in a node pod', () => {
  it('is one of the pod services, and its web terminal page answers through the gateway with an access link', async () => {
    expect(created.services.map((s: { name: string; port: number }) => `${s.name}:${s.port}`)).toEqual(['terminal:7681', `claude-code:${CLAUDE_PORT}`]);
    // Private by default: nothing without the link's cookie.
    expect((await send(w.gw.url, host)).status).toBe(401);
    const page = await send(w.gw.url, host, { headers: { cookie: await accessCookie() } });
    expect(page.status).toBe(200);
    expect(page.body).toContain('<title>pod terminal</title>');
    expect(page.body).toContain('/vendor/xterm.js');
    // The router reports it ready (the pod's status says so before the create answered).
    expect(await sh(`curl -fsS -H 'Host: podgate-router' http://127.0.0.1/services/claude-code`)).toBe('ready\n');
  });

  it('a WebSocket session runs claude, which shows its own first screen; its connectivity check stays in the pod', async () => {
    const session = await openSession();
    try {
      // Its connectivity check at start goes to the recorder in the pod, which holds it: claude is running now.
      await waitFor(async () => (await sh('cat /tmp/connects.log')).includes('CONNECT '), { what: "claude's first connection, at the recorder", timeoutMs: 90_000, intervalMs: 500 });
      expect(session.text()).toMatch(/Welcome to Claude Code v\d+\.\d+\.\d+/);
      // The key reached claude's process. A digest only: the exec log records commands and their output.
      const digests = await sh(`for p in $(pgrep -x claude); do grep -z '^ANTHROPIC_API_KEY=' /proc/$p/environ | sha256sum | cut -c1-64; done`);
      expect(digests.trim().split('\n')).toContain(createHash('sha256').update(`ANTHROPIC_API_KEY=${API_KEY}\0`).digest('hex'));
      // Unanswered, the check gives up and claude says so on its first screen.
      await waitFor(() => /Unable to connect to Anthropic services/.test(session.text()), { what: "claude's connectivity verdict", timeoutMs: 90_000, intervalMs: 250 });
      expect(session.text()).toMatch(/api\.anthropic\.com/);
      expect(session.text()).not.toContain(API_KEY);
    } finally {
      session.close();
    }
    const connects = (await sh('cat /tmp/connects.log')).trim().split('\n');
    expect(connects).toContain('CONNECT api.anthropic.com:443 HTTP/1.1');
    // Everything it asked for at start (observed: api.anthropic.com, platform.claude.com and, while those wait,
    // raw.githubusercontent.com) went through the proxy as a CONNECT: a tunnel whose content the recorder never saw.
    for (const line of connects) expect(line).toMatch(/^CONNECT [a-z0-9.-]+:443 HTTP\/1\.1$/);
  }, 200_000);

  it("a terminal session (the same web-terminal) has the pod's environment, and no variable made from a request header", async () => {
    const termHost = `localhost-7681.pod-${slug}.localhost`;
    const headers = { host: termHost, cookie: await accessCookie(7681), proxy: 'http://127.0.0.1:9', 'x-podgate-probe': 'from-the-request' };
    const digest = createHash('sha256').update(API_KEY).digest('hex').slice(0, 16);
    const [, answer] = await terminalSession(w.gw.gateway.httpPort, headers, [
      { send: '\x1bPpodgate-resize;40;120\x1b\\', until: /\$ $/ },
      { send: 'echo "key=$(printf %s "$ANTHROPIC_API_KEY" | sha256sum | cut -c1-16) proxy=${HTTP_PROXY-none} probe=${HTTP_X_PODGATE_PROBE-none} cgi=${GATEWAY_INTERFACE-none}"\r', until: /key=\w{16} proxy=\S+ probe=\S+ cgi=\S+\r?\n/ },
    ]);
    expect(answer).toContain(`key=${digest} proxy=none probe=none cgi=none`);
  }, 120_000);

  it('the supervisor restarts it when it dies', async () => {
    const pid = (await sh(`pgrep -f -- '--port=${CLAUDE_PORT}' | head -1`)).trim();
    expect(pid).toMatch(/^\d+$/);
    await sh(`kill ${pid}`);
    await waitFor(async () => {
      const [status, ...pids] = (await sh(`curl -sS -H 'Host: podgate-router' http://127.0.0.1/services/claude-code; pgrep -f -- '--port=${CLAUDE_PORT}' || true`)).trim().split('\n');
      return status === 'ready' && pids.length > 0 && !pids.includes(pid);
    }, { what: 'claude-code ready again under a new process', timeoutMs: 60_000, intervalMs: 500 });
    const page = await send(w.gw.url, host, { headers: { cookie: await accessCookie() } });
    expect(page.status).toBe(200);
  }, 120_000);

  it('the API key appears in no pod view, exec log, orchestrator log or container log', async () => {
    const answers = [
      JSON.stringify(created),
      JSON.stringify((await w.api('GET', `/v1/pods/${slug}`)).json),
      JSON.stringify((await w.api('GET', '/v1/pods')).json),
      JSON.stringify((await w.api('GET', `/v1/pods/${slug}/logs`)).json),
      JSON.stringify((await w.api('GET', '/v1/routes')).json),
    ];
    for (const a of answers) expect(a).not.toContain(API_KEY);
    // The orchestrator logged at trace level while creating and serving the pod.
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.join('')).not.toContain(API_KEY);
    // The supervisor's, router's and services' output (claude's sessions included).
    const containerLog = await new Docker().getContainer(`podgate-${slug}`).logs({ stdout: true, stderr: true, follow: false });
    expect(containerLog.toString('utf8')).toMatch(/service claude-code is ready on port 2528/);
    expect(containerLog.toString('utf8')).not.toContain(API_KEY);
  });
});
