// The admin listener (127.0.0.1 by default): health, readiness, metrics, and whatever the caller mounts
// (e.g. the certificates API). The first three stay open for probes and scrapers and change nothing; a mounted
// API brings its own authentication (the certificates API takes GATEWAY_ADMIN_TOKEN).
// The OpenAPI document of the listener is part of the mounted /v1 API: served at /v1/openapi.json only when there
// is one, behind its guard of /v1/* (the certificates API's bearer token; 404 naming GATEWAY_ADMIN_TOKEN while that
// is unset), never on a listener whose /v1 nobody guards.
import { Hono } from 'hono';
import type { Registry } from 'prom-client';
import { OPENAPI_PATH, openApiHandler, openApiRouteDoc } from '../shared/openapi.ts';
import { adminDocs as docs, GATEWAY_ADMIN_API_INFO } from './admin-openapi.ts';

export interface AdminSources {
  ready: () => boolean;
  registry: Registry;
  /** Extra routes (the TLS module mounts /v1/certificates here). */
  mount?: (app: Hono) => void;
}

export function createAdminApp(sources: AdminSources): Hono {
  const app = new Hono();
  app.get('/healthz', docs.healthz, (c) => c.json({ status: 'ok' }));
  // Ready once the route table was read completely at least once; before that every pod would 404.
  app.get('/readyz', docs.readyz, (c) => (sources.ready() ? c.json({ status: 'ready' }) : c.json({ status: 'starting' }, 503)));
  app.get('/metrics', docs.metrics, async (c) => c.body(await sources.registry.metrics(), 200, { 'content-type': sources.registry.contentType }));
  if (sources.mount) {
    sources.mount(app);
    // Registered after the mount, so the mounted API's /v1/* guard runs first.
    app.get(OPENAPI_PATH, openApiRouteDoc, openApiHandler(app, GATEWAY_ADMIN_API_INFO));
  }
  return app;
}
