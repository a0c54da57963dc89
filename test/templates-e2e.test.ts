// Stack templates end to end: GET /v1/templates lists them, and a spec naming one gets a real gVisor pod with the
// template's image, services and port (its toolchain run through the exec API as the pod user, its services
// answering through a real gateway), while a spec's own services/defaultPort win. The images are the ones
// docker/build-image.sh --with-templates builds (scripts/test.sh: PODGATE_WITH_TEMPLATES=1).
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEMPLATES, TEMPLATE_NAMES } from '../orchestrator/templates.ts';
import { PUBLIC, send } from './support/access.ts';
import { testPodImage, uniqueSlug } from './support/orchestrator.ts';
import { startPodWorld, type PodWorld } from './support/pod-world.ts';
import { waitFor } from './support/wait.ts';

const run = promisify(execFile);
const BUILD_SCRIPT = fileURLToPath(new URL('../docker/build-image.sh', import.meta.url));
/** The template images on a cold machine: debootstrap twice plus npm installs. */
const BUILD_TIMEOUT_MS = 20 * 60_000;
/** A process start in gVisor on a busy shared 2-core machine. */
const EXEC_TIMEOUT_MS = 60_000;
let w: PodWorld;
let podImage: string;

/** Build the template images when one is missing (a no-op per image whose inputs are unchanged). */
async function templateImages(): Promise<void> {
  const docker = new Docker();
  const images = Object.values(TEMPLATES).flatMap((t) => ('image' in t ? [t.image] : []));
  const missing = await Promise.all(images.map((i) => docker.getImage(i).inspect().then(() => false, () => true)));
  if (missing.some(Boolean)) await run('bash', [BUILD_SCRIPT, '--quiet', '--with-templates'], { timeout: BUILD_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 });
}

/** `script` in bash in the pod through the exec API; the whole answer on failure. */
async function sh(slug: string, script: string): Promise<string> {
  const r = await w.api('POST', `/v1/pods/${slug}/exec`, { command: ['bash', '-c', `set -euo pipefail\n${script}`], timeoutMs: EXEC_TIMEOUT_MS });
  expect(r.status, JSON.stringify(r.json)).toBe(200);
  expect(r.json.exitCode, JSON.stringify(r.json)).toBe(0);
  return r.json.stdout as string;
}

function podHost(slug: string, port: number): string {
  return `localhost-${port}.pod-${slug}.localhost`;
}

beforeAll(async () => {
  [podImage] = await Promise.all([testPodImage(), templateImages()]);
  w = await startPodWorld({ image: podImage, portRange: '38700-38719' });
}, BUILD_TIMEOUT_MS + 60_000);

afterAll(async () => {
  await w?.close();
});

