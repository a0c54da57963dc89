// The pod image (podgate/pod:dev) under gVisor: the in-pod router sends each Host to the right port, WebSockets pass,
// the supervisor keeps services running and rejects bad configuration. Real Docker, real runsc, real containers.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { shellOverWebSocket, terminalSession } from '../test/support/pod-shell.ts';
import { vscodeImage, VSCODE_PORT } from '../test/support/vscode.ts';
import { waitFor } from '../test/support/wait.ts';
import { POD_IMAGE, POD_RUNTIME } from '../test/support/orchestrator.ts';

const run = promisify(execFile);
/** code-server starts in about 15 s under gVisor on an idle 2-core machine; give a busy one room. */
const VSCODE_READY_TIMEOUT_MS = 180_000;
const BUILD_SCRIPT = fileURLToPath(new URL('./build-image.sh', import.meta.url));
/** A cold build (debootstrap + import + docker build) takes about two minutes on the CI machines. */
const BUILD_TIMEOUT_MS = 600_000;
/** gVisor boot plus nginx, busybox and websocketd starting on a busy 2-core machine. */
const READY_TIMEOUT_MS = 60_000;
const TEST_LABEL = 'podgate.test';
const APP_PORT = 3000;
const TERMINAL_PORT = 7681;
const EXIT_CONFIG = 64;
/** The pods' router key, as the orchestrator makes one; every request to a service carries it, as a gateway's does. */
const ROUTER_KEY = randomBytes(32).toString('hex');
const KEY_HEADER = 'X-Podgate-Router-Key';
const FORBIDDEN = 'podgate: forbidden\n';

