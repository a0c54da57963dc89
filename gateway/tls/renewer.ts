// Background renewal: every interval, renew the certificates that are due. Every replica runs this; the lock
// in CertificateManager makes one replica at a time do each renewal, and the re-check under the lock stops a
// second replica from renewing again what the first just renewed.
import type { CertificateRecord, CertStore } from '../../shared/cert-store.ts';
import type { Logger } from '../../shared/log.ts';
import type { CertificateManager } from './manager.ts';
import { isRenewalDue, RENEW_AT_FRACTION } from './renewal-policy.ts';

export interface RenewerOptions {
  store: CertStore;
  manager: CertificateManager;
  log: Logger;
  intervalMs: number;
  renewAtFraction?: number;
  now?: () => number;
  /**
   * Whether a due certificate is still wanted. On-demand certificates of pods that are gone are left to
   * expire instead of being renewed (renewing them forever would spend CA quota on nothing); never deleted
   * here, because an empty route table at start looks exactly like "every pod is gone".
   */
  wanted?: (record: CertificateRecord) => boolean;
}

export class Renewer {
  private readonly options: RenewerOptions;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(options: RenewerOptions) {
    this.options = options;
  }

  start(): void {
    this.timer = setInterval(() => void this.runOnce(), this.options.intervalMs);
    this.timer.unref();
    void this.runOnce();
  }

  /** One pass over the store; concurrent calls share the pass. Never throws. */
  runOnce(): Promise<void> {
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  private async pass(): Promise<void> {
    const { store, manager, log } = this.options;
    const now = (this.options.now ?? Date.now)();
    try {
      const due = (await store.listCertificates()).filter((r) =>
        isRenewalDue(r, now, this.options.renewAtFraction ?? RENEW_AT_FRACTION),
      );
      // One at a time: renewals are rare, and a burst against the CA is what rate limits punish.
      for (const record of due) {
        if (this.options.wanted && !this.options.wanted(record)) {
          log.debug({ id: record.id }, 'not renewing an on-demand certificate whose pod is gone');
          continue;
        }
        try {
          const renewed = await manager.renewIfDue(record.id);
          if (renewed) log.info({ id: renewed.id, notAfter: renewed.notAfter }, 'certificate renewed');
        } catch (err) {
          log.warn({ id: record.id, err: String(err) }, 'certificate renewal failed');
        }
      }
    } catch (err) {
      log.warn({ err: String(err) }, 'renewal pass failed (store unavailable?); will retry');
    }
  }
}