describe('stack templates', () => {
  it('GET /v1/templates lists every template with its image, services and default port', async () => {
    const r = await w.api('GET', '/v1/templates');
    expect(r.status).toBe(200);
    const list = r.json.templates as { name: string; image: string; services: unknown[]; defaultPort: number }[];
    expect(list.map((t) => t.name)).toEqual(['custom', 'node', 'python', 'nextjs', 'datascience']);
    const byName = new Map(list.map((t) => [t.name, t]));
    expect(byName.get('custom')).toMatchObject({ image: podImage, services: [], defaultPort: 3000 });
    expect(byName.get('node')).toMatchObject({ image: 'podgate/pod:node', services: [{ name: 'terminal', port: 7681 }, { name: 'claude-code', port: 2528 }], defaultPort: 3000 });
    expect(byName.get('python')).toMatchObject({ image: 'podgate/pod:python', defaultPort: 8000 });
    expect(byName.get('nextjs')).toMatchObject({ image: 'podgate/pod:nextjs', services: [{ name: 'nextjs', port: 3000 }, { name: 'terminal', port: 7681 }, { name: 'claude-code', port: 2528 }], defaultPort: 3000 });
    expect(byName.get('datascience')).toMatchObject({ image: 'podgate/pod:datascience', services: [{ name: 'jupyter', port: 8888 }, { name: 'terminal', port: 7681 }], defaultPort: 8888 });
    // The API's 401 covers this route like every /v1 route.
    expect((await fetch(`http://127.0.0.1:${w.orch.port}/v1/templates`)).status).toBe(401);
  });

  it('an unknown template is a 400 naming `template` and the known ones, and creates nothing', async () => {
    const slug = uniqueSlug('tpl-bad');
    const r = await w.api('POST', '/v1/pods', { slug, template: 'ruby' });
    expect(r.status).toBe(400);
    expect(r.json.error.field).toBe('template');
    for (const name of TEMPLATE_NAMES) expect(r.json.error.message).toContain(name);
    expect((await w.api('GET', `/v1/pods/${slug}`)).status).toBe(404);
  });

  it('template node: Node 24, npm and pnpm work as the pod user dev', async () => {
    const slug = uniqueSlug('tpl-node');
    const pod = await w.createPod({ slug, template: 'node' });
    expect(pod).toMatchObject({ template: 'node', image: 'podgate/pod:node', defaultPort: 3000 });
    expect(pod.services.map((s: { name: string }) => s.name)).toEqual(['terminal', 'claude-code']);
    const out = await sh(slug, 'id -un; node --version; npm --version; pnpm --version');
    const [user, node, npm, pnpm] = out.trim().split('\n');
    expect(user).toBe('dev');
    expect(node).toMatch(/^v24\.\d+\.\d+$/);
    expect(npm).toMatch(/^\d+\.\d+\.\d+$/);
    expect(pnpm).toMatch(/^\d+\.\d+\.\d+$/);
    // npm can run a script of the user's project (its own node, found on PATH).
    const script = await sh(slug, 'mkdir -p ~/p && cd ~/p && npm init -y >/dev/null && npm pkg set scripts.hi="node -p 6*7" && npm run --silent hi');
    expect(script.trim()).toBe('42');
  }, 180_000);

  it('template python: python3 makes a venv with pip', async () => {
    const slug = uniqueSlug('tpl-py');
    const pod = await w.createPod({ slug, template: 'python' });
    expect(pod).toMatchObject({ template: 'python', image: 'podgate/pod:python', defaultPort: 8000 });
    const out = await sh(slug, 'id -un; python3 -m venv /tmp/v && /tmp/v/bin/pip --version');
    expect(out).toMatch(/^dev\npip \d+[.\d]* from \/tmp\/v\/lib\/python3[.\d]+\/site-packages\/pip/);
  }, 180_000);

  it("template nextjs: the starter's dev server answers through the gateway on 3000", async () => {
    const slug = uniqueSlug('tpl-next');
    const pod = await w.createPod({ slug, template: 'nextjs', access: PUBLIC });
    expect(pod).toMatchObject({ image: 'podgate/pod:nextjs', defaultPort: 3000 });
    // The first request compiles the page (slow in gVisor on a busy machine): wait for it with a deadline.
    let page = { status: 0, body: '' };
    await waitFor(
      async () => {
        page = await send(w.gw.url, podHost(slug, 3000));
        return page.status === 200;
      },
      { what: 'the Next.js page through the gateway', timeoutMs: 150_000, intervalMs: 1000 },
    );
    expect(page.body).toContain('Next.js on podgate');
    expect(page.body).toContain('/_next/');
    // A live dev server: an edit in the pod (as dev, who owns ~/app) is what the next request gets.
    await sh(slug, "sed -i 's/Next.js on podgate/Edited in the pod/' ~/app/app/page.js");
    await waitFor(async () => (await send(w.gw.url, podHost(slug, 3000))).body.includes('Edited in the pod'), {
      what: 'the edited page', timeoutMs: 120_000, intervalMs: 1000,
    });
  }, 300_000);

  it("template datascience: Jupyter's page answers through the gateway without a token prompt", async () => {
    const slug = uniqueSlug('tpl-ds');
    const pod = await w.createPod({ slug, template: 'datascience', access: PUBLIC });
    expect(pod).toMatchObject({ image: 'podgate/pod:datascience', defaultPort: 8888 });
    // Created means ready: the jupyter service's health check passed.
    const tree = await send(w.gw.url, podHost(slug, 8888), { path: '/tree' });
    expect(tree.status, tree.body.slice(0, 500)).toBe(200);
    expect(tree.body).toContain('<title>Home Page - Select or create a notebook</title>');
    expect(tree.body).not.toMatch(/password or token/i);
    // The default port is Jupyter too: the pod's bare name opens it.
    const home = await send(w.gw.url, `pod-${slug}.localhost`, { path: '/api' });
    expect(home.status).toBe(200);
    expect(JSON.parse(home.body)).toHaveProperty('version');
  }, 180_000);

  it("a spec's own services and defaultPort win over the template's", async () => {
    const slug = uniqueSlug('tpl-own');
    const pod = await w.createPod({ slug, template: 'node', services: [{ name: 'app', port: 3000 }], defaultPort: 3000, access: PUBLIC, environment: { GREETING: 'hi' } });
    expect(pod.image).toBe('podgate/pod:node');
    expect(pod.services.map((s: { name: string }) => s.name)).toEqual(['app']);
    // The demo app runs (it is not in the node template's services): its page answers through the gateway.
    await waitFor(async () => (await send(w.gw.url, podHost(slug, 3000))).status === 200, { what: 'the app through the gateway', timeoutMs: 30_000 });
    // The terminal does not run: the spec's list replaced the template's.
    const ps = await sh(slug, 'echo "$GREETING"; ps -eo args');
    expect(ps.split('\n')[0]).toBe('hi');
    expect(ps).toContain('busybox httpd');
    expect(ps).not.toContain('websocketd');
  }, 180_000);
});
