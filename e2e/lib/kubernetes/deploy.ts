/**
 * The synthesized Kubernetes manifest on the local cluster, deployed the way the README tells a user (`kubectl
 * apply -f dist/<env>/kubernetes.k8s.yaml`, then `kubectl create secret generic <name> --from-file=value=…` for
 * each secret), behind the same `Deployment` interface as Compose and Swarm so the smoke test and the faults are
 * the shared ones. The API is reached through `kubectl port-forward svc/producer`, as the README documents.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { run, sleep, waitFor, type RunResult } from '../exec.ts';
import { type ContainerState, type Deployment } from '../deploy.ts';
import { type DeployFile, type ServiceFile } from '../files.ts';
import { type LocalCluster } from './cluster.ts';

type Obj = Record<string, unknown>;

export interface Workload {
  readonly kind: 'Deployment' | 'StatefulSet';
  readonly name: string;
  readonly spec: Obj;
}

export interface Manifest {
  readonly path: string;
  readonly namespace: string;
  readonly objects: readonly Obj[];
  readonly workloads: ReadonlyMap<string, Workload>;
  /** Secrets the pods reference and the manifest leaves to the user. */
  readonly secrets: readonly string[];
}

function o(v: unknown): Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {};
}
function a(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

export function readManifest(path: string): Manifest {
  const objects = parseAllDocuments(readFileSync(path, 'utf8'))
    .map((d) => o(d.toJS()))
    .filter((x) => typeof x.kind === 'string');
  const ns = objects.find((x) => x.kind === 'Namespace');
  const namespace = o(ns?.metadata).name;
  if (typeof namespace !== 'string') throw new Error(`${path}: no Namespace object; expected one`);
  const workloads = new Map<string, Workload>();
  const secrets = new Set<string>();
  for (const x of objects) {
    if (x.kind !== 'Deployment' && x.kind !== 'StatefulSet') continue;
    const name = String(o(x.metadata).name);
    workloads.set(name, { kind: x.kind, name, spec: o(x.spec) });
    const pod = o(o(o(x.spec).template).spec);
    for (const v of a(pod.volumes)) {
      const vol = o(v);
      const single = o(vol.secret).secretName;
      if (typeof single === 'string') secrets.add(single);
      for (const s of a(o(vol.projected).sources)) {
        const n = o(o(s).secret).name;
        if (typeof n === 'string') secrets.add(n);
      }
    }
  }
  return { path, namespace, objects, workloads, secrets: [...secrets].sort() };
}

interface PodJson {
  metadata: { name: string; labels?: Record<string, string>; deletionTimestamp?: string };
  spec: {
    securityContext?: { runAsUser?: number; seccompProfile?: { type: string } };
    containers: {
      name: string;
      image: string;
      securityContext?: {
        runAsUser?: number;
        readOnlyRootFilesystem?: boolean;
        capabilities?: { drop?: string[] };
        seccompProfile?: { type: string };
        allowPrivilegeEscalation?: boolean;
      };
    }[];
  };
  status: {
    phase?: string;
    podIP?: string;
    startTime?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { name: string; ready: boolean; started?: boolean; restartCount: number; state: Obj }[];
  };
}

export class KubernetesDeployment implements Deployment {
  readonly kind = 'kubernetes';
  readonly file: DeployFile;
  readonly project: string;
  readonly manifest: Manifest;
  /** stderr of the apply: PodSecurity and deprecation warnings land here. */
  applyWarnings: string[] = [];
  private readonly cluster: LocalCluster;
  private readonly secretsDir: string;
  private portForward: ChildProcess | undefined;
  private stopping = false;

  /** `secretsDir` is `.secrets/<env>`, where the README's loop reads each secret from. */
  constructor(cluster: LocalCluster, manifest: Manifest, secretsDir: string) {
    this.cluster = cluster;
    this.manifest = manifest;
    this.project = manifest.namespace;
    this.secretsDir = secretsDir;
    const secretFiles = Object.fromEntries(manifest.secrets.map((s) => [s, join(secretsDir, s)]));
    const services: Record<string, ServiceFile> = {};
    for (const [name, w] of manifest.workloads) {
      const c = o(a(o(o(w.spec.template).spec).containers)[0]);
      const user = o(c.securityContext).runAsUser;
      services[name] = {
        image: String(c.image),
        ...(typeof user === 'number' ? { user: String(user) } : {}),
        ports: [],
        dependsOn: [],
      };
    }
    this.file = { path: manifest.path, services, secretFiles, requiredVariables: [] };
  }

  private ns(args: readonly string[]): string[] {
    return ['-n', this.manifest.namespace, ...args];
  }

  kubectl(args: readonly string[], timeoutMs = 120_000): Promise<string> {
    return this.cluster.kubectl(this.ns(args), { timeoutMs });
  }

  /** Applies extra objects (test pods) in the namespace. */
  async apply(input: string): Promise<void> {
    await this.cluster.kubectl(this.ns(['apply', '-f', '-']), { input });
  }

  /** The README's two steps: apply the file, then create each secret from its file. */
  async up(): Promise<void> {
    const r = await this.cluster.kubectlRun(['apply', '-f', this.manifest.path], { timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`kubectl apply -f ${this.manifest.path}: ${r.stderr.trim()}`);
    this.applyWarnings = r.stderr.split('\n').filter((l) => /warning/i.test(l));
    for (const s of this.manifest.secrets) {
      const file = join(this.secretsDir, s);
      // As `npm run secrets` would: random content when the file is missing (the Erlang cookie has no Compose use).
      if (!existsSync(file) || statSync(file).size === 0) {
        mkdirSync(this.secretsDir, { recursive: true, mode: 0o700 });
        writeFileSync(file, randomBytes(24).toString('base64url'), { mode: 0o600 });
      }
      const c = await this.cluster.kubectlRun(this.ns(['create', 'secret', 'generic', s, `--from-file=value=${file}`]));
      if (c.code !== 0 && !/AlreadyExists/.test(c.stderr)) throw new Error(`create secret ${s}: ${c.stderr.trim()}`);
    }
    for (const [name, w] of this.manifest.workloads) {
      await this.kubectl(['rollout', 'status', `${w.kind.toLowerCase()}/${name}`, '--timeout=300s'], 310_000);
    }
  }

  async pods(service: string): Promise<PodJson[]> {
    const out = await this.kubectl(['get', 'pods', '-l', `app.kubernetes.io/name=${service}`, '-o', 'json']);
    return (JSON.parse(out) as { items: PodJson[] }).items.filter((p) => p.metadata.deletionTimestamp === undefined);
  }

  async containers(service: string): Promise<ContainerState[]> {
    return (await this.pods(service)).map((p) => {
      const c = p.spec.containers.find((x) => x.name === service) ?? p.spec.containers[0];
      const st = p.status.containerStatuses?.find((x) => x.name === c?.name);
      const ready = p.status.conditions?.some((x) => x.type === 'Ready' && x.status === 'True') === true;
      const running = p.status.phase === 'Running' && st?.state.running !== undefined;
      const sc = c?.securityContext ?? {};
      return {
        id: p.metadata.name,
        name: p.metadata.name,
        service,
        running,
        health: running && ready ? 'healthy' : 'starting',
        user: String(sc.runAsUser ?? p.spec.securityContext?.runAsUser ?? ''),
        readOnlyRoot: sc.readOnlyRootFilesystem === true,
        capDrop: sc.capabilities?.drop ?? [],
        securityOpt: [
          `seccomp=${sc.seccompProfile?.type ?? p.spec.securityContext?.seccompProfile?.type ?? 'unset'}`,
          ...(sc.allowPrivilegeEscalation === false ? ['no-new-privileges'] : []),
        ],
        startedAt: p.status.startTime ?? '',
        published: [],
      };
    });
  }

  exec(c: ContainerState, argv: readonly string[], timeoutMs = 60_000): Promise<RunResult> {
    return this.cluster.kubectlRun(this.ns(['exec', c.id, '-c', c.service, '--', ...argv]), { timeoutMs });
  }

  private workload(service: string): Workload {
    const w = this.manifest.workloads.get(service);
    if (w === undefined) throw new Error(`no Deployment or StatefulSet named ${service} in ${this.manifest.path}`);
    return w;
  }

  async scale(service: string, replicas: number): Promise<void> {
    const w = this.workload(service);
    await this.kubectl(['scale', `${w.kind.toLowerCase()}/${service}`, `--replicas=${replicas}`]);
  }

  /** The pod is deleted; its controller (ReplicaSet, StatefulSet) makes a new one. */
  async restart(service: string): Promise<string> {
    const names = (await this.pods(service)).map((p) => p.metadata.name);
    await this.kubectl(['delete', 'pod', '--wait=false', ...names]);
    return `kubectl delete pod ${names.join(' ')} (graceful; its controller replaces it)`;
  }

  /**
   * The pod is deleted with a 1 s grace period: the process gets SIGTERM and is killed a second later, in the
   * middle of its job (as on a node loss or an eviction without grace), and the ReplicaSet replaces it.
   */
  async crash(service: string): Promise<string> {
    const names = (await this.pods(service)).map((p) => p.metadata.name);
    await this.kubectl(['delete', 'pod', '--grace-period=1', '--wait=false', ...names]);
    return `kubectl delete pod --grace-period=1 ${names.join(' ')}`;
  }

  async outage(service: string, ms: number): Promise<void> {
    await this.scale(service, 0);
    await waitFor(`${service} pods to be gone`, 120_000, async () => {
      const out = await this.kubectl(['get', 'pods', '-l', `app.kubernetes.io/name=${service}`, '-o', 'name']);
      return out.trim() === '' ? true : undefined;
    });
    await sleep(ms);
    await this.scale(service, 1);
  }

  /**
   * `kubectl port-forward svc/producer :<port>` (a free local port), restarted when it exits (its pod went away).
   * Resolves with the local URL.
   */
  async forwardProducer(service: string, port: number): Promise<string> {
    let local = 0;
    const startOne = (): Promise<number> =>
      new Promise((resolve, reject) => {
        const child = spawn(
          this.cluster.kubectlPath,
          [
            '--kubeconfig',
            this.cluster.kubeconfig,
            ...this.ns([
              'port-forward',
              '--address',
              '127.0.0.1',
              `svc/${service}`,
              `${local === 0 ? '' : local}:${port}`,
            ]),
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        this.portForward = child;
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(out);
          if (m?.[1] !== undefined) resolve(Number(m[1]));
        });
        child.stderr.on('data', (d: Buffer) => {
          out += d.toString();
        });
        child.on('exit', () => {
          reject(new Error(`kubectl port-forward exited: ${out.trim()}`));
          if (!this.stopping) {
            // Keep the documented access path up across pod replacements.
            setTimeout(() => {
              if (!this.stopping) startOne().catch(() => undefined);
            }, 1000);
          }
        });
      });
    local = await startOne();
    return `http://127.0.0.1:${local}`;
  }

  stopForward(): void {
    this.stopping = true;
    this.portForward?.kill('SIGTERM');
  }

  async down(): Promise<void> {
    this.stopForward();
    await this.cluster.kubectl(['delete', '-f', this.manifest.path, '--wait=true', '--timeout=180s'], {
      timeoutMs: 200_000,
    });
    await waitFor(`namespace ${this.manifest.namespace} to be gone`, 180_000, async () =>
      (await this.cluster.kubectlRun(['get', 'namespace', this.manifest.namespace])).code !== 0 ? true : undefined,
    );
  }

  async leftovers(): Promise<string[]> {
    const left: string[] = [];
    if ((await this.cluster.kubectlRun(['get', 'namespace', this.manifest.namespace])).code === 0)
      left.push(`namespace ${this.manifest.namespace}`);
    return left;
  }

  async diagnose(): Promise<string> {
    const pods = await run(this.cluster.kubectlPath, [
      '--kubeconfig',
      this.cluster.kubeconfig,
      ...this.ns(['get', 'pods,pvc', '-o', 'wide']),
    ]);
    const events = await this.cluster.kubectlRun(
      this.ns([
        'get',
        'events',
        '--sort-by=.lastTimestamp',
        '-o',
        'custom-columns=OBJ:.involvedObject.name,REASON:.reason,MSG:.message',
      ]),
    );
    const logs: string[] = [];
    for (const name of this.manifest.workloads.keys()) {
      const r = await this.cluster.kubectlRun(
        this.ns(['logs', '--tail=10', '--all-containers', '-l', `app.kubernetes.io/name=${name}`]),
      );
      logs.push(
        `${name}:`,
        ...`${r.stdout}${r.stderr}`
          .trim()
          .split('\n')
          .map((l) => `    ${l}`),
      );
    }
    return [pods.stdout.trim(), events.stdout.trim().split('\n').slice(-25).join('\n'), ...logs].join('\n');
  }
}
