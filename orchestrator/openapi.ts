// The orchestrator admin API's OpenAPI entries (shared/openapi.ts). Request bodies and parameters are the schemas the
// handlers parse with (spec.ts, pods.ts, shared/route.ts; the access routes' entries are in access-api.ts); answers without a schema of their own are
// defined here once, and checked at compile time against the types the handlers return.
import { z } from 'zod';
import { describeRoute, errorResponses, jsonRequestBody, jsonResponse, OPEN, pathParameters, queryParameters } from '../shared/openapi.ts';
import { RouteSchema, SlugSchema } from '../shared/route.ts';
import { ExecLogEntrySchema } from './exec-log.ts';
import { ExecRequestSchema, type ExecOutcome, type PodView, type TemplateView } from './pods.ts';
import type { ReconcileReport } from './reconcile.ts';
import { POD_STATES } from './route-builder.ts';
import { PodSpecSchema } from './spec.ts';
import { TEMPLATE_NAMES } from './templates.ts';

export const ORCHESTRATOR_API_INFO = {
  title: 'podgate orchestrator admin API',
  version: '1',
  description: 'Pods, access links and visibility, the route table and reconcile. Bearer token: ADMIN_TOKEN.',
  // The route table's entry as every reader validates it (README "The route table"): GET /v1/routes shows RouteView.
  schemas: { Route: RouteSchema },
};

export const MAX_LOG_LIMIT = 1000;
export const DEFAULT_LOG_LIMIT = 100;
export const LogQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(MAX_LOG_LIMIT).default(DEFAULT_LOG_LIMIT),
});
export const WaitQuerySchema = z.object({ wait: z.enum(['true', 'false']).default('true') });

const ServiceViewSchema = z.object({ name: z.string(), port: z.number().int(), url: z.string() });
export const PodViewSchema = z
  .object({
    slug: SlugSchema,
    name: z.string(),
    status: z.enum(POD_STATES),
    host: z.string(),
    hostPort: z.number().int().nullable(),
    image: z.string(),
    template: z.enum(TEMPLATE_NAMES),
    tier: z.string(),
    defaultPort: z.number().int(),
    /** The idle timeout that applies (the spec's own, else POD_IDLE_TIMEOUT), or `off`. */
    idleTimeout: z.string(),
    generation: z.number().int(),
    createdAt: z.string(),
    updatedAt: z.string(),
    error: z.string().nullable(),
    labels: z.record(z.string(), z.string()),
    /** The pod's default port through the gateway. */
    url: z.string(),
    services: z.array(ServiceViewSchema),
  })
  .meta({ id: 'Pod' });

export const TemplateViewSchema = z
  .object({
    name: z.enum(TEMPLATE_NAMES),
    description: z.string(),
    image: z.string(),
    services: z.array(z.object({ name: z.string(), port: z.number().int() })),
    defaultPort: z.number().int(),
    environment: z.record(z.string(), z.string()),
  })
  .meta({ id: 'Template' });

export const ExecOutcomeSchema = ExecLogEntrySchema.omit({ id: true }).extend({ timedOut: z.boolean() }).meta({ id: 'ExecOutcome' });
const ExecLogEntry = ExecLogEntrySchema.meta({ id: 'ExecLogEntry' });

/** A route as `GET /v1/routes` shows it: without the router key, which is for gateways only. */
export const RouteViewSchema = RouteSchema.omit({ routerKey: true }).meta({ id: 'RouteView' });

export const ReconcileReportSchema = z
  .object({
    at: z.string(),
    containers: z.number().int(),
    adopted: z.array(z.string()),
    changed: z.array(z.string()),
    republished: z.array(z.string()),
    removedRoutes: z.array(z.string()),
    forgotten: z.array(z.string()),
    claimedPorts: z.array(z.number().int()),
    releasedPorts: z.array(z.number().int()),
    orphans: z.array(z.object({ kind: z.enum(['container', 'network', 'volume']), name: z.string(), reason: z.string(), removed: z.boolean() })),
    /** This host's route-table epoch after the pass; absent when the store lost data during it. */
    epoch: z.number().int().optional(),
  })
  .meta({ id: 'ReconcileReport' });

// The answers' schemas describe what the handlers send: a change of PodView, ExecOutcome or ReconcileReport that
// the document does not follow stops the build here.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _podView: Same<z.output<typeof PodViewSchema>, PodView> = true;
const _exec: Same<z.output<typeof ExecOutcomeSchema>, ExecOutcome> = true;
const _report: Same<z.output<typeof ReconcileReportSchema>, ReconcileReport> = true;
const _template: Same<z.output<typeof TemplateViewSchema>, TemplateView> = true;
void [_podView, _exec, _report, _template];

