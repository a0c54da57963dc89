// All-in-one podgate (`npm start`): the gateway and the orchestrator in one process, over one set of stores
// (shared/stores.ts): the embedded ones without REDIS_URL, else Redis over one connection.
import { randomBytes } from 'node:crypto';
import { loadEnv } from './shared/config.ts';
import { createLogger } from './shared/log.ts';
import { runMain } from './shared/run-main.ts';
import { createStores } from './shared/stores.ts';
import { CONFIG_ERROR_PREFIX, loadGatewayConfig, runGateway } from './gateway/main.ts';
import { loadTlsConfig } from './gateway/tls/config.ts';
import { loadConfig } from './orchestrator/config.ts';
import { startOrchestrator } from './orchestrator/main.ts';

/** An address this process can reach its own listener on: a wildcard listener is reached on loopback. */
function adminAddress(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * The gateway the dashboard's certificates page uses: this process's own (its certificates API exists with TLS on),
 * with the gateway's token. GATEWAY_ADMIN_TOKEN in the environment is the gateway's setting here, not a request
 * for a dashboard without a URL.
 */
function dashboardGateway(
  env: Record<string, string | undefined>,
  gateway: { ADMIN_HOST: string; ADMIN_PORT: number; GATEWAY_ADMIN_TOKEN?: string | undefined },
  tlsEnabled: boolean,
): { GATEWAY_ADMIN_URL: string | undefined; GATEWAY_ADMIN_TOKEN: string | undefined } {
  const own = tlsEnabled ? `http://${adminAddress(gateway.ADMIN_HOST)}:${gateway.ADMIN_PORT}` : undefined;
  const url = env.GATEWAY_ADMIN_URL || own;
  return { GATEWAY_ADMIN_URL: url, GATEWAY_ADMIN_TOKEN: url ? gateway.GATEWAY_ADMIN_TOKEN : undefined };
}

await runMain(async () => {
  const env = loadEnv();
  // A fresh admin token when none is configured, so the embedded defaults are usable and never open.
  const generatedToken = env.ADMIN_TOKEN ? undefined : randomBytes(24).toString('base64url');
  const adminToken = env.ADMIN_TOKEN ?? generatedToken;
  // One admin token for the whole process: the gateway's certificates API takes the orchestrator's, unless set apart.
  const gatewayConfig = loadGatewayConfig({ ...env, GATEWAY_ADMIN_TOKEN: env.GATEWAY_ADMIN_TOKEN || adminToken });
  const tlsConfig = loadTlsConfig(env);
  const orchestratorConfig = loadConfig({
    // Pod URLs point at this gateway unless told otherwise.
    PUBLIC_PORT: String(gatewayConfig.HTTP_PORT),
    // This gateway is on the pod host: pods may reach its ports there (another pod's URL resolving to this host),
    // and nothing else of the host.
    POD_EGRESS_HOST_PORTS: [gatewayConfig.HTTP_PORT, ...(tlsConfig.enabled ? [tlsConfig.httpsPort] : [])].filter((p) => p > 0).join(','),
    ...env,
    ADMIN_TOKEN: adminToken,
    ...dashboardGateway(env, gatewayConfig, tlsConfig.enabled),
  });

  const log = createLogger('podgate', gatewayConfig.LOG_LEVEL);
  // One set of stores for both halves: without Redis, links minted by the orchestrator verify at the gateway (one
  // access store, so one generated signing secret and one revocation list); with it, one connection.
  const stores = createStores({ redis: gatewayConfig.redis, prefix: gatewayConfig.REDIS_PREFIX, user: 'podgate' }, log);
  // An egress policy that is on and cannot be installed, or a Redis refusing REDIS_URL's credentials, is reported
  // like a bad setting.
  const orchestrator = await startOrchestrator(orchestratorConfig, { stores, logger: log.child({ role: 'orchestrator' }) }).catch(async (err: unknown) => {
    await stores.close();
    throw err;
  });
  const gateway = await runGateway(gatewayConfig, { log: log.child({ role: 'gateway' }), stores, tls: tlsConfig });

  const api = `http://${orchestratorConfig.adminBind}:${orchestrator.port}`;
  process.stderr.write(
    [
      '',
      `podgate is running (${stores.redis ? 'Redis route table' : 'embedded route store'})`,
      `  pods:          http://pod-<name>.${gatewayConfig.baseDomains[0]}:${gateway.gateway.httpPort}/`,
      `  admin API:     ${api}/v1/pods`,
      generatedToken ? `  admin token:   ${generatedToken}   (generated; set ADMIN_TOKEN to choose one)` : '',
      `  health:        http://${gatewayConfig.ADMIN_HOST}:${gateway.gateway.adminPort}/healthz`,
      tlsConfig.enabled ? `  certificates:  http://${gatewayConfig.ADMIN_HOST}:${gateway.gateway.adminPort}/v1/certificates   (${env.GATEWAY_ADMIN_TOKEN ? 'GATEWAY_ADMIN_TOKEN' : 'the same bearer token'})` : '',
      // The README's quick start: a pod with the demo app and the web terminal, private (the default), opened with a link.
      `  create a pod:  curl -H "Authorization: Bearer $ADMIN_TOKEN" -H 'content-type: application/json' \\`,
      `                   -d '{"slug":"myapp","services":[{"name":"app","port":3000},{"name":"terminal","port":7681}]}' ${api}/v1/pods`,
      `  open it:       curl -H "Authorization: Bearer $ADMIN_TOKEN" -X POST ${api}/v1/pods/myapp/links   (its "url")`,
      '',
    ]
      .filter((line) => line !== '')
      .join('\n') + '\n\n',
  );

  const stop = async () => {
    await Promise.all([gateway.stop(), orchestrator.close()]);
    await stores.close();
  };
  return { log, stop, deadlineMs: gatewayConfig.SHUTDOWN_TIMEOUT_MS };
}, { configErrorPrefix: CONFIG_ERROR_PREFIX });
