// Redis protected by a password, an ACL user and TLS: a real redis-server with requirepass, an ACL `user` limited
// to podgate's keys and channels, and TLS only (tls-port, no plain port), its certificate signed by a private CA
// made here with openssl. Every part of podgate connects to it as that user over rediss:// with REDIS_TLS_CA: the
// orchestrator (a real gVisor pod created through its API), a gateway process (route and access stores), and
// the route, access and certificate stores the factories build (their contract suites). Wrong or missing
// credentials and an untrusted certificate are reported naming the setting to fix, never with the password.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../gateway/config.ts';
import { loadConfig } from '../orchestrator/config.ts';
import { startOrchestrator } from '../orchestrator/main.ts';
import { removePods, testOrchestratorConfig, testPodImage, uniqueSlug } from './support/orchestrator.ts';
import { runAccessStoreContract } from '../shared/access-store.contract.ts';
import { TOKEN_HEADER } from '../shared/access-token.ts';
import { runCertStoreContract } from '../shared/cert-store.contract.ts';
import { ConfigError } from '../shared/errors.ts';
import { createRedis, sendsPasswordInClear, waitReady } from '../shared/redis.ts';
import { runRouteStoreContract } from '../shared/route-store.contract.ts';
import { createStores, type Stores } from '../shared/stores.ts';
import { adminCall } from './support/admin-api.ts';
import { spawnGateway, type ChildGateway } from './support/child-gateway.ts';
import { startRedis, type RedisServer } from './support/redis-server.ts';
import { waitFor } from './support/wait.ts';
import { send } from './support/access.ts';

const run = promisify(execFile);
const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const ADMIN_TOKEN = 'redis-protected-admin-token-0123';
const suffix = Math.random().toString(36).slice(2, 10);
/** Characters a URL must %-encode, so the test also covers passwords that need it. */
const ACL_PASSWORD = `acl:p@ss/w#rd-${suffix}`;
const DEFAULT_PASSWORD = `default-pass-${suffix}`;
const WRONG_PASSWORD = `wrong-pass-${suffix}`;
const silent = pino({ level: 'silent' });
/** The ACL rules the README recommends for podgate's user: its keys and channels only, no server administration. */
const PODGATE_ACL = ['resetchannels', '~podgate:*', '&podgate:*', '+@all', '-@dangerous', '+info'];

let dir: string;
let caFile: string;
let server: RedisServer;
const gateways: ChildGateway[] = [];
const slugs = new Set<string>();

const urlAs = (user: string, password: string | undefined) =>
  `rediss://${password === undefined ? '' : `${user}:${encodeURIComponent(password)}@`}127.0.0.1:${server.port}`;
const aclUrl = () => urlAs('podgate', ACL_PASSWORD);

