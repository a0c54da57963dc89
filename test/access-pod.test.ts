// Access control end to end through a real gVisor pod: the real orchestrator (admin API, Docker with runsc) creates
// a pod whose spec makes the app port public and the rest private; a real gateway on the same Redis guards it.
// Covers: spec visibility flowing into the route, a link minted by the API opening the web terminal (cookie, then
// a WebSocket shell round trip), the pod never seeing the gateway's cookie or header, a visibility change of the
// running pod, and pod deletion voiding its links.
import { connect } from 'node:net';
import Docker from 'dockerode';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACCESS_COOKIE, TOKEN_HEADER } from '../shared/access-token.ts';
import { testPodImage, uniqueSlug } from './support/orchestrator.ts';
import { shellOverWebSocket } from './support/pod-shell.ts';
import { startPodWorld, type PodWorld } from './support/pod-world.ts';
import { waitFor } from './support/wait.ts';
import { parseSetCookie, send } from './support/access.ts';

const APP_PORT = 3000;
const TERMINAL_PORT = 7681;
/** A throwaway server the test starts inside the pod (exec) that prints every header it receives. */
const DUMP_PORT = 4000;

let pods: PodWorld;
const slug = uniqueSlug('acc');
const api = (method: string, path: string, body?: unknown) => pods.api(method, path, body);

const host = (port?: number) => (port === undefined ? `pod-${slug}.localhost` : `localhost-${port}.pod-${slug}.localhost`);

beforeAll(async () => {
  pods = await startPodWorld({ image: await testPodImage(), portRange: '38300-38349' });
  await pods.createPod({
    slug,
    services: [{ name: 'app', port: APP_PORT }, { name: 'terminal', port: TERMINAL_PORT }],
    access: { default: 'private', ports: { [String(APP_PORT)]: 'public' } },
  });
});

afterAll(async () => {
  await pods?.close();
});

