import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { InvalidHostError, InvalidRequestTargetError } from '../shared/errors.ts';
import { normaliseRequestTarget } from './request-target.ts';

/** The fields normaliseRequestTarget reads, as node:http fills them. */
function message(url: string, headers: Record<string, string>, options: { method?: string; h2?: boolean; rawHosts?: number } = {}): IncomingMessage {
  const rawHeaders: string[] = [];
  for (const [name, value] of Object.entries(headers)) if (!name.startsWith(':')) rawHeaders.push(name, value);
  for (let i = 1; i < (options.rawHosts ?? 1); i++) rawHeaders.push('Host', 'another.localhost');
  return { url, method: options.method ?? 'GET', httpVersionMajor: options.h2 ? 2 : 1, headers: { ...headers }, rawHeaders } as unknown as IncomingMessage;
}

describe('normaliseRequestTarget', () => {
  it('keeps origin-form and its Host', () => {
    const req = message('/a/b?c=1', { host: 'pod-x.localhost:8080' });
    expect(normaliseRequestTarget(req)).toBe('origin');
    expect({ url: req.url, host: req.headers.host }).toEqual({ url: '/a/b?c=1', host: 'pod-x.localhost:8080' });
  });

  it.each([
    ['http://localhost-7681.pod-x.localhost/', '/', 'localhost-7681.pod-x.localhost'],
    ['HTTPS://Pod-X.localhost:8443', '/', 'Pod-X.localhost:8443'],
    ['http://pod-x.localhost?q=1', '/?q=1', 'pod-x.localhost'],
    ['http://pod-x.localhost//evil.example/?a', '//evil.example/?a', 'pod-x.localhost'],
    ['http://[::1]:80/x', '/x', '[::1]:80'],
  ])('absolute-form %s becomes %s with Host %s, whatever Host said', (url, path, host) => {
    const req = message(url, { host: 'localhost-3000.pod-x.localhost' });
    expect(normaliseRequestTarget(req)).toBe('origin');
    expect({ url: req.url, host: req.headers.host }).toEqual({ url: path, host });
  });

  it.each([
    ['http://u:p@pod-x.localhost/', /userinfo/],
    ['http://pod-x.localhost@pod-y.localhost/', /userinfo/],
    ['ftp://pod-x.localhost/', /scheme "ftp" is not http or https/],
    ['javascript:alert(1)', /scheme "javascript"/],
    ['http:///x', /empty authority/],
    ['http:/pod-x.localhost/', /expected http:\/\/host/],
    ['http://pod-x.localhost:8x/', /authority is not a valid host/],
    ['http://pod%2ex.localhost/', /authority is not a valid host/],
    ['http://pod-x.localhost/#f', /fragment/],
    ['/x#f', /fragment/],
    ['x', /expected \/path/],
    ['', /expected \/path/],
    ['*', /only for OPTIONS/],
  ])('refuses %s', (url, reason) => {
    const req = message(url, { host: 'pod-x.localhost' });
    expect(() => normaliseRequestTarget(req)).toThrow(InvalidRequestTargetError);
    expect(() => normaliseRequestTarget(req)).toThrow(reason);
  });

  it('never echoes the target in its message (it may carry a token)', () => {
    const req = message('ftp://pod-x.localhost/?podgate_token=pg1.secret', { host: 'pod-x.localhost' });
    expect(() => normaliseRequestTarget(req)).toThrow(/^invalid request target: scheme "ftp" is not http or https$/);
  });

  it('answers OPTIONS * itself', () => {
    expect(normaliseRequestTarget(message('*', { host: 'pod-x.localhost' }, { method: 'OPTIONS' }))).toBe('asterisk');
  });

  it('refuses CONNECT', () => {
    expect(() => normaliseRequestTarget(message('pod-x.localhost:80', { host: 'pod-x.localhost' }, { method: 'CONNECT' }))).toThrow(/CONNECT/);
  });

  it.each(['a@pod-x.localhost', 'pod-x.localhost/x', 'pod-x.localhost, pod-y.localhost', 'pod-x.localhost:1:2', 'pod-x.localhost:ab', 'pod x.localhost', 'pod-%78.localhost', ''])(
    'refuses Host %j',
    (host) => {
      expect(() => normaliseRequestTarget(message('/', { host }))).toThrow(InvalidHostError);
    },
  );

  it('refuses two Host headers, also with absolute-form', () => {
    expect(() => normaliseRequestTarget(message('/', { host: 'pod-x.localhost' }, { rawHosts: 2 }))).toThrow(/more than one Host/);
    expect(() => normaliseRequestTarget(message('http://pod-x.localhost/', { host: 'pod-x.localhost' }, { rawHosts: 2 }))).toThrow(/more than one Host/);
  });

  describe('HTTP/2', () => {
    it(':authority is the host; a Host naming another is refused, one differing in case is not', () => {
      const req = message('/', { ':authority': 'localhost-3000.pod-x.localhost' }, { h2: true });
      normaliseRequestTarget(req);
      expect(req.headers.host).toBe('localhost-3000.pod-x.localhost');
      const same = message('/', { ':authority': 'pod-x.localhost', host: 'POD-X.localhost' }, { h2: true });
      normaliseRequestTarget(same);
      expect(same.headers.host).toBe('pod-x.localhost');
      expect(() => normaliseRequestTarget(message('/', { ':authority': 'localhost-7681.pod-x.localhost', host: 'localhost-3000.pod-x.localhost' }, { h2: true }))).toThrow(
        /Host and :authority name different hosts/,
      );
    });

    it('refuses an absolute-form :path', () => {
      expect(() => normaliseRequestTarget(message('http://pod-y.localhost/', { ':authority': 'pod-x.localhost' }, { h2: true }))).toThrow(/HTTP\/2 :path/);
    });

    it('refuses a malformed :authority', () => {
      expect(() => normaliseRequestTarget(message('/', { ':authority': 'a@pod-x.localhost' }, { h2: true }))).toThrow(/:authority is not a valid host/);
    });
  });
});
