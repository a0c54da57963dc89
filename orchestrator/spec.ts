// The pod spec: what an admin asks for (zod, validated at the API border), and the resource tiers it maps to.
import { z } from 'zod';
import { ValidationError } from '../shared/errors.ts';
import { AccessPolicySchema, PortSchema, SlugSchema } from '../shared/route.ts';
import { parseIdleTimeout } from './idle.ts';
import { applyTemplate, DEFAULT_TEMPLATE, TEMPLATE_NAMES } from './templates.ts';

const GIB = 1024 ** 3;
const NANO_CPUS_PER_CPU = 1e9;
/** Docker's CpuShares weight of one full CPU (its default for a container is 1024). */
const SHARES_PER_CPU = 1024;

export interface Tier {
  /** Guaranteed share under contention (Docker CpuShares, relative weight). */
  minCpus: number;
  /** Hard ceiling (Docker NanoCpus). */
  maxCpus: number;
  memoryBytes: number;
}

export const TIERS = {
  'dev.small': { minCpus: 0.5, maxCpus: 1, memoryBytes: 1 * GIB },
  'dev.medium': { minCpus: 1, maxCpus: 2, memoryBytes: 2 * GIB },
  'dev.large': { minCpus: 2, maxCpus: 4, memoryBytes: 4 * GIB },
  'dev.xlarge': { minCpus: 4, maxCpus: 8, memoryBytes: 8 * GIB },
} as const satisfies Record<string, Tier>;
export type TierName = keyof typeof TIERS;
export const TierNameSchema = z.enum(Object.keys(TIERS) as [TierName, ...TierName[]]);

export interface ResourceLimits {
  nanoCpus: number;
  cpuShares: number;
  memoryBytes: number;
}

/**
 * Docker limits for a tier. Docker refuses a NanoCpus above the host's CPU count, so the ceiling is clamped to
 * what the host has (a dev.xlarge on a 2-core host gets 2 CPUs); memory is never clamped.
 */
export function tierLimits(tier: TierName, hostCpus: number): ResourceLimits {
  const t: Tier = TIERS[tier];
  const maxCpus = Math.min(t.maxCpus, Math.max(hostCpus, 0.01));
  return {
    nanoCpus: Math.round(maxCpus * NANO_CPUS_PER_CPU),
    cpuShares: Math.round(t.minCpus * SHARES_PER_CPU),
    memoryBytes: t.memoryBytes,
  };
}

