// scripts/runsc.sh for real: it fetches the pinned gVisor build from Debian's archive into an install root of the
// test's own, verifies it, and keeps what is already good (the machine's own runsc and apt state are not touched).
import { execFile } from 'node:child_process';
import { appendFile, chmod, copyFile, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('./runsc.sh', import.meta.url));
/** apt-get update of one suite plus a 7 MB download from Debian's archive. */
const FETCH_TIMEOUT_MS = 120_000;
const PINNED = '20240729.0';
let root: string;

async function runsc(...candidates: string[]): Promise<{ path: string; stderr: string }> {
  const r = await run('bash', [SCRIPT, ...candidates], { env: { ...process.env, PODGATE_RUNSC_ROOT: root }, timeout: FETCH_TIMEOUT_MS });
  return { path: r.stdout.trim(), stderr: r.stderr };
}

async function version(path: string): Promise<string> {
  return (await run(path, ['--version'])).stdout.split('\n')[0]!;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'podgate-runsc-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe.skipIf(process.getuid?.() !== 0)('scripts/runsc.sh', () => {
  const target = () => join(root, PINNED, 'runsc');

  it('installs the pinned build when no candidate is new enough, then a second run changes and prints nothing', async () => {
    const first = await runsc('/nonexistent/runsc');
    expect(first.path).toBe(target());
    expect(first.stderr).toMatch(/installing gVisor runsc 0\.0~20240729\.0-4\+b7 from Debian trixie/);
    expect(await version(target())).toBe(`runsc version 0.0~${PINNED}`);
    const before = await stat(target());

    const second = await runsc('/nonexistent/runsc');
    expect(second).toEqual({ path: target(), stderr: '' });
    expect((await stat(target())).mtimeMs).toBe(before.mtimeMs);
  }, FETCH_TIMEOUT_MS * 2);

  it('keeps a candidate that is new enough (the machine\'s own gVisor), first one first', async () => {
    const own = join(root, 'own', 'runsc');
    await mkdir(join(root, 'own'));
    await copyFile(target(), own);
    await chmod(own, 0o755);
    expect(await runsc('', '/nonexistent/runsc', own, target())).toEqual({ path: own, stderr: '' });
  });

  it('does not keep Debian 12\'s runsc', async () => {
    const old = await version('/usr/bin/runsc').catch(() => '');
    if (!/20221219/.test(old)) return; // a machine without Debian 12's runsc has nothing to show here
    expect((await runsc('/usr/bin/runsc')).path).toBe(target());
  });

  it('replaces an installed binary whose SHA-256 is not the pinned one', async () => {
    await appendFile(target(), 'tampered');
    const again = await runsc();
    expect(again.stderr).toMatch(/installing gVisor runsc/);
    const bytes = await readFile(target());
    expect(bytes.subarray(-8).toString()).not.toBe('tampered');
    expect(await version(target())).toBe(`runsc version 0.0~${PINNED}`);
  }, FETCH_TIMEOUT_MS);
});
