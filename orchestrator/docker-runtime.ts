// ContainerRuntime on Docker (dockerode). One bridge network per pod (Docker isolates bridge networks from each
// other), one container per pod under the configured runtime (gVisor's runsc by default), its in-pod router's
// port 80 published on one host port, and one volume per pod at /workspace that lives exactly as long as the pod.
// Everything it creates carries the podgate labels, so reconcile can find it.
import type { Writable } from 'node:stream';
import type Docker from 'dockerode';
import { ConflictError, ServiceUnavailableError } from '../shared/errors.ts';
import {
  HostPortBusyError,
  IMAGE_SUDO_LABEL,
  IMAGE_SUDO_VALUE,
  LABELS,
  POD_CA_PATH,
  POD_ROUTER_PORT,
  podBridgeName,
  podResourceName,
  type ContainerRuntime,
  type ContainerState,
  type ExecOptions,
  type ExecResult,
  type PodContainer,
  type PodContainerSpec,
  type PodNetwork,
  type PodVolume,
  type RuntimeEvent,
  podVolumeName,
  WORKSPACE_PATH,
} from './container-runtime.ts';

/** Docker answers 304 when a container is already in the asked state, 404 when it is gone. */
const NOT_MODIFIED = 304;
const NOT_FOUND = 404;
const CONFLICT = 409;
const PORT_TAKEN = /port is already allocated|address already in use/i;
/**
 * Docker has no subnet left for another bridge network (20.10 says the first, newer daemons the second). Each pod
 * has its own network, and the default pools hold only about 30: this is what a busy host hits first.
 */
const POOLS_EXHAUSTED = /non-overlapping IPv4 address pool|all predefined address pools have been fully subnetted/i;
/** A pod's json-file log is capped so a chatty pod cannot fill the host's disk. */
const CONTAINER_LOG_OPTS = { 'max-size': '10m', 'max-file': '2' };
/** Processes per pod: a fork bomb stays inside its sandbox. */
const PIDS_LIMIT = 4096;
/**
 * Capabilities a pod keeps without sudo: none but NET_BIND_SERVICE, which gVisor's sandbox needs to bind the
 * router's port 80 in the pod's network namespace (with --network=host, measured: without it nginx's bind() fails
 * with EACCES). Inside the sandbox the pod's processes run as the image's user with no capabilities (CapEff 0).
 */
const POD_CAP_ADD = ['NET_BIND_SERVICE'];
/**
 * With sudo, root inside the sandbox gets back what `sudo apt-get install` needs, measured under gVisor (runsc
 * 20240729, each one left out in turn): apt's download methods drop to its _apt user (SETUID, SETGID; also the
 * entrypoint's drop from root to the pod user), apt writes lists it does not own (DAC_OVERRIDE), chowns and chmods
 * its partial files (CHOWN, FOWNER: without them apt warns and downloads unsandboxed, and dpkg cannot give unpacked
 * files their owners), and tini, root as PID 1, forwards docker stop's SIGTERM to the pod user's processes (KILL: without
 * it tini dies with EPERM and the pod exits 1 instead of stopping cleanly). FSETID is not needed. Nothing else of
 * Docker's default set: no NET_RAW, MKNOD, SYS_CHROOT, SETFCAP, SETPCAP, AUDIT_WRITE.
 */
