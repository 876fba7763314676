/**
 * The project's own policy: one function per rule over the parsed outputs of every target. A rule returns its
 * violations, each naming the file and object; an empty list means the output complies. Rules read the output
 * files only (never the model), so a mutated copy of a file is judged the same way.
 */
import type { ComposeDoc, ComposeServiceDoc, K8sObject, Parsed, PolicyTarget, PulumiContainer } from './outputs';

export interface Violation {
  readonly file: string;
  readonly object: string;
  readonly message: string;
}

export interface Rule {
  readonly id: string;
  /** The rule as a sentence, for test names. */
  readonly title: string;
  /** Targets the rule says something about; others are out of its scope (and each says why in `notApplicable`). */
  readonly targets: readonly PolicyTarget[];
  readonly notApplicable?: string;
  check(output: Parsed): Violation[];
}

/** Lowest uid/gid a container may run as (kube-score's and checkov's threshold too). */
export const MIN_UID = 10000;

/**
 * Listed exceptions of the policy, with reasons. RabbitMQ and MongoDB run as the official images' own users
 * (`DEFAULTS.upstreamUser`, uid 999), which own the data directories and which the images' entrypoints expect;
 * they are still numeric and non-root. The same exception is in verify/exceptions.yaml for kube-score and checkov.
 */
export const POLICY_EXCEPTIONS: readonly { rule: string; services: readonly string[]; uid: number; reason: string }[] =
  [
    {
      rule: 'non-root-user',
      services: ['rabbitmq', 'mongo', 'mongo-replica-set-init'],
      uid: 999,
      reason: 'the official rabbitmq and mongo images run as their own uid 999, which owns their data directories',
    },
  ];

// --- Kubernetes helpers ---------------------------------------------------------------------------------------

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): Obj[] => (Array.isArray(v) ? (v as Obj[]) : []);

interface K8sContainer {
  readonly workload: K8sObject;
  readonly podSpec: Obj;
  readonly container: Obj;
  readonly init: boolean;
  /** `Deployment/producer container producer`. */
  readonly id: string;
}

/** The pod template of a workload object, or null for kinds that run no pods. */
export function podSpecOf(o: K8sObject): Obj | null {
  const spec = obj(o.spec);
  switch (o.kind) {
    case 'Deployment':
    case 'StatefulSet':
    case 'DaemonSet':
    case 'ReplicaSet':
    case 'Job':
      return obj(obj(spec.template).spec);
    case 'CronJob':
      return obj(obj(obj(obj(spec.jobTemplate).spec).template).spec);
    case 'Pod':
      return spec;
    default:
      return null;
  }
}

export function k8sContainers(docs: readonly K8sObject[]): K8sContainer[] {
  const out: K8sContainer[] = [];
  for (const o of docs) {
    const podSpec = podSpecOf(o);
    if (!podSpec) continue;
    for (const [key, init] of [
      ['initContainers', true],
      ['containers', false],
    ] as const) {
      for (const c of arr(podSpec[key])) {
        out.push({
          workload: o,
          podSpec,
          container: c,
          init,
          id: `${o.kind}/${o.metadata.name} ${init ? 'initContainer' : 'container'} ${String(c.name)}`,
        });
      }
    }
  }
  return out;
}

/** A container's effective security context field: the container's own, else the pod's. */
function k8sSecurity(c: K8sContainer, field: string): unknown {
  const own = obj(c.container.securityContext)[field];
  return own !== undefined ? own : obj(c.podSpec.securityContext)[field];
}

// --- Compose / Swarm / Pulumi helpers -------------------------------------------------------------------------

function services(doc: ComposeDoc): [string, ComposeServiceDoc][] {
  return Object.entries(doc.services ?? {});
}

function serviceNetworks(s: ComposeServiceDoc): string[] {
  return Array.isArray(s.networks) ? s.networks : Object.keys(s.networks ?? {});
}

/** `uid[:gid]` → numbers; NaN for names. */
function parseUser(user: string | undefined): { uid: number; gid: number } | null {
  if (user === undefined || user === '') return null;
  const [u, g] = user.split(':');
  return {
    uid: /^\d+$/.test(u ?? '') ? Number(u) : NaN,
    gid: g === undefined ? NaN : /^\d+$/.test(g) ? Number(g) : NaN,
  };
}

