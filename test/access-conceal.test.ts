// Concealment is complete: with ACCESS_CONCEAL_PODS, a client without a token for a pod gets byte-for-byte the same
// answer (but for the Date) from a running private pod, a sleeping one, a stopped pod and a pod that does not exist, whatever it
// sends: plain requests, HEAD, bodies, CORS preflights, OPTIONS, `Upgrade: foo`, non-GET and real WebSocket
// upgrades, forged tokens, the 429 of the limiter. Raw sockets against a real gateway on real Redis, with a
// running pod whose server answers everything (preflights included) so that any request reaching it would show.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACCESS_COOKIE, TOKEN_HEADER } from '../gateway/access/credentials.ts';
import { startUpstream, type Upstream } from './support/gateway-harness.ts';
import { parseRawHead, rawExchange, startTestGateway, startWorld, type AccessWorld, type TestGateway } from './support/access.ts';

const LIMIT = 3;
const SLUGS = { running: 'alive', sleeping: 'dozing', stopped: 'asleep', unknown: 'nobody' } as const;

let world: AccessWorld;
let gw: TestGateway;
let pod: Upstream;
let clients = 0;

/** A client address of its own (reported by the trusted proxy in front), so cases never share a limiter count. */
const freshClient = () => `198.51.100.${++clients}`;

