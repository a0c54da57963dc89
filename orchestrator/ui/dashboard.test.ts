// The dashboard over HTTP, against a real orchestrator (Docker with runsc, memory stores): sign-in and sessions,
// CSRF and cross-site refusals, security headers, and hostile text from a pod (its exec log) and from users
// (labels, names) shown escaped.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOrchestrator, type RunningOrchestrator } from '../main.ts';
import { removePods, testOrchestratorConfig, testPodImage, uniqueSlug } from '../../test/support/orchestrator.ts';
import { adminCall } from '../../test/support/admin-api.ts';
import { SIGN_IN_FAILURES_PER_CLIENT } from './guard.ts';
import { SESSION_COOKIE } from './dashboard.ts';

const ADMIN_TOKEN = 'dashboard-test-admin-token-0123456789';
const slug = uniqueSlug('ui');
let orch: RunningOrchestrator;
let base: string;

beforeAll(async () => {
  const config = testOrchestratorConfig({ ADMIN_TOKEN, POD_PORT_RANGE: '38930-38939', POD_IMAGE: await testPodImage() });
  orch = await startOrchestrator(config, { logger: pino({ level: 'silent' }) });
  base = `http://127.0.0.1:${orch.port}`;
});

afterAll(async () => {
  await orch?.close();
  await removePods([slug]);
});

const get = (path: string, cookie?: string) => fetch(`${base}${path}`, { redirect: 'manual', headers: cookie ? { cookie } : {} });

