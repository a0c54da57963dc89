// A real gateway on loopback for tests: real Redis (own server), the gateway's own Redis connection, and a
// writer store playing the orchestrator. Each harness owns its Redis server, so tests never share state.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadGatewayConfig } from '../../gateway/config.ts';
import { startGateway, type RunningGateway } from '../../gateway/main.ts';
import { listenHttps, type HttpsListener, type RequestHandlers } from '../../gateway/tls/https-server.ts';
import { createSelfSignedCertificate } from '../../gateway/tls/self-signed.ts';
import { silentLogger } from '../../shared/log.ts';
import { createRedis, waitReady } from '../../shared/redis.ts';
import { RedisPodActivity } from '../../shared/redis-pod-activity.ts';
import { RedisRouteStore } from '../../shared/redis-route-store.ts';
import type { Route } from '../../shared/route.ts';
import { startRedis, type RedisServer } from './redis-server.ts';
import { capturedLogger, loopbackGatewayEnv, type LogLine } from './logs.ts';
import { waitFor } from './wait.ts';

export type { LogLine };

export interface Harness {
  redis: RedisServer;
  /** The orchestrator's side of the route table. */
  writer: RedisRouteStore;
  gateway: RunningGateway;
  /** Base URL of the gateway's HTTP listener. */
  url: string;
  adminUrl: string;
  logs: LogLine[];
  /** Publish a route for `slug` pointing at `port` on 127.0.0.1 and wait until the gateway serves it. */
  route(slug: string, port: number, extra?: Partial<Route>): Promise<Route>;
  remove(slug: string): Promise<void>;
  close(): Promise<void>;
}

/** A gateway on a redis-server of its own, or on `shared` (another harness's: then closing leaves it running). */
export async function startHarness(env: Record<string, string> = {}, shared?: RedisServer): Promise<Harness> {
  const redis = shared ?? (await startRedis());
  const writerClient = createRedis(redis.url);
  const gatewayClient = createRedis(redis.url);
  await Promise.all([waitReady(writerClient), waitReady(gatewayClient)]);
  const writer = new RedisRouteStore(writerClient);
  const config = loadGatewayConfig({
    ...loopbackGatewayEnv(redis.url),
    // Proxying tests expect the plain 404/503 answers; test/access-* turn concealment back on.
    ACCESS_CONCEAL_PODS: 'false',
    ...env,
  });
  // LOG_LEVEL as the gateway process would use it (info unless a test asks for more).
  const { log, logs } = capturedLogger(config.LOG_LEVEL);
  const gateway = await startGateway(config, { store: new RedisRouteStore(gatewayClient), activity: new RedisPodActivity(gatewayClient), log });
  const harness: Harness = {
    redis,
    writer,
    gateway,
    url: `http://127.0.0.1:${gateway.httpPort}`,
    adminUrl: `http://127.0.0.1:${gateway.adminPort}`,
    logs,
    async route(slug, port, extra = {}) {
      const route: Route = {
        slug,
        host: '127.0.0.1',
        port,
        status: 'running',
        generation: await writer.nextGeneration(),
        defaultPort: 3000,
        updatedAt: new Date().toISOString(),
        // These tests are about proxying; access control (private by default) has its own tests (test/access-*).
        access: { default: 'public', ports: {} },
        ...extra,
      };
      if (!(await writer.put(route))) throw new Error(`route ${slug} was not written`);
      await waitFor(() => gateway.table.lookup(slug)?.generation === route.generation, { what: `route ${slug}` });
      return route;
    },
    async remove(slug) {
      await writer.delete(slug, await writer.nextGeneration());
      await waitFor(() => gateway.table.lookup(slug) === undefined, { what: `removal of ${slug}` });
    },
    async close() {
      await gateway.shutdown(1000);
      writerClient.disconnect();
      gatewayClient.disconnect();
      if (!shared) await redis.stop();
    },
  };
  return harness;
}

export interface Upstream {
  server: Server;
  port: number;
  /** Requests seen, newest last. */
  requests: { method: string; url: string; headers: IncomingMessage['headers'] }[];
  /** Connections accepted so far. */
  connections: number;
  close(): Promise<void>;
}

/** A real HTTP server on 127.0.0.1:0 playing a pod's in-pod router. Default handler echoes the request. */
export async function startUpstream(
  handler?: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<Upstream> {
  const upstream: Upstream = {
    server: undefined as unknown as Server,
    port: 0,
    requests: [],
    connections: 0,
    close: () =>
      new Promise<void>((resolve) => {
        upstream.server.closeAllConnections();
        upstream.server.close(() => resolve());
      }),
  };
  const server = createServer((req, res) => {
    upstream.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    if (handler) return handler(req, res);
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers }));
    });
  });
  server.on('connection', () => upstream.connections++);
  upstream.server = server;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  upstream.port = (server.address() as AddressInfo).port;
  return upstream;
}

/** A port with nothing listening on it (listen on 0, keep the number, close). */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * The gateway's HTTPS listener with HTTP/2 (and HTTP/1.1) on a free loopback port, with a fresh self-signed
 * certificate for `name`: what the tests of HTTP/2 clients talk to.
 */
export async function listenHttp2(handlers: RequestHandlers, name: string): Promise<HttpsListener> {
  const pair = await createSelfSignedCertificate(name);
  return listenHttps({ key: pair.keyPem, cert: pair.certPem }, handlers, {
    port: 0,
    host: '127.0.0.1',
    http2: true,
    headersTimeoutMs: 10_000,
    keepAliveTimeoutMs: 10_000,
    log: silentLogger(),
  });
}
