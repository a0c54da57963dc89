// The admin listener (127.0.0.1 by default): health, readiness, metrics, and whatever the caller mounts
// (e.g. the certificates API). The first three stay open for probes and scrapers and change nothing; a mounted
// API brings its own authentication (the certificates API takes GATEWAY_ADMIN_TOKEN).
import { Hono } from 'hono';
import type { Registry } from 'prom-client';

export interface AdminSources {
  ready: () => boolean;
  registry: Registry;
  /** Extra routes (the TLS module mounts /v1/certificates here). */
  mount?: (app: Hono) => void;
}

export function createAdminApp(sources: AdminSources): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  // Ready once the route table was read completely at least once; before that every pod would 404.
  app.get('/readyz', (c) => (sources.ready() ? c.json({ status: 'ready' }) : c.json({ status: 'starting' }, 503)));
  app.get('/metrics', async (c) => c.body(await sources.registry.metrics(), 200, { 'content-type': sources.registry.contentType }));
  sources.mount?.(app);
  return app;
}
