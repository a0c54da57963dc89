// Orchestrator configuration from the environment, validated once at start (zod). A bad value stops the start
// with a ConfigError naming the variable; nothing here is read per request.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { envRedisSentinel, sentinelSettings, type SentinelSettings } from '../shared/redis.ts';
import { envListenHost, envLogLevel, envRedisTlsCa, envRedisUrl, loadEnv, parseEnv, redisConnection, type LogLevel } from '../shared/config.ts';
import { ConfigError } from '../shared/errors.ts';
import { normaliseBaseDomains } from '../shared/hostname.ts';
import { MIN_SECRET_LENGTH } from '../shared/access-token.ts';
import { MIN_ADMIN_TOKEN_LENGTH } from '../shared/admin-token.ts';
import { DEFAULT_EGRESS_DENY, parseCidrList, type Cidr } from './egress-rules.ts';
import { parseIdleTimeout } from './idle.ts';

export const DEFAULT_PORT_RANGE = '30000-39999';
export const DEFAULT_ORCHESTRATOR_PORT = 8090;
/** Five days, the seed's retention of provisioning logs. */
export const DEFAULT_LOG_RETENTION = '5d';
export const DEFAULT_LOG_MAX_ENTRIES = 1000;
export const DEFAULT_RECONCILE_INTERVAL_MS = 30_000;
export const DEFAULT_READY_TIMEOUT_MS = 60_000;
export const DEFAULT_IDLE_TIMEOUT = 'off';
export const DEFAULT_WAKE_LIMIT = 10;
export const DEFAULT_WAKE_WINDOW = '10m';

export interface PortRange {
  first: number;
  last: number;
}

/** DOCKER_HOST=ssh://user@host[:port]: the orchestrator builds this client itself (main.ts `dockerClient`). */
export interface DockerSshTarget {
  user: string;
  host: string;
  port: number;
  /** SSH_AUTH_SOCK: the agent ssh2 asks to sign (it never runs the `ssh` binary, so ~/.ssh/config and its keys are not used). */
  agent: string | undefined;
  /** DOCKER_SSH_IDENTITY: a private key file without passphrase, for hosts with no agent. */
  identity: string | undefined;
  /** DOCKER_SSH_HOST_KEY: the pod host's key fingerprint (`SHA256:...`, as `ssh-keygen -lf` prints it); unset: not verified. */
  hostKey: string | undefined;
}

/**
 * The egress policy (egress-rules.ts). `auto` (POD_EGRESS_POLICY unset): on when this process can run iptables for
 * a local Docker, otherwise off with a warning; `on`: the orchestrator does not start without it.
 */
export interface EgressConfig {
  mode: 'on' | 'off' | 'auto';
  deny: Cidr[];
  hostPorts: number[];
  /** Why `auto` became off before anything was tried (pods on another machine): the start warns with it. */
  offReason: string | undefined;
}

export interface OrchestratorConfig {
  /** Pods of this orchestrator carry this label value; others on the same Docker host are not touched. */
  namespace: string;
  /** Docker runtime for pods; `runsc` (gVisor) unless explicitly weakened. */
  runtime: string;
  /**
   * POD_SUDO: the pod user may become root inside its sandbox (passwordless sudo, apt-get install). Off: pods keep
   * only NET_BIND_SERVICE and run with no-new-privileges.
   */
  sudo: boolean;
  /**
   * POD_CA_FILE's PEM certificates, put into every pod and trusted by its Node (NODE_EXTRA_CA_CERTS): for a host
   * whose way to the npm registry presents a private CA (a TLS-inspecting proxy). Unset: none.
   */
  podCa: string | undefined;
  /** Host address the pod's single port is published on. */
  bindAddress: string;
  /** Address gateways use to reach pod ports (written into routes). */
  hostAddress: string;
  portRange: PortRange;
  adminToken: string;
  adminBind: string;
  /** 0 picks a free port (tests). */
  adminPort: number;
  logRetentionMs: number;
  logMaxEntries: number;
  /** REDIS_URL; with REDIS_SENTINELS alone a URL without credentials (Sentinel names the host). Unset: no Redis. */
  redisUrl: string | undefined;
  /** REDIS_SENTINELS and companions: connect through Sentinel. */
  redisSentinel?: SentinelSettings | undefined;
  /** REDIS_TLS_CA's PEM certificates, the only CAs trusted for a rediss:// server when set. */
  redisTlsCa: Buffer | undefined;
  redisPrefix: string;
  baseDomains: string[];
  /** How URLs of pods are shown: scheme and the gateway's public port (omitted when it is the scheme's default). */
  publicScheme: 'http' | 'https';
  publicPort: number | undefined;
  defaultImage: string;
  reconcileIntervalMs: number;
  readyTimeoutMs: number;
  /** POD_IDLE_TIMEOUT as written (validated): the idle timeout of pods whose spec sets none; `off`: they never sleep. */
  idleTimeout: string;
  /** POD_WAKE_LIMIT wakes asked by gateways per pod within POD_WAKE_WINDOW; more are refused until the window ends. */
  wakeLimit: { count: number; windowMs: number };
  logLevel: LogLevel;
  /** ACCESS_SECRET, comma list (first signs): shared with the gateways; empty means generated and shared via the store. */
  accessSecrets: string[];
  /**
   * DOCKER_HOST as this configuration gives it; undefined: dockerode's defaults (the process environment, else the
   * local socket). Forms other than ssh:// are read by docker-modem from the process environment, so they must be
   * the same there.
   */
  dockerHost: string | undefined;
  /** Set for DOCKER_HOST=ssh://. */
  dockerSsh: DockerSshTarget | undefined;
  egress: EgressConfig;
  /** GATEWAY_ADMIN_URL and GATEWAY_ADMIN_TOKEN: a gateway's certificates API, for the dashboard; undefined: none. */
  gatewayAdmin: GatewayAdmin | undefined;
}

