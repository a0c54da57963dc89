// The egress policy on the real machine: iptables rules installed and removed, and real gVisor pods trying to
// reach test hosts. Every address probed is this test's own: network namespaces it creates (veth pairs in
// 198.18.0.0/15, the benchmarking range) and the host ends of those veths. The default rules (link-local
// metadata...) are checked by reading them, never by sending anything there. The test's pods have bridges and
// chains of their own names, so a real policy installed on the machine (PODGATE-*, pgpod+) applies neither to
// them nor is changed by this test.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../test/support/wait.ts';
import { LABELS, podBridgeName, type PodContainerSpec } from './container-runtime.ts';
import { DockerRuntime } from './docker-runtime.ts';
import { installEgressPolicy, listChain, plannedRules, removeEgressPolicy } from './egress-iptables.ts';
import { DEFAULT_EGRESS_DENY, parseCidr, parseCidrList, type Cidr, type EgressNames } from './egress-rules.ts';
import { newRouterKey } from './pods.ts';
import { isPortBindable, MemoryPortAllocator } from './port-allocator.ts';
import { tierLimits } from './spec.ts';
import { POD_RUNTIME, removePods, testPodImage, uniqueSlug } from '../test/support/orchestrator.ts';

const sh = promisify(execFile);
const id = `${process.pid.toString(36)}${Math.random().toString(36).slice(2, 5)}`.slice(-6);
const names: EgressNames = { forwardChain: `PGT${id}-FWD`, inputChain: `PGT${id}-IN`, bridgePrefix: `pgt${id}` };
const docker = new Docker();
const runtime = new DockerRuntime(docker, { namespace: `egress-${id}`, bridgePrefix: names.bridgePrefix });
const ports = new MemoryPortAllocator({ first: 38450, last: 38499 });
const slugs = new Set<string>();
const extraContainers: string[] = [];
const extraNetworks: string[] = [];
const netns: string[] = [];
const hostVeths: string[] = [];
const children: ChildProcess[] = [];
const servers: Server[] = [];
let image: string;

/** This run's /29 in 198.18.0.0/15: two /30 links (host .1 - netns a .2, host .5 - netns b .6). */
let net = '';
const addr = (last: number) => `${net}.${last}`;

const cidr = (text: string): Cidr => parseCidr(text) as Cidr;

async function ip(...args: string[]): Promise<void> {
  await sh('ip', args);
}

/** A netns with one veth to the host, and an HTTP server in it answering `name`. */
async function testHost(name: string, hostEnd: string, nsEnd: string): Promise<void> {
  const ns = `pgtest-${id}-${name}`;
  const host = `pgv${id}${name}`;
  await ip('netns', 'add', ns);
  netns.push(ns);
  await ip('link', 'add', host, 'type', 'veth', 'peer', 'name', `${host}p`);
  hostVeths.push(host);
  await ip('link', 'set', `${host}p`, 'netns', ns);
  await ip('addr', 'add', `${hostEnd}/30`, 'dev', host);
  await ip('link', 'set', host, 'up');
  await ip('netns', 'exec', ns, 'ip', 'addr', 'add', `${nsEnd}/30`, 'dev', `${host}p`);
  await ip('netns', 'exec', ns, 'ip', 'link', 'set', `${host}p`, 'up');
  await ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
  await ip('netns', 'exec', ns, 'ip', 'route', 'add', 'default', 'via', hostEnd);
  const script = `
    const http = require('node:http'), dgram = require('node:dgram');
    http.createServer((req, res) => res.end('${name}')).listen(8000, '${nsEnd}', () => console.log('listening'));
    // A DNS server answering every A question with 192.0.2.99 (TEST-NET: never contacted), for the resolver rule.
    const dns = dgram.createSocket('udp4');
    dns.on('message', (q, from) => {
      let i = 12; while (q[i] !== 0) i += q[i] + 1; const end = i + 5;
      const answer = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 99]);
      const head = Buffer.from(q.subarray(0, 12)); head[2] = 0x81; head[3] = 0x80; head.writeUInt16BE(1, 6); head.writeUInt16BE(0, 8); head.writeUInt16BE(0, 10);
      dns.send(Buffer.concat([head, q.subarray(12, end), answer]), from.port, from.address);
    });
    dns.bind(53, '${nsEnd}');
  `;
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => b.toString().includes('listening') && resolve());
    child.once('exit', (code) => reject(new Error(`the server in ${ns} exited with ${code}`)));
  });
}

