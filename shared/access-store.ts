// Access links and their revocation: what the orchestrator's admin API writes and every gateway
// reads. Two implementations: RedisAccessStore (shared, REDIS_URL) and MemoryAccessStore (embedded, one process);
// one contract suite (access-store.contract.ts) runs against both.
//
// Revocation model: tokens are signed (shared/access-token.ts), so a gateway verifies them without a lookup; what
// it must learn from the store is which tokens no longer count:
//   - revoked link ids, each kept until the link's own expiry (after that the signature check rejects it anyway);
//   - per pod, a "not before" time: every token of the pod issued before it is void (revoke all links, pod deleted).
// Gateways hold both in memory (gateway/access/revocations.ts), updated by events on `<prefix>access:events` and
// re-read periodically in case an event was missed, so a revocation takes effect on every replica within seconds.
//
// The store also counts forged tokens per client address for the gateways' limiter (gateway/access/limits.ts), so
// a guesser is slowed down by the sum of what every worker and replica saw. Only failed requests ask it.
import { z } from 'zod';
import { FixedWindows, type WindowCount } from './fixed-windows.ts';
import { LinkIdSchema } from './access-token.ts';
import { PortSchema, SlugSchema } from './route.ts';

export const AccessLinkSchema = z.object({
  id: LinkIdSchema,
  pod: SlugSchema,
  port: PortSchema.optional(),
  label: z.string().max(200).optional(),
  createdAt: z.iso.datetime({ offset: true }),
  expiresAt: z.iso.datetime({ offset: true }),
});
export type AccessLink = z.infer<typeof AccessLinkSchema>;

export const AccessEventSchema = z.discriminatedUnion('type', [
  /** One link revoked; `exp` (epoch ms) is when it would have expired anyway. */
  z.object({ type: z.literal('revoke'), pod: SlugSchema, id: LinkIdSchema, exp: z.number().int().nonnegative() }),
  /** Every token of `pod` issued before `notBefore` (epoch ms) is void. */
  z.object({ type: z.literal('revoke-pod'), pod: SlugSchema, notBefore: z.number().int().nonnegative() }),
]);
export type AccessEvent = z.infer<typeof AccessEventSchema>;

export interface Revocations {
  /** Revoked link id -> its expiry (epoch ms). */
  ids: Map<string, number>;
  /** Pod slug -> "not before" (epoch ms). */
  notBefore: Map<string, number>;
}

export interface AccessSubscription {
  onEvent(event: AccessEvent): void;
  /** Events may have been missed (reconnect): re-read the revocations. */
  onResync(): void;
}

export interface AccessStore {
  /** The signing secret every process sharing this store uses: the stored one, else `candidate` (first writer wins). */
  sharedSecret(candidate: string): Promise<string>;
  addLink(link: AccessLink): Promise<void>;
  /** The pod's links that are neither expired (at `nowMs`) nor revoked, oldest first. */
  listLinks(pod: string, nowMs: number): Promise<AccessLink[]>;
  /** Revoke one link; false when the pod has no such (unexpired) link. */
  revokeLink(pod: string, id: string, nowMs: number): Promise<boolean>;
  /** Void every token of the pod issued before `nowMs` and forget its links. */
  revokePod(pod: string, nowMs: number): Promise<void>;
  /** Everything revoked and not yet expired at `nowMs`. */
  revocations(nowMs: number): Promise<Revocations>;
  subscribe(subscription: AccessSubscription): Promise<() => Promise<void>>;
  /**
   * Add `n` forged tokens to `client`'s count in a fixed window of `windowMs` (started by its first forgery), and
   * answer the count so far and when the window ends.
   */
  countForgeries(client: string, n: number, windowMs: number, nowMs: number): Promise<WindowCount>;
  close(): Promise<void>;
}

/** Addresses whose forgeries the embedded store remembers at most (memory stays bounded under a flood). */
export const MAX_COUNTED_CLIENTS = 100_000;
/** Longer client keys are cut: an address is far shorter, and a key must not grow with what a proxy sent. */
export const MAX_CLIENT_KEY_LENGTH = 100;

