// A real Redis Sentinel deployment for one test file (Debian's redis-server and redis-sentinel): a master, one
// replica and three sentinels, all on loopback ports picked here (Redis cannot listen on port 0: a port is tried,
// and another one if the server could not take it; every server keeps its port for its life). Failover is quick:
// a master silent for 1 s is down, and two sentinels agree.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRedis, waitReady } from '../../shared/redis.ts';
import { canConnect, randomPort, startRedis, type RedisServer } from './redis-server.ts';
import { waitFor } from './wait.ts';

export const SENTINEL_MASTER_NAME = 'podgate';
const DOWN_AFTER_MS = 1000;
const FAILOVER_TIMEOUT_MS = 5000;

export interface SentinelOptions {
  /** requirepass of the master and the replica (and masterauth, so either can follow the other). */
  password?: string;
  /** requirepass of the sentinels (they use it among themselves too). */
  sentinelPassword?: string;
}

export interface SentinelDeployment {
  master: RedisServer;
  replica: RedisServer;
  sentinelPorts: number[];
  /** REDIS_SENTINELS for these sentinels. */
  sentinelsSetting: string;
  /** The port Sentinel names as master now (asked of one sentinel). */
  masterPort(): Promise<number>;
  /** SIGKILL the master and wait until every sentinel names the replica as master. */
  failover(): Promise<void>;
  stop(): Promise<void>;
}

interface Sentinel {
  port: number;
  child: ChildProcess;
}

async function launchSentinel(dir: string, masterPort: number, index: number, options: SentinelOptions): Promise<Sentinel> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = randomPort();
    if (await canConnect(port)) continue;
    // Sentinel rewrites its configuration file (what it learns): one file each, in the test's own directory.
    const file = join(dir, `sentinel-${index}-${port}.conf`);
    writeFileSync(file, [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      'logfile ""',
      'loglevel warning',
      `sentinel monitor ${SENTINEL_MASTER_NAME} 127.0.0.1 ${masterPort} 2`,
      `sentinel down-after-milliseconds ${SENTINEL_MASTER_NAME} ${DOWN_AFTER_MS}`,
      `sentinel failover-timeout ${SENTINEL_MASTER_NAME} ${FAILOVER_TIMEOUT_MS}`,
      `sentinel parallel-syncs ${SENTINEL_MASTER_NAME} 1`,
      ...(options.password !== undefined ? [`sentinel auth-pass ${SENTINEL_MASTER_NAME} ${options.password}`] : []),
      ...(options.sentinelPassword !== undefined ? [`requirepass ${options.sentinelPassword}`] : []),
      '',
    ].join('\n'));
    const child = spawn('redis-sentinel', [file], { stdio: ['ignore', 'ignore', 'ignore'] });
    let exited = false;
    child.once('exit', () => (exited = true));
    child.once('error', () => (exited = true));
    await waitFor(async () => exited || (await canConnect(port)), { timeoutMs: 10_000, what: 'redis-sentinel' });
    if (!exited) return { port, child };
  }
  throw new Error('could not start redis-sentinel (is it installed? scripts/setup.sh installs it)');
}

async function sentinelCommand<T>(port: number, password: string | undefined, ...args: string[]): Promise<T> {
  const c = createRedis(`redis://${password === undefined ? '' : `:${encodeURIComponent(password)}@`}127.0.0.1:${port}`);
  try {
    await waitReady(c);
    return (await c.call('SENTINEL', ...args)) as T;
  } finally {
    c.disconnect();
  }
}

/** SENTINEL MASTER's flat [key, value, ...] answer as a record. */
function record(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}

export async function startSentinels(options: SentinelOptions = {}): Promise<SentinelDeployment> {
  const dir = mkdtempSync(join(tmpdir(), 'podgate-sentinel-'));
  const auth = options.password !== undefined ? { password: options.password, masterAuth: options.password } : {};
  const master = await startRedis(auth);
  const replica = await startRedis({ ...auth, replicaOf: master.port });
  const ask = <T>(port: number, ...args: string[]) => sentinelCommand<T>(port, options.sentinelPassword, ...args);
  const sentinels: Sentinel[] = [];
  const stop = async () => {
    await Promise.all(sentinels.map((s) => new Promise<void>((resolve) => {
      if (s.child.exitCode !== null || s.child.signalCode !== null) return resolve();
      s.child.once('exit', () => resolve());
      s.child.kill('SIGKILL');
    })));
    await Promise.all([master.stop(), replica.stop()]);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < 3; i++) sentinels.push(await launchSentinel(dir, master.port, i, options));
    // Ready for a failover once every sentinel knows the replica and the two other sentinels (hello messages).
    await waitFor(async () => {
      const states = await Promise.all(sentinels.map(async (s) => record(await ask<string[]>(s.port, 'MASTER', SENTINEL_MASTER_NAME))));
      return states.every((m) => m['num-slaves'] === '1' && m['num-other-sentinels'] === '2' && m.flags === 'master');
    }, { timeoutMs: 30_000, intervalMs: 200, what: 'sentinels to know the replica and each other' });
    const c = createRedis(replica.url);
    try {
      await waitReady(c);
      await waitFor(async () => /master_link_status:up/.test(await c.info('replication')), { timeoutMs: 15_000, what: 'the replica in sync' });
    } finally {
      c.disconnect();
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const masterPort = async () => {
    const [, port] = await ask<[string, string]>(sentinels[0]!.port, 'get-master-addr-by-name', SENTINEL_MASTER_NAME);
    return Number(port);
  };
  return {
    master,
    replica,
    sentinelPorts: sentinels.map((s) => s.port),
    sentinelsSetting: sentinels.map((s) => `127.0.0.1:${s.port}`).join(','),
    masterPort,
    async failover() {
      await master.kill();
      await waitFor(async () => {
        const named = await Promise.all(sentinels.map((s) => ask<[string, string]>(s.port, 'get-master-addr-by-name', SENTINEL_MASTER_NAME)));
        return named.every(([, port]) => Number(port) === replica.port);
      }, { timeoutMs: 30_000, intervalMs: 100, what: 'Sentinel to promote the replica' });
    },
    stop,
  };
}
