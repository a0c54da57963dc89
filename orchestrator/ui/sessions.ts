// Dashboard sessions, kept in this process's memory: a random id (the cookie's value) maps to an expiry, the
// session's CSRF token and a one-time message for the next page. Nothing in the cookie means anything by itself, so
// signing out (or a restart) ends a session for good. The count is bounded: a full table forgets the session that
// expires first.
import { randomBytes, timingSafeEqual } from 'node:crypto';

export const SESSION_TTL_MS = 8 * 3600_000;
export const MAX_SESSIONS = 64;

/** Shown once on the next page: an outcome, an error, or a freshly minted link (whose token exists nowhere else). */
export interface Flash {
  kind: 'ok' | 'error' | 'link';
  text: string;
}

export interface Session {
  readonly id: string;
  readonly csrf: string;
  readonly expiresAt: number;
  flash: Flash | undefined;
}

const newSecret = () => randomBytes(32).toString('base64url');

export class SessionStore {
  private readonly sessions = new Map<string, Session>();
  private readonly ttlMs: number;
  private readonly max: number;
  private readonly now: () => number;

  constructor(options: { ttlMs?: number; max?: number; now?: () => number } = {}) {
    this.ttlMs = options.ttlMs ?? SESSION_TTL_MS;
    this.max = options.max ?? MAX_SESSIONS;
    this.now = options.now ?? Date.now;
  }

  create(): Session {
    this.sweep();
    if (this.sessions.size >= this.max) {
      // Every session lives equally long, so the first inserted is the first to expire.
      this.sessions.delete(this.sessions.keys().next().value!);
    }
    const session: Session = { id: newSecret(), csrf: newSecret(), expiresAt: this.now() + this.ttlMs, flash: undefined };
    this.sessions.set(session.id, session);
    return session;
  }

  /** The live session of a cookie value, if any. */
  get(id: string | undefined): Session | undefined {
    if (!id) return undefined;
    const session = this.sessions.get(id);
    if (!session) return undefined;
    if (session.expiresAt <= this.now()) {
      this.sessions.delete(id);
      return undefined;
    }
    return session;
  }

  delete(id: string): void {
    this.sessions.delete(id);
  }

  get size(): number {
    return this.sessions.size;
  }

  private sweep(): void {
    const now = this.now();
    for (const [id, s] of this.sessions) if (s.expiresAt <= now) this.sessions.delete(id);
  }
}

/** Constant-time comparison of a submitted CSRF token with the session's. */
export function csrfMatches(session: Session, submitted: unknown): boolean {
  if (typeof submitted !== 'string') return false;
  const a = Buffer.from(submitted);
  const b = Buffer.from(session.csrf);
  return a.length === b.length && timingSafeEqual(a, b);
}
