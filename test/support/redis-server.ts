// Starts a real redis-server (Debian's) on a free loopback port for one test file, and stops it afterwards.
// Optionally protected: a password for the default user (requirepass), ACL users, and TLS only (no plain port).
import { spawn, type ChildProcess } from 'node:child_process';
import { createConnection } from 'node:net';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { createRedis, waitReady } from '../../shared/redis.ts';
import { waitFor } from './wait.ts';

export interface RedisServerOptions {
  /** requirepass: the default user's password. */
  password?: string;
  /** ACL users, each as the words of a `user` directive: ['podgate', 'on', '>secret', '~podgate:*', '+@all']. */
  users?: string[][];
  /** Serve TLS only (tls-port; no plain port), with this certificate; clients need no certificate of their own. */
  tls?: { certFile: string; keyFile: string; caFile: string };
  /** Start as a replica of the server on this loopback port. */
  replicaOf?: number;
  /** masterauth: the password this server gives the master it replicates. */
  masterAuth?: string;
}

export interface RedisServer {
  port: number;
  /** redis:// or rediss:// (with `tls`) to 127.0.0.1, with the default user's password if one is set. */
  url: string;
  /** Kill the server (SIGKILL: a crash, not a clean shutdown). */
  kill(): Promise<void>;
  /** Start it again on the same port, empty (no persistence). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export function randomPort(): number {
  // Spread test servers over a range the orchestrator's pod ports (30000-39999) and ephemeral ports avoid.
  return 20000 + Math.floor(Math.random() * 9000);
}

export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function serverArgs(port: number, options: RedisServerOptions): string[] {
  const listen = options.tls
    ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', options.tls.certFile, '--tls-key-file', options.tls.keyFile,
        '--tls-ca-cert-file', options.tls.caFile, '--tls-auth-clients', 'no']
    : ['--port', String(port)];
  return [
    ...listen,
    '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning',
    ...(options.password !== undefined ? ['--requirepass', options.password] : []),
    ...(options.masterAuth !== undefined ? ['--masterauth', options.masterAuth] : []),
    ...(options.users ?? []).flatMap((words) => ['--user', ...words]),
    // Loaded from the socket (never written to disk: no dump.rdb in the working directory).
    ...(options.replicaOf !== undefined ? ['--replicaof', '127.0.0.1', String(options.replicaOf), '--repl-diskless-load', 'on-empty-db'] : []),
  ];
}

async function launch(port: number, options: RedisServerOptions): Promise<ChildProcess | undefined> {
  const child = spawn('redis-server', serverArgs(port, options), { stdio: ['ignore', 'ignore', 'pipe'] });
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

export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  let child: ChildProcess | undefined;
  let port = 0;
  for (let attempt = 0; attempt < 20 && !child; attempt++) {
    port = randomPort();
    if (await canConnect(port)) continue;
    child = await launch(port, options);
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
    url: `${options.tls ? 'rediss' : 'redis'}://${options.password !== undefined ? `:${encodeURIComponent(options.password)}@` : ''}127.0.0.1:${port}`,
    kill,
    async restart() {
      await kill();
      child = await launch(port, options);
      if (!child) throw new Error(`could not restart redis-server on port ${port}`);
    },
    stop: kill,
  };
}

export interface UsedRedis {
  /** The server (set once the file's tests run). */
  readonly server: RedisServer;
  /** A connected client of the server; disconnected after the file's tests. */
  client(): Promise<Redis>;
}

/**
 * A redis-server for the calling test file: started before its tests, stopped after them, with every client
 * handed out disconnected first. Call at the top level of the file.
 */
export function useRedis(): UsedRedis {
  let server: RedisServer | undefined;
  const clients: Redis[] = [];
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    clients.forEach((c) => c.disconnect());
    await server?.stop();
  });
  return {
    get server() {
      if (!server) throw new Error('useRedis(): the server starts in beforeAll');
      return server;
    },
    async client() {
      const redis = createRedis(this.server.url);
      clients.push(redis);
      await waitReady(redis);
      return redis;
    },
  };
}
