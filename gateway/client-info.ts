// What the gateway believes about the client of a request (pure). The peer's own word (X-Forwarded-*) counts only
// when the peer is one of TRUSTED_PROXIES; otherwise the connection itself is the whole truth.
import type { IncomingMessage } from 'node:http';
import type { BlockList } from 'node:net';
import type { TLSSocket } from 'node:tls';

export interface ClientInfo {
  /** The connecting peer's address (IPv4-mapped IPv6 unwrapped); '' when the socket has none. */
  remoteAddress: string;
  /** The peer is a configured trusted proxy. */
  trustedPeer: boolean;
  /**
   * How the client reached the edge: what a trusted proxy says in X-Forwarded-Proto (its first value), else this
   * connection's own protocol. A TLS hop from a proxy to the gateway does not make the client's own hop secure.
   */
  proto: 'http' | 'https';
  /** The client's address: the last X-Forwarded-For entry a trusted peer appended, else the peer. */
  address: string;
  /** The gateway listener's port as the client reached it. */
  port: number;
}

export function unwrapMappedAddress(address: string | undefined): string {
  if (!address) return '';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}

export function clientInfo(req: Pick<IncomingMessage, 'socket' | 'headers'>, trustedProxies: BlockList): ClientInfo {
  const remoteAddress = unwrapMappedAddress(req.socket.remoteAddress);
  const trustedPeer = remoteAddress !== '' && trustedProxies.check(remoteAddress, remoteAddress.includes(':') ? 'ipv6' : 'ipv4');
  let proto: 'http' | 'https' = (req.socket as TLSSocket).encrypted ? 'https' : 'http';
  let address = remoteAddress;
  if (trustedPeer) {
    const forwardedProto = header(req.headers['x-forwarded-proto'])?.split(',')[0]!.trim().toLowerCase();
    if (forwardedProto) proto = forwardedProto === 'https' ? 'https' : 'http';
    address = header(req.headers['x-forwarded-for'])?.split(',').pop()?.trim() || remoteAddress;
  }
  return { remoteAddress, trustedPeer, proto, address, port: req.socket.localPort ?? 0 };
}
