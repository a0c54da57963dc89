// Header rules at the edge (pure). Requests to pods get X-Forwarded-* set by the gateway (client-supplied
// values are kept only from trusted proxies) and lose hop-by-hop headers; responses lose hop-by-hop and
// HTTP/2-forbidden headers, and are checked (status, header names and values) before anything reaches a client.
import type { IncomingHttpHeaders } from 'node:http';
import { ROUTER_KEY_HEADER } from '../shared/route.ts';
import type { ClientInfo } from './client-info.ts';

/** RFC 9110 section 7.6.1 hop-by-hop headers (Proxy-* ones are all removed by isProxyHeader). */
const HOP_BY_HOP = ['connection', 'keep-alive', 'te', 'trailer', 'upgrade'];

/**
 * `Proxy` and every `Proxy-*` header, both ways. They address a proxy, never the pod or the browser:
 * Proxy-Authorization carries credentials for the client's own proxy; a bare `Proxy` header becomes HTTP_PROXY in
 * CGI-style apps and redirects their outgoing requests (httpoxy, CVE-2016-5385); a pod's Proxy-Authenticate on a 407
 * would have the browser ask its user for proxy credentials on the pod's behalf. Names arrive lower-cased.
 */
function isProxyHeader(name: string): boolean {
  return name.startsWith('proxy') && (name.length === 5 || name.charCodeAt(5) === 0x2d /* - */);
}

/** What the request's headers say about its client (client-info.ts), and what the gateway adds. */
export interface ForwardContext extends Pick<ClientInfo, 'remoteAddress' | 'trustedPeer' | 'proto' | 'port'> {
  /** An Upgrade (WebSocket) request: keeps `Connection: upgrade` and `Upgrade`. */
  upgrade: boolean;
  /** The target pod's router key (its route's), sent as ROUTER_KEY_HEADER. */
  routerKey?: string;
}

/** Remove the headers a Connection header names (RFC 9110 7.6.1), `upgrade` kept when asked. */
function dropConnectionOptions(headers: IncomingHttpHeaders | Record<string, unknown>, keepUpgrade: boolean): void {
  const connection = headers.connection;
  if (typeof connection !== 'string') return;
  // Nearly every message says only `keep-alive` (removed with the hop-by-hop headers) or `close`: no list to split.
  if (connection === 'keep-alive') return;
  if (connection === 'close') {
    delete headers.close;
    return;
  }
  for (const token of connection.split(',')) {
    const name = token.trim().toLowerCase();
    if (name && !(keepUpgrade && name === 'upgrade')) delete headers[name];
  }
}

function stripHopByHop(headers: IncomingHttpHeaders | Record<string, unknown>, keepUpgrade: boolean): void {
  dropConnectionOptions(headers, keepUpgrade);
  for (const name of HOP_BY_HOP) {
    if (!(keepUpgrade && name === 'upgrade')) delete headers[name];
  }
  for (const name in headers) if (isProxyHeader(name)) delete headers[name];
}

/** Rewrite an incoming request's headers in place for the upstream pod. */
export function prepareRequestHeaders(headers: IncomingHttpHeaders, ctx: ForwardContext): void {
  const upgradeValue = headers.upgrade;
  stripHopByHop(headers, ctx.upgrade);
  if (ctx.upgrade && upgradeValue) {
    headers.connection = 'upgrade';
    headers.upgrade = upgradeValue;
  }
  const priorFor = ctx.trustedPeer ? headers['x-forwarded-for'] : undefined;
  headers['x-forwarded-for'] = priorFor ? `${priorFor}, ${ctx.remoteAddress}` : ctx.remoteAddress;
  if (!ctx.trustedPeer || !headers['x-forwarded-proto']) headers['x-forwarded-proto'] = ctx.proto;
  if (!ctx.trustedPeer || !headers['x-forwarded-host']) headers['x-forwarded-host'] = headers.host ?? '';
  if (!ctx.trustedPeer || !headers['x-forwarded-port']) headers['x-forwarded-port'] = String(ctx.port);
  if (!ctx.trustedPeer) delete headers.forwarded;
  // Only the gateway speaks for the router key: a client's copy (even a trusted proxy's) never reaches the pod.
  delete headers[ROUTER_KEY_HEADER];
  if (ctx.routerKey) headers[ROUTER_KEY_HEADER] = ctx.routerKey;
}