export interface GatewayAdmin {
  url: string;
  token: string;
}

const DURATION = /^(\d+)(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `500ms`, `30s`, `10m`, `12h`, `5d` -> milliseconds. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

export function parsePortRange(text: string): PortRange | undefined {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const first = Number(m[1]);
  const last = Number(m[2]);
  if (first < 1024 || last > 65535 || first > last) return undefined;
  return { first, last };
}

const port = (name: string) =>
  z.coerce.number({ error: `${name} must be a number` }).int().min(0).max(65535);

const EnvSchema = z.object({
  POD_RUNTIME: z.string().regex(/^[a-zA-Z0-9._-]+$/, 'a Docker runtime name').default('runsc'),
  POD_BIND_ADDRESS: z.union([z.ipv4(), z.ipv6()]).default('127.0.0.1'),
  POD_HOST_ADDRESS: z.string().min(1).max(253).default('127.0.0.1'),
  POD_PORT_RANGE: z.string().default(DEFAULT_PORT_RANGE),
  POD_IMAGE: z.string().min(1).default('podgate/pod:dev'),
  POD_CA_FILE: z.string().optional().transform((s) => s || undefined),
  POD_SUDO: z.enum(['on', 'off'], { error: 'POD_SUDO must be on or off (on: the pod user may sudo inside its sandbox)' }).default('on'),
  POD_NAMESPACE: z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'lowercase letters, digits, . _ -').default('default'),
  POD_READY_TIMEOUT: z.string().default(`${DEFAULT_READY_TIMEOUT_MS}ms`),
  ADMIN_TOKEN: z.string().min(MIN_ADMIN_TOKEN_LENGTH, `at least ${MIN_ADMIN_TOKEN_LENGTH} characters`),
  ORCHESTRATOR_BIND: envListenHost('127.0.0.1'),
  ORCHESTRATOR_PORT: port('ORCHESTRATOR_PORT').default(DEFAULT_ORCHESTRATOR_PORT),
  LOG_RETENTION: z.string().default(DEFAULT_LOG_RETENTION),
  LOG_MAX_ENTRIES: z.coerce.number().int().min(10).max(100_000).default(DEFAULT_LOG_MAX_ENTRIES),
  RECONCILE_INTERVAL: z.string().default(`${DEFAULT_RECONCILE_INTERVAL_MS}ms`),
  POD_IDLE_TIMEOUT: z.string().default(DEFAULT_IDLE_TIMEOUT),
  POD_WAKE_LIMIT: z.coerce.number({ error: 'POD_WAKE_LIMIT must be a number' }).int().min(1).max(10_000).default(DEFAULT_WAKE_LIMIT),
  POD_WAKE_WINDOW: z.string().default(DEFAULT_WAKE_WINDOW),
  REDIS_URL: envRedisUrl,
  REDIS_TLS_CA: envRedisTlsCa,
  REDIS_PREFIX: z.string().max(100).default('podgate:'),
  ...envRedisSentinel,
  BASE_DOMAINS: z.string().default('localhost'),
  PUBLIC_SCHEME: z.enum(['http', 'https']).default('http'),
  PUBLIC_PORT: port('PUBLIC_PORT').optional(),
  GATEWAY_ADMIN_URL: z.url({ protocol: /^https?$/, error: 'an http(s) URL of a gateway admin listener' }).optional(),
  GATEWAY_ADMIN_TOKEN: z.string().min(MIN_ADMIN_TOKEN_LENGTH, `at least ${MIN_ADMIN_TOKEN_LENGTH} characters`).optional(),
  ACCESS_SECRET: z
    .string()
    .optional()
    .transform((s) => (s ?? '').split(',').map((x) => x.trim()).filter(Boolean))
    .pipe(z.array(z.string().min(MIN_SECRET_LENGTH, `each secret must be at least ${MIN_SECRET_LENGTH} characters`))),
  LOG_LEVEL: envLogLevel,
  DOCKER_HOST: z.string().optional(),
  SSH_AUTH_SOCK: z.string().optional(),
  DOCKER_SSH_IDENTITY: z.string().optional(),
  DOCKER_SSH_HOST_KEY: z.string().optional(),
  POD_EGRESS_POLICY: z.string().optional(),
  POD_EGRESS_DENY: z.string().default(DEFAULT_EGRESS_DENY),
  POD_EGRESS_HOST_PORTS: z.string().default(''),
});

