// The admin API (hono). Bearer token on every /v1 route; every input validated with zod and every error answered
// through shared/errors.ts toHttpError, as {"error":{"code","message","field"?}}.
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import type { Registry } from 'prom-client';
import { bodyLimit } from 'hono/body-limit';
import { adminTokenDigest, tokenMatches } from '../shared/admin-token.ts';
import { PodgateError, toHttpError, UnauthorizedError, ValidationError, NotFoundError } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { OPENAPI_PATH, openApiHandler, openApiRouteDoc } from '../shared/openapi.ts';
import { SlugSchema } from '../shared/route.ts';
import { allRoutes, type RouteStore } from '../shared/route-store.ts';
import type { PodService } from './pods.ts';
import type { Reconciler } from './reconcile.ts';
import type { GatewayAdmin } from './config.ts';
import { docs, LogQuerySchema, ORCHESTRATOR_API_INFO, WaitQuerySchema } from './openapi.ts';
import { parseOrThrow } from './spec.ts';
import { createDashboard, DASHBOARD_PATH } from './ui/dashboard.ts';

/** A pod spec is small; anything bigger is a mistake or an attack. */
export const MAX_BODY_BYTES = 1024 * 1024;

export interface ApiDeps {
  pods: PodService;
  routes: RouteStore;
  reconciler: Reconciler | undefined;
  adminToken: string;
  /** Access links and visibility (access-api.ts), under the same bearer token and error answers. */
  accessApi?: Hono;
  /** A gateway's certificates API, shown by the dashboard. */
  gatewayAdmin?: GatewayAdmin;
  /** Where an unexpected error (a bug, answered as an opaque 500) is logged. */
  logger: Logger;
  /** Served at GET /metrics, behind the bearer token. */
  metrics?: Registry;
}

/** The request body as JSON; an empty body is `{}`, anything unparsable a 400 naming `body`. */
export async function jsonBody(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new ValidationError('body', 'not valid JSON');
  }
}

function slugParam(c: Context): string {
  return parseOrThrow(SlugSchema, c.req.param('slug'), 'slug');
}

export function createApi(deps: ApiDeps): Hono {
  const { pods, routes } = deps;
  const expected = adminTokenDigest(deps.adminToken);
  const app = new Hono();

  app.onError((err, c) => {
    const e = toHttpError(err);
    const field = err instanceof ValidationError ? { field: err.field } : {};
    for (const [k, v] of Object.entries(e.headers)) c.header(k, v);
    if (!(err instanceof PodgateError)) deps.logger.error({ err: err instanceof Error ? err.stack : String(err), path: c.req.path }, 'orchestrator api: unexpected error');
    return c.json({ error: { code: e.code, message: e.message, ...field } }, e.status as 400);
  });
  app.notFound(() => {
    throw new NotFoundError('no such endpoint');
  });

  app.get('/healthz', docs.healthz, (c) => c.json({ ok: true }));

  const bearer: MiddlewareHandler = async (c, next) => {
    if (!tokenMatches(c.req.header('authorization'), expected)) {
      c.header('www-authenticate', 'Bearer');
      throw new UnauthorizedError('a valid bearer token (ADMIN_TOKEN) is required');
    }
    await next();
  };
  app.use('/v1/*', bearer);
  // Behind the token too: the admin listener may be reachable from more than this host (ORCHESTRATOR_BIND), and a
  // Prometheus scrape sends one as easily (`authorization: { credentials: ... }`).
  const registry = deps.metrics;
  if (registry) app.get('/metrics', docs.metrics, bearer, async (c) => c.body(await registry.metrics(), 200, { 'content-type': registry.contentType }));
  app.use(
    '/v1/*',
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        throw new ValidationError('body', `larger than ${MAX_BODY_BYTES} bytes`);
      },
    }),
  );

  app.post('/v1/pods', docs.createPod, async (c) => {
    const { wait } = parseOrThrow(WaitQuerySchema, c.req.query(), 'query');
    const pod = await pods.create(await jsonBody(c), { wait: wait === 'true' });
    return c.json(pod, wait === 'true' ? 201 : 202);
  });
  app.get('/v1/templates', docs.templates, (c) => c.json({ templates: pods.templates() }));
  app.get('/v1/pods', docs.listPods, (c) => c.json({ pods: pods.list() }));
  app.get('/v1/pods/:slug', docs.getPod, (c) => c.json(pods.get(slugParam(c))));
  app.post('/v1/pods/:slug/start', docs.startPod, async (c) => c.json(await pods.start(slugParam(c))));
  app.post('/v1/pods/:slug/stop', docs.stopPod, async (c) => c.json(await pods.stop(slugParam(c))));
  app.post('/v1/pods/:slug/restart', docs.restartPod, async (c) => c.json(await pods.restart(slugParam(c))));
  app.post('/v1/pods/:slug/sleep', docs.sleepPod, async (c) => c.json(await pods.sleep(slugParam(c), { by: 'admin' })));
  app.post('/v1/pods/:slug/wake', docs.wakePod, async (c) => c.json(await pods.wake(slugParam(c), 'admin')));
  app.delete('/v1/pods/:slug', docs.deletePod, async (c) => {
    const slug = slugParam(c);
    await pods.delete(slug);
    return c.body(null, 204);
  });
  app.post('/v1/pods/:slug/exec', docs.exec, async (c) => {
    const slug = slugParam(c);
    return c.json(await pods.exec(slug, await jsonBody(c)));
  });
  app.get('/v1/pods/:slug/logs', docs.logs, async (c) => {
    const slug = slugParam(c);
    const { limit } = parseOrThrow(LogQuerySchema, c.req.query(), 'query');
    return c.json({ entries: await pods.logs(slug, limit) });
  });
  // Without the pods' router keys: they are for the gateways (which read the route table itself), not for display.
  app.get('/v1/routes', docs.routes, async (c) =>
    c.json({ routes: (await allRoutes(routes)).sort((a, b) => a.slug.localeCompare(b.slug)).map(({ routerKey: _key, ...route }) => route) }),
  );
  app.get('/v1/reconcile', docs.lastReconcile, (c) => c.json({ last: deps.reconciler?.last ?? null }));
  app.post('/v1/reconcile', docs.reconcile, async (c) => {
    if (!deps.reconciler) throw new NotFoundError('reconcile is not running');
    return c.json(await deps.reconciler.reconcile());
  });
  // Under /v1, so behind the bearer token like every other admin call (it holds no secret, but the admin surface
  // stays closed to anyone without the token).
  app.get(OPENAPI_PATH, openApiRouteDoc, openApiHandler(app, ORCHESTRATOR_API_INFO));
  if (deps.accessApi) app.route('/', deps.accessApi);
  app.route(DASHBOARD_PATH, createDashboard({ api: app, adminToken: deps.adminToken, logger: deps.logger, gateway: deps.gatewayAdmin }));
  return app;
}
