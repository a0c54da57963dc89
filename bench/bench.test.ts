// The benchmark's pure parts: wrk and h2load report parsing, nginx/Caddy/HAProxy configs, /proc parsing, statistics,
// profile grouping. (The benchmark itself is `npm run bench`; it is not run by the test suite.)
import { describe, expect, it } from 'vitest';
import { latencyFromLog, parseH2loadOutput } from './h2load.ts';
import { BENCH_BODY, PORT_PATH, proxyConfig, upstreamConfig } from './nginx.ts';
import { caddyConfig, haproxyConfig } from './peers.ts';
import { parseProcStat, parseVmRss, pinned } from './processes.ts';
import { componentOf } from './profile-summary.ts';
import { percentile, ratio } from './stats.ts';
import { parseDuration, parseWrkOutput } from './wrk.ts';

// Recorded from Debian's wrk 4.1.0 against the bench upstream.
const WRK_OK = `Running 1s test @ http://127.0.0.1:42255/
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.77ms   10.12ms  69.82ms   91.07%
    Req/Sec    16.26k    14.73k   41.18k    70.00%
  Latency Distribution
     50%  214.00us
     75%    1.27ms
     90%   11.78ms
     99%   56.05ms
  16479 requests in 1.06s, 3.00MB read
Requests/sec:  15527.21
Transfer/sec:      2.83MB
`;
const WRK_ERRORS = `Running 1s test @ http://127.0.0.1:42255/x
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.25ms    5.38ms  46.09ms   90.23%
    Req/Sec     1.44k   286.75     1.84k    70.00%
  Latency Distribution
     50%    4.29ms
     75%    7.22ms
     90%   10.45ms
     99%    1.20s
  1474 requests in 1.03s, 444.79KB read
  Socket errors: connect 0, read 3, write 1, timeout 2
  Non-2xx or 3xx responses: 1474
Requests/sec:   1426.13
Transfer/sec:    430.35KB
`;

describe('wrk output', () => {
  it('parses throughput, percentiles in milliseconds, and no errors', () => {
    expect(parseWrkOutput(WRK_OK)).toEqual({ requests: 16479, requestsPerSecond: 15527.21, p50Ms: 0.214, p99Ms: 56.05, non2xx: 0, socketErrors: 0 });
  });

  it('counts non-2xx responses and socket errors, and reads seconds', () => {
    const r = parseWrkOutput(WRK_ERRORS);
    expect(r.non2xx).toBe(1474);
    expect(r.socketErrors).toBe(6);
    expect(r.p99Ms).toBe(1200);
  });

  it('names what is missing', () => {
    expect(() => parseWrkOutput(WRK_OK.replace(/ {2}Latency Distribution[\s\S]*?99%.*\n/, ''))).toThrow(/--latency/);
    expect(() => parseWrkOutput('unable to connect to 127.0.0.1:1 Connection refused')).toThrow(/Requests\/sec/);
    expect(() => parseDuration('12parsecs')).toThrow(/12parsecs/);
  });
});

// Recorded from Debian's h2load (nghttp2 1.52.0) against the bench's nginx with `ssl http2` (progress lines cut).
const H2LOAD_OK = `starting benchmark...
spawning thread #0: 10 total client(s). Timing-based test with 0s of warm-up time and 2s of main duration for measurements.
Main benchmark duration is started for thread #0.
TLS Protocol: TLSv1.2
Cipher: ECDHE-ECDSA-AES128-GCM-SHA256
Server Temp Key: X25519 253 bits
Application protocol: h2
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 2.01s, 2179.00 req/s, 168.62KB/s
requests: 4358 total, 4408 started, 4358 done, 4358 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 4358 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 3.20MB (3353950) total, 1.42MB (1493814) headers (space savings 50.51%), 1.25MB (1310898) data
                     min         max         mean         sd        +/- sd
time for request:      148us    116.71ms      2.81ms      7.21ms    96.88%
`;

