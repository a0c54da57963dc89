// Checks of an OpenAPI 3.1 document for the tests: a structural check of what the specification requires of the
// parts the admin APIs use, and validation of JSON against the document's own schemas (JSON Schema 2020-12,
// turned into validators by zod's fromJSONSchema: the check reads the document, not the zod schemas it came from).
import type { Hono } from 'hono';
import { z } from 'zod';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = Record<string, any>;

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const STATUS = /^(?:[1-5](?:\d\d|XX)|default)$/;

/** The JSON Pointer `ref` (`#/components/...`) in `doc`, or undefined. */
function resolvePointer(doc: Obj, ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  let at: unknown = doc;
  for (const raw of ref.slice(2).split('/')) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (at === null || typeof at !== 'object' || !(key in at)) return undefined;
    at = (at as Obj)[key];
  }
  return at;
}

function eachRef(value: unknown, at: string, visit: (ref: string, at: string) => void): void {
  if (Array.isArray(value)) return value.forEach((v, i) => eachRef(v, `${at}/${i}`, visit));
  if (value === null || typeof value !== 'object') return;
  for (const [k, v] of Object.entries(value)) {
    if (k === '$ref' && typeof v === 'string') visit(v, at);
    else eachRef(v, `${at}/${k}`, visit);
  }
}