const slug = pathParameters({ slug: SlugSchema });
const podErrors = errorResponses(400, 401, 404, 409, 503);

export const docs = {
  healthz: describeRoute({ summary: 'Liveness', ...OPEN, responses: { 200: jsonResponse('Alive', z.object({ ok: z.literal(true) })) } }),
  createPod: describeRoute({
    summary: 'Create a pod from a spec',
    description: 'With `wait=true` (the default) it answers once the pod runs and its services answer (201); with `wait=false` at once (202).',
    parameters: queryParameters(WaitQuerySchema),
    requestBody: jsonRequestBody(PodSpecSchema.meta({ id: 'PodSpec' })),
    responses: {
      201: jsonResponse('Created and running', PodViewSchema),
      202: jsonResponse('Accepted (wait=false): provisioning', PodViewSchema),
      ...errorResponses(400, 401, 409, 429, 502, 503),
    },
  }),
  templates: describeRoute({
    summary: 'The stack templates a spec may name (`template`)',
    responses: { 200: jsonResponse('The templates', z.object({ templates: z.array(TemplateViewSchema) })), ...errorResponses(401) },
  }),
  listPods: describeRoute({ summary: 'Every pod', responses: { 200: jsonResponse('The pods', z.object({ pods: z.array(PodViewSchema) })), ...errorResponses(401) } }),
  getPod: describeRoute({ summary: 'One pod', parameters: slug, responses: { 200: jsonResponse('The pod', PodViewSchema), ...errorResponses(400, 401, 404) } }),
  startPod: describeRoute({ summary: 'Start a stopped or failed pod, or wake a sleeping one', parameters: slug, responses: { 200: jsonResponse('The pod', PodViewSchema), ...podErrors, ...errorResponses(502) } }),
  stopPod: describeRoute({ summary: 'Stop a pod (its route stays: gateways answer 503)', parameters: slug, responses: { 200: jsonResponse('The pod', PodViewSchema), ...podErrors } }),
  restartPod: describeRoute({ summary: 'Restart a pod', parameters: slug, responses: { 200: jsonResponse('The pod', PodViewSchema), ...podErrors, ...errorResponses(502) } }),
  sleepPod: describeRoute({
    summary: 'Put a running pod to sleep',
    description: 'Its route says `sleeping` (gateways hold requests and ask for a wake), then its container stops; its filesystem, workspace and host port stay. 409 unless running.',
    parameters: slug,
    responses: { 200: jsonResponse('The pod, sleeping', PodViewSchema), ...podErrors },
  }),
  wakePod: describeRoute({
    summary: 'Wake a sleeping pod; answers once it runs and its services answer',
    description: 'Like start. 409 unless sleeping (running answers the pod as it is). A wake that fails puts the pod back to sleep, with the reason in `error` (502).',
    parameters: slug,
    responses: { 200: jsonResponse('The pod, running', PodViewSchema), ...podErrors, ...errorResponses(502) },
  }),
  metrics: describeRoute({
    summary: 'Prometheus metrics: pods asleep, sleeps, wakes and wake duration',
    responses: { 200: { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } }, ...errorResponses(401) },
  }),
  deletePod: describeRoute({ summary: 'Delete a pod: container, network, port and route', parameters: slug, responses: { 204: { description: 'Deleted' }, ...podErrors } }),
  exec: describeRoute({
    summary: 'Run a command in the pod, recorded in its log',
    parameters: slug,
    requestBody: jsonRequestBody(ExecRequestSchema.meta({ id: 'ExecRequest' })),
    responses: { 200: jsonResponse('Finished or timed out (`timedOut`)', ExecOutcomeSchema), ...podErrors },
  }),
  logs: describeRoute({
    summary: "The pod's exec/provisioning log, oldest first",
    parameters: [...slug, ...queryParameters(LogQuerySchema)],
    responses: { 200: jsonResponse('The entries', z.object({ entries: z.array(ExecLogEntry) })), ...errorResponses(400, 401, 404) },
  }),
  routes: describeRoute({
    summary: 'The route table as gateways see it (without router keys)',
    responses: { 200: jsonResponse('Routes by slug', z.object({ routes: z.array(RouteViewSchema) })), ...errorResponses(401, 503) },
  }),
  lastReconcile: describeRoute({
    summary: 'The last reconcile report',
    responses: { 200: jsonResponse('null before the first pass', z.object({ last: ReconcileReportSchema.nullable() })), ...errorResponses(401) },
  }),
  reconcile: describeRoute({
    summary: 'Run a reconcile pass now',
    responses: { 200: jsonResponse('Its report', ReconcileReportSchema), ...errorResponses(401, 404, 503) },
  }),
};