describe('h2load output', () => {
  it('parses throughput, the negotiated protocol, and no bad requests', () => {
    expect(parseH2loadOutput(H2LOAD_OK)).toEqual({ requests: 4358, requestsPerSecond: 2179, bad: 0, protocol: 'h2' });
  });

  it('counts non-2xx answers and failed requests as bad, and names what is missing', () => {
    const bad = H2LOAD_OK.replace('4358 succeeded, 0 failed, 0 errored, 0 timeout', '4350 succeeded, 5 failed, 2 errored, 1 timeout').replace('4358 2xx, 0 3xx, 0 4xx, 0 5xx', '4340 2xx, 0 3xx, 3 4xx, 7 5xx');
    expect(parseH2loadOutput(bad).bad).toBe(18);
    expect(parseH2loadOutput(H2LOAD_OK.replace('Application protocol: h2\n', '')).protocol).toBe('none');
    expect(() => parseH2loadOutput('connect to 127.0.0.1:1 failed')).toThrow(/finished in/);
    expect(() => parseH2loadOutput(H2LOAD_OK.replace(/^status codes.*$/m, ''))).toThrow(/status codes/);
  });

  it('takes p50 and p99 from the per-request log, in milliseconds', () => {
    const log = Array.from({ length: 100 }, (_, i) => `1796131705225380\t200\t${(100 - i) * 1000}`).join('\n');
    expect(latencyFromLog(`${log}\n`)).toEqual({ p50Ms: 50, p99Ms: 99 });
  });
});

describe('nginx configs', () => {
  it('upstream: fixed body and its own port on every listener, no keep-alive request cap', () => {
    const conf = upstreamConfig('/tmp/x', [1001, 1002]);
    expect(conf).toContain('listen 127.0.0.1:1001;');
    expect(conf).toContain('listen 127.0.0.1:1002;');
    expect(conf).toContain(`location = ${PORT_PATH} { return 200 "$server_port"; }`);
    expect(conf).toContain(`return 200 ${JSON.stringify(BENCH_BODY)};`);
    expect(conf).toMatch(/keepalive_requests 1000000;/);
    expect(conf).toContain('pid /tmp/x/nginx.pid;');
  });

  it('proxy: HTTP/1.1 keep-alive upstream, Connection cleared, the same forwarding headers as the gateway', () => {
    const conf = proxyConfig('/tmp/p', { listenPort: 2000, upstreamPort: 1001, workers: 2, accessLog: false });
    expect(conf).toContain('worker_processes 2;');
    expect(conf).toContain('server 127.0.0.1:1001;');
    expect(conf).toMatch(/keepalive \d+;/);
    expect(conf).toContain('proxy_http_version 1.1;');
    expect(conf).toContain('proxy_set_header Connection "";');
    for (const h of ['X-Forwarded-For', 'X-Forwarded-Proto', 'X-Forwarded-Host', 'X-Forwarded-Port']) expect(conf).toContain(`proxy_set_header ${h} `);
    expect(conf).toContain('access_log off;');
    expect(proxyConfig('/tmp/p', { listenPort: 2000, upstreamPort: 1001, workers: 1, accessLog: true })).toContain('access_log /tmp/p/access.log;');
    expect(conf).toContain('listen 127.0.0.1:2000;');
  });

  it('proxy over TLS: HTTP/2 on the listener (nginx 1.22 syntax), the same upstream side', () => {
    const conf = proxyConfig('/tmp/p', { listenPort: 2000, upstreamPort: 1001, workers: 1, accessLog: false, tls: { certFile: '/tmp/c.pem', keyFile: '/tmp/k.pem' } });
    expect(conf).toContain('listen 127.0.0.1:2000 ssl http2;');
    expect(conf).toContain('ssl_certificate /tmp/c.pem;');
    expect(conf).toContain('ssl_certificate_key /tmp/k.pem;');
    expect(conf).toContain('proxy_http_version 1.1;');
  });
});