export const POD_SUDO_CAP_ADD = ['NET_BIND_SERVICE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'SETUID', 'SETGID', 'KILL'];

/** Capabilities and security options of a pod container. */
export function podSecurity(sudo: boolean): { CapDrop: string[]; CapAdd: string[]; SecurityOpt: string[] } {
  // With sudo the boundary is gVisor itself, the egress policy and the absence of host mounts, not the pod user.
  // no-new-privileges goes with it (it would stop sudo wherever setuid works, as under runc); gVisor ignores setuid
  // bits anyway (google/gvisor#212), which is why the pod's sudo is a root daemon (docker/rootfs/usr/local/bin/sudo).
  return sudo
    ? { CapDrop: ['ALL'], CapAdd: POD_SUDO_CAP_ADD, SecurityOpt: [] }
    : { CapDrop: ['ALL'], CapAdd: POD_CAP_ADD, SecurityOpt: ['no-new-privileges'] };
}
/** A pod's writable layer, where the storage driver can limit it (see storageLimitSupport). */
export const POD_STORAGE_BYTES = 20 * 1024 ** 3;
/** Docker's refusal when overlay2 sits on xfs mounted without pquota: detected at the first create, then not asked again. */
const STORAGE_OPT_REFUSED = /storage-opt is supported only|pquota/i;
/** The network may still be in use for a moment after the container is removed. */
const NETWORK_REMOVE_ATTEMPTS = 5;
const NETWORK_REMOVE_BACKOFF_MS = 200;
/** The bridge driver's option naming the network's host interface. */
const BRIDGE_NAME_OPTION = 'com.docker.network.bridge.name';

function statusOf(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null && 'statusCode' in err ? Number((err as { statusCode: unknown }).statusCode) : undefined;
}

function isConnectionError(err: unknown): boolean {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
  return ['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH'].includes(code);
}

/** Docker's own message, without dockerode's "(HTTP code 500) server error - " prefix. */
export function dockerMessage(err: unknown): string {
  const json = typeof err === 'object' && err !== null && 'json' in err ? (err as { json: unknown }).json : undefined;
  if (json && typeof json === 'object' && 'message' in json) return String((json as { message: unknown }).message);
  return err instanceof Error ? err.message : String(err);
}

export function runtimeMissingMessage(runtime: string, available: string[]): string {
  const how =
    runtime === 'runsc'
      ? 'run scripts/setup.sh as root (it installs gVisor 20240729 or newer: older runsc breaks `ls -la` and `stat` in pods), or add ' +
        '{"runtimes":{"runsc":{"path":"<runsc 20240729 or newer>","runtimeArgs":["--network=host","--overlay2=none"]}}} ' +
        'to /etc/docker/daemon.json and reload the daemon (kill -HUP $(pidof dockerd))'
      : `register it under "runtimes" in /etc/docker/daemon.json and reload the daemon (kill -HUP $(pidof dockerd))`;
  return `the Docker daemon has no runtime "${runtime}" (it has: ${available.join(', ') || 'none'}): ${how}`;
}

export function poolsExhaustedMessage(dockerSays: string): string {
  return (
    `pod networks are exhausted: each pod gets its own Docker bridge network and the daemon has no address pool left for another (${dockerSays}); ` +
    'add "default-address-pools" to /etc/docker/daemon.json, e.g. "default-address-pools":[{"base":"10.200.0.0/16","size":28}] ' +
    '(4096 networks of 16 addresses), and restart dockerd; until then delete unused pods'
  );
}

export const DEFAULT_NAMESPACE = 'default';
const INFO_CACHE_MS = 30_000;

interface DaemonInfo {
  Runtimes?: Record<string, unknown>;
  NCPU?: number;
  Driver?: string;
  DriverStatus?: [string, string][];
}

/**
 * Whether Docker can cap a container's writable layer (HostConfig.StorageOpt size) with this storage driver:
 * overlay2 only on xfs (which must also be mounted with pquota, which `docker info` cannot tell: Docker's refusal at
 * the first create settles it), btrfs, zfs and devicemapper always. overlay2 on ext4 (the common case) cannot.
 */
export function storageLimitSupport(info: Pick<DaemonInfo, 'Driver' | 'DriverStatus'>): { supported: boolean; reason: string } {
  const driver = info.Driver ?? 'unknown';
  const backing = info.DriverStatus?.find(([k]) => k === 'Backing Filesystem')?.[1] ?? 'unknown';
  if (['btrfs', 'zfs', 'devicemapper'].includes(driver)) return { supported: true, reason: `storage driver ${driver}` };
  if (driver === 'overlay2' && backing === 'xfs') return { supported: true, reason: 'overlay2 on xfs (needs the pquota mount option)' };
  return {
    supported: false,
    reason: `storage driver ${driver} on ${backing} cannot limit a container's size (Docker supports it for overlay2 on xfs with pquota, btrfs, zfs and devicemapper)`,
  };
}

export class DockerRuntime implements ContainerRuntime {
  private readonly docker: Docker;
  private readonly namespace: string;
  /** Docker label filters selecting this namespace's pods. */
  private readonly filter: string[];
  private infoCache: { at: number; value: Promise<DaemonInfo> } | undefined;
  private readonly bridgePrefix: string | undefined;
  /** Set once Docker refused StorageOpt (overlay2 on xfs without pquota): later creates do not ask again. */
  private storageOptRefused = false;

  /** `bridgePrefix`: pod bridges' interface name prefix, POD_BRIDGE_PREFIX (what the egress policy matches) unless a test has its own. */
  constructor(docker: Docker, options: { namespace?: string; bridgePrefix?: string } = {}) {
    this.docker = docker;
    this.namespace = options.namespace ?? DEFAULT_NAMESPACE;
    this.bridgePrefix = options.bridgePrefix;
    this.filter = [`${LABELS.managed}=true`, `${LABELS.namespace}=${this.namespace}`];
  }

  /** Every Docker call goes through here: an unreachable daemon becomes a clear 503. */
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (isConnectionError(err)) throw new ServiceUnavailableError(`Docker is not reachable (${what}): ${dockerMessage(err)}; check DOCKER_HOST and that dockerd runs`);
      throw err;
    }
  }

  /** `docker info` is slow under load and changes rarely: one answer serves every create for a while. */
  private info(fresh = false): Promise<DaemonInfo> {
    const now = Date.now();
    if (fresh || !this.infoCache || now - this.infoCache.at > INFO_CACHE_MS) {
      const value = this.call('info', () => this.docker.info() as Promise<DaemonInfo>);
      this.infoCache = { at: now, value };
      value.catch(() => (this.infoCache = undefined));
    }
    return this.infoCache.value;
  }

  async checkRuntime(runtime: string): Promise<void> {
    const has = (i: DaemonInfo) => Object.keys(i.Runtimes ?? {}).includes(runtime);
    let info = await this.info();
    // Someone may have registered it since the cached answer: ask again before refusing.
    if (!has(info)) info = await this.info(true);
    if (!has(info)) throw new ServiceUnavailableError(runtimeMissingMessage(runtime, Object.keys(info.Runtimes ?? {})));
  }

  async hostCpus(): Promise<number> {
    return Number((await this.info()).NCPU) || 1;
  }

  async imageExists(image: string): Promise<boolean> {
    try {
      await this.call('image inspect', () => this.docker.getImage(image).inspect());
      return true;
    } catch (err) {
      if (statusOf(err) === NOT_FOUND) return false;
      throw err;
    }
  }

  async create(spec: PodContainerSpec): Promise<PodContainer> {
    const name = podResourceName(spec.slug);
    const ownLabels = { [LABELS.managed]: 'true', [LABELS.namespace]: this.namespace, [LABELS.slug]: spec.slug };
    const network = await this.call('create network', () =>
      this.docker.createNetwork({
        Name: name,
        Driver: 'bridge',
        CheckDuplicate: true,
        Labels: ownLabels,
        // A recognisable host interface: the egress policy (egress-rules.ts) matches every pod bridge by its prefix.
        Options: { [BRIDGE_NAME_OPTION]: podBridgeName(spec.slug, this.bridgePrefix) },
      }),
    ).catch((err: unknown) => {
      if (statusOf(err) === CONFLICT) throw new ConflictError(`a network named ${name} already exists on the Docker host`);
      if (POOLS_EXHAUSTED.test(dockerMessage(err))) throw new ServiceUnavailableError(poolsExhaustedMessage(dockerMessage(err)));
      throw err;
    });
    const volume = podVolumeName(spec.slug);
    let volumeMade = false;
    let made: Docker.Container | undefined;
    try {
      // Docker answers a create of an existing volume with that volume: a leftover (a deleted pod's, before reconcile
      // removes it, or someone else's) must never become a new pod's workspace.
      if (await this.volumeExists(volume)) throw new ConflictError(`a volume named ${volume} already exists on the Docker host (a deleted pod's workspace is removed by reconcile; remove it with docker volume rm if it is not wanted)`);
      await this.call('create volume', () => this.docker.createVolume({ Name: volume, Labels: ownLabels }));
      volumeMade = true;
      const sudo = spec.sudo ? await this.sudoUser(spec.image) : undefined;
      const limitStorage = !this.storageOptRefused && storageLimitSupport(await this.info()).supported;
      const createWith = (storageOpt: boolean) => this.call('create container', () =>
        this.docker.createContainer({
          name,
          Image: spec.image,
          Hostname: spec.slug,
          Env: Object.entries({
            ...spec.env,
            ...(sudo ? { PODGATE_SUDO: '1' } : {}),
            ...(spec.ca ? { NODE_EXTRA_CA_CERTS: POD_CA_PATH } : {}),
          }).map(([k, v]) => `${k}=${v}`),
          Labels: { ...spec.labels, ...ownLabels, ...(sudo ? { [LABELS.podUser]: sudo } : {}) },
          // Root only for the entrypoint's first moment: it starts the sudo daemon and drops to the image's user.
          ...(sudo ? { User: '0:0' } : {}),
          ExposedPorts: { [`${POD_ROUTER_PORT}/tcp`]: {} },
          HostConfig: {
            Runtime: spec.runtime,
            NetworkMode: name,
            PortBindings: { [`${POD_ROUTER_PORT}/tcp`]: [{ HostIp: spec.bindAddress, HostPort: String(spec.hostPort) }] },
            NanoCpus: spec.nanoCpus,
            CpuShares: spec.cpuShares,
            Memory: spec.memoryBytes,
            // No swap beyond the memory limit: the tier's memory is the pod's memory.
            MemorySwap: spec.memoryBytes,
            PidsLimit: PIDS_LIMIT,
            // The orchestrator owns the lifecycle: a container that dies stays down and its route says so.
            RestartPolicy: { Name: 'no' },
            LogConfig: { Type: 'json-file', Config: CONTAINER_LOG_OPTS },
            ...podSecurity(sudo !== undefined),
            // The pod's work lives apart from the container's filesystem, on the pod's own volume, which Docker fills
            // on first use with the image's /workspace (owner and mode included: no chown at run time).
            Mounts: [{ Type: 'volume', Source: volume, Target: WORKSPACE_PATH }],
            ...(storageOpt ? { StorageOpt: { size: String(POD_STORAGE_BYTES) } } : {}),
          },
        }),
      );
      const container = await createWith(limitStorage).catch((err: unknown) => {
        if (!limitStorage || !STORAGE_OPT_REFUSED.test(dockerMessage(err))) throw err;
        this.storageOptRefused = true;
        return createWith(false);
      });
      // Into the container's own filesystem before it starts: no host mount, and readable by every process.
      made = container;
      if (spec.ca) await this.call('put ca', () => container.putArchive(singleFileTar(POD_CA_PATH.slice(1), spec.ca!), { path: '/' }));
      const info = await container.inspect();
      return {
        id: info.Id,
        name,
        state: info.State.Status as ContainerState,
        labels: info.Config.Labels ?? {},
        created: Math.floor(Date.parse(info.Created) / 1000),
      };
    } catch (err) {
      // Nothing left behind: the volume and the network were made for this container only.
      if (made) await made.remove({ force: true }).catch(() => {});
      if (volumeMade) await this.removeVolume(volume).catch(() => {});
      await network.remove().catch(() => {});
      if (statusOf(err) === CONFLICT) throw new ConflictError(`a container named ${name} already exists on the Docker host`);
      throw err;
    }
  }

  async start(slug: string): Promise<void> {
    try {
      await this.call('start', () => this.docker.getContainer(podResourceName(slug)).start());
    } catch (err) {
      if (statusOf(err) === NOT_MODIFIED) return;
      // Docker binds the published port only now; something else may hold it (or a remote host we cannot probe).
      if (PORT_TAKEN.test(dockerMessage(err))) throw new HostPortBusyError(dockerMessage(err));
      throw err;
    }
  }

  async stop(slug: string, graceSeconds: number): Promise<void> {
    try {
      await this.call('stop', () => this.docker.getContainer(podResourceName(slug)).stop({ t: graceSeconds }));
    } catch (err) {
      if (statusOf(err) !== NOT_MODIFIED) throw err;
    }
  }

  async remove(slug: string): Promise<void> {
    const name = podResourceName(slug);
    try {
      await this.call('remove container', () => this.docker.getContainer(name).remove({ force: true, v: true }));
    } catch (err) {
      if (statusOf(err) !== NOT_FOUND) throw err;
    }
    // Only now: a volume is removed with its pod and never before (stop, restart and recreate keep it).
    await this.removeVolume(podVolumeName(slug));
    for (let attempt = 1; ; attempt++) {
      try {
        await this.call('remove network', () => this.docker.getNetwork(name).remove());
        return;
      } catch (err) {
        if (statusOf(err) === NOT_FOUND) return;
        if (attempt >= NETWORK_REMOVE_ATTEMPTS) throw err;
        await new Promise((r) => setTimeout(r, NETWORK_REMOVE_BACKOFF_MS * attempt));
      }
    }
  }

  async inspect(slug: string): Promise<PodContainer | undefined> {
    try {
      const info = await this.call('inspect', () => this.docker.getContainer(podResourceName(slug)).inspect());
      const labels = info.Config.Labels ?? {};
      if (labels[LABELS.managed] !== 'true' || labels[LABELS.namespace] !== this.namespace) return undefined;
      return {
        id: info.Id,
        name: info.Name.replace(/^\//, ''),
        state: info.State.Status as ContainerState,
        labels,
        created: Math.floor(Date.parse(info.Created) / 1000),
      };
    } catch (err) {
      if (statusOf(err) === NOT_FOUND) return undefined;
      throw err;
    }
  }

  async list(): Promise<PodContainer[]> {
    const all = await this.call('list containers', () => this.docker.listContainers({ all: true, filters: { label: this.filter } }));
    return all.map((c) => ({
      id: c.Id,
      name: (c.Names[0] ?? '').replace(/^\//, ''),
      state: c.State as ContainerState,
      labels: c.Labels ?? {},
      created: c.Created,
    }));
  }

  async networks(): Promise<PodNetwork[]> {
    const all = await this.call('list networks', () => this.docker.listNetworks({ filters: { label: this.filter } }));
    return all.map((n) => ({ id: n.Id, name: n.Name, slug: n.Labels?.[LABELS.slug], bridge: n.Options?.[BRIDGE_NAME_OPTION] }));
  }

  async removeNetwork(id: string): Promise<void> {
    try {
      await this.call('remove network', () => this.docker.getNetwork(id).remove());
    } catch (err) {
      if (statusOf(err) !== NOT_FOUND) throw err;
    }
  }

  /** The user the image runs as, if the image can give it root (IMAGE_SUDO_LABEL); undefined: no sudo for it. */
  private async sudoUser(image: string): Promise<string | undefined> {
    const info = await this.call('image inspect', () => this.docker.getImage(image).inspect());
    const user = info.Config?.User ?? '';
    if (info.Config?.Labels?.[IMAGE_SUDO_LABEL] !== IMAGE_SUDO_VALUE || user === '' || user === 'root' || user.startsWith('0')) return undefined;
    return user;
  }

  private async volumeExists(name: string): Promise<boolean> {
    try {
      await this.call('inspect volume', () => this.docker.getVolume(name).inspect());
      return true;
    } catch (err) {
      if (statusOf(err) === NOT_FOUND) return false;
      throw err;
    }
  }

  async volumes(): Promise<PodVolume[]> {
    const all = await this.call('list volumes', () => this.docker.listVolumes({ filters: { label: this.filter } }));
    return (all.Volumes ?? []).map((v) => ({ name: v.Name, slug: v.Labels?.[LABELS.slug] }));
  }

  async removeVolume(name: string): Promise<void> {
    try {
      await this.call('remove volume', () => this.docker.getVolume(name).remove());
    } catch (err) {
      if (statusOf(err) !== NOT_FOUND) throw err;
    }
  }

  async exec(slug: string, command: string[], options: ExecOptions): Promise<ExecResult> {
    const container = this.docker.getContainer(podResourceName(slug));
    // A container started as root for sudo: commands still run as the pod's user (sudo inside gives root).
    const user = (await this.inspect(slug))?.labels[LABELS.podUser];
    const exec = await this.call('exec', () =>
      container.exec({ Cmd: command, AttachStdout: true, AttachStderr: true, AttachStdin: false, Tty: false, ...(user ? { User: user } : {}) }),
    );
    const stream = await this.call('exec start', () => exec.start({ hijack: true, stdin: false }));
    const out = new Capture(options.outputLimit);
    const err = new Capture(options.outputLimit);
    // demuxStream only calls write(); capturing synchronously means nothing is pending when the stream ends.
    this.docker.modem.demuxStream(stream, out.sink(), err.sink());
    const timedOut = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        // The command may go on inside the pod; we stop waiting for it (its log entry says timed out).
        stream.destroy();
        resolve(true);
      }, options.timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve(false);
      };
      stream.once('end', done);
      stream.once('close', done);
      stream.once('error', done);
    });
    let exitCode: number | null = null;
    if (!timedOut) {
      const info = await exec.inspect();
      exitCode = typeof info.ExitCode === 'number' ? info.ExitCode : null;
    }
    return { exitCode, stdout: out.text(), stderr: err.text(), truncated: out.truncated || err.truncated, timedOut };
  }

  async logsTail(slug: string, lines: number): Promise<string> {
    const raw = (await this.call('logs', () =>
      this.docker.getContainer(podResourceName(slug)).logs({ stdout: true, stderr: true, tail: lines, follow: false }),
    )) as unknown as Buffer;
    return demuxBuffer(raw);
  }

  async events(onEvent: (e: RuntimeEvent) => void, onError: (err: Error) => void): Promise<() => void> {
    const stream = (await this.call('events', () =>
      this.docker.getEvents({ filters: { type: ['container'], label: this.filter } }),
    )) as NodeJS.ReadableStream & { destroy(): void };
    let buffer = '';
    let closed = false;
    stream.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffer.indexOf('\n')) !== -1) {
        const line = buffer.slice(0, nl).trim();
        buffer = buffer.slice(nl + 1);
        if (!line) continue;
        try {
          const e = JSON.parse(line) as { Action?: string; status?: string; id?: string; Actor?: { ID?: string; Attributes?: Record<string, string> } };
          onEvent({ action: String(e.Action ?? e.status ?? ''), id: String(e.id ?? e.Actor?.ID ?? ''), slug: e.Actor?.Attributes?.[LABELS.slug] });
        } catch {
          // A line we cannot read is only a missed trigger; periodic reconcile covers it.
        }
      }
    });
    const fail = (err: Error) => {
      if (!closed) onError(err);
      closed = true;
    };
    stream.on('error', fail);
    stream.on('end', () => fail(new Error('Docker event stream ended')));
    return () => {
      closed = true;
      stream.destroy();
    };
  }
}

