// Host -> upstream target (pure, synchronous): the decision the request path makes for every request. The Host
// it is given is the request's one authority (request-target.ts has already reconciled it with the target).
import { PodNotFoundError, PodUnavailableError } from '../shared/errors.ts';
import { parsePodHost } from '../shared/hostname.ts';
import type { Route } from '../shared/route.ts';

export interface Target {
  slug: string;
  /** In-pod port the user asked for (the route's default when the hostname names none). */
  podPort: number;
  route: Route;
}

export function resolveTarget(
  host: string | undefined,
  baseDomains: readonly string[],
  lookup: (slug: string) => Route | undefined,
  retryAfterSeconds: number,
): Target {
  const address = parsePodHost(host, baseDomains);
  const route = lookup(address.slug);
  if (!route) throw new PodNotFoundError(address.slug);
  if (route.status !== 'running') throw new PodUnavailableError(address.slug, route.status, retryAfterSeconds);
  return { slug: address.slug, podPort: address.port ?? route.defaultPort, route };
}
