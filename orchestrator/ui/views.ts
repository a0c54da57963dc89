// The dashboard's pages: server-rendered HTML from hono's html helper, which escapes every interpolated string.
// Whatever a pod or a user wrote (slugs, labels, names, exec output) is only ever interpolated, never marked raw;
// addresses in href are the orchestrator's own (pod URLs it built, dashboard paths with encoded slugs). The only raw
// text is the page's own constant style sheet and script.
import { html, raw } from 'hono/html';
import type { HtmlEscapedString } from 'hono/utils/html';
import { TIERS } from '../spec.ts';
import type { Flash } from './sessions.ts';

export type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

export const BASE = '/ui';

/** What the pages show of the admin API's answers (its JSON, as the API documents it). */
export interface PodSummary {
  slug: string;
  name: string;
  status: string;
  tier: string;
  image: string;
  hostPort: number | null;
  url: string;
  error: string | null;
  createdAt: string;
  labels: Record<string, string>;
  services: { name: string; port: number; url: string }[];
}

export interface LinkSummary {
  id: string;
  port?: number;
  label?: string;
  createdAt: string;
  expiresAt: string;
}

export interface LogEntry {
  time: string;
  label: string;
  command: string[];
  exitCode: number | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
  durationMs: number;
  error?: string;
}

export interface RouteSummary {
  slug: string;
  host: string;
  port: number;
  status: string;
  generation: number;
  defaultPort: number;
  updatedAt: string;
  access?: { default: string; ports: Record<string, string> };
  ports?: number[];
}

/** A certificate as the gateway's certificates API shows it (never its key or PEM). */
export interface CertificateSummary {
  id: string;
  names: string[];
  notBefore: string;
  notAfter: string;
  origin: string;
  status: string;
  renewAt: string;
  renewal: { failures: number; lastError?: string; nextAttemptAt?: string };
}

const TIER_NAMES = Object.keys(TIERS);

const podPath = (slug: string) => `${BASE}/pods/${encodeURIComponent(slug)}`;

// Dark text on white and white on dark blue (contrast well above 7:1); a thick focus ring for keyboard users.
const CSS = `
:root { color-scheme: light; }
body { font: 16px/1.5 system-ui, sans-serif; color: #111; background: #fff; margin: 0; }
header { background: #0b3d75; color: #fff; padding: .5rem 1rem; display: flex; gap: 1.5rem; align-items: center; flex-wrap: wrap; }
header a { color: #fff; font-weight: 600; }
header form { margin-left: auto; }
main { padding: 1rem; max-width: 72rem; }
h1 { font-size: 1.5rem; margin: .5rem 0 1rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #bbb; vertical-align: top; }
a { color: #0a3f8f; }
button, input, select { font: inherit; }
button { background: #0b3d75; color: #fff; border: 1px solid #0b3d75; border-radius: 4px; padding: .2rem .7rem; cursor: pointer; }
button.danger { background: #8a1010; border-color: #8a1010; }
input, select { border: 1px solid #555; border-radius: 4px; padding: .2rem .4rem; background: #fff; color: #111; }
:focus-visible { outline: 3px solid #c75b00; outline-offset: 2px; }
form.inline { display: inline; }
.fields { display: flex; gap: 1rem; flex-wrap: wrap; align-items: flex-end; }
.fields label { display: flex; flex-direction: column; font-weight: 600; }
.hint { font-weight: normal; font-size: .85rem; color: #333; }
.flash { padding: .6rem 1rem; border-radius: 4px; margin-bottom: 1rem; border: 1px solid; }
.flash.ok { background: #e7f5e9; border-color: #1d6b2a; }
.flash.error { background: #fbeaea; border-color: #8a1010; }
.flash.link { background: #fff6d6; border-color: #7a5a00; }
.flash.link input { width: 100%; box-sizing: border-box; font-family: ui-monospace, monospace; margin: .3rem 0; }
pre { background: #f3f3f3; border: 1px solid #ccc; padding: .5rem; overflow: auto; max-height: 20rem; white-space: pre-wrap; word-break: break-all; }
.status { font-weight: 600; }
.status-running { color: #1d6b2a; } .status-failed { color: #8a1010; }
`;

// Copy buttons: the one script of the dashboard (nonce'd); without it the link is still in a selectable field.
const COPY_SCRIPT = `for (const b of document.querySelectorAll('button[data-copy]')) {
  b.addEventListener('click', async () => {
    const field = document.getElementById(b.dataset.copy);
    field.select();
    try { await navigator.clipboard.writeText(field.value); b.textContent = 'Copied'; }
    catch { b.textContent = 'Press Ctrl+C to copy'; }
  });
}`;

