// The route table: the public contract between orchestrators (writers) and gateways (readers).
// Documented in README.md ("Route-table contract"); every read and write is validated with these schemas.
import { z } from 'zod';

/** A pod slug is a DNS label short enough that `localhost-65535-pod-<slug>` still fits in one 63-byte label. */
export const SLUG_MAX_LENGTH = 40;
export const SLUG_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$/;
export const SlugSchema = z
  .string()
  .max(SLUG_MAX_LENGTH, `at most ${SLUG_MAX_LENGTH} characters`)
  .regex(SLUG_PATTERN, 'lowercase letters, digits and inner hyphens (a DNS label)');

export const PortSchema = z.number().int().min(1).max(65535);

/**
 * `sleeping`: stopped because idle, woken by the next admitted request (README "Sleep and wake"). Every other
 * status is not served.
 */
export const RouteStatusSchema = z.enum(['running', 'starting', 'stopped', 'sleeping']);
export type RouteStatus = z.infer<typeof RouteStatusSchema>;
/**
 * A route's status as read: a status this reader does not know (written by a newer writer) reads as `stopped`, so
 * the route still tells its pod exists and nothing is ever proxied to a pod in a state the reader cannot judge.
 */
const ReadRouteStatusSchema = z.union([RouteStatusSchema, z.string().min(1).max(64).transform((): RouteStatus => 'stopped')]);

export const DEFAULT_POD_PORT = 3000;
/** Bound on a route's `ports` list: it is read on TLS handshakes, and each entry may cost a certificate. */
export const MAX_DECLARED_PORTS = 64;

export const VisibilitySchema = z.enum(['private', 'public']);
export type Visibility = z.infer<typeof VisibilitySchema>;

/** Who may reach a pod's services: `private` needs an access link or token, `public` is open to anyone. */
export const AccessPolicySchema = z.object({
  /** Applies to every port not listed in `ports`. */
  default: VisibilitySchema.default('private'),
  /** Per in-pod port overrides, keyed by port number (JSON object keys are strings). */
  ports: z.record(z.string().regex(/^[1-9]\d{0,4}$/, 'a port number'), VisibilitySchema).default({}),
});
export type AccessPolicy = z.infer<typeof AccessPolicySchema>;
export const PRIVATE_BY_DEFAULT: AccessPolicy = { default: 'private', ports: {} };

/**
 * The header a gateway sends the pod's in-pod router, carrying the route's `routerKey`: the router serves nothing
 * without it (403), so only a gateway (after its access check) reaches a pod's services through its host port.
 */
export const ROUTER_KEY_HEADER = 'x-podgate-router-key';
/** 32 random bytes as lowercase hex: the in-pod router compares it case-insensitively (an nginx map). */
export const RouterKeySchema = z.string().regex(/^[0-9a-f]{64}$/, '64 lowercase hex digits');

export const RouteSchema = z.object({
  slug: SlugSchema,
  /** Address of the pod's host as the gateway reaches it (IP or DNS name). */
  host: z.string().min(1).max(253),
  /** The pod's single published host port (its in-pod router). */
  port: PortSchema,
  status: ReadRouteStatusSchema,
  /** Increases on every change of the pod; a lower generation never replaces a higher one. */
  generation: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  /** The in-pod port served for `pod-<slug>.<base>` (no port in the hostname). */
  defaultPort: PortSchema.default(DEFAULT_POD_PORT),
  updatedAt: z.iso.datetime({ offset: true }),
  /** Absent means private (PRIVATE_BY_DEFAULT): a route written by an older tool never opens a pod to the world. */
  access: AccessPolicySchema.optional(),
  /**
   * The in-pod ports the pod declares (its services, default port and the ports its access policy names). Gateways
   * issue on-demand certificates only for these; absent means the default port only. Routing does not use it.
   */
  ports: z.array(PortSchema).max(MAX_DECLARED_PORTS).optional(),
  /** Optional cap on concurrent client connections to this pod through one gateway. */
  maxConnections: z.number().int().positive().optional(),
  /** The pod's router key, sent as ROUTER_KEY_HEADER; absent for pods whose router needs none. */
  routerKey: RouterKeySchema.optional(),
});
export type Route = z.infer<typeof RouteSchema>;
export type RouteInput = z.input<typeof RouteSchema>;

export const RouteEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('put'), route: RouteSchema }),
  z.object({ type: z.literal('delete'), slug: SlugSchema, generation: z.number().int().nonnegative() }),
]);
export type RouteEvent = z.infer<typeof RouteEventSchema>;

/** Redis key names, all under one configurable prefix (default `podgate:`). */
export function routeKeys(prefix: string) {
  return {
    /** hash: slug -> JSON Route */
    routes: `${prefix}routes`,
    /** hash: slug -> generation of its deletion, so a late write of an older generation cannot resurrect it */
    tombstones: `${prefix}routes:tombstones`,
    /** pub/sub channel: JSON RouteEvent */
    events: `${prefix}routes:events`,
    /** string: last generation handed out */
    generation: `${prefix}generation`,
    /** hash: writer's host (the `host` of its routes) -> epoch, kept by writers that republish after a loss */
    epochs: `${prefix}routes:epochs`,
    /** string: token of the publishing pass under way of `host`'s writer (a loss erases it) */
    epochPass: (host: string) => `${prefix}routes:epochs:pass:${host}`,
  };
}

/**
 * What a full re-read may conclude about the routes of one writer's host that the table no longer holds
 * (README "The route table", data loss): `follow` drops them (they were deleted), `keep` serves them on (Redis lost
 * its data or was rolled back, and the writer has not republished since).
 *
 * - A host whose writer never kept an epoch (none seen, none now) is followed: nothing tells loss from deletion.
 * - Otherwise the table is believed only when the host's epoch was there both before and after the scan, the same,
 *   and not lower than the highest one this reader has seen: a writer asserts its epoch only after republishing
 *   every route it owns, and a loss erases it (or a restore brings back an older one).
 */
export function epochVerdict(known: number | undefined, before: number | undefined, after: number | undefined): 'follow' | 'keep' {
  if (known === undefined && before === undefined && after === undefined) return 'follow';
  if (before === undefined || before !== after) return 'keep';
  return known === undefined || before >= known ? 'follow' : 'keep';
}

/** Parse a stored or received route; returns undefined (and the reason) instead of throwing. */
export function parseRoute(json: string): { route?: Route; error?: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    return { error: 'not JSON' };
  }
  const parsed = RouteSchema.safeParse(raw);
  if (!parsed.success) return { error: z.prettifyError(parsed.error) };
  return { route: parsed.data };
}

export function parseRouteEvent(json: string): { event?: RouteEvent; error?: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    return { error: 'not JSON' };
  }
  const parsed = RouteEventSchema.safeParse(raw);
  if (!parsed.success) return { error: z.prettifyError(parsed.error) };
  return { event: parsed.data };
}

/**
 * A generation that keeps increasing even if the store loses its data: microseconds since the epoch, or one
 * more than the last one handed out if the clock has not moved on. Stays below 2^53 until the year 2255.
 */
export function nextGenerationAfter(last: number, nowMicros: number): number {
  return Math.max(nowMicros, last + 1);
}
