// The egress policy's I/O: installs and removes egress-rules.ts's rule set with the machine's iptables and
// ip6tables (the same binaries, and so the same backend, nft or legacy, that Docker uses). Both operations are
// idempotent: installing replaces the chains' contents atomically (iptables-restore --noflush, where naming a
// chain flushes it) and adds each jump only if it is missing; removing deletes what is there and is quiet about
// what is not.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { EGRESS_NAMES, egressRules, parseCidr, type Cidr, type EgressNames, type EgressPolicy, type FamilyRules, type IpFamily } from './egress-rules.ts';

const TOOLS: Record<IpFamily, { cli: string; restore: string }> = {
  4: { cli: 'iptables', restore: 'iptables-restore' },
  6: { cli: 'ip6tables', restore: 'ip6tables-restore' },
};
const COMMAND_TIMEOUT_MS = 20_000;

export class IptablesError extends Error {}

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], input?: string): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { timeout: COMMAND_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      if (err && typeof err.code !== 'number') {
        reject(new IptablesError(`${command} cannot run: ${err.message}`));
        return;
      }
      resolve({ code, stdout, stderr });
    });
    // A command that reads no input may exit before its stdin is closed: that EPIPE is not its outcome.
    child.stdin?.on('error', () => {});
    child.stdin?.end(input ?? '');
  });
}

async function must(command: string, args: string[], input?: string): Promise<string> {
  const r = await run(command, args, input);
  if (r.code !== 0) throw new IptablesError(`${command} ${args.join(' ')} failed (${r.code}): ${meaningful(r.stderr) || r.stdout.trim()}`);
  return r.stdout;
}

/** iptables-nft warns on every call when legacy tables exist; that line is not the error. */
function meaningful(stderr: string): string {
  return stderr
    .split('\n')
    .filter((l) => l.trim() && !l.includes('iptables-legacy tables present'))
    .join('; ');
}

/** Split a rule spec the way iptables -S printed it (no quoted arguments occur in ours). */
function words(rule: string): string[] {
  return rule.split(' ').filter(Boolean);
}

/** IPv6 matters only where the kernel has it: a pod's bridge then has a link-local address to the host. */
function ipv6Enabled(): boolean {
  return existsSync('/proc/net/if_inet6');
}

function families(): IpFamily[] {
  return ipv6Enabled() ? [4, 6] : [4];
}

async function chainExists(family: IpFamily, chain: string): Promise<boolean> {
  return (await run(TOOLS[family].cli, ['-w', '-S', chain])).code === 0;
}

/** `iptables -S <chain>`'s lines (`-N`/`-P` line first), or none when the chain does not exist. */
export async function listChain(family: IpFamily, chain: string): Promise<string[]> {
  const r = await run(TOOLS[family].cli, ['-w', '-S', chain]);
  return r.code === 0 ? r.stdout.split('\n').filter(Boolean) : [];
}

