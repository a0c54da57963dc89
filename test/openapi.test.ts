// The OpenAPI 3.1 documents of both admin listeners (shared/openapi.ts), fetched over loopback from a real
// orchestrator admin app and a real gateway: behind the bearer token, covering every route the apps register,
// structurally valid, and taking the JSON examples of README.md.
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import type { Hono } from 'hono';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAdminApp } from '../gateway/admin.ts';
import { loadGatewayConfig } from '../gateway/config.ts';
import { startGateway, type RunningGateway } from '../gateway/main.ts';
import { createCertificatesApi } from '../gateway/tls/api.ts';
import { loadTlsConfig } from '../gateway/tls/config.ts';
import { createAccessApi, type PodAccessControl } from '../orchestrator/access-api.ts';
import { createApi } from '../orchestrator/api.ts';
import type { PodService } from '../orchestrator/pods.ts';
import { DASHBOARD_PATH } from '../orchestrator/ui/dashboard.ts';
import { AccessTokens } from '../shared/access-token.ts';
import { silentLogger } from '../shared/log.ts';
import { MemoryAccessStore } from '../shared/access-store.ts';
import { MemoryCertStore } from '../shared/memory-cert-store.ts';
import { MemoryRouteStore } from '../shared/memory-route-store.ts';
import { openApiDocument, OPENAPI_PATH, type OpenApiDocument } from '../shared/openapi.ts';
import { GATEWAY_ADMIN_API_INFO } from '../gateway/admin-openapi.ts';
import { documentedOperations, openApi31Problems, operationFor, registeredOperations, schemaProblem } from './support/openapi.ts';
import { loopbackTlsGatewayEnv } from './support/logs.ts';

const ADMIN_TOKEN = 'openapi-admin-token-0123456789abcdef';
const GATEWAY_TOKEN = 'openapi-gateway-token-0123456789abcd';
const log = silentLogger();
type Obj = Record<string, any>;

/** The dashboard is HTML forms behind its own cookie session, not part of the JSON API the document describes. */
const isDashboard = (path: string) => path === DASHBOARD_PATH || path.startsWith(`${DASHBOARD_PATH}/`);

let orchestratorApp: Hono;
let orchestrator: ServerType;
let orchestratorUrl: string;
let gateway: RunningGateway;
let gatewayUrl: string;
let orchestratorDoc: OpenApiDocument;
let gatewayDoc: OpenApiDocument;

async function get(url: string, token?: string) {
  const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await res.text();
  let json: Obj | undefined;
  try {
    json = JSON.parse(text) as Obj;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json };
}

function listen(app: Hono): Promise<ServerType> {
  return new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
  });
}

beforeAll(async () => {
  // The document is built from the route table alone; the pod routes are not called here.
  const unused: PodAccessControl = {
    policy: () => {
      throw new Error('not called');
    },
    linkable: async () => {},
    setPolicy: async () => {},
  };
  orchestratorApp = createApi({
    pods: undefined as unknown as PodService,
    routes: new MemoryRouteStore(),
    reconciler: undefined,
    adminToken: ADMIN_TOKEN,
    logger: log,
    metrics: new Registry(),
    accessApi: createAccessApi({
      store: new MemoryAccessStore(),
      tokens: new AccessTokens(['openapi-test-secret-0123456789abcdef']),
      pods: unused,
      urls: { baseDomains: ['localhost'], publicScheme: 'http', publicPort: 8080 },
    }),
  });
  orchestrator = await listen(orchestratorApp);
  orchestratorUrl = `http://127.0.0.1:${(orchestrator.address() as AddressInfo).port}`;

  const env = loopbackTlsGatewayEnv({ GATEWAY_ADMIN_TOKEN: GATEWAY_TOKEN });
  gateway = await startGateway(loadGatewayConfig(env), { store: new MemoryRouteStore(), log, tls: { config: loadTlsConfig(env), store: new MemoryCertStore() } });
  gatewayUrl = `http://127.0.0.1:${gateway.adminPort}`;

  const o = await get(`${orchestratorUrl}${OPENAPI_PATH}`, ADMIN_TOKEN);
  const g = await get(`${gatewayUrl}${OPENAPI_PATH}`, GATEWAY_TOKEN);
  expect([o.status, g.status]).toEqual([200, 200]);
  orchestratorDoc = o.json as OpenApiDocument;
  gatewayDoc = g.json as OpenApiDocument;
});