describe('peer configs', () => {
  it('Caddy: any Host on the loopback port, keep-alive pool as large as the others, X-Forwarded-Port added, no admin or automatic HTTPS', () => {
    const conf = caddyConfig({ listenPort: 2000, upstreamPort: 1001 });
    expect(conf).toContain('http://:2000 {');
    expect(conf).toContain('bind 127.0.0.1');
    expect(conf).toContain('reverse_proxy 127.0.0.1:1001 {');
    expect(conf).toContain('keepalive_idle_conns_per_host 256');
    expect(conf).toContain('header_up X-Forwarded-Port {http.request.port}');
    expect(conf).toMatch(/admin off/);
    expect(conf).toMatch(/auto_https off/);
    expect(conf).not.toMatch(/\blog\b/);
  });

  it('HAProxy: one thread, shared keep-alive upstream connections, the four forwarding headers, no logging', () => {
    const conf = haproxyConfig({ listenPort: 2000, upstreamPort: 1001 });
    expect(conf).toContain('nbthread 1');
    expect(conf).toContain('bind 127.0.0.1:2000');
    expect(conf).toContain('server pod 127.0.0.1:1001 pool-max-conn 256');
    expect(conf).toContain('http-reuse always');
    expect(conf).toContain('option forwardfor');
    for (const h of ['X-Forwarded-Proto', 'X-Forwarded-Host', 'X-Forwarded-Port']) expect(conf).toContain(`http-request set-header ${h} `);
    expect(conf).not.toMatch(/^\s*log\b/m);
  });
});

describe('processes', () => {
  it('pins with taskset, or not at all', () => {
    expect(pinned([1], ['nginx', '-v'])).toEqual(['taskset', '-c', '1', 'nginx', '-v']);
    expect(pinned('any', ['nginx'])).toEqual(['nginx']);
  });

  it('reads ppid and CPU ticks from /proc/<pid>/stat, even with spaces and parentheses in the name', () => {
    const stat = '2983 (node (MainThread) x) R 2968 2968 24025 0 -1 4194304 99 0 0 0 150 25 0 0 20 0 1 0 189795';
    expect(parseProcStat(stat)).toEqual({ ppid: 2968, ticks: 175 });
    expect(parseProcStat('garbage')).toBeUndefined();
  });

  it('reads VmRSS from /proc/<pid>/status in bytes', () => {
    expect(parseVmRss('Name:\tnode\nVmHWM:\t  200000 kB\nVmRSS:\t  153600 kB\nRssAnon:\t 100 kB\n')).toBe(153600 * 1024);
    expect(parseVmRss('Name:\tkthreadd\n')).toBeUndefined();
  });
});

describe('stats', () => {
  it('nearest-rank percentiles', () => {
    const xs = Array.from({ length: 200 }, (_, i) => 200 - i); // 200..1, unsorted
    expect(percentile(xs, 50)).toBe(100);
    expect(percentile(xs, 99)).toBe(198);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
  });

  it('ratios to two decimals, undefined without a reference', () => {
    expect(ratio(1, 3)).toBe(0.33);
    expect(ratio(5, undefined)).toBeUndefined();
    expect(ratio(5, 0)).toBeUndefined();
  });
});

describe('profile grouping', () => {
  it('groups frames by component', () => {
    expect(componentOf('(garbage collector)', '')).toBe('GC');
    expect(componentOf('stream', 'file:///w/node_modules/http-proxy-3/dist/lib/http-proxy/passes/web-incoming.js')).toBe('npm: http-proxy-3');
    expect(componentOf('x', 'file:///w/node_modules/@hono/node-server/dist/index.js')).toBe('npm: @hono/node-server');
    expect(componentOf('parserOnHeadersComplete', 'node:_http_common')).toBe('node: http');
    expect(componentOf('handleRequest', 'file:///work/main/gateway/gateway.ts')).toBe('podgate: gateway/gateway.ts');
    expect(componentOf('decideFor', 'file:///work/main/gateway/access/guard.ts')).toBe('podgate: gateway/access/guard.ts');
  });
});
