// What the plain-HTTP listener does for TLS: answer ACME HTTP-01 challenges from the shared store (so any
// replica can answer the CA), and redirect everything else to HTTPS when TLS is on.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CHALLENGE_TOKEN_PATTERN, type CertStore } from '../../shared/cert-store.ts';
import { hostWithoutPort } from '../../shared/hostname.ts';
import type { Logger } from '../../shared/log.ts';
import { reply, toResponse } from '../reply.ts';

export const CHALLENGE_PATH_PREFIX = '/.well-known/acme-challenge/';
const DEFAULT_HTTPS_PORT = 443;

export function isChallengePath(url: string | undefined): boolean {
  return url !== undefined && url.startsWith(CHALLENGE_PATH_PREFIX);
}

/**
 * Returns a handler that answers `GET /.well-known/acme-challenge/<token>` and returns true, or returns false
 * for every other request (the caller handles it). Unknown tokens get 404, never a proxied pod answer.
 */
export function createChallengeHandler(store: CertStore, log: Logger) {
  return (req: IncomingMessage, res: ServerResponse): boolean => {
    if (!isChallengePath(req.url)) return false;
    const token = req.url!.slice(CHALLENGE_PATH_PREFIX.length).split('?')[0]!;
    const to = toResponse(req, res);
    const answer = (status: number, body: string) => reply(to, { status, headers: { 'content-type': 'text/plain', 'cache-control': 'no-store' }, body });
    if (!CHALLENGE_TOKEN_PATTERN.test(token) || (req.method !== 'GET' && req.method !== 'HEAD')) {
      answer(404, 'no such challenge\n');
      return true;
    }
    store.getChallenge(token).then(
      (keyAuthorization) => (keyAuthorization ? answer(200, keyAuthorization) : answer(404, 'no such challenge\n')),
      (err: unknown) => {
        log.warn({ err: String(err) }, 'could not read an ACME challenge from the store');
        answer(503, 'challenge store unavailable\n');
      },
    );
    return true;
  };
}

/**
 * Redirects a plain-HTTP request to the same URL over HTTPS. Only for hosts under our base domains (anything
 * else is left to the caller, which refuses it): the gateway never redirects to arbitrary hosts.
 */
export function createHttpsRedirect(bases: readonly string[], httpsPort: () => number) {
  return (req: IncomingMessage, res: ServerResponse): boolean => {
    const port = httpsPort();
    const portSuffix = port === DEFAULT_HTTPS_PORT ? '' : `:${port}`;
    const host = hostWithoutPort(req.headers.host ?? '');
    if (!bases.some((b) => host.endsWith(`.${b}`))) return false;
    const location = `https://${host}${portSuffix}${req.url?.startsWith('/') ? req.url : '/'}`;
    // 308 keeps the method and body (a POST stays a POST).
    reply(toResponse(req, res), { status: 308, headers: { location } });
    return true;
  };
}