const docker = new Docker();
const runId = `${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
const created: Docker.Container[] = [];

interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A request as a gateway sends it: with the router key (`key` null: none, as any other local process). */
function get(port: number, host: string, path = '/', headers: Record<string, string> = {}, key: string | null = ROUTER_KEY): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const all: Record<string, string> = { ...(key === null ? {} : { [KEY_HEADER]: key }), ...headers, Host: host };
    const req = request({ host: '127.0.0.1', port, path, headers: all, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Split Docker's multiplexed log stream (8-byte frame headers) into text. */
function demuxLogs(buf: Buffer): string {
  let out = '';
  for (let i = 0; i + 8 <= buf.length; ) {
    const size = buf.readUInt32BE(i + 4);
    out += buf.subarray(i + 8, i + 8 + size).toString('utf8');
    i += 8 + size;
  }
  return out;
}

async function execIn(container: Docker.Container, cmd: string[]): Promise<{ exitCode: number; output: string }> {
  const exec = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, Tty: false });
  const stream = await exec.start({ hijack: true, stdin: false });
  let output = '';
  const sink = { write: (chunk: Buffer) => ((output += chunk.toString('utf8')), true) };
  docker.modem.demuxStream(stream, sink as unknown as NodeJS.WritableStream, sink as unknown as NodeJS.WritableStream);
  await new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', reject);
  });
  const info = await exec.inspect();
  return { exitCode: info.ExitCode ?? -1, output };
}

/**
 * One raw HTTP/1.1 exchange (the request exactly as written, e.g. an absolute-form target, which Node's client never
 * sends); resolves with everything the router answered before it closed the connection.
 */
function rawExchange(port: number, head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(head));
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}

/** The status of a WebSocket handshake through the router: 101 when it opened, else the router's answer. */
function upgradeStatus(port: number, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { headers });
    ws.once('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('error', reject);
  });
}

async function startPod(env: string[] = [], image = POD_IMAGE, key: string | null = ROUTER_KEY): Promise<Docker.Container> {
  const container = await docker.createContainer({
    name: `podgate-imagetest-${runId}-${created.length}`,
    Image: image,
    Env: [...(key === null ? [] : [`PODGATE_ROUTER_KEY=${key}`]), ...env],
    Labels: { [TEST_LABEL]: runId },
    ExposedPorts: { '80/tcp': {} },
    HostConfig: {
      Runtime: POD_RUNTIME,
      // An empty HostPort lets Docker pick a free one: no race with other tests for a port we guessed.
      PortBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] },
    },
  });
  created.push(container);
  await container.start();
  return container;
}

async function publishedPort(container: Docker.Container): Promise<number> {
  const info = await container.inspect();
  const binding = info.NetworkSettings.Ports['80/tcp']?.[0];
  if (!binding) throw new Error('port 80 of the pod is not published');
  return Number(binding.HostPort);
}

async function isReady(port: number): Promise<boolean> {
  try {
    return (await get(port, 'podgate-router', '/readyz', {}, null)).status === 200;
  } catch {
    return false;
  }
}

/** Run a container that should refuse its configuration; return its exit code and logs. */
async function runToExit(env: string[], key: string | null = ROUTER_KEY): Promise<{ exitCode: number; logs: string }> {
  const container = await startPod(env, POD_IMAGE, key);
  const { StatusCode } = (await container.wait()) as { StatusCode: number };
  const logs = demuxLogs((await container.logs({ stdout: true, stderr: true, follow: false })) as Buffer);
  return { exitCode: StatusCode, logs };
}

describe('pod image (docker/build-image.sh, gVisor)', () => {
  let pod: Docker.Container;
  let port = 0;

  beforeAll(async () => {
    // A no-op when the image is up to date (setup.sh built it); otherwise the test checks the current files.
    await run('bash', [BUILD_SCRIPT, '--quiet'], { timeout: BUILD_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 });
    pod = await startPod();
    port = await publishedPort(pod);
    await waitFor(() => isReady(port), { timeoutMs: READY_TIMEOUT_MS, intervalMs: 200, what: 'the pod router and services' });
  }, BUILD_TIMEOUT_MS + READY_TIMEOUT_MS);

  afterAll(async () => {
    for (const c of created) await c.remove({ force: true }).catch(() => {});
  });

  it('runs under gVisor, as a non-root user', async () => {
    const dmesg = await execIn(pod, ['dmesg']);
    expect(dmesg.output).toContain('gVisor');
    const id = await execIn(pod, ['id', '-u']);
    expect(id.output.trim()).not.toBe('0');
  });

  it('routes localhost-<port>.pod-<slug> to that port, with the Host dev servers expect', async () => {
    const res = await get(port, 'localhost-3000.pod-demo.localhost:8080', '/cgi-bin/echo', {
      'X-Forwarded-For': '203.0.113.7',
      'X-Forwarded-Proto': 'https',
    });
    expect(res.status).toBe(200);
    expect(res.body).toContain(`port=${APP_PORT}\n`);
    expect(res.body).toContain(`host=localhost:${APP_PORT}\n`);
    expect(res.body).toContain('x-forwarded-host=localhost-3000.pod-demo.localhost:8080\n');
    // The gateway's view of the client survives the second hop.
    expect(res.body).toContain('x-forwarded-for=203.0.113.7\n');
    expect(res.body).toContain('x-forwarded-proto=https\n');
  });

  it('routes the flat form localhost-<port>-pod-<slug> to that port', async () => {
    const terminal = await get(port, `localhost-${TERMINAL_PORT}-pod-demo.example.test`);
    expect(terminal.status).toBe(200);
    expect(terminal.body).toContain('<title>pod terminal</title>');
    const app = await get(port, `localhost-${APP_PORT}-pod-demo.example.test`);
    expect(app.body).toContain('demo app on port 3000');
  });

  it('routes pod-<slug> (no port label) to POD_DEFAULT_PORT', async () => {
    const res = await get(port, 'pod-demo.localhost', '/cgi-bin/echo');
    expect(res.status).toBe(200);
    expect(res.body).toContain(`host=localhost:${APP_PORT}\n`);
    expect(res.body).toContain('x-forwarded-host=pod-demo.localhost\n');
  });

  it('carries a WebSocket through the router to the web terminal', async () => {
    expect(await shellOverWebSocket(port, { Host: `localhost-${TERMINAL_PORT}.pod-demo.localhost`, [KEY_HEADER]: ROUTER_KEY })).toContain('sum=42');
  });

  it('serves a full terminal: xterm.js page, TERM=xterm-256color, and the window size the page sends', async () => {
    const host = `localhost-${TERMINAL_PORT}.pod-demo.localhost`;
    const page = await get(port, host);
    expect(page.body).toContain('/vendor/xterm.js');
    for (const asset of ['/vendor/xterm.js', '/vendor/addon-fit.js', '/vendor/xterm.css']) {
      expect((await get(port, host, asset)).status, asset).toBe(200);
    }
    expect((await get(port, host, '/vendor/xterm.js')).body).toContain('Terminal');
    // The page's resize message is cut out of the input (the shell never sees it), becomes the pty's size, and the
    // program in front hears of it (SIGWINCH: how vim or top know to redraw).
    const watcher = `bash -c 'trap "echo winch=\\$(stty size); exit" WINCH; echo armed; for i in $(seq 100); do sleep 0.2; done'`;
    const [before, , resized, after] = await terminalSession(port, { Host: host, [KEY_HEADER]: ROUTER_KEY }, [
      { send: 'echo "term=$TERM size=$(stty size)"\r', until: /term=xterm-256color size=\d+ \d+/ },
      { send: `${watcher}\r`, until: /^armed/m },
      { send: '\x1bPpodgate-resize;33;101\x1b\\', until: /winch=33 101/ },
      { send: 'echo "size=$(stty size)"\r', until: /^size=\d+ \d+/m },
    ]);
    expect(before).toMatch(/term=xterm-256color size=40 120/);
    expect(resized).not.toContain('podgate-resize');
    expect(after).toMatch(/^size=33 101/m);
  });

  it('rewrites a dev server redirect to http://localhost:<port>/ to the host the browser used', async () => {
    const res = await get(port, 'localhost-3000.pod-demo.localhost:8080', '/cgi-bin/redirect', { 'X-Forwarded-Proto': 'https' });
    // With the body, so a failure says which part of the pod answered (the router's 502 text names the cause).
    expect({ status: res.status, body: res.body }).toEqual({ status: 302, body: '' });
    expect(res.headers.location).toBe('https://localhost-3000.pod-demo.localhost:8080/index.html');
  });

  it('answers 502 with a clear text when nothing listens on the port', async () => {
    const res = await get(port, 'localhost-4999.pod-demo.localhost');
    expect(res.status).toBe(502);
    expect(res.body).toContain('nothing is listening on port 4999');
  });

  it('rejects ports outside 1-65535, malformed port labels and the router port', async () => {
    for (const host of ['localhost-0.pod-demo.localhost', 'localhost-65536.pod-demo.localhost', 'localhost-099-pod-demo.localhost', 'localhost-abc.pod-demo.localhost']) {
      const res = await get(port, host);
      expect(res.status, host).toBe(400);
      expect(res.body, host).toContain('invalid port');
    }
    const loop = await get(port, 'localhost-80.pod-demo.localhost');
    expect(loop.status).toBe(400);
    expect(loop.body).toContain('pod router itself');
  });

  it('reports readiness and per-service status on Host podgate-router', async () => {
    expect((await get(port, 'podgate-router', '/healthz')).body).toBe('ok\n');
    expect((await get(port, 'podgate-router', '/services/terminal')).body).toBe('ready\n');
  });

  it('refuses every request without the router key with one 403, before any routing; its status stays open', async () => {
    const wrongKey = randomBytes(32).toString('hex');
    const hosts = [
      `localhost-${APP_PORT}.pod-demo.localhost`,
      `localhost-${TERMINAL_PORT}.pod-demo.localhost`,
      'pod-demo.localhost',
      'localhost-0.pod-demo.localhost',
      'localhost-80.pod-demo.localhost',
      '127.0.0.1',
    ];
    for (const host of hosts) {
      for (const key of [null, wrongKey, '', ROUTER_KEY.slice(0, 32)]) {
        const res = await get(port, host, '/', {}, key);
        expect(res.status, `${host} key=${key}`).toBe(403);
        expect(res.body, host).toBe(FORBIDDEN);
      }
    }
    // The web terminal's WebSocket, too.
    const terminal = `localhost-${TERMINAL_PORT}.pod-demo.localhost`;
    expect(await upgradeStatus(port, { Host: terminal })).toBe(403);
    expect(await upgradeStatus(port, { Host: terminal, [KEY_HEADER]: wrongKey })).toBe(403);
    // The orchestrator's readiness checks need no key.
    expect((await get(port, 'podgate-router', '/readyz', {}, null)).body).toBe('ready\n');
    expect((await get(port, 'podgate-router', '/services/app', {}, null)).body).toBe('ready\n');
  });

  it('serves with the key, and the services never see it', async () => {
    const res = await get(port, `localhost-${APP_PORT}.pod-demo.localhost`, '/cgi-bin/echo');
    expect(res.status).toBe(200);
    expect(res.body).toContain('port=3000\n');
    expect(res.body).not.toContain(ROUTER_KEY);
    // Nor does their environment: the supervisor unsets it before starting them.
    const environ = await execIn(pod, ['sh', '-c', 'for p in $(pgrep -x busybox) $(pgrep -x websocketd); do tr "\\0" "\\n" </proc/$p/environ; done']);
    expect(environ.output).toContain('POD_DEFAULT_PORT=');
    expect(environ.output).not.toContain('PODGATE_ROUTER_KEY');
  });

  it('routes by the Host header, never by an absolute-form target, and passes the service the origin-form', async () => {
    const absolute = (target: string, host: string) =>
      rawExchange(port, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\n${KEY_HEADER}: ${ROUTER_KEY}\r\nConnection: close\r\n\r\n`);
    const toApp = await absolute(`http://localhost-${TERMINAL_PORT}.pod-demo.localhost/cgi-bin/echo?x=1`, `localhost-${APP_PORT}.pod-demo.localhost`);
    expect(toApp).toMatch(/^HTTP\/1\.1 200 /);
    expect(toApp).toContain('port=3000\n');
    expect(toApp).toContain('uri=/cgi-bin/echo?x=1\n');
    expect(toApp).toContain(`x-forwarded-host=localhost-${APP_PORT}.pod-demo.localhost\n`);
    expect(toApp).not.toContain('pod terminal');
    // The other way round: the Host's port (the terminal), not the request line's (the app).
    const toTerminal = await absolute(`http://localhost-${APP_PORT}.pod-demo.localhost/`, `localhost-${TERMINAL_PORT}.pod-demo.localhost`);
    expect(toTerminal).toContain('<title>pod terminal</title>');
    // A request line naming the default pod host does not turn a port-labelled Host into the default port.
    const labelled = await absolute('http://pod-demo.localhost/', `localhost-${TERMINAL_PORT}-pod-demo.localhost`);
    expect(labelled).toContain('<title>pod terminal</title>');
    // Hostnames are case-insensitive, as the gateway reads them: the port the gateway checked is the one served.
    const upper = await get(port, `LOCALHOST-${TERMINAL_PORT}.POD-DEMO.LOCALHOST`);
    expect(upper.body).toContain('<title>pod terminal</title>');
    // No Host header at all (HTTP/1.0): refused, not sent to the default port by the request line.
    const noHost = await rawExchange(port, `GET http://localhost-${TERMINAL_PORT}.pod-demo.localhost/ HTTP/1.0\r\n${KEY_HEADER}: ${ROUTER_KEY}\r\n\r\n`);
    expect(noHost).toMatch(/^HTTP\/1\.1 400 /);
    expect(noHost).toContain('missing Host header');
  });

  it('the web terminal accepts WebSockets only from its own pages (Origin host = Host) or non-browsers (no Origin)', async () => {
    const host = `localhost-${TERMINAL_PORT}.pod-demo.localhost:8080`;
    const withKey = { Host: host, [KEY_HEADER]: ROUTER_KEY };
    for (const origin of ['http://pod-evil.localhost:8080', `http://localhost-${APP_PORT}.pod-demo.localhost:8080`, 'https://evil.example', 'null', `http://${host}.evil.example`]) {
      expect(await upgradeStatus(port, { ...withKey, Origin: origin }), origin).toBe(403);
    }
    expect(await shellOverWebSocket(port, { ...withKey, Origin: `http://${host}` })).toContain('sum=42');
    expect(await shellOverWebSocket(port, { ...withKey, Origin: `https://${host.toUpperCase()}` })).toContain('sum=42');
    // Only services that ask for it (WEBSOCKET_ORIGIN=same): the app's upgrades are its own business.
    const app = await get(port, `localhost-${APP_PORT}.pod-demo.localhost`, '/', { Upgrade: 'websocket', Connection: 'Upgrade', Origin: 'https://evil.example' });
    expect(app.body).not.toContain('accepts WebSocket connections only');
  });

  it('restarts a service that dies', async () => {
    const killed = await execIn(pod, ['pkill', '-x', 'busybox']);
    expect(killed.exitCode).toBe(0);
    await waitFor(async () => (await get(port, 'podgate-router', '/services/app')).body !== 'ready\n', {
      timeoutMs: 20_000,
      what: 'the supervisor to notice the app exited',
    });
    await waitFor(async () => (await get(port, 'pod-demo.localhost')).status === 200 && (await isReady(port)), {
      timeoutMs: 30_000,
      intervalMs: 200,
      what: 'the app to be restarted',
    });
  });

  it('refuses a bad POD_DEFAULT_PORT or an unknown service, naming the variable', async () => {
    const badPort = await runToExit(['POD_DEFAULT_PORT=70000']);
    expect(badPort.exitCode).toBe(EXIT_CONFIG);
    expect(badPort.logs).toContain('POD_DEFAULT_PORT must be a port number 1-65535');
    const badService = await runToExit(['POD_SERVICES=app,nope']);
    expect(badService.exitCode).toBe(EXIT_CONFIG);
    expect(badService.logs).toContain("POD_SERVICES names 'nope'");
    const missingBinary = await runToExit(['POD_SERVICES=vscode']);
    expect(missingBinary.exitCode).toBe(EXIT_CONFIG);
    expect(missingBinary.logs).toContain("needs 'code-server'");
  });

  it('refuses to start without a well-formed router key (it would serve anyone), naming the variable', async () => {
    const missing = await runToExit([], null);
    expect(missing.exitCode).toBe(EXIT_CONFIG);
    expect(missing.logs).toContain('PODGATE_ROUTER_KEY is not set');
    const malformed = await runToExit([], 'not-a-key');
    expect(malformed.exitCode).toBe(EXIT_CONFIG);
    expect(malformed.logs).toContain('PODGATE_ROUTER_KEY must be 64 lowercase hex digits');
  });

  it('stops with the configuration exit code when nginx rejects the router config (no restart loop)', async () => {
    // The entrypoint no longer runs `nginx -t` before starting the router (a second nginx start under gVisor);
    // a config nginx refuses must still stop the pod with 64 instead of being restarted forever.
    const broken = await runToExit(['PODGATE_NGINX_TEMPLATE=/etc/podgate/services/app.service']);
    expect(broken.exitCode).toBe(EXIT_CONFIG);
    expect(broken.logs).toContain('nginx rejected the rendered router config');
  });

  it('stops cleanly on SIGTERM (docker stop), without being killed', async () => {
    const extra = await startPod(['POD_SERVICES=']);
    const extraPort = await publishedPort(extra);
    await waitFor(() => isReady(extraPort), { timeoutMs: READY_TIMEOUT_MS, intervalMs: 200, what: 'a router-only pod' });
    await extra.stop({ t: 20 });
    const state = (await extra.inspect()).State;
    // 137 would mean Docker had to SIGKILL it after the grace period.
    expect(state.ExitCode).toBe(0);
  });
});