function pulumiService(c: PulumiContainer): string {
  return c.service ?? c.name;
}

function userViolation(file: string, object: string, service: string, uid: number, gid: number): Violation[] {
  if (!Number.isInteger(uid) || !Number.isInteger(gid))
    return [{ file, object, message: `user must be numeric uid:gid, got ${uid}:${gid}` }];
  if (uid === 0 || gid === 0) return [{ file, object, message: `runs as root (${uid}:${gid})` }];
  if (uid >= MIN_UID && gid >= MIN_UID) return [];
  const ex = POLICY_EXCEPTIONS.find(
    (e) => e.rule === 'non-root-user' && e.services.includes(service) && e.uid === uid && e.uid === gid,
  );
  return ex ? [] : [{ file, object, message: `uid:gid ${uid}:${gid} is below ${MIN_UID} and not a listed exception` }];
}

/**
 * Bytes of a size as the targets write it: a number of bytes, Kubernetes `64Mi`/`1Gi`, Docker `64M`/`64m`/`1g`
 * (binary multiples in both Docker and the kernel's tmpfs options). NaN when absent or unreadable.
 */
export function bytes(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string') return NaN;
  const m = /^([0-9]+)(Ki|Mi|Gi|[kKmMgG])?$/.exec(value.trim());
  if (!m) return NaN;
  const unit = (m[2] ?? '').charAt(0).toLowerCase();
  const power = unit === '' ? 0 : unit === 'k' ? 1 : unit === 'm' ? 2 : 3;
  return Number(m[1]) * 1024 ** power;
}

/** A tmpfs is charged to the memory cgroup: unbounded, or together not below the memory limit, is a violation. */
function tmpfsProblem(
  sizes: readonly { path: string | undefined; size: number }[],
  memoryLimit: number,
): string | null {
  const unsized = sizes.filter((t) => Number.isNaN(t.size)).map((t) => t.path);
  if (unsized.length > 0) return `has a tmpfs without a size limit at ${unsized.join(', ')}`;
  const total = sizes.reduce((sum, t) => sum + t.size, 0);
  if (sizes.length > 0 && !(total < memoryLimit))
    return `has tmpfs sizes of ${total} bytes in all, not below its memory limit (${memoryLimit} bytes)`;
  return null;
}

/** The last stage's USER of a Dockerfile, or null. */
function dockerfileUser(text: string): string | null {
  const stages = text.split(/^FROM /m);
  const last = stages[stages.length - 1] ?? '';
  const users = [...last.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1]!);
  return users[users.length - 1] ?? null;
}

const dockerTargets: readonly PolicyTarget[] = ['compose', 'swarm', 'pulumi'];
const all: readonly PolicyTarget[] = ['dockerfile', 'compose', 'swarm', 'kubernetes', 'pulumi'];

/** Runs `per` over every service/container of a Docker-style target and collects violations. */
function eachDocker(
  o: Parsed,
  compose: (name: string, s: ComposeServiceDoc, file: string) => string | null,
  pulumi: (c: PulumiContainer) => string | null,
): Violation[] {
  const v: Violation[] = [];
  if (o.target === 'compose' || o.target === 'swarm') {
    for (const [name, s] of services(o.doc)) {
      const m = compose(name, s, o.file);
      if (m) v.push({ file: o.file, object: `services.${name}`, message: m });
    }
  } else if (o.target === 'pulumi') {
    for (const c of o.pulumi.containers) {
      const m = pulumi(c);
      if (m) v.push({ file: o.file, object: `Container ${c.name}`, message: m });
    }
  }
  return v;
}

function eachK8s(o: Parsed, check: (c: K8sContainer) => string | null): Violation[] {
  if (o.target !== 'kubernetes') return [];
  return k8sContainers(o.docs).flatMap((c) => {
    const m = check(c);
    return m ? [{ file: o.file, object: c.id, message: m }] : [];
  });
}

