import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import { ROUTER_KEY_HEADER } from '../shared/route.ts';
import { requestHeaders, responseHeaders, type ForwardClient } from './forward-headers.ts';

const stranger: ForwardClient = { remoteAddress: '192.0.2.7', trustedPeer: false, proto: 'http', port: 8080 };
const trustedProxy: ForwardClient = { remoteAddress: '127.0.0.1', trustedPeer: true, proto: 'https', port: 443 };

describe('requestHeaders', () => {
  it('leaves the client headers as they were and sets what the gateway speaks for', () => {
    const client: IncomingHttpHeaders = {
      host: 'pod-a.localhost',
      connection: 'keep-alive',
      'keep-alive': 'timeout=5',
      'proxy-authorization': 'Basic x',
      proxy: 'http://evil.example',
      'x-forwarded-for': '10.9.9.9',
      'x-forwarded-host': 'evil.example',
      forwarded: 'for=10.9.9.9',
      [ROUTER_KEY_HEADER]: 'forged',
      accept: 'text/html',
    };
    const before = structuredClone(client);
    const out = requestHeaders(client, stranger, false, 'key-1');
    expect(client).toEqual(before);
    expect(out).toEqual({
      host: 'pod-a.localhost',
      accept: 'text/html',
      'x-forwarded-for': '192.0.2.7',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': 'pod-a.localhost',
      'x-forwarded-port': '8080',
      [ROUTER_KEY_HEADER]: 'key-1',
    });
  });

  it('keeps what a trusted proxy says, appending its peer to X-Forwarded-For', () => {
    const out = requestHeaders(
      { host: 'pod-a.localhost', 'x-forwarded-for': '198.51.100.1', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'pods.example.com', 'x-forwarded-port': '443', forwarded: 'for=198.51.100.1' },
      trustedProxy,
      false,
      undefined,
    );
    expect(out).toMatchObject({ 'x-forwarded-for': '198.51.100.1, 127.0.0.1', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'pods.example.com', 'x-forwarded-port': '443', forwarded: 'for=198.51.100.1' });
    expect(out[ROUTER_KEY_HEADER]).toBeUndefined();
  });

  it('drops what Connection names, but never Host, and keeps the upgrade of a WebSocket', () => {
    const client = { host: 'pod-a.localhost', connection: 'Upgrade, X-Secret, host', upgrade: 'websocket', 'x-secret': '1', te: 'trailers' };
    expect(requestHeaders(client, stranger, true, undefined)).toMatchObject({ host: 'pod-a.localhost', connection: 'upgrade', upgrade: 'websocket' });
    const plain = requestHeaders(client, stranger, false, undefined);
    expect(plain.host).toBe('pod-a.localhost');
    for (const name of ['connection', 'upgrade', 'x-secret', 'te']) expect(plain[name]).toBeUndefined();
    expect(requestHeaders({ host: 'h', connection: 'close', close: 'x' }, stranger, false, undefined).close).toBeUndefined();
  });
});

describe('responseHeaders', () => {
  it('leaves out hop-by-hop and HTTP/2-forbidden headers, and what Connection names', () => {
    const out = responseHeaders({
      'content-type': 'text/plain',
      connection: 'keep-alive, x-hop',
      'keep-alive': 'timeout=5',
      'transfer-encoding': 'chunked',
      'http2-settings': 'AAA',
      'proxy-authenticate': 'Basic',
      'x-hop': '1',
      upgrade: 'h2c',
      'set-cookie': ['a=1', 'b=2'],
    });
    expect(out).toEqual({ 'content-type': 'text/plain', 'set-cookie': ['a=1', 'b=2'] });
  });

  it('takes the first of a repeated single-value field and joins a list', () => {
    expect(responseHeaders({ 'content-type': ['text/html', 'text/plain'] as unknown as string, vary: ['accept', 'origin'] as unknown as string })).toEqual({ 'content-type': 'text/html', vary: 'accept, origin' });
  });

  it('says what is wrong with a name that is no token or a value with a control character', () => {
    expect(responseHeaders({ 'bad name': 'x' })).toMatch(/is not a token/);
    expect(responseHeaders({ 'x-a': 'one\rtwo' })).toMatch(/control character/);
    expect(responseHeaders({ 'set-cookie': ['a=1', 'b=\u0000'] })).toMatch(/control character/);
  });

  it("keeps a 101's Connection: upgrade and Upgrade", () => {
    expect(responseHeaders({ connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-accept': 'abc' }, true)).toEqual({ 'sec-websocket-accept': 'abc', connection: 'upgrade', upgrade: 'websocket' });
  });
});
