// Keep-alive connection pools to pods (undici), one per pod *generation*: a pod's host port can be freed and
// handed to another pod, so a pool must never outlive the route it was made for.
import { createRequire } from 'node:module';
import type { Client as UndiciClient, Dispatcher, Pool as UndiciPool } from 'undici';
import { UpstreamInvalidResponseError } from '../shared/errors.ts';
import type { Route } from '../shared/route.ts';

/**
 * Idle pooled sockets are closed after this long at most, and 2 s before the pod's own `Keep-Alive: timeout=` when
 * that is sooner (undici reads it). Node servers close idle keep-alive sockets after 5 s; closing ours first avoids
 * sending a request on a socket the pod is closing at that very moment.
 */
const FREE_SOCKET_TIMEOUT_MS = 4_000;
/** Before any configuration: undici's own default is 10 s. */
const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;

interface Entry {
  generation: number;
  pool: Pool;
}

/**
 * Two answers undici's HTTP/1.1 parser takes differently from node:http, and the gateway's rules want node:http's:
 * a `100 Continue` nobody asked for (RFC 9110 15.2: a client must parse and may ignore any 1xx) makes undici drop
 * the connection, and a status line of another HTTP version (`HTTP/2.0 200`) reaches handlers as if it were
 * HTTP/1.1, with no way for them to tell. The parser is undici's internal class; its prototype is reached through
 * the first pooled connection (before that connection has read a byte) and adjusted once, for every pool:
 * a 100 then goes the way of every other 1xx (skipped), and any version but 1.x is refused. The undici version is
 * pinned exactly in package.json because of this; test/hostile-pod.test.ts has a case for each. Only this package's
 * undici is affected (Node's own fetch bundles another copy).
 */
const requireUndici = createRequire(import.meta.url);
const undiciInternals = requireUndici('undici/lib/core/symbols.js') as { kSocket: symbol; kParser: symbol };
/**
 * undici's Pool on its own: its index loads fetch, WebSocket, caches and mocks too, about 13 MB of resident memory
 * the gateway never uses.
 */
const Pool = requireUndici('undici/lib/dispatcher/pool.js') as typeof UndiciPool;
type Pool = UndiciPool;
const Client = requireUndici('undici/lib/dispatcher/client.js') as typeof UndiciClient;
type Client = UndiciClient;

interface H1Parser {
  llhttp: { llhttp_get_http_major(ptr: number): number };
  ptr: number;
  socket: { destroy(err: Error): void };
  onHeadersComplete(statusCode: number, upgrade: boolean, shouldKeepAlive: boolean): number;
}

/**
 * UPSTREAM_MAX_FREE_SOCKETS for one pool: undici keeps every connection a burst opened until its idle timeout. Each
 * time a connection becomes free while the pool holds more than `max` connections, the free ones beyond the first
 * `max` (in the pool's own order, the order it picks clients in, so the kept ones are the ones it reuses) are closed
 * at once. Their Clients stay in the pool and connect again when next needed. Nothing is counted while the pool
 * has at most `max` connections, the usual case.
 */
class FreeSocketCap {
  private readonly max: number;
  /** Every Client of the pool, in the order the pool made (and picks) them. */
  private readonly clients: Client[] = [];
  private connected = 0;
  pool: Pool | undefined;

  constructor(max: number) {
    this.max = max;
  }

  readonly factory = (origin: string | URL, options: object): Dispatcher => {
    const client = new Client(origin, options);
    this.clients.push(client);
    client.on('connect', () => this.connected++);
    client.on('disconnect', () => this.connected--);
    // Runs before the pool's own 'drain' listener (added once the factory returns), which hands it queued work.
    client.on('drain', () => {
      if (this.connected > this.max) this.closeSpare();
    });
    return client;
  };

  private closeSpare(): void {
    if ((this.pool?.stats.queued ?? 0) > 0) return; // queued requests are about to take the free connections
    let kept = 0;
    for (const client of this.clients) {
      const stats = client.stats;
      if (!stats.connected || stats.size > 0) continue;
      if (kept < this.max) {
        kept++;
        continue;
      }
      (client as unknown as Record<symbol, { destroy(): void } | null | undefined>)[undiciInternals.kSocket]?.destroy();
    }
  }
}

