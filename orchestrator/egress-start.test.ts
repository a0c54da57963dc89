// The orchestrator's start and the egress policy, as a process: on and impossible stops the start with the
// setting named; unset and impossible starts with a warning. "Impossible" is real: a PATH without iptables.
import { spawn } from 'node:child_process';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../test/support/wait.ts';
import { LABELS } from './container-runtime.ts';
import { POD_RUNTIME, removePods, testPodImage, uniqueSlug } from '../test/support/orchestrator.ts';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

function orchestrator(env: Record<string, string>) {
  const child = spawn(process.execPath, [MAIN], {
    env: {
      // Only node's own directory: no iptables, ip6tables or iptables-restore to be found.
      PATH: dirname(process.execPath),
      POD_NAMESPACE: `egress-start-${process.pid}-${Date.now().toString(36)}`,
      ADMIN_TOKEN: 'egress-start-test-token-0123456789',
      ORCHESTRATOR_PORT: '0',
      RECONCILE_INTERVAL: '1h',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (b: Buffer) => (output += b.toString()));
  child.stderr.on('data', (b: Buffer) => (output += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, output: () => output };
}

describe('orchestrator start with the egress policy', () => {
  it('POD_EGRESS_POLICY=on that cannot be installed stops the start (exit 2), naming the setting', async () => {
    const run = orchestrator({ POD_EGRESS_POLICY: 'on' });
    expect(await run.exited).toBe(2);
    expect(run.output()).toMatch(/^orchestrator: POD_EGRESS_POLICY: the pod egress policy cannot be installed: iptables cannot run: .*ENOENT.*\(set POD_EGRESS_POLICY=off to run pods without it\)$/m);
    expect(run.output()).not.toMatch(/admin API listening/);
  });

  it('unset, where iptables cannot be used, starts and warns that pods are unprotected', async () => {
    const run = orchestrator({});
    try {
      await waitFor(() => run.output().includes('admin API listening'), { timeoutMs: 30_000, what: 'the orchestrator to listen' });
      expect(run.output()).toMatch(/the pod egress policy is off \(iptables cannot be used\).*POD_EGRESS_POLICY=off to silence this/);
      expect(run.output()).toMatch(/ENOENT/);
    } finally {
      run.child.kill('SIGTERM');
      await run.exited;
    }
  });

  it('on, names the pods whose bridges predate the policy (it does not match them)', async () => {
    const docker = new Docker();
    const namespace = `egress-old-${process.pid}-${Date.now().toString(36)}`;
    const slug = uniqueSlug('eg-old');
    const name = `podgate-${slug}`;
    const labels = { [LABELS.managed]: 'true', [LABELS.namespace]: namespace, [LABELS.slug]: slug };
    try {
      // A pod as an older orchestrator made it: Docker names its bridge br-<id>.
      await docker.createNetwork({ Name: name, Driver: 'bridge', Labels: labels });
      await docker.createContainer({ name, Image: await testPodImage(), Labels: labels, HostConfig: { Runtime: POD_RUNTIME, NetworkMode: name } });
      const run = orchestrator({ PATH: process.env.PATH ?? '', POD_EGRESS_POLICY: 'on', POD_NAMESPACE: namespace });
      try {
        await waitFor(() => run.output().includes('does not apply to these pods'), { timeoutMs: 30_000, what: 'the warning' });
        expect(run.output()).toContain(slug);
        expect(run.output()).toContain('pod egress policy installed');
      } finally {
        run.child.kill('SIGTERM');
        await run.exited;
      }
    } finally {
      await removePods([slug]);
    }
  }, 60_000);
});