/**
 * Dropped from every response: the hop-by-hop headers, and those HTTP/2 forbids besides them (RFC 9113 8.2.2:
 * node:http2 throws on each), for every client version so all answer alike. Framing (Transfer-Encoding) is the
 * gateway's own business: it chunks or sets the length for each client's HTTP version.
 */
const DROPPED_RESPONSE = new Set([...HOP_BY_HOP, 'transfer-encoding', 'http2-settings']);

/** RFC 9110 5.1 field-name: a token. */
const FIELD_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/**
 * Names already found to be tokens: a pod sends the same few names in every response, and the check is the costliest
 * part of a response's header rules. Bounded, so a pod sending a new name each time cannot grow it without end.
 */
const KNOWN_NAMES = new Set<string>();
const KNOWN_NAMES_MAX = 1024;

function isFieldName(name: string): boolean {
  if (KNOWN_NAMES.has(name)) return true;
  if (!FIELD_NAME.test(name)) return false;
  if (KNOWN_NAMES.size < KNOWN_NAMES_MAX) KNOWN_NAMES.add(name);
  return true;
}
/** RFC 9110 5.5 field-value characters: no CR, LF, NUL or other controls except HTAB (obs-text is allowed). */
const INVALID_VALUE_CHAR = /[^\t\x20-\x7e\x80-\xff]/;

function valueProblem(name: string, value: string): string | undefined {
  return INVALID_VALUE_CHAR.test(value) ? `header ${JSON.stringify(name)} has a control character in its value` : undefined;
}

/**
 * Fields of which a response carries one value: a repeated one keeps its first, as node:http's parser does (and
 * node:http2 refuses more than one).
 */
const SINGLE_VALUE = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host', 'if-modified-since',
  'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer', 'retry-after',
  'server', 'user-agent',
]);

/** A repeated field as one value (RFC 9110 5.3: a comma-joined list), except those that carry one value. */
function collapse(name: string, values: string[]): string {
  return SINGLE_VALUE.has(name) ? values[0]! : values.join(', ');
}

/**
 * Remove hop-by-hop and HTTP/2-forbidden headers from a pod's response before it is copied to the client, and
 * check what remains, in one pass (it runs for every response). `upgrade`: a 101 answer to a WebSocket upgrade,
 * which keeps `Connection: upgrade` and `Upgrade`. Returns what is wrong (the response must not be relayed), or
 * undefined.
 */
export function prepareResponseHeaders(headers: IncomingHttpHeaders, upgrade = false): string | undefined {
  const upgradeValue = headers.upgrade;
  dropConnectionOptions(headers, upgrade);
  for (const name in headers) {
    if (DROPPED_RESPONSE.has(name) || isProxyHeader(name)) {
      delete headers[name];
      continue;
    }
    if (!isFieldName(name)) return `header name ${JSON.stringify(name.slice(0, 64))} is not a token`;
    const value = headers[name];
    if (typeof value === 'string') {
      const problem = valueProblem(name, value);
      if (problem) return problem;
    } else if (Array.isArray(value)) {
      for (const item of value) {
        const problem = valueProblem(name, item);
        if (problem) return problem;
      }
      if (name !== 'set-cookie') headers[name] = collapse(name, value);
    } else if (value !== undefined) {
      return `header ${JSON.stringify(name)} has no text value`;
    }
  }
  if (upgrade && upgradeValue) {
    headers.connection = 'upgrade';
    headers.upgrade = upgradeValue;
  }
  return undefined;
}

/**
 * A final response the gateway relays: HTTP/1.x (node:http's parser also takes `HTTP/2.0` and others from a raw
 * socket), and a status RFC 9110 15 defines as final: 200-599 (1xx are never final, 101 only ends an upgrade).
 * Anything else (0, 99, 600-999, which the parser accepts) is a broken pod.
 */
export function finalStatusProblem(status: number | undefined, httpVersionMajor = 1): string | undefined {
  if (httpVersionMajor !== 1) return `HTTP/${httpVersionMajor} is not HTTP/1.x`;
  return status !== undefined && status >= 200 && status <= 599 ? undefined : `status ${status} is not a final status (200-599)`;
}