function post(path: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${base}${path}`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
}

/** Sign in as a browser would (same-origin POST); the session cookie as a Cookie header. */
async function signIn(): Promise<string> {
  const res = await post('/ui/sign-in', { token: ADMIN_TOKEN }, { origin: base, 'sec-fetch-site': 'same-origin' });
  expect(res.status).toBe(303);
  expect(res.headers.get('location')).toBe('/ui');
  const cookie = res.headers.get('set-cookie') ?? '';
  return cookie.split(';')[0]!;
}

async function csrfOf(cookie: string): Promise<string> {
  const page = await (await get('/ui', cookie)).text();
  const m = /name="_csrf" value="([^"]+)"/.exec(page);
  expect(m).not.toBeNull();
  return m![1]!;
}

describe('dashboard sign-in and sessions', () => {
  it('sends a request without a session to the sign-in page, which carries the security headers', async () => {
    for (const path of ['/ui', '/ui/routes', `/ui/pods/${slug}`]) {
      const res = await get(path);
      expect(res.status, path).toBe(303);
      expect(res.headers.get('location')).toBe('/ui/sign-in');
    }
    const res = await get('/ui/sign-in');
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toMatch(/script-src 'nonce-[A-Za-z0-9+/=]+'/);
    expect(csp).not.toContain('unsafe-inline');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('referrer-policy')).toBe('same-origin');
    expect(res.headers.get('cache-control')).toBe('no-store');
    const page = await res.text();
    expect(page).toContain('<label for="token">');
    expect(page).not.toContain(ADMIN_TOKEN);
  });

  it('refuses a wrong token and a POST without a session', async () => {
    const res = await post('/ui/sign-in', { token: 'not-the-admin-token-at-all' }, { origin: base });
    expect(res.status).toBe(401);
    expect(res.headers.get('set-cookie')).toBeNull();
    expect(await res.text()).toContain('not the admin token');
    expect((await post('/ui/pods', { slug: 'x' })).status).toBe(403);
    // A cookie the server never issued is no session.
    expect((await get('/ui', `${SESSION_COOKIE}=forged`)).status).toBe(303);
  });

  it('puts only a random session id into an HttpOnly, SameSite=Strict cookie for /ui, Secure behind TLS', async () => {
    const res = await post('/ui/sign-in', { token: ADMIN_TOKEN });
    const cookie = res.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(new RegExp(`^${SESSION_COOKIE}=[A-Za-z0-9_-]{43};`));
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Strict');
    expect(cookie).toContain('Path=/ui');
    expect(cookie).not.toContain('Secure');
    expect(cookie).not.toContain(ADMIN_TOKEN);
    const tls = await post('/ui/sign-in', { token: ADMIN_TOKEN }, { 'x-forwarded-proto': 'https' });
    expect(tls.headers.get('set-cookie')).toContain('Secure');

    const session = cookie.split(';')[0]!;
    const pods = await get('/ui', session);
    expect(pods.status).toBe(200);
    expect(await pods.text()).not.toContain(ADMIN_TOKEN);
  });

  it('signs out: the session is gone on the server, not just in the browser', async () => {
    const cookie = await signIn();
    const csrf = await csrfOf(cookie);
    const out = await post('/ui/sign-out', { _csrf: csrf }, { cookie });
    expect(out.status).toBe(303);
    expect(out.headers.get('set-cookie')).toMatch(new RegExp(`^${SESSION_COOKIE}=;.*Max-Age=0`));
    expect((await get('/ui', cookie)).status).toBe(303);
  });
});

describe('dashboard certificates without a gateway', () => {
  it('says which settings give the page a gateway', async () => {
    const res = await get('/ui/certificates', await signIn());
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('set GATEWAY_ADMIN_URL and GATEWAY_ADMIN_TOKEN');
  });
});

describe('dashboard CSRF defences', () => {
  it('refuses a POST without the session\'s CSRF token (403) and changes nothing', async () => {
    const cookie = await signIn();
    const csrf = await csrfOf(cookie);
    const form = { slug, services: 'app:3000' };
    for (const token of [undefined, '', 'x'.repeat(csrf.length), csrf.slice(1)]) {
      const res = await post('/ui/pods', token === undefined ? form : { ...form, _csrf: token }, { cookie });
      expect(res.status).toBe(403);
      expect(await res.text()).toContain('CSRF');
    }
    // Another session's token is no good either.
    const other = await csrfOf(await signIn());
    expect((await post('/ui/pods', { ...form, _csrf: other }, { cookie })).status).toBe(403);
    expect((await adminCall(orch.port, ADMIN_TOKEN, 'GET', `/v1/pods/${slug}`)).status).toBe(404);
  });

  it('refuses a cross-site POST even with the cookie and the CSRF token', async () => {
    const cookie = await signIn();
    const csrf = await csrfOf(cookie);
    const form = { slug, services: 'app:3000', _csrf: csrf };
    const attempts: Record<string, string>[] = [{ 'sec-fetch-site': 'cross-site' }, { 'sec-fetch-site': 'same-site' }, { origin: 'http://evil.localhost' }, { origin: 'null' }, { origin: `http://localhost:${orch.port}` }];
    for (const headers of attempts) {
      const res = await post('/ui/pods', form, { cookie, ...headers });
      expect(res.status, JSON.stringify(headers)).toBe(403);
      expect(await res.text()).toContain('cross-site request refused');
    }
    expect((await adminCall(orch.port, ADMIN_TOKEN, 'GET', `/v1/pods/${slug}`)).status).toBe(404);
  });

  it('takes a same-origin form: a bad one is refused with the API\'s message naming the field', async () => {
    const cookie = await signIn();
    const csrf = await csrfOf(cookie);
    const res = await post('/ui/pods', { slug: 'Bad_Slug', services: 'app:3000', _csrf: csrf }, { cookie, origin: base, 'sec-fetch-site': 'same-origin' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/ui');
    const page = await (await get('/ui', cookie)).text();
    expect(page).toMatch(/role="alert">slug: /);
    // Shown once.
    expect(await (await get('/ui', cookie)).text()).not.toContain('role="alert"');
    await post('/ui/pods', { slug: 'x', services: 'app', _csrf: csrf }, { cookie });
    expect(await (await get('/ui', cookie)).text()).toContain('services: &quot;app&quot; is not name:port');
  });
});