/** Redis key names, under the same prefix as the route table. */
export function accessKeys(prefix: string) {
  return {
    /** string: the generated signing secret (only when ACCESS_SECRET is unset) */
    secret: `${prefix}access:secret`,
    /** hash per pod: link id -> JSON AccessLink */
    links: (pod: string) => `${prefix}access:links:${pod}`,
    /** sorted set: revoked link id, scored by its expiry (epoch ms) so expired entries can be dropped */
    revoked: `${prefix}access:revoked`,
    /** hash: pod slug -> not-before (epoch ms) */
    notBefore: `${prefix}access:notbefore`,
    /** pub/sub channel: JSON AccessEvent */
    events: `${prefix}access:events`,
    /** string per client address: forged tokens in the current window, expiring with it */
    forged: (client: string) => `${prefix}access:forged:${client.slice(0, MAX_CLIENT_KEY_LENGTH)}`,
  };
}

export function parseAccessEvent(json: string): AccessEvent | undefined {
  try {
    const parsed = AccessEventSchema.safeParse(JSON.parse(json));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export function parseAccessLink(json: string): AccessLink | undefined {
  try {
    const parsed = AccessLinkSchema.safeParse(JSON.parse(json));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Is a verified token (its link id, pod and issue time) revoked according to `r`? */
export function isRevoked(r: Revocations, claims: { id: string; pod: string; iat: number }): boolean {
  return r.ids.has(claims.id) || claims.iat < (r.notBefore.get(claims.pod) ?? 0);
}

const expiry = (link: AccessLink) => Date.parse(link.expiresAt);

/** Embedded store for a single process (no REDIS_URL). Same semantics as the Redis store. */
export class MemoryAccessStore implements AccessStore {
  private secret: string | undefined;
  private readonly links = new Map<string, Map<string, AccessLink>>();
  private readonly revoked = new Map<string, number>();
  private readonly notBefore = new Map<string, number>();
  private readonly subscribers = new Set<AccessSubscription>();
  private readonly forged = new FixedWindows(MAX_COUNTED_CLIENTS);

  async sharedSecret(candidate: string): Promise<string> {
    this.secret ??= candidate;
    return this.secret;
  }

  async addLink(link: AccessLink): Promise<void> {
    let pod = this.links.get(link.pod);
    if (!pod) this.links.set(link.pod, (pod = new Map()));
    pod.set(link.id, link);
  }

  async listLinks(pod: string, nowMs: number): Promise<AccessLink[]> {
    const links = this.links.get(pod);
    if (!links) return [];
    for (const [id, link] of links) if (expiry(link) <= nowMs) links.delete(id);
    return [...links.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async revokeLink(pod: string, id: string, nowMs: number): Promise<boolean> {
    const link = this.links.get(pod)?.get(id);
    if (!link || expiry(link) <= nowMs) return false;
    this.links.get(pod)!.delete(id);
    this.revoked.set(id, expiry(link));
    this.publish({ type: 'revoke', pod, id, exp: expiry(link) });
    return true;
  }

  async revokePod(pod: string, nowMs: number): Promise<void> {
    this.links.delete(pod);
    const notBefore = Math.max(nowMs, this.notBefore.get(pod) ?? 0);
    this.notBefore.set(pod, notBefore);
    this.publish({ type: 'revoke-pod', pod, notBefore });
  }

  async revocations(nowMs: number): Promise<Revocations> {
    for (const [id, exp] of this.revoked) if (exp <= nowMs) this.revoked.delete(id);
    return { ids: new Map(this.revoked), notBefore: new Map(this.notBefore) };
  }

  async subscribe(subscription: AccessSubscription): Promise<() => Promise<void>> {
    this.subscribers.add(subscription);
    return async () => {
      this.subscribers.delete(subscription);
    };
  }

  async countForgeries(client: string, n: number, windowMs: number, nowMs: number): Promise<WindowCount> {
    return this.forged.add(client.slice(0, MAX_CLIENT_KEY_LENGTH), n, windowMs, nowMs);
  }

  async close(): Promise<void> {
    this.subscribers.clear();
  }

  private publish(event: AccessEvent): void {
    // Asynchronous like pub/sub: a writer never runs reader code on its own stack.
    for (const s of this.subscribers) queueMicrotask(() => s.onEvent(event));
  }
}
