// Keeping an in-memory copy of a shared store current: change events as they come, a full re-read at once and
// every `intervalMs` after (an event can be lost while the subscription reconnects, and the copy heals anyway).
// A store that is down at start is no error: the subscription is reported and the re-reads go on.

export interface FollowedStore {
  /** Subscribe to changes; resolves to the unsubscribe function. */
  subscribe(): Promise<() => Promise<void>>;
  /** Read everything again; handles its own failures. */
  resync(): Promise<void>;
  intervalMs: number;
  /** The subscription failed: the copy relies on the periodic re-read. */
  onSubscribeFailed(err: unknown): void;
}

export interface Following {
  /** Stop the re-reads and the subscription. */
  stop(): Promise<void>;
}

export async function followStore(store: FollowedStore): Promise<Following> {
  let unsubscribe: (() => Promise<void>) | undefined;
  try {
    unsubscribe = await store.subscribe();
  } catch (err) {
    store.onSubscribeFailed(err);
  }
  await store.resync();
  const timer = setInterval(() => void store.resync(), store.intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await unsubscribe?.().catch(() => {});
    },
  };
}
