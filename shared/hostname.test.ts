import { describe, expect, it } from 'vitest';
import { HostNotServedError, InvalidHostError } from './errors.ts';
import { normaliseBaseDomains, parsePodHost } from './hostname.ts';

const bases = normaliseBaseDomains(['localhost', 'Dev.Example.COM.', 'example.com']);

describe('parsePodHost', () => {
  const ok: [string, { slug: string; port: number | undefined; base: string }][] = [
    ['localhost-3000.pod-myapp.localhost', { slug: 'myapp', port: 3000, base: 'localhost' }],
    ['localhost-3000.pod-myapp.localhost:8080', { slug: 'myapp', port: 3000, base: 'localhost' }],
    ['localhost-8726-pod-myapp.localhost', { slug: 'myapp', port: 8726, base: 'localhost' }],
    ['pod-myapp.localhost:8080', { slug: 'myapp', port: undefined, base: 'localhost' }],
    ['LOCALHOST-3000.POD-MyApp.LocalHost', { slug: 'myapp', port: 3000, base: 'localhost' }],
    ['pod-myapp.localhost.', { slug: 'myapp', port: undefined, base: 'localhost' }],
    ['pod-myapp.localhost.:8080', { slug: 'myapp', port: undefined, base: 'localhost' }],
    ['localhost-1-pod-a.localhost', { slug: 'a', port: 1, base: 'localhost' }],
    ['localhost-65535.pod-my-app-2.localhost', { slug: 'my-app-2', port: 65535, base: 'localhost' }],
    ['localhost-3000-pod-my-app.dev.example.com', { slug: 'my-app', port: 3000, base: 'dev.example.com' }],
    ['pod-x.example.com', { slug: 'x', port: undefined, base: 'example.com' }],
    // longest base wins: this is the flat form under dev.example.com, not a nested host under example.com
    ['pod-x.dev.example.com', { slug: 'x', port: undefined, base: 'dev.example.com' }],
    ['pod-localhost-1.localhost', { slug: 'localhost-1', port: undefined, base: 'localhost' }],
    [`pod-${'a'.repeat(40)}.localhost`, { slug: 'a'.repeat(40), port: undefined, base: 'localhost' }],
  ];
  it.each(ok)('%s', (host, expected) => {
    expect(parsePodHost(host, bases)).toEqual(expected);
  });

  const invalid: [string, RegExp][] = [
    ['', /missing Host/],
    ['localhost-0.pod-a.localhost', /leading zeros or is 0/],
    ['localhost-03000.pod-a.localhost', /leading zeros/],
    ['localhost-65536.pod-a.localhost', /above 65535/],
    ['localhost-99999-pod-a.localhost', /above 65535/],
    ['localhost-123456.pod-a.localhost', /expected localhost-<port>.pod-<name>/],
    ['localhost-abc.pod-a.localhost', /expected localhost-<port>.pod-<name>/],
    ['localhost-abc-pod-a.localhost', /expected localhost-<port>-pod-<name>/],
    ['localhost-3000.pod-a.extra.localhost', /expected pod-<name>/],
    ['a.localhost-3000.pod-a.localhost', /expected pod-<name>/],
    ['pod-.localhost', /expected pod-<name>/],
    ['pod--a.localhost', /not a valid slug/],
    ['pod-a-.localhost', /not a valid slug/],
    ['pod-a_b.localhost', /not a valid slug/],
    ['pod-ü.localhost', /not a valid slug/],
    [`pod-${'a'.repeat(41)}.localhost`, /not a valid slug/],
    ['myapp.localhost', /expected pod-<name>/],
    ['localhost-3000.myapp.localhost', /expected localhost-<port>.pod-<name>/],
    ['x'.repeat(300) + '.localhost', /too long/],
  ];
  it.each(invalid)('rejects %j', (host, message) => {
    expect(() => parsePodHost(host, bases)).toThrow(InvalidHostError);
    expect(() => parsePodHost(host, bases)).toThrow(message);
  });

  const notServed = ['localhost', 'localhost:8080', '127.0.0.1', '127.0.0.1:8080', '[::1]:8080', '::1', 'pod-a.evil.com', 'pod-a.notlocalhost', 'example.com', 'pod-a.localhost.evil.com'];
  it.each(notServed)('does not serve %j', (host) => {
    expect(() => parsePodHost(host, bases)).toThrow(HostNotServedError);
  });
});

describe('normaliseBaseDomains', () => {
  it('lowercases, trims dots, dedups and sorts longest first', () => {
    expect(normaliseBaseDomains([' Example.com.', 'dev.example.com', 'example.com', ''])).toEqual(['dev.example.com', 'example.com']);
  });
});
