// What the gateway believes about a request's client: the connection, plus a trusted proxy's X-Forwarded-* only.
import { BlockList } from 'node:net';
import { describe, expect, it } from 'vitest';
import { clientInfo } from './client-info.ts';

const trusted = new BlockList();
trusted.addSubnet('10.0.0.0', 8);

function req(remoteAddress: string, headers: Record<string, string> = {}, encrypted = false) {
  return { socket: { remoteAddress, localPort: 8080, encrypted }, headers } as unknown as Parameters<typeof clientInfo>[0];
}

describe('clientInfo', () => {
  it('an untrusted peer is the client, whatever it says', () => {
    const c = clientInfo(req('::ffff:192.0.2.7', { 'x-forwarded-proto': 'https', 'x-forwarded-for': '198.51.100.1' }), trusted);
    expect(c).toEqual({ remoteAddress: '192.0.2.7', trustedPeer: false, proto: 'http', address: '192.0.2.7', port: 8080 });
    expect(clientInfo(req('192.0.2.7', { 'x-forwarded-proto': 'http' }, true), trusted).proto).toBe('https');
  });

  it("a trusted proxy's X-Forwarded-Proto says how the client reached the edge, both ways", () => {
    expect(clientInfo(req('10.1.2.3', { 'x-forwarded-proto': 'https' }), trusted).proto).toBe('https');
    expect(clientInfo(req('10.1.2.3', { 'x-forwarded-proto': 'HTTPS, http' }), trusted).proto).toBe('https');
    // The proxy reaches the gateway over TLS, its client came over plain HTTP: the client's hop is what counts
    // (a Secure cookie set for a plain-HTTP client would never come back).
    expect(clientInfo(req('10.1.2.3', { 'x-forwarded-proto': 'http' }, true), trusted).proto).toBe('http');
    // Without the header, the connection's own protocol.
    expect(clientInfo(req('10.1.2.3', {}, true), trusted).proto).toBe('https');
    expect(clientInfo(req('10.1.2.3', {}), trusted).proto).toBe('http');
  });

  it("a trusted proxy's last X-Forwarded-For entry is the client's address", () => {
    const c = clientInfo(req('10.1.2.3', { 'x-forwarded-for': '203.0.113.9, 198.51.100.1' }), trusted);
    expect(c).toMatchObject({ remoteAddress: '10.1.2.3', trustedPeer: true, address: '198.51.100.1' });
    expect(clientInfo(req('10.1.2.3', { 'x-forwarded-for': ' ' }), trusted).address).toBe('10.1.2.3');
  });

  it('a socket without an address is trusted by nobody', () => {
    expect(clientInfo(req(''), trusted)).toMatchObject({ remoteAddress: '', trustedPeer: false, address: '' });
  });
});
