// Admin API for certificates, mounted on the admin listener (127.0.0.1 by default):
//   GET    /v1/certificates              list: names, expiry, status, renewal failures (never keys or PEM)
//   POST   /v1/certificates {names}      issue now (synchronous: answers once the CA has issued)
//   GET    /v1/certificates/:id          one certificate (id = its first name, URL-encoded: %2A for *)
//   POST   /v1/certificates/:id/renew    renew now
//   DELETE /v1/certificates/:id
// Every route takes the admin bearer token (GATEWAY_ADMIN_TOKEN, the orchestrator's scheme: shared/admin-token.ts),
// and every request but GET/HEAD must say `Content-Type: application/json`. A web page cannot send either in a
// no-cors request (both need a CORS preflight, which this API never answers), so a browser on this machine
// cannot issue, renew or delete certificates, even with a body the parser would take.
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { adminTokenDigest, tokenMatches } from '../../shared/admin-token.ts';
import { toHttpError, UnauthorizedError, UnsupportedMediaTypeError, ValidationError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { certificateDocs as docs } from '../admin-openapi.ts';
import type { CertificateManager } from './manager.ts';

/** Requests larger than this are not certificate requests. */
const MAX_BODY_BYTES = 64 * 1024;

function answerError(c: Context, err: unknown, log: Logger) {
  const e = toHttpError(err);
  if (e.status >= 500) log.warn({ err: err instanceof Error ? err.message : String(err) }, 'certificates API error');
  for (const [k, v] of Object.entries(e.headers)) c.header(k, v);
  return c.json({ error: { code: e.code, message: e.message } }, e.status as ContentfulStatusCode);
}

/** `application/json`, with parameters (charset) or without; nothing else (no `+json`, no `json-seq`). */
const JSON_MEDIA_TYPE = /^application\/json\s*(?:;|$)/i;
const READ_METHODS = new Set(['GET', 'HEAD']);

/** 401 without the token, then 415 for a request that may change something and is not declared JSON. */
function adminGuard(adminToken: string, log: Logger): MiddlewareHandler {
  const expected = adminTokenDigest(adminToken);
  return async (c, next) => {
    if (!tokenMatches(c.req.header('authorization'), expected)) {
      c.header('www-authenticate', 'Bearer');
      return answerError(c, new UnauthorizedError('a valid bearer token (GATEWAY_ADMIN_TOKEN) is required'), log);
    }
    if (!READ_METHODS.has(c.req.method) && !JSON_MEDIA_TYPE.test(c.req.header('content-type') ?? '')) {
      return answerError(c, new UnsupportedMediaTypeError('requests other than GET must be sent as Content-Type: application/json'), log);
    }
    await next();
  };
}

async function readNames(c: Context): Promise<unknown> {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    throw new ValidationError('body', 'must be JSON: {"names": ["host.example.com", "*.example.com"]}');
  }
  if (typeof body !== 'object' || body === null || !('names' in body)) {
    throw new ValidationError('names', 'required: an array of host names');
  }
  return (body as { names: unknown }).names;
}

export function createCertificatesApi(manager: CertificateManager, log: Logger, adminToken: string): Hono {
  const app = new Hono();
  app.use('/v1/*', adminGuard(adminToken, log));
  // Counts the bytes as they arrive, so a chunked body without Content-Length is bounded too.
  app.use(
    '/v1/*',
    bodyLimit({ maxSize: MAX_BODY_BYTES, onError: (c) => answerError(c, new ValidationError('body', `larger than ${MAX_BODY_BYTES} bytes`), log) }),
  );
  app.get('/v1/certificates', docs.list, async (c) => {
    try {
      return c.json({ certificates: (await manager.list()).map((r) => manager.view(r)) });
    } catch (err) {
      return answerError(c, err, log);
    }
  });
  app.post('/v1/certificates', docs.issue, async (c) => {
    try {
      const record = await manager.issue(await readNames(c), 'admin');
      return c.json(manager.view(record), 201);
    } catch (err) {
      return answerError(c, err, log);
    }
  });
  app.get('/v1/certificates/:id', docs.get, async (c) => {
    try {
      return c.json(manager.view(await manager.get(c.req.param('id'))));
    } catch (err) {
      return answerError(c, err, log);
    }
  });
  app.post('/v1/certificates/:id/renew', docs.renew, async (c) => {
    try {
      return c.json(manager.view(await manager.renew(c.req.param('id'))));
    } catch (err) {
      return answerError(c, err, log);
    }
  });
  app.delete('/v1/certificates/:id', docs.delete, async (c) => {
    try {
      await manager.delete(c.req.param('id'));
      return c.body(null, 204);
    } catch (err) {
      return answerError(c, err, log);
    }
  });
  return app;
}

/**
 * The certificates API where it can be served: with no admin token configured it is not served at all, and every
 * /v1 path (the API and the OpenAPI document) answers 404 saying which setting turns it on (health, readiness and
 * metrics are unaffected).
 */
export function certificatesAdmin(manager: CertificateManager, log: Logger, adminToken: string | undefined): Hono {
  if (adminToken !== undefined) return createCertificatesApi(manager, log, adminToken);
  log.warn('GATEWAY_ADMIN_TOKEN is not set: the certificates API (/v1/certificates, npm run certs) is off');
  const off = new Hono();
  const answer = (c: Context) =>
    c.json({ error: { code: 'not_found', message: 'the certificates API is off: set GATEWAY_ADMIN_TOKEN on the gateway to serve it' } }, 404);
  off.all('/v1/*', answer);
  return off;
}
