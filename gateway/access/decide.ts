// The access decision for one request (pure): may it reach the pod, and how. No I/O: the guard (guard.ts)
// gathers the inputs and carries the decision out.
import type { IncomingHttpHeaders } from 'node:http';
import type { AccessClaims, VerifyFailure } from '../../shared/access-token.ts';
import { PRIVATE_BY_DEFAULT, type Route, type Visibility } from '../../shared/route.ts';
import type { Presented } from './credentials.ts';

/** The visibility of one in-pod port: its own entry, else the pod's default; no policy at all means private. */
export function visibilityOf(route: Route, podPort: number): Visibility {
  const policy = route.access ?? PRIVATE_BY_DEFAULT;
  return policy.ports[String(podPort)] ?? policy.default;
}

/**
 * A CORS preflight: OPTIONS with Origin and Access-Control-Request-Method and no body. Browsers never attach
 * cookies to it, so no preflight can prove it comes from a token holder. Without concealment it is let through to
 * a private port's pod (whose CORS policy answers it); with ACCESS_CONCEAL_PODS the gateway answers it itself
 * (preflight.ts), from the request alone, because a pod's answer would tell a running pod from an unknown one.
 * Either way the real request that follows carries the cookie and is checked as usual.
 */
export function isPreflight(method: string | undefined, headers: IncomingHttpHeaders): boolean {
  if (method !== 'OPTIONS' || !headers.origin || !headers['access-control-request-method']) return false;
  const length = headers['content-length'];
  return headers['transfer-encoding'] === undefined && (length === undefined || length === '0');
}

export type TokenCheck =
  | { ok: true; claims: AccessClaims }
  /** `unverifiable`: revocations are not loaded yet (fail closed). */
  | { ok: false; reason: VerifyFailure | 'revoked' | 'out_of_scope' | 'unverifiable' };

export interface DecisionInput {
  visibility: Visibility;
  preflight: boolean;
  /** GET or HEAD without Upgrade: a link's token may be turned into a cookie by a redirect. */
  navigable: boolean;
  presented: Presented[];
  /** ACCESS_CONCEAL_PODS: preflights to private ports are answered by the gateway, not by the pod. */
  conceal: boolean;
  /**
   * The request's Origin is a page of another pod or site (not this pod, any port). Sibling pods are the same
   * *site* for the browser, so SameSite=Lax still attaches the cookie to their fetches and WebSockets: a
   * cookie must not authorise those (a header or query token still does: another page cannot know it).
   */
  foreignOrigin: boolean;
  check: (token: string) => TokenCheck;
  nowMs: number;
}

export type Decision =
  | {
      allow: true;
      via: 'public' | 'preflight' | 'token';
      /** Set the cookie and reload without the token. */
      redeem?: { token: string; maxAgeSeconds: number };
      /** Reload without the query token (a link opened on a public port: keep it out of the history anyway). */
      reload?: boolean;
    }
  | Refusal
  /** The gateway answers the CORS preflight itself (concealment: see isPreflight). */
  | { allow: false; reason: 'preflight' };

/**
 * `rejected`: every token was refused; `forged` of them are forgeries. `rate_limited` is never decided here: the
 * guard turns a `rejected` with forgeries into it when the limiter says the address is blocked (limits.ts).
 */
export type Refusal = {
  allow: false;
  reason: 'no_credentials' | 'rejected' | 'rate_limited';
  forged: number;
  staleCookie: boolean;
  /** With `rate_limited`: when the address may try again. */
  retryAfterSeconds?: number;
};

/** Forged or damaged tokens: what a guesser sends. Expired, revoked or out-of-scope ones are real tokens. */
export function isForgery(check: TokenCheck): boolean {
  return !check.ok && (check.reason === 'malformed' || check.reason === 'bad_signature');
}

export function decide(input: DecisionInput): Decision {
  if (input.visibility === 'public') {
    const link = input.navigable ? input.presented.find((p) => p.source === 'query') : undefined;
    if (!link) return { allow: true, via: 'public' };
    const check = input.check(link.token);
    if (!check.ok) return { allow: true, via: 'public', reload: true };
    return { allow: true, via: 'public', reload: true, redeem: { token: link.token, maxAgeSeconds: check.claims.exp - input.nowMs / 1000 } };
  }
  if (input.preflight) return input.conceal ? { allow: false, reason: 'preflight' } : { allow: true, via: 'preflight' };
  if (input.presented.length === 0) return { allow: false, reason: 'no_credentials', forged: 0, staleCookie: false };
  if (input.foreignOrigin && input.presented.every((p) => p.source === 'cookie')) {
    return { allow: false, reason: 'no_credentials', forged: 0, staleCookie: false };
  }
  let forged = 0;
  let staleCookie = false;
  for (const p of input.presented) {
    if (p.source === 'cookie' && input.foreignOrigin) continue;
    const check = input.check(p.token);
    if (check.ok) {
      if (p.source === 'query' && input.navigable) {
        return { allow: true, via: 'token', redeem: { token: p.token, maxAgeSeconds: check.claims.exp - input.nowMs / 1000 } };
      }
      return { allow: true, via: 'token' };
    }
    if (isForgery(check)) forged++;
    if (p.source === 'cookie') staleCookie = true;
  }
  return { allow: false, reason: 'rejected', forged, staleCookie };
}
