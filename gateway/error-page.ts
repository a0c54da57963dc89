// Error answers for end users: HTML for browsers, JSON for API clients (by Accept). The status and text come
// from shared/errors.ts toHttpError(), the one mapping of errors to HTTP.
import type { HttpError } from '../shared/errors.ts';
import { redactTokens } from './access/credentials.ts';

export interface ErrorAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Titles of error pages, also the reason phrases of raw answers (reply.ts). */
export const STATUS_TITLES: Record<number, string> = {
  400: 'Bad request',
  401: 'Sign-in required',
  404: 'Not found',
  421: 'Misdirected request',
  429: 'Too many requests',
  500: 'Gateway error',
  502: 'Service not reachable',
  503: 'Pod not running',
  504: 'Service too slow',
};

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function wantsHtml(accept: string | undefined): boolean {
  return accept !== undefined && accept.includes('text/html');
}

/**
 * Messages may quote what the client sent (an invalid Host, say); a token among it is redacted, so an error page
 * never carries one (pages get cached, screenshotted, pasted into bug reports).
 */
export function renderError(error: HttpError, accept: string | undefined): ErrorAnswer {
  error = { ...error, message: redactTokens(error.message) };
  const base = { ...error.headers, 'cache-control': 'no-store' };
  if (wantsHtml(accept)) {
    const title = STATUS_TITLES[error.status] ?? 'Error';
    const body =
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${error.status} ${title}</title>` +
      '<meta name="viewport" content="width=device-width,initial-scale=1">' +
      '<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}' +
      'code{background:#eee;padding:.1em .3em}</style></head><body>' +
      `<h1>${error.status} ${title}</h1><p>${escapeHtml(error.message)}</p>` +
      `<p><small>podgate &middot; <code>${error.code}</code></small></p></body></html>\n`;
    return { status: error.status, headers: { ...base, 'content-type': 'text/html; charset=utf-8' }, body };
  }
  const body = JSON.stringify({ error: { code: error.code, message: error.message } }) + '\n';
  return { status: error.status, headers: { ...base, 'content-type': 'application/json' }, body };
}
