// The access guard: runs after a request's pod is resolved and before it is proxied. It gathers what decide.ts
// needs (the port's visibility, the tokens the client presents, the revocation list, the client's forged-token
// count) and returns a verdict: proxy, or the answer to send (redirect that turns a link into a cookie, preflight,
// 401, 429, 503); the handler sends it (reply.ts). An allowed request loses the gateway's cookie, header and query
// token before anything reaches the pod, and holds one of the pod's `maxConnections` slots until it closes.
//
// Answers never reveal whether a pod exists: with ACCESS_CONCEAL_PODS a client without a valid token for the pod
// gets the same answer for an unknown or stopped pod as for a running private one (conceal()), CORS preflights
// included (the gateway answers those itself, preflight.ts). Every answer depends on the request and the port's
// visibility only, never on whether the pod exists or runs.
//
// Refusals that carry forged tokens ask the limiter (limits.ts), which may consult the shared store: only those
// are answered asynchronously. Allowed requests never wait for anything.
import type { IncomingMessage } from 'node:http';
import type { AccessStore } from '../../shared/access-store.ts';
import { AccessTokens, generateSecret, tokenCovers, type AccessClaims } from '../../shared/access-token.ts';
import {
  PodBusyError,
  PodNotFoundError,
  PodUnavailableError,
  TooManyRequestsError,
  UnauthorizedError,
  toHttpError,
} from '../../shared/errors.ts';
import { parsePodHost } from '../../shared/hostname.ts';
import type { Logger } from '../../shared/log.ts';
import { DEFAULT_POD_PORT, type Route } from '../../shared/route.ts';
import type { GatewayConfig } from '../config.ts';
import type { ClientInfo } from '../client-info.ts';
import { renderError, wantsHtml } from '../error-page.ts';
import type { Answer } from '../reply.ts';
import type { Target } from '../resolve.ts';
import { RetryBackoff } from '../retry-backoff.ts';
import {
  accessCookie,
  clearedAccessCookie,
  presentedTokens,
  stripCredentialHeaders,
  withoutTokenParam,
  TOKEN_HEADER,
  type Presented,
} from './credentials.ts';
import { decide, isPreflight, visibilityOf, type Decision, type Refusal, type TokenCheck } from './decide.ts';
import { BadTokenLimiter, limiterKey, PodConnections } from './limits.ts';
import { sameOriginPath, sameOriginUrl } from './location.ts';
import { preflightAnswer } from './preflight.ts';
import { RevocationList } from './revocations.ts';

/** One message for every refusal: it names no pod, so it cannot tell an existing pod from an unknown one. */
export const ACCESS_REQUIRED_MESSAGE =
  'this service is private: open an access link from the pod owner, or send an access token in the X-Podgate-Token header';
/** Genuine tokens remembered after their signature check (about 300 bytes each). */
const VERIFIED_CACHE_SIZE = 10_000;
/** Retry-After for a pod at its connection limit: connections of a dev tool come and go within seconds. */
const POD_BUSY_RETRY_SECONDS = 1;
const WWW_AUTHENTICATE = `Podgate-Token realm="podgate", header="${TOKEN_HEADER}"`;

/** The guard's answer to a request: proxy it (and call `release` once it closes), or send `answer` instead. */
export type Verdict = { kind: 'allow'; release: () => void } | Answered;
export type Answered = { kind: 'answer'; answer: Answer };

export interface AccessGuardDeps {
  store: AccessStore;
  log: Logger;
  lookup: (slug: string) => Route | undefined;
  now?: () => number;
}

export type AccessGuardConfig = Pick<
  GatewayConfig,
  | 'ACCESS_SECRET'
  | 'ACCESS_LOGIN_URL'
  | 'ACCESS_RESYNC_INTERVAL_MS'
  | 'ACCESS_BAD_TOKEN_LIMIT'
  | 'ACCESS_BAD_TOKEN_WINDOW_MS'
  | 'ACCESS_CONCEAL_PODS'
  | 'baseDomains'