/**
 * POD_EGRESS_POLICY, POD_EGRESS_DENY, POD_EGRESS_HOST_PORTS. `dockerHost` is where pods run: rules installed here
 * protect nothing on another machine. @throws ConfigError
 */
export function egressConfig(e: { POD_EGRESS_POLICY?: string | undefined; POD_EGRESS_DENY?: string | undefined; POD_EGRESS_HOST_PORTS?: string | undefined }, dockerHost: string | undefined): EgressConfig {
  const mode = e.POD_EGRESS_POLICY === undefined || e.POD_EGRESS_POLICY === '' ? 'auto' : e.POD_EGRESS_POLICY;
  if (mode !== 'on' && mode !== 'off' && mode !== 'auto') throw new ConfigError('POD_EGRESS_POLICY', `must be on, off or auto (the default: on where iptables can be used), got ${JSON.stringify(mode)}`);
  const deny = parseCidrList(e.POD_EGRESS_DENY ?? DEFAULT_EGRESS_DENY);
  if (typeof deny === 'string') throw new ConfigError('POD_EGRESS_DENY', `${deny}; expected a comma list of CIDRs`);
  const hostPorts: number[] = [];
  for (const part of (e.POD_EGRESS_HOST_PORTS ?? '').split(',').map((p) => p.trim()).filter(Boolean)) {
    const n = Number(part);
    if (!/^\d{1,5}$/.test(part) || n < 1 || n > 65535) throw new ConfigError('POD_EGRESS_HOST_PORTS', `${JSON.stringify(part)} is not a TCP port (1-65535); expected a comma list of ports`);
    if (!hostPorts.includes(n)) hostPorts.push(n);
  }
  const remote = dockerHost !== undefined && dockerHost !== '' && !dockerHost.startsWith('unix://');
  if (mode === 'on' && remote) {
    throw new ConfigError('POD_EGRESS_POLICY', `is on, but pods run on ${dockerHost}: the rules belong on that machine (run \`node orchestrator/egress-cli.ts install\` there) and POD_EGRESS_POLICY=off here`);
  }
  if (remote && mode === 'auto') {
    return { mode: 'off', deny, hostPorts, offReason: `pods run on ${dockerHost}: install the rules there (node orchestrator/egress-cli.ts install) and set POD_EGRESS_POLICY=off to silence this` };
  }
  return { mode, deny, hostPorts, offReason: undefined };
}

function duration(variable: string, text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) throw new ConfigError(variable, `expected a duration like 30s, 10m or 5d, got ${JSON.stringify(text)}`);
  return ms;
}

/** POD_IDLE_TIMEOUT, validated like a spec's idleTimeout. @throws ConfigError */
function idleTimeoutSetting(text: string): string {
  const parsed = parseIdleTimeout(text);
  if ('error' in parsed) throw new ConfigError('POD_IDLE_TIMEOUT', parsed.error);
  return text.trim();
}

const SSH_HOST_FORM = 'expected ssh://user@host[:port] (the user is required: no ~/.ssh/config is read)';

/** `SHA256:` and 43 base64 characters: an SHA-256 fingerprint as OpenSSH prints it (no padding). */
const HOST_KEY_FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;

