// Pod activity and wake requests: where gateways and orchestrators meet for sleep and wake (README "Sleep and
// wake"). Gateways report which pods they served, a few times a minute and never per request; orchestrators read
// how long each of their pods has been idle and put idle ones to sleep. A gateway that receives a request for a
// sleeping pod (after its access check) asks for a wake; the pod's orchestrator starts it and the route turns
// `running`, which is what the gateway waits for. Two implementations: RedisPodActivity (REDIS_URL) and
// MemoryPodActivity (embedded, one process); one contract suite (pod-activity.contract.ts) runs against both.
import { z } from 'zod';
import { SlugSchema } from './route.ts';

export interface PodActivityStore {
  /**
   * Mark pods active now, by the store's clock (one call per gateway flush: every pod served, or holding a
   * WebSocket open, since the last flush). A time never moves back.
   */
  touch(slugs: readonly string[]): Promise<void>;
  /** The store's clock now, and the last activity of each slug asked for (ms); slugs never touched are absent. */
  lastActive(slugs: readonly string[]): Promise<{ nowMs: number; last: Map<string, number> }>;
  /** Drop a slug's activity (its pod is deleted). */
  forget(slug: string): Promise<void>;
  /** Ask whichever orchestrator owns the pod to wake it. Fire and forget: the asker watches the pod's route. */
  requestWake(slug: string): Promise<void>;
  /**
   * Wake requests, for orchestrators. Requests sent while the subscription was down are lost (askers repeat
   * theirs while they wait); `onResync` says when that may have happened.
   */
  subscribeWakes(subscription: WakeSubscription): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface WakeSubscription {
  onWake(slug: string): void;
  onResync?(): void;
}

export function activityKeys(prefix: string) {
  return {
    /** sorted set: slug scored by its last activity (ms, the Redis server's clock) */
    activity: `${prefix}pods:activity`,
    /** pub/sub channel: JSON WakeRequest */
    wakes: `${prefix}pods:wake`,
  };
}

export const WakeRequestSchema = z.strictObject({ slug: SlugSchema });
export type WakeRequest = z.infer<typeof WakeRequestSchema>;

/** A wake request as received: anything that is not one is dropped (undefined). */
export function parseWakeRequest(message: string): WakeRequest | undefined {
  try {
    const parsed = WakeRequestSchema.safeParse(JSON.parse(message));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** The embedded store: one process, its own clock. */
export class MemoryPodActivity implements PodActivityStore {
  private readonly last = new Map<string, number>();
  private readonly subscribers = new Set<WakeSubscription>();
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  async touch(slugs: readonly string[]): Promise<void> {
    const t = this.now();
    for (const slug of slugs) this.last.set(slug, Math.max(t, this.last.get(slug) ?? 0));
  }

  async lastActive(slugs: readonly string[]): Promise<{ nowMs: number; last: Map<string, number> }> {
    const last = new Map<string, number>();
    for (const slug of slugs) {
      const t = this.last.get(slug);
      if (t !== undefined) last.set(slug, t);
    }
    return { nowMs: this.now(), last };
  }

  async forget(slug: string): Promise<void> {
    this.last.delete(slug);
  }

  async requestWake(slug: string): Promise<void> {
    for (const s of this.subscribers) queueMicrotask(() => s.onWake(slug));
  }

  async subscribeWakes(subscription: WakeSubscription): Promise<() => Promise<void>> {
    this.subscribers.add(subscription);
    return async () => {
      this.subscribers.delete(subscription);
    };
  }

  async close(): Promise<void> {
    this.subscribers.clear();
  }
}
