// WebSocket through the gateway, end to end: real Redis, real gateway, real `ws` servers and clients on loopback.
// The plain-HTTP behaviour (headers, error statuses, timeouts) is covered by gateway/gateway.test.ts.
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { connect as connectTcp, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { closedPort, startHarness, type Harness } from './support/gateway-harness.ts';
import { waitFor } from './support/wait.ts';

/** Small enough that a WebSocket idle for longer would be cut if either timer applied to it. */
const SHORT_TIMEOUT_MS = 800;
const IDLE_BEYOND_TIMEOUTS_MS = SHORT_TIMEOUT_MS + 3_000;
const BIG_MESSAGE_BYTES = 16 * 1024 * 1024;
const SEQUENTIAL_CONNECTIONS = 10_000;
/**
 * Bound on the loop: stop (and fail) rather than run on. An idle 2-core machine does the 10,000 in about 20 s; the
 * cap leaves room for a machine shared with other test suites.
 */
const SEQUENTIAL_TIME_CAP_MS = 120_000;
/** Descriptors the process may legitimately hold more after the loop (lazy-opened files, pooled sockets). */
const FD_SLACK = 20;

const HOST_FORMS = {
  nested: 'localhost-3000.pod-wsapp.localhost:8080',
  flat: 'localhost-3000-pod-wsapp.localhost:8080',
  default: 'pod-wsapp.localhost:8080',
};

interface Upstream {
  wss: WebSocketServer;
  port: number;
  /** Host header of each upgrade the server accepted, newest last. */
  hosts: string[];
  close(): Promise<void>;
}

/** A ws server playing the pod: echoes every message (text stays text, binary stays binary). */
async function startWsUpstream(options: ConstructorParameters<typeof WebSocketServer>[0] = {}): Promise<Upstream> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, ...options });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const up: Upstream = {
    wss,
    port: (wss.address() as AddressInfo).port,
    hosts: [],
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  };
  wss.on('connection', (ws, req) => {
    up.hosts.push(req.headers.host ?? '');
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  return up;
}

let h: Harness;
let wsUrl: string;

/** `options.via`: another harness than the shared one. */
function connect(host: string, protocols: string[] = [], options: { perMessageDeflate?: boolean; via?: Harness } = {}): WebSocket {
  const base = options.via ? options.via.url.replace('http://', 'ws://') : wsUrl;
  return new WebSocket(`${base}/socket?x=1`, protocols, {
    headers: { host },
    perMessageDeflate: options.perMessageDeflate ?? false,
    maxPayload: 2 * BIG_MESSAGE_BYTES,
  });
}

function opened(ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.off('error', reject);
      resolve();
    });
    ws.once('error', reject);
  });
}

/** The next message, or the socket's error; either way no listener is left behind (a test reads thousands). */
function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve, reject) => {
    const onMessage = (data: unknown, isBinary: boolean) => {
      ws.off('error', onError);
      resolve({ data: data as Buffer, isBinary });
    };
    const onError = (err: Error) => {
      ws.off('message', onMessage);
      reject(err);
    };
    ws.once('message', onMessage);
    ws.once('error', onError);
  });
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

/** The HTTP status the gateway answered an upgrade with (it must not be 101). */
function refusedStatus(host: string, via?: Harness): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = connect(host, [], { via });
    ws.once('unexpected-response', (req, res: IncomingMessage) => {
      resolve(res.statusCode ?? 0);
      req.destroy();
    });
    ws.once('open', () => reject(new Error('upgrade unexpectedly succeeded')));
    ws.on('error', () => {}); // the abort after unexpected-response
  });
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${h.adminUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`metric ${name} missing`);
  return Number(line.split(' ')[1]);
}

const openFds = () => readdirSync('/proc/self/fd').length;

let echo: Upstream;
beforeAll(async () => {
  h = await startHarness({
    BASE_DOMAINS: 'localhost',
    UPSTREAM_RESPONSE_TIMEOUT_MS: String(SHORT_TIMEOUT_MS),
    HEADERS_TIMEOUT_MS: String(SHORT_TIMEOUT_MS),
  });
  wsUrl = h.url.replace('http://', 'ws://');
  echo = await startWsUpstream({
    perMessageDeflate: true,
    maxPayload: 2 * BIG_MESSAGE_BYTES,
    // Picks the client's second offer, so the test can tell negotiation from "first one wins".
    handleProtocols: (offered) => (offered.has('chat.v2') ? 'chat.v2' : false),
  });
  await h.route('wsapp', echo.port);
});
afterAll(async () => {
  await h?.close();
  await echo?.close();
});

