// The admins' web dashboard, a hono sub-app mounted by api.ts at /ui on the admin listener. Every read and change
// goes through the admin API's own handlers in-process (api.request with the admin token), so the dashboard holds
// no second copy of any pod, link or route logic; it turns forms into API calls and answers into pages.
// Certificates live in the gateways: they are managed through a gateway's certificates API (GATEWAY_ADMIN_URL, with
// GATEWAY_ADMIN_TOKEN), over HTTP.
//
// Security model: signing in with ADMIN_TOKEN (checked in constant time, failures rate-limited) makes a
// server-side session whose random id is the only thing in the cookie (HttpOnly, SameSite=Strict, Path=/ui, Secure
// over TLS). The token itself is never sent back to the browser. Every POST must come from the dashboard's own pages
// (Sec-Fetch-Site and Origin) and carry the session's CSRF token. Pages escape everything they show and carry a
// nonce-based CSP, frame-ancestors 'none', Referrer-Policy same-origin and Cache-Control no-store.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { getConnInfo } from '@hono/node-server/conninfo';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { adminTokenDigest } from '../../shared/admin-token.ts';
import type { Logger } from '../../shared/log.ts';
import type { GatewayAdmin } from '../config.ts';
import type { PodState } from '../route-builder.ts';
import { crossSiteRefusal, isTls, ownOrigin, securityHeaders, SignInLimiter } from './guard.ts';
import { csrfMatches, SessionStore, type Flash, type Session } from './sessions.ts';
import * as views from './views.ts';
import { BASE, type CertificateSummary, type Html, type LinkSummary, type LogEntry, type PodSummary, type RouteSummary } from './views.ts';

export { BASE as DASHBOARD_PATH } from './views.ts';
export const SESSION_COOKIE = 'podgate_ui';
/** Dashboard forms are a few fields. */
const FORM_LIMIT_BYTES = 16 * 1024;
const LOG_ENTRIES_SHOWN = 50;
const PROVISIONING_REFRESH_S = 2;
/** Issuing and renewing wait for the CA. */
const GATEWAY_TIMEOUT_MS = 120_000;
const NO_GATEWAY = 'No gateway admin API is configured: set GATEWAY_ADMIN_URL and GATEWAY_ADMIN_TOKEN (the gateway\'s own) to manage certificates here.';
/** States a pod passes through on its own: its pages reload until it settles. */
const TRANSITIONAL = new Set<string>(['pending', 'provisioning', 'starting', 'stopping', 'terminating'] satisfies PodState[]);

export interface DashboardDeps {
  /** The admin API (api.ts's app): the dashboard calls its handlers with the admin token. */
  api: { request(path: string, init: RequestInit): Response | Promise<Response> };
  adminToken: string;
  /** The orchestrator's logger: an unexpected error is one error line there, as the admin API writes its own. */
  logger: Logger;
  /** A gateway's certificates API; without it the certificates page says how to configure one. */
  gateway?: GatewayAdmin | undefined;
  sessions?: SessionStore;
  limiter?: SignInLimiter;
}

type Env = { Variables: { nonce: string; session: Session; form: Record<string, string> } };

/** An error answer of the admin API, shown on a page. */
class ApiFailure extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** A form field the dashboard itself cannot turn into an API request. */
class FormError extends Error {}

/** `app:3000, terminal:7681` -> services; the API validates names and ports further. */
export function parseServices(text: string): { name: string; port: number }[] {
  return text
    .split(/[\s,]+/)
    .filter((s) => s !== '')
    .map((item) => {
      const m = /^([^:]+):(\d{1,5})$/.exec(item);
      if (!m) throw new FormError(`services: ${JSON.stringify(item.slice(0, 50))} is not name:port`);
      return { name: m[1]!, port: Number(m[2]) };
    });
}

function clientAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'unknown'; // in-process requests (app.request) have no socket
  }
}