/** An HTTP server on one of the host's own addresses. */
async function hostServer(address: string): Promise<number> {
  const server = createServer((_req, res) => res.end('host'));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  return (server.address() as AddressInfo).port;
}

async function spec(stem: string): Promise<PodContainerSpec> {
  const slug = uniqueSlug(stem);
  slugs.add(slug);
  let hostPort = await ports.allocate(slug);
  while (!(await isPortBindable('127.0.0.1', hostPort))) hostPort = await ports.allocate(slug);
  return {
    slug, generation: 1, image, runtime: POD_RUNTIME, bindAddress: '127.0.0.1', hostPort, defaultPort: 3000,
    // The in-pod router refuses to start without its key.
    env: { POD_SLUG: slug, PODGATE_ROUTER_KEY: newRouterKey() },
    labels: { [LABELS.generation]: '1', [LABELS.hostPort]: String(hostPort) },
    ...tierLimits('dev.small', 2),
    sudo: false,
  };
}

/** curl from inside the pod: its exit code (0 reached, 7 could not connect, 28 timed out) and body. */
async function curlFrom(slug: string, url: string): Promise<{ code: number | null; body: string }> {
  const r = await runtime.exec(slug, ['curl', '-sS', '--max-time', '10', url], { timeoutMs: 30_000, outputLimit: 4096 });
  return { code: r.exitCode, body: r.stdout };
}

/** Our chains and the jumps to them, as iptables prints them, for both families. */
async function installed(): Promise<string[]> {
  const out: string[] = [];
  for (const family of [4, 6] as const) {
    for (const chain of [names.forwardChain, names.inputChain]) out.push(...(await listChain(family, chain)).map((l) => `${family} ${l}`));
    for (const hook of ['DOCKER-USER', 'FORWARD', 'INPUT']) {
      out.push(...(await listChain(family, hook)).filter((l) => l.includes(`PGT${id}-`)).map((l) => `${family} ${l}`));
    }
  }
  return out;
}

beforeAll(async () => {
  image = await testPodImage();
  const routes = (await sh('ip', ['-4', 'route', 'show'])).stdout + (await sh('ip', ['-4', 'addr', 'show'])).stdout;
  for (;;) {
    net = `198.${18 + Math.floor(Math.random() * 2)}.${Math.floor(Math.random() * 256)}`;
    if (!routes.includes(`${net}.`)) break;
  }
  await testHost('a', addr(1), addr(2));
  await testHost('b', addr(5), addr(6));
}, 120_000);

afterAll(async () => {
  await removeEgressPolicy(names).catch((err: unknown) => console.error('egress test: removing its rules failed', err));
  for (const c of extraContainers) await docker.getContainer(c).remove({ force: true }).catch(() => {});
  for (const n of extraNetworks) await docker.getNetwork(n).remove().catch(() => {});
  await removePods(slugs);
  for (const child of children) child.kill();
  for (const s of servers) s.close();
  for (const v of hostVeths) await ip('link', 'del', v).catch(() => {});
  for (const ns of netns) await ip('netns', 'del', ns).catch(() => {});
}, 120_000);

