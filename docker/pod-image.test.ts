// The pod image (podgate/pod:dev) under gVisor: the in-pod router sends each Host to the right port, WebSockets pass,
// the supervisor keeps services running and rejects bad configuration. Real Docker, real runsc, real containers.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shellOverWebSocket, terminalSession } from '../test/support/pod-shell.ts';
import { vscodeImage, VSCODE_PORT } from '../test/support/vscode.ts';
import { waitFor } from '../test/support/wait.ts';

const run = promisify(execFile);
const POD_IMAGE = 'podgate/pod:dev';
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

const docker = new Docker();
const runId = `${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
const created: Docker.Container[] = [];

interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(port: number, host: string, path = '/', headers: Record<string, string> = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { ...headers, Host: host }, agent: false }, (res) => {
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

async function startPod(env: string[] = [], image = POD_IMAGE): Promise<Docker.Container> {
  const container = await docker.createContainer({
    name: `podgate-imagetest-${runId}-${created.length}`,
    Image: image,
    Env: env,
    Labels: { [TEST_LABEL]: runId },
    ExposedPorts: { '80/tcp': {} },
    HostConfig: {
      Runtime: 'runsc',
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
    return (await get(port, 'podgate-router', '/readyz')).status === 200;
  } catch {
    return false;
  }
}

/** Run a container that should refuse its configuration; return its exit code and logs. */
async function runToExit(env: string[]): Promise<{ exitCode: number; logs: string }> {
  const container = await startPod(env);
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
    expect(await shellOverWebSocket(port, { Host: `localhost-${TERMINAL_PORT}.pod-demo.localhost` })).toContain('sum=42');
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
    const [before, , resized, after] = await terminalSession(port, { Host: host }, [
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
    expect(res.status).toBe(302);
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
