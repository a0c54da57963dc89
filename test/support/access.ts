// Shared pieces of the access-control tests (test/access-*.test.ts): a real gateway with its own Redis, whose
// route table and access store the test writes as the orchestrator would (optionally with an HTTPS listener), and
// HTTP(S) requests with an explicit Host (no DNS involved).
import { request as httpRequest } from 'node:http';
import { connect as http2Connect } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { createConnection } from 'node:net';
import { loadGatewayConfig } from '../../gateway/config.ts';
import { startGateway, type RunningGateway } from '../../gateway/main.ts';
import { loadTlsConfig } from '../../gateway/tls/config.ts';
import type { AccessLink } from '../../shared/access-store.ts';
import { AccessTokens, newLinkId } from '../../shared/access-token.ts';
import { hostWithoutPort } from '../../shared/hostname.ts';
import { MemoryCertStore } from '../../shared/memory-cert-store.ts';
import { createRedis, waitReady } from '../../shared/redis.ts';
import { RedisAccessStore } from '../../shared/redis-access-store.ts';
import { RedisPodActivity } from '../../shared/redis-pod-activity.ts';
import { RedisRouteStore } from '../../shared/redis-route-store.ts';
import type { AccessPolicy, Route } from '../../shared/route.ts';
import { startRedis, type RedisServer } from './redis-server.ts';
import { capturedLogger, loopbackGatewayEnv } from './logs.ts';
import { waitFor } from './wait.ts';

export const HOUR_S = 3600;

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface RequestOptions {
  path?: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}

/**
 * The TLS options of a test client: SNI for `host`, and no verification, because test gateways serve their
 * self-signed default certificate (what signed it is not what these tests are about).
 */
function tlsClientOptions(host: string) {
  return { servername: hostWithoutPort(host), rejectUnauthorized: false };
}