describe('dashboard escaping', () => {
  it('shows a pod\'s hostile exec log, labels and link labels as text', async () => {
    const created = await adminCall(orch.port, ADMIN_TOKEN, 'POST', '/v1/pods', {
      slug,
      services: [{ name: 'app', port: 3000 }],
      name: '"><img src=x onerror=alert(1)>',
      labels: { note: '<script>alert("label")</script>' },
      postStart: [{ label: '</pre><script>alert("hook")</script>', command: `printf '%s' '<script>alert("stdout")</script>'; printf '%s' '</pre><iframe src=//evil>' >&2` }],
    });
    expect(created.status, JSON.stringify(created.json)).toBe(201);
    const link = await adminCall(orch.port, ADMIN_TOKEN, 'POST', `/v1/pods/${slug}/links`, { label: "<svg onload=alert('link')>" });
    expect(link.status).toBe(201);

    const cookie = await signIn();
    for (const path of [`/ui/pods/${slug}`, '/ui']) {
      const res = await get(path, cookie);
      expect(res.status).toBe(200);
      const page = await res.text();
      // Exactly one script element (the nonce'd copy script) and no element the payloads tried to add.
      expect(page.match(/<script/g)).toHaveLength(1);
      expect(page).not.toMatch(/<(img|svg|iframe)/);
      expect(page).toContain('&quot;&gt;&lt;img src=x onerror=alert(1)&gt;');
      if (path !== '/ui') {
        expect(page).toContain('&lt;script&gt;alert(&quot;stdout&quot;)&lt;/script&gt;');
        expect(page).toContain('&lt;/pre&gt;&lt;iframe src=//evil&gt;');
        expect(page).toContain('&lt;/pre&gt;&lt;script&gt;alert(&quot;hook&quot;)&lt;/script&gt;');
        expect(page).toContain('&lt;script&gt;alert(&quot;label&quot;)&lt;/script&gt;');
        expect(page).toContain('&lt;svg onload=alert(&#39;link&#39;)&gt;');
      }
    }
  });
});

describe('dashboard sleep and wake', () => {
  it('puts a running pod to sleep with Sleep, and Start wakes it', async () => {
    const sleeper = uniqueSlug('uisl');
    try {
      const created = await adminCall(orch.port, ADMIN_TOKEN, 'POST', '/v1/pods', { slug: sleeper, services: [{ name: 'app', port: 3000 }] });
      expect(created.status, JSON.stringify(created.json)).toBe(201);
      const cookie = await signIn();
      const page = await (await get(`/ui/pods/${sleeper}`, cookie)).text();
      expect(page).toContain(`action="/ui/pods/${sleeper}/sleep"`);
      const csrf = await csrfOf(cookie);
      const form = (op: string) => post(`/ui/pods/${sleeper}/${op}`, { _csrf: csrf }, { cookie, origin: base, 'sec-fetch-site': 'same-origin' });
      expect((await form('sleep')).status).toBe(303);
      expect((await get(`/ui/pods/${sleeper}`, cookie).then((r) => r.text()))).toContain(`Pod ${sleeper} is sleeping.`);
      expect((await adminCall(orch.port, ADMIN_TOKEN, 'GET', `/v1/pods/${sleeper}`)).json).toMatchObject({ status: 'sleeping' });
      expect((await form('start')).status).toBe(303);
      expect((await adminCall(orch.port, ADMIN_TOKEN, 'GET', `/v1/pods/${sleeper}`)).json).toMatchObject({ status: 'running' });
    } finally {
      await removePods([sleeper]);
    }
  });
});

describe('dashboard sign-in rate limit', () => {
  // Last in the file: it blocks this client's sign-ins for a minute.
  it('stops taking guesses after repeated failures, the right token included, with Retry-After', async () => {
    for (let i = 0; i < SIGN_IN_FAILURES_PER_CLIENT; i++) expect((await post('/ui/sign-in', { token: `guess-${i}` })).status).toBeLessThan(430);
    const blocked = await post('/ui/sign-in', { token: ADMIN_TOKEN });
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(blocked.headers.get('set-cookie')).toBeNull();
  });
});