/** Whether this process can manage the rules: iptables answers and `-S` works (root, or CAP_NET_ADMIN). */
export async function iptablesUsable(): Promise<string | undefined> {
  try {
    const r = await run(TOOLS[4].cli, ['-w', '-S', 'INPUT']);
    return r.code === 0 ? undefined : meaningful(r.stderr) || `iptables exited with ${r.code}`;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Where the forward chain is hooked: Docker's DOCKER-USER if it exists for this family, else FORWARD. */
async function forwardHook(family: IpFamily): Promise<string> {
  return (await chainExists(family, 'DOCKER-USER')) ? 'DOCKER-USER' : 'FORWARD';
}

/** The rules `installEgressPolicy` installs on this machine, per family. */
export async function plannedRules(policy: EgressPolicy, names: EgressNames = EGRESS_NAMES): Promise<FamilyRules[]> {
  return Promise.all(families().map(async (f) => egressRules(policy, f, await forwardHook(f), names)));
}

/** Replace the chains' contents and make sure each jump exists exactly once, at the top of its hook when added. */
export async function installEgressPolicy(policy: EgressPolicy, names: EgressNames = EGRESS_NAMES): Promise<FamilyRules[]> {
  const planned = await plannedRules(policy, names);
  for (const set of planned) {
    const tools = TOOLS[set.family];
    const restore = ['*filter', ...set.chains.map((c) => `:${c.name} - [0:0]`), ...set.chains.flatMap((c) => c.rules.filter((r) => r.startsWith('-A '))), 'COMMIT', ''].join('\n');
    await must(tools.restore, ['-w', '--noflush'], restore);
    for (const jump of set.jumps) await ensureOneJump(set.family, jump.from, jump.rule);
  }
  return planned;
}

const JUMP_ATTEMPTS = 5;

/**
 * Exactly one `-A <from> <rule>`. Orchestrators may start at once: each change is one restore transaction that
 * deletes the copies it counted and inserts one at the top. A transaction fails as a whole when another changed
 * the chain meanwhile (a copy it meant to delete is gone), and then it counts again; after an insert into an
 * empty hook it counts again too, in case another inserted at the same time.
 */
async function ensureOneJump(family: IpFamily, from: string, rule: string): Promise<void> {
  const spec = `-A ${from} ${rule}`;
  let lastError = '';
  for (let attempt = 0; attempt < JUMP_ATTEMPTS; attempt++) {
    const present = (await listChain(family, from)).filter((l) => l === spec).length;
    if (present === 1) return;
    const changes = [...Array.from({ length: present }, () => `-D ${from} ${rule}`), `-I ${from} 1 ${rule}`];
    const r = await run(TOOLS[family].restore, ['-w', '--noflush'], ['*filter', ...changes, 'COMMIT', ''].join('\n'));
    if (r.code === 0 && present > 0) return;
    if (r.code !== 0) lastError = meaningful(r.stderr);
  }
  throw new IptablesError(`cannot make ${spec} the one jump into its chain: ${lastError || 'the chain kept changing'}`);
}

/** Delete the jumps (from every hook they may be in) and the chains. Nothing installed is fine. */
export async function removeEgressPolicy(names: EgressNames = EGRESS_NAMES): Promise<void> {
  for (const family of families()) {
    const tools = TOOLS[family];
    const chains = [names.forwardChain, names.inputChain];
    for (const hook of ['DOCKER-USER', 'FORWARD', 'INPUT']) {
      for (const line of await listChain(family, hook)) {
        const jump = chains.find((c) => line.endsWith(` -j ${c}`) && line.startsWith(`-A ${hook} `));
        if (jump) await must(tools.cli, ['-w', '-D', hook, ...words(line.slice(`-A ${hook} `.length))]);
      }
    }
    for (const chain of chains) {
      if (!(await chainExists(family, chain))) continue;
      await must(tools.cli, ['-w', '-F', chain]);
      await must(tools.cli, ['-w', '-X', chain]);
    }
  }
}

const LOOPBACK = /^(127\.|::1$)/;

/**
 * The resolvers Docker's embedded DNS forwards to from inside a pod's namespace: the host's nameservers that are
 * not loopback (Docker asks loopback ones from the host's namespace). With only loopback ones in /etc/resolv.conf
 * (systemd-resolved's stub), Docker reads /run/systemd/resolve/resolv.conf, and so does this.
 */
export function dockerResolvers(files: string[] = ['/etc/resolv.conf', '/run/systemd/resolve/resolv.conf']): Cidr[] {
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    const servers = [...text.matchAll(/^\s*nameserver\s+(\S+)/gm)].map((m) => m[1]!.replace(/%.*$/, ''));
    const usable = servers.filter((s) => !LOOPBACK.test(s)).map((s) => parseCidr(s)).filter((c): c is Cidr => typeof c !== 'string');
    if (usable.length > 0) return usable;
  }
  return [];
}