const NameLabel = z.string().regex(/^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/, 'lowercase letters, digits and inner hyphens, at most 32');
const EnvName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'an environment variable name');
/** A Docker image reference: [registry/]name[:tag][@digest], lowercase repository. */
const ImageRef = z
  .string()
  .max(255)
  .regex(/^[a-z0-9]+(?:[._\/-][a-z0-9]+)*(?::[0-9]+)?(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/, 'a Docker image reference like podgate/pod:dev');
/** Names the orchestrator sets itself; a spec must not override them. */
export const RESERVED_LABEL_PREFIX = 'podgate.';
const MAX_LABELS = 32;
const MAX_ENV = 128;
const MAX_HOOKS = 16;
const MAX_SERVICES = 16;
export const MAX_HOOK_TIMEOUT_MS = 10 * 60_000;
export const DEFAULT_HOOK_TIMEOUT_MS = 60_000;

export const CommandSchema = z.union([
  z.string().min(1).max(8192).transform((s) => ['/bin/sh', '-c', s]),
  z.array(z.string().max(8192)).min(1).max(256),
]);

/**
 * A service the pod runs. `name` selects the pod image's service definition (/etc/podgate/services/<name>.service,
 * see docker/README.md) and goes into POD_SERVICES; `port` is the in-pod port it listens on, for the pod's URLs.
 */
export const ServiceSchema = z.strictObject({
  name: NameLabel,
  port: PortSchema.refine((p) => p !== 80, 'port 80 is the in-pod router'),
});
export type Service = z.infer<typeof ServiceSchema>;

export const HookSchema = z.strictObject({
  command: CommandSchema,
  label: z.string().max(100).optional(),
  timeoutMs: z.number().int().min(100).max(MAX_HOOK_TIMEOUT_MS).default(DEFAULT_HOOK_TIMEOUT_MS),
});
export type Hook = z.infer<typeof HookSchema>;

/**
 * How long the pod may go without a request (or an open WebSocket) through any gateway before it is put to sleep
 * (stopped, woken by the next request): `30m`, `90s`, `2h`, or `off`. Kept as written, so the spec stored in the
 * container's label parses to itself.
 */
export const IdleTimeoutSchema = z.string().max(40).superRefine((text, ctx) => {
  const parsed = parseIdleTimeout(text);
  if ('error' in parsed) ctx.addIssue({ code: 'custom', message: parsed.error });
});

export const PodSpecSchema = z
  .strictObject({
    slug: SlugSchema,
    name: z.string().min(1).max(100).optional(),
    /** A stack template (orchestrator/templates.ts): it fills image, services, defaultPort and environment. */
    template: z.enum(TEMPLATE_NAMES, { error: () => `unknown template; known: ${TEMPLATE_NAMES.join(', ')}` }).default(DEFAULT_TEMPLATE),
    // Absent: the template's. Given: these win over the template's (environment variable by variable).
    image: ImageRef.optional(),
    services: z.array(ServiceSchema).max(MAX_SERVICES).optional(),
    environment: z
      .record(EnvName, z.string().max(32_768))
      .refine((e) => Object.keys(e).length <= MAX_ENV, `at most ${MAX_ENV} variables`)
      .optional(),
    defaultPort: PortSchema.optional(),
    tier: TierNameSchema.default('dev.small'),
    postStart: z.array(HookSchema).max(MAX_HOOKS).default([]),
    /** Who may reach the pod through gateways; absent means private (shared/route.ts). */
    access: AccessPolicySchema.optional(),
    /** Cap on concurrent client connections per gateway. */
    maxConnections: z.number().int().positive().max(1_000_000).optional(),
    /** Absent: the orchestrator's POD_IDLE_TIMEOUT (default off). */
    idleTimeout: IdleTimeoutSchema.optional(),
    labels: z
      .record(
        z.string().min(1).max(128).regex(/^[a-zA-Z0-9][a-zA-Z0-9._\/-]*$/, 'a label key').refine((k) => !k.startsWith(RESERVED_LABEL_PREFIX), `must not start with ${RESERVED_LABEL_PREFIX}`),
        z.string().max(1024),
      )
      .refine((l) => Object.keys(l).length <= MAX_LABELS, `at most ${MAX_LABELS} labels`)
      .default({}),
  })
  .transform((spec) => applyTemplate(spec))
  .superRefine((spec, ctx) => {
    const seenNames = new Set<string>();
    const seenPorts = new Set<number>();
    if (Object.keys(spec.environment).length > MAX_ENV) ctx.addIssue({ code: 'custom', path: ['environment'], message: `at most ${MAX_ENV} variables` });
    spec.services.forEach((s, i) => {
      if (seenNames.has(s.name)) ctx.addIssue({ code: 'custom', path: ['services', i, 'name'], message: `duplicate service name ${s.name}` });
      if (seenPorts.has(s.port)) ctx.addIssue({ code: 'custom', path: ['services', i, 'port'], message: `duplicate service port ${s.port}` });
      seenNames.add(s.name);
      seenPorts.add(s.port);
    });
  });
export type PodSpec = z.infer<typeof PodSpecSchema>;
export type PodSpecInput = z.input<typeof PodSpecSchema>;

/** `services[1].port` style path for messages. */
export function issuePath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out ? '.' : ''}${String(p)}`;
  return out || 'body';
}

/** Validate with a schema; the first issue becomes a ValidationError naming its field. */
export function parseOrThrow<T extends z.ZodType>(schema: T, input: unknown, fieldPrefix = ''): z.infer<T> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const path = issuePath(issue.path);
  const field = fieldPrefix ? (path === 'body' ? fieldPrefix : `${fieldPrefix}.${path}`) : path;
  throw new ValidationError(field, issue.message);
}

export function parsePodSpec(input: unknown): PodSpec {
  return parseOrThrow(PodSpecSchema, input);
}
