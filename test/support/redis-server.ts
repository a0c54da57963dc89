// Starts a real redis-server (Debian's) on a free loopback port for one test file, and stops it afterwards.
import { spawn, type ChildProcess } from 'node:child_process';
import { createConnection } from 'node:net';
import { waitFor } from './wait.ts';

export interface RedisServer {
  port: number;
  url: string;
  /** Kill the server (SIGKILL: a crash, not a clean shutdown). */
  kill(): Promise<void>;
  /** Start it again on the same port, empty (no persistence). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

function randomPort(): number {
  // Spread test servers over a range the orchestrator's pod ports (30000-39999) and ephemeral ports avoid.
  return 20000 + Math.floor(Math.random() * 9000);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function launch(port: number): Promise<ChildProcess | undefined> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  child.once('error', () => {
    exited = true;
  });
  const ok = await waitFor(async () => exited || (await canConnect(port)), { timeoutMs: 10_000, what: 'redis-server' });
  if (!ok || exited) {
    child.kill('SIGKILL');
    return undefined;
  }
  return child;
}

export async function startRedis(): Promise<RedisServer> {
  let child: ChildProcess | undefined;
  let port = 0;
  for (let attempt = 0; attempt < 20 && !child; attempt++) {
    port = randomPort();
    if (await canConnect(port)) continue;
    child = await launch(port);
  }
  if (!child) throw new Error('could not start redis-server (is it installed? scripts/setup.sh installs it)');
  const kill = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGKILL');
    });
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    async restart() {
      await kill();
      child = await launch(port);
      if (!child) throw new Error(`could not restart redis-server on port ${port}`);
    },
    stop: kill,
  };
}
