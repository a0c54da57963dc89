// The gateway admin listener's OpenAPI entries (shared/openapi.ts): health, readiness and metrics (open), and the
// certificates API (GATEWAY_ADMIN_TOKEN). The request body is the schema the certificate manager validates names
// with (tls/names.ts); the answers are defined here once and checked at compile time against what the API sends.
import { z } from 'zod';
import { CertificateRecordSchema, CertNameSchema } from '../shared/cert-store.ts';
import { describeRoute, errorResponses, jsonRequestBody, jsonResponse, OPEN, pathParameters } from '../shared/openapi.ts';
import type { CertificateView } from './tls/manager.ts';
import { CertNamesSchema } from './tls/names.ts';

export const GATEWAY_ADMIN_API_INFO = {
  title: 'podgate gateway admin API',
  version: '1',
  description: 'Health, readiness and Prometheus metrics (open), and the certificates API. Bearer token: GATEWAY_ADMIN_TOKEN.',
};

const StatusSchema = z.object({ status: z.string() });

export const CertificateViewSchema = CertificateRecordSchema.omit({ keyPem: true, certPem: true })
  .extend({
    status: z.enum(['valid', 'renewal-due', 'renewal-failing', 'expired']),
    renewAt: z.string(),
  })
  .meta({ id: 'Certificate', description: 'A certificate as the API shows it: never its key or PEM' });

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _view: Same<Omit<z.output<typeof CertificateViewSchema>, 'status'>, Omit<CertificateView, 'status'>> = true;
void _view;

// Other members of the body are ignored.
const IssueSchema = z.object({ names: CertNamesSchema }).meta({ id: 'IssueCertificate' });
/** The id is the certificate's first name, URL-encoded (`%2A` for `*`). */
const id = pathParameters({ id: CertNameSchema });
const changeErrors = errorResponses(400, 401, 404, 409, 415, 502);

export const adminDocs = {
  healthz: describeRoute({ summary: 'Liveness', ...OPEN, responses: { 200: jsonResponse('Alive: `{"status":"ok"}`', StatusSchema) } }),
  readyz: describeRoute({
    summary: 'Readiness: ready once the route table was read completely',
    ...OPEN,
    responses: { 200: jsonResponse('`{"status":"ready"}`', StatusSchema), 503: jsonResponse('`{"status":"starting"}`', StatusSchema) },
  }),
  metrics: describeRoute({
    summary: 'Prometheus metrics',
    ...OPEN,
    responses: { 200: { description: 'Prometheus text exposition format', content: { 'text/plain': { schema: { type: 'string' } } } } },
  }),
};

export const certificateDocs = {
  list: describeRoute({
    summary: 'Every certificate: names, validity, status, renewal failures',
    responses: { 200: jsonResponse('The certificates', z.object({ certificates: z.array(CertificateViewSchema) })), ...errorResponses(401, 503) },
  }),
  issue: describeRoute({
    summary: 'Issue a certificate now (answers once the CA has issued); its first name is its id',
    requestBody: jsonRequestBody(IssueSchema),
    responses: { 201: jsonResponse('Issued', CertificateViewSchema), ...errorResponses(400, 401, 409, 415, 502) },
  }),
  get: describeRoute({ summary: 'One certificate', parameters: id, responses: { 200: jsonResponse('The certificate', CertificateViewSchema), ...errorResponses(401, 404) } }),
  renew: describeRoute({ summary: 'Renew now', parameters: id, responses: { 200: jsonResponse('Renewed', CertificateViewSchema), ...changeErrors } }),
  delete: describeRoute({ summary: 'Delete a certificate', parameters: id, responses: { 204: { description: 'Deleted' }, ...changeErrors } }),
};
