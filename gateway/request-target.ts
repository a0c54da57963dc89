// One request target (pure): every request is brought to a single authority and an origin-form target before
// anything reads them. Routing, the access decision, the log and the pod all see req.headers.host and req.url
// afterwards, so they can never disagree about which pod and port a request is for.
//
// - origin-form `/path?query`: kept; Host is the authority.
// - absolute-form `http(s)://authority/path?query` (HTTP/1.x only, RFC 9112 3.2.2): the authority IS the host.
//   The Host header is ignored and replaced by it, and the target becomes origin-form.
// - HTTP/2: :authority and Host must name the same authority when both are present (RFC 9113 8.3.1), and
//   :path must be origin-form.
// - asterisk-form `*`: only with OPTIONS, answered by the gateway itself (never routed to a pod).
// - everything else (userinfo, other schemes, malformed authorities, fragments, authority-form): 400.
import type { IncomingMessage } from 'node:http';
import { InvalidHostError, InvalidRequestTargetError } from '../shared/errors.ts';

/**
 * RFC 3986 host [":" port], restricted to what a pod hostname or an IP can be: a reg-name of unreserved
 * characters (no percent-encoding, no sub-delims) or a bracketed IPv6 literal. Anything else in Host (userinfo,
 * commas, slashes, spaces) would let the gateway and the pod's router read different hosts from one value.
 */
const HOST_SYNTAX = /^(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::\d{0,5})?$/;
/** scheme "://" authority rest: the authority runs to the first `/`, `?` or `#`. */
const ABSOLUTE_FORM = /^https?:\/\/([^/?#]*)(.*)$/is;
const SCHEME_ONLY = /^([A-Za-z][A-Za-z0-9+.-]{0,15}):/;
const SLASH = 0x2f;

/** What the caller does next: route the request, or answer `OPTIONS *` itself. */
export type TargetKind = 'origin' | 'asterisk';

/**
 * The request's Host, refusing more than one (RFC 9112 3.2: 400). Node keeps only the first of several, while a
 * proxy or cache in front may have routed by another: answering would let one request reach two different pods.
 */
export function soleHostHeader(rawHeaders: readonly string[], host: string | undefined): string | undefined {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') count++;
  }
  if (count > 1) throw new InvalidHostError(host ?? '', 'more than one Host header');
  return host;
}

function checkHostSyntax(host: string, what: string): void {
  if (!HOST_SYNTAX.test(host)) throw new InvalidHostError(host, `${what} is not a valid host[:port]`);
}

/**
 * Rewrite `req` in place to one authority (req.headers.host) and an origin-form target (req.url), or throw
 * InvalidRequestTargetError / InvalidHostError (both 400). Runs first, before interception, routing and access.
 */
export function normaliseRequestTarget(req: IncomingMessage): TargetKind {
  const headers = req.headers;
  const h2 = req.httpVersionMajor >= 2;
  if (h2) {
    const authority = headers[':authority'];
    if (typeof authority === 'string') {
      checkHostSyntax(authority, ':authority');
      if (headers.host !== undefined && headers.host.toLowerCase() !== authority.toLowerCase()) {
        throw new InvalidHostError(headers.host, 'Host and :authority name different hosts');
      }
      headers.host = authority;
    }
  }
  const host = soleHostHeader(req.rawHeaders, headers.host);
  if (host !== undefined) checkHostSyntax(host, 'Host');

  const url = req.url ?? '';
  if (url.charCodeAt(0) === SLASH) {
    if (url.includes('#')) throw new InvalidRequestTargetError('a request target carries no #fragment');
    return 'origin';
  }
  if (url === '*') {
    if (req.method === 'OPTIONS') return 'asterisk';
    throw new InvalidRequestTargetError('asterisk-form (*) is only for OPTIONS');
  }
  if (req.method === 'CONNECT') throw new InvalidRequestTargetError('CONNECT is not served: this is not a forward proxy');
  if (h2) throw new InvalidRequestTargetError('an HTTP/2 :path must be /path?query');

  const scheme = SCHEME_ONLY.exec(url);
  if (!scheme) throw new InvalidRequestTargetError('expected /path?query or http(s)://host/path?query');
  const schemeName = scheme[1]!.toLowerCase();
  if (schemeName !== 'http' && schemeName !== 'https') {
    throw new InvalidRequestTargetError(`scheme ${JSON.stringify(scheme[1])} is not http or https`);
  }
  const absolute = ABSOLUTE_FORM.exec(url);
  if (!absolute) throw new InvalidRequestTargetError(`expected ${schemeName}://host/path?query`);
  const authority = absolute[1]!;
  if (authority.includes('@')) throw new InvalidRequestTargetError('userinfo (user@) is not allowed in the target');
  if (authority === '') throw new InvalidRequestTargetError('the target has an empty authority');
  if (!HOST_SYNTAX.test(authority)) throw new InvalidRequestTargetError('the target authority is not a valid host[:port]');
  const rest = absolute[2]!;
  if (rest.includes('#')) throw new InvalidRequestTargetError('a request target carries no #fragment');
  // RFC 9112 3.2.2: the target's authority is the host; whatever Host said is ignored from here on.
  headers.host = authority;
  req.url = rest === '' ? '/' : rest.charCodeAt(0) === SLASH ? rest : `/${rest}`;
  return 'origin';
}

/** The gateway's own answer to `OPTIONS *`: what it accepts, no body. */
export const ASTERISK_OPTIONS_HEADERS = { allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS', 'content-length': '0' } as const;