afterAll(async () => {
  await new Promise((r) => (orchestrator ? orchestrator.close(r) : r(undefined)));
  await gateway?.shutdown(1000);
});

/** The gateway's admin app as gateway/main.ts builds it, with the running gateway's parts, for its route table. */
function gatewayAdminApp(): Hono {
  const manager = gateway.tls!.manager;
  return createAdminApp({ ready: () => true, registry: gateway.registry, mount: (app) => void app.route('/', createCertificatesApi(manager, log, GATEWAY_TOKEN)) });
}

describe('GET /v1/openapi.json', () => {
  it('needs the admin bearer token on both listeners, and answers the error shape it documents', async () => {
    for (const [url, token] of [
      [orchestratorUrl, ADMIN_TOKEN],
      [gatewayUrl, GATEWAY_TOKEN],
    ] as const) {
      for (const wrong of [undefined, `${token}x`]) {
        const res = await get(`${url}${OPENAPI_PATH}`, wrong);
        expect(res.status, url).toBe(401);
        expect(res.headers.get('www-authenticate')).toBe('Bearer');
        const doc = url === orchestratorUrl ? orchestratorDoc : gatewayDoc;
        expect(schemaProblem(doc, { $ref: '#/components/schemas/Error' }, res.json)).toBeUndefined();
      }
    }
  });

  it('is off with the rest of the gateway /v1 API when GATEWAY_ADMIN_TOKEN is unset, and absent without TLS', async () => {
    const base = { HTTP_HOST: '127.0.0.1', HTTP_PORT: '0', ADMIN_HOST: '127.0.0.1', ADMIN_PORT: '0', BASE_DOMAINS: 'example.test', ACCESS_LOG: 'false' };
    const tlsEnv = { ...base, HTTPS_HOST: '127.0.0.1', HTTPS_PORT: '0', ACME_DIRECTORY_URL: 'https://127.0.0.1:9/directory', TLS_ON_DEMAND: 'false' };
    const noToken = await startGateway(loadGatewayConfig(tlsEnv), { store: new MemoryRouteStore(), log, tls: { config: loadTlsConfig(tlsEnv), store: new MemoryCertStore() } });
    const noTls = await startGateway(loadGatewayConfig(base), { store: new MemoryRouteStore(), log });
    try {
      const off = await get(`http://127.0.0.1:${noToken.adminPort}${OPENAPI_PATH}`, GATEWAY_TOKEN);
      expect(off.status).toBe(404);
      expect(off.json?.error?.message).toContain('GATEWAY_ADMIN_TOKEN');
      expect((await get(`http://127.0.0.1:${noTls.adminPort}${OPENAPI_PATH}`, GATEWAY_TOKEN)).status).toBe(404);
      expect((await get(`http://127.0.0.1:${noTls.adminPort}/healthz`)).status).toBe(200);
    } finally {
      await noToken.shutdown(1000);
      await noTls.shutdown(1000);
    }
  });

  it('documents every route the orchestrator admin app registers, and no other', () => {
    const registered = registeredOperations(orchestratorApp, isDashboard);
    expect(registered).toContain('POST /v1/pods/{slug}/links'); // the mounted access API is enumerated too
    expect(registered).toEqual(expect.arrayContaining(['GET /metrics', 'POST /v1/pods/{slug}/sleep', 'POST /v1/pods/{slug}/wake']));
    expect(documentedOperations(orchestratorDoc)).toEqual(registered);
  });

  it('documents every route the gateway admin listener registers, and no other', async () => {
    const app = gatewayAdminApp();
    // The app rebuilt here is the one the gateway serves: the same document.
    expect(await openApiDocument(app, GATEWAY_ADMIN_API_INFO)).toEqual(gatewayDoc);
    const registered = registeredOperations(app);
    expect(registered).toEqual(expect.arrayContaining(['GET /healthz', 'GET /metrics', 'POST /v1/certificates/{id}/renew']));
    expect(documentedOperations(gatewayDoc)).toEqual(registered);
  });

  it('is a structurally valid OpenAPI 3.1 document on both listeners, with the bearer scheme and the error shape', () => {
    for (const doc of [orchestratorDoc, gatewayDoc]) {
      expect(openApi31Problems(doc)).toEqual([]);
      expect(doc.components?.securitySchemes?.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
      expect(doc.security).toEqual([{ bearerAuth: [] }]);
      expect(doc.components?.schemas?.Error).toMatchObject({ required: ['error'] });
    }
    // Probes and scrapers need no token.
    for (const path of ['/healthz', '/readyz', '/metrics']) expect(gatewayDoc.paths?.[path]?.get?.security).toEqual([]);
    expect(orchestratorDoc.paths?.['/healthz']?.get?.security).toEqual([]);
    // The orchestrator's metrics are behind its admin token.
    expect(orchestratorDoc.paths?.['/metrics']?.get?.security).toBeUndefined();
  });

  it("real answers, errors included, are what the documents say", async () => {
    const check = async (doc: OpenApiDocument, base: string, method: string, path: string, token: string | undefined, body?: unknown) => {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const op = operationFor(doc, method, path.split('?')[0]!);
      const documented = op?.responses?.[String(res.status)];
      expect(documented, `${method} ${path} answered ${res.status}, which is not documented`).toBeDefined();
      const schema = documented.content?.['application/json']?.schema;
      if (schema) expect(schemaProblem(doc, schema, await res.json()), `${method} ${path} ${res.status}`).toBeUndefined();
      return res.status;
    };
    const o = (method: string, path: string, body?: unknown) => check(orchestratorDoc, orchestratorUrl, method, path, ADMIN_TOKEN, body);
    expect(await check(orchestratorDoc, orchestratorUrl, 'GET', '/healthz', undefined)).toBe(200);
    expect(await o('POST', '/v1/pods/myapp/links', { port: 7681, label: 'for Ana' })).toBe(201);
    expect(await o('GET', '/v1/pods/myapp/links')).toBe(200);
    expect(await o('POST', '/v1/pods/myapp/links', { port: 0 })).toBe(400);
    expect(await o('GET', '/v1/pods/Not_A_Slug/links')).toBe(400);
    expect(await o('GET', '/v1/routes')).toBe(200);
    expect(await o('GET', '/v1/reconcile')).toBe(200);
    expect(await o('GET', '/metrics')).toBe(200);
    expect(await check(orchestratorDoc, orchestratorUrl, 'GET', '/metrics', undefined)).toBe(401);
    const g = (method: string, path: string, body?: unknown) => check(gatewayDoc, gatewayUrl, method, path, GATEWAY_TOKEN, body);
    expect(await check(gatewayDoc, gatewayUrl, 'GET', '/healthz', undefined)).toBe(200);
    expect(await check(gatewayDoc, gatewayUrl, 'GET', '/readyz', undefined)).toBe(200);
    expect(await g('GET', '/v1/certificates')).toBe(200);
    expect(await g('GET', '/v1/certificates/missing.example.test')).toBe(404);
    expect(await g('POST', '/v1/certificates', { names: ['elsewhere.example.com'] })).toBe(400);
  });

  it('the structural check and the schema validation catch what they are for', () => {
    const broken = structuredClone(orchestratorDoc) as Obj;
    broken.openapi = '3.0.3';
    delete broken.paths['/v1/pods/{slug}'].get.parameters;
    broken.paths['/v1/pods'].get.responses['200'].content['application/json'].schema = { $ref: '#/components/schemas/Nope' };
    const problems = openApi31Problems(broken).join('\n');
    expect(problems).toContain('openapi');
    expect(problems).toContain('path parameter slug is not declared');
    expect(problems).toContain('Nope');
    const spec = { $ref: '#/components/schemas/PodSpec' };
    expect(schemaProblem(orchestratorDoc, spec, { slug: 'myapp' })).toBeUndefined();
    for (const bad of [{}, { slug: 'My_App' }, { slug: 'a', services: [{ name: 'app', port: 0 }] }, { slug: 'a', tier: 'huge' }, { slug: 'a', extra: 1 }]) {
      expect(schemaProblem(orchestratorDoc, spec, bad), JSON.stringify(bad)).toBeDefined();
    }
  });
});

describe("README.md's examples validate against the documents", () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  /** The text of `## title` up to the next `## `. */
  const section = (title: string) => {
    const start = readme.indexOf(`\n## ${title}`);
    expect(start, `README section ${title}`).toBeGreaterThan(0);
    const end = readme.indexOf('\n## ', start + 1);
    return readme.slice(start, end === -1 ? undefined : end);
  };
  const codeBlocks = (text: string, lang: string) => [...text.matchAll(new RegExp(`\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``, 'g'))].map((m) => m[1]!.replace(/^ {2}/gm, ''));

  it('each curl request body in the quick start and the admin API sections is a valid body of its operation', () => {
    const calls: { json: unknown; path: string }[] = [];
    for (const title of ['Quick start', 'Admin APIs']) {
      for (const block of codeBlocks(section(title), 'sh')) {
        // One command per line once `\`-continued lines are joined.
        for (const line of block.replace(/\\\n\s*/g, ' ').split('\n')) {
          if (!/^\s*curl /.test(line)) continue;
          const body = /(?:-d|--data) '([^']*)'/.exec(line);
          const url = /https?:\/\/[^/\s]+(\/v1\/[^\s?]*)/.exec(line);
          if (body && url) calls.push({ json: JSON.parse(body[1]!), path: url[1]! });
        }
      }
    }
    // The pod spec and the link of the quick start, at least.
    expect(calls.map((c) => c.path)).toEqual(expect.arrayContaining(['/v1/pods', '/v1/pods/myapp/links']));
    for (const { json, path } of calls) {
      const op = operationFor(orchestratorDoc, 'POST', path);
      expect(op, `POST ${path} is documented`).toBeDefined();
      const schema = op!.requestBody?.content?.['application/json']?.schema;
      expect(schema, `POST ${path} takes a JSON body`).toBeDefined();
      expect(schemaProblem(orchestratorDoc, schema, json), `${path} ${JSON.stringify(json)}`).toBeUndefined();
    }
  });

  it('the route JSON in "The route table" is a Route, and without its router key a RouteView', () => {
    const blocks = codeBlocks(section('The route table'), 'json');
    expect(blocks.length).toBeGreaterThan(0);
    for (const block of blocks) {
      // The one placeholder of the example stands for 64 lowercase hex digits.
      const route = JSON.parse(block.replace('"<64 hex digits>"', JSON.stringify('0123456789abcdef'.repeat(4)))) as Obj;
      expect(schemaProblem(orchestratorDoc, { $ref: '#/components/schemas/Route' }, route)).toBeUndefined();
      const { routerKey: _key, ...view } = route;
      expect(schemaProblem(orchestratorDoc, { $ref: '#/components/schemas/RouteView' }, view)).toBeUndefined();
      expect(schemaProblem(orchestratorDoc, { $ref: '#/components/schemas/RouteView' }, route), 'GET /v1/routes never shows a router key').toBeDefined();
    }
  });
});
