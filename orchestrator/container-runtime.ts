// What the orchestrator needs from a container engine. DockerRuntime (docker-runtime.ts) is the real one; the
// pod lifecycle (pods.ts) and reconcile only see this interface.
import { createHash } from 'node:crypto';
import { POD_BRIDGE_PREFIX } from './egress-rules.ts';

/** Labels every pod container carries: Docker is the source of truth, these rebuild everything else. */
export const LABELS = {
  managed: 'podgate.managed',
  /** Orchestrators sharing a Docker host see only their namespace's pods (separate deployments, test runs). */
  namespace: 'podgate.namespace',
  slug: 'podgate.slug',
  generation: 'podgate.generation',
  hostPort: 'podgate.host-port',
  defaultPort: 'podgate.default-port',
  /** The pod spec as JSON, so a restarted orchestrator knows the pod without any other store. */
  spec: 'podgate.spec',
  /**
   * The container's router key (also in its environment, PODGATE_ROUTER_KEY), so a restarted orchestrator publishes
   * the same one. Readable by whoever can use the Docker API, who can read the container's environment as well.
   */
  routerKey: 'podgate.router-key',
  /** The image's user, set when the container runs as root for sudo: exec runs commands as this user. */
  podUser: 'podgate.pod-user',
} as const;

/**
 * An image label saying the image's entrypoint can give its user root (POD_SUDO): started as root with
 * PODGATE_SUDO=1, it starts the in-pod sudo daemon and runs everything else as the image's user. Images without it
 * always get the hardened container.
 */
export const IMAGE_SUDO_LABEL = 'podgate.sudo';
export const IMAGE_SUDO_VALUE = 's6-sudod';

/** The in-pod router listens here; it is the only port a pod publishes. */
export const POD_ROUTER_PORT = 80;

/** Where the pod's own volume is mounted: the pod's working directory, kept for as long as the pod exists. */
export const WORKSPACE_PATH = '/workspace';

export interface PodContainerSpec {
  slug: string;
  generation: number;
  image: string;
  runtime: string;
  bindAddress: string;
  hostPort: number;
  defaultPort: number;
  env: Record<string, string>;
  /** User labels plus the orchestrator's (LABELS). */
  labels: Record<string, string>;
  nanoCpus: number;
  cpuShares: number;
  memoryBytes: number;
  /**
   * The pod user may become root inside the sandbox (sudo): the capabilities apt and sudo need, and setuid allowed.
   * Off: no capability but NET_BIND_SERVICE and no-new-privileges (see podSecurity in docker-runtime.ts).
   */
  sudo: boolean;
  /** PEM certificates the pod's Node trusts besides its own (POD_CA_FILE), at POD_CA_PATH. */
  ca?: string | undefined;
}

/** Where a pod finds POD_CA_FILE's certificates (NODE_EXTRA_CA_CERTS points here). */
export const POD_CA_PATH = '/etc/podgate/extra-ca.pem';

export type ContainerState = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

export interface PodContainer {
  id: string;
  name: string;
  state: ContainerState;
  labels: Record<string, string>;
  /** Seconds since the epoch, as Docker reports it. */
  created: number;
}

export interface ExecResult {
  /** null when the command did not finish (timeout). */
  exitCode: number | null;
  stdout: string;
  stderr: string;
  /** Output beyond the limit was dropped. */
  truncated: boolean;
  timedOut: boolean;
}

export interface ExecOptions {
  timeoutMs: number;
  /** Bytes kept per stream. */
  outputLimit: number;
}

export interface RuntimeEvent {
  /** Docker's action: start, die, stop, destroy, ... */
  action: string;
  slug: string | undefined;
  id: string;
}

export interface PodNetwork {
  id: string;
  name: string;
  slug: string | undefined;
  /** The host interface of its bridge, when the network was created with a name for it (podBridgeName). */
  bridge?: string | undefined;
}

export interface PodVolume {
  name: string;
  slug: string | undefined;
}

export interface ContainerRuntime {
  /** Throws ServiceUnavailableError (saying how to fix it) if the daemon lacks `runtime`. */
  checkRuntime(runtime: string): Promise<void>;
  /** CPUs of the Docker host (limits are clamped to it). */
  hostCpus(): Promise<number>;
  imageExists(image: string): Promise<boolean>;
  /**
   * Create the pod's own network, its workspace volume (mounted at WORKSPACE_PATH) and its container (not started).
   * Leaves nothing behind if it fails; refuses (ConflictError) if any of them exists already.
   */
  create(spec: PodContainerSpec): Promise<PodContainer>;
  start(slug: string): Promise<void>;
  /** Stop with a grace period; a stopped container is fine. */
  stop(slug: string, graceSeconds: number): Promise<void>;
  /** Remove the container, its workspace volume and its network; missing ones are fine. */
  remove(slug: string): Promise<void>;
  inspect(slug: string): Promise<PodContainer | undefined>;
  /** Every pod container (all states). */
  list(): Promise<PodContainer[]>;
  /** Every pod network, with or without a container. */
  networks(): Promise<PodNetwork[]>;
  /** Remove one network (an orphan); never touches containers. Missing is fine. */
  removeNetwork(id: string): Promise<void>;
  /** Every pod workspace volume, with or without a container. */
  volumes(): Promise<PodVolume[]>;
  /** Remove one volume (an orphan); Docker refuses while a container uses it. Missing is fine. */
  removeVolume(name: string): Promise<void>;
  exec(slug: string, command: string[], options: ExecOptions): Promise<ExecResult>;
  /** The last lines the container printed (stdout and stderr), to explain why it did not start. */
  logsTail(slug: string, lines: number): Promise<string>;
  /** Container events of pods until the returned function is called; `onError` when the stream breaks. */
  events(onEvent: (e: RuntimeEvent) => void, onError: (err: Error) => void): Promise<() => void>;
}

/** Docker names of a pod's container and network. */
export function podResourceName(slug: string): string {
  return `podgate-${slug}`;
}

/** Docker name of a pod's workspace volume (one per slug: the suffix keeps it apart from the container's name). */
export function podVolumeName(slug: string): string {
  return `podgate-${slug}-workspace`;
}

/**
 * The host interface of a pod's bridge network: POD_BRIDGE_PREFIX and a hash of the network's name (Linux allows
 * 15 characters), so the egress policy matches every pod's traffic with one `-i pgpod+` rule.
 */
export function podBridgeName(slug: string, prefix: string = POD_BRIDGE_PREFIX): string {
  return prefix + createHash('sha256').update(podResourceName(slug)).digest('hex').slice(0, 15 - prefix.length);
}

/** Starting failed because the pod's host port is taken on the host (the pod can be retried on another port). */
export class HostPortBusyError extends Error {
  readonly port: number | undefined;
  constructor(message: string, port?: number) {
    super(message);
    this.port = port;
  }
}