>;

export class AccessGuard {
  private readonly config: AccessGuardConfig;
  private readonly deps: AccessGuardDeps;
  private readonly now: () => number;
  private readonly revocations: RevocationList;
  private readonly limiter: BadTokenLimiter;
  readonly connections = new PodConnections();
  private tokens: AccessTokens | undefined;
  /** Tokens whose signature was checked: a page load sends the same cookie dozens of times. */
  private readonly verified = new Map<string, AccessClaims>();
  /** Reading the shared secret again after a failure: soon (Redis not connected yet at start), then slower. */
  private secretRetry: RetryBackoff;
  private secretFailures = 0;
  /** The forged-token counter's outage was logged (once per window, not once per request). */
  private counterWarned = false;
  private closed = false;

  constructor(config: AccessGuardConfig, deps: AccessGuardDeps) {
    this.config = config;
    this.deps = deps;
    this.now = deps.now ?? Date.now;
    this.revocations = new RevocationList(deps.store, { resyncIntervalMs: config.ACCESS_RESYNC_INTERVAL_MS, log: deps.log, now: this.now });
    this.limiter = new BadTokenLimiter(config.ACCESS_BAD_TOKEN_LIMIT, config.ACCESS_BAD_TOKEN_WINDOW_MS, deps.store, (err) =>
      this.counterFailed(err),
    );
    if (config.ACCESS_SECRET.length > 0) this.tokens = new AccessTokens(config.ACCESS_SECRET);
    this.secretRetry = new RetryBackoff(config.ACCESS_RESYNC_INTERVAL_MS);
  }

  /** Load the secret (unless configured) and the revocations. Resolves even if the store is down (retried). */
  async start(): Promise<void> {
    await this.loadSecret();
    await this.revocations.start();
  }

  private async loadSecret(): Promise<void> {
    if (this.tokens || this.closed) return;
    try {
      this.tokens = new AccessTokens([await this.deps.store.sharedSecret(generateSecret())]);
      if (this.secretFailures > 1) this.deps.log.info('access secret read; tokens are verified again');
    } catch (err) {
      // The first failure is usually Redis still connecting at start, retried 100 ms later: worth a warning only
      // when it persists.
      this.secretFailures++;
      if (this.secretFailures === 2) {
        this.deps.log.warn({ err: String(err) }, 'access secret not readable; private services refuse every token until it is');
      }
      this.secretRetry.schedule(() => void this.loadSecret());
    }
  }

  /** The shared forgery count is unreachable: this process counts on its own meanwhile (one warning per outage). */
  private counterFailed(err: unknown): void {
    if (this.counterWarned) return;
    this.counterWarned = true;
    this.deps.log.warn({ err: String(err) }, 'forged-token counter unavailable; counting in this process until it answers');
    setTimeout(() => (this.counterWarned = false), this.config.ACCESS_BAD_TOKEN_WINDOW_MS).unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.secretRetry.cancel();
    await this.revocations.close();
  }

  /** Verify a token for one port of one pod. */
  check(token: string, slug: string, podPort: number): TokenCheck {
    if (!this.tokens || !this.revocations.ready) return { ok: false, reason: 'unverifiable' };
    const now = this.now();
    let claims = this.verified.get(token);
    if (!claims) {
      const result = this.tokens.verify(token, now);
      if (!result.ok) return result;
      claims = result.claims;
      // Only genuine tokens are remembered, so a flood of forged ones cannot evict them or grow the map.
      if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(token, claims);
    } else if (claims.exp * 1000 <= now) {
      this.verified.delete(token);
      return { ok: false, reason: 'expired' };
    }
    if (this.revocations.isRevoked(claims)) return { ok: false, reason: 'revoked' };
    if (!tokenCovers(claims, slug, podPort)) return { ok: false, reason: 'out_of_scope' };
    return { ok: true, claims };
  }