function sshTarget(text: string, agent: string | undefined, identity: string | undefined, hostKey: string | undefined): DockerSshTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError('DOCKER_HOST', `${SSH_HOST_FORM}, got ${JSON.stringify(text)}`);
  }
  if (!url.username || !url.hostname || (url.pathname !== '' && url.pathname !== '/') || url.search || url.hash) {
    throw new ConfigError('DOCKER_HOST', `${SSH_HOST_FORM}, got ${JSON.stringify(text)}`);
  }
  if (url.password) throw new ConfigError('DOCKER_HOST', 'no password in the URL: ssh:// authenticates with a key (SSH_AUTH_SOCK or DOCKER_SSH_IDENTITY)');
  if (!agent && !identity) {
    throw new ConfigError('DOCKER_HOST', `${text} needs a key: an SSH agent holding one (SSH_AUTH_SOCK) or DOCKER_SSH_IDENTITY=<private key file>`);
  }
  if (identity) readSshIdentity(identity);
  if (hostKey !== undefined && !HOST_KEY_FINGERPRINT.test(hostKey)) {
    throw new ConfigError('DOCKER_SSH_HOST_KEY', `expected the host key's SHA256 fingerprint as \`ssh-keygen -lf <host key>.pub\` prints it (SHA256:<43 characters>), got ${JSON.stringify(hostKey)}`);
  }
  return {
    user: decodeURIComponent(url.username),
    // URL keeps the brackets of an IPv6 literal; ssh2 connects to the bare address.
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port ? Number(url.port) : 22,
    agent,
    identity,
    hostKey,
  };
}

/** An OpenSSH private key says in its header whether a passphrase protects it (cipher name `none` if not). */
function opensshKeyEncrypted(base64: string): boolean {
  const raw = Buffer.from(base64.replace(/\s+/g, ''), 'base64');
  const magic = 'openssh-key-v1\0';
  if (raw.subarray(0, magic.length).toString('latin1') !== magic || raw.length < magic.length + 4) return false;
  const length = raw.readUInt32BE(magic.length);
  return raw.subarray(magic.length + 4, magic.length + 4 + length).toString('latin1') !== 'none';
}

