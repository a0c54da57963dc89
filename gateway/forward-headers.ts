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

/** What the request's headers say about its client (client-info.ts) that the forwarded headers carry. */
export type ForwardClient = Pick<ClientInfo, 'remoteAddress' | 'trustedPeer' | 'proto' | 'port'>;

/**
 * The names a Connection header lists (RFC 9110 7.6.1), to be dropped with it; `upgrade` kept when asked. Undefined
 * when there are none: nearly every message says only `keep-alive` (a hop-by-hop header itself) or nothing.
 */
function connectionOptions(connection: string | string[] | undefined, keepUpgrade: boolean): string[] | undefined {
  if (connection === undefined || connection === 'keep-alive') return undefined;
  if (connection === 'close') return ['close'];
  const names: string[] = [];
  for (const token of (typeof connection === 'string' ? connection : connection.join(',')).split(',')) {
    const name = token.trim().toLowerCase();
    // Host is the request's authority, never a connection option: without it the pod would route by a default.
    if (name && name !== 'host' && !(keepUpgrade && name === 'upgrade')) names.push(name);
  }
  return names;
}

/** Request headers never taken from the client: hop-by-hop, or set by the gateway itself. */
const SET_BY_THE_GATEWAY = new Set([...HOP_BY_HOP, ROUTER_KEY_HEADER, 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port']);

/**
 * The headers of a request as the pod gets them, in a new object (the client's are left as they were): without
 * hop-by-hop and Proxy-* headers, with the X-Forwarded-* the gateway sets (a client's own kept only from a trusted
 * proxy), Forwarded only from a trusted proxy, and the router key, which only the gateway speaks for. `upgrade`: a
 * WebSocket upgrade, which keeps `Connection: upgrade` and `Upgrade`. A new object rather than deletions: a deleted
 * property turns a V8 object into a slow dictionary, and the request head is then written from it.
 */
export function requestHeaders(headers: IncomingHttpHeaders, client: ForwardClient, upgrade: boolean, routerKey: string | undefined): IncomingHttpHeaders {
  const dropped = connectionOptions(headers.connection, upgrade);
  const trusted = client.trustedPeer;
  const out: IncomingHttpHeaders = {};
  for (const name in headers) {
    if (SET_BY_THE_GATEWAY.has(name) || isProxyHeader(name) || dropped?.includes(name)) continue;
    if (name === 'forwarded' && !trusted) continue;
    out[name] = headers[name];
  }
  const upgradeValue = headers.upgrade;
  if (upgrade && upgradeValue) {
    out.connection = 'upgrade';
    out.upgrade = upgradeValue;
  }
  const priorFor = trusted ? headers['x-forwarded-for'] : undefined;
  out['x-forwarded-for'] = priorFor ? `${priorFor}, ${client.remoteAddress}` : client.remoteAddress;
  out['x-forwarded-proto'] = (trusted && headers['x-forwarded-proto']) || client.proto;
  out['x-forwarded-host'] = (trusted && headers['x-forwarded-host']) || headers.host || '';
  out['x-forwarded-port'] = (trusted && headers['x-forwarded-port']) || String(client.port);
  if (routerKey) out[ROUTER_KEY_HEADER] = routerKey;
  return out;
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

function valueProblem(name: string): string {
  return `header ${JSON.stringify(name)} has a control character in its value`;
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
 * A pod's response headers as they go to the client, checked and in a new object, in one pass (it runs for every
 * response): hop-by-hop and HTTP/2-forbidden headers left out, every name a token, every value free of control
 * characters, a repeated single-value field reduced to its first value. `upgrade`: a 101 answer to a WebSocket
 * upgrade, which keeps `Connection: upgrade` and `Upgrade`. Returns the headers, or what is wrong (the response must
 * not be relayed). A new object rather than deletions, as for requests: node:http writes the head from it.
 */
export function responseHeaders(headers: IncomingHttpHeaders, upgrade = false): IncomingHttpHeaders | string {
  const dropped = connectionOptions(headers.connection, upgrade);
  const out: IncomingHttpHeaders = {};
  for (const name in headers) {
    if (DROPPED_RESPONSE.has(name) || isProxyHeader(name) || dropped?.includes(name)) continue;
    if (!isFieldName(name)) return `header name ${JSON.stringify(name.slice(0, 64))} is not a token`;
    const value = headers[name];
    if (typeof value === 'string') {
      if (INVALID_VALUE_CHAR.test(value)) return valueProblem(name);
      out[name] = value;
    } else if (Array.isArray(value)) {
      for (const item of value) if (INVALID_VALUE_CHAR.test(item)) return valueProblem(name);
      out[name] = name === 'set-cookie' ? value : collapse(name, value);
    } else if (value !== undefined) {
      return `header ${JSON.stringify(name)} has no text value`;
    }
  }
  const upgradeValue = headers.upgrade;
  if (upgrade && upgradeValue) {
    out.connection = 'upgrade';
    out.upgrade = upgradeValue;
  }
  return out;
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