describe.each(Object.entries(HOST_FORMS))('through the %s hostname form', (_form, host) => {
  it('negotiates the subprotocol and permessage-deflate end to end, and keeps the Host header', async () => {
    const serverSide = new Promise<WebSocket>((r) => echo.wss.once('connection', (ws) => r(ws)));
    const ws = connect(host, ['chat.v1', 'chat.v2'], { perMessageDeflate: true });
    await opened(ws);
    const server = await serverSide;
    expect(ws.protocol).toBe('chat.v2');
    expect(server.protocol).toBe('chat.v2');
    expect(ws.extensions).toContain('permessage-deflate');
    expect(server.extensions).toContain('permessage-deflate');
    expect(echo.hosts.at(-1)).toBe(host);
    ws.close();
    await closed(ws);
  });

  it('relays text and binary frames unchanged', async () => {
    const ws = connect(host, [], { perMessageDeflate: true });
    await opened(ws);
    const text = nextMessage(ws);
    ws.send('héllo wörld ✓');
    const t = await text;
    expect(t.isBinary).toBe(false);
    expect(t.data.toString('utf8')).toBe('héllo wörld ✓');
    const bytes = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80, 0x0d, 0x0a]);
    const bin = nextMessage(ws);
    ws.send(bytes);
    const b = await bin;
    expect(b.isBinary).toBe(true);
    expect(Buffer.compare(b.data, bytes)).toBe(0);
    ws.close();
    await closed(ws);
  });

  it('relays pings and pongs in both directions', async () => {
    const serverSide = new Promise<WebSocket>((r) => echo.wss.once('connection', (ws) => r(ws)));
    const ws = connect(host);
    await opened(ws);
    const server = await serverSide;

    const clientPong = new Promise<Buffer>((r) => ws.once('pong', (d) => r(d)));
    const serverGotPing = new Promise<Buffer>((r) => server.once('ping', (d) => r(d)));
    ws.ping('from-client');
    expect((await serverGotPing).toString()).toBe('from-client');
    expect((await clientPong).toString()).toBe('from-client');

    const serverPong = new Promise<Buffer>((r) => server.once('pong', (d) => r(d)));
    const clientGotPing = new Promise<Buffer>((r) => ws.once('ping', (d) => r(d)));
    server.ping('from-server');
    expect((await clientGotPing).toString()).toBe('from-server');
    expect((await serverPong).toString()).toBe('from-server');
    ws.close();
    await closed(ws);
  });

  it('carries close codes and reasons from the client to the server', async () => {
    const serverSide = new Promise<WebSocket>((r) => echo.wss.once('connection', (ws) => r(ws)));
    const ws = connect(host);
    await opened(ws);
    const server = await serverSide;
    const serverClosed = closed(server);
    ws.close(4001, 'client says bye');
    expect(await serverClosed).toEqual({ code: 4001, reason: 'client says bye' });
    expect((await closed(ws)).code).toBe(4001);
  });

  it('carries close codes and reasons from the server to the client', async () => {
    const serverSide = new Promise<WebSocket>((r) => echo.wss.once('connection', (ws) => r(ws)));
    const ws = connect(host);
    await opened(ws);
    const server = await serverSide;
    const clientClosed = closed(ws);
    server.close(4002, 'server says bye');
    expect(await clientClosed).toEqual({ code: 4002, reason: 'server says bye' });
  });
});

describe('large messages', () => {
  it.each([
    ['with permessage-deflate', true],
    ['without compression', false],
  ])('relays a 16 MiB message each way byte for byte (%s)', async (_name, deflate) => {
    const ws = connect(HOST_FORMS.nested, [], { perMessageDeflate: deflate });
    await opened(ws);
    expect(ws.extensions.includes('permessage-deflate')).toBe(deflate);
    const payload = randomBytes(BIG_MESSAGE_BYTES);
    const digest = createHash('sha256').update(payload).digest('hex');
    const back = nextMessage(ws);
    ws.send(payload); // the server echoes it: one 16 MiB message up, one down
    const { data, isBinary } = await back;
    expect(isBinary).toBe(true);
    expect(data.length).toBe(BIG_MESSAGE_BYTES);
    expect(createHash('sha256').update(data).digest('hex')).toBe(digest);
    ws.close();
    await closed(ws);
  });
});

