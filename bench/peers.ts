// Caddy and HAProxy (Debian's packages) as benchmark peers, doing the same work per request as the nginx reverse
// proxy (bench/nginx.ts) and the gateway: HTTP/1.1 keep-alive pool to the upstream, Host kept, the four
// X-Forwarded-* headers set, no access log. Configs are built by pure functions; each instance runs in the
// foreground with its own directory and is stopped by the bench.
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pinned, type Children, type CoreSet } from './processes.ts';

/** Idle upstream connections kept, as the gateway's pool (UPSTREAM_MAX_FREE_SOCKETS) and nginx's `keepalive`. */
const UPSTREAM_KEEPALIVE = 256;
/** Client and upstream keep-alive, as nginx's `keepalive_timeout` and the gateway's CLIENT_KEEPALIVE_MS. */
const KEEPALIVE_SECONDS = 65;

export interface PeerConfigOptions {
  listenPort: number;
  upstreamPort: number;
}

/**
 * Caddyfile: any Host on 127.0.0.1:<port> (a host in the site address would make Caddy match on it), no admin
 * endpoint, no automatic HTTPS. Caddy keeps Host and sets X-Forwarded-For/-Proto/-Host itself; -Port is added.
 * Caddy logs no requests unless a `log` directive asks for it.
 */
export function caddyConfig(o: PeerConfigOptions): string {
  return `{
\tadmin off
\tauto_https off
}
http://:${o.listenPort} {
\tbind 127.0.0.1
\treverse_proxy 127.0.0.1:${o.upstreamPort} {
\t\theader_up X-Forwarded-Port {http.request.port}
\t\ttransport http {
\t\t\tkeepalive ${KEEPALIVE_SECONDS}s
\t\t\tkeepalive_idle_conns ${UPSTREAM_KEEPALIVE}
\t\t\tkeepalive_idle_conns_per_host ${UPSTREAM_KEEPALIVE}
\t\t}
\t}
}
`;
}

/**
 * HAProxy: one thread, HTTP mode, keep-alive on both sides with idle upstream connections shared between clients
 * (`http-reuse always`, as nginx's and the gateway's pools), no logging.
 */
export function haproxyConfig(o: PeerConfigOptions): string {
  return `global
  nbthread 1
  maxconn 4096

defaults
  mode http
  timeout connect 5s
  timeout client ${KEEPALIVE_SECONDS}s
  timeout server ${KEEPALIVE_SECONDS}s
  timeout http-keep-alive ${KEEPALIVE_SECONDS}s

frontend bench
  bind 127.0.0.1:${o.listenPort}
  option forwardfor
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-request set-header X-Forwarded-Port %[dst_port]
  default_backend pod

backend pod
  http-reuse always
  server pod 127.0.0.1:${o.upstreamPort} pool-max-conn ${UPSTREAM_KEEPALIVE}
`;
}

export type PeerKind = 'caddy' | 'haproxy';

/** The program a peer needs, or a reason it cannot run here (printed by the bench, which then skips it). */
export function peerMissing(kind: PeerKind): string | undefined {
  const probe = kind === 'caddy' ? spawnSync('caddy', ['version']) : spawnSync('haproxy', ['-v']);
  return probe.error || probe.status !== 0 ? `${kind} is not installed (scripts/setup.sh installs the Debian package)` : undefined;
}

/** Start the peer in the foreground with its config in `dir` (created). */
export function startPeer(children: Children, kind: PeerKind, name: string, dir: string, o: PeerConfigOptions, cores: CoreSet): ChildProcess {
  mkdirSync(dir, { recursive: true });
  if (kind === 'caddy') {
    const file = join(dir, 'Caddyfile');
    writeFileSync(file, caddyConfig(o));
    // Caddy's data and config directories (certificates, autosave) go to the instance's own directory.
    const env = { PATH: process.env.PATH ?? '', HOME: dir, XDG_DATA_HOME: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config') };
    return children.start(name, pinned(cores, ['caddy', 'run', '--config', file, '--adapter', 'caddyfile']), { env });
  }
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, haproxyConfig(o));
  return children.start(name, pinned(cores, ['haproxy', '-db', '-f', file]));
}