/** What keeps `doc` from being an OpenAPI 3.1 document (the parts used here); empty when nothing does. */
export function openApi31Problems(doc: Obj): string[] {
  const problems: string[] = [];
  const fail = (m: string) => problems.push(m);
  if (typeof doc.openapi !== 'string' || !/^3\.1\.\d+$/.test(doc.openapi)) fail(`openapi: ${JSON.stringify(doc.openapi)} is not 3.1.x`);
  if (typeof doc.info?.title !== 'string' || typeof doc.info?.version !== 'string') fail('info: needs a title and a version');
  if (doc.paths === null || typeof doc.paths !== 'object') fail('paths: missing');
  const schemes = Object.keys(doc.components?.securitySchemes ?? {});
  for (const [name, scheme] of Object.entries<Obj>(doc.components?.securitySchemes ?? {})) {
    if (scheme.type === 'http' && typeof scheme.scheme !== 'string') fail(`securitySchemes.${name}: http needs a scheme`);
  }
  const checkSecurity = (security: unknown, at: string) => {
    if (security === undefined) return;
    if (!Array.isArray(security)) return fail(`${at}.security: not a list`);
    for (const req of security) for (const name of Object.keys(req)) if (!schemes.includes(name)) fail(`${at}.security: unknown scheme ${name}`);
  };
  checkSecurity(doc.security, 'document');
  const operationIds = new Set<string>();
  for (const [path, item] of Object.entries<Obj>(doc.paths ?? {})) {
    if (!path.startsWith('/')) fail(`paths: ${path} does not start with /`);
    const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
    for (const [method, op] of Object.entries<Obj>(item)) {
      const at = `${method.toUpperCase()} ${path}`;
      if (!METHODS.includes(method)) {
        if (method !== 'parameters' && method !== 'summary' && method !== 'description') fail(`${path}: ${method} is not an HTTP method`);
        continue;
      }
      if (op.operationId !== undefined) {
        if (operationIds.has(op.operationId)) fail(`${at}: operationId ${op.operationId} is not unique`);
        operationIds.add(op.operationId);
      }
      const responses = Object.entries<Obj>(op.responses ?? {});
      if (responses.length === 0) fail(`${at}: no responses`);
      for (const [status, res] of responses) {
        if (!STATUS.test(status)) fail(`${at}: response key ${status}`);
        const r = res.$ref ? (resolvePointer(doc, res.$ref) as Obj | undefined) : res;
        if (typeof r?.description !== 'string') fail(`${at} ${status}: a response needs a description`);
      }
      const params: Obj[] = (op.parameters ?? []).map((p: Obj) => (p.$ref ? resolvePointer(doc, p.$ref) : p) ?? {});
      const seen = new Set<string>();
      for (const p of params) {
        if (!['path', 'query', 'header', 'cookie'].includes(p.in) || typeof p.name !== 'string') fail(`${at}: parameter ${JSON.stringify(p)}`);
        const key = `${p.in} ${p.name}`;
        if (seen.has(key)) fail(`${at}: parameter ${key} twice`);
        seen.add(key);
        if (p.in === 'path' && (p.required !== true || !templated.includes(p.name))) fail(`${at}: path parameter ${p.name} must be required and in the path`);
        if (p.schema === undefined && p.content === undefined) fail(`${at}: parameter ${p.name} has no schema`);
      }
      for (const name of templated) if (!seen.has(`path ${name}`)) fail(`${at}: path parameter ${name} is not declared`);
      if (op.requestBody !== undefined && (op.requestBody.content === null || typeof op.requestBody.content !== 'object')) fail(`${at}: requestBody needs content`);
      checkSecurity(op.security, at);
    }
  }
  eachRef(doc, '#', (ref, at) => {
    if (resolvePointer(doc, ref) === undefined) fail(`${at}: $ref ${ref} does not resolve`);
  });
  // Every schema must be one a JSON Schema 2020-12 validator takes.
  for (const [name, schema] of Object.entries<Obj>(doc.components?.schemas ?? {})) {
    try {
      schemaValidator(doc, schema);
    } catch (err) {
      fail(`components.schemas.${name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return problems;
}

/** A validator of `schema` (which may $ref the document's components). */
export function schemaValidator(doc: Obj, schema: Obj): z.ZodType {
  const rewrite = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(rewrite);
    if (v === null || typeof v !== 'object') return v;
    return Object.fromEntries(
      Object.entries(v).map(([k, x]) => [k, k === '$ref' && typeof x === 'string' ? x.replace('#/components/schemas/', '#/$defs/') : rewrite(x)]),
    );
  };
  const $defs = rewrite(doc.components?.schemas ?? {});
  return z.fromJSONSchema({ ...(rewrite(schema) as Obj), $defs } as Parameters<typeof z.fromJSONSchema>[0], { defaultTarget: 'draft-2020-12' });
}

/** Why `value` does not validate against `schema`, or undefined when it does. */
export function schemaProblem(doc: Obj, schema: Obj, value: Json | unknown): string | undefined {
  const r = schemaValidator(doc, schema).safeParse(value);
  return r.success ? undefined : z.prettifyError(r.error);
}

/** The operation of `doc` that serves `method` on a concrete path (`/v1/pods/myapp/links`). */
export function operationFor(doc: Obj, method: string, path: string): Obj | undefined {
  for (const [template, item] of Object.entries<Obj>(doc.paths ?? {})) {
    const pattern = new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{[^}]+\\?\}/g, '[^/]+')}$`);
    if (pattern.test(path) && item[method.toLowerCase()]) return item[method.toLowerCase()];
  }
  return undefined;
}

/** `METHOD /path/{param}` for every route handler `app` registers (middleware, registered as ALL, left out). */
export function registeredOperations(app: Hono, exclude: (path: string) => boolean = () => false): string[] {
  const ops = app.routes
    .filter((r) => r.method !== 'ALL' && !exclude(r.path))
    .map((r) => `${r.method} ${r.path.replace(/:([^/{?]+)(?:\{[^}]*\})?\??/g, '{$1}')}`);
  return [...new Set(ops)].sort();
}

/** `METHOD /path/{param}` for every operation of `doc`. */
export function documentedOperations(doc: Obj): string[] {
  return Object.entries<Obj>(doc.paths ?? {})
    .flatMap(([path, item]) => Object.keys(item).filter((m) => METHODS.includes(m)).map((m) => `${m.toUpperCase()} ${path}`))
    .sort();
}
