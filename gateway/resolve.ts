// Host -> upstream target (pure, synchronous): the decision the request path makes for every request.
import { InvalidHostError, PodNotFoundError, PodUnavailableError } from '../shared/errors.ts';
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

/**
 * The request's Host, refusing more than one (RFC 9112 3.2: 400). Node keeps only the first of several, while a
 * proxy or cache in front may have routed by another: answering would let one request reach two different pods.
 */
export function soleHostHeader(rawHeaders: readonly string[], host: string | undefined): string | undefined {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') count++;
  }
  if (count > 1) throw new InvalidHostError(host ?? '', 'more than one Host header');
  return host;
}
