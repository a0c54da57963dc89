// The dashboard's defences that are decisions, not I/O: which POSTs come from the dashboard's own pages, which
// headers every page carries, and how many failed sign-ins are allowed.
import { FixedWindows } from '../../shared/fixed-windows.ts';

/**
 * Why a state-changing request is refused as cross-site, or undefined when it may proceed. Browsers send
 * Sec-Fetch-Site and Origin on every POST; a page of another site (or a sandboxed frame, `Origin: null`) cannot make
 * them name this listener. Clients that send neither (curl) still need the session cookie and its CSRF token.
 */
export function crossSiteRefusal(headers: { secFetchSite: string | undefined; origin: string | undefined }, ownOrigin: string): string | undefined {
  if (headers.secFetchSite !== undefined && headers.secFetchSite !== 'same-origin') return `Sec-Fetch-Site is ${headers.secFetchSite}`;
  if (headers.origin !== undefined && headers.origin !== ownOrigin) return 'Origin is not this dashboard';
  return undefined;
}

/**
 * The origin the dashboard's own pages have: the Host the browser used, with https when the request came over TLS
 * (a TLS-terminating proxy says so with X-Forwarded-Proto).
 */
export function ownOrigin(url: string, host: string | undefined, forwardedProto: string | undefined): string {
  const u = new URL(url);
  const scheme = isTls(url, forwardedProto) ? 'https' : u.protocol.replace(/:$/, '');
  return `${scheme}://${host ?? u.host}`;
}

export function isTls(url: string, forwardedProto: string | undefined): boolean {
  return url.startsWith('https:') || forwardedProto?.split(',')[0]?.trim().toLowerCase() === 'https';
}

/**
 * Headers of every dashboard answer. Scripts and styles run only with this answer's nonce; nothing may frame the
 * dashboard, no page address (pod names, link ids) leaks as a Referer to another origin (pod services opened from
 * it included), and no page is cached (they show state and freshly minted links). The referrer policy is
 * same-origin rather than no-referrer: under no-referrer browsers send `Origin: null` with the dashboard's own form
 * posts, and the Origin check needs the real one.
 */
export function securityHeaders(nonce: string): Record<string, string> {
  return {
    'content-security-policy': [
      "default-src 'none'",
      `script-src 'nonce-${nonce}'`,
      `style-src 'nonce-${nonce}'`,
      "img-src 'self'",
      "form-action 'self'",
      "frame-ancestors 'none'",
      "base-uri 'none'",
    ].join('; '),
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'same-origin',
    'cache-control': 'no-store',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
  };
}

/** Failed sign-ins allowed per client address and per window, and in all (a spread-out guess is slowed too). */
export const SIGN_IN_FAILURES_PER_CLIENT = 5;
export const SIGN_IN_FAILURES_TOTAL = 30;
export const SIGN_IN_WINDOW_MS = 60_000;
const ALL = '*';

export class SignInLimiter {
  private readonly windows = new FixedWindows(1000);
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  /** Seconds to wait before `client` may try again, or 0 when it may try now. */
  blockedFor(client: string): number {
    const now = this.now();
    const mine = this.windows.add(client, 0, SIGN_IN_WINDOW_MS, now);
    const all = this.windows.add(ALL, 0, SIGN_IN_WINDOW_MS, now);
    const waits = [mine.count >= SIGN_IN_FAILURES_PER_CLIENT ? mine.resetInMs : 0, all.count >= SIGN_IN_FAILURES_TOTAL ? all.resetInMs : 0];
    return Math.ceil(Math.max(...waits) / 1000);
  }

  failed(client: string): void {
    const now = this.now();
    this.windows.add(client, 1, SIGN_IN_WINDOW_MS, now);
    this.windows.add(ALL, 1, SIGN_IN_WINDOW_MS, now);
  }
}