/** A tar archive (ustar) of one file, root-owned, mode 0644: what Docker's putArchive takes. */
export function singleFileTar(name: string, content: string): Buffer {
  const data = Buffer.from(content, 'utf8');
  const header = Buffer.alloc(512);
  const field = (offset: number, length: number, value: string) => header.write(value, offset, length, 'ascii');
  const octal = (offset: number, length: number, value: number) => field(offset, length, value.toString(8).padStart(length - 1, '0') + '\0');
  field(0, 100, name);
  octal(100, 8, 0o644);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, data.length);
  octal(136, 12, Math.floor(Date.now() / 1000));
  field(148, 8, '        ');
  field(156, 1, '0');
  field(257, 6, 'ustar\0');
  field(263, 2, '00');
  let sum = 0;
  for (const b of header) sum += b;
  field(148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  const padding = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([header, data, padding, Buffer.alloc(1024)]);
}

/** Keeps the first `limit` bytes of a stream and notes whether more came. */
class Capture {
  private readonly limit: number;
  private readonly chunks: Buffer[] = [];
  private size = 0;
  truncated = false;

  constructor(limit: number) {
    this.limit = limit;
  }

  add(b: Buffer): void {
    const room = this.limit - this.size;
    if (room <= 0) {
      this.truncated ||= b.length > 0;
      return;
    }
    const part = b.length > room ? b.subarray(0, room) : b;
    if (part.length < b.length) this.truncated = true;
    this.chunks.push(part);
    this.size += part.length;
  }

  sink(): Writable {
    return {
      write: (b: Buffer) => {
        this.add(b);
        return true;
      },
    } as unknown as Writable;
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** Docker's multiplexed log format: 8-byte headers (stream, 0, 0, 0, big-endian length) before each frame. */
export function demuxBuffer(raw: Buffer): string {
  const parts: Buffer[] = [];
  let i = 0;
  while (i + 8 <= raw.length) {
    const type = raw[i]!;
    const len = raw.readUInt32BE(i + 4);
    if (type > 2 || raw[i + 1] !== 0 || raw[i + 2] !== 0 || raw[i + 3] !== 0) return raw.toString('utf8');
    parts.push(raw.subarray(i + 8, i + 8 + len));
    i += 8 + len;
  }
  return Buffer.concat(parts).toString('utf8');
}