export function createDashboard(deps: DashboardDeps): Hono<Env> {
  const sessions = deps.sessions ?? new SessionStore();
  const limiter = deps.limiter ?? new SignInLimiter();
  const expected = adminTokenDigest(deps.adminToken);
  const app = new Hono<Env>();

  async function call<T = any>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await deps.api.request(path, {
      method,
      headers: { authorization: `Bearer ${deps.adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return answerOf<T>(res, 'the admin API');
  }

  /** The gateway's certificates API (GATEWAY_ADMIN_URL), with its token; JSON on every change, as it requires. */
  async function gatewayCall<T = any>(method: string, path: string, body?: unknown): Promise<T> {
    const gateway = deps.gateway;
    if (!gateway) throw new ApiFailure(404, 'not_found', NO_GATEWAY);
    let res: Response;
    try {
      res = await fetch(`${gateway.url}${path}`, {
        method,
        redirect: 'manual',
        signal: AbortSignal.timeout(GATEWAY_TIMEOUT_MS),
        headers: { authorization: `Bearer ${gateway.token}`, ...(method === 'GET' ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      const why = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
      throw new ApiFailure(502, 'gateway_unreachable', `the gateway admin API (GATEWAY_ADMIN_URL) did not answer: ${why}`);
    }
    return answerOf<T>(res, 'the gateway admin API');
  }

  async function answerOf<T>(res: Response, who: string): Promise<T> {
    const text = await res.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) throw new ApiFailure(res.status, json?.error?.code ?? 'error', json?.error?.message ?? `${who} answered ${res.status}`);
    return json as T;
  }

  const ctx = (c: Context<Env>, extra: Partial<views.PageContext> = {}): views.PageContext => {
    const session = c.get('session') as Session | undefined;
    const flash = session?.flash;
    if (session) session.flash = undefined;
    return { nonce: c.get('nonce'), csrf: session?.csrf, flash, ...extra };
  };
  const page = (c: Context<Env>, body: Html, status = 200) => c.html(body, status as ContentfulStatusCode);
  const refuse = (c: Context<Env>, status: number, message: string) => page(c, views.errorPage(ctx(c), status, message), status);

  /**
   * Run a change, remember its outcome for the next page, and send the browser there (post/redirect/get): `next`
   * on success, `failed` (default: `next`) when the API or the form refused it.
   */
  async function act(c: Context<Env>, next: string, fn: () => Promise<Flash>, failed = next): Promise<Response> {
    const session = c.get('session');
    try {
      session.flash = await fn();
      return c.redirect(next, 303);
    } catch (err) {
      if (!(err instanceof ApiFailure || err instanceof FormError)) throw err;
      session.flash = { kind: 'error', text: err.message };
      return c.redirect(failed, 303);
    }
  }

  app.onError((err, c) => {
    if (err instanceof ApiFailure) return refuse(c, err.status, err.message);
    deps.logger.error({ err: err instanceof Error ? err.stack : String(err), path: c.req.path }, 'dashboard: unexpected error');
    return refuse(c, 500, 'internal error');
  });

  app.use('*', async (c, next) => {
    const nonce = randomBytes(16).toString('base64');
    c.set('nonce', nonce);
    for (const [k, v] of Object.entries(securityHeaders(nonce))) c.header(k, v);
    await next();
  });

  // Every POST: from this dashboard's own pages, small, and (once signed in) with the session's CSRF token.
  app.post(
    '*',
    async (c, next) => {
      const why = crossSiteRefusal(
        { secFetchSite: c.req.header('sec-fetch-site'), origin: c.req.header('origin') },
        ownOrigin(c.req.url, c.req.header('host'), c.req.header('x-forwarded-proto')),
      );
      if (why) return refuse(c, 403, `cross-site request refused: ${why}`);
      await next();
    },
    bodyLimit({ maxSize: FORM_LIMIT_BYTES, onError: (c) => refuse(c as Context<Env>, 413, `a form is at most ${FORM_LIMIT_BYTES} bytes`) }),
    async (c, next) => {
      const body = await c.req.parseBody().catch(() => ({}));
      const form: Record<string, string> = {};
      for (const [k, v] of Object.entries(body)) if (typeof v === 'string') form[k] = v;
      c.set('form', form);
      await next();
    },
  );

  app.get('/sign-in', (c) => page(c, views.signInPage(ctx(c))));

  app.post('/sign-in', (c) => {
    const client = clientAddress(c);
    const wait = limiter.blockedFor(client);
    if (wait > 0) {
      c.header('retry-after', String(wait));
      return page(c, views.signInPage(ctx(c), `Too many failed sign-ins: try again in ${wait} s.`), 429);
    }
    const typed = c.get('form').token ?? '';
    if (!timingSafeEqual(adminTokenDigest(typed), expected)) {
      limiter.failed(client);
      return page(c, views.signInPage(ctx(c), 'That is not the admin token (ADMIN_TOKEN).'), 401);
    }
    const old = getCookie(c, SESSION_COOKIE);
    if (old) sessions.delete(old);
    const session = sessions.create();
    setCookie(c, SESSION_COOKIE, session.id, {
      path: BASE,
      httpOnly: true,
      sameSite: 'Strict',
      secure: isTls(c.req.url, c.req.header('x-forwarded-proto')),
      maxAge: Math.floor((session.expiresAt - Date.now()) / 1000),
    });
    return c.redirect(BASE, 303);
  });

  // Everything else needs a session; a POST also its CSRF token.
  app.use('*', async (c, next) => {
    const session = sessions.get(getCookie(c, SESSION_COOKIE));
    if (!session) {
      if (c.req.method === 'GET' || c.req.method === 'HEAD') return c.redirect(`${BASE}/sign-in`, 303);
      return refuse(c, 403, 'sign in first');
    }
    if (c.req.method === 'POST' && !csrfMatches(session, c.get('form')._csrf)) return refuse(c, 403, 'the form has no valid CSRF token: reload the page and try again');
    c.set('session', session);
    await next();
  });

  app.post('/sign-out', (c) => {
    sessions.delete(c.get('session').id);
    deleteCookie(c, SESSION_COOKIE, { path: BASE });
    return c.redirect(`${BASE}/sign-in`, 303);
  });

  app.get('/', async (c) => {
    const { pods } = await call<{ pods: PodSummary[] }>('GET', '/v1/pods');
    const refreshSeconds = pods.some((p) => TRANSITIONAL.has(p.status)) ? PROVISIONING_REFRESH_S : undefined;
    return page(c, views.podsPage(ctx(c, { refreshSeconds }), pods));
  });

  app.post('/pods', (c) => {
    const form = c.get('form');
    const slug = form.slug ?? '';
    return act(
      c,
      `${BASE}/pods/${encodeURIComponent(slug)}`,
      async () => {
        const services = parseServices(form.services ?? '');
        const spec = {
          slug,
          ...(services.length > 0 ? { services } : {}),
          ...(form.tier ? { tier: form.tier } : {}),
          access: { default: form.access ?? 'private', ports: {} },
        };
        // Without waiting: the pod's page follows its provisioning.
        await call('POST', '/v1/pods?wait=false', spec);
        return { kind: 'ok', text: `Pod ${slug} is being created.` };
      },
      BASE,
    );
  });

  const slugPath = (c: Context<Env>) => `/v1/pods/${encodeURIComponent(c.req.param('slug') ?? '')}`;
  const podPage = (c: Context<Env>) => `${BASE}/pods/${encodeURIComponent(c.req.param('slug') ?? '')}`;

  app.get('/pods/:slug', async (c) => {
    const api = slugPath(c);
    const [pod, links, logs] = await Promise.all([
      call<PodSummary>('GET', api),
      call<{ links: LinkSummary[] }>('GET', `${api}/links`).then(
        (r) => r.links,
        (err: unknown) => {
          // An orchestrator without the access API; any other failure is the page's.
          if (err instanceof ApiFailure && err.code === 'not_found') return undefined;
          throw err;
        },
      ),
      call<{ entries: LogEntry[] }>('GET', `${api}/logs?limit=${LOG_ENTRIES_SHOWN}`).then((r) => r.entries),
    ]);
    const refreshSeconds = TRANSITIONAL.has(pod.status) ? PROVISIONING_REFRESH_S : undefined;
    return page(c, views.podPage(ctx(c, { refreshSeconds }), pod, links, logs));
  });

  for (const op of ['start', 'stop', 'restart', 'sleep'] as const) {
    app.post(`/pods/:slug/${op}`, (c) =>
      act(c, podPage(c), async () => {
        const pod = await call<PodSummary>('POST', `${slugPath(c)}/${op}`);
        return { kind: 'ok', text: `Pod ${pod.slug} is ${pod.status}.` };
      }),
    );
  }

  app.get('/pods/:slug/delete', async (c) => {
    const pod = await call<PodSummary>('GET', slugPath(c));
    return page(c, views.deletePage(ctx(c), pod.slug));
  });

  app.post('/pods/:slug/delete', async (c) => {
    const slug = c.req.param('slug');
    return act(c, BASE, async () => {
      await call('DELETE', slugPath(c));
      return { kind: 'ok', text: `Pod ${slug} is deleted.` };
    });
  });

  app.post('/pods/:slug/links', (c) => {
    const form = c.get('form');
    return act(c, podPage(c), async () => {
      const body = {
        ...(form.port ? { port: /^\d{1,5}$/.test(form.port) ? Number(form.port) : form.port } : {}),
        ...(form.label ? { label: form.label } : {}),
        ...(form.expiresIn ? { expiresIn: /^\d+$/.test(form.expiresIn) ? Number(form.expiresIn) : form.expiresIn } : {}),
      };
      const link = await call<{ url: string }>('POST', `${slugPath(c)}/links`, body);
      return { kind: 'link', text: link.url };
    });
  });

  app.post('/pods/:slug/links/revoke-all', (c) =>
    act(c, podPage(c), async () => {
      await call('DELETE', `${slugPath(c)}/links`);
      return { kind: 'ok', text: 'Every link of the pod is revoked.' };
    }),
  );

  app.post('/pods/:slug/links/:id/revoke', (c) =>
    act(c, podPage(c), async () => {
      await call('DELETE', `${slugPath(c)}/links/${encodeURIComponent(c.req.param('id'))}`);
      return { kind: 'ok', text: `Link ${c.req.param('id')} is revoked.` };
    }),
  );

  app.get('/routes', async (c) => {
    const { routes } = await call<{ routes: RouteSummary[] }>('GET', '/v1/routes');
    return page(c, views.routesPage(ctx(c), routes));
  });

  app.get('/certificates', async (c) => {
    if (!deps.gateway) return page(c, views.certificatesPage(ctx(c), undefined, NO_GATEWAY));
    try {
      const { certificates } = await gatewayCall<{ certificates: CertificateSummary[] }>('GET', '/v1/certificates');
      return page(c, views.certificatesPage(ctx(c), certificates));
    } catch (err) {
      if (!(err instanceof ApiFailure)) throw err;
      return page(c, views.certificatesPage(ctx(c), undefined, err.message), 502);
    }
  });

  const certificates = `${BASE}/certificates`;
  const certificateApi = (c: Context<Env>) => `/v1/certificates/${encodeURIComponent(c.req.param('id') ?? '').replace(/\*/g, '%2A')}`;

  app.post('/certificates', (c) =>
    act(c, certificates, async () => {
      const names = (c.get('form').names ?? '').split(/[\s,]+/).filter((n) => n !== '');
      const cert = await gatewayCall<CertificateSummary>('POST', '/v1/certificates', { names });
      return { kind: 'ok', text: `Certificate ${cert.id} is issued (valid until ${cert.notAfter}).` };
    }),
  );

  app.post('/certificates/:id/renew', (c) =>
    act(c, certificates, async () => {
      const cert = await gatewayCall<CertificateSummary>('POST', `${certificateApi(c)}/renew`);
      return { kind: 'ok', text: `Certificate ${cert.id} is renewed (valid until ${cert.notAfter}).` };
    }),
  );

  app.post('/certificates/:id/delete', (c) =>
    act(c, certificates, async () => {
      await gatewayCall('DELETE', certificateApi(c));
      return { kind: 'ok', text: `Certificate ${c.req.param('id')} is deleted.` };
    }),
  );

  app.all('*', (c) => (c.req.path === `${BASE}/` ? c.redirect(BASE, 301) : refuse(c, 404, 'no such page')));
  return app;
}
