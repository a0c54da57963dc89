// The page a browser gets while its pod wakes up: a 503 that reloads itself (meta refresh, same URL) until the pod
// answers. It is the same page for every pod and every URL: nothing of the request (Host, path, token) is in it,
// and it loads nothing else (no script, style sheet or image from anywhere).
import type { Answer } from './reply.ts';

/** Seconds before the page reloads; the reload is held again by the gateway, so the pod's page comes as it runs. */
export const WAKE_PAGE_REFRESH_SECONDS = 1;

const BODY =
  '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Waking up</title>' +
  `<meta http-equiv="refresh" content="${WAKE_PAGE_REFRESH_SECONDS}">` +
  '<meta name="viewport" content="width=device-width,initial-scale=1">' +
  '<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}</style>' +
  '</head><body><h1>Waking up</h1><p>This pod was asleep and is starting. The page reloads by itself in a moment.</p>' +
  '<p><small>podgate &middot; <code>pod_waking</code></small></p></body></html>\n';

export function wakingPage(): Answer {
  return {
    status: 503,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      // Loads nothing: the inline style only.
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
      'retry-after': String(WAKE_PAGE_REFRESH_SECONDS),
    },
    body: BODY,
  };
}
