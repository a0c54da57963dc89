// The gateway's own answer to a CORS preflight for a private port, an unknown pod or a stopped pod under
// ACCESS_CONCEAL_PODS (see isPreflight in decide.ts). It is built from the request alone, so it is the same for
// all three and tells a client nothing about the pod.
//
// It allows what the preflight asks for. That is safe for a private port because the preflight only lets the
// browser send the real request, which the guard then checks: a cookie counts only when the request comes from a
// page of the same pod, and a header token is not something another page can know. Whether a page may read the
// response is still decided by the pod's own Access-Control-* headers on that real response.
import type { IncomingHttpHeaders } from 'node:http';

/** RFC 9110 token, and a comma list of them (what Access-Control-Request-Method/-Headers may hold). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const TOKEN_LIST = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:[ \t]*,[ \t]*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*$/;

/** An `http(s)://host[:port]` origin exactly as a browser serialises it; `null` and anything else are not echoed. */
function echoableOrigin(origin: string | undefined): string | undefined {
  if (origin === undefined) return undefined;
  try {
    const url = new URL(origin);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === origin ? origin : undefined;
  } catch {
    return undefined;
  }
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? undefined : value?.trim();
}

export function preflightAnswer(headers: IncomingHttpHeaders): { status: 204; headers: Record<string, string> } {
  const out: Record<string, string> = {
    vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
    'cache-control': 'no-store',
  };
  const origin = echoableOrigin(single(headers.origin));
  if (origin === undefined) return { status: 204, headers: out };
  out['access-control-allow-origin'] = origin;
  out['access-control-allow-credentials'] = 'true';
  const method = single(headers['access-control-request-method']);
  if (method && TOKEN.test(method)) out['access-control-allow-methods'] = method;
  const requested = single(headers['access-control-request-headers']);
  if (requested && TOKEN_LIST.test(requested)) out['access-control-allow-headers'] = requested;
  return { status: 204, headers: out };
}
