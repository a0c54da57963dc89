// OpenAPI 3.1 documents for the admin APIs, generated (hono-openapi) from the zod schemas the APIs validate with.
// Each route carries a describeRoute() entry: documentation only, it validates nothing, so every answer stays the
// API's own (parseOrThrow and toHttpError). The document is built from the app's route table on the first request,
// so a route without an entry is missing from it (a test checks that none is).
import type { Context, Hono } from 'hono';
import { describeRoute, generateSpecs, resolver, type DescribeRouteOptions } from 'hono-openapi';
import type { OpenAPIV3_1 } from 'openapi-types';
import { z } from 'zod';

export type OpenApiDocument = OpenAPIV3_1.Document;

/** Where each admin listener serves its document, under /v1 and so behind the same bearer token as the rest. */
export const OPENAPI_PATH = '/v1/openapi.json';
export const BEARER_SCHEME = 'bearerAuth';

/** Every error answer of both admin APIs (shared/errors.ts toHttpError). */
export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().describe('Stable and machine-readable: `invalid_request`, `unauthorized`, `pod_not_found`, ...'),
      message: z.string().describe('For people: what is wrong, naming the setting or field'),
      field: z.string().optional().describe('The request field a 400 is about (`services[1].port`, `query.limit`, `body`)'),
    }),
  })
  .meta({ id: 'Error', description: 'Every error: `{"error":{"code","message","field"?}}`' });

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid request: `field` names what is wrong',
  401: 'No valid bearer token (answered with `WWW-Authenticate: Bearer`)',
  404: 'No such object',
  409: 'Conflicts with an operation in progress',
  415: 'A change not sent as `Content-Type: application/json`',
  429: 'Too many requests',
  500: 'Internal error (logged; the answer says nothing more)',
  502: 'An upstream (Docker, the pod, the CA) failed',
  503: 'Not available now (`Retry-After` when it will be)',
};

/** A JSON answer whose body the schema describes (as the API sends it: zod's output side). */
export function jsonResponse(description: string, schema: z.ZodType) {
  return { description, content: { 'application/json': { schema: resolver(schema, { options: { io: 'output' } }) } } };
}

/** A JSON request body as the API accepts it (zod's input side: defaults optional, transforms' inputs). */
export function jsonRequestBody(schema: z.ZodType, required = true) {
  return { required, content: { 'application/json': { schema: resolver(schema) } } };
}

/** Error answers for the given statuses, each the Error shape. */
export function errorResponses(...statuses: number[]) {
  return Object.fromEntries(statuses.map((s) => [s, jsonResponse(ERROR_DESCRIPTIONS[s] ?? 'Error', ErrorSchema)]));
}

/** A JSON Schema (2020-12, what OpenAPI 3.1 uses) of the accepted input of one zod schema, for a parameter. */
// (openapi-types gives a 3.1 parameter the 3.0 schema type; the value is a 3.1 schema.)
function inputJsonSchema(schema: z.ZodType): OpenAPIV3_1.ParameterObject['schema'] {
  const { $schema: _dialect, ...json } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return json as OpenAPIV3_1.ParameterObject['schema'];
}

/** Path parameters from a zod schema per name. */
export function pathParameters(params: Record<string, z.ZodType>): OpenAPIV3_1.ParameterObject[] {
  return Object.entries(params).map(([name, schema]) => ({ in: 'path', name, required: true, schema: inputJsonSchema(schema) }));
}

/** Query parameters from the zod object the handler parses the query with. */
export function queryParameters(schema: z.ZodObject): OpenAPIV3_1.ParameterObject[] {
  return Object.entries(schema.shape).map(([name, field]) => {
    const s = field as z.ZodType;
    return { in: 'query', name, required: !s.safeParse(undefined).success, schema: inputJsonSchema(s) };
  });
}

/** Marks an operation as open to anyone (no bearer token): health, readiness and metrics. */
export const OPEN: Pick<DescribeRouteOptions, 'security'> = { security: [] };

export { describeRoute };

export interface DocumentInfo {
  title: string;
  version: string;
  description: string;
  /** Schemas no operation uses but readers of the document need (the route table's entries), by component name. */
  schemas?: Record<string, z.ZodType>;
}

/**
 * The document of `app`'s documented routes. The bearer scheme is the default of every operation; the open ones
 * say `security: []`.
 */
export async function openApiDocument(app: Hono, { schemas = {}, ...info }: DocumentInfo): Promise<OpenApiDocument> {
  const doc = (await generateSpecs(app, {
    // The document's own path ends in `.json`, which the generator would otherwise skip as a static file.
    excludeStaticFile: false,
    documentation: {
      info,
      components: {
        schemas: Object.fromEntries(Object.entries(schemas).map(([name, schema]) => [name, inputJsonSchema(schema) as OpenAPIV3_1.SchemaObject])),
        securitySchemes: {
          [BEARER_SCHEME]: { type: 'http', scheme: 'bearer', description: 'The admin token, as `Authorization: Bearer <token>`' },
        },
      },
      security: [{ [BEARER_SCHEME]: [] }],
    },
  })) as OpenApiDocument;
  // An empty list of tags (none are used) is noise to validators.
  if (doc.tags?.length === 0) delete doc.tags;
  return doc;
}

/** The handler serving `app`'s document: built once, on the first request (after every route is registered). */
export function openApiHandler(app: Hono, info: DocumentInfo) {
  let doc: Promise<OpenApiDocument> | undefined;
  return async (c: Context) => {
    doc ??= openApiDocument(app, info).catch((err: unknown) => {
      doc = undefined;
      throw err;
    });
    return c.json(await doc);
  };
}

/** The documentation entry of the document route itself. */
export const openApiRouteDoc = describeRoute({
  summary: 'This OpenAPI 3.1 document',
  responses: {
    200: { description: 'The document (application/json)', content: { 'application/json': { schema: { type: 'object' } } } },
    ...errorResponses(401),
  },
});
