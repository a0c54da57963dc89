// Pure decisions that turn what Docker shows into pods and routes: container labels -> observed pod, pod state ->
// route status, and whether the stored route needs a new write. No I/O here.
import { z } from 'zod';
import { MAX_DECLARED_PORTS, PortSchema, RouterKeySchema, type AccessPolicy, type Route, type RouteStatus } from '../shared/route.ts';
import { LABELS, type ContainerState, type PodContainer } from './container-runtime.ts';
import { PodSpecSchema, type PodSpec } from './spec.ts';

/**
 * `sleeping`: stopped because idle (or by POST /sleep), its container kept (exited) with its host port; a wake
 * request from a gateway or POST /wake starts it again.
 */
export const POD_STATES = ['pending', 'provisioning', 'starting', 'running', 'stopping', 'stopped', 'sleeping', 'failed', 'terminating'] as const;
export type PodState = (typeof POD_STATES)[number];

export interface ObservedPod {
  slug: string;
  containerId: string;
  container: ContainerState;
  hostPort: number;
  generation: number;
  spec: PodSpec;
  /** Absent for a container made before pods had router keys (its router asks for none). */
  routerKey: string | undefined;
}

const GenerationLabel = z.coerce.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const PortLabel = z.coerce.number().pipe(PortSchema);

/** Read a pod container's labels; an error (naming the label) means the container is an orphan we cannot use. */
export function observePod(c: PodContainer): { pod?: ObservedPod; error?: string } {
  const slug = c.labels[LABELS.slug];
  if (!slug) return { error: `label ${LABELS.slug} missing` };
  const port = PortLabel.safeParse(c.labels[LABELS.hostPort]);
  if (!port.success) return { error: `label ${LABELS.hostPort} is not a port` };
  const generation = GenerationLabel.safeParse(c.labels[LABELS.generation]);
  if (!generation.success) return { error: `label ${LABELS.generation} is not a generation` };
  let raw: unknown;
  try {
    raw = JSON.parse(c.labels[LABELS.spec] ?? '');
  } catch {
    return { error: `label ${LABELS.spec} is not JSON` };
  }
  const spec = PodSpecSchema.safeParse(raw);
  if (!spec.success || spec.data.slug !== slug) return { error: `label ${LABELS.spec} is not a valid spec of ${slug}` };
  const keyLabel = c.labels[LABELS.routerKey];
  const routerKey = keyLabel === undefined ? undefined : RouterKeySchema.safeParse(keyLabel);
  if (routerKey && !routerKey.success) return { error: `label ${LABELS.routerKey} is not a router key` };
  return {
    pod: { slug, containerId: c.id, container: c.state, hostPort: port.data, generation: generation.data, spec: spec.data, routerKey: routerKey?.data },
  };
}

/** What a pod is, judged only from its container (a pod we did not start ourselves, or one changed behind our back). */
export function stateFromContainer(state: ContainerState): PodState {
  switch (state) {
    case 'running':
      return 'running';
    case 'restarting':
      return 'starting';
    case 'removing':
      return 'terminating';
    default:
      // created (never started), paused, exited, dead: not serving.
      return 'stopped';
  }
}

/** The route a pod in `state` should have; undefined means no route at all. */
export function routeStatusFor(state: PodState): RouteStatus | undefined {
  switch (state) {
    case 'running':
      return 'running';
    case 'starting':
      return 'starting';
    case 'sleeping':
      return 'sleeping';
    case 'stopping':
    case 'stopped':
    case 'failed':
      return 'stopped';
    default:
      // pending and provisioning have nothing to route to yet; terminating is on its way out.
      return undefined;
  }
}

export interface DesiredRoute {
  slug: string;
  host: string;
  port: number;
  status: RouteStatus;
  defaultPort: number;
  ports: number[];
  access?: AccessPolicy;
  maxConnections?: number;
  routerKey?: string;
}

