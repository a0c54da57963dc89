// `podgate` as a child process against a real orchestrator (real Redis, Docker with gVisor): a pod's whole life
// through the CLI, and the failures a user meets (bad token, a field the API refuses, an unknown pod, usage,
// settings). No output of any run may carry the admin token.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../shared/log.ts';
import { startRedis, type RedisServer } from '../test/support/redis-server.ts';
import { waitFor } from '../test/support/wait.ts';
import { startOrchestrator, type RunningOrchestrator } from '../orchestrator/main.ts';
import { removePods, testOrchestratorConfig, testPodImage, uniqueSlug } from '../test/support/orchestrator.ts';
import { childEnv, podgate, podgateOnTerminal, podgateRunning, type CliResult } from '../test/support/cli.ts';

const TOKEN = 'cli-e2e-token-0123456789abcdef';
const slugs = new Set<string>();
const outputs: CliResult[] = [];
let redis: RedisServer;
let orch: RunningOrchestrator;
let home: string;
let env: NodeJS.ProcessEnv;

async function cli(args: string[], e: NodeJS.ProcessEnv = env): Promise<CliResult> {
  const r = await podgate(args, e);
  outputs.push(r);
  return r;
}

beforeAll(async () => {
  const [r, image] = await Promise.all([startRedis(), testPodImage()]);
  redis = r;
  orch = await startOrchestrator(
    testOrchestratorConfig({
      ADMIN_TOKEN: TOKEN,
      REDIS_URL: redis.url,
      REDIS_PREFIX: `cli${process.pid}:`,
      POD_PORT_RANGE: '38740-38759',
      POD_IMAGE: image,
      POD_EGRESS_POLICY: 'off',
    }),
    { logger: silentLogger() },
  );
  home = mkdtempSync(join(tmpdir(), 'podgate-cli-home-'));
  env = childEnv(home, { PODGATE_URL: `http://127.0.0.1:${orch.port}`, PODGATE_TOKEN: TOKEN });
});

afterAll(async () => {
  await orch?.close();
  await removePods(slugs);
  await redis?.stop();
  if (home) rmSync(home, { recursive: true, force: true });
});

