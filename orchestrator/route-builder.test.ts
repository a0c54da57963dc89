import { describe, expect, it } from 'vitest';
import { LABELS, type PodContainer } from './container-runtime.ts';
import { MAX_DECLARED_PORTS, RouteSchema } from '../shared/route.ts';
import { adoptedState, canDo, declaredPorts, desiredRoute, observePod, routeNeedsWrite, stateFromContainer, toRoute } from './route-builder.ts';
import { parsePodSpec } from './spec.ts';

const spec = parsePodSpec({ slug: 'app', defaultPort: 8080, access: { default: 'public' } });
function container(labels: Record<string, string>, state: PodContainer['state'] = 'running'): PodContainer {
  return { id: 'c1', name: 'podgate-app', state, created: 1, labels };
}
const good = { [LABELS.slug]: 'app', [LABELS.hostPort]: '30001', [LABELS.generation]: '42', [LABELS.spec]: JSON.stringify(spec) };

describe('route builder', () => {
  it('reads a pod from its container labels', () => {
    expect(observePod(container(good)).pod).toMatchObject({ slug: 'app', hostPort: 30001, generation: 42, container: 'running', spec: { defaultPort: 8080 } });
  });

  it('names the label it cannot use', () => {
    expect(observePod(container({ ...good, [LABELS.slug]: '' })).error).toMatch(LABELS.slug);
    expect(observePod(container({ ...good, [LABELS.hostPort]: 'x' })).error).toMatch(LABELS.hostPort);
    expect(observePod(container({ ...good, [LABELS.generation]: '-1' })).error).toMatch(LABELS.generation);
    expect(observePod(container({ ...good, [LABELS.spec]: '{' })).error).toMatch(LABELS.spec);
    expect(observePod(container({ ...good, [LABELS.slug]: 'other' })).error).toMatch(LABELS.spec);
  });

  it('reads the router key label: absent (an older container) is no key, a malformed one makes it an orphan', () => {
    const key = 'c3'.repeat(32);
    expect(observePod(container({ ...good, [LABELS.routerKey]: key })).pod?.routerKey).toBe(key);
    expect(observePod(container(good)).pod?.routerKey).toBeUndefined();
    expect(observePod(container({ ...good, [LABELS.routerKey]: 'short' })).error).toMatch(LABELS.routerKey);
    expect(observePod(container({ ...good, [LABELS.routerKey]: key.toUpperCase() })).error).toMatch(LABELS.routerKey);
  });

  it('carries the router key into the route, and rewrites a route that lacks it or has another', () => {
    const key = 'c3'.repeat(32);
    const d = desiredRoute({ slug: 'app', state: 'running', hostAddress: '10.0.0.1', hostPort: 30001, spec, routerKey: key })!;
    expect(d.routerKey).toBe(key);
    const stored = toRoute(d, 5);
    expect(routeNeedsWrite(stored, d)).toBe(false);
    expect(routeNeedsWrite({ ...stored, routerKey: undefined }, d)).toBe(true);
    expect(routeNeedsWrite({ ...stored, routerKey: 'd4'.repeat(32) }, d)).toBe(true);
    expect(desiredRoute({ slug: 'app', state: 'running', hostAddress: '10.0.0.1', hostPort: 30001, spec })).not.toHaveProperty('routerKey');
  });

  it('maps pod states to route statuses', () => {
    const at = (state: Parameters<typeof desiredRoute>[0]['state']) => desiredRoute({ slug: 'app', state, hostAddress: '10.0.0.1', hostPort: 30001, spec })?.status;
    expect(at('running')).toBe('running');
    expect(at('starting')).toBe('starting');
    expect(at('stopped')).toBe('stopped');
    expect(at('failed')).toBe('stopped');
    expect(at('pending')).toBeUndefined();
    expect(at('terminating')).toBeUndefined();
    expect(desiredRoute({ slug: 'app', state: 'running', hostAddress: 'h', hostPort: undefined, spec })).toBeUndefined();
    expect(stateFromContainer('exited')).toBe('stopped');
    expect(stateFromContainer('running')).toBe('running');
  });

  it('writes only when the stored route is missing or stale', () => {
    const d = desiredRoute({ slug: 'app', state: 'running', hostAddress: '10.0.0.1', hostPort: 30001, spec })!;
    expect(d).toMatchObject({ defaultPort: 8080, access: { default: 'public', ports: {} } });
    const stored = toRoute(d, 5);
    expect(routeNeedsWrite(undefined, d)).toBe(true);
    expect(routeNeedsWrite(stored, d)).toBe(false);
    expect(routeNeedsWrite({ ...stored, status: 'stopped' }, d)).toBe(true);
    expect(routeNeedsWrite({ ...stored, port: 30002 }, d)).toBe(true);
    expect(routeNeedsWrite({ ...stored, access: undefined }, d)).toBe(true);
  });

  it('lists the ports a pod declares: default port, services, then the access policy, each once, bounded', () => {
    const declaring = parsePodSpec({
      slug: 'app',
      defaultPort: 8080,
      services: [{ name: 'app', port: 3000 }, { name: 'terminal', port: 7681 }, { name: 'web', port: 8080 }],
      access: { default: 'private', ports: { '9000': 'public', '3000': 'public', '5173': 'private', '70000': 'public' } },
    });
    const d = desiredRoute({ slug: 'app', state: 'running', hostAddress: '10.0.0.1', hostPort: 30001, spec: declaring })!;
    expect(d.ports).toEqual([8080, 3000, 7681, 5173, 9000]);
    expect(RouteSchema.parse(toRoute(d, 1)).ports).toEqual([8080, 3000, 7681, 5173, 9000]);
    expect(declaredPorts(parsePodSpec({ slug: 'bare' }))).toEqual([3000]);
    // An access policy naming many ports cannot make the route invalid: the list stops at the bound.
    const many = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [String(10_000 + i), 'public' as const]));
    const wide = declaredPorts(parsePodSpec({ slug: 'wide', access: { default: 'private', ports: many } }));
    expect(wide).toHaveLength(MAX_DECLARED_PORTS);
    expect(wide.slice(0, 2)).toEqual([3000, 10_000]);
  });

  it('rewrites a stored route that lacks the declared ports (written by an older orchestrator)', () => {
    const d = desiredRoute({ slug: 'app', state: 'running', hostAddress: '10.0.0.1', hostPort: 30001, spec })!;
    const { ports: _ports, ...older } = toRoute(d, 5);
    expect(routeNeedsWrite(older, d)).toBe(true);
    expect(routeNeedsWrite({ ...older, ports: [8080, 1] }, d)).toBe(true);
    expect(routeNeedsWrite({ ...older, ports: [8080] }, d)).toBe(false);
  });

  it('the state machine refuses what makes no sense', () => {
    expect(canDo('start', 'stopped')).toBe(true);
    expect(canDo('start', 'terminating')).toBe(false);
    expect(canDo('exec', 'stopped')).toBe(false);
    expect(canDo('delete', 'terminating')).toBe(false);
  });

  it('a sleeping pod: its route says sleeping, it may be woken, stopped, restarted or deleted, not slept again or exec-ed', () => {
    expect(desiredRoute({ slug: 'app', state: 'sleeping', hostAddress: '10.0.0.1', hostPort: 30001, spec })?.status).toBe('sleeping');
    for (const op of ['wake', 'start', 'stop', 'restart', 'delete'] as const) expect(canDo(op, 'sleeping'), op).toBe(true);
    expect(canDo('sleep', 'sleeping')).toBe(false);
    expect(canDo('exec', 'sleeping')).toBe(false);
    expect(canDo('sleep', 'running')).toBe(true);
    for (const state of ['stopped', 'starting', 'failed', 'pending'] as const) expect(canDo('sleep', state), state).toBe(false);
    for (const state of ['running', 'stopped', 'failed'] as const) expect(canDo('wake', state), state).toBe(false);
  });

  it('adopts an exited container as sleeping only when its route of this host and port says so', () => {
    const here = { host: '10.0.0.1', port: 30001 };
    const route = { host: '10.0.0.1', port: 30001, status: 'sleeping' as const };
    expect(adoptedState('exited', route, here)).toBe('sleeping');
    expect(adoptedState('created', route, here)).toBe('sleeping');
    // Redis lost the route: nothing says the pod was asleep.
    expect(adoptedState('exited', undefined, here)).toBe('stopped');
    expect(adoptedState('exited', { ...route, status: 'stopped' }, here)).toBe('stopped');
    expect(adoptedState('exited', { ...route, port: 30002 }, here)).toBe('stopped');
    expect(adoptedState('exited', { ...route, host: '10.0.0.2' }, here)).toBe('stopped');
    // Started behind our back: it runs, whatever the route says.
    expect(adoptedState('running', route, here)).toBe('running');
  });
});
