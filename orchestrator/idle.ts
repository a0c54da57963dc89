// Pure decisions of sleep and wake (README "Sleep and wake"): what an idle timeout is, which running pods have been
// idle for longer than theirs, how often to look, and whether a wake request may start a pod. No I/O here: the loop
// that reads activity and stops and starts pods is sleep-wake.ts.

const DURATION = /^(\d{1,9})(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Below this a pod would be stopped between two of a gateway's activity reports (every few seconds). */
export const MIN_IDLE_TIMEOUT_MS = 5_000;
export const MAX_IDLE_TIMEOUT_MS = 30 * 86_400_000;
export const IDLE_TIMEOUT_FORM = 'a duration like 30m, 90s or 2h (at least 5s, at most 30d), or off';

/**
 * An idle timeout as a spec or POD_IDLE_TIMEOUT gives it -> milliseconds, `off` (never sleeps), or an error text
 * saying what is wrong.
 */
export function parseIdleTimeout(text: string): { ms: number | 'off' } | { error: string } {
  const t = text.trim();
  if (t === 'off') return { ms: 'off' };
  const m = DURATION.exec(t);
  if (!m) return { error: `expected ${IDLE_TIMEOUT_FORM}, got ${JSON.stringify(text.slice(0, 40))}` };
  const ms = Number(m[1]) * UNIT_MS[m[2]!]!;
  if (ms < MIN_IDLE_TIMEOUT_MS) return { error: `${t} is shorter than 5s: a pod would go to sleep between two activity reports of a gateway` };
  if (ms > MAX_IDLE_TIMEOUT_MS) return { error: `${t} is longer than 30d; use off for a pod that never sleeps` };
  return { ms };
}

/** The idle timeout that applies to a pod: its spec's own (`off` included) wins over the orchestrator's default. */
export function effectiveIdleTimeout(own: string | undefined, defaultText: string): { text: string; ms: number | undefined } {
  const text = own ?? defaultText;
  const parsed = parseIdleTimeout(text);
  // Both were validated where they came in (spec, configuration); anything else is treated as off.
  return 'ms' in parsed && parsed.ms !== 'off' ? { text, ms: parsed.ms } : { text: 'off', ms: undefined };
}

export interface IdleCandidate {
  slug: string;
  /** Milliseconds; undefined: the pod never sleeps. */
  idleTimeoutMs: number | undefined;
  /**
   * When this orchestrator first saw the pod running in this run of it, on the store's clock. A pod just woken or
   * adopted has not been idle for longer than since then, whatever its last activity says.
   */
  runningSinceMs: number;
}

/**
 * Which running pods to put to sleep: those whose last activity (or, if later or absent, the moment they were first
 * seen running) lies longer than their idle timeout before `nowMs`. Every time is on the activity store's clock.
 */
export function podsToSleep(nowMs: number, pods: readonly IdleCandidate[], lastActive: ReadonlyMap<string, number>): { slug: string; idleMs: number }[] {
  const out: { slug: string; idleMs: number }[] = [];
  for (const p of pods) {
    if (p.idleTimeoutMs === undefined) continue;
    const since = Math.max(lastActive.get(p.slug) ?? -Infinity, p.runningSinceMs);
    const idleMs = nowMs - since;
    if (idleMs > p.idleTimeoutMs) out.push({ slug: p.slug, idleMs });
  }
  return out;
}

export const MIN_IDLE_CHECK_MS = 1_000;
export const MAX_IDLE_CHECK_MS = 30_000;

/**
 * How often to look for idle pods: a fifth of the shortest timeout, within 1 s and 30 s, so a pod sleeps at most a
 * fifth late; undefined when no pod has a timeout (nothing to look for).
 */
export function idleCheckIntervalMs(timeouts: readonly (number | undefined)[]): number | undefined {
  const set = timeouts.filter((t): t is number => t !== undefined);
  if (set.length === 0) return undefined;
  return Math.min(MAX_IDLE_CHECK_MS, Math.max(MIN_IDLE_CHECK_MS, Math.floor(Math.min(...set) / 5)));
}
