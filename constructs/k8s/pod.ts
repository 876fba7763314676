/**
 * Pod and container building blocks shared by every workload of the Kubernetes target: labels, the restricted
 * security context, resources, probes, secret files and writable scratch directories.
 *
 * Everything is written with the typed L1 classes cdk8s-plus-28 ships (`k8s.Kube*`), not its L2 constructs: the
 * L2 constructs add defaults of their own (resources, probes, security context, hashed labels) and lack fields the
 * model needs (`volumeClaimTemplates`, `publishNotReadyAddresses`, PVC retention), while the L1 props map one to
 * one onto the Kubernetes 1.28 API so the compiler checks every field we write.
 */
import { posix } from 'node:path';
import { k8s } from 'cdk8s-plus-28';
import type { ResolvedService, ResolvedSystem } from '../model';

/** Value of `app.kubernetes.io/part-of` on every object. */
export const PART_OF = 'async-jobs';

/** Key inside every Kubernetes Secret the model names: `kubectl create secret generic <name> --from-file=value=<file>`. */
export const SECRET_KEY = 'value';

/** The recommended labels; also the selector, so selectors always equal the pod template's labels. */
export function labelsFor(name: string, component: string): Record<string, string> {
  return {
    'app.kubernetes.io/component': component,
    'app.kubernetes.io/name': name,
    'app.kubernetes.io/part-of': PART_OF,
  };
}

export function serviceLabels(s: ResolvedService): Record<string, string> {
  return labelsFor(s.name, s.kind);
}

export function meta(system: ResolvedSystem, name: string, labels: Record<string, string>): k8s.ObjectMeta {
  return { name, namespace: system.namespace, labels };
}

/**
 * The Pod Security "restricted" profile, at pod level. `fsGroup` makes mounted volumes (data PVCs, secret files
 * with mode 0440) readable by the container's group without running anything as root.
 *
 * @see https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted
 */
