import { describe, expect, it } from 'vitest';
import type { Route } from '../shared/route.ts';
import type { PodRecord } from './pods.ts';
import { decidePod, shouldForget } from './reconcile-plan.ts';
import type { ObservedPod } from './route-builder.ts';
import { parsePodSpec } from './spec.ts';

const HOST = '127.0.0.1';
const spec = parsePodSpec({ slug: 'app' });
const observed = (container: ObservedPod['container'], containerId = 'c1'): ObservedPod => ({
  slug: 'app', containerId, container, hostPort: 30001, generation: 7, spec, routerKey: undefined,
});
const record = (state: PodRecord['state'], extra: Partial<PodRecord> = {}): PodRecord => ({
  slug: 'app', spec: { ...spec, image: 'img' }, state, hostPort: 30001, containerId: 'c1', generation: 7, routerKey: undefined,
  routeGeneration: 1, createdAt: '2026-12-01T00:00:00.000Z', updatedAt: '2026-12-01T00:00:00.000Z', error: undefined, ...extra,
});
const route = (status: Route['status'], extra: Partial<Route> = {}): Route => ({
  slug: 'app', host: HOST, port: 30001, status, generation: 9, defaultPort: 3000, updatedAt: '2026-12-01T00:00:00.000Z', ...extra,
});

describe('reconcile plan', () => {
  it('adopts an unknown container, or a newer one than the one known, in the state Docker shows', () => {
    const d = decidePod(observed('running'), undefined, undefined, HOST, Date.parse('2026-12-01T01:00:00Z'));
    expect(d).toMatchObject({ kind: 'adopt', withoutRoute: false, record: { state: 'running', containerId: 'c1', createdAt: '2026-12-01T01:00:00.000Z' } });
    expect(decidePod(observed('running', 'c2'), record('stopped'), undefined, HOST, 0)).toMatchObject({ kind: 'adopt', record: { containerId: 'c2', state: 'running' } });
  });

  it('adopts an exited container as sleeping only while its route of this host and port says so', () => {
    expect(decidePod(observed('exited'), undefined, route('sleeping'), HOST, 0)).toMatchObject({ kind: 'adopt', record: { state: 'sleeping' }, withoutRoute: false });
    expect(decidePod(observed('exited'), undefined, route('sleeping', { port: 30002 }), HOST, 0)).toMatchObject({ record: { state: 'stopped' } });
    // Redis lost the route: stopped, and said to have no route.
    expect(decidePod(observed('exited'), undefined, undefined, HOST, 0)).toMatchObject({ record: { state: 'stopped' }, withoutRoute: true });
  });

  it('takes the access policy of the route this incarnation wrote, not the label', () => {
    const access = { default: 'public' as const, ports: {} };
    expect(decidePod(observed('running'), undefined, route('running', { access, maxConnections: 5 }), HOST, 0)).toMatchObject({
      record: { spec: { access, maxConnections: 5 } },
    });
    const other = decidePod(observed('running'), undefined, route('running', { access, host: '10.0.0.9' }), HOST, 0);
    expect(other.kind === 'adopt' && other.record.spec.access).toEqual(spec.access);
  });

  it('follows a container changed behind the orchestrator, saying how', () => {
    expect(decidePod(observed('exited'), record('running'), undefined, HOST, 0)).toEqual({ kind: 'follow', was: 'running', state: 'stopped', error: 'container exited outside the orchestrator' });
    expect(decidePod(observed('running'), record('stopped', { error: 'old' }), undefined, HOST, 0)).toEqual({ kind: 'follow', was: 'stopped', state: 'running', error: 'old' });
  });

  it('keeps a pod that agrees with Docker, one between states, and a failed or sleeping pod whose container exited', () => {
    expect(decidePod(observed('running'), record('running'), undefined, HOST, 0)).toEqual({ kind: 'keep' });
    expect(decidePod(observed('exited'), record('stopping'), undefined, HOST, 0)).toEqual({ kind: 'keep' });
    expect(decidePod(observed('exited'), record('failed'), undefined, HOST, 0)).toEqual({ kind: 'keep' });
    expect(decidePod(observed('exited'), record('sleeping'), undefined, HOST, 0)).toEqual({ kind: 'keep' });
  });

  it('forgets a vanished pod at rest, but not a rolled-back creation or one between states', () => {
    expect(shouldForget(record('running'))).toBe(true);
    expect(shouldForget(record('sleeping'))).toBe(true);
    expect(shouldForget(record('failed'))).toBe(true);
    expect(shouldForget(record('failed', { containerId: undefined }))).toBe(false);
    expect(shouldForget(record('provisioning'))).toBe(false);
  });
});
