import { describe, expect, it } from 'vitest';
import { sameOriginPath, sameOriginUrl } from './location.ts';

const ORIGIN = 'http://pod-x.localhost:8080';

describe('redirect locations', () => {
  it('keep ordinary paths and queries byte for byte', () => {
    expect(sameOriginPath('/')).toBe('/');
    expect(sameOriginPath('/app/page?a=1&b=%2F%2Fx')).toBe('/app/page?a=1&b=%2F%2Fx');
    expect(sameOriginPath('/a//b\\c')).toBe('/a//b\\c');
  });

  it('never leave the origin, however the request target starts', () => {
    const hostile = [
      '//evil.example/',
      '//evil.example',
      '///evil.example/',
      '/\\evil.example',
      '\\\\evil.example',
      '/\\/evil.example/',
      '/%2F%2Fevil',
      '/%5C%5Cevil',
      '/\t/evil.example',
      '/\n/evil.example',
      ' //evil.example',
      '/\x00/evil.example',
      'http://evil.example/',
      'https:evil.example',
      '//user@evil.example/',
      '/.//evil.example',
      '*',
      '',
      '/é//x',
    ];
    for (const target of hostile) {
      const path = sameOriginPath(target);
      expect(path, JSON.stringify(target)).toMatch(/^\/(?![/\\])/);
      expect(new URL(path, ORIGIN).origin, JSON.stringify(target)).toBe(ORIGIN);
      expect(path, JSON.stringify(target)).toMatch(/^[\x21-\x7e]+$/); // a header value that cannot fail to write
      const absolute = sameOriginUrl('https', 'pod-x.localhost', target);
      expect(new URL(absolute).origin, JSON.stringify(target)).toBe('https://pod-x.localhost');
    }
    expect(sameOriginPath('//evil.example/?q=1')).toBe('/evil.example/?q=1');
    expect(sameOriginPath('/\\evil.example')).toBe('/evil.example');
    expect(sameOriginPath('/%2F%2Fevil')).toBe('/%2F%2Fevil');
    expect(sameOriginPath('/é')).toBe('/%E9');
    expect(sameOriginPath('http://evil.example/app?a=1')).toBe('/app?a=1');
    expect(sameOriginPath('http://pod-x.localhost//evil.example/')).toBe('/evil.example/');
  });
});
