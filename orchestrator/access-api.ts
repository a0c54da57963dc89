// Access links and visibility in the admin API, a hono sub-app mounted by api.ts under its
// bearer-token middleware and error handler:
//   POST   /v1/pods/:slug/links      {port?, expiresIn?, label?} -> 201 {id, url, token, expiresAt, ...}
//   GET    /v1/pods/:slug/links      -> {links: [...]}  (never the tokens: they are shown once, at creation)
//   DELETE /v1/pods/:slug/links/:id  -> 204, or 404 for an unknown or expired link
//   DELETE /v1/pods/:slug/links      -> 204: every link of the pod issued so far stops working
//   GET    /v1/pods/:slug/access     -> {access}
//   PUT    /v1/pods/:slug/access     {default, ports} -> {access}: republished as a new route generation, so
//                                    every gateway enforces it within its route-event latency.
// Tokens are signed here (shared/access-token.ts) with the secret the gateways verify with; revocations go to the
// access store, whose events reach every gateway.
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { AccessLinkSchema, type AccessStore } from '../shared/access-store.ts';
import { AccessTokens, LinkIdSchema, newLinkId, TOKEN_QUERY } from '../shared/access-token.ts';
import { NotFoundError } from '../shared/errors.ts';
import { describeRoute, errorResponses, jsonRequestBody, jsonResponse, pathParameters } from '../shared/openapi.ts';
import { AccessPolicySchema, PortSchema, SlugSchema, type AccessPolicy } from '../shared/route.ts';
import { jsonBody } from './api.ts';
import { parseDuration } from './config.ts';
import { podUrl, type PodService, type PodServiceConfig } from './pods.ts';
import { parseOrThrow } from './spec.ts';

export const DEFAULT_LINK_LIFETIME_S = 7 * 24 * 3600;
/** Links are for sharing a dev pod, not standing credentials: a year at most. */
export const MAX_LINK_LIFETIME_S = 365 * 24 * 3600;

/** `3600` (seconds) or `30m`, `12h`, `7d`. */
const LifetimeSchema = z
  .union([z.number().int().positive(), z.string()])
  .transform((v, ctx) => {
    const seconds = typeof v === 'number' ? v : (parseDuration(v) ?? NaN) / 1000;
    if (!Number.isInteger(seconds) || seconds <= 0) {
      ctx.addIssue({ code: 'custom', message: 'seconds, or a duration like 30m, 12h or 7d' });
      return z.NEVER;
    }
    if (seconds > MAX_LINK_LIFETIME_S) {
      ctx.addIssue({ code: 'custom', message: `at most ${MAX_LINK_LIFETIME_S} seconds (365d)` });
      return z.NEVER;
    }
    return seconds;
  });

export const CreateLinkSchema = z.strictObject({
  /** Limit the link to one in-pod port; absent opens every private port of the pod. */
  port: PortSchema.optional(),
  expiresIn: LifetimeSchema.default(DEFAULT_LINK_LIFETIME_S),
  label: z.string().min(1).max(200).optional(),
});

export const PutAccessSchema = z.strictObject({
  default: AccessPolicySchema.shape.default,
  ports: AccessPolicySchema.shape.ports,
});

/** A minted link as `POST /v1/pods/:slug/links` answers it: the only answer that carries its token. */
export const CreatedLinkSchema = AccessLinkSchema.extend({
  /** The pod's URL with the token. */
  url: z.string(),
  token: z.string(),
}).meta({ id: 'CreatedLink' });
const AccessAnswerSchema = z.object({ access: AccessPolicySchema });

const slugParameter = pathParameters({ slug: SlugSchema });
/** The OpenAPI entries of these routes (shared/openapi.ts). */
const docs = {
  createLink: describeRoute({
    summary: 'Mint an access link (its URL and token are shown only in this answer)',
    parameters: slugParameter,
    requestBody: jsonRequestBody(CreateLinkSchema.meta({ id: 'CreateLink' }), false),
    responses: { 201: jsonResponse('The link', CreatedLinkSchema), ...errorResponses(400, 401, 404) },
  }),
  listLinks: describeRoute({
    summary: "The pod's live links (never their tokens)",
    parameters: slugParameter,
    responses: { 200: jsonResponse('The links', z.object({ links: z.array(AccessLinkSchema.meta({ id: 'AccessLink' })) })), ...errorResponses(400, 401) },
  }),
  revokeLink: describeRoute({
    summary: 'Revoke one link',
    parameters: pathParameters({ slug: SlugSchema, id: LinkIdSchema }),
    responses: { 204: { description: 'Revoked' }, ...errorResponses(400, 401, 404) },
  }),
  revokeLinks: describeRoute({
    summary: 'Revoke every link of the pod issued so far (allowed for deleted pods too)',
    parameters: slugParameter,
    responses: { 204: { description: 'Revoked' }, ...errorResponses(400, 401) },
  }),
  getAccess: describeRoute({
    summary: "The pod's visibility",
    parameters: slugParameter,
    responses: { 200: jsonResponse('Its access policy', AccessAnswerSchema), ...errorResponses(400, 401, 404) },
  }),
  putAccess: describeRoute({
    summary: "Change the pod's visibility (republished as a new route generation)",
    parameters: slugParameter,
    requestBody: jsonRequestBody(PutAccessSchema.meta({ id: 'PutAccess' })),
    responses: { 200: jsonResponse('The policy now enforced', AccessAnswerSchema), ...errorResponses(400, 401, 404) },
  }),
};

