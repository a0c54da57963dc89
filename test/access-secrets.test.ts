// Secrets never leave the request: a gateway process (`node gateway/main.ts`, its real stdout) is sent access
// tokens every way a client can (link exchange, refusals, the rate limit, upgrades, other parameters, a Host),
// and neither its log nor its answers may carry one; its redirects stay on the request's own origin however the
// request target starts.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACCESS_COOKIE, TOKEN_HEADER } from '../gateway/access/credentials.ts';
import { startUpstream, type Upstream } from './support/gateway-harness.ts';
import { spawnGateway, type ChildGateway } from './support/child-gateway.ts';
import { waitFor } from './support/wait.ts';
import { parseRawHead, PUBLIC, rawExchange, send, startTestGateway, startWorld, type AccessWorld } from './support/access.ts';

const BROWSER = 'text/html,application/xhtml+xml,*/*;q=0.8';
const BAD_TOKEN_LIMIT = 3;

let world: AccessWorld;
let up: Upstream;
let gw: ChildGateway;

/** A forged value no other part of the test writes, so finding it anywhere means it leaked. */
const forged = (label: string) => `${label}-${randomBytes(9).toString('base64url')}`;
const forgedShaped = () => `pg1.${randomBytes(30).toString('base64url')}.${randomBytes(32).toString('base64url')}`;

