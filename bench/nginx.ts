// Debian's nginx in the two roles of the benchmark: the upstream "pod" returning a fixed body, and the reference
// reverse proxy the gateway is compared with. Configs are built by pure functions; each instance gets its own
// prefix directory, runs in the foreground and is stopped by the bench.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pinned, type Children, type CoreSet } from './processes.ts';

/** The small keep-alive response every HTTP case fetches. */
export const BENCH_BODY = 'podgate bench: a small keep-alive response\n';
/** Path on the upstream answering its own listening port (route-latency tells two upstreams apart by it). */
export const PORT_PATH = '/port';
/**
 * nginx closes a keep-alive connection after 1000 requests by default; Node's servers and the gateway do not.
 * Raised everywhere so no case pays reconnects the others do not.
 */
const KEEPALIVE_REQUESTS = 1_000_000;
/** Idle upstream connections each nginx worker keeps, as the gateway's pool (UPSTREAM_MAX_FREE_SOCKETS). */
const UPSTREAM_KEEPALIVE = 256;

function common(dir: string, workers: number): string {
  // As root, nginx's workers would switch to `nobody`, who cannot read the private temp directory.
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  return `${user}worker_processes ${workers};
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 4096; }
`;
}

function temps(dir: string): string {
  return ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((t) => `  ${t}_temp_path ${join(dir, t)};`)
    .join('\n');
}

/** The upstream: a fixed body on `/`, its own port on PORT_PATH, on every given port. */
export function upstreamConfig(dir: string, ports: number[]): string {
  const servers = ports
    .map(
      (port) => `  server {
    listen 127.0.0.1:${port};
    location = ${PORT_PATH} { return 200 "$server_port"; }
    location / { return 200 ${JSON.stringify(BENCH_BODY)}; }
  }`,
    )
    .join('\n');
  return `${common(dir, 1)}http {
  access_log off;
  default_type text/plain;
  keepalive_requests ${KEEPALIVE_REQUESTS};
  keepalive_timeout 65s;
${temps(dir)}
${servers}
}
`;
}

export interface ProxyConfigOptions {
  listenPort: number;
  upstreamPort: number;
  workers: number;
  /** Log every request to a file, as the gateway does with ACCESS_LOG=true. */
  accessLog: boolean;
  /** Listen with TLS and HTTP/2 (ALPN h2, then http/1.1), as the gateway's HTTPS_PORT does. */
  tls?: { certFile: string; keyFile: string };
}

/**
 * The reference reverse proxy, doing the same work as the gateway per request: HTTP/1.1 keep-alive pool to the
 * upstream, Host kept, hop-by-hop Connection dropped, the four X-Forwarded-* headers set.
 */
export function proxyConfig(dir: string, o: ProxyConfigOptions): string {
  return `${common(dir, o.workers)}http {
  ${o.accessLog ? `access_log ${join(dir, 'access.log')};` : 'access_log off;'}
  keepalive_requests ${KEEPALIVE_REQUESTS};
  keepalive_timeout 65s;
${temps(dir)}
  upstream pod {
    server 127.0.0.1:${o.upstreamPort};
    keepalive ${UPSTREAM_KEEPALIVE};
    keepalive_requests ${KEEPALIVE_REQUESTS};
  }
  server {
${listen(o)}
    location / {
      proxy_pass http://pod;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-Port $server_port;
    }
  }
}
`;
}

/** nginx 1.22 syntax (`http2` on the listen line; `http2 on;` is 1.25.1+). */
function listen(o: ProxyConfigOptions): string {
  if (!o.tls) return `    listen 127.0.0.1:${o.listenPort};`;
  return `    listen 127.0.0.1:${o.listenPort} ssl http2;
    ssl_certificate ${o.tls.certFile};
    ssl_certificate_key ${o.tls.keyFile};`;
}

/** Start nginx in the foreground with `config` in its own prefix directory `dir` (created). */
export function startNginx(children: Children, name: string, dir: string, config: string, cores: CoreSet): ChildProcess {
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, config);
  const argv = pinned(cores, ['nginx', '-p', dir, '-c', conf, '-e', join(dir, 'error.log'), '-g', 'daemon off;']);
  return children.start(name, argv);
}