// --- The rules ------------------------------------------------------------------------------------------------

export const RULES: readonly Rule[] = [
  {
    id: 'non-root-user',
    title: `every container runs as a numeric non-root user with uid and gid ≥ ${MIN_UID} (or a listed exception)`,
    targets: all,
    check(o) {
      if (o.target === 'dockerfile') {
        const user = dockerfileUser(o.text);
        const p = parseUser(user ?? undefined);
        if (!p) return [{ file: o.file, object: 'runtime stage', message: 'has no USER' }];
        return userViolation(o.file, 'USER', '', p.uid, p.gid);
      }
      if (o.target === 'kubernetes') {
        return k8sContainers(o.docs).flatMap((c) => {
          const uid = k8sSecurity(c, 'runAsUser');
          const gid = k8sSecurity(c, 'runAsGroup');
          if (k8sSecurity(c, 'runAsNonRoot') !== true)
            return [{ file: o.file, object: c.id, message: 'runAsNonRoot is not true' }];
          // The service is the `app.kubernetes.io/name` label: a Job's name carries a revision hash.
          return userViolation(
            o.file,
            c.id,
            c.workload.metadata.labels?.['app.kubernetes.io/name'] ?? c.workload.metadata.name,
            typeof uid === 'number' ? uid : NaN,
            typeof gid === 'number' ? gid : NaN,
          );
        });
      }
      const v: Violation[] = [];
      if (o.target === 'compose' || o.target === 'swarm') {
        for (const [name, s] of services(o.doc)) {
          const p = parseUser(s.user);
          v.push(
            ...(p
              ? userViolation(o.file, `services.${name}`, name, p.uid, p.gid)
              : [{ file: o.file, object: `services.${name}`, message: 'has no user' }]),
          );
        }
      } else if (o.target === 'pulumi') {
        for (const c of o.pulumi.containers) {
          const p = parseUser(c.user);
          v.push(
            ...(p
              ? userViolation(o.file, `Container ${c.name}`, pulumiService(c), p.uid, p.gid)
              : [{ file: o.file, object: `Container ${c.name}`, message: 'has no user' }]),
          );
        }
      }
      return v;
    },
  },
  {
    id: 'read-only-root',
    title: 'every container has a read-only root filesystem and a writable /tmp',
    targets: ['compose', 'swarm', 'kubernetes', 'pulumi'],
    notApplicable: 'a Dockerfile cannot make its root filesystem read-only; the runtime does',
    check(o) {
      return [
        ...eachDocker(
          o,
          (_n, s) => {
            if (s.read_only !== true) return 'read_only is not true';
            const tmpfs = Array.isArray(s.tmpfs) ? s.tmpfs : s.tmpfs ? [s.tmpfs] : [];
            const tmpMount = (s.volumes ?? []).some(
              (v) => typeof v === 'object' && v.type === 'tmpfs' && v.target === '/tmp',
            );
            return tmpfs.some((t) => t.split(':')[0] === '/tmp') || tmpMount ? null : 'has no writable /tmp (tmpfs)';
          },
          (c) =>
            c.readOnly !== true ? 'readOnly is not true' : c.tmpfs && '/tmp' in c.tmpfs ? null : 'has no tmpfs /tmp',
        ),
        ...eachK8s(o, (c) => {
          if (obj(c.container.securityContext).readOnlyRootFilesystem !== true)
            return 'readOnlyRootFilesystem is not true';
          const mount = arr(c.container.volumeMounts).find((m) => m.mountPath === '/tmp');
          const volume = mount && arr(c.podSpec.volumes).find((v) => v.name === mount.name);
          return volume && volume.emptyDir !== undefined ? null : 'has no emptyDir mounted at /tmp';
        }),
      ];
    },
  },
  {
    id: 'bounded-tmpfs',
    title:
      'every in-memory filesystem (tmpfs, memory-backed emptyDir) has a size limit below the memory limit it counts against',
    targets: ['compose', 'swarm', 'kubernetes', 'pulumi'],
    notApplicable: 'a Dockerfile mounts no tmpfs; the runtime does',
    check(o) {
      return [
        ...eachDocker(
          o,
          (_n, s) => {
            const limit = bytes(s.deploy?.resources?.limits?.memory);
            const tmpfs = Array.isArray(s.tmpfs) ? s.tmpfs : s.tmpfs ? [s.tmpfs] : [];
            const sizes = [
              ...tmpfs.map((t) => ({
                path: t.split(':')[0],
                size: bytes(/(?:^|,)size=([^,]+)/.exec(t.split(':')[1] ?? '')?.[1]),
              })),
              ...(s.volumes ?? [])
                .filter((v) => typeof v === 'object' && v.type === 'tmpfs')
                .map((v) =>
                  typeof v === 'object' ? { path: v.target, size: bytes(v.tmpfs?.size) } : { path: '', size: NaN },
                ),
            ];
            return tmpfsProblem(sizes, limit);
          },
          (c) =>
            tmpfsProblem(
              Object.entries(c.tmpfs ?? {}).map(([path, opts]) => ({
                path,
                size: bytes(/(?:^|,)size=([^,]+)/.exec(opts)?.[1]),
              })),
              // The provider's `memory` is in MiB.
              c.memory === undefined ? NaN : c.memory * 1024 * 1024,
            ),
        ),
        ...eachK8s(o, (c) => {
          const mounted = new Set(arr(c.container.volumeMounts).map((m) => m.name));
          const sizes = arr(c.podSpec.volumes)
            .filter((v) => mounted.has(v.name) && obj(v.emptyDir).medium === 'Memory')
            .map((v) => ({ path: String(v.name), size: bytes(obj(v.emptyDir).sizeLimit) }));
          return tmpfsProblem(sizes, bytes(obj(obj(c.container.resources).limits).memory));
        }),
      ];
    },
  },
  {
    id: 'capabilities-dropped',
    title: 'every container drops all Linux capabilities and adds none',
    targets: ['compose', 'swarm', 'kubernetes', 'pulumi'],
    notApplicable: 'capabilities are a runtime setting, not an image one',
    check(o) {
      const msg = (drop: string[] | undefined, add: string[] | undefined): string | null =>
        !(drop ?? []).includes('ALL')
          ? 'does not drop ALL capabilities'
          : (add ?? []).length > 0
            ? `adds capabilities ${(add ?? []).join(', ')}`
            : null;
      return [
        ...eachDocker(
          o,
          (_n, s) => msg(s.cap_drop, s.cap_add),
          (c) => msg(c.capabilities?.drops, c.capabilities?.adds),
        ),
        ...eachK8s(o, (c) => {
          const caps = obj(obj(c.container.securityContext).capabilities);
          return msg(caps.drop as string[] | undefined, caps.add as string[] | undefined);
        }),
      ];
    },
  },
  {
    id: 'no-privilege-escalation',
    title: 'no container can gain privileges (no-new-privileges, allowPrivilegeEscalation false)',
    targets: ['compose', 'kubernetes', 'pulumi'],
    notApplicable:
      'Swarm: `docker stack deploy` ignores security_opt, so no-new-privileges cannot be expressed (the Swarm target reports it as unsupported); Dockerfile: runtime setting',
    check(o) {
      const nnp = (opts: string[] | undefined): string | null =>
        (opts ?? []).some((x) => /^no-new-privileges(:true|=true)?$/.test(x))
          ? null
          : 'has no no-new-privileges security option';
      return [
        ...(o.target === 'swarm'
          ? []
          : eachDocker(
              o,
              (_n, s) => nnp(s.security_opt),
              (c) => nnp(c.securityOpts),
            )),
        ...eachK8s(o, (c) =>
          obj(c.container.securityContext).allowPrivilegeEscalation === false
            ? null
            : 'allowPrivilegeEscalation is not false',
        ),
      ];
    },
  },
  {
    id: 'seccomp-runtime-default',
    title:
      'every Kubernetes container runs with the RuntimeDefault seccomp profile, and no Docker container is unconfined',
    targets: ['compose', 'swarm', 'kubernetes', 'pulumi'],
    check(o) {
      const unconfined = (opts: string[] | undefined): string | null =>
        (opts ?? []).some((x) => /^seccomp[:=]unconfined$/.test(x)) ? 'runs seccomp-unconfined' : null;
      return [
        ...eachDocker(
          o,
          (_n, s) => unconfined(s.security_opt),
          (c) => unconfined(c.securityOpts),
        ),
        ...eachK8s(o, (c) =>
          obj(k8sSecurity(c, 'seccompProfile')).type === 'RuntimeDefault'
            ? null
            : 'seccompProfile is not RuntimeDefault',
        ),
      ];
    },
  },
  {
    id: 'resource-limits',
    title: 'every container has CPU and memory limits',
    targets: ['compose', 'swarm', 'kubernetes', 'pulumi'],
    notApplicable: 'limits are a runtime setting, not an image one',
    check(o) {
      return [
        ...eachDocker(
          o,
          (_n, s) =>
            s.deploy?.resources?.limits?.cpus && s.deploy.resources.limits.memory
              ? null
              : 'has no deploy.resources.limits cpus and memory',
          (c) => (c.memory && c.cpus ? null : 'has no memory and cpus limit'),
        ),
        ...eachK8s(o, (c) => {
          const limits = obj(obj(c.container.resources).limits);
          return limits.cpu !== undefined && limits.memory !== undefined ? null : 'has no cpu and memory limits';
        }),
      ];
    },
  },
  {
    id: 'health-checks',
    title: 'every long-running container has a health check (readiness probe in Kubernetes)',
    targets: all,
    check(o) {
      if (o.target === 'dockerfile') {
        return /^HEALTHCHECK\s+(?!NONE)/m.test(o.text)
          ? []
          : [{ file: o.file, object: 'runtime stage', message: 'has no HEALTHCHECK' }];
      }
      const test = (t: string[] | string | undefined): boolean =>
        Array.isArray(t) ? t.length > 0 && t[0] !== 'NONE' : typeof t === 'string' && t !== '';
      return [
        ...eachDocker(
          o,
          (_n, s) => (s.healthcheck?.disable !== true && test(s.healthcheck?.test) ? null : 'has no healthcheck'),
          (c) => (test(c.healthcheck?.tests) ? null : 'has no healthcheck'),
        ),
        // Init containers and Job pods run to completion: readiness means nothing for them.
        ...eachK8s(o, (c) =>
          c.init ||
          c.workload.kind === 'Job' ||
          c.workload.kind === 'CronJob' ||
          c.container.readinessProbe !== undefined
            ? null
            : 'has no readinessProbe',
        ),
      ];
    },
  },
  {
    id: 'pinned-images',
    title: 'every image is pinned: an explicit tag or digest, never latest',
    targets: all,
    check(o) {
      const bad = (image: string | undefined): string | null => {
        if (!image) return 'has no image';
        const [, digest] = image.split('@');
        if (digest !== undefined)
          return /^sha256:[0-9a-f]{64}$/.test(digest) ? null : `has a malformed digest: ${image}`;
        const tag = /:([^/:]+)$/.exec(image)?.[1];
        return tag === undefined ? `has no tag: ${image}` : tag === 'latest' ? `uses latest: ${image}` : null;
      };
      if (o.target === 'dockerfile') {
        return [...o.text.matchAll(/^FROM\s+(\S+)/gm)].flatMap((m) => {
          const msg = bad(m[1]);
          return msg ? [{ file: o.file, object: `FROM ${m[1]}`, message: msg }] : [];
        });
      }
      return [
        ...eachDocker(
          o,
          (_n, s) => bad(s.image),
          (c) => bad(c.image),
        ),
        ...eachK8s(o, (c) => bad(c.container.image as string | undefined)),
      ];
    },
  },
  {
    id: 'no-host-ports',
    title: 'no host ports: no Kubernetes hostPort, and Docker targets publish only from frontend services on loopback',
    targets: ['compose', 'swarm', 'kubernetes', 'pulumi'],
    check(o) {
      const v = eachK8s(o, (c) =>
        arr(c.container.ports).some((p) => p.hostPort !== undefined) ? 'sets hostPort' : null,
      );
      if (o.target === 'kubernetes') {
        for (const s of o.docs.filter((d) => d.kind === 'Service')) {
          const type = obj(s.spec).type;
          if (type === 'NodePort' || type === 'LoadBalancer')
            v.push({ file: o.file, object: `Service/${s.metadata.name}`, message: `is of type ${String(type)}` });
        }
      }
      return [
        ...v,
        ...eachDocker(
          o,
          (_n, s, file) => {
            const ports = s.ports ?? [];
            if (ports.length === 0) return null;
            if (!serviceNetworks(s).includes('frontend')) return 'publishes ports but is not on the frontend network';
            // Swarm has no host IP binding; Compose and Pulumi must bind to loopback.
            if (file.endsWith('docker-stack.yml')) return null;
            const open = ports.filter((p) =>
              typeof p === 'string' ? !p.startsWith('127.0.0.1:') : p.host_ip !== '127.0.0.1',
            );
            return open.length > 0 ? `publishes on all interfaces: ${JSON.stringify(open)}` : null;
          },
          (c) => {
            const ports = (c.ports ?? []).filter((p) => p.external !== undefined);
            return ports.some((p) => p.ip !== '127.0.0.1')
              ? `publishes on all interfaces: ${JSON.stringify(ports)}`
              : null;
          },
        ),
      ];
    },
  },
  {
    id: 'no-host-paths',
    title: 'no container mounts a host path',
    targets: ['compose', 'swarm', 'kubernetes', 'pulumi'],
    check(o) {
      const v: Violation[] = [];
      if (o.target === 'kubernetes') {
        for (const d of o.docs) {
          for (const vol of arr(podSpecOf(d)?.volumes)) {
            if (vol.hostPath !== undefined)
              v.push({
                file: o.file,
                object: `${d.kind}/${d.metadata.name} volume ${String(vol.name)}`,
                message: 'is a hostPath volume',
              });
          }
        }
      }
      return [
        ...v,
        ...eachDocker(
          o,
          (_n, s) => {
            const binds = (s.volumes ?? []).filter((m) =>
              typeof m === 'string' ? /^[./~]/.test(m) : m.type === 'bind',
            );
            return binds.length > 0 ? `bind-mounts host paths: ${JSON.stringify(binds)}` : null;
          },
          (c) => {
            const binds = [
              ...(c.volumes ?? []).filter((m) => m.hostPath !== undefined),
              ...(c.mounts ?? []).filter((m) => m.type === 'bind'),
            ];
            return binds.length > 0 ? `bind-mounts host paths: ${JSON.stringify(binds)}` : null;
          },
        ),
      ];
    },
  },
  {
    id: 'no-host-network',
    title: 'no container shares the host network, PID or IPC namespace',
    targets: ['compose', 'swarm', 'kubernetes', 'pulumi'],
    check(o) {
      const v: Violation[] = [];
      if (o.target === 'kubernetes') {
        for (const d of o.docs) {
          const spec = podSpecOf(d);
          for (const key of ['hostNetwork', 'hostPID', 'hostIPC']) {
            if (spec?.[key] === true)
              v.push({ file: o.file, object: `${d.kind}/${d.metadata.name}`, message: `sets ${key}` });
          }
        }
      }
      return [
        ...v,
        ...eachDocker(
          o,
          (_n, s) =>
            s.network_mode === 'host' || s.pid === 'host' || s.ipc === 'host'
              ? 'shares a host namespace (network_mode/pid/ipc: host)'
              : null,
          (c) => (c.networkMode === 'host' ? 'uses networkMode host' : null),
        ),
      ];
    },
  },
  {
    id: 'no-privileged',
    title: 'no container runs privileged',
    targets: ['compose', 'swarm', 'kubernetes', 'pulumi'],
    check(o) {
      return [
        ...eachDocker(
          o,
          (_n, s) => (s.privileged === true ? 'is privileged' : null),
          (c) => (c.privileged === true ? 'is privileged' : null),
        ),
        ...eachK8s(o, (c) => (obj(c.container.securityContext).privileged === true ? 'is privileged' : null)),
      ];
    },
  },
  {
    id: 'no-secret-values',
    title: 'no secret value is written: secret-like variables hold file paths, URLs carry no password',
    targets: all,
    check(o) {
      const secretName = /(PASS(WORD)?|SECRET|TOKEN|COOKIE|KEY)$/i;
      const judge = (name: string, value: string): string | null => {
        if (/:\/\/[^/@\s]*:[^/@\s]*@/.test(value)) return `${name} holds a URL with a password`;
        if (secretName.test(name) && !name.endsWith('_FILE')) return `${name} holds a literal value`;
        return null;
      };
      const envPairs = (env: Record<string, string> | string[] | undefined): [string, string][] =>
        Array.isArray(env)
          ? env.map((e) => [e.split('=')[0] ?? '', e.slice(e.indexOf('=') + 1)])
          : Object.entries(env ?? {}).map(([k, x]) => [k, String(x)]);
      const v: Violation[] = [];
      if (o.target === 'dockerfile') {
        for (const m of o.text.matchAll(/^(?:ARG|ENV)\s+([A-Za-z_][A-Za-z0-9_]*)[= ]?(.*)$/gm)) {
          const msg = judge(m[1]!, m[2] ?? '');
          if (msg) v.push({ file: o.file, object: m[0], message: msg });
        }
        return v;
      }
      if (o.target === 'kubernetes') {
        for (const c of k8sContainers(o.docs)) {
          for (const e of arr(c.container.env)) {
            const msg = typeof e.value === 'string' ? judge(String(e.name), e.value) : null;
            if (msg) v.push({ file: o.file, object: c.id, message: msg });
          }
        }
        for (const d of o.docs) {
          if (d.kind === 'ConfigMap') {
            for (const [k, x] of Object.entries(obj(d.data))) {
              const msg = judge(k, String(x));
              if (msg) v.push({ file: o.file, object: `ConfigMap/${d.metadata.name}`, message: msg });
            }
          }
          if (d.kind === 'Secret' && (d.data !== undefined || d.stringData !== undefined)) {
            v.push({
              file: o.file,
              object: `Secret/${d.metadata.name}`,
              message: 'a Secret with data is written into the manifests',
            });
          }
        }
        return v;
      }
      return eachDocker(
        o,
        (_n, s) =>
          envPairs(s.environment)
            .map(([k, x]) => judge(k, x))
            .find((m) => m !== null) ?? null,
        (c) =>
          envPairs(c.envs)
            .map(([k, x]) => judge(k, x))
            .find((m) => m !== null) ?? null,
      );
    },
  },
  {
    id: 'bounded-restarts',
    title: 'restarts are bounded: a crash loop stops or backs off instead of restarting forever',
    targets: ['compose', 'swarm', 'kubernetes', 'pulumi'],
    notApplicable:
      'Kubernetes Deployments and StatefulSets must use restartPolicy Always; the kubelet bounds them with capped exponential back-off (CrashLoopBackOff), so only Jobs are checked',
    check(o) {
      if (o.target === 'kubernetes') {
        return o.docs
          .filter((d) => d.kind === 'Job')
          .flatMap((d) => {
            const spec = obj(d.spec);
            const policy = obj(podSpecOf(d)).restartPolicy;
            const msgs: string[] = [];
            if (typeof spec.backoffLimit !== 'number') msgs.push('has no backoffLimit');
            if (policy !== 'Never' && policy !== 'OnFailure') msgs.push(`restartPolicy is ${String(policy)}`);
            return msgs.map((message) => ({ file: o.file, object: `Job/${d.metadata.name}`, message }));
          });
      }
      if (o.target === 'swarm') {
        return eachDocker(
          o,
          (_n, s) =>
            typeof s.deploy?.restart_policy?.max_attempts === 'number' && s.deploy.restart_policy.max_attempts > 0
              ? null
              : 'deploy.restart_policy.max_attempts is not set',
          () => null,
        );
      }
      return eachDocker(
        o,
        (_n, s) =>
          s.restart === 'no' || /^on-failure:\d+$/.test(s.restart ?? '')
            ? null
            : `restart is ${JSON.stringify(s.restart)}, expected on-failure:<n> or no`,
        (c) =>
          c.restart === 'no' ||
          (c.restart === 'on-failure' && typeof c.maxRetryCount === 'number' && c.maxRetryCount > 0)
            ? null
            : `restart is ${JSON.stringify(c.restart)} with maxRetryCount ${String(c.maxRetryCount)}`,
      );
    },
  },
  {
    id: 'network-isolation',
    title:
      'the backend is not reachable from outside: only frontend services publish, and backend traffic stays internal',
    targets: ['compose', 'swarm', 'kubernetes', 'pulumi'],
    check(o) {
      const v: Violation[] = [];
      const backendOnly = new Set(['rabbitmq', 'mongo', 'consumer']);
      if (o.target === 'compose' || o.target === 'swarm') {
        if (o.doc.networks?.backend?.internal !== true)
          v.push({ file: o.file, object: 'networks.backend', message: 'is not internal' });
        for (const [name, s] of services(o.doc)) {
          if (s.network_mode !== undefined)
            v.push({ file: o.file, object: `services.${name}`, message: `sets network_mode ${s.network_mode}` });
          if (backendOnly.has(name) && (s.ports ?? []).length > 0 && o.env !== 'dev')
            v.push({
              file: o.file,
              object: `services.${name}`,
              message: 'a backend service publishes ports outside dev',
            });
          if (name === 'mongo' || name === 'consumer') {
            if (serviceNetworks(s).some((n) => n !== 'backend'))
              v.push({
                file: o.file,
                object: `services.${name}`,
                message: `joins ${serviceNetworks(s).join(', ')}, expected backend only`,
              });
          }
        }
      } else if (o.target === 'pulumi') {
        const internal = new Set(o.pulumi.networks.filter((n) => n.internal === true).map((n) => n.name));
        if (internal.size === 0) v.push({ file: o.file, object: 'networks', message: 'no internal network' });
        for (const c of o.pulumi.containers) {
          const service = pulumiService(c);
          if (
            (service.includes('mongo') || service.includes('consumer')) &&
            (c.networksAdvanced ?? []).some((n) => !internal.has(n.name))
          ) {
            v.push({
              file: o.file,
              object: `Container ${c.name}`,
              message: 'a backend container joins a non-internal network',
            });
          }
        }
      } else if (o.target === 'kubernetes') {
        const policies = o.docs.filter((d) => d.kind === 'NetworkPolicy');
        const denyAll = policies.some(
          (p) =>
            Object.keys(obj(obj(p.spec).podSelector)).length === 0 &&
            ((obj(p.spec).policyTypes as string[] | undefined) ?? []).includes('Ingress') &&
            arr(obj(p.spec).ingress).length === 0,
        );
        if (!denyAll)
          v.push({ file: o.file, object: 'NetworkPolicy', message: 'no default-deny ingress NetworkPolicy' });
        for (const p of policies) {
          for (const rule of arr(obj(p.spec).ingress)) {
            const from = arr(rule.from);
            if (from.length === 0)
              v.push({
                file: o.file,
                object: `NetworkPolicy/${p.metadata.name}`,
                message: 'allows ingress from everywhere',
              });
            if (from.some((f) => f.ipBlock !== undefined))
              v.push({
                file: o.file,
                object: `NetworkPolicy/${p.metadata.name}`,
                message: 'allows ingress from an ipBlock',
              });
          }
        }
        for (const d of o.docs) {
          if (d.kind === 'Ingress') {
            const backends = JSON.stringify(d.spec ?? {});
            for (const b of backendOnly)
              if (backends.includes(`"name":"${b}"`))
                v.push({
                  file: o.file,
                  object: `Ingress/${d.metadata.name}`,
                  message: `routes to backend service ${b}`,
                });
          }
        }
      }
      return v;
    },
  },
];

export function ruleNamed(id: string): Rule {
  const r = RULES.find((x) => x.id === id);
  if (!r) throw new Error(`no policy rule ${id}`);
  return r;
}

/** Targets of the Docker family that the `dockerTargets` helper covers, for documentation. */
export const DOCKER_TARGETS = dockerTargets;