function raw(target: string, host: string, headers: Record<string, string> = {}, method = 'GET'): Promise<string> {
  const lines = [`${method} ${target} HTTP/1.1`, `Host: ${host}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), 'Connection: close', '', ''];
  return rawExchange(gw.httpPort, lines.join('\r\n'));
}

beforeAll(async () => {
  world = await startWorld();
  up = await startUpstream();
  gw = await spawnGateway({
    REDIS_URL: world.redis.url,
    LOG_LEVEL: 'debug',
    ACCESS_LOG: 'true',
    ACCESS_CONCEAL_PODS: 'true',
    ACCESS_BAD_TOKEN_LIMIT: String(BAD_TOKEN_LIMIT),
    ACCESS_RESYNC_INTERVAL_MS: '1000',
  });
  await world.route('vault', up.port);
  await world.route('site', up.port, { access: PUBLIC });
  const { token } = await world.link('vault');
  await waitFor(async () => (await send(gw.url, 'pod-vault.localhost', { headers: { [TOKEN_HEADER]: token } })).status === 200, {
    what: 'the gateway process to serve the routes and verify tokens',
  });
  await waitFor(async () => (await send(gw.url, 'pod-site.localhost')).status === 200, { what: 'the public route' });
});
afterAll(async () => {
  await gw?.kill();
  await up?.close();
  await world?.close();
});

describe('tokens in the log', () => {
  it('never appear: link exchange, refusals by query, header and cookie, 429, concealed pods, upgrades, a Host', async () => {
    const link = await world.link('vault');
    const another = await world.link('vault');
    const secrets = [link.token, another.token];
    const answers: string[] = [];
    const ask = async (target: string, host: string, headers: Record<string, string> = {}, method = 'GET') => {
      const a = await raw(target, host, headers, method);
      // Only the link exchange may carry a token, in its Set-Cookie: that is its purpose.
      answers.push(a.replace(/^set-cookie: .*$/im, ''));
      return parseRawHead(a);
    };
    const linesBefore = gw.logs.filter((l) => l.msg === 'request').length;

    // The link exchange: a valid token in the query becomes a cookie.
    const exchange = await ask(`/app?a=1&podgate_token=${link.token}`, 'pod-vault.localhost', { Accept: BROWSER });
    expect(exchange.status).toBe(302);
    expect(exchange.headers.get('location')).toBe('/app?a=1');
    // A valid POST with the token in the query is proxied without it.
    expect((await ask(`/api?podgate_token=${another.token}`, 'pod-vault.localhost', { 'Content-Length': '0' }, 'POST')).status).toBe(200);
    // Refusals, each with a forgery of its own, up to the limit.
    const q = forged('query');
    const h = forged('header');
    const c = forgedShaped();
    secrets.push(q, h, c);
    expect((await ask(`/?podgate_token=${q}`, 'pod-vault.localhost')).status).toBe(401);
    expect((await ask('/', 'pod-vault.localhost', { [TOKEN_HEADER]: h })).status).toBe(401);
    expect((await ask('/', 'pod-vault.localhost', { Cookie: `${ACCESS_COOKIE}=${c}` })).status).toBe(401);
    // Over the limit: 429, on a running pod and a concealed unknown one, for a request and an upgrade.
    const limited = [forged('limited'), forgedShaped(), forged('upgrade')];
    secrets.push(...limited);
    expect((await ask(`/x?podgate_token=${limited[0]}`, 'pod-vault.localhost')).status).toBe(429);
    expect((await ask(`/y?podgate_token=${limited[1]}`, 'pod-ghost.localhost')).status).toBe(429);
    const upgrade = await ask(`/ws?podgate_token=${limited[2]}`, 'pod-vault.localhost', {
      Connection: 'Upgrade',
      Upgrade: 'websocket',
      'Sec-WebSocket-Version': '13',
      'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
    });
    expect(upgrade.status).toBe(429);
    // A public port reloads without the link's token (whatever it holds), and proxies a token in another parameter.
    const anything = forged('public');
    const elsewhere = await world.link('site');
    secrets.push(anything, elsewhere.token);
    expect((await ask(`/?podgate_token=${anything}`, 'pod-site.localhost', { Accept: BROWSER })).status).toBe(302);
    const proxied = await raw(`/next?return=${encodeURIComponent(`/b?x=${elsewhere.token}`)}&t=${elsewhere.token}`, 'pod-site.localhost');
    expect(parseRawHead(proxied).status).toBe(200);
    // A token-shaped Host: the 400 page quotes the Host, without the token.
    const inHost = forgedShaped();
    secrets.push(inHost);
    const badHost = await ask('/', `pod-${inHost}.localhost`, { Accept: BROWSER });
    expect(badHost.status).toBe(400);
    expect(badHost.body).toContain('pg1.redacted');

    const sent = 10;
    await waitFor(() => gw.logs.filter((l) => l.msg === 'request').length >= linesBefore + sent, { what: 'an access line per request' });
    const everything = [...gw.logs.map((l) => JSON.stringify(l)), ...gw.otherStdout, gw.stderr()].join('\n');
    for (const secret of secrets) {
      expect(everything, 'the log').not.toContain(secret);
      // Nor its signature alone (a cut-off copy of a token is still most of it).
      expect(everything, 'the log').not.toContain(secret.split('.').at(-1)!);
      for (const a of answers) expect(a, 'an answer').not.toContain(secret);
    }
    // The lines are there, with the parameter's value replaced.
    const paths = gw.logs.filter((l) => l.msg === 'request').map((l) => `${l.status} ${String(l.path)}`);
    expect(paths).toContain('302 /app?a=1&podgate_token=redacted');
    expect(paths).toContain('401 /?podgate_token=redacted');
    expect(paths).toContain('429 /x?podgate_token=redacted');
    expect(paths).toContain('429 /y?podgate_token=redacted');
    expect(paths).toContain('429 /ws?podgate_token=redacted');
    expect(paths).toContain('200 /api');
  });
});

describe('redirects', () => {
  const hostile = ['//evil.example/', '///evil.example/', '/\\evil.example', '/\\/evil.example/', '/%2F%2Fevil', '/%5C%5Cevil', '//evil.example/%2F..', '//evil.example:443/x'];

  it('refuse a target that is not origin-form at all with 400, never a redirect', async () => {
    const answer = parseRawHead(await raw('\\\\evil.example/?podgate_token=anything', 'pod-site.localhost', { Accept: BROWSER }));
    expect(answer.status).toBe(400);
    expect(answer.headers.has('location')).toBe(false);
  });

  it('turn a link into a cookie on the request’s own origin, whatever the request target starts with', async () => {
    for (const path of hostile) {
      const { token } = await world.link('vault');
      const host = 'pod-vault.localhost:8080';
      const answer = parseRawHead(await raw(`${path}?podgate_token=${token}`, host, { Accept: BROWSER }));
      expect(answer.status, path).toBe(302);
      const location = answer.headers.get('location')!;
      expect(location, path).toMatch(/^\/(?![/\\])/);
      expect(new URL(location, `http://${host}`).origin, path).toBe(`http://${host}`);
      expect(new URL(location, `https://${host}`).origin, path).toBe(`https://${host}`);
      expect(answer.headers.get('set-cookie'), path).toContain(token);
    }
  });

  it('reload a public port without the token on its own origin too (`//evil.example/?podgate_token=anything`)', async () => {
    for (const path of hostile) {
      const answer = parseRawHead(await raw(`${path}?podgate_token=anything`, 'pod-site.localhost', { Accept: BROWSER }));
      expect(answer.status, path).toBe(302);
      const location = answer.headers.get('location')!;
      expect(new URL(location, 'http://pod-site.localhost').origin, path).toBe('http://pod-site.localhost');
      expect(location, path).not.toContain('anything');
    }
  });

  it('give the login page a return address on the request’s own origin, without the token', async () => {
    const login = await startTestGateway(world, { ACCESS_LOGIN_URL: 'https://login.example.test/start', ACCESS_CONCEAL_PODS: 'true' });
    try {
      await waitFor(() => login.gateway.table.lookup('vault') !== undefined, { what: 'routes' });
      for (const path of hostile) {
        for (const host of ['pod-vault.localhost:8080', 'pod-ghost.localhost:8080']) {
          const request = [`GET ${path}?q=1&podgate_token=forged HTTP/1.1`, `Host: ${host}`, `Accept: ${BROWSER}`, 'Connection: close', '', ''].join('\r\n');
          const answer = parseRawHead(await rawExchange(login.gateway.httpPort, request));
          expect(answer.status, path).toBe(302);
          const to = new URL(answer.headers.get('location')!);
          expect(to.origin).toBe('https://login.example.test');
          const back = to.searchParams.get('return_to')!;
          expect(new URL(back).origin, `${host}${path}`).toBe(`http://${host}`);
          expect(back, path).not.toContain('forged');
          expect(new URL(back).search).toBe('?q=1');
        }
      }
    } finally {
      await login.close();
    }
  });
});