export interface RouteInputs {
  slug: string;
  state: PodState;
  hostAddress: string;
  hostPort: number | undefined;
  spec: Pick<PodSpec, 'defaultPort' | 'access' | 'maxConnections' | 'services'>;
  /** The container's router key: lives as long as the container, so every route of it carries the same one. */
  routerKey?: string | undefined;
}

/**
 * The in-pod ports a pod declares, for the route's `ports`: the default port, the services' ports, then the ports
 * the access policy names (ascending), each once. Beyond MAX_DECLARED_PORTS the rest is left out, since a longer
 * list would make the whole route invalid; those ports are still routed, only not issued certificates on demand.
 */
export function declaredPorts(spec: Pick<PodSpec, 'defaultPort' | 'access' | 'services'>): number[] {
  // The policy's keys are port-shaped strings up to 99999; only real ports can be in the route.
  const policy = Object.keys(spec.access?.ports ?? {})
    .map(Number)
    .filter((p) => PortSchema.safeParse(p).success)
    .sort((a, b) => a - b);
  return [...new Set([spec.defaultPort, ...spec.services.map((s) => s.port), ...policy])].slice(0, MAX_DECLARED_PORTS);
}

export function desiredRoute(p: RouteInputs): DesiredRoute | undefined {
  const status = routeStatusFor(p.state);
  if (!status || p.hostPort === undefined) return undefined;
  return {
    slug: p.slug,
    host: p.hostAddress,
    port: p.hostPort,
    status,
    defaultPort: p.spec.defaultPort,
    ports: declaredPorts(p.spec),
    ...(p.spec.access ? { access: p.spec.access } : {}),
    ...(p.spec.maxConnections ? { maxConnections: p.spec.maxConnections } : {}),
    ...(p.routerKey ? { routerKey: p.routerKey } : {}),
  };
}

/** True when the stored route does not say what the pod needs (missing or stale). */
export function routeNeedsWrite(current: Route | undefined, desired: DesiredRoute): boolean {
  if (!current) return true;
  return (
    current.host !== desired.host ||
    current.port !== desired.port ||
    current.status !== desired.status ||
    current.defaultPort !== desired.defaultPort ||
    current.maxConnections !== desired.maxConnections ||
    JSON.stringify(current.ports ?? null) !== JSON.stringify(desired.ports) ||
    current.routerKey !== desired.routerKey ||
    JSON.stringify(current.access ?? null) !== JSON.stringify(desired.access ?? null)
  );
}

export function toRoute(desired: DesiredRoute, generation: number, now: Date = new Date()): Route {
  return { ...desired, generation, updatedAt: now.toISOString() };
}

export type PodOperation = 'start' | 'stop' | 'restart' | 'delete' | 'exec' | 'sleep' | 'wake';

/** The lifecycle state machine: which operation a pod in a state accepts. Start of a sleeping pod wakes it. */
const ALLOWED: Record<PodOperation, readonly PodState[]> = {
  start: ['stopped', 'sleeping', 'failed'],
  stop: ['running', 'starting', 'sleeping', 'failed'],
  restart: ['running', 'stopped', 'sleeping', 'failed'],
  delete: ['pending', 'provisioning', 'starting', 'running', 'stopping', 'stopped', 'sleeping', 'failed'],
  exec: ['running', 'starting'],
  sleep: ['running'],
  wake: ['sleeping'],
};

/**
 * The state to adopt a pod's container in, judged from the container and the route the store holds for it: labels
 * cannot change after creation, so a sleeping pod is known as such only by its route. An exited (or never started)
 * container whose route of this host and port says `sleeping` stays asleep; without that route (Redis lost it) it
 * is `stopped`, and only an admin start brings it back.
 */
export function adoptedState(container: ContainerState, route: Pick<Route, 'host' | 'port' | 'status'> | undefined, here: { host: string; port: number }): PodState {
  const fromDocker = stateFromContainer(container);
  if (fromDocker === 'stopped' && route?.status === 'sleeping' && route.host === here.host && route.port === here.port) return 'sleeping';
  return fromDocker;
}

export function canDo(op: PodOperation, state: PodState): boolean {
  return ALLOWED[op].includes(state);
}