/** What the access API needs from the pod lifecycle. */
export interface PodAccessControl {
  /** The pod's current policy; throws PodNotFoundError for an unknown pod. */
  policy(slug: string): AccessPolicy;
  /**
   * Resolves once a link minted now belongs to the pod's current lifetime (a create in flight has voided the
   * links of earlier pods of the slug); throws PodNotFoundError for an unknown pod.
   */
  linkable(slug: string): Promise<void>;
  /** Change the pod's visibility and republish its route (new generation); throws PodNotFoundError. */
  setPolicy(slug: string, policy: AccessPolicy): Promise<void>;
}

/**
 * PodAccessControl over the orchestrator's pods (PodService owns their records): the change is made under the pod's
 * lock (never racing a start or stop) and published like any other route change, and later publishes (stop, start)
 * keep it. It survives an orchestrator restart because reconcile adopts the policy from the route this incarnation
 * last wrote.
 */
export function podAccessControl(pods: PodService): PodAccessControl {
  return {
    policy: (slug) => pods.accessPolicy(slug),
    linkable: (slug) => pods.linkable(slug),
    setPolicy: (slug, policy) => pods.setAccessPolicy(slug, policy),
  };
}

export interface AccessApiDeps {
  store: AccessStore;
  tokens: AccessTokens;
  pods: PodAccessControl;
  urls: Pick<PodServiceConfig, 'baseDomains' | 'publicScheme' | 'publicPort'>;
  now?: () => number;
}

const slugOf = (c: Context) => parseOrThrow(SlugSchema, c.req.param('slug'), 'slug');

/**
 * The signing secret of this orchestrator: ACCESS_SECRET when configured (comma list, first signs), else the one
 * shared through the access store (generated by whichever process asked first).
 */
export async function accessTokensFor(configured: readonly string[], store: AccessStore, generate: () => string): Promise<AccessTokens> {
  return new AccessTokens(configured.length > 0 ? configured : [await store.sharedSecret(generate())]);
}

export function createAccessApi(deps: AccessApiDeps): Hono {
  const { store, tokens, pods, urls } = deps;
  const now = deps.now ?? Date.now;
  const app = new Hono();

  app.post('/v1/pods/:slug/links', docs.createLink, async (c) => {
    const slug = slugOf(c);
    const body = parseOrThrow(CreateLinkSchema, await jsonBody(c));
    await pods.linkable(slug); // 404 for an unknown pod
    const issuedAt = now();
    const exp = Math.floor(issuedAt / 1000) + body.expiresIn;
    const id = newLinkId();
    const token = tokens.mint({ pod: slug, port: body.port, exp, id, iat: issuedAt });
    const link = {
      id,
      pod: slug,
      ...(body.port !== undefined ? { port: body.port } : {}),
      ...(body.label !== undefined ? { label: body.label } : {}),
      createdAt: new Date(issuedAt).toISOString(),
      expiresAt: new Date(exp * 1000).toISOString(),
    };
    await store.addLink(link);
    const url = `${podUrl(slug, body.port, urls)}?${TOKEN_QUERY}=${token}`;
    const created: z.output<typeof CreatedLinkSchema> = { ...link, url, token };
    return c.json(created, 201);
  });

  app.get('/v1/pods/:slug/links', docs.listLinks, async (c) => {
    const slug = slugOf(c);
    return c.json({ links: await store.listLinks(slug, now()) });
  });

  app.delete('/v1/pods/:slug/links/:id', docs.revokeLink, async (c) => {
    const slug = slugOf(c);
    const id = parseOrThrow(LinkIdSchema, c.req.param('id'), 'id');
    if (!(await store.revokeLink(slug, id, now()))) throw new NotFoundError(`pod ${JSON.stringify(slug)} has no live link ${JSON.stringify(id)}`);
    return c.body(null, 204);
  });

  // Works for pods that are gone too: revoking what a deleted pod's links could still open is always allowed.
  app.delete('/v1/pods/:slug/links', docs.revokeLinks, async (c) => {
    // +1 ms: a token issued in this very millisecond, before the call, is void too.
    await store.revokePod(slugOf(c), now() + 1);
    return c.body(null, 204);
  });

  app.get('/v1/pods/:slug/access', docs.getAccess, (c) => c.json({ access: pods.policy(slugOf(c)) }));

  app.put('/v1/pods/:slug/access', docs.putAccess, async (c) => {
    const slug = slugOf(c);
    const policy = parseOrThrow(PutAccessSchema, await jsonBody(c));
    await pods.setPolicy(slug, policy);
    return c.json({ access: policy });
  });

  return app;
}
