// Soon-then-slower retries for periodic re-reads (route table, revocations): after a failure (Redis down, or not
// connected yet at start) the read is tried again after 100 ms, doubling up to the regular period, so a gateway
// catches up as soon as Redis answers instead of one full period later.

const FIRST_RETRY_MS = 100;

export class RetryBackoff {
  private readonly maxMs: number;
  private delayMs = FIRST_RETRY_MS;
  private timer: NodeJS.Timeout | undefined;

  constructor(maxMs: number) {
    this.maxMs = maxMs;
  }

  /** Run `attempt` after the current delay (once, however often this is called meanwhile); the next delay doubles. */
  schedule(attempt: () => void): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      attempt();
    }, this.delayMs);
    this.timer.unref();
    this.delayMs = Math.min(this.delayMs * 2, this.maxMs);
  }

  /** The last attempt succeeded: the next failure is retried quickly again. */
  reset(): void {
    this.delayMs = FIRST_RETRY_MS;
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