beforeAll(async () => {
  world = await startWorld();
  gw = await startTestGateway(world, {
    ACCESS_CONCEAL_PODS: 'true',
    ACCESS_BAD_TOKEN_LIMIT: String(LIMIT),
    TRUSTED_PROXIES: '127.0.0.1',
  });
  pod = await startUpstream((req, res) => {
    req.resume();
    res.writeHead(req.method === 'OPTIONS' ? 204 : 200, {
      'access-control-allow-origin': String(req.headers.origin ?? '*'),
      'access-control-allow-methods': 'GET, POST, PUT, DELETE',
      'x-pod': 'answered',
    });
    res.end();
  });
  pod.server.on('upgrade', (_req, socket) => socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\nx-pod: answered\r\n\r\n'));
  await world.route(SLUGS.running, pod.port, { access: { default: 'private', ports: { '5000': 'public' } } }, [gw.gateway]);
  await world.route(SLUGS.stopped, pod.port, { status: 'stopped' }, [gw.gateway]);
  await world.route(SLUGS.sleeping, pod.port, { status: 'sleeping', access: { default: 'private', ports: { '5000': 'public' } } }, [gw.gateway]);
});

/** Wake requests this gateway published: a refused client must never cause one. */
const wakesAsked = async () => Number((await gw.gateway.registry.metrics()).match(/^podgate_wake_requests_total (\d+)/m)?.[1] ?? 0);
afterAll(async () => {
  await gw?.close();
  await pod?.close();
  await world?.close();
});

type Case = (slug: string) => { head: string[]; body?: string };

const wsHeaders = () => ['Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`];

const CASES: Record<string, Case> = {
  'GET for an API client': () => ({ head: ['GET /api HTTP/1.1', 'Accept: application/json'] }),
  'GET for a browser': () => ({ head: ['GET /page?x=1 HTTP/1.1', 'Accept: text/html'] }),
  HEAD: () => ({ head: ['HEAD / HTTP/1.1'] }),
  'POST with a body': () => ({ head: ['POST /submit HTTP/1.1', 'Content-Type: application/json', 'Content-Length: 2'], body: '{}' }),
  'preflight from a page of the pod': (slug) => ({
    head: ['OPTIONS /api/items HTTP/1.1', `Origin: http://localhost-3000.pod-${slug}.localhost`, 'Access-Control-Request-Method: PUT', 'Access-Control-Request-Headers: content-type'],
  }),
  'preflight from another site': () => ({ head: ['OPTIONS /api HTTP/1.1', 'Origin: https://app.example', 'Access-Control-Request-Method: DELETE'] }),
  'preflight from a null origin': () => ({ head: ['OPTIONS /api HTTP/1.1', 'Origin: null', 'Access-Control-Request-Method: GET'] }),
  'OPTIONS that is not a preflight': () => ({ head: ['OPTIONS / HTTP/1.1', 'Origin: https://app.example'] }),
  'OPTIONS *': () => ({ head: ['OPTIONS * HTTP/1.1'] }),
  'Upgrade: foo': () => ({ head: ['GET / HTTP/1.1', 'Connection: Upgrade', 'Upgrade: foo'] }),
  'Upgrade: h2c': () => ({ head: ['GET / HTTP/1.1', 'Connection: Upgrade, HTTP2-Settings', 'Upgrade: h2c', 'HTTP2-Settings: AAMAAABkAAQAAP__'] }),
  'a POST WebSocket upgrade': () => ({ head: ['POST /ws HTTP/1.1', ...wsHeaders(), 'Content-Length: 0'] }),
  'an OPTIONS preflight-shaped upgrade': (slug) => ({
    head: ['OPTIONS /ws HTTP/1.1', `Origin: http://pod-${slug}.localhost`, 'Access-Control-Request-Method: GET', 'Connection: Upgrade', 'Upgrade: foo'],
  }),
  'a WebSocket upgrade': () => ({ head: ['GET /ws HTTP/1.1', ...wsHeaders()] }),
  'a forged query token': () => ({ head: ['GET /?podgate_token=pg1.forged.sig HTTP/1.1', 'Accept: text/html'] }),
  'a forged header token on an upgrade': () => ({ head: ['GET /ws HTTP/1.1', ...wsHeaders(), `${TOKEN_HEADER}: pg1.forged.sig`] }),
  'a forged cookie': () => ({ head: ['GET / HTTP/1.1', `Cookie: ${ACCESS_COOKIE}=pg1.forged.sig; theme=dark`] }),
};

function request(host: string, c: { head: string[]; body?: string }, client: string): string {
  const [line, ...rest] = c.head;
  return [line, `Host: ${host}`, ...rest, `X-Forwarded-For: ${client}`, 'Connection: close', '', c.body ?? ''].join('\r\n');
}

/** What may differ without telling anything: the Date, the slug the client itself named, the seconds left of a block. */
function normalise(answer: string, slug: string): string {
  return answer
    .replace(/^date: .*\r\n/im, '')
    .replaceAll(slug, 'SLUG')
    .replace(/^(retry-after): \d+\r\n/im, '$1: N\r\n');
}

async function answersFor(c: Case, hostOf: (slug: string) => string, client: () => string) {
  const out: Record<string, string> = {};
  for (const [state, slug] of Object.entries(SLUGS)) out[state] = normalise(await rawExchange(gw.gateway.httpPort, request(hostOf(slug), c(slug), client())), slug);
  return out;
}

describe('with ACCESS_CONCEAL_PODS, a client without a token', () => {
  for (const [name, c] of Object.entries(CASES)) {
    it(`gets the same answer from running, sleeping, stopped and unknown pods: ${name}`, async () => {
      const seenByPod = pod.requests.length;
      for (const hostOf of [(s: string) => `pod-${s}.localhost`, (s: string) => `localhost-7681.pod-${s}.localhost:8080`]) {
        const answers = await answersFor(c, hostOf, freshClient);
        expect(answers.sleeping, `${name}: sleeping vs running`).toBe(answers.running);
        expect(answers.stopped, `${name}: stopped vs running`).toBe(answers.running);
        expect(answers.unknown, `${name}: unknown vs running`).toBe(answers.running);
        expect(answers.running).not.toContain('answered');
      }
      expect(pod.requests.length).toBe(seenByPod);
      expect(await wakesAsked()).toBe(0);
    });
  }

  it('gets the same 429 from all three once its address is over the forged-token limit', async () => {
    const client = freshClient();
    for (let i = 0; i < LIMIT; i++) {
      const first = await rawExchange(gw.gateway.httpPort, request('pod-nobody.localhost', CASES['a forged query token']!('nobody'), client));
      expect(parseRawHead(first).status).toBe(401);
    }
    for (const name of ['a forged query token', 'a forged header token on an upgrade', 'a forged cookie']) {
      const answers = await answersFor(CASES[name]!, (s) => `pod-${s}.localhost`, () => client);
      expect(parseRawHead(answers.running!).status, name).toBe(429);
      expect(answers.sleeping, name).toBe(answers.running);
      expect(answers.stopped, name).toBe(answers.running);
      expect(answers.unknown, name).toBe(answers.running);
    }
  });

  it('answers preflights itself with what the page asked for; public ports still reach the pod’s own CORS', async () => {
    const answer = parseRawHead(await rawExchange(gw.gateway.httpPort, request('pod-nobody.localhost', CASES['preflight from a page of the pod']!('nobody'), freshClient())));
    expect(answer.status).toBe(204);
    expect(answer.headers.get('access-control-allow-origin')).toBe('http://localhost-3000.pod-nobody.localhost');
    expect(answer.headers.get('access-control-allow-methods')).toBe('PUT');
    expect(answer.headers.get('access-control-allow-headers')).toBe('content-type');
    expect(answer.headers.get('access-control-allow-credentials')).toBe('true');
    const seenByPod = pod.requests.length;
    const pub = parseRawHead(
      await rawExchange(gw.gateway.httpPort, request(`localhost-5000.pod-${SLUGS.running}.localhost`, CASES['preflight from another site']!(SLUGS.running), freshClient())),
    );
    expect(pub.headers.get('x-pod')).toBe('answered');
    expect(pod.requests.length).toBe(seenByPod + 1);
  });

  it('is told the truth once it holds a token for the pod', async () => {
    const { token } = await world.link(SLUGS.running);
    const upgrade = await rawExchange(
      gw.gateway.httpPort,
      request(`pod-${SLUGS.running}.localhost`, { head: ['GET / HTTP/1.1', 'Connection: Upgrade', 'Upgrade: foo', `${TOKEN_HEADER}: ${token}`] }, freshClient()),
    );
    expect(parseRawHead(upgrade).status).toBe(400);
    const stopped = await world.link(SLUGS.stopped);
    const asleep = await rawExchange(gw.gateway.httpPort, request(`pod-${SLUGS.stopped}.localhost`, { head: ['GET / HTTP/1.1', `${TOKEN_HEADER}: ${stopped.token}`] }, freshClient()));
    expect(parseRawHead(asleep).status).toBe(503);
  });
});
