// The RouteStore interface: what orchestrators write and gateways read. Two implementations behind it:
// RedisRouteStore (the shared table, REDIS_URL) and MemoryRouteStore (embedded, single process).
// One contract suite (route-store.contract.ts) runs against both.
import type { Route, RouteEvent } from './route.ts';

export interface RouteSubscription {
  /** Called for every change, in the order the store saw them. */
  onEvent(event: RouteEvent): void;
  /**
   * Called when events may have been missed (the subscription was (re)established after a disconnect):
   * the reader must re-read the whole table.
   */
  onResync(): void;
}

export interface RouteStore {
  get(slug: string): Promise<Route | undefined>;
  /** Every route, in batches (the Redis store uses HSCAN, so 100k routes never block the server). */
  scan(): AsyncIterable<Route[]>;
  /** Write a route unless the store holds the same slug at a higher or equal generation (or deleted at one). */
  put(route: Route): Promise<boolean>;
  /** Remove a route unless the stored one has a higher generation than `generation`. */
  delete(slug: string, generation: number): Promise<boolean>;
  /** A generation above every one handed out before, even after the store lost its data. */
  nextGeneration(): Promise<number>;
  subscribe(subscription: RouteSubscription): Promise<() => Promise<void>>;
  /** Epochs of the writers that keep one: writer's host -> epoch (see epochVerdict in route.ts). */
  epochs(): Promise<Map<string, number>>;
  /** Begin a publishing pass of `host`'s writer: returns a token that losing the store's data erases. */
  beginEpochPass(host: string): Promise<string>;
  /**
   * End the pass begun with `token`, after the writer republished every route it owns. If the token survived (no
   * data lost meanwhile), `host`'s epoch becomes a new one above every generation handed out, and is returned: a
   * table restored from any earlier moment then holds an older epoch than readers have seen. undefined: data was
   * lost during the pass (pass again).
   */
  endEpochPass(host: string, token: string): Promise<number | undefined>;
  close(): Promise<void>;
}

/** Collect every route (tests, admin listings; the gateway consumes scan() batch by batch). */
export async function allRoutes(store: RouteStore): Promise<Route[]> {
  const out: Route[] = [];
  for await (const batch of store.scan()) out.push(...batch);
  return out;
}
