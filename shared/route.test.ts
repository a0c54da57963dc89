import { describe, expect, it } from 'vitest';
import { parseRoute } from './route.ts';

const route = { slug: 'app', host: '127.0.0.1', port: 20000, generation: 1, updatedAt: '2026-12-01T00:00:00Z' };

describe('route status as read', () => {
  it('keeps every status of the contract, sleeping included', () => {
    for (const status of ['running', 'starting', 'stopped', 'sleeping'] as const) {
      expect(parseRoute(JSON.stringify({ ...route, status })).route?.status).toBe(status);
    }
  });

  it('reads a status it does not know (a newer writer) as stopped: the pod exists and nothing is proxied', () => {
    expect(parseRoute(JSON.stringify({ ...route, status: 'hibernating' })).route?.status).toBe('stopped');
  });

  it('still refuses a route whose status is no status at all', () => {
    expect(parseRoute(JSON.stringify({ ...route, status: '' })).error).toMatch(/status/);
    expect(parseRoute(JSON.stringify({ ...route, status: 7 })).error).toMatch(/status/);
    expect(parseRoute(JSON.stringify({ ...route, status: 'x'.repeat(65) })).error).toMatch(/status/);
  });
});
