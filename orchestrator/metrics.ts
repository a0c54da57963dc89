// Prometheus metrics of one orchestrator process (GET /metrics on its admin listener, behind ADMIN_TOKEN): sleep and
// wake. Labels carry reasons and outcomes only, never slugs: the number of series stays fixed however many pods come
// and go.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export type SleepCause = 'idle' | 'admin';
/** `request`: a gateway asked (a request arrived for the sleeping pod); `admin`: POST /wake or /start. */
export type WakeCause = 'request' | 'admin';
/** `refused`: over POD_WAKE_LIMIT (counted once per window, like its log line). */
export type WakeOutcome = 'woken' | 'failed' | 'refused';

export class OrchestratorMetrics {
  readonly registry = new Registry();
  readonly sleeps: Counter<'reason'>;
  readonly wakes: Counter<'reason' | 'outcome'>;
  readonly wakeSeconds: Histogram<'reason'>;

  /** `asleep`: how many pods sleep now, read at every scrape. */
  constructor(asleep: () => number) {
    const registers = [this.registry];
    new Gauge({
      name: 'podgate_orchestrator_pods_asleep',
      help: 'Pods of this orchestrator that sleep now (stopped because idle or by POST /sleep, wakeable)',
      registers,
      collect() {
        this.set(asleep());
      },
    });
    this.sleeps = new Counter({ name: 'podgate_orchestrator_sleeps_total', help: 'Pods put to sleep, by reason (idle, admin)', labelNames: ['reason'] as const, registers });
    this.wakes = new Counter({
      name: 'podgate_orchestrator_wakes_total',
      help: 'Wakes of sleeping pods, by reason (request, admin) and outcome (woken, failed, refused: over POD_WAKE_LIMIT, once per window)',
      labelNames: ['reason', 'outcome'] as const,
      registers,
    });
    this.wakeSeconds = new Histogram({
      name: 'podgate_orchestrator_wake_duration_seconds',
      help: 'From the wake asked (first request from a gateway, or the admin call) to the pod running and ready',
      labelNames: ['reason'] as const,
      buckets: [0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60],
      registers,
    });
  }
}
