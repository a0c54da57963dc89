// The per-pod provisioning and exec log: every command the orchestrator runs in a pod (hooks, admin exec), and
// every sleep and wake with its reason, is recorded here, capped in count and expired by age. Redis stream per pod
// (shared by every orchestrator process), or memory without Redis.
import type { Redis } from 'ioredis';
import { z } from 'zod';

/** Output kept per stream in a log entry; the exec answer itself may carry more. */
export const LOG_OUTPUT_LIMIT = 4096;

export const ExecLogEntrySchema = z.object({
  id: z.string(),
  time: z.iso.datetime({ offset: true }),
  label: z.string(),
  command: z.array(z.string()),
  exitCode: z.number().int().nullable(),
  stdout: z.string(),
  stderr: z.string(),
  /** True when stdout or stderr was cut to LOG_OUTPUT_LIMIT. */
  truncated: z.boolean(),
  durationMs: z.number().nonnegative(),
  /** Why the command did not finish (timeout, the pod went away). */
  error: z.string().optional(),
  /**
   * Set on entries that record what the orchestrator did to the pod rather than a command (label `sleep`, `wake`,
   * `wake refused`; `command` is empty): what happened and why.
   */
  note: z.string().optional(),
});
export type ExecLogEntry = z.infer<typeof ExecLogEntrySchema>;
export type NewExecLogEntry = Omit<ExecLogEntry, 'id' | 'truncated'>;

export interface ExecLog {
  append(slug: string, entry: NewExecLogEntry): Promise<void>;
  /** Newest first, at most `limit`, none older than the retention. */
  read(slug: string, limit: number): Promise<ExecLogEntry[]>;
}

export interface ExecLogOptions {
  retentionMs: number;
  maxEntries: number;
  now?: () => number;
}

/** Cut output to the log limit; the pure part both implementations share. */
export function truncateEntry(entry: NewExecLogEntry): Omit<ExecLogEntry, 'id'> {
  const cut = (s: string) => (s.length > LOG_OUTPUT_LIMIT ? s.slice(0, LOG_OUTPUT_LIMIT) : s);
  const truncated = entry.stdout.length > LOG_OUTPUT_LIMIT || entry.stderr.length > LOG_OUTPUT_LIMIT;
  return { ...entry, command: entry.command.map((c) => cut(c)), stdout: cut(entry.stdout), stderr: cut(entry.stderr), truncated };
}

export class MemoryExecLog implements ExecLog {
  private readonly logs = new Map<string, ExecLogEntry[]>();
  private readonly options: Required<ExecLogOptions>;
  private seq = 0;

  constructor(options: ExecLogOptions) {
    this.options = { now: Date.now, ...options };
  }

  async append(slug: string, entry: NewExecLogEntry): Promise<void> {
    const list = this.logs.get(slug) ?? [];
    list.push({ ...truncateEntry(entry), id: `${this.options.now()}-${this.seq++}` });
    this.logs.set(slug, this.prune(list));
  }

  async read(slug: string, limit: number): Promise<ExecLogEntry[]> {
    const list = this.prune(this.logs.get(slug) ?? []);
    if (list.length === 0) this.logs.delete(slug);
    else this.logs.set(slug, list);
    return list.slice(-limit).reverse();
  }

  private prune(list: ExecLogEntry[]): ExecLogEntry[] {
    const oldest = this.options.now() - this.options.retentionMs;
    const fresh = list.filter((e) => Date.parse(e.time) >= oldest);
    return fresh.slice(-this.options.maxEntries);
  }
}

export function execLogKey(prefix: string, slug: string): string {
  return `${prefix}pods:${slug}:log`;
}

export class RedisExecLog implements ExecLog {
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly options: Required<ExecLogOptions>;

  constructor(redis: Redis, options: ExecLogOptions & { prefix?: string }) {
    this.redis = redis;
    this.prefix = options.prefix ?? 'podgate:';
    this.options = { now: Date.now, ...options };
  }

  async append(slug: string, entry: NewExecLogEntry): Promise<void> {
    const key = execLogKey(this.prefix, slug);
    const now = this.options.now();
    const { retentionMs, maxEntries } = this.options;
    // Stream IDs are milliseconds, so MINID trims by age; MAXLEN caps the count; the key itself expires once
    // nothing was written for a whole retention period. `~` lets Redis trim whole nodes (cheap).
    // The ID carries our clock's milliseconds (what read() filters on); `-*` lets Redis pick the sequence. If
    // another process already wrote a later ID (clocks apart), Redis' own `*` keeps the stream ordered.
    const json = JSON.stringify(truncateEntry(entry));
    const minId = String(Math.max(0, now - retentionMs));
    const write = (id: string) =>
      this.redis.multi().xadd(key, 'MINID', '~', minId, id, 'e', json).xtrim(key, 'MAXLEN', '~', maxEntries).pexpire(key, retentionMs).exec();
    const results = await write(`${now}-*`);
    if (results?.[0]?.[0]) await write('*');
  }

  async read(slug: string, limit: number): Promise<ExecLogEntry[]> {
    const oldest = this.options.now() - this.options.retentionMs;
    const rows = await this.redis.xrevrange(execLogKey(this.prefix, slug), '+', String(Math.max(0, oldest)), 'COUNT', limit);
    const out: ExecLogEntry[] = [];
    for (const [id, fields] of rows) {
      const json = fields[fields.indexOf('e') + 1];
      if (json === undefined) continue;
      let raw: unknown;
      try {
        raw = JSON.parse(json);
      } catch {
        continue;
      }
      const parsed = ExecLogEntrySchema.safeParse({ ...(raw as object), id });
      if (parsed.success) out.push(parsed.data);
    }
    return out;
  }
}