export interface PageContext {
  nonce: string;
  /** The session's CSRF token; absent on the sign-in page. */
  csrf?: string;
  flash?: Flash;
  /** Reload the page every so many seconds (a pod that is provisioning). */
  refreshSeconds?: number;
}

const csrfField = (csrf: string | undefined) => html`<input type="hidden" name="_csrf" value="${csrf ?? ''}">`;

/** A one-button POST form (start, stop, revoke...). */
function action(path: string, label: string, csrf: string | undefined, opts: { danger?: boolean; describedBy?: string } = {}): Html {
  return html`<form class="inline" method="post" action="${path}">${csrfField(csrf)}<button type="submit"${opts.danger ? html` class="danger"` : ''}${opts.describedBy ? html` aria-describedby="${opts.describedBy}"` : ''}>${label}</button></form>`;
}

function flashBox(flash: Flash | undefined): Html {
  if (!flash) return html``;
  if (flash.kind === 'link') {
    return html`<div class="flash link" role="status">
<label for="minted-link"><strong>New access link</strong> (shown only this once: copy it now)</label>
<input id="minted-link" type="text" readonly value="${flash.text}">
<button type="button" data-copy="minted-link">Copy</button></div>`;
  }
  return html`<div class="flash ${flash.kind}" role="${flash.kind === 'error' ? 'alert' : 'status'}">${flash.text}</div>`;
}

export function layout(title: string, ctx: PageContext, body: Html): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
${ctx.refreshSeconds ? html`<meta http-equiv="refresh" content="${ctx.refreshSeconds}">` : ''}
<title>${title} · podgate</title><style nonce="${ctx.nonce}">${raw(CSS)}</style></head>
<body>
${
  ctx.csrf
    ? html`<header><nav aria-label="Main"><a href="${BASE}">Pods</a> &nbsp; <a href="${BASE}/routes">Routes</a> &nbsp; <a href="${BASE}/certificates">Certificates</a></nav>
<form method="post" action="${BASE}/sign-out">${csrfField(ctx.csrf)}<button type="submit">Sign out</button></form></header>`
    : html`<header><strong>podgate</strong></header>`
}
<main>${flashBox(ctx.flash)}${body}</main>
<script nonce="${ctx.nonce}">${raw(COPY_SCRIPT)}</script>
</body></html>`;
}

export function signInPage(ctx: PageContext, error?: string): Html {
  return layout(
    'Sign in',
    ctx,
    html`<h1>Sign in to the podgate dashboard</h1>
${error ? html`<div class="flash error" role="alert">${error}</div>` : ''}
<form method="post" action="${BASE}/sign-in">
<div class="fields"><label for="token">Admin token <span class="hint">(ADMIN_TOKEN of this orchestrator)</span>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus></label>
<button type="submit">Sign in</button></div></form>`,
  );
}

function statusText(status: string): Html {
  return html`<span class="status status-${status}">${status}</span>`;
}

function serviceLinks(pod: PodSummary): Html {
  if (pod.services.length === 0) return html`<a href="${pod.url}" rel="noopener noreferrer">${pod.url}</a>`;
  return html`<ul>${pod.services.map((s) => html`<li>${s.name} (${s.port}): <a href="${s.url}" rel="noopener noreferrer">${s.url}</a></li>`)}</ul>`;
}

function lifecycleActions(pod: PodSummary, csrf: string | undefined): Html {
  const p = podPath(pod.slug);
  // Start also wakes a sleeping pod; Sleep stops a running one until its next request.
  return html`${action(`${p}/start`, 'Start', csrf)} ${action(`${p}/stop`, 'Stop', csrf)} ${action(`${p}/restart`, 'Restart', csrf)} ${action(`${p}/sleep`, 'Sleep', csrf)} <a href="${p}/delete">Delete…</a>`;
}

export function podsPage(ctx: PageContext, pods: PodSummary[]): Html {
  const rows = pods.map(
    (pod) => html`<tr>
<td><a href="${podPath(pod.slug)}">${pod.slug}</a>${pod.name !== pod.slug ? html`<br><span class="hint">${pod.name}</span>` : ''}</td>
<td>${statusText(pod.status)}</td><td>${pod.tier}</td><td>${pod.hostPort ?? '–'}</td>
<td>${serviceLinks(pod)}</td><td>${lifecycleActions(pod, ctx.csrf)}</td></tr>`,
  );
  return layout(
    'Pods',
    ctx,
    html`<h1>Pods</h1>