describe('VS Code image (podgate/pod:vscode)', () => {
  it('serves code-server on 8726 through the router', async () => {
    // Built by scripts/test.sh; missing, the test fails saying how to build it (never a silent skip).
    const pod = await startPod([], await vscodeImage());
    const port = await publishedPort(pod);
    await waitFor(() => isReady(port), { timeoutMs: VSCODE_READY_TIMEOUT_MS, intervalMs: 500, what: 'code-server' });
    const host = `localhost-${VSCODE_PORT}.pod-demo.localhost`;
    const health = await get(port, host, '/healthz');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toHaveProperty('status');
    const root = await get(port, host, '/');
    expect(root.status).toBe(302);
    const workbench = await get(port, host, `/${String(root.headers.location).replace(/^\.\//, '')}`);
    expect(workbench.status).toBe(200);
    expect(workbench.body).toContain('workbench');
  }, VSCODE_READY_TIMEOUT_MS + 30_000);

  afterAll(async () => {
    for (const c of created) await c.remove({ force: true }).catch(() => {});
  });
});

describe('docker/Dockerfile and docker/Dockerfile.offline', () => {
  it('build the same image after their package step', () => {
    const tail = (file: string) => {
      const text = readFileSync(fileURLToPath(new URL(file, import.meta.url)), 'utf8');
      const marker = text.indexOf('# --- same as');
      expect(marker, file).toBeGreaterThan(0);
      return text.slice(text.indexOf('\n', marker));
    };
    expect(tail('./Dockerfile')).toBe(tail('./Dockerfile.offline'));
  });
});
