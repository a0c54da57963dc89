// Reference points for the benchmark: the smallest reverse proxies Node can be, so the report can tell the cost of
// Node's HTTP stack from the cost of http-proxy-3 and from the gateway's own work. Keep-alive pool to the
// upstream, the four X-Forwarded-* headers, nothing else (no routing, metrics, timeouts or error pages).
// Usage: node bench/reference-proxy.ts <node-http|http-proxy-3> <listen port> <upstream port>
import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { createProxyServer } from 'http-proxy-3';

const [kind, listenArg, upstreamArg] = process.argv.slice(2);
const listenPort = Number(listenArg);
const upstreamPort = Number(upstreamArg);
const isPort = (n: number) => Number.isInteger(n) && n >= 1 && n <= 65535;
if ((kind !== 'node-http' && kind !== 'http-proxy-3') || !isPort(listenPort) || !isPort(upstreamPort)) {
  process.stderr.write('usage: node bench/reference-proxy.ts <node-http|http-proxy-3> <listen port 1-65535> <upstream port 1-65535>\n');
  process.exit(2);
}
/** As the gateway's pool (UPSTREAM_MAX_FREE_SOCKETS). */
const MAX_FREE_SOCKETS = 256;
const agent = new Agent({ keepAlive: true, maxFreeSockets: MAX_FREE_SOCKETS });

function viaNodeHttp(req: IncomingMessage, res: ServerResponse): void {
  const headers = req.headers;
  delete headers.connection;
  headers['x-forwarded-for'] = req.socket.remoteAddress ?? '';
  headers['x-forwarded-proto'] = 'http';
  headers['x-forwarded-host'] = headers.host ?? '';
  headers['x-forwarded-port'] = String(listenPort);
  const upstream = request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers, agent, setHost: false }, (r) => {
    res.writeHead(r.statusCode ?? 502, r.headers);
    r.pipe(res);
  });
  upstream.on('error', () => {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  });
  req.pipe(upstream);
}

const proxy = createProxyServer({ target: `http://127.0.0.1:${upstreamPort}`, agent, xfwd: true });
proxy.on('error', (_err, _req, res) => {
  if ('writeHead' in res && !res.headersSent) res.writeHead(502);
  res.end();
});

createServer(kind === 'node-http' ? viaNodeHttp : (req, res) => proxy.web(req, res)).listen(listenPort, '127.0.0.1');
process.once('SIGTERM', () => process.exit(0));