describe('a real gVisor pod behind the guard', () => {
  it('carries the spec visibility into the route: the app port is public, the terminal private', async () => {
    expect(pods.gw.gateway.table.lookup(slug)?.access).toEqual({ default: 'private', ports: { '3000': 'public' } });
    const app = await send(pods.gw.url, host(APP_PORT));
    expect(app.status).toBe(200);
    expect(app.body).toContain('demo app on port 3000');
    expect((await send(pods.gw.url, host())).status).toBe(200);
    const terminal = await send(pods.gw.url, host(TERMINAL_PORT), { headers: { accept: 'text/html' } });
    expect(terminal.status).toBe(401);
    expect(terminal.body).not.toContain('pod terminal');
  });

  it('an absolute-form request line naming the private terminal never opens it from the public port\'s Host', async () => {
    // The attack: the access decision is made for one port, the pod must not serve another. Whatever the
    // gateway makes of the request line (refuse it, or decide access for its authority), the real in-pod router
    // routes by the Host header, so the terminal page never comes back without a token.
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(pods.gw.gateway.httpPort, '127.0.0.1', () =>
        socket.write(`GET http://${host(TERMINAL_PORT)}/ HTTP/1.1\r\nHost: ${host(APP_PORT)}\r\nAccept: text/html\r\nConnection: close\r\n\r\n`),
      );
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 (200|400|401) /);
    expect(answer).not.toContain('<title>pod terminal</title>');
  });

  it('opens the web terminal with a link from the admin API: cookie, redirect, page and WebSocket shell', async () => {
    const link = await api('POST', `/v1/pods/${slug}/links`, { port: TERMINAL_PORT, expiresIn: '1h', label: 'e2e' });
    expect(link.status).toBe(201);
    const url = new URL(link.json.url);
    expect(url.hostname).toBe(`localhost-${TERMINAL_PORT}.pod-${slug}.localhost`);
    const redeemed = await send(pods.gw.url, url.host, { path: `${url.pathname}${url.search}`, headers: { accept: 'text/html' } });
    expect(redeemed.status).toBe(302);
    expect(redeemed.headers.location).toBe('/');
    const cookie = parseSetCookie(String(redeemed.headers['set-cookie']));
    const jar = `${cookie.name}=${cookie.value}`;
    const page = await send(pods.gw.url, url.host, { headers: { accept: 'text/html', cookie: jar } });
    expect(page.status).toBe(200);
    expect(page.body).toContain('<title>pod terminal</title>');

    expect(await shellOverWebSocket(pods.gw.gateway.httpPort, { host: url.host, cookie: jar })).toContain('sum=42');
    // The link is for the terminal only.
    expect((await send(pods.gw.url, host(DUMP_PORT), { headers: { cookie: jar, [TOKEN_HEADER]: link.json.token } })).status).toBe(401);
  });

  it('never lets the pod see the gateway cookie or token header', async () => {
    const script = [
      'mkdir -p /tmp/dump/cgi-bin',
      `printf '#!/bin/sh\\nprintf "Content-Type: text/plain\\\\r\\\\n\\\\r\\\\n"\\nenv | sort\\n' > /tmp/dump/cgi-bin/env`,
      'chmod +x /tmp/dump/cgi-bin/env',
      `busybox httpd -p 127.0.0.1:${DUMP_PORT} -h /tmp/dump`,
    ].join(' && ');
    const started = await api('POST', `/v1/pods/${slug}/exec`, { command: script, label: 'header-dump' });
    expect(started.json.exitCode).toBe(0);
    const link = await api('POST', `/v1/pods/${slug}/links`, {});
    const headers = { cookie: `theme=dark; ${ACCESS_COOKIE}=${link.json.token}`, [TOKEN_HEADER]: link.json.token, 'x-other': 'kept' };
    let dump = '';
    await waitFor(async () => {
      const a = await send(pods.gw.url, host(DUMP_PORT), { path: '/cgi-bin/env', headers });
      dump = a.body;
      return a.status === 200;
    }, { what: 'the header dump server in the pod', timeoutMs: 20_000 });
    expect(dump).toContain('HTTP_X_OTHER=kept');
    expect(dump).toContain('HTTP_COOKIE=theme=dark');
    expect(dump).not.toContain(link.json.token);
    expect(dump).not.toContain('PODGATE_TOKEN');
    expect(dump).not.toContain(ACCESS_COOKIE);
  });

  it('follows a visibility change of the running pod', async () => {
    expect((await api('PUT', `/v1/pods/${slug}/access`, { default: 'private', ports: {} })).status).toBe(200);
    await waitFor(async () => (await send(pods.gw.url, host(APP_PORT))).status === 401, { what: 'the app port to turn private' });
    expect((await api('GET', `/v1/pods/${slug}/access`)).json).toEqual({ access: { default: 'private', ports: {} } });
    expect((await api('PUT', `/v1/pods/${slug}/access`, { default: 'public', ports: {} })).status).toBe(200);
    await waitFor(async () => (await send(pods.gw.url, host(TERMINAL_PORT))).status === 200, { what: 'the whole pod to turn public' });
  });

  it('a public terminal still refuses a WebSocket opened by another site\'s or pod\'s page (the router checks Origin)', async () => {
    await api('PUT', `/v1/pods/${slug}/access`, { default: 'public', ports: {} });
    await waitFor(async () => (await send(pods.gw.url, host(TERMINAL_PORT))).status === 200, { what: 'the terminal to turn public' });
    const status = (origin: string) =>
      new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${pods.gw.gateway.httpPort}/`, { headers: { host: host(TERMINAL_PORT), origin } });
        ws.once('open', () => (ws.terminate(), resolve(101)));
        ws.once('unexpected-response', (_req, res) => (res.resume(), ws.terminate(), resolve(res.statusCode ?? 0)));
        ws.once('error', reject);
      });
    expect(await status(`http://pod-other-${slug}.localhost`)).toBe(403);
    expect(await status('https://evil.example')).toBe(403);
    expect(await status(`http://${host(APP_PORT)}`)).toBe(403);
    expect(await status(`http://${host(TERMINAL_PORT)}`)).toBe(101);
    expect(await shellOverWebSocket(pods.gw.gateway.httpPort, { host: host(TERMINAL_PORT), origin: `http://${host(TERMINAL_PORT)}` })).toContain('sum=42');
  });

  it('voids every link when the pod is deleted, so a later pod of the same name is not opened by them', async () => {
    await api('PUT', `/v1/pods/${slug}/access`, { default: 'private', ports: {} });
    const link = await api('POST', `/v1/pods/${slug}/links`, {});
    await waitFor(async () => (await send(pods.gw.url, host(), { headers: { [TOKEN_HEADER]: link.json.token } })).status === 200, {
      what: 'the link to open the private pod',
    });
    expect((await api('DELETE', `/v1/pods/${slug}`)).status).toBe(204);
    await waitFor(() => pods.gw.gateway.table.lookup(slug) === undefined, { what: 'the route to go' });
    expect((await api('GET', `/v1/pods/${slug}/links`)).json.links).toEqual([]);
    const revoked = await pods.world.access.revocations(Date.now());
    expect(revoked.notBefore.get(slug)).toBeGreaterThan(0);
    // The deleted pod now answers like any unknown or private one.
    expect((await send(pods.gw.url, host(), { headers: { [TOKEN_HEADER]: link.json.token } })).status).toBe(401);
    expect(await new Docker().getContainer(`podgate-${slug}`).inspect().then(() => true, () => false)).toBe(false);
  });
});
