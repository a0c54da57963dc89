// DockerRuntime against the real Docker daemon with gVisor (runsc).
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Docker from 'dockerode';
import { ConflictError, ServiceUnavailableError } from '../shared/errors.ts';
import { waitFor } from '../test/support/wait.ts';
import { LABELS, type PodContainerSpec, type RuntimeEvent } from './container-runtime.ts';
import { DockerRuntime, POD_STORAGE_BYTES, POD_SUDO_CAP_ADD, podSecurity, storageLimitSupport } from './docker-runtime.ts';
import { newRouterKey } from './pods.ts';
import { isPortBindable, MemoryPortAllocator } from './port-allocator.ts';
import { tierLimits } from './spec.ts';
import { POD_RUNTIME, POOLS_EXHAUSTED_TEXT, removePods, testPodImage, uniqueSlug, withNetworkCreateError } from '../test/support/orchestrator.ts';

const docker = new Docker();
const runtime = new DockerRuntime(docker, { namespace: `rt-${process.pid}-${Date.now().toString(36)}` });
const slugs = new Set<string>();
let image: string;
// A private part of the pod range so parallel test files do not hand out the same ports.
const ports = new MemoryPortAllocator({ first: 38000, last: 38099 });

beforeAll(async () => {
  image = await testPodImage();
});
afterAll(async () => {
  await removePods(slugs);
});

const ROUTER_KEY = newRouterKey();

/** Status and body of GET / on the pod's host port with `host`, carrying the router key as a gateway does. */
function getPod(port: number, host: string, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host, 'x-podgate-router-key': ROUTER_KEY }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function spec(stem: string, extra: Partial<PodContainerSpec> = {}): Promise<PodContainerSpec> {
  const slug = uniqueSlug(stem);
  slugs.add(slug);
  let hostPort = await ports.allocate(slug);
  while (!(await isPortBindable('127.0.0.1', hostPort))) hostPort = await ports.allocate(slug);
  return {
    slug,
    generation: 1,
    image,
    runtime: POD_RUNTIME,
    bindAddress: '127.0.0.1',
    hostPort,
    defaultPort: 3000,
    env: { POD_SLUG: slug, PODGATE_ROUTER_KEY: ROUTER_KEY },
    labels: { 'team': 'qa', [LABELS.generation]: '1', [LABELS.hostPort]: String(hostPort) },
    ...tierLimits('dev.small', 2),
    sudo: false,
    ...extra,
  };
}