let parserAdjusted = false;

function adjustParser(parser: H1Parser): void {
  const proto = Object.getPrototypeOf(parser) as H1Parser;
  const original = proto.onHeadersComplete;
  // Another undici than the pinned one: leave it as it is rather than fail in the request path (an unasked 100
  // then answers 502, an HTTP/2.0 status line passes its other checks; test/hostile-pod.test.ts says so).
  if (typeof original !== 'function' || typeof parser.llhttp?.llhttp_get_http_major !== 'function') return;
  proto.onHeadersComplete = function (this: H1Parser, statusCode, upgrade, shouldKeepAlive) {
    const major = this.llhttp.llhttp_get_http_major(this.ptr);
    if (major !== 1) {
      this.socket.destroy(new UpstreamInvalidResponseError(`HTTP/${major} is not HTTP/1.x`));
      return -1;
    }
    // 102 takes undici's path for a 1xx: skipped, the connection kept; handlers ignore every 1xx anyway.
    return original.call(this, statusCode === 100 && !upgrade ? 102 : statusCode, upgrade, shouldKeepAlive);
  };
}

function onConnect(_origin: URL, targets: readonly Dispatcher[]): void {
  if (parserAdjusted) return;
  const client = targets[targets.length - 1] as unknown as Record<symbol, Record<symbol, unknown> | null | undefined>;
  const parser = client[undiciInternals.kSocket]?.[undiciInternals.kParser] as H1Parser | undefined;
  if (!parser) return;
  parserAdjusted = true;
  adjustParser(parser);
}

function origin(route: Route): string {
  return route.host.includes(':') ? `http://[${route.host}]:${route.port}` : `http://${route.host}:${route.port}`;
}

export class UpstreamPool {
  private readonly pools = new Map<string, Entry>();
  private connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_MS;

  private readonly maxFreeSockets: number;

  /**
   * `maxFreeSockets` (UPSTREAM_MAX_FREE_SOCKETS): idle connections kept per pod generation beyond that are closed as
   * they become idle; those kept close after FREE_SOCKET_TIMEOUT_MS of idleness.
   */
  constructor(maxFreeSockets: number) {
    this.maxFreeSockets = maxFreeSockets;
  }

  /** UPSTREAM_CONNECT_TIMEOUT_MS, set by the proxy (which owns the timeouts) before its first request; 0: none. */
  setConnectTimeout(ms: number): void {
    this.connectTimeoutMs = ms;
  }

  poolFor(route: Route): Pool {
    const entry = this.pools.get(route.slug);
    if (entry && entry.generation === route.generation) return entry.pool;
    if (entry) retire(entry.pool);
    const cap = new FreeSocketCap(this.maxFreeSockets);
    const pool = new Pool(origin(route), {
      factory: cap.factory,
      connectTimeout: this.connectTimeoutMs,
      keepAliveTimeout: FREE_SOCKET_TIMEOUT_MS,
      keepAliveMaxTimeout: FREE_SOCKET_TIMEOUT_MS,
      // Timeouts are set per request by the proxy (the response timeout) or not at all (the body: streams).
      headersTimeout: 0,
      bodyTimeout: 0,
      // One request at a time per connection, as browsers and node:http do.
      pipelining: 1,
    });
    cap.pool = pool;
    if (!parserAdjusted) pool.on('connect', onConnect);
    this.pools.set(route.slug, { generation: route.generation, pool });
    return pool;
  }

  /** The pod's route changed or went away: in-flight requests finish, idle sockets close, nothing is reused. */
  retire(slug: string): void {
    const entry = this.pools.get(slug);
    if (!entry) return;
    this.pools.delete(slug);
    retire(entry.pool);
  }

  get size(): number {
    return this.pools.size;
  }

  close(): void {
    for (const slug of [...this.pools.keys()]) this.retire(slug);
  }
}

function retire(pool: Pool): void {
  // close(): no new requests, the ones under way finish, then every socket closes.
  pool.close().catch(() => {});
}
