// Embedded route store for a single process (no REDIS_URL). Same semantics as the Redis store.
import { randomUUID } from 'node:crypto';
import { nextGenerationAfter, type Route, type RouteEvent } from './route.ts';
import type { RouteStore, RouteSubscription } from './route-store.ts';

export class MemoryRouteStore implements RouteStore {
  private readonly routes = new Map<string, Route>();
  private readonly tombstones = new Map<string, number>();
  private readonly subscribers = new Set<RouteSubscription>();
  private lastGeneration = 0;
  private readonly epochsHeld = new Map<string, number>();
  private readonly passes = new Map<string, string>();

  async get(slug: string): Promise<Route | undefined> {
    return this.routes.get(slug);
  }

  async *scan(): AsyncIterable<Route[]> {
    const all = [...this.routes.values()];
    for (let i = 0; i < all.length; i += 1000) yield all.slice(i, i + 1000);
  }

  async put(route: Route): Promise<boolean> {
    const held = this.routes.get(route.slug)?.generation ?? this.tombstones.get(route.slug) ?? -1;
    if (route.generation <= held) return false;
    this.routes.set(route.slug, route);
    this.tombstones.delete(route.slug);
    this.publish({ type: 'put', route });
    return true;
  }

  async delete(slug: string, generation: number): Promise<boolean> {
    const held = this.routes.get(slug);
    if (held && held.generation > generation) return false;
    if ((this.tombstones.get(slug) ?? -1) >= generation && !held) return false;
    this.routes.delete(slug);
    this.tombstones.set(slug, generation);
    this.publish({ type: 'delete', slug, generation });
    return true;
  }

  async nextGeneration(): Promise<number> {
    this.lastGeneration = nextGenerationAfter(this.lastGeneration, Date.now() * 1000);
    return this.lastGeneration;
  }

  async epochs(): Promise<Map<string, number>> {
    return new Map(this.epochsHeld);
  }

  async beginEpochPass(host: string): Promise<string> {
    const token = randomUUID();
    this.passes.set(host, token);
    return token;
  }

  async endEpochPass(host: string, token: string): Promise<number | undefined> {
    if (this.passes.get(host) !== token) return undefined;
    this.passes.delete(host);
    const epoch = await this.nextGeneration();
    this.epochsHeld.set(host, epoch);
    return epoch;
  }

  async subscribe(subscription: RouteSubscription): Promise<() => Promise<void>> {
    this.subscribers.add(subscription);
    return async () => {
      this.subscribers.delete(subscription);
    };
  }

  async close(): Promise<void> {
    this.subscribers.clear();
  }

  private publish(event: RouteEvent): void {
    // Deliver asynchronously, like pub/sub: a writer never runs reader code on its own stack.
    for (const s of this.subscribers) queueMicrotask(() => s.onEvent(event));
  }
}