${
  pods.length === 0
    ? html`<p>No pods yet.</p>`
    : html`<table><caption class="hint">${pods.length} pod${pods.length === 1 ? '' : 's'}</caption>
<thead><tr><th scope="col">Slug</th><th scope="col">Status</th><th scope="col">Tier</th><th scope="col">Host port</th><th scope="col">Services</th><th scope="col">Actions</th></tr></thead>
<tbody>${rows}</tbody></table>`
}
<h2 id="create">Create a pod</h2>
<form method="post" action="${BASE}/pods" aria-labelledby="create">${csrfField(ctx.csrf)}
<div class="fields">
<label for="slug">Slug <span class="hint">lowercase letters, digits, hyphens</span><input id="slug" name="slug" required maxlength="40" pattern="[a-z0-9]+(?:-+[a-z0-9]+)*"></label>
<label for="services">Services <span class="hint">name:port, comma separated (empty: the image's default set)</span><input id="services" name="services" placeholder="app:3000, terminal:7681"></label>
<label for="tier">Tier<select id="tier" name="tier">${TIER_NAMES.map((t) => html`<option>${t}</option>`)}</select></label>
<label for="access">Access<select id="access" name="access"><option value="private">private (access links only)</option><option value="public">public (anyone)</option></select></label>
<button type="submit">Create</button></div></form>`,
  );
}

function logEntry(e: LogEntry): Html {
  return html`<article aria-label="${e.label} at ${e.time}"><h3>${e.label} <span class="hint">${e.time} · exit ${e.exitCode ?? 'none'} · ${Math.round(e.durationMs)} ms${e.truncated ? ' · truncated' : ''}</span></h3>
<p class="hint">command: <code>${e.command.join(' ')}</code></p>
${e.error ? html`<p>error: ${e.error}</p>` : ''}
${e.stdout ? html`<pre aria-label="stdout">${e.stdout}</pre>` : ''}${e.stderr ? html`<pre aria-label="stderr">${e.stderr}</pre>` : ''}</article>`;
}

export function podPage(
  ctx: PageContext,
  pod: PodSummary,
  links: LinkSummary[] | undefined,
  logs: LogEntry[],
): Html {
  const p = podPath(pod.slug);
  const labels = Object.entries(pod.labels);
  return layout(
    `Pod ${pod.slug}`,
    ctx,
    html`<h1>Pod ${pod.slug}</h1>
<table><tbody>
<tr><th scope="row">Status</th><td>${statusText(pod.status)}${ctx.refreshSeconds ? html` <span class="hint">(this page reloads until the pod settles)</span>` : ''}</td></tr>
${pod.error ? html`<tr><th scope="row">Error</th><td><pre>${pod.error}</pre></td></tr>` : ''}
<tr><th scope="row">Name</th><td>${pod.name}</td></tr>
<tr><th scope="row">Tier</th><td>${pod.tier}</td></tr>
<tr><th scope="row">Image</th><td>${pod.image}</td></tr>
<tr><th scope="row">Host port</th><td>${pod.hostPort ?? '–'}</td></tr>
<tr><th scope="row">Created</th><td>${pod.createdAt}</td></tr>
<tr><th scope="row">Services</th><td>${serviceLinks(pod)}</td></tr>
${labels.length > 0 ? html`<tr><th scope="row">Labels</th><td><ul>${labels.map(([k, v]) => html`<li><code>${k}</code> = ${v}</li>`)}</ul></td></tr>` : ''}
<tr><th scope="row">Actions</th><td>${lifecycleActions(pod, ctx.csrf)}</td></tr>
</tbody></table>
<h2 id="links">Access links</h2>
${links === undefined ? html`<p>Access links are not available on this orchestrator.</p>` : linksSection(p, pod, links, ctx.csrf)}
<h2 id="logs">Provisioning and exec log</h2>
${logs.length === 0 ? html`<p>No entries.</p>` : logs.map(logEntry)}`,
  );
}

function linksSection(p: string, pod: PodSummary, links: LinkSummary[], csrf: string | undefined): Html {
  const rows = links.map(
    (l) => html`<tr><td><code>${l.id}</code></td><td>${l.label ?? ''}</td><td>${l.port ?? 'all private ports'}</td><td>${l.createdAt}</td><td>${l.expiresAt}</td>
<td>${action(`${p}/links/${encodeURIComponent(l.id)}/revoke`, 'Revoke', csrf, { danger: true })}</td></tr>`,
  );
  return html`${
    links.length === 0
      ? html`<p>No live links.</p>`
      : html`<table><thead><tr><th scope="col">Id</th><th scope="col">Label</th><th scope="col">Port</th><th scope="col">Created</th><th scope="col">Expires</th><th scope="col">Revoke</th></tr></thead><tbody>${rows}</tbody></table>
<p>${action(`${p}/links/revoke-all`, 'Revoke every link of this pod', csrf, { danger: true })}</p>`
  }
<form method="post" action="${p}/links" aria-labelledby="mint">${csrfField(csrf)}
<h3 id="mint">Mint a link</h3><div class="fields">
<label for="link-port">Port<select id="link-port" name="port"><option value="">all private ports</option>${pod.services.map((s) => html`<option value="${s.port}">${s.port} (${s.name})</option>`)}</select></label>
<label for="link-label">Label <span class="hint">optional</span><input id="link-label" name="label" maxlength="200"></label>
<label for="link-expires">Expires in <span class="hint">30m, 12h, 7d</span><input id="link-expires" name="expiresIn" value="1d" required></label>
<button type="submit">Mint link</button></div></form>`;
}

export function deletePage(ctx: PageContext, slug: string): Html {
  return layout(
    `Delete ${slug}`,
    ctx,
    html`<h1>Delete pod ${slug}?</h1><p>The container and its files are removed, and its access links stop working.</p>
${action(`${podPath(slug)}/delete`, `Delete ${slug}`, ctx.csrf, { danger: true })} <a href="${podPath(slug)}">Cancel</a>`,
  );
}

export function routesPage(ctx: PageContext, routes: RouteSummary[]): Html {
  return layout(
    'Routes',
    ctx,
    html`<h1>Routes as gateways see them</h1>
${
  routes.length === 0
    ? html`<p>No routes.</p>`
    : html`<table><thead><tr><th scope="col">Slug</th><th scope="col">Status</th><th scope="col">Upstream</th><th scope="col">Default port</th><th scope="col">Ports</th><th scope="col">Access</th><th scope="col">Generation</th><th scope="col">Updated</th></tr></thead>
<tbody>${routes.map(
        (r) => html`<tr><td>${r.slug}</td><td>${statusText(r.status)}</td><td>${r.host}:${r.port}</td><td>${r.defaultPort}</td><td>${(r.ports ?? []).join(', ')}</td>
<td>${r.access?.default ?? 'private'}${Object.entries(r.access?.ports ?? {}).map(([port, v]) => html`, ${port}: ${v}`)}</td><td>${r.generation}</td><td>${r.updatedAt}</td></tr>`,
      )}</tbody></table>`
}`,
  );
}

/** The certificate API's id in a path: its first name, URL-encoded, `*` as %2A. */
export const certificatePath = (id: string) => `${BASE}/certificates/${encodeURIComponent(id).replace(/\*/g, '%2A')}`;

/**
 * Certificates of the gateway whose admin API is configured; `certificates` undefined: none to show, and
 * `problem` says why (no gateway configured, or it refused or did not answer).
 */
export function certificatesPage(ctx: PageContext, certificates: CertificateSummary[] | undefined, problem?: string): Html {
  const rows = (certificates ?? []).map(
    (cert) => html`<tr><td>${cert.id}</td><td>${cert.names.join(', ')}</td><td>${statusText(cert.status)}</td><td>${cert.notAfter}</td><td>${cert.renewAt}</td><td>${cert.origin}</td>
<td>${cert.renewal.failures > 0 ? html`${cert.renewal.failures}: ${cert.renewal.lastError ?? ''}` : '0'}</td>
<td>${action(`${certificatePath(cert.id)}/renew`, 'Renew', ctx.csrf)} ${action(`${certificatePath(cert.id)}/delete`, 'Delete', ctx.csrf, { danger: true })}</td></tr>`,
  );
  return layout(
    'Certificates',
    ctx,
    html`<h1>Certificates</h1>
${problem ? html`<p role="alert">${problem}</p>` : ''}
${
  certificates === undefined
    ? ''
    : html`${
        certificates.length === 0
          ? html`<p>No certificates.</p>`
          : html`<table><thead><tr><th scope="col">Id</th><th scope="col">Names</th><th scope="col">Status</th><th scope="col">Not after</th><th scope="col">Renews at</th><th scope="col">Origin</th><th scope="col">Renewal failures</th><th scope="col">Actions</th></tr></thead><tbody>${rows}</tbody></table>`
      }
<h2 id="issue">Issue a certificate</h2>
<form method="post" action="${BASE}/certificates" aria-labelledby="issue">${csrfField(ctx.csrf)}<div class="fields">
<label for="names">Names <span class="hint">comma separated; the first is its id</span><input id="names" name="names" required></label>
<button type="submit">Issue</button></div></form>`
}`,
  );
}

export function errorPage(ctx: PageContext, status: number, message: string): Html {
  return layout('Error', ctx, html`<h1>Error ${status}</h1><p role="alert">${message}</p><p><a href="${BASE}">Back to the pods</a></p>`);
}
