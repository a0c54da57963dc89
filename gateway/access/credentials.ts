// Where a client's access token comes from, and removing every trace of it before the request reaches the pod
// (pure functions on headers and the request target).
//   - `?podgate_token=` in an access link: redeemed into a cookie, then the URL is reloaded without it;
//   - the `podgate_access` cookie: host-only (no Domain attribute), so it is sent to exactly the hostname that
//     redeemed the link and never to another pod or port;
//   - the `X-Podgate-Token` header: for API clients and scripts.
// What the gateway writes itself (the access log, error pages) goes through redactTarget()/redactTokens(), so a
// token a client sent never appears there either.
import type { IncomingHttpHeaders } from 'node:http';
import { ACCESS_COOKIE, TOKEN_HEADER, TOKEN_PREFIX, TOKEN_QUERY } from '../../shared/access-token.ts';

export { ACCESS_COOKIE, TOKEN_HEADER, TOKEN_QUERY };

export type CredentialSource = 'query' | 'header' | 'cookie';

export interface Presented {
  source: CredentialSource;
  token: string;
}

function cookiePairs(header: string | undefined): { name: string; value: string; raw: string }[] {
  if (!header) return [];
  const out = [];
  for (const part of header.split(';')) {
    const raw = part.trim();
    if (!raw) continue;
    const eq = raw.indexOf('=');
    const name = (eq < 0 ? raw : raw.slice(0, eq)).trim();
    let value = eq < 0 ? '' : raw.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    out.push({ name, value, raw });
  }
  return out;
}

function queryParts(url: string): { path: string; params: string[] } {
  const q = url.indexOf('?');
  if (q < 0) return { path: url, params: [] };
  return { path: url.slice(0, q), params: url.slice(q + 1).split('&') };
}

function paramName(param: string): string {
  const eq = param.indexOf('=');
  const name = eq < 0 ? param : param.slice(0, eq);
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    return name;
  }
}

function paramValue(param: string): string {
  const eq = param.indexOf('=');
  if (eq < 0) return '';
  try {
    return decodeURIComponent(param.slice(eq + 1).replace(/\+/g, ' '));
  } catch {
    return param.slice(eq + 1);
  }
}

/**
 * Every token the request carries, in the order they are tried: the link's query token (the newest intent), the
 * header, then cookies (more than one when a sibling host tossed a cookie of the same name at a parent domain:
 * any valid one counts, so a tossed cookie cannot shadow the real one).
 */
export function presentedTokens(headers: IncomingHttpHeaders, url: string): Presented[] {
  const out: Presented[] = [];
  for (const p of queryParts(url).params) {
    if (paramName(p) === TOKEN_QUERY) out.push({ source: 'query', token: paramValue(p) });
  }
  const header = headers[TOKEN_HEADER];
  for (const h of Array.isArray(header) ? header : header === undefined ? [] : [header]) {
    out.push({ source: 'header', token: h.trim() });
  }
  for (const c of cookiePairs(headers.cookie)) if (c.name === ACCESS_COOKIE) out.push({ source: 'cookie', token: c.value });
  return out;
}

/** The request target without the link's token parameter (everything else kept byte for byte). */
export function withoutTokenParam(url: string): string {
  const { path, params } = queryParts(url);
  if (params.length === 0) return url;
  const kept = params.filter((p) => paramName(p) !== TOKEN_QUERY);
  if (kept.length === params.length) return url;
  return kept.length === 0 ? path : `${path}?${kept.join('&')}`;
}

/** What a token's value becomes in the log. */
export const REDACTED = 'redacted';
/**
 * Anything shaped like a token (`pg1.<payload>.<signature>`, the dots possibly percent-encoded), wherever it is:
 * another parameter, a path segment, a Host header. The payload and signature are base64url.
 */
const TOKEN_SHAPE = new RegExp(`${TOKEN_PREFIX}(?:\\.|%2e)[A-Za-z0-9_-]+(?:\\.|%2e)[A-Za-z0-9_-]+`, 'gi');

/** `text` with every token-shaped value replaced. */
export function redactTokens(text: string): string {
  return text.replace(TOKEN_SHAPE, `${TOKEN_PREFIX}.${REDACTED}`);
}

/**
 * A request target as it may be logged: the value of every token parameter (whatever it holds, forged ones
 * included: a mistyped real token is still most of a secret) and anything token-shaped elsewhere replaced.
 */
export function redactTarget(url: string): string {
  const { path, params } = queryParts(url);
  const query = params.map((p) => {
    if (paramName(p) !== TOKEN_QUERY) return p;
    const eq = p.indexOf('=');
    return eq < 0 ? p : `${p.slice(0, eq)}=${REDACTED}`;
  });
  return redactTokens(params.length === 0 ? path : `${path}?${query.join('&')}`);
}

/** Remove the gateway's cookie and header in place: the pod never sees them. */
export function stripCredentialHeaders(headers: IncomingHttpHeaders): void {
  delete headers[TOKEN_HEADER];
  if (headers.cookie === undefined) return;
  const kept = cookiePairs(headers.cookie).filter((c) => c.name !== ACCESS_COOKIE);
  if (kept.length === 0) delete headers.cookie;
  else headers.cookie = kept.map((c) => c.raw).join('; ');
}

/** Host-only (no Domain), whole host (Path=/), not readable by the pod's scripts, not sent on cross-site subrequests. */
export function accessCookie(token: string, maxAgeSeconds: number, secure: boolean): string {
  return `${ACCESS_COOKIE}=${token}; Path=/; Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`;
}

export function clearedAccessCookie(secure: boolean): string {
  return accessCookie('', 0, secure);
}