describe('DockerRuntime', () => {
  it('knows the runsc runtime and says how to register a missing one', async () => {
    await runtime.checkRuntime(POD_RUNTIME);
    const err = await runtime.checkRuntime('no-such-runtime').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect((err as Error).message).toMatch(/daemon\.json/);
    expect(await runtime.hostCpus()).toBeGreaterThan(0);
  });

  it('runs a pod under gVisor on its own network with tier limits, exec and events, and removes it all', async () => {
    const s = await spec('rt');
    const events: RuntimeEvent[] = [];
    const stopEvents = await runtime.events((e) => events.push(e), () => {});
    try {
      const created = await runtime.create(s);
      expect(created.state).toBe('created');
      expect(created.labels[LABELS.slug]).toBe(s.slug);
      expect(created.labels.team).toBe('qa');
      await runtime.start(s.slug);
      await runtime.start(s.slug); // already running is fine

      const info = await docker.getContainer(`podgate-${s.slug}`).inspect();
      expect(info.HostConfig.Runtime).toBe(POD_RUNTIME);
      expect(info.HostConfig.NetworkMode).toBe(`podgate-${s.slug}`);
      expect(info.HostConfig.NanoCpus).toBe(1e9);
      expect(info.HostConfig.Memory).toBe(1024 ** 3);
      expect(info.HostConfig.PortBindings?.['80/tcp']).toEqual([{ HostIp: '127.0.0.1', HostPort: String(s.hostPort) }]);

      // Proof of the sandbox: gVisor's kernel log, not the host's.
      const dmesg = await runtime.exec(s.slug, ['dmesg'], { timeoutMs: 20_000, outputLimit: 65536 });
      expect(dmesg.exitCode).toBe(0);
      expect(dmesg.stdout).toMatch(/gVisor/);

      const r = await runtime.exec(s.slug, ['sh', '-c', 'echo out; echo err >&2; exit 3'], { timeoutMs: 20_000, outputLimit: 65536 });
      expect(r).toMatchObject({ exitCode: 3, stdout: 'out\n', stderr: 'err\n', timedOut: false, truncated: false });
      const big = await runtime.exec(s.slug, ['sh', '-c', 'i=0; while [ $i -lt 2000 ]; do echo 0123456789; i=$((i+1)); done'], { timeoutMs: 20_000, outputLimit: 100 });
      expect(big.stdout).toHaveLength(100);
      expect(big.truncated).toBe(true);
      const slow = await runtime.exec(s.slug, ['sleep', '30'], { timeoutMs: 300, outputLimit: 100 });
      expect(slow).toMatchObject({ timedOut: true, exitCode: null });

      expect((await runtime.list()).map((c) => c.labels[LABELS.slug])).toContain(s.slug);
      // Another namespace on the same daemon does not see it.
      const other = new DockerRuntime(docker, { namespace: 'some-other-namespace' });
      expect((await other.list()).map((c) => c.labels[LABELS.slug])).not.toContain(s.slug);
      expect(await other.inspect(s.slug)).toBeUndefined();
      await expect(other.create({ ...s })).rejects.toThrow(/already exists/);
      expect((await runtime.networks()).map((n) => n.slug)).toContain(s.slug);
      expect((await runtime.inspect(s.slug))?.state).toBe('running');

      await runtime.stop(s.slug, 1);
      await runtime.stop(s.slug, 1); // already stopped is fine
      expect((await runtime.inspect(s.slug))?.state).toBe('exited');
      await waitFor(() => events.some((e) => e.slug === s.slug && e.action === 'die'), { what: 'die event' });

      await runtime.remove(s.slug);
      await runtime.remove(s.slug); // already gone is fine
      expect(await runtime.inspect(s.slug)).toBeUndefined();
      expect((await runtime.networks()).map((n) => n.slug)).not.toContain(s.slug);
      await waitFor(() => events.some((e) => e.slug === s.slug && e.action === 'destroy'), { what: 'destroy event' });
    } finally {
      stopEvents();
    }
  });

  it('hardens the container: no capabilities but NET_BIND_SERVICE, no-new-privileges, and the pod still serves', async () => {
    const s = await spec('hard');
    await runtime.create(s);
    await runtime.start(s.slug);
    const info = await docker.getContainer(`podgate-${s.slug}`).inspect();
    expect(info.HostConfig.CapDrop).toEqual(['ALL']);
    expect(info.HostConfig.CapAdd).toEqual(['NET_BIND_SERVICE']);
    expect(info.HostConfig.SecurityOpt).toEqual(['no-new-privileges']);
    expect(info.HostConfig.PidsLimit).toBe(4096);
    expect(info.HostConfig.Memory).toBe(1024 ** 3);
    // This daemon's storage driver decides whether the writable layer is capped.
    const daemon = (await docker.info()) as { Driver?: string; DriverStatus?: [string, string][] };
    const storage = storageLimitSupport(daemon);
    if (storage.supported) expect(info.HostConfig.StorageOpt).toEqual({ size: String(POD_STORAGE_BYTES) });
    else expect(info.HostConfig.StorageOpt ?? undefined).toBeUndefined();

    // Inside: the pod's processes hold no capability, none is left to gain but NET_BIND_SERVICE (the bounding set,
    // 0x400; Docker's default is 0xa80405fb), and exec cannot add privileges (prctl PR_GET_NO_NEW_PRIVS: gVisor's
    // /proc/<pid>/status does not show it, and this runsc reports 1 with or without the option, so the option is
    // checked in the inspect above; it is what keeps it 1 under runc).
    await waitFor(async () => (await getPod(s.hostPort, 'podgate-router', '/readyz').catch(() => ({ status: 0 }))).status === 200, {
      timeoutMs: 60_000, intervalMs: 200, what: 'the hardened pod to be ready',
    });
    const caps = await runtime.exec(s.slug, ['sh', '-c', 'grep -E "CapEff|CapBnd" /proc/self/status /proc/$(pgrep -x nginx | head -1)/status | cut -d: -f2-'], { timeoutMs: 20_000, outputLimit: 4096 });
    expect(caps.stdout).toBe('CapEff:\t0000000000000000\nCapBnd:\t0000000000000400\n'.repeat(2));
    const nnp = await runtime.exec(s.slug, ['perl', '-e', 'print syscall(157, 39, 0, 0, 0, 0)'], { timeoutMs: 20_000, outputLimit: 100 });
    expect(nnp.stdout).toBe('1');
    // No root for the pod user: the sudo daemon never started.
    const sudo = await runtime.exec(s.slug, ['sudo', '-n', 'true'], { timeoutMs: 20_000, outputLimit: 4096 });
    expect(sudo).toMatchObject({ exitCode: 1, stderr: expect.stringContaining('root is not available in this pod') });
    expect((await runtime.exec(s.slug, ['id', '-u'], { timeoutMs: 20_000, outputLimit: 100 })).stdout).toBe('1000\n');
    // The router still binds :80 and proxies, the services still run.
    const app = await getPod(s.hostPort, `localhost-3000.pod-${s.slug}.localhost`);
    expect(app.status).toBe(200);
    expect(app.body).toContain('demo app on port 3000');
    expect((await getPod(s.hostPort, `localhost-7681.pod-${s.slug}.localhost`)).body).toContain('<title>pod terminal</title>');
    await runtime.remove(s.slug);
  });

  it('keeps /workspace on the pod\'s own volume, owned by the pod user, through stop/start, and removes it with the pod', async () => {
    const s = await spec('ws');
    const volume = `podgate-${s.slug}-workspace`;
    const volumeThere = () => docker.getVolume(volume).inspect().then((v) => v.Labels, () => undefined);
    await runtime.create(s);
    expect(await volumeThere()).toMatchObject({ [LABELS.managed]: 'true', [LABELS.slug]: s.slug });
    expect((await runtime.volumes()).map((v) => v.slug)).toContain(s.slug);
    await runtime.start(s.slug);
    const sh = (script: string) => runtime.exec(s.slug, ['bash', '-c', script], { timeoutMs: 120_000, outputLimit: 65536 });
    await waitFor(async () => (await sh('true')).exitCode === 0, { what: 'a shell in the pod', timeoutMs: 60_000, intervalMs: 250 });
    // The image's WORKDIR; Docker gave the new volume the image directory's owner: no chown at run time.
    const who = await sh('pwd; id -u; stat -c "%u:%g %a" /workspace; findmnt -n -o TARGET /workspace || grep " /workspace " /proc/mounts');
    expect(who.stdout.split('\n').slice(0, 3)).toEqual(['/workspace', '1000', '1000:1000 755']);
    expect(who.stdout).toContain('/workspace');
    // What developers do there: a git repository, a tree of many small files (an npm install's shape), modes.
    const work = await sh([
      'set -e; cd /workspace; git init -q proj; cd proj; git config user.email d@example.test; git config user.name dev',
      'echo hello > a.txt; git add a.txt; git commit -qm first; git log --oneline | wc -l',
      "perl -e 'for my $d (1..50) { mkdir \"m/$d\" or mkdir(\"m\") && mkdir(\"m/$d\"); for my $f (1..40) { open my $h, \">\", \"m/$d/f$f.js\" or die; print $h \"module.exports=$f\"; } }'",
      'find m -type f | wc -l; chmod 600 a.txt; mkdir -p bin; printf "#!/bin/sh\\necho ran\\n" > bin/x; chmod +x bin/x; bin/x',
      'ln -s a.txt link; cat link; stat -c "%u %a" a.txt; mv m m2; rm -rf m2; ls',
    ].join('\n'));
    expect(work.stderr).toBe('');
    expect(work.stdout).toBe('1\n2000\nran\nhello\n1000 600\na.txt\nbin\nlink\n');
    await runtime.stop(s.slug, 1);
    await runtime.start(s.slug);
    await waitFor(async () => (await sh('true')).exitCode === 0, { what: 'the restarted pod', timeoutMs: 60_000, intervalMs: 250 });
    const kept = await sh('cd /workspace/proj && git log --oneline | wc -l && cat a.txt && git status --porcelain && stat -c "%u %a" a.txt');
    expect(kept.stdout).toBe('1\nhello\n?? bin/\n?? link\n1000 600\n');
    // Only a pod's own volume: a leftover of that name is never handed to a new pod.
    await expect(new DockerRuntime(docker, { namespace: 'ws-other' }).create({ ...s, slug: s.slug })).rejects.toThrow(/already exists/);
    await runtime.remove(s.slug);
    expect(await volumeThere()).toBeUndefined();
  });

  it('refuses to create a pod over a leftover volume of its name, and leaves that volume and nothing else', async () => {
    const s = await spec('wsleft');
    const volume = `podgate-${s.slug}-workspace`;
    await docker.createVolume({ Name: volume, Labels: { 'someone-elses': 'data' } });
    try {
      const err = await runtime.create(s).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConflictError);
      expect((err as Error).message).toContain(`a volume named ${volume} already exists`);
      expect(await docker.getVolume(volume).inspect().then((v) => v.Labels)).toEqual({ 'someone-elses': 'data' });
      expect((await runtime.networks()).map((n) => n.slug)).not.toContain(s.slug);
      expect(await runtime.inspect(s.slug)).toBeUndefined();
    } finally {
      await docker.getVolume(volume).remove().catch(() => {});
    }
  });

  it('sudo on: the pod user becomes root in the sandbox and installs a Debian package; services stay the pod user', async () => {
    expect(podSecurity(false)).toEqual({ CapDrop: ['ALL'], CapAdd: ['NET_BIND_SERVICE'], SecurityOpt: ['no-new-privileges'] });
    expect(podSecurity(true)).toEqual({ CapDrop: ['ALL'], CapAdd: POD_SUDO_CAP_ADD, SecurityOpt: [] });
    const s = await spec('sudo', { sudo: true });
    await runtime.create(s);
    await runtime.start(s.slug);
    const info = await docker.getContainer(`podgate-${s.slug}`).inspect();
    expect(info.HostConfig.CapAdd).toEqual(POD_SUDO_CAP_ADD);
    expect(info.HostConfig.SecurityOpt ?? []).toEqual([]);
    expect(info.Config.User).toBe('0:0');
    const sh = (script: string, timeoutMs = 60_000) => runtime.exec(s.slug, ['bash', '-c', script], { timeoutMs, outputLimit: 65536 });
    await waitFor(async () => (await getPod(s.hostPort, 'podgate-router', '/readyz').catch(() => ({ status: 0 }))).status === 200, {
      timeoutMs: 60_000, intervalMs: 200, what: 'the sudo pod to be ready',
    });
    // Exec, the router and the services run as dev with no capability; only the sudo daemon is root. Root in the pod
    // is bounded by the container's set (CHOWN DAC_OVERRIDE FOWNER KILL SETGID SETUID NET_BIND_SERVICE = 0x4eb).
    const who = await sh('id -un; echo "$HOME"; grep -E "CapEff|CapBnd" /proc/self/status | cut -f2; ps -eo user=,comm= | tr -s " " | sort -u | grep -v "^dev "');
    expect(who.stdout).toBe('dev\n/home/dev\n0000000000000000\n00000000000004eb\nroot s6-ipcserverd\nroot tini\n');
    const nginx = await sh('ps -o user= -C nginx | sort -u');
    expect(nginx.stdout).toBe('dev\n');
    const sudo = await sh('cd /workspace && sudo -n true && sudo id -un && sudo pwd && sudo -n grep CapEff /proc/self/status | cut -f2 && echo x | sudo cat && sudo sh -c "exit 7"; echo "exit $?"');
    expect(sudo.stdout).toBe('root\n/workspace\n00000000000004eb\nx\nexit 7\n');
    // Debian's archive, through the pod's network (the egress policy allows the internet and DNS).
    const apt = await sh('sudo apt-get -qq update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null; echo \'{"a":1}\' | jq -c .a', 240_000);
    expect(apt.stdout, apt.stderr).toBe('1\n');
    // docker stop still reaches every process (tini, root, signals dev's): a clean exit, not a kill after the grace.
    await runtime.stop(s.slug, 20);
    const stopped = await docker.getContainer(`podgate-${s.slug}`).inspect();
    expect(stopped.State.ExitCode).toBe(0);
    expect(await runtime.logsTail(s.slug, 5)).toContain('podgate: stopping');
    await runtime.remove(s.slug);
  }, 300_000);

  it('POD_CA_FILE\'s certificates are in the pod before it starts, and its Node trusts them', async () => {
    const ca = '-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n';
    const s = await spec('ca', { ca });
    await runtime.create(s);
    await runtime.start(s.slug);
    const r = await runtime.exec(s.slug, ['bash', '-c', 'echo "$NODE_EXTRA_CA_CERTS"; stat -c "%u %a" "$NODE_EXTRA_CA_CERTS"; cat "$NODE_EXTRA_CA_CERTS"'], { timeoutMs: 20_000, outputLimit: 4096 });
    expect(r.stdout).toBe(`/etc/podgate/extra-ca.pem\n0 644\n${ca}`);
    await runtime.remove(s.slug);
  });

  // The node template's image (docker/build-image.sh --with-templates), where it is built: `npm install` from the
  // registry inside a gVisor pod, through this host's CA (its way to the registry may present a private one).
  const nodeImage = process.env.PODGATE_NODE_IMAGE ?? 'podgate/pod:node';
  const hostCa = [process.env.NODE_EXTRA_CA_CERTS, process.env.SSL_CERT_FILE, '/etc/ssl/certs/ca-certificates.crt'].find((p) => p && (() => { try { return readFileSync(p, 'utf8').includes('BEGIN CERTIFICATE'); } catch { return false; } })());
  it.skipIf(!hostCa)(`npm install works in a pod of ${nodeImage} (skipped where that image is not built on this pod image)`, async (ctx) => {
    // Built on this pod image (its label says so): it has /workspace, owned by dev.
    const labels = await docker.getImage(nodeImage).inspect().then((i) => i.Config.Labels ?? {}, () => undefined);
    if (labels?.['podgate.sudo'] === undefined) ctx.skip();
    const s = await spec('npm', { image: nodeImage, ca: readFileSync(hostCa!, 'utf8') });
    await runtime.create(s);
    await runtime.start(s.slug);
    const sh = (script: string, timeoutMs = 60_000) => runtime.exec(s.slug, ['bash', '-c', script], { timeoutMs, outputLimit: 65536 });
    await waitFor(async () => (await sh('true')).exitCode === 0, { what: 'a shell in the pod', timeoutMs: 60_000, intervalMs: 250 });
    const npm = await sh('set -e; cd /workspace; npm init -y >/dev/null; npm install --no-audit --no-fund --loglevel=error express@4 >/dev/null; node -e "require(\'express\'); console.log(\'ok\')"; find node_modules -type f | wc -l', 240_000);
    expect(npm.stdout.split('\n')[0], npm.stderr).toBe('ok');
    expect(Number(npm.stdout.split('\n')[1])).toBeGreaterThan(300);
    await runtime.remove(s.slug);
  }, 300_000);

  it('limits storage only where the storage driver can', () => {
    expect(storageLimitSupport({ Driver: 'overlay2', DriverStatus: [['Backing Filesystem', 'extfs']] })).toMatchObject({ supported: false });
    expect(storageLimitSupport({ Driver: 'overlay2', DriverStatus: [['Backing Filesystem', 'extfs']] }).reason).toMatch(/overlay2 on extfs/);
    expect(storageLimitSupport({ Driver: 'overlay2', DriverStatus: [['Backing Filesystem', 'xfs']] }).supported).toBe(true);
    expect(storageLimitSupport({ Driver: 'btrfs' }).supported).toBe(true);
    expect(storageLimitSupport({ Driver: 'zfs' }).supported).toBe(true);
    expect(storageLimitSupport({ Driver: 'vfs' }).supported).toBe(false);
  });

  it('a failed create leaves no network and no volume behind', async () => {
    const s = await spec('bad', { image: 'podgate/does-not-exist:never' });
    await expect(runtime.create(s)).rejects.toThrow();
    expect((await runtime.networks()).map((n) => n.slug)).not.toContain(s.slug);
    expect((await runtime.volumes()).map((v) => v.slug)).not.toContain(s.slug);
    expect(await docker.getVolume(`podgate-${s.slug}-workspace`).inspect().then(() => true, () => false)).toBe(false);
    expect(await runtime.imageExists('podgate/does-not-exist:never')).toBe(false);
    expect(await runtime.imageExists(image)).toBe(true);
  });

  it('Docker out of address pools for another pod network is a 503 saying how to fix it', async () => {
    // Exhausting the daemon's pools for real would break every other test on this host: the real daemon, with
    // network creation answering as Docker 20.10 does then.
    const full = new DockerRuntime(withNetworkCreateError(docker, POOLS_EXHAUSTED_TEXT), { namespace: `rt-full-${process.pid}` });
    const s = await spec('full');
    const err = await full.create(s).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect((err as ServiceUnavailableError).status).toBe(503);
    expect((err as Error).message).toMatch(/pod networks are exhausted/);
    expect((err as Error).message).toMatch(/default-address-pools.*\/etc\/docker\/daemon\.json/);
    expect((err as Error).message).toContain('{"base":"10.200.0.0/16","size":28}');
    expect((err as Error).message).toContain(POOLS_EXHAUSTED_TEXT);
    // Newer daemons word it differently.
    const newer = new DockerRuntime(withNetworkCreateError(docker, 'all predefined address pools have been fully subnetted'));
    expect(await newer.create(s).catch((e: unknown) => e)).toBeInstanceOf(ServiceUnavailableError);
    expect(await docker.getContainer(`podgate-${s.slug}`).inspect().then(() => true, () => false)).toBe(false);
  });

  it('an unreachable daemon is a clear 503', async () => {
    const dead = new DockerRuntime(new Docker({ socketPath: '/nonexistent/docker.sock' }));
    const err = await dead.list().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect((err as Error).message).toMatch(/DOCKER_HOST/);
  });
});