export function podSecurityContext(user: number, group: number): k8s.PodSecurityContext {
  return {
    fsGroup: group,
    fsGroupChangePolicy: 'OnRootMismatch',
    runAsGroup: group,
    runAsNonRoot: true,
    runAsUser: user,
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** The restricted profile at container level (repeated so each container is self-evidently compliant). */
export function containerSecurityContext(
  user: number,
  group: number,
  readOnlyRootFilesystem: boolean,
): k8s.SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    privileged: false,
    readOnlyRootFilesystem,
    runAsGroup: group,
    runAsNonRoot: true,
    runAsUser: user,
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** Requests and limits for CPU, memory and ephemeral storage, in Kubernetes quantities. */
export function resources(s: ResolvedService): k8s.ResourceRequirements {
  const r = s.resources;
  const q = (text: string): k8s.Quantity => k8s.Quantity.fromString(text);
  return {
    limits: {
      cpu: q(r.cpuLimit.toKubernetes()),
      'ephemeral-storage': q(r.ephemeralStorageLimit.toKubernetes()),
      memory: q(r.memoryLimit.toKubernetes()),
    },
    requests: {
      cpu: q(r.cpuRequest.toKubernetes()),
      'ephemeral-storage': q(r.ephemeralStorageRequest.toKubernetes()),
      memory: q(r.memoryRequest.toKubernetes()),
    },
  };
}

/** The probe action of the model's health check: `httpGet` when the service serves one, else the exec command. */
function probeAction(s: ResolvedService, path: 'readinessPath' | 'livenessPath'): Pick<k8s.Probe, 'httpGet' | 'exec'> {
  const http = s.healthCheck.http;
  if (http !== null) {
    return { httpGet: { path: http[path], port: k8s.IntOrString.fromNumber(http.port), scheme: 'HTTP' } };
  }
  return { exec: { command: [...s.healthCheck.command] } };
}

export interface Probes {
  readonly readinessProbe: k8s.Probe;
  readonly livenessProbe?: k8s.Probe;
  readonly startupProbe?: k8s.Probe;
}

/**
 * Probes from the model's health check. Docker's `start_period` becomes a startup probe that allows
 * `ceil(start / interval) + retries` failures, after which liveness takes over with the model's retries.
 * `readinessOnly` is for RabbitMQ, whose guidance is not to restart nodes on a failed check.
 *
 * @see https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/
 */
export function probes(s: ResolvedService, readinessOnly: boolean): Probes {
  const hc = s.healthCheck;
  const timing = { periodSeconds: hc.intervalSeconds, timeoutSeconds: hc.timeoutSeconds, failureThreshold: hc.retries };
  const readinessProbe: k8s.Probe = { ...probeAction(s, 'readinessPath'), ...timing, successThreshold: 1 };
  if (readinessOnly) return { readinessProbe };
  return {
    readinessProbe,
    // Liveness tolerates twice the failures readiness does: an overloaded pod is first taken out of its
    // Service, and only restarted if it stays unresponsive.
    // @see https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/
    livenessProbe: {
      ...probeAction(s, 'livenessPath'),
      ...timing,
      failureThreshold: hc.retries * 2,
      successThreshold: 1,
    },
    startupProbe: {
      ...probeAction(s, 'livenessPath'),
      ...timing,
      failureThreshold: Math.ceil(hc.startPeriodSeconds / hc.intervalSeconds) + hc.retries,
      successThreshold: 1,
    },
  };
}

/** Volume name of a writable scratch path: `/tmp` → `tmp`, `/var/cache/app` → `var-cache-app`. */
export function scratchVolumeName(path: string): string {
  return (
    path
      .replace(/^\/+|\/+$/g, '')
      .replace(/[^a-z0-9]+/gi, '-')
      .toLowerCase() || 'root'
  );
}

/**
 * A memory-backed emptyDir of the model's tmpfs size. Without `sizeLimit` the kubelet sizes the tmpfs to the pod's
 * memory limit; with it, writing more evicts the pod instead of growing until the container is OOM-killed. Either
 * way its pages are charged to the container's memory, which the model's validation accounts for.
 *
 * @see https://kubernetes.io/docs/concepts/storage/volumes/#emptydir-configuration-example
 */
export function memoryEmptyDir(s: ResolvedService): k8s.EmptyDirVolumeSource {
  return { medium: 'Memory', sizeLimit: k8s.Quantity.fromString(s.security.tmpfsSize.toKubernetes()) };
}

/** The model's tmpfs paths as memory-backed emptyDirs (Docker `tmpfs` semantics), each with the model's size. */
export function scratchVolumes(s: ResolvedService): { volumes: k8s.Volume[]; mounts: k8s.VolumeMount[] } {
  const paths = [...s.security.tmpfs].sort();
  return {
    volumes: paths.map((p) => ({ name: scratchVolumeName(p), emptyDir: memoryEmptyDir(s) })),
    mounts: paths.map((p) => ({ name: scratchVolumeName(p), mountPath: p })),
  };
}

/** Name of the projected volume that carries secret files. */
export const SECRETS_VOLUME = 'secrets';

/**
 * Secret files as one projected volume at `/run/secrets` (the directory every target uses): each Secret's key
 * `value` becomes the file `/run/secrets/<secret>`. Mode 0440 with the pod's `fsGroup` makes them readable by the
 * container's group only. No value is ever in the manifests: the Secrets are created out of band.
 *
 * @see https://kubernetes.io/docs/concepts/storage/projected-volumes/
 */
export function secretFiles(
  uses: readonly { readonly secret: string; readonly path: string }[],
  volumeName = SECRETS_VOLUME,
): { volumes: k8s.Volume[]; mounts: k8s.VolumeMount[] } {
  if (uses.length === 0) return { volumes: [], mounts: [] };
  const dirs = new Set(uses.map((u) => posix.dirname(u.path)));
  if (dirs.size !== 1) {
    throw new Error(`secret files must share one directory, got ${[...dirs].sort().join(', ')}`);
  }
  const dir = [...dirs][0] as string;
  const names = [...new Set(uses.map((u) => u.secret))].sort();
  return {
    volumes: [
      {
        name: volumeName,
        projected: {
          defaultMode: 0o440,
          sources: names.map((name) => ({
            secret: {
              name,
              items: [{ key: SECRET_KEY, path: posix.basename(uses.find((u) => u.secret === name)?.path ?? name) }],
            },
          })),
        },
      },
    ],
    mounts: [{ name: volumeName, mountPath: dir, readOnly: true }],
  };
}

/** Container ports of a service. */
export function containerPorts(s: ResolvedService): k8s.ContainerPort[] {
  return s.ports.map((p) => ({ name: p.name, containerPort: p.containerPort, protocol: 'TCP' }));
}

/** Image pull policy: every image is pinned (content tag or version), so a node's copy is reused. */
export const PULL_POLICY = 'IfNotPresent';

/**
 * Scheduling for highly available environments.
 *
 * - Stateful members (RabbitMQ nodes, MongoDB members) on distinct nodes, hard (required pod anti-affinity): two
 *   members on one node would lose quorum together. So an environment needs at least as many schedulable nodes as
 *   its largest stateful replica count ({@link requiredNodes}); with fewer, the extra members stay Pending.
 * - Stateless replicas spread over nodes, hard (`DoNotSchedule`, `maxSkew: 1`): a soft spread is only one score
 *   among the scheduler's, and it put all three producers on one node in a real check. `maxSkew: 1` still places
 *   any number of replicas on any number of nodes (10 producers on 3 nodes: 4/3/3), never blocks on a single-node
 *   cluster (one domain has no skew), and tainted or cordoned nodes are not counted as empty domains
 *   (`nodeTaintsPolicy: Honor`), so a drain or a tainted control-plane node does not block scheduling. Required
 *   anti-affinity would instead cap an autoscaled Deployment at one pod per node. `matchLabelKeys:
 *   [pod-template-hash]` spreads each rollout's new ReplicaSet on its own, so a surge pod is never held back by old
 *   pods about to go.
 * - Zones: soft everywhere (`ScheduleAnyway`): a hard zone constraint would reject every node without a
 *   `topology.kubernetes.io/zone` label, which many clusters lack.
 *
 * Development environments (not highly available) get none of this, so a single-node cluster runs them.
 *
 * @see https://kubernetes.io/docs/concepts/scheduling-eviction/topology-spread-constraints/
 * @see https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#inter-pod-affinity-and-anti-affinity
 */
export function placement(
  system: ResolvedSystem,
  s: ResolvedService,
): Pick<k8s.PodSpec, 'affinity' | 'topologySpreadConstraints'> {
  if (!system.highlyAvailable) return {};
  const selector: k8s.LabelSelector = { matchLabels: serviceLabels(s) };
  const zone: k8s.TopologySpreadConstraint = {
    labelSelector: selector,
    maxSkew: 1,
    topologyKey: ZONE_LABEL,
    whenUnsatisfiable: 'ScheduleAnyway',
  };
  if (s.stateful) {
    return {
      affinity: {
        podAntiAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: selector, topologyKey: HOSTNAME_LABEL }],
        },
      },
      topologySpreadConstraints: [zone],
    };
  }
  return {
    topologySpreadConstraints: [
      {
        labelSelector: selector,
        matchLabelKeys: ['pod-template-hash'],
        maxSkew: 1,
        nodeTaintsPolicy: 'Honor',
        topologyKey: HOSTNAME_LABEL,
        whenUnsatisfiable: 'DoNotSchedule',
      },
      zone,
    ],
  };
}

const HOSTNAME_LABEL = 'kubernetes.io/hostname';
const ZONE_LABEL = 'topology.kubernetes.io/zone';

/**
 * Schedulable nodes an environment needs: the stateful members must be on distinct nodes (see {@link placement}).
 * 1 for an environment that is not highly available.
 */
export function requiredNodes(system: ResolvedSystem): number {
  if (!system.highlyAvailable) return 1;
  return Math.max(1, ...system.services.filter((s) => s.stateful).map((s) => s.replicas));
}
