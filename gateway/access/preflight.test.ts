import { describe, expect, it } from 'vitest';
import { preflightAnswer } from './preflight.ts';

describe('the gateway’s own preflight answer', () => {
  it('allows what a page asks for, with credentials, from the request alone', () => {
    const a = preflightAnswer({
      origin: 'http://localhost-3000.pod-app.localhost:8080',
      'access-control-request-method': 'PUT',
      'access-control-request-headers': 'content-type, x-podgate-token',
    });
    expect(a).toEqual({
      status: 204,
      headers: {
        vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
        'cache-control': 'no-store',
        'access-control-allow-origin': 'http://localhost-3000.pod-app.localhost:8080',
        'access-control-allow-credentials': 'true',
        'access-control-allow-methods': 'PUT',
        'access-control-allow-headers': 'content-type, x-podgate-token',
      },
    });
  });

  it('echoes nothing that is not a plain origin, method or header list', () => {
    for (const origin of ['null', 'file://', 'http://a.example/path', 'http://a.example, http://b.example', 'javascript:x']) {
      expect(preflightAnswer({ origin, 'access-control-request-method': 'GET' }).headers['access-control-allow-origin'], origin).toBeUndefined();
    }
    const odd = preflightAnswer({ origin: 'https://a.example', 'access-control-request-method': 'P T', 'access-control-request-headers': 'a,,b' });
    expect(odd.headers['access-control-allow-methods']).toBeUndefined();
    expect(odd.headers['access-control-allow-headers']).toBeUndefined();
  });
});