  /**
   * Before proxying: allow (the gateway's credentials removed from the request, a connection slot held until
   * `release`), or the answer to send instead (redirect, preflight, 401, 429, 503). Runs before an upgrade's
   * protocol or method is looked at, so an upgrade the gateway does not proxy is refused like any other to a client
   * without a token. Only a refusal with forged tokens is a promise (the limiter was asked).
   */
  admit(req: IncomingMessage, target: Target, client: ClientInfo, upgrade: boolean): Verdict | Promise<Answered> {
    const decision = this.decide(req, target, upgrade);
    if (!decision.allow) return this.refuse(req, decision, client, upgrade);
    if (!upgrade && (decision.redeem || decision.reload)) {
      // The link becomes a cookie for exactly this hostname; reloading without the token keeps it out of the
      // address bar, the history and the Referer of whatever the page loads next. The Location is a path of this
      // origin whatever the request target looked like (location.ts).
      const clean = withoutTokenParam(req.url ?? '/');
      const headers: Record<string, string> = { location: sameOriginPath(clean), 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' };
      if (decision.redeem) headers['set-cookie'] = accessCookie(decision.redeem.token, decision.redeem.maxAgeSeconds, client.proto === 'https');
      return answered({ status: 302, headers });
    }
    const release = this.connections.tryAcquire(target.slug, target.route.maxConnections);
    if (!release) return answered(renderError(toHttpError(new PodBusyError(target.route.maxConnections!, POD_BUSY_RETRY_SECONDS)), req.headers.accept));
    stripCredentialHeaders(req.headers);
    req.url = withoutTokenParam(req.url ?? '/');
    return { kind: 'allow', release };
  }

  /**
   * resolve() failed. For an unknown or stopped pod, a client without a valid token for it gets the same answer as
   * for a private pod; undefined leaves the original error to the caller.
   */
  conceal(err: unknown, req: IncomingMessage, client: ClientInfo, upgrade: boolean): Answered | Promise<Answered> | undefined {
    const decision = this.concealment(err, req, upgrade);
    return decision ? this.refuse(req, decision, client, upgrade) : undefined;
  }

  private concealment(err: unknown, req: IncomingMessage, upgrade: boolean): Extract<Decision, { allow: false }> | undefined {
    if (!this.config.ACCESS_CONCEAL_PODS) return undefined;
    if (!(err instanceof PodNotFoundError) && !(err instanceof PodUnavailableError)) return undefined;
    let slug: string;
    let port: number | undefined;
    try {
      ({ slug, port } = parsePodHost(req.headers.host, this.config.baseDomains));
    } catch {
      return undefined;
    }
    const route = this.deps.lookup(slug);
    const podPort = port ?? route?.defaultPort ?? DEFAULT_POD_PORT;
    // A stopped pod's public port may say it is stopped; so may anyone holding a valid token for the pod.
    const visibility = route ? visibilityOf(route, podPort) : 'private';
    const decision = this.decideFor(req, slug, podPort, visibility, upgrade);
    return decision.allow ? undefined : decision;
  }

  private decide(req: IncomingMessage, target: Target, upgrade: boolean): Decision {
    return this.decideFor(req, target.slug, target.podPort, visibilityOf(target.route, target.podPort), upgrade);
  }

  private decideFor(req: IncomingMessage, slug: string, podPort: number, visibility: 'public' | 'private', upgrade: boolean): Decision {
    const presented: Presented[] = presentedTokens(req.headers, req.url ?? '/');
    return decide({
      visibility,
      preflight: !upgrade && isPreflight(req.method, req.headers),
      navigable: !upgrade && (req.method === 'GET' || req.method === 'HEAD'),
      presented,
      conceal: this.config.ACCESS_CONCEAL_PODS,
      foreignOrigin: this.isForeignOrigin(req.headers.origin, slug),
      check: (token) => this.check(token, slug, podPort),
      nowMs: this.now(),
    });
  }

  /**
   * A refusal with forged tokens goes past the limiter: rate limited when the address is blocked (known here
   * without I/O, or answered by the shared count). Every other refusal is final as it is.
   */
  private limited(client: ClientInfo, refusal: Refusal): Refusal | Promise<Refusal> {
    if (refusal.reason !== 'rejected' || refusal.forged === 0) return refusal;
    const key = limiterKey(client.address);
    const now = this.now();
    const known = this.limiter.blockedFor(key, now);
    if (known > 0) return { ...refusal, reason: 'rate_limited', retryAfterSeconds: known };
    return this.limiter.record(key, refusal.forged, now).then((verdict) => {
      if (verdict.nowBlocked) {
        this.deps.log.warn({ client: key, windowMs: this.config.ACCESS_BAD_TOKEN_WINDOW_MS }, 'too many forged access tokens; client blocked for the window');
      }
      return verdict.blockedFor > 0 ? { ...refusal, reason: 'rate_limited' as const, retryAfterSeconds: verdict.blockedFor } : refusal;
    });
  }

  private refuse(req: IncomingMessage, decision: Extract<Decision, { allow: false }>, client: ClientInfo, upgrade: boolean): Answered | Promise<Answered> {
    if (decision.reason === 'preflight') {
      // decide() never calls an upgrade a preflight; were it to, the upgrade is refused like one without a token.
      if (upgrade) decision = { allow: false, reason: 'no_credentials', forged: 0, staleCookie: false };
      else return answered(preflightAnswer(req.headers));
    }
    const toAnswer = (refusal: Refusal): Answered => answered(upgrade ? this.refusal(req, refusal) : this.pageRefusal(req, refusal, client));
    const limited = this.limited(client, decision);
    return limited instanceof Promise ? limited.then(toAnswer) : toAnswer(limited);
  }

  /** 401 or 429, as an upgrade gets it. */
  private refusal(req: IncomingMessage, decision: Refusal): Answer {
    const error =
      decision.reason === 'rate_limited'
        ? new TooManyRequestsError('too many invalid access tokens from this address', decision.retryAfterSeconds ?? 1)
        : new UnauthorizedError(ACCESS_REQUIRED_MESSAGE);
    const rendered = renderError(toHttpError(error), req.headers.accept);
    if (rendered.status === 401) rendered.headers['www-authenticate'] = WWW_AUTHENTICATE;
    return rendered;
  }

  /** A request's refusal: also drops a dead cookie, and sends a browser to ACCESS_LOGIN_URL when one is set. */
  private pageRefusal(req: IncomingMessage, decision: Refusal, client: ClientInfo): Answer {
    const extra: Record<string, string> = {};
    const tls = client.proto === 'https';
    // A cookie that no longer opens anything (revoked, expired) is dropped, so the browser stops sending it.
    if (decision.staleCookie) extra['set-cookie'] = clearedAccessCookie(tls);
    const login = this.config.ACCESS_LOGIN_URL;
    if (login && decision.reason !== 'rate_limited' && wantsHtml(req.headers.accept) && (req.method === 'GET' || req.method === 'HEAD')) {
      const to = new URL(login);
      to.searchParams.set('return_to', sameOriginUrl(client.proto, req.headers.host ?? '', withoutTokenParam(req.url ?? '/')));
      return { status: 302, headers: { ...extra, location: to.toString(), 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' } };
    }
    const refused = this.refusal(req, decision);
    return { ...refused, headers: { ...refused.headers, ...extra } };
  }

  /** An Origin that is not a page of this pod (any of its ports); absent (navigations, non-browsers) is not foreign. */
  private isForeignOrigin(origin: string | undefined, slug: string): boolean {
    if (origin === undefined) return false;
    try {
      return parsePodHost(new URL(origin).host, this.config.baseDomains).slug !== slug;
    } catch {
      return true; // `null` (sandboxed frames, file:), other sites, malformed
    }
  }
}

const answered = (answer: Answer): Answered => ({ kind: 'answer', answer });
