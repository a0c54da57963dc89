// The in-memory certificates the SNI callback picks from: exact name, then a matching wildcard, among the
// unexpired ones only. Kept in step with the store by change events and periodic reloads, so renewed
// certificates are served without a restart. Expired ones stay held (renewal may still replace them) but are
// never served: a client refuses them anyway, a valid wildcard is better, and a name left without a valid
// certificate falls to the default one, which is what lets on-demand issuance start for it again.
import { createSecureContext, type SecureContext } from 'node:tls';
import type { CertificateRecord } from '../../shared/cert-store.ts';
import { sniCandidates } from './names.ts';

interface Entry {
  record: CertificateRecord;
  context: SecureContext;
  notAfterMs: number;
}

export class CertIndex {
  private readonly byId = new Map<string, Entry>();
  private readonly byName = new Map<string, Set<string>>();
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  get size(): number {
    return this.byId.size;
  }

  /** Add or replace a certificate. @throws if the PEM does not load (the caller logs and skips it). */
  set(record: CertificateRecord): void {
    const held = this.byId.get(record.id);
    if (held && held.record.certPem === record.certPem && held.record.keyPem === record.keyPem) {
      held.record = record; // only renewal bookkeeping changed: keep the context
      held.notAfterMs = Date.parse(record.notAfter);
      return;
    }
    const context = createSecureContext({ key: record.keyPem, cert: record.certPem });
    this.remove(record.id);
    this.byId.set(record.id, { record, context, notAfterMs: Date.parse(record.notAfter) });
    for (const name of record.names) {
      let ids = this.byName.get(name);
      if (!ids) this.byName.set(name, (ids = new Set()));
      ids.add(record.id);
    }
  }

  remove(id: string): void {
    const held = this.byId.get(id);
    if (!held) return;
    this.byId.delete(id);
    for (const name of held.record.names) {
      const ids = this.byName.get(name);
      ids?.delete(id);
      if (ids?.size === 0) this.byName.delete(name);
    }
  }

  ids(): string[] {
    return [...this.byId.keys()];
  }

  get(id: string): CertificateRecord | undefined {
    return this.byId.get(id)?.record;
  }

  /**
   * The certificate for an SNI name among the unexpired ones: exact name first, then wildcard; among several,
   * the longest-lived. Undefined means the default certificate.
   */
  select(servername: string): { id: string; context: SecureContext } | undefined {
    const now = this.now();
    for (const candidate of sniCandidates(servername)) {
      let best: Entry | undefined;
      for (const id of this.byName.get(candidate) ?? []) {
        const entry = this.byId.get(id)!;
        if (entry.notAfterMs <= now) continue;
        if (!best || entry.notAfterMs > best.notAfterMs) best = entry;
      }
      if (best) return { id: best.record.id, context: best.context };
    }
    return undefined;
  }
}