/** A CA and a certificate it signs for 127.0.0.1 and localhost (EC keys: quick to make). */
async function makeCertificates(into: string) {
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const f = (name: string) => join(into, name);
  await run('openssl', ['req', '-x509', ...key, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=podgate test Redis CA']);
  await run('openssl', ['req', ...key, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=localhost']);
  writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await run('openssl', ['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '2', '-extfile', f('ext.cnf')]);
  return { caFile: f('ca.pem'), certFile: f('server.pem'), keyFile: f('server.key') };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'podgate-redis-tls-'));
  const certs = await makeCertificates(dir);
  caFile = certs.caFile;
  server = await startRedis({
    password: DEFAULT_PASSWORD,
    users: [['podgate', 'on', `>${ACL_PASSWORD}`, ...PODGATE_ACL]],
    tls: certs,
  });
});
afterAll(async () => {
  await Promise.all(gateways.map((g) => g.kill()));
  await removePods(slugs);
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function orchestratorConfig(env: Record<string, string | undefined>) {
  return testOrchestratorConfig({ ADMIN_TOKEN, POD_PORT_RANGE: '38890-38899', POD_IMAGE: 'podgate/pod:dev', REDIS_URL: aclUrl(), REDIS_TLS_CA: caFile, ...env });
}

/** Every line a gateway process printed, for checks that the password never appears. */
function everything(g: ChildGateway): string {
  return `${JSON.stringify(g.logs)}\n${g.otherStdout.join('\n')}\n${g.stderr()}`;
}

function expectNoPassword(text: string, password: string) {
  expect(text).not.toContain(password);
  expect(text).not.toContain(encodeURIComponent(password));
}

describe('podgate on a Redis with an ACL user, a password and TLS', () => {
  it('the orchestrator creates a real pod and a gateway process routes it and opens it with a link, all over rediss:// as the ACL user', async () => {
    const orch = await startOrchestrator(orchestratorConfig({ POD_IMAGE: await testPodImage() }), { logger: silent });
    try {
      const gw = await spawnGateway({ REDIS_URL: aclUrl(), REDIS_TLS_CA: caFile, ACCESS_LOG: 'false' });
      gateways.push(gw);
      const slug = uniqueSlug('rtls');
      slugs.add(slug);
      const created = await adminCall(orch.port, ADMIN_TOKEN, 'POST', '/v1/pods', { slug });
      expect(created.status, JSON.stringify(created.json)).toBe(201);
      const link = await adminCall(orch.port, ADMIN_TOKEN, 'POST', `/v1/pods/${slug}/links`, {});
      expect(link.status).toBe(201);
      await waitFor(async () => (await send(gw.url, `pod-${slug}.localhost`, { headers: { [TOKEN_HEADER]: link.json.token } })).status === 200, {
        what: 'the gateway process to route the pod and accept its link',
        timeoutMs: 20_000,
      });
      expect((await send(gw.url, `pod-${slug}.localhost`)).status).toBe(401); // private: the link is what opened it

      // What they wrote is in the protected Redis, under the prefix the ACL user is limited to.
      const raw = createRedis({ url: aclUrl(), ca: readFileSync(caFile) });
      try {
        await waitReady(raw);
        expect(JSON.parse((await raw.hget('podgate:routes', slug))!)).toMatchObject({ slug, status: 'running' });
        expect(await raw.hlen(`podgate:access:links:${slug}`)).toBe(1);
        // The ACL holds: nothing outside podgate's keys.
        await expect(raw.get('elsewhere')).rejects.toThrow(/NOPERM/);
        await expect(raw.call('CONFIG', 'GET', 'dir')).rejects.toThrow(/NOPERM/);
        await expect(raw.flushall()).rejects.toThrow(/NOPERM/);
      } finally {
        raw.disconnect();
      }
      expect(gw.logs.filter((l) => l.level >= 50)).toEqual([]);
      expect(gw.logs.find((l) => l.msg === 'Redis connected')?.redis).toBe(`rediss://podgate:***@127.0.0.1:${server.port}`);
      expectNoPassword(everything(gw), ACL_PASSWORD);
      expect((await adminCall(orch.port, ADMIN_TOKEN, 'DELETE', `/v1/pods/${slug}`)).status).toBe(204);
    } finally {
      await orch.close();
    }
  });

  it('a wrong password: the gateway says so naming REDIS_URL and keeps retrying, the orchestrator does not start; neither prints the password', async () => {
    const wrong = urlAs('podgate', WRONG_PASSWORD);
    const gw = await spawnGateway({ REDIS_URL: wrong, REDIS_TLS_CA: caFile, ACCESS_LOG: 'false' });
    gateways.push(gw);
    await waitFor(() => gw.logs.some((l) => l.variable === 'REDIS_URL' && l.msg.startsWith('gateway cannot use Redis')), {
      what: 'the gateway to report the refused password',
    });
    const said = gw.logs.find((l) => l.variable === 'REDIS_URL')!;
    expect(said.msg).toMatch(/Redis refused the user name or password \(WRONGPASS/);
    expect(said.level).toBe(50);
    expectNoPassword(everything(gw), WRONG_PASSWORD);

    const refused = await startOrchestrator(orchestratorConfig({ REDIS_URL: wrong }), { logger: silent }).then(() => undefined, (err: unknown) => err);
    expect(refused).toBeInstanceOf(ConfigError);
    expect((refused as ConfigError).variable).toBe('REDIS_URL');
    expect((refused as ConfigError).message).toMatch(/^REDIS_URL: Redis refused the user name or password/);
    expectNoPassword((refused as ConfigError).message, WRONG_PASSWORD);

    // The orchestrator process: exit 2 with that message on stderr.
    const child = spawn(process.execPath, ['orchestrator/main.ts'], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ADMIN_TOKEN, REDIS_URL: wrong, REDIS_TLS_CA: caFile, ORCHESTRATOR_PORT: '0', POD_NAMESPACE: `rtls-${suffix}`, LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    expect(code).toBe(2);
    expect(output).toMatch(/orchestrator: REDIS_URL: Redis refused the user name or password/);
    expectNoPassword(output, WRONG_PASSWORD);
  });

  it('no password, or no trust in the server certificate: the error names REDIS_URL or REDIS_TLS_CA', async () => {
    const noPassword = await startOrchestrator(orchestratorConfig({ REDIS_URL: urlAs('', undefined) }), { logger: silent }).then(() => undefined, (err: unknown) => err);
    expect(noPassword).toMatchObject({ variable: 'REDIS_URL', message: expect.stringMatching(/Redis requires a password/) });
    const untrusted = await startOrchestrator(orchestratorConfig({ REDIS_TLS_CA: undefined }), { logger: silent }).then(() => undefined, (err: unknown) => err);
    expect(untrusted).toMatchObject({ variable: 'REDIS_TLS_CA', message: expect.stringMatching(/TLS certificate is not trusted .*set REDIS_TLS_CA/) });
    // The default user with its password works too (the rediss://:<password>@host form).
    const asDefault = await startOrchestrator(orchestratorConfig({ REDIS_URL: urlAs('', DEFAULT_PASSWORD) }), { logger: silent });
    await asDefault.close();
  });
});

describe('REDIS_URL and REDIS_TLS_CA settings', () => {
  const load = {
    gateway: (env: Record<string, string>) => loadGatewayConfig({ HTTP_PORT: '0', ADMIN_PORT: '0', ...env }),
    orchestrator: (env: Record<string, string>) => loadConfig({ ADMIN_TOKEN, ...env }),
  };
  const failure = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      if (err instanceof ConfigError) return err;
      throw err;
    }
    throw new Error('no ConfigError');
  };

  it.each(['gateway', 'orchestrator'] as const)('%s: a bad CA file, or a CA without TLS, names REDIS_TLS_CA', (who) => {
    const url = 'rediss://podgate:x@127.0.0.1:6380';
    expect(failure(() => load[who]({ REDIS_URL: url, REDIS_TLS_CA: join(dir, 'missing.pem') })).message).toMatch(/^REDIS_TLS_CA: cannot read/);
    expect(failure(() => load[who]({ REDIS_URL: url, REDIS_TLS_CA: join(dir, 'server.key') })).message).toMatch(/^REDIS_TLS_CA: .* holds no PEM certificate/);
    expect(failure(() => load[who]({ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_TLS_CA: caFile })).message).toMatch(/^REDIS_TLS_CA: only used with REDIS_URL=rediss:/);
    expect(failure(() => load[who]({ REDIS_TLS_CA: caFile })).variable).toBe('REDIS_TLS_CA');
  });

  it('a password sent in clear text to another machine is told apart (a warning at start)', () => {
    expect(sendsPasswordInClear('redis://:pw@redis.internal:6379')).toBe(true);
    expect(sendsPasswordInClear('redis://podgate:pw@10.0.0.5:6379')).toBe(true);
    expect(sendsPasswordInClear('redis://:pw@[fd00::5]:6379')).toBe(true);
    expect(sendsPasswordInClear('rediss://:pw@redis.internal:6380')).toBe(false);
    expect(sendsPasswordInClear('redis://redis.internal:6379')).toBe(false);
    for (const host of ['127.0.0.1', '127.0.0.2', 'localhost', 'redis.localhost', '[::1]']) expect(sendsPasswordInClear(`redis://:pw@${host}:6379`)).toBe(false);
  });

  it.each(['gateway', 'orchestrator'] as const)('%s: an invalid REDIS_URL is reported without its password', (who) => {
    const err = failure(() => load[who]({ REDIS_URL: `rediss://podgate:${WRONG_PASSWORD}@127.0.0.1:notaport` }));
    expect(err.variable).toBe('REDIS_URL');
    expect(err.message).toContain('rediss://podgate:***@127.0.0.1:notaport');
    expectNoPassword(err.message, WRONG_PASSWORD);
  });
});

// The stores createStores builds (what the gateway runs), over TLS as the ACL user: each contract suite in full.
describe('stores built from REDIS_URL + REDIS_TLS_CA', () => {
  let n = 0;
  const built: Stores[] = [];
  afterAll(async () => {
    await Promise.all(built.map((s) => s.close()));
  });
  /** A set of stores of their own (own prefix, own connection) for each contract test. */
  const stores = (prefix: string) => {
    const s = createStores({ redis: { url: aclUrl(), ca: readFileSync(caFile) }, prefix, user: 'test' }, silent);
    built.push(s);
    return s;
  };
  /** The factories connect in the background: wait until a read answers. */
  const ready = async <T>(store: T, probe: (s: T) => Promise<unknown>) => {
    await waitFor(() => probe(store).then(() => true, () => false), { what: 'the store to connect' });
    return store;
  };
  runRouteStoreContract('factory, rediss:// as an ACL user', () => ready(stores(`podgate:r${++n}:`).routes, (s) => s.get('probe')));
  runAccessStoreContract('factory, rediss:// as an ACL user', () => ready(stores(`podgate:a${++n}:`).access, (s) => s.revocations(0)));
  runCertStoreContract('factory, rediss:// as an ACL user', () => ready(stores(`podgate:c${++n}:`).certs, (s) => s.listCertificates()));
});