/** POD_CA_FILE, read at start so a wrong path stops it naming the setting. @throws ConfigError naming POD_CA_FILE */
export function readPodCa(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('POD_CA_FILE', `cannot read ${path}: ${(err as Error).message}`);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError('POD_CA_FILE', `${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return text;
}

/**
 * The key file of DOCKER_SSH_IDENTITY, checked enough that a wrong file stops the start instead of every Docker
 * call failing: readable, a private key (OpenSSH or PEM), not protected by a passphrase (nobody could type it).
 * @throws ConfigError naming DOCKER_SSH_IDENTITY
 */
export function readSshIdentity(path: string): Buffer {
  let key: Buffer;
  try {
    key = readFileSync(path);
  } catch (err) {
    throw new ConfigError('DOCKER_SSH_IDENTITY', `cannot read ${path}: ${(err as Error).message}`);
  }
  const pem = /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----\r?\n([\s\S]*?)-----END /.exec(key.toString('utf8'));
  if (!pem) throw new ConfigError('DOCKER_SSH_IDENTITY', `${path} is not a private key (no -----BEGIN ... PRIVATE KEY----- block; a .pub file is the public half)`);
  const kind = pem[1] ?? '';
  const body = pem[2] ?? '';
  const encrypted = kind.startsWith('ENCRYPTED') || /^Proc-Type: 4,ENCRYPTED/m.test(body) || (kind === 'OPENSSH ' && opensshKeyEncrypted(body));
  if (encrypted) {
    throw new ConfigError('DOCKER_SSH_IDENTITY', `${path} is protected by a passphrase, which the orchestrator cannot type: add it to an SSH agent (SSH_AUTH_SOCK) instead`);
  }
  return key;
}

/** DOCKER_HOST, SSH_AUTH_SOCK, DOCKER_SSH_IDENTITY, DOCKER_SSH_HOST_KEY -> where Docker is. */
function dockerTarget(e: {
  DOCKER_HOST?: string | undefined;
  SSH_AUTH_SOCK?: string | undefined;
  DOCKER_SSH_IDENTITY?: string | undefined;
  DOCKER_SSH_HOST_KEY?: string | undefined;
}) {
  const dockerHost = e.DOCKER_HOST || undefined;
  const identity = e.DOCKER_SSH_IDENTITY || undefined;
  const hostKey = e.DOCKER_SSH_HOST_KEY || undefined;
  if (dockerHost?.startsWith('ssh://')) {
    return { dockerHost, dockerSsh: sshTarget(dockerHost, e.SSH_AUTH_SOCK || undefined, identity, hostKey) };
  }
  if (hostKey) throw new ConfigError('DOCKER_SSH_HOST_KEY', `only used with DOCKER_HOST=ssh://user@host (DOCKER_HOST is ${dockerHost === undefined ? 'unset' : JSON.stringify(dockerHost)})`);
  if (identity) throw new ConfigError('DOCKER_SSH_IDENTITY', `only used with DOCKER_HOST=ssh://user@host (DOCKER_HOST is ${dockerHost === undefined ? 'unset' : JSON.stringify(dockerHost)})`);
  // docker-modem reads these forms (and DOCKER_TLS_VERIFY, DOCKER_CERT_PATH) from process.env only: one given
  // elsewhere (CONFIG_FILE) would be silently ignored.
  if (dockerHost !== undefined && dockerHost !== process.env.DOCKER_HOST) {
    throw new ConfigError('DOCKER_HOST', `${JSON.stringify(dockerHost)} is read by dockerode from the process environment only; set it there (only ssh:// is taken from CONFIG_FILE)`);
  }
  return { dockerHost, dockerSsh: undefined };
}

/** Both or neither: a URL without its token (or the reverse) is a mistake, not a choice. */
function gatewayAdmin(url: string | undefined, token: string | undefined): GatewayAdmin | undefined {
  if (url === undefined && token === undefined) return undefined;
  if (url === undefined) throw new ConfigError('GATEWAY_ADMIN_URL', 'required with GATEWAY_ADMIN_TOKEN (the gateway admin listener, e.g. http://127.0.0.1:9090)');
  if (token === undefined) throw new ConfigError('GATEWAY_ADMIN_TOKEN', 'required with GATEWAY_ADMIN_URL (the gateway\'s own GATEWAY_ADMIN_TOKEN)');
  return { url: url.replace(/\/+$/, ''), token };
}

/** Read the configuration from an environment (process.env by default, plus CONFIG_FILE). @throws ConfigError */
export function loadConfig(env: Record<string, string | undefined> = process.env): OrchestratorConfig {
  const e = parseEnv(EnvSchema, loadEnv(env));
  const portRange = parsePortRange(e.POD_PORT_RANGE);
  if (!portRange) throw new ConfigError('POD_PORT_RANGE', `expected <first>-<last> within 1024-65535, got ${JSON.stringify(e.POD_PORT_RANGE)}`);
  const redis = redisConnection(e.REDIS_URL, e.REDIS_TLS_CA, sentinelSettings(e));
  const baseDomains = normaliseBaseDomains(e.BASE_DOMAINS.split(','));
  if (baseDomains.length === 0) throw new ConfigError('BASE_DOMAINS', 'at least one base domain');
  const docker = dockerTarget(e);
  return {
    namespace: e.POD_NAMESPACE,
    runtime: e.POD_RUNTIME,
    sudo: e.POD_SUDO === 'on',
    podCa: e.POD_CA_FILE === undefined ? undefined : readPodCa(e.POD_CA_FILE),
    bindAddress: e.POD_BIND_ADDRESS,
    hostAddress: e.POD_HOST_ADDRESS,
    portRange,
    adminToken: e.ADMIN_TOKEN,
    adminBind: e.ORCHESTRATOR_BIND,
    adminPort: e.ORCHESTRATOR_PORT,
    logRetentionMs: duration('LOG_RETENTION', e.LOG_RETENTION),
    logMaxEntries: e.LOG_MAX_ENTRIES,
    redisUrl: redis?.url,
    redisTlsCa: redis?.ca,
    redisSentinel: redis?.sentinel,
    redisPrefix: e.REDIS_PREFIX,
    baseDomains,
    publicScheme: e.PUBLIC_SCHEME,
    publicPort: e.PUBLIC_PORT,
    defaultImage: e.POD_IMAGE,
    reconcileIntervalMs: duration('RECONCILE_INTERVAL', e.RECONCILE_INTERVAL),
    readyTimeoutMs: duration('POD_READY_TIMEOUT', e.POD_READY_TIMEOUT),
    idleTimeout: idleTimeoutSetting(e.POD_IDLE_TIMEOUT),
    wakeLimit: { count: e.POD_WAKE_LIMIT, windowMs: duration('POD_WAKE_WINDOW', e.POD_WAKE_WINDOW) },
    logLevel: e.LOG_LEVEL,
    accessSecrets: e.ACCESS_SECRET,
    ...docker,
    egress: egressConfig(e, docker.dockerHost ?? process.env.DOCKER_HOST),
    gatewayAdmin: gatewayAdmin(e.GATEWAY_ADMIN_URL, e.GATEWAY_ADMIN_TOKEN),
  };
}
