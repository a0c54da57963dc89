// Poll with a deadline instead of sleeping: tests wait for a condition, never for a guessed duration.

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  what?: string;
}

/** Resolve true as soon as `check` does; throw naming `what` if the deadline passes first. */
export async function waitFor(check: () => boolean | Promise<boolean>, options: WaitOptions = {}): Promise<true> {
  const { timeoutMs = 10_000, intervalMs = 10, what = 'condition' } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
