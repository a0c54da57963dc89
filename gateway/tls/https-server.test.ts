import { connect as http2Connect } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../shared/log.ts';
import { waitFor } from '../../test/support/wait.ts';
import { listenHttps, type HttpsListener } from './https-server.ts';
import { createSelfSignedCertificate, type KeyAndCert } from './self-signed.ts';

let pair: KeyAndCert;
let listener: HttpsListener;
const hosts: string[] = [];

beforeAll(async () => {
  pair = await createSelfSignedCertificate('test');
  listener = await listenHttps(
    { key: pair.keyPem, cert: pair.certPem },
    {
      onRequest: (req, res) => {
        hosts.push(req.headers.host ?? '');
        res.end('ok');
      },
      onUpgrade: (_req, socket) => socket.destroy(),
    },
    { port: 0, host: '127.0.0.1', http2: true, headersTimeoutMs: 300, keepAliveTimeoutMs: 600, log: silentLogger() },
  );
});
afterAll(async () => {
  await listener.close(500);
});

describe('HTTPS listener with HTTP/2', () => {
  it('hands HTTP/2 requests to the gateway with Host taken from :authority', async () => {
    const session = http2Connect(`https://127.0.0.1:${listener.port}`, { rejectUnauthorized: false });
    const body = await new Promise<string>((resolve, reject) => {
      const stream = session.request({ ':path': '/', ':authority': 'pod-a.example.test' });
      let data = '';
      stream.setEncoding('utf8');
      stream.on('data', (c: string) => (data += c));
      stream.on('end', () => resolve(data));
      stream.on('error', reject);
      stream.end();
    });
    session.close();
    expect(body).toBe('ok');
    expect(hosts).toContain('pod-a.example.test');
  });

  it('closes HTTP/1.1 connections that never finish their request head (slowloris)', async () => {
    const socket = tlsConnect({ host: '127.0.0.1', port: listener.port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    let closed = false;
    socket.on('close', () => (closed = true));
    socket.on('error', () => {});
    socket.once('secureConnect', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\n'));
    await waitFor(() => closed, { what: 'the server to close a trickling connection', timeoutMs: 10_000 });
  });
});
