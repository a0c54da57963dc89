// Admin API for certificates, mounted on the admin listener (127.0.0.1 by default):
//   GET    /v1/certificates              list: names, expiry, status, renewal failures (never keys or PEM)
//   POST   /v1/certificates {names}      issue now (synchronous: answers once the CA has issued)
//   GET    /v1/certificates/:id          one certificate (id = its first name, URL-encoded: %2A for *)
//   POST   /v1/certificates/:id/renew    renew now
//   DELETE /v1/certificates/:id
import { Hono, type Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { toHttpError, ValidationError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { CertificateManager } from './manager.ts';

/** Requests larger than this are not certificate requests. */
const MAX_BODY_BYTES = 64 * 1024;

function answerError(c: Context, err: unknown, log: Logger) {
  const e = toHttpError(err);
  if (e.status >= 500) log.warn({ err: err instanceof Error ? err.message : String(err) }, 'certificates API error');
  for (const [k, v] of Object.entries(e.headers)) c.header(k, v);
  return c.json({ error: { code: e.code, message: e.message } }, e.status as ContentfulStatusCode);
}

async function readNames(c: Context): Promise<unknown> {
  const length = Number(c.req.header('content-length') ?? 0);
  if (length > MAX_BODY_BYTES) throw new ValidationError('body', `larger than ${MAX_BODY_BYTES} bytes`);
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

export function createCertificatesApi(manager: CertificateManager, log: Logger): Hono {
  const app = new Hono();
  app.get('/v1/certificates', async (c) => {
    try {
      return c.json({ certificates: (await manager.list()).map((r) => manager.view(r)) });
    } catch (err) {
      return answerError(c, err, log);
    }
  });
  app.post('/v1/certificates', async (c) => {
    try {
      const record = await manager.issue(await readNames(c), 'admin');
      return c.json(manager.view(record), 201);
    } catch (err) {
      return answerError(c, err, log);
    }
  });
  app.get('/v1/certificates/:id', async (c) => {
    try {
      return c.json(manager.view(await manager.get(c.req.param('id'))));
    } catch (err) {
      return answerError(c, err, log);
    }
  });
  app.post('/v1/certificates/:id/renew', async (c) => {
    try {
      return c.json(manager.view(await manager.renew(c.req.param('id'))));
    } catch (err) {
      return answerError(c, err, log);
    }
  });
  app.delete('/v1/certificates/:id', async (c) => {
    try {
      await manager.delete(c.req.param('id'));
      return c.body(null, 204);
    } catch (err) {
      return answerError(c, err, log);
    }
  });
  return app;
}
