/**
 * The Kubernetes target: one multi-document manifest per environment, `dist/<env>/kubernetes.k8s.yaml`, from a
 * cdk8s App + Chart synthesized in memory. The `cdk8s synth` path (`infra/k8s.ts`) writes the very same file.
 */
import type { ResolvedSystem } from '../model';
import type { Gap, GeneratedFile, SynthContext, Target, TargetOutput } from '../output/types';
import { renderYaml } from '../output/yaml';
import { buildChart, kubernetesErrors } from './chart';

export { buildChart, jobRevision, kubernetesErrors, MONGO_INIT_TTL_SECONDS, WORK_QUEUE } from './chart';
export { MONGO_INIT_NAME } from './network';
export { requiredNodes } from './pod';
export { clusterRequirements, type ClusterRequirement } from './requirements';
export { rabbitmqVersion, peerDiscovery } from './stateful';

/** Path of the manifest file of an environment, relative to the output directory. */
export function kubernetesManifestPath(environment: string): string {
  return `${environment}/kubernetes.k8s.yaml`;
}

/** `kubectl apply` order: what others refer to first. */
const KIND_ORDER = [
  'Namespace',
  'ServiceAccount',
  'Role',
  'RoleBinding',
  'ConfigMap',
  'NetworkPolicy',
  'Service',
  'StatefulSet',
  'Deployment',
  'Job',
  'PodDisruptionBudget',
  'HorizontalPodAutoscaler',
  'TriggerAuthentication',
  'ScaledObject',
  'Ingress',
];

type Manifest = Record<string, unknown> & { kind: string; metadata: { name: string } };

function rank(kind: string): number {
  const i = KIND_ORDER.indexOf(kind);
  return i === -1 ? KIND_ORDER.length : i;
}

/**
 * Keys whose empty value `{}` means something in Kubernetes (`podSelector: {}` selects every pod), which the shared
 * serializer would otherwise prune as empty. They travel through `renderYaml` as a placeholder string and are
 * written back as `{}` afterwards.
 */
const MEANINGFUL_EMPTY_KEYS = new Set(['podSelector', 'namespaceSelector', 'emptyDir']);
const EMPTY_PLACEHOLDER = 'async-jobs-k8s-empty-map-placeholder';

function protectEmptyMaps(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) return value.map((v) => protectEmptyMaps(v));
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 0 && MEANINGFUL_EMPTY_KEYS.has(key)) return EMPTY_PLACEHOLDER;
    return Object.fromEntries(entries.map(([k, v]) => [k, protectEmptyMaps(v, k)]));
  }
  return value;
}

/** The environment's Kubernetes objects as plain JSON, in apply order, plus what the chart reported. */
export function kubernetesObjects(system: ResolvedSystem): {
  objects: Manifest[];
  gaps: Gap[];
  warnings: string[];
  errors: string[];
} {
  const errors = kubernetesErrors(system);
  if (errors.length > 0) return { objects: [], gaps: [], warnings: [], errors };
  const { chart, report } = buildChart(system);
  const objects = (chart.toJson() as Manifest[]).sort(
    (a, b) => rank(a.kind) - rank(b.kind) || a.metadata.name.localeCompare(b.metadata.name),
  );
  return { objects, gaps: report.gaps, warnings: report.warnings, errors: report.errors };
}

/** The manifest file's text: the shared serializer with Kubernetes key order. */
export function renderKubernetes(system: ResolvedSystem, objects: readonly Manifest[], context: SynthContext): string {
  const text = renderYaml(
    objects.map((o) => protectEmptyMaps(o)),
    context,
    system.environment,
    { sortKeys: true },
  );
  return text.replace(new RegExp(`(["']?)${EMPTY_PLACEHOLDER}\\1`, 'g'), '{}');
}

/** Renders one environment; used by `npm run synth` and by the cdk8s app (`infra/k8s.ts`). */
export function synthKubernetes(system: ResolvedSystem, context: SynthContext): TargetOutput {
  const { objects, gaps, warnings, errors } = kubernetesObjects(system);
  if (errors.length > 0) return { files: [], gaps, warnings, errors };
  const file: GeneratedFile = {
    path: kubernetesManifestPath(system.environment),
    content: renderKubernetes(system, objects, context),
  };
  return { files: [file], gaps, warnings, errors };
}

export const kubernetesTarget: Target = {
  name: 'kubernetes',
  description: 'cdk8s manifests per environment (also `cdk8s synth`): dist/<env>/kubernetes.k8s.yaml',
  synth: synthKubernetes,
};