/** One request on a fresh connection with an explicit Host header (HTTPS, over HTTP/1.1, for an https: base URL). */
export function send(baseUrl: string, host: string, options: RequestOptions = {}): Promise<Answer> {
  const tls = baseUrl.startsWith('https:');
  return new Promise((resolve, reject) => {
    const req = (tls ? httpsRequest : httpRequest)(
      `${baseUrl}${options.path ?? '/'}`,
      { method: options.method ?? 'GET', headers: { host, ...options.headers }, agent: false, ...(tls ? tlsClientOptions(host) : {}) },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** One GET over HTTP/2 (a fresh session, ALPN h2) with `:authority` set to `host`. */
export function sendHttp2(httpsUrl: string, host: string, path: string): Promise<{ status: number; location?: string; setCookie: string }> {
  return new Promise((resolve, reject) => {
    const session = http2Connect(httpsUrl, tlsClientOptions(host));
    session.on('error', reject);
    const stream = session.request({ ':path': path, ':authority': host, accept: 'text/html' });
    stream.on('response', (headers) => {
      stream.resume();
      stream.on('end', () => {
        session.close();
        const location = headers.location;
        resolve({ status: Number(headers[':status']), ...(location ? { location } : {}), setCookie: String(headers['set-cookie'] ?? '') });
      });
    });
    stream.on('error', reject);
    stream.end();
  });
}

/**
 * Bytes written as they are on a fresh connection (request targets and headers no HTTP client would send), and
 * everything the gateway answers until it closes the connection. Requests should say `Connection: close`.
 */
export function rawExchange(port: number, request: string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no end of answer within ${timeoutMs} ms to ${JSON.stringify(request.slice(0, 80))}; got ${JSON.stringify(answer)}`));
    }, timeoutMs);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(answer);
    });
    socket.write(request, 'latin1');
  });
}

/** The status and lowercased headers of a raw HTTP/1.1 answer. */
export function parseRawHead(answer: string): { status: number; headers: Map<string, string>; body: string } {
  const end = answer.indexOf('\r\n\r\n');
  const [statusLine, ...lines] = (end < 0 ? answer : answer.slice(0, end)).split('\r\n');
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status: Number(statusLine!.split(' ')[1]), headers, body: end < 0 ? '' : answer.slice(end + 4) };
}

export interface AccessWorld {
  redis: RedisServer;
  routes: RedisRouteStore;
  /** The orchestrator's side of the access store (links, revocations). */
  access: RedisAccessStore;
  /** Signs like the orchestrator does, with the secret the gateways use. */
  tokens: AccessTokens;
  close(): Promise<void>;
  /** Publish a route (private unless `access` says otherwise) and wait until `gateways` serve this generation. */
  route(slug: string, port: number, extra?: Partial<Route>, gateways?: RunningGateway[]): Promise<Route>;
  /** Mint a token as the admin API would, and record its link. */
  link(pod: string, options?: { port?: number; expiresInS?: number; iat?: number }): Promise<{ token: string; id: string }>;
}

export async function startWorld(secret?: string): Promise<AccessWorld> {
  const redis = await startRedis();
  const routeClient = createRedis(redis.url);
  const accessClient = createRedis(redis.url);
  await Promise.all([waitReady(routeClient), waitReady(accessClient)]);
  const routes = new RedisRouteStore(routeClient);
  const access = new RedisAccessStore(accessClient);
  const tokens = new AccessTokens([secret ?? (await access.sharedSecret('w'.repeat(43)))]);
  return {
    redis,
    routes,
    access,
    tokens,
    async close() {
      await access.close();
      routeClient.disconnect();
      accessClient.disconnect();
      await redis.stop();
    },
    async route(slug, port, extra = {}, gateways = []) {
      const route: Route = {
        slug,
        host: '127.0.0.1',
        port,
        status: 'running',
        generation: await routes.nextGeneration(),
        defaultPort: 3000,
        updatedAt: new Date().toISOString(),
        ...extra,
      };
      if (!(await routes.put(route))) throw new Error(`route ${slug} was not written`);
      for (const g of gateways) {
        await waitFor(() => g.table.lookup(slug)?.generation === route.generation, { what: `route ${slug}` });
      }
      return route;
    },
    async link(pod, options = {}) {
      const now = Date.now();
      const id = newLinkId();
      const exp = Math.floor(now / 1000) + (options.expiresInS ?? HOUR_S);
      const token = tokens.mint({ pod, port: options.port, exp, id, iat: options.iat ?? now });
      const link: AccessLink = { id, pod, port: options.port, createdAt: new Date(now).toISOString(), expiresAt: new Date(exp * 1000).toISOString() };
      if (exp * 1000 > now) await access.addLink(link);
      return { token, id };
    },
  };
}

export interface TestGateway {
  gateway: RunningGateway;
  url: string;
  /** Base URL of the HTTPS listener, started when `env` sets HTTPS_PORT (self-signed default certificate). */
  httpsUrl: string | undefined;
  logs: { level: number; msg: string; [k: string]: unknown }[];
  close(): Promise<void>;
}

/**
 * An in-process gateway on the world's Redis, with its own Redis connections, as a replica would have. With
 * HTTPS_PORT in `env` it also listens for HTTPS on 127.0.0.1, with the embedded certificate store and no on-demand
 * issuance: only the default certificate is served and no CA is ever asked.
 */
export async function startTestGateway(world: AccessWorld, env: Record<string, string> = {}): Promise<TestGateway> {
  const routeClient = createRedis(world.redis.url);
  const accessClient = createRedis(world.redis.url);
  await Promise.all([waitReady(routeClient), waitReady(accessClient)]);
  const config = loadGatewayConfig({ ...loopbackGatewayEnv(world.redis.url), ...env });
  const access = new RedisAccessStore(accessClient);
  const { log, logs } = capturedLogger('info');
  const tls =
    env.HTTPS_PORT === undefined
      ? undefined
      : { config: loadTlsConfig({ HTTPS_HOST: '127.0.0.1', TLS_ON_DEMAND: 'false', ...env }), store: new MemoryCertStore() };
  const gateway = await startGateway(config, { store: new RedisRouteStore(routeClient), access, activity: new RedisPodActivity(routeClient), log, tls });
  const httpsPort = gateway.httpsPort;
  return {
    gateway,
    url: `http://127.0.0.1:${gateway.httpPort}`,
    httpsUrl: httpsPort === undefined ? undefined : `https://127.0.0.1:${httpsPort}`,
    logs,
    async close() {
      await gateway.shutdown(1000);
      await access.close();
      routeClient.disconnect();
      accessClient.disconnect();
    },
  };
}

export const PUBLIC: AccessPolicy = { default: 'public', ports: {} };

/** `name=value` pairs of a Set-Cookie header, and its attributes (lowercased names). */
export function parseSetCookie(header: string): { name: string; value: string; attributes: Map<string, string> } {
  const [pair, ...attrs] = header.split(';').map((s) => s.trim());
  const eq = pair!.indexOf('=');
  const attributes = new Map<string, string>();
  for (const a of attrs) {
    const i = a.indexOf('=');
    attributes.set((i < 0 ? a : a.slice(0, i)).toLowerCase(), i < 0 ? '' : a.slice(i + 1));
  }
  return { name: pair!.slice(0, eq), value: pair!.slice(eq + 1), attributes };
}