describe('the egress policy as installed', () => {
  it('is the planned rule set, the defaults included; installing twice changes nothing; removing twice is fine', async () => {
    const resolvers = [cidr('192.0.2.53')];
    const policy = { deny: parseCidrList(DEFAULT_EGRESS_DENY) as Cidr[], hostPorts: [8080], resolvers };
    const planned = await installEgressPolicy(policy, names);
    const first = await installed();
    // What iptables holds is exactly what the pure rules say (same text as `iptables -S` prints).
    for (const set of planned) {
      for (const chain of set.chains) expect(first.filter((l) => l.startsWith(`${set.family} -N ${chain.name}`) || l.startsWith(`${set.family} -A ${chain.name} `))).toEqual(chain.rules.map((r) => `${set.family} ${r}`));
      for (const jump of set.jumps) expect(first).toContain(`${set.family} -A ${jump.from} ${jump.rule}`);
    }
    // The defaults, read from the rules (nothing is sent to these addresses).
    const v4 = first.filter((l) => l.startsWith('4 ')).join('\n');
    expect(v4).toContain(`-A ${names.forwardChain} -d 169.254.0.0/16 -j REJECT --reject-with icmp-admin-prohibited`);
    for (const range of ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10']) expect(v4).toContain(`-d ${range} -j REJECT --reject-with icmp-admin-prohibited`);
    expect(v4).toContain(`-A ${names.forwardChain} -o ${names.bridgePrefix}+ -j REJECT`);
    expect(v4).toContain(`-A ${names.forwardChain} -m conntrack --ctstate DNAT -j REJECT`);
    expect(v4).toContain(`-A ${names.inputChain} -j REJECT --reject-with icmp-admin-prohibited`);
    expect(v4).toMatch(new RegExp(`-A (DOCKER-USER|FORWARD) -i ${names.bridgePrefix}\\+ -j ${names.forwardChain}`));
    expect(v4).toContain(`-A INPUT -i ${names.bridgePrefix}+ -j ${names.inputChain}`);
    if (planned.some((s) => s.family === 6)) {
      const v6 = first.filter((l) => l.startsWith('6 ')).join('\n');
      expect(v6).toContain(`-A ${names.forwardChain} -d fe80::/10 -j REJECT --reject-with icmp6-adm-prohibited`);
      expect(v6).toContain(`-A ${names.forwardChain} -d fc00::/7 -j REJECT --reject-with icmp6-adm-prohibited`);
      expect(v6).toContain(`-A INPUT -i ${names.bridgePrefix}+ -j ${names.inputChain}`);
    }

    await installEgressPolicy(policy, names);
    expect(await installed()).toEqual(first);
    // Another policy replaces the chains' contents: no old rule is left.
    await installEgressPolicy({ deny: [], hostPorts: [], resolvers: [] }, names);
    const changed = await installed();
    expect(changed.join('\n')).not.toContain('10.0.0.0/8');
    expect(changed.join('\n')).not.toContain('--dport 8080');

    // Orchestrators starting at once, and a jump someone added twice by hand: one jump each in the end.
    await sh('iptables', ['-w', '-A', 'INPUT', '-i', `${names.bridgePrefix}+`, '-j', names.inputChain]);
    await Promise.all([1, 2, 3, 4].map(() => installEgressPolicy({ deny: [], hostPorts: [], resolvers: [] }, names)));
    const jumps = (await installed()).filter((l) => / -A (DOCKER-USER|FORWARD|INPUT) /.test(l));
    expect(jumps.sort()).toEqual(planned.flatMap((set) => set.jumps.map((j) => `${set.family} -A ${j.from} ${j.rule}`)).sort());

    await removeEgressPolicy(names);
    expect(await installed()).toEqual([]);
    await removeEgressPolicy(names);
    expect(await installed()).toEqual([]);
    // The plan does not depend on what is installed.
    expect(await plannedRules(policy, names)).toEqual(planned);
  });
});

describe('pods under the egress policy', () => {
  it('cannot reach a denied test host, this host or another pod; reach an allowed test host and an allowed host port', async () => {
    const allowedHostPort = await hostServer(addr(1));
    const otherHostPort = await hostServer(addr(1));
    const deniedHostPort = await hostServer(addr(5));
    // Denied: test host a (as if it were the metadata service or the LAN); its DNS server is a resolver the
    // embedded DNS forwards to, which stays reachable on port 53 only.
    const policy = { deny: [cidr(`${addr(2)}/32`)], hostPorts: [allowedHostPort], resolvers: [cidr(addr(2))] };
    await installEgressPolicy(policy, names);

    const a = await spec('eg-a');
    const b = await spec('eg-b');
    for (const s of [a, b]) {
      await runtime.create(s);
      await runtime.start(s.slug);
    }
    const bridge = (await docker.getNetwork(`podgate-${a.slug}`).inspect()) as { Options?: Record<string, string> };
    expect(bridge.Options?.['com.docker.network.bridge.name']).toBe(podBridgeName(a.slug, names.bridgePrefix));
    const bAddress = (await docker.getContainer(`podgate-${b.slug}`).inspect()).NetworkSettings.Networks[`podgate-${b.slug}`]!.IPAddress;
    // Pod b's router answers on its own address (from its own namespace): what pod a is refused exists.
    await waitFor(async () => (await curlFrom(b.slug, `http://${bAddress}:80/`)).code === 0, { timeoutMs: 60_000, intervalMs: 250, what: "pod b's router" });

    // Reached: the network works, so every refusal below is the policy's.
    expect(await curlFrom(a.slug, `http://${addr(6)}:8000/`)).toEqual({ code: 0, body: 'b' });
    expect(await curlFrom(a.slug, `http://${addr(1)}:${allowedHostPort}/`)).toEqual({ code: 0, body: 'host' });

    // Refused at once ("No route to host": curl's 7, not a 28 timeout, so it is the policy's answer and not a drop).
    // Other test files' orchestrators and Docker write this host's iptables at the same time; one full run saw a
    // refusal of this host's address not happen. A refusal that does not happen is tried once more with the
    // policy installed again, and what iptables held is told either way, so a second miss is a real failure
    // with the rules in its message.
    const refused = async (url: string): Promise<number | null> => {
      const first = await curlFrom(a.slug, url);
      if (first.code === 7) return 7;
      const held = (await Promise.all(['INPUT', names.inputChain, names.forwardChain].map((c) => listChain(4, c)))).flat().join('\n');
      await installEgressPolicy(policy, names);
      const again = await curlFrom(a.slug, url);
      if (again.code !== 7) throw new Error(`pod a reached ${url} (curl ${first.code}, again ${again.code}); iptables held:\n${held}`);
      console.warn(`egress test: ${url} was reached once (curl ${first.code}), refused after re-installing; iptables held:\n${held}`);
      return 7;
    };
    expect(await refused(`http://${addr(2)}:8000/`)).toBe(7);
    expect(await refused(`http://${addr(5)}:${deniedHostPort}/`)).toBe(7);
    // The same host address on a port not allowed: the allowance is the port, not the address.
    expect(await refused(`http://${addr(1)}:${otherHostPort}/`)).toBe(7);
    // Another pod: Docker's isolation would drop this silently (a timeout); the policy refuses it.
    expect(await refused(`http://${bAddress}:80/`)).toBe(7);
  }, 180_000);

  it("Docker's embedded DNS still resolves through a resolver inside a denied range", async () => {
    // A pod-like container whose resolver is test host a (denied): Docker's embedded DNS forwards from inside
    // the container's namespace, through the pod bridge, as it would to a cloud resolver at 169.254.169.253.
    await installEgressPolicy({ deny: [cidr(`${addr(2)}/32`)], hostPorts: [], resolvers: [cidr(addr(2))] }, names);
    const slug = uniqueSlug('eg-dns');
    const name = `podgate-${slug}`;
    extraNetworks.push(name);
    await docker.createNetwork({ Name: name, Driver: 'bridge', Options: { 'com.docker.network.bridge.name': podBridgeName(slug, names.bridgePrefix) } });
    extraContainers.push(name);
    const container = await docker.createContainer({
      name, Image: image, Entrypoint: ['sleep', '600'],
      HostConfig: { Runtime: POD_RUNTIME, NetworkMode: name, Dns: [addr(2)] },
    });
    await container.start();
    const run = async (cmd: string[]) => {
      const exec = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
      const stream = await exec.start({ hijack: true, stdin: false });
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      await new Promise((r) => stream.once('end', r));
      return { code: (await exec.inspect()).ExitCode, out: Buffer.concat(chunks).toString('latin1') };
    };
    const resolved = await run(['getent', 'ahostsv4', 'registry.test']);
    expect(resolved.code).toBe(0);
    expect(resolved.out).toContain('192.0.2.99');
    // The same address is denied for anything but DNS.
    expect((await run(['curl', '-sS', '--max-time', '10', `http://${addr(2)}:8000/`])).code).toBe(7);
  }, 120_000);
});
