// Header rules at the edge (pure). Requests to pods get X-Forwarded-* set by the gateway (client-supplied
// values are kept only from trusted proxies) and lose hop-by-hop headers; responses lose hop-by-hop headers.
import type { IncomingHttpHeaders } from 'node:http';
import { ROUTER_KEY_HEADER } from '../shared/route.ts';

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

export interface ForwardContext {
  /** The connecting peer's address (IPv4-mapped IPv6 is unwrapped). */
  remoteAddress: string;
  /** Whether that peer is a configured trusted proxy. */
  trustedPeer: boolean;
  proto: 'http' | 'https';
  /** The gateway listener's port as the client reached it. */
  port: number;
  /** An Upgrade (WebSocket) request: keeps `Connection: upgrade` and `Upgrade`. */
  upgrade: boolean;
  /** The target pod's router key (its route's), sent as ROUTER_KEY_HEADER. */
  routerKey?: string;
}

export function unwrapMappedAddress(address: string | undefined): string {
  if (!address) return '';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

function stripHopByHop(headers: IncomingHttpHeaders | Record<string, unknown>, keepUpgrade: boolean): void {
  const connection = headers.connection;
  if (typeof connection === 'string') {
    for (const token of connection.split(',')) {
      const name = token.trim().toLowerCase();
      if (name && !(keepUpgrade && name === 'upgrade')) delete headers[name];
    }
  }
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
 * A copy without HTTP/2 pseudo-headers (:method, :path, :authority, :scheme), which have no place in the HTTP/1.1
 * request to the pod. A copy, because an HTTP/2 request reads its url and method from those very headers.
 */
export function withoutPseudoHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const copy: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) if (!name.startsWith(':')) copy[name] = value;
  return copy;
}

/**
 * Remove hop-by-hop headers from a pod's response before it is copied to the client. `upgrade`: a 101 answer to a
 * WebSocket upgrade, which keeps `Connection: upgrade` and `Upgrade`.
 */
export function prepareResponseHeaders(headers: IncomingHttpHeaders, upgrade = false): void {
  const upgradeValue = headers.upgrade;
  stripHopByHop(headers, upgrade);
  if (upgrade && upgradeValue) {
    headers.connection = 'upgrade';
    headers.upgrade = upgradeValue;
  }
}