describe('a pod that speaks first', () => {
  let greeter: Upstream;
  beforeAll(async () => {
    greeter = await startWsUpstream();
    // Its first message goes out right behind the 101, as Vite's HMR server's {"type":"connected"} does: the gateway
    // reads both at once, and the message is the upgrade's head for the tunnel.
    greeter.wss.on('connection', (ws) => ws.send('{"type":"connected"}'));
    await h.route('wsgreets', greeter.port);
  });
  afterAll(async () => {
    await greeter?.close();
  });

  it('relays the message the pod sent with its 101', async () => {
    const ws = connect('localhost-3000.pod-wsgreets.localhost:8080');
    const first = nextMessage(ws);
    await opened(ws);
    expect((await first).data.toString('utf8')).toBe('{"type":"connected"}');
    ws.close();
    await closed(ws);
  });
});

describe('refused upgrades', () => {
  let stopped: Upstream;
  beforeAll(async () => {
    stopped = await startWsUpstream();
    await h.route('stoppedpod', stopped.port, { status: 'stopped' });
    await h.route('deadport', await closedPort());
  });
  afterAll(async () => {
    await stopped?.close();
  });

  it('404 for an unknown pod', async () => {
    expect(await refusedStatus('pod-nosuchpod.localhost')).toBe(404);
  });

  it('503 for a stopped pod, without touching its port', async () => {
    expect(await refusedStatus('pod-stoppedpod.localhost')).toBe(503);
    expect(stopped.hosts).toEqual([]);
  });

  it('502 when nothing listens on the pod port', async () => {
    expect(await refusedStatus('pod-deadport.localhost')).toBe(502);
  });

  it('504 within UPSTREAM_RESPONSE_TIMEOUT_MS when the pod accepts the connection and never answers, its socket closed', async () => {
    const sockets: Socket[] = [];
    let closedByGateway = 0;
    const silent = createNetServer((socket) => {
      sockets.push(socket);
      socket.resume(); // reads the upgrade request, answers nothing
      socket.once('close', () => closedByGateway++);
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    try {
      await h.route('wssilent', (silent.address() as AddressInfo).port);
      expect(await refusedStatus('pod-wssilent.localhost')).toBe(504);
      expect(sockets).toHaveLength(1);
      await waitFor(() => closedByGateway === 1, { what: "the gateway to close the silent pod's socket" });
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it('400 for an Upgrade that is not WebSocket', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${h.url}/`, {
        headers: { host: HOST_FORMS.default, connection: 'Upgrade', upgrade: 'h2c' },
        agent: false,
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('upgrade', () => reject(new Error('non-WebSocket upgrade was switched')));
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(400);
    expect(echo.hosts.length).toBeGreaterThan(0); // sanity: the pod itself is up
  });
});

describe('response headers of upgrades', () => {
  let proxying: Upstream;
  let refusing: Upstream;
  beforeAll(async () => {
    proxying = await startWsUpstream();
    proxying.wss.on('headers', (headers) => headers.push('Proxy-Authenticate: Basic realm="proxy"', 'Proxy-Status: pod-router', 'X-Kept: yes'));
    // A pod that refuses the upgrade the way a proxy asking for credentials would.
    refusing = await startWsUpstream({
      verifyClient: (_info, done) => done(false, 407, 'Proxy Authentication Required', { 'Proxy-Authenticate': 'Basic realm="proxy"', 'X-Kept': 'yes' }),
    });
    await h.route('wsheaders', proxying.port);
    await h.route('wsrefuses', refusing.port);
  });
  afterAll(async () => {
    await proxying?.close();
    await refusing?.close();
  });

  it('drops Proxy-* headers from a 101 and keeps the rest', async () => {
    const ws = connect('pod-wsheaders.localhost');
    const upgrade = new Promise<IncomingMessage>((r) => ws.once('upgrade', (res) => r(res)));
    await opened(ws);
    const { headers } = await upgrade;
    expect(headers['proxy-authenticate']).toBeUndefined();
    expect(headers['proxy-status']).toBeUndefined();
    expect(headers['x-kept']).toBe('yes');
    expect(headers.upgrade?.toLowerCase()).toBe('websocket');
    ws.close();
    await closed(ws);
  });

  it("drops Proxy-* headers from a pod's plain refusal of the upgrade", async () => {
    const ws = connect('pod-wsrefuses.localhost');
    ws.on('error', () => {}); // the abort after unexpected-response
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      ws.once('unexpected-response', (req, r: IncomingMessage) => {
        resolve(r);
        req.destroy();
      });
      ws.once('open', () => reject(new Error('upgrade unexpectedly succeeded')));
    });
    expect(res.statusCode).toBe(407);
    expect(res.headers['proxy-authenticate']).toBeUndefined();
    expect(res.headers['x-kept']).toBe('yes');
  });
});

describe('access lines of upgrades', () => {
  let logged: Harness;
  let refusing: Upstream;
  beforeAll(async () => {
    logged = await startHarness({ ACCESS_LOG: 'true' });
    refusing = await startWsUpstream({ verifyClient: (_info, done) => done(false, 403) });
    await logged.route('wsok', echo.port);
    await logged.route('wsdead', await closedPort());
    await logged.route('wsno', refusing.port);
  });
  afterAll(async () => {
    await logged?.close();
    await refusing?.close();
  });
  const linesAbout = (host: string) => logged.logs.filter((l) => l.host === host);
  const oneLine = async (host: string) => {
    await waitFor(() => linesAbout(host).length > 0, { what: `the access line of ${host}` });
    const lines = linesAbout(host);
    expect(lines).toHaveLength(1);
    return lines[0]!;
  };

  it('one line with 101 for an upgrade the pod accepts', async () => {
    const ws = connect('pod-wsok.localhost', [], { via: logged });
    await opened(ws);
    ws.close();
    await closed(ws);
    expect(await oneLine('pod-wsok.localhost')).toMatchObject({ msg: 'request', status: 101, pod: 'wsok' });
  });

  it("one line with the pod's own status when it refuses the upgrade", async () => {
    expect(await refusedStatus('pod-wsno.localhost', logged)).toBe(403);
    expect(await oneLine('pod-wsno.localhost')).toMatchObject({ msg: 'request', status: 403, pod: 'wsno' });
  });

  it('a pod resetting an open tunnel ends it cleanly: no HTTP error written into the stream, no second line', async () => {
    const resetting = await startWsUpstream();
    resetting.wss.on('connection', (ws) => ws.on('message', () => (ws as unknown as { _socket: Socket })._socket.resetAndDestroy()));
    try {
      await logged.route('wsreset', resetting.port);
      const ws = connect('pod-wsreset.localhost', [], { via: logged });
      await opened(ws);
      const clientErrors: string[] = [];
      ws.on('error', (err) => clientErrors.push(err.message));
      const end = closed(ws);
      ws.send('reset, please');
      expect((await end).code).toBe(1006);
      expect(clientErrors).toEqual([]); // an HTTP 502 in the stream was "Invalid WebSocket frame"
      expect(await oneLine('pod-wsreset.localhost')).toMatchObject({ status: 101, pod: 'wsreset' });
      expect(logged.logs.filter((l) => l.level >= 40)).toEqual([]);
    } finally {
      await resetting.close();
    }
  });

  it("a client resetting its connection before the pod answers frees the pod's side at once and is logged as 499", async () => {
    const podSockets: Socket[] = [];
    let podSocketsClosed = 0;
    const silent = createNetServer((socket) => {
      podSockets.push(socket);
      socket.resume();
      socket.once('close', () => podSocketsClosed++);
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    try {
      await logged.route('wsabandon', (silent.address() as AddressInfo).port);
      const client = connectTcp(logged.gateway.httpPort, '127.0.0.1');
      client.on('error', () => {});
      client.write(
        'GET / HTTP/1.1\r\nHost: pod-wsabandon.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
      await waitFor(() => podSockets.length === 1, { what: 'the upgrade to reach the pod' });
      client.resetAndDestroy();
      // Well before the 60 s response timeout of this harness: the client's reset is what closes it. (A client that
      // only half-closes is not seen until the socket is read, after the pod's answer or at that timeout.)
      await waitFor(() => podSocketsClosed === 1, { what: "the pod's socket to be closed" });
      expect(await oneLine('pod-wsabandon.localhost')).toMatchObject({ status: 499, pod: 'wsabandon' });
    } finally {
      for (const socket of podSockets) socket.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it('one line, with the reason, when nothing listens on the pod port (no separate warning)', async () => {
    expect(await refusedStatus('pod-wsdead.localhost', logged)).toBe(502);
    const line = await oneLine('pod-wsdead.localhost');
    expect(line).toMatchObject({ level: 30, msg: 'request', status: 502, pod: 'wsdead', err: 'upstream_unreachable' });
    expect(line.reason).toMatch(/connection refused/);
    expect(logged.logs.filter((l) => l.level >= 40)).toEqual([]);
  });
});

describe('long-lived and many connections', () => {
  it('is not cut by the response or header timers while idle', async () => {
    const ws = connect(HOST_FORMS.flat);
    await opened(ws);
    let closedEarly = false;
    ws.once('close', () => (closedEarly = true));
    // Deliberately idle for longer than both timers: this elapsed time is what is under test.
    await sleep(IDLE_BEYOND_TIMEOUTS_MS);
    expect(closedEarly).toBe(false);
    const back = nextMessage(ws);
    ws.send('still here');
    expect((await back).data.toString()).toBe('still here');
    ws.close();
    await closed(ws);
  });

  it(`opens, uses and closes ${SEQUENTIAL_CONNECTIONS} connections one after another without leaking`, { timeout: SEQUENTIAL_TIME_CAP_MS + 60_000 }, async () => {
    await waitFor(async () => (await metric('podgate_websockets_open')) === 0 && echo.wss.clients.size === 0, {
      what: 'earlier tests to close their sockets',
    });
    const baseline = openFds();
    const started = Date.now();
    let done = 0;
    for (; done < SEQUENTIAL_CONNECTIONS && Date.now() - started < SEQUENTIAL_TIME_CAP_MS; done++) {
      const ws = connect(HOST_FORMS.default);
      await opened(ws);
      const back = nextMessage(ws);
      ws.send(`n${done}`);
      const { data } = await back;
      if (data.toString() !== `n${done}`) throw new Error(`connection ${done} echoed ${data.toString()}`);
      const gone = closed(ws);
      ws.close();
      await gone;
    }
    const elapsedMs = Date.now() - started;
    console.log(`${done} sequential WebSocket connections in ${elapsedMs} ms (${Math.round((done * 1000) / elapsedMs)}/s)`);
    expect(done).toBe(SEQUENTIAL_CONNECTIONS);
    await waitFor(async () => (await metric('podgate_websockets_open')) === 0, { what: 'podgate_websockets_open to drop to 0' });
    await waitFor(() => echo.wss.clients.size === 0, { what: 'the upstream to see every client close' });
    await waitFor(() => openFds() <= baseline + FD_SLACK, { what: `open fds back near ${baseline} (now ${openFds()})` });
    expect(await metric('podgate_websockets_total')).toBeGreaterThanOrEqual(SEQUENTIAL_CONNECTIONS);
  });
});

describe('WS_IDLE_TIMEOUT_MS', () => {
  const IDLE_TIMEOUT_MS = 1_000;
  /** Far shorter than the idle timeout, so only a machine stalled for most of a second could look idle. */
  const CHATTER_INTERVAL_MS = 100;
  let idle: Harness;
  let up: Upstream;
  beforeAll(async () => {
    idle = await startHarness({ WS_IDLE_TIMEOUT_MS: String(IDLE_TIMEOUT_MS) });
    up = await startWsUpstream();
    await idle.route('idleapp', up.port);
  });
  afterAll(async () => {
    await idle?.close();
    await up?.close();
  });

  it('closes a WebSocket with no traffic, on both ends, and forgets it', async () => {
    const ws = new WebSocket(idle.url.replace('http://', 'ws://'), { headers: { host: 'pod-idleapp.localhost' } });
    await opened(ws);
    const back = nextMessage(ws);
    ws.send('before idling');
    expect((await back).data.toString()).toBe('before idling');
    const { code } = await closed(ws); // nothing else ends it: the idle timer must
    expect(code).toBe(1006); // the tunnel is cut, there is no close handshake to relay
    await waitFor(() => up.wss.clients.size === 0, { what: 'the pod to see the tunnel closed' });
    const text = await (await fetch(`${idle.adminUrl}/metrics`)).text();
    expect(text).toMatch(/^podgate_websockets_open 0$/m);
  });

  it('keeps a WebSocket with traffic open past the idle timeout', async () => {
    const ws = new WebSocket(idle.url.replace('http://', 'ws://'), { headers: { host: 'pod-idleapp.localhost' } });
    await opened(ws);
    let closedEarly = false;
    ws.once('close', () => (closedEarly = true));
    const started = Date.now();
    for (let i = 0; Date.now() - started < 3 * IDLE_TIMEOUT_MS; i++) {
      const back = nextMessage(ws);
      ws.send(`tick ${i}`);
      expect((await back).data.toString()).toBe(`tick ${i}`);
      await sleep(CHATTER_INTERVAL_MS); // the traffic pattern under test, not synchronisation
    }
    expect(closedEarly).toBe(false);
    ws.close();
    await closed(ws);
  });
});