describe('podgate against a real orchestrator', () => {
  it('creates a pod with a progress line, lists, execs, reads logs, mints and revokes links, stops, starts, restarts, deletes', async () => {
    const slug = uniqueSlug('cli');
    slugs.add(slug);

    // On a terminal, the create shows the pod's state while it provisions, then the pod.
    const created = await podgateOnTerminal(['pods', 'create', slug, '--service', 'app:3000', '--label', 'team=cli'], env);
    outputs.push(created);
    expect(created.code, created.stdout).toBe(0);
    expect(created.stdout).toContain(`creating ${slug}: `);
    expect(created.stdout).toMatch(/status:\s+running/);
    expect(created.stdout).toMatch(new RegExp(`app \\(3000\\):\\s+http://localhost-3000\\.pod-${slug}\\.localhost:?\\d*/`));

    // Tables for people, JSON for scripts.
    const ls = await cli(['pods', 'ls']);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout.split('\n')[0]).toMatch(/^SLUG\s+STATUS\s+TIER\s+HOST PORT\s+SERVICES\s+URL$/);
    expect(ls.stdout).toMatch(new RegExp(`^${slug}\\s+running\\s+dev\\.small\\s+387[45]\\d\\s+app:3000\\s+http://pod-${slug}\\.localhost`, 'm'));
    const lsJson = await cli(['pods', 'ls', '--json']);
    expect(lsJson.code).toBe(0);
    const pod = (JSON.parse(lsJson.stdout) as { pods: { slug: string; status: string; labels: Record<string, string> }[] }).pods.find((p) => p.slug === slug);
    expect(pod).toMatchObject({ status: 'running', labels: { team: 'cli' } });
    // Not a terminal: no progress line, only the pod, as JSON here.
    const again = await cli(['--json', 'pods', 'show', slug]);
    expect(JSON.parse(again.stdout)).toMatchObject({ slug, status: 'running' });
    expect(again.stderr).toBe('');

    // exec: the command's output and exit code are podgate's.
    const exec = await cli(['pods', 'exec', slug, '--', 'sh', '-c', 'echo out-$((6*7)); echo err >&2; exit 3']);
    expect(exec).toEqual({ code: 3, stdout: 'out-42\n', stderr: 'err\n' });
    const execJson = await cli(['pods', 'exec', '--json', slug, '--', 'true']);
    expect(execJson.code).toBe(0);
    expect(JSON.parse(execJson.stdout)).toMatchObject({ exitCode: 0, command: ['true'], timedOut: false });

    const logs = await cli(['pods', 'logs', slug]);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toMatch(/exec {2}exit 3 {2}\d+ ms {2}\$ sh -c echo out-\$\(\(6\*7\)\); echo err >&2; exit 3\n {4}out-42\n {4}err\n/);
    const logsJson = JSON.parse((await cli(['pods', 'logs', slug, '--json', '-n', '1'])).stdout) as { entries: { command: string[] }[] };
    expect(logsJson.entries.map((e) => e.command)).toEqual([['true']]);

    // logs -f prints what the pod does after it started following.
    const follow = podgateRunning(['pods', 'logs', slug, '-f', '-n', '1'], env);
    try {
      await waitFor(() => follow.output().stdout.includes('$ true'), { timeoutMs: 20_000, what: 'logs -f to print the last entry' });
      expect((await cli(['pods', 'exec', slug, '--label', 'followed', '--', 'echo', 'followed-output'])).code).toBe(0);
      await waitFor(() => follow.output().stdout.includes('followed-output'), { timeoutMs: 20_000, what: 'logs -f to print a new entry' });
      expect(follow.output().stdout).toMatch(/followed {2}exit 0 .*\$ echo followed-output\n {4}followed-output\n/);
    } finally {
      follow.child.kill('SIGTERM');
      outputs.push(await follow.done);
    }

    // Links: the URL with its token is printed once; the list never has the token.
    const link = await cli(['links', 'create', slug, '--port', '3000', '--label', 'for review', '--expires', '1h']);
    expect(link.code, link.stderr).toBe(0);
    const url = /^url:\s+(\S+)$/m.exec(link.stdout)?.[1];
    expect(url).toMatch(new RegExp(`^http://localhost-3000\\.pod-${slug}\\.localhost(:\\d+)?/\\?podgate_token=pg1\\.`));
    expect(link.stderr).toContain('shown only now');
    const linkId = /^id:\s+(\S+)$/m.exec(link.stdout)?.[1];
    const second = JSON.parse((await cli(['links', 'create', slug, '--json'])).stdout) as { id: string; token: string; url: string };
    expect(second.url).toContain(second.token);
    const linkLs = await cli(['links', 'ls', slug]);
    expect(linkLs.stdout.split('\n')[0]).toMatch(/^ID\s+PORT\s+LABEL\s+CREATED\s+EXPIRES$/);
    expect(linkLs.stdout).toMatch(new RegExp(`^${linkId}\\s+3000\\s+for review\\s+`, 'm'));
    expect(linkLs.stdout).toMatch(new RegExp(`^${second.id}\\s+all\\s+-\\s+`, 'm'));
    expect(linkLs.stdout).not.toContain('pg1.');
    expect(await cli(['links', 'revoke', slug, linkId!])).toMatchObject({ code: 0, stdout: `revoked link ${linkId} of ${slug}\n` });
    const afterRevoke = JSON.parse((await cli(['links', 'ls', slug, '--json'])).stdout) as { links: { id: string }[] };
    expect(afterRevoke.links.map((l) => l.id)).toEqual([second.id]);
    expect((await cli(['links', 'revoke', slug, '--all'])).code).toBe(0);
    expect((await cli(['links', 'ls', slug])).stdout).toBe(`no live links for ${slug}\n`);
    // A revoked link is gone for the API too.
    expect((await cli(['links', 'revoke', slug, linkId!])).stderr).toMatch(/has no live link .*\(HTTP 404 not_found\)/);

    // The route table as gateways see it.
    const routes = await cli(['routes']);
    expect(routes.stdout).toMatch(new RegExp(`^${slug}\\s+running\\s+127\\.0\\.0\\.1:387[45]\\d\\s+3000\\s+private\\s+\\d+`, 'm'));

    expect(await cli(['pods', 'stop', slug])).toMatchObject({ code: 0, stdout: `${slug}: stopped\n` });
    expect((await cli(['routes'])).stdout).toMatch(new RegExp(`^${slug}\\s+stopped\\s`, 'm'));
    expect(await cli(['pods', 'start', slug])).toMatchObject({ code: 0, stdout: `${slug}: running\n` });
    const restarted = await cli(['pods', 'restart', slug, '--json']);
    expect(JSON.parse(restarted.stdout)).toMatchObject({ slug, status: 'running' });
    expect(await cli(['pods', 'sleep', slug])).toMatchObject({ code: 0, stdout: `${slug}: sleeping\n` });
    expect((await cli(['routes'])).stdout).toMatch(new RegExp(`^${slug}\\s+sleeping\\s`, 'm'));
    expect(await cli(['pods', 'wake', slug])).toMatchObject({ code: 0, stdout: `${slug}: running\n` });
    expect((await cli(['pods', 'logs', slug, '-n', '2'])).stdout).toMatch(/ {2}sleep {2}asleep: asked by the admin API\n.* {2}wake {2}woken by the admin API, running \d+ ms after the wake was asked\n$/);

    expect(await cli(['pods', 'rm', slug])).toMatchObject({ code: 0, stdout: `deleted ${slug}\n` });

    // --no-wait answers with the accepted pod at once; it goes on provisioning.
    const quick = uniqueSlug('nowait');
    slugs.add(quick);
    const accepted = await cli(['pods', 'create', quick, '--no-wait', '--json']);
    expect(accepted.code, accepted.stderr).toBe(0);
    expect(JSON.parse(accepted.stdout)).toMatchObject({ slug: quick, status: 'pending' });
    await waitFor(async () => JSON.parse((await cli(['pods', 'show', quick, '--json'])).stdout).status === 'running', { timeoutMs: 60_000, intervalMs: 250, what: 'the --no-wait pod to run' });
    expect((await cli(['pods', 'rm', quick])).code).toBe(0);
    expect((await cli(['pods', 'ls'])).stdout).not.toContain(slug);
    const gone = await cli(['pods', 'show', slug]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toBe(`podgate: no pod named "${slug}" (HTTP 404 pod_not_found)\n`);
  });

  it('exits 1 with the API\'s message: a wrong token, a field the API refuses, an unknown pod', async () => {
    const bad = await cli(['pods', 'ls'], { ...env, PODGATE_TOKEN: 'not-the-token-0123456789' });
    expect(bad).toEqual({ code: 1, stdout: '', stderr: 'podgate: a valid bearer token (ADMIN_TOKEN) is required (HTTP 401 unauthorized)\n' });

    const port80 = await cli(['pods', 'create', uniqueSlug('bad'), '--service', 'app:80']);
    expect(port80.code).toBe(1);
    expect(port80.stderr).toBe('podgate: services[0].port: port 80 is the in-pod router (HTTP 400 invalid_request, field services[0].port)\n');
    const badSlug = await cli(['--json', 'pods', 'create', 'Not_A_Slug']);
    expect(badSlug.code).toBe(1);
    expect(JSON.parse(badSlug.stderr)).toMatchObject({ error: { status: 400, code: 'invalid_request', field: 'slug' } });
    // Refused by the orchestrator once provisioning checks the Docker host: the create waits for that answer, field
    // included, and nothing is left behind.
    const noImage = uniqueSlug('noimg');
    slugs.add(noImage);
    const missing = await cli(['pods', 'create', noImage, '--image', 'podgate/no-such-image:cli-test']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('podgate: image: podgate/no-such-image:cli-test is not on the Docker host (build or load it there first) (HTTP 400 invalid_request, field image)\n');
    expect((await cli(['pods', 'ls'])).stdout).not.toContain(noImage);
    const badPort = await cli(['links', 'create', 'nosuchpod', '--port', 'http']);
    expect(badPort.stderr).toMatch(/\(HTTP 400 invalid_request, field port\)\n$/);

    for (const args of [['pods', 'start', 'nosuchpod'], ['pods', 'exec', 'nosuchpod', '--', 'true'], ['links', 'ls', 'nosuchpod']]) {
      const r = await cli(args);
      if (args[0] === 'links') {
        // Listing the links of an unknown pod is allowed (there are none).
        expect(r).toMatchObject({ code: 0, stdout: 'no live links for nosuchpod\n' });
        continue;
      }
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr).toBe('podgate: no pod named "nosuchpod" (HTTP 404 pod_not_found)\n');
    }
  });

  it('exits 2 with the parser\'s message for usage errors, before calling anything', async () => {
    const noEnv = childEnv(home, {});
    const cases: [string[], RegExp][] = [
      [['pods', 'create'], /error: missing required argument 'slug'/],
      [['pods', 'lss'], /error: unknown command 'lss'/],
      [['pods', 'create', 'x', '--bogus'], /error: unknown option '--bogus'/],
      [['pods', 'create', 'x', '--service', 'app'], /--service takes name:port/],
      [['links', 'revoke', 'x'], /links revoke takes a link id or --all/],
      [['pods', 'logs', 'x', '-n', '0'], /--limit takes 1 to 1000/],
      [['pods'], /Usage: podgate pods/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args, noEnv);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
    expect((await cli(['--help'], noEnv)).code).toBe(0);
  });

  it('takes its settings from a config file readable by its owner only, and refuses http:// to other hosts', async () => {
    const fileHome = mkdtempSync(join(tmpdir(), 'podgate-cli-cfg-'));
    try {
      const dir = join(fileHome, '.config', 'podgate');
      mkdirSync(dir, { recursive: true });
      const file = join(dir, 'config.json');
      writeFileSync(file, JSON.stringify({ url: `http://127.0.0.1:${orch.port}`, token: TOKEN }), { mode: 0o644 });
      chmodSync(file, 0o644);
      const open = await cli(['pods', 'ls'], childEnv(fileHome, {}));
      expect(open.code).toBe(1);
      expect(open.stderr).toBe(`podgate: ${file} holds a token and is accessible to other users (mode 644): whoever reads it administers podgate. Run: chmod 600 ${file}\n`);
      chmodSync(file, 0o600);
      expect(await cli(['pods', 'ls', '--json'], childEnv(fileHome, {}))).toMatchObject({ code: 0, stderr: '' });

      // Refused before anything is sent (10.255.255.1 is not this test's to reach, and nothing goes there).
      const clear = await cli(['pods', 'ls'], childEnv(fileHome, { PODGATE_URL: 'http://10.255.255.1:8090' }));
      expect(clear.code).toBe(1);
      expect(clear.stderr).toMatch(/^podgate: PODGATE_URL: http:\/\/ to 10\.255\.255\.1 would send the admin token in clear text.*--insecure/);
    } finally {
      rmSync(fileHome, { recursive: true, force: true });
    }
  });

  it('never printed the admin token', () => {
    expect(outputs.length).toBeGreaterThan(20);
    for (const r of outputs) expect(`${r.stdout}${r.stderr}`).not.toContain(TOKEN);
  });
});
