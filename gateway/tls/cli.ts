// Certificates from the command line, through the running gateway's admin API (the gateway answers the
// HTTP-01 challenges, so issuance has to happen there):
//   npm run certs -- issue <name> [<name>...]   e.g. issue '*.pod-myapp.example.com'
//   npm run certs -- list
//   npm run certs -- renew <id>
//   npm run certs -- delete <id>
// ADMIN_URL (default http://127.0.0.1:$ADMIN_PORT, port 9090) names the gateway's admin listener; the bearer token
// is GATEWAY_ADMIN_TOKEN, else ADMIN_TOKEN (the all-in-one `npm start` gives the gateway the orchestrator's token).
import type { CertificateView } from './manager.ts';

const USAGE = 'usage: certs issue <name>... | list | renew <id> | delete <id>   (GATEWAY_ADMIN_TOKEN=..., ADMIN_URL=http://127.0.0.1:9090)';
/** Issuance waits for the CA; Let's Encrypt usually answers within seconds, a slow validation within minutes. */
const REQUEST_TIMEOUT_MS = 5 * 60_000;

function adminUrl(env: NodeJS.ProcessEnv): string {
  return (env.ADMIN_URL ?? `http://127.0.0.1:${env.ADMIN_PORT ?? 9090}`).replace(/\/+$/, '');
}

function adminToken(env: NodeJS.ProcessEnv): string {
  const token = env.GATEWAY_ADMIN_TOKEN || env.ADMIN_TOKEN;
  if (!token) throw new Error('set GATEWAY_ADMIN_TOKEN to the gateway admin token (the all-in-one gateway takes ADMIN_TOKEN)');
  return token;
}

async function call(method: string, path: string, body?: unknown): Promise<unknown> {
  const url = `${adminUrl(process.env)}${path}`;
  const headers: Record<string, string> = { authorization: `Bearer ${adminToken(process.env)}` };
  // The API takes changes only as JSON, bodiless ones included.
  if (method !== 'GET') headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (err) {
    throw new Error(`cannot reach the gateway admin API at ${url}: ${(err as Error).message} (set ADMIN_URL)`);
  }
  const text = await res.text();
  const json = text ? (JSON.parse(text) as { error?: { message?: string } }) : undefined;
  if (!res.ok) throw new Error(json?.error?.message ?? `HTTP ${res.status}`);
  return json;
}

function line(c: CertificateView): string {
  const failing = c.renewal.failures > 0 ? `  renewal failed ${c.renewal.failures}x: ${c.renewal.lastError ?? ''}` : '';
  return `${c.id}\t${c.status}\texpires ${c.notAfter}\trenew ${c.renewAt}\t${c.origin}\t${c.names.join(',')}${failing}`;
}

async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  const id = (name: string | undefined) => {
    if (!name || rest.length !== 1) throw new UsageError();
    return encodeURIComponent(name);
  };
  switch (command) {
    case 'issue':
      if (rest.length === 0) throw new UsageError();
      console.log(line((await call('POST', '/v1/certificates', { names: rest })) as CertificateView));
      return 0;
    case 'list': {
      const { certificates } = (await call('GET', '/v1/certificates')) as { certificates: CertificateView[] };
      for (const c of certificates) console.log(line(c));
      if (certificates.length === 0) console.log('no certificates');
      return 0;
    }
    case 'renew':
      console.log(line((await call('POST', `/v1/certificates/${id(rest[0])}/renew`)) as CertificateView));
      return 0;
    case 'delete':
      await call('DELETE', `/v1/certificates/${id(rest[0])}`);
      console.log(`deleted ${rest[0]}`);
      return 0;
    default:
      throw new UsageError();
  }
}

class UsageError extends Error {}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      if (err instanceof UsageError) {
        console.error(USAGE);
        process.exit(2);
      }
      console.error(`certs: ${(err as Error).message}`);
      process.exit(1);
    },
  );
}
