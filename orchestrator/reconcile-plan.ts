// What reconcile decides about each pod, from what Docker shows, what this process knows and what the route table
// holds (pure: no I/O). reconcile.ts gathers those, takes the pod's lock, asks here, and has PodService apply the
// answer: PodService is the one writer of pod records.
import type { Route } from '../shared/route.ts';
import type { PodRecord } from './pods.ts';
import { adoptedState, stateFromContainer, type ObservedPod, type PodState } from './route-builder.ts';

export type PodDecision =
  /** A container this process does not know (or a newer one than it knows): take it over as `record`. */
  | { kind: 'adopt'; record: PodRecord; withoutRoute: boolean }
  /** The container changed state outside the orchestrator: the pod follows it. */
  | { kind: 'follow'; was: PodState; state: PodState; error: string | undefined }
  | { kind: 'keep' };

/** A pod is at rest when no operation of ours is between states (busy() already excludes our in-flight ones). */
export function atRest(record: PodRecord): boolean {
  return record.state === 'running' || record.state === 'stopped' || record.state === 'sleeping' || record.state === 'failed' || record.state === 'starting';
}

/**
 * One pod whose container Docker lists. `stored` is its route in the table (of whichever host), `hostAddress` this
 * orchestrator's, `nowMs` the time an adopted record is dated.
 */
export function decidePod(pod: ObservedPod, record: PodRecord | undefined, stored: Route | undefined, hostAddress: string, nowMs: number): PodDecision {
  const fromDocker = stateFromContainer(pod.container);
  if (!record || record.containerId !== pod.containerId) {
    // A sleeping pod is known as such only by its route (labels cannot change): lost with Redis, it is stopped.
    const adopted = adoptedRecord(pod, adoptedState(pod.container, stored, { host: hostAddress, port: pod.hostPort }), nowMs);
    // Visibility can change after creation (PUT /v1/pods/:slug/access) but labels cannot: the route this
    // incarnation last wrote holds the current policy; the label's is the fallback if Redis lost it.
    if (stored && stored.host === hostAddress && stored.port === pod.hostPort) {
      adopted.spec = { ...adopted.spec, access: stored.access, maxConnections: stored.maxConnections };
    }
    return { kind: 'adopt', record: adopted, withoutRoute: !stored && adopted.state === 'stopped' };
  }
  // A failed start leaves a stopped container: `failed` with its reason says more than `stopped`; a sleeping pod's
  // container is exited on purpose.
  const expectedExit = fromDocker === 'stopped' && (record.state === 'failed' || record.state === 'sleeping');
  if (record.state === fromDocker || !atRest(record) || expectedExit) return { kind: 'keep' };
  const error = fromDocker === 'stopped' && pod.container !== 'created' ? `container ${pod.container} outside the orchestrator` : record.error;
  return { kind: 'follow', was: record.state, state: fromDocker, error };
}

/** A pod this process knows whose container Docker no longer lists: forget it (void links, drop route and port)? */
export function shouldForget(record: PodRecord): boolean {
  // A failed creation was rolled back on purpose and is kept to show its error.
  return atRest(record) && !(record.state === 'failed' && record.containerId === undefined);
}

function adoptedRecord(pod: ObservedPod, state: PodState, nowMs: number): PodRecord {
  const at = new Date(nowMs).toISOString();
  return {
    slug: pod.slug,
    spec: { ...pod.spec, image: pod.spec.image ?? '' },
    state,
    hostPort: pod.hostPort,
    containerId: pod.containerId,
    generation: pod.generation,
    routerKey: pod.routerKey,
    routeGeneration: 0,
    createdAt: at,
    updatedAt: at,
    error: undefined,
  };
}
