/**
 * The parity report: for every feature of the model and every target, whether the target expresses it natively,
 * emulates it (and how) or does not (and why). Synth writes it as `dist/PARITY.md` and `dist/PARITY.json`, and the
 * README's feature table is generated from the same data.
 *
 * A target may declare its own rows (`Target.features`); the data here is used for targets that do not, keyed by
 * target. A feature a target cannot express for a given model is still a gap at synth time (`Gap`), which fails
 * unless the model accepts it; the report lists the accepted gaps with their reasons.
 */
import { clusterRequirements, type ClusterRequirement } from '../k8s/requirements';
import type { ResolvedSystem, TargetName } from '../model';
import { pulumiGaps } from '../pulumi/model';
import type { FeatureSupport, Gap, GeneratedFile, Target } from '../output/types';
import { SWARM_FEATURES } from '../swarm/features';

/** The model's features, in table order: id (as gaps name them) and the table's label. */
export const FEATURES = [
  { id: 'replicas', label: 'Replicas' },
  { id: 'autoscaling', label: 'Autoscaling' },
  { id: 'health-checks', label: 'Health checks' },
  { id: 'startup-ordering', label: 'Startup ordering' },
  { id: 'secrets', label: 'Secrets as files' },
  { id: 'resource-limits', label: 'Resource limits' },
  { id: 'read-only-root', label: 'Read-only root + tmpfs `/tmp`' },
  { id: 'non-root-user', label: 'Non-root numeric user' },
  { id: 'capabilities-dropped', label: 'Capabilities dropped' },
  { id: 'no-new-privileges', label: 'No new privileges' },
  { id: 'network-isolation', label: 'Network isolation' },
  { id: 'persistent-volumes', label: 'Persistent volumes' },
  { id: 'broker-cluster', label: 'Broker cluster (prod: 3 nodes)' },
  { id: 'database-replica-set', label: 'Database replica set (prod: 3)' },
  { id: 'ingress', label: 'Ingress (prod)' },
  { id: 'ingress-tls', label: 'TLS at the edge (prod)' },
  { id: 'rolling-updates', label: 'Rolling updates' },
  { id: 'disruption-budgets', label: 'Disruption budgets' },
] as const;

export type FeatureId = (typeof FEATURES)[number]['id'];

/** Table column order. */
export const PARITY_TARGETS: readonly TargetName[] = ['dockerfile', 'compose', 'swarm', 'kubernetes', 'pulumi'];

const n = (how: string): FeatureSupport => ({ support: 'native', how });
const e = (how: string): FeatureSupport => ({ support: 'emulated', how });
const u = (how: string): FeatureSupport => ({ support: 'unsupported', how });
const na = (how: string): FeatureSupport => ({ support: 'n/a', how });

const RUNTIME = 'a runtime setting; the other targets set it';

/** Swarm's own declaration (constructs/swarm/features.ts), keyed by its labels, mapped to feature ids. */
function swarmFeatures(): Record<string, FeatureSupport> {
  const byLabel: Record<string, FeatureId> = {
    replicas: 'replicas',
    autoscaling: 'autoscaling',
    'health checks': 'health-checks',
    'startup ordering': 'startup-ordering',
    secrets: 'secrets',
    'resource limits': 'resource-limits',
    'read-only root + tmpfs': 'read-only-root',
    'non-root user': 'non-root-user',
    'capabilities dropped': 'capabilities-dropped',
    'no-new-privileges': 'no-new-privileges',
    'network isolation': 'network-isolation',
    'persistent volumes': 'persistent-volumes',
    'broker cluster': 'broker-cluster',
    'database replica set': 'database-replica-set',
    ingress: 'ingress',
    'ingress tls': 'ingress-tls',
    'rolling updates': 'rolling-updates',
    'disruption budgets': 'disruption-budgets',
  };
  const out: Record<string, FeatureSupport> = {};
  for (const [label, f] of Object.entries(SWARM_FEATURES)) {
    const id = byLabel[label];
    if (id) out[id] = { support: f.support, how: f.note };
  }
  return out;
}

/** Per-target data for targets that do not declare `features` themselves. */
export const TARGET_FEATURES: Readonly<Record<TargetName, Readonly<Record<string, FeatureSupport>>>> = {
  dockerfile: {
    replicas: na(RUNTIME),
    autoscaling: na(RUNTIME),
    'health-checks': n('`HEALTHCHECK` running a Node script (no curl in the slim image)'),
    'startup-ordering': na(RUNTIME),
    secrets: n('no secret in `ARG`/`ENV`; read at run time from `*_FILE` paths'),
    'resource-limits': na(RUNTIME),
    'read-only-root': na('the image writes nothing outside /tmp; read-only is a runtime setting'),
    'non-root-user': n('`USER 10001:10001`'),
    'capabilities-dropped': na(RUNTIME),
    'no-new-privileges': na(RUNTIME),
    'network-isolation': na(RUNTIME),
    'persistent-volumes': na(RUNTIME),
    'broker-cluster': na('the broker and database use official images'),
    'database-replica-set': na('the broker and database use official images'),
    ingress: na(RUNTIME),
    'ingress-tls': na(RUNTIME),
    'rolling-updates': na(RUNTIME),
    'disruption-budgets': na(RUNTIME),
  },
  compose: {
    replicas: n('`deploy.replicas` (stateful services run 1)'),
    autoscaling: u('Compose has no autoscaler; a fixed replica count (gap `autoscaling`)'),
    'health-checks': n('`healthcheck`'),
    'startup-ordering': n('`depends_on: condition: service_healthy`'),
    secrets: n('top-level `secrets` from files, `*_FILE` variables'),
    'resource-limits': n('`deploy.resources` limits and reservations'),
    'read-only-root': n('`read_only: true`, `tmpfs: [/tmp:size=…]`'),
    'non-root-user': n('numeric `user`'),
    'capabilities-dropped': n('`cap_drop: [ALL]`'),
    'no-new-privileges': n('`security_opt: [no-new-privileges:true]`'),
    'network-isolation': n('`internal: true` backend network; only the producer joins `frontend`'),
    'persistent-volumes': n('named volumes'),
    'broker-cluster': u('one RabbitMQ container on a single host (gap `broker-cluster`)'),
    'database-replica-set': u('one MongoDB container on a single host (gap `database-replica-set`)'),
    ingress: u('no ingress; the operator fronts the producer with a proxy (gap `ingress`)'),
    'ingress-tls': u(
      'Compose has no TLS-terminating proxy of its own; the operator terminates TLS in front of the producer (gap `ingress-tls`)',
    ),
    'rolling-updates': u('`docker compose up` recreates changed containers'),
    'disruption-budgets': u('single host: nothing to budget'),
  },
  swarm: swarmFeatures(),
  kubernetes: {
    replicas: n('`Deployment`/`StatefulSet` replicas'),
    autoscaling: n(
      'HorizontalPodAutoscaler (CPU, needs metrics-server) for the producer; KEDA ScaledObject on queue depth for the consumer (needs the KEDA operator)',
    ),
    'health-checks': n('readiness, liveness and startup probes (RabbitMQ: readiness only, by its guidance)'),
    'startup-ordering': e(
      'readiness probes gate Service endpoints, and the services retry their connections with back-off',
    ),
    secrets: n('Secrets projected as files under /run/secrets, `*_FILE` variables'),
    'resource-limits': n('requests and limits, ephemeral storage included'),
    'read-only-root': n('`readOnlyRootFilesystem`, memory-backed `emptyDir` at /tmp with `sizeLimit`'),
    'non-root-user': n('`runAsNonRoot`, numeric `runAsUser`/`runAsGroup`'),
    'capabilities-dropped': n('`capabilities.drop: [ALL]`'),
    'no-new-privileges': n('`allowPrivilegeEscalation: false`, seccomp `RuntimeDefault`'),
    'network-isolation': n('default-deny NetworkPolicies plus one allow-list per service'),
    'persistent-volumes': n('StatefulSet `volumeClaimTemplates`'),
    'broker-cluster': n('RabbitMQ StatefulSet with Kubernetes peer discovery and quorum queues'),
    'database-replica-set': n('MongoDB StatefulSet with a key file and an initiating Job'),
    ingress: n('`Ingress` for the producer'),
    'ingress-tls': n('Ingress `tls` from the model (Secret name, cert-manager issuer annotation), HTTP→HTTPS redirect'),
    'rolling-updates': n('`RollingUpdate` strategies'),
    'disruption-budgets': n('a PodDisruptionBudget per service'),
  },
  pulumi: {
    replicas: e('one `docker.Container` per replica (stateful services run 1)'),
    autoscaling: u('standalone containers have no autoscaler (gap `autoscaling`)'),
    'health-checks': n('Docker `healthcheck`; `wait: true` until healthy'),
    'startup-ordering': e('`dependsOn` on the broker and database containers, which wait until healthy'),
    secrets: e(
      'secret config values written once into a per-service volume by a short-lived writer container (mode 0400, the service uid/gid), mounted read-only at /run/secrets; `*_FILE` variables; never in `envs`',
    ),
    'resource-limits': n('`memory`, `cpus`, `memoryReservation`, `cpuShares`'),
    'read-only-root': n('`readOnly`, `tmpfs` /tmp with `size=`'),
    'non-root-user': n('numeric `user`'),
    'capabilities-dropped': n('`capabilities.drops: [ALL]`'),
    'no-new-privileges': n('`securityOpts: [no-new-privileges:true]`'),
    'network-isolation': n('an `internal` backend network; only the producer joins the frontend'),
    'persistent-volumes': n('`docker.Volume` with `protect` for retained data'),
    'broker-cluster': u('one RabbitMQ container (gap `broker-cluster`)'),
    'database-replica-set': u('one MongoDB container (gap `database-replica-set`)'),
    ingress: u('no ingress; the operator fronts the producer with a proxy (gap `ingress`)'),
    'ingress-tls': u(
      'the Docker provider has no TLS-terminating proxy; the operator terminates TLS in front of the producer (gap `ingress-tls`)',
    ),
    'rolling-updates': u('a changed container is replaced (delete, then create)'),
    'disruption-budgets': u('single Docker host: nothing to budget'),
  },
};

/** The rows of one target: its own declaration first, then the data here. */
export function featuresOf(
  target: TargetName,
  registered: readonly Target[] = [],
): Readonly<Record<string, FeatureSupport>> {
  const own = registered.find((t) => t.name === target)?.features;
  return { ...TARGET_FEATURES[target], ...(own ?? {}) };
}

export interface ParityReport {
  readonly targets: readonly TargetName[];
  readonly features: readonly { id: string; label: string; support: Readonly<Record<string, FeatureSupport>> }[];
  readonly acceptedGaps: readonly (Gap & { environment: string; reason: string })[];
  /**
   * What a Kubernetes cluster must provide for each environment's manifests (add-ons, node count): a feature the
   * target expresses natively can still depend on the cluster, which the table alone would not say.
   */
  readonly kubernetesRequirements: readonly { environment: string; requirements: readonly ClusterRequirement[] }[];
}

/**
 * The report. The Pulumi program is not a synth target (synth never loads the Pulumi SDK), so its gaps are computed
 * here from the resolved models with the same SDK-free function the program checks them with.
 */
export function parityReport(
  registered: readonly Target[],
  synthGaps: readonly (Gap & { reason: string })[],
  systems: readonly ResolvedSystem[] = [],
): ParityReport {
  const acceptedGaps = [...synthGaps];
  if (!registered.some((t) => t.name === 'pulumi')) {
    for (const system of systems) {
      for (const gap of pulumiGaps(system)) {
        const accepted = system.acceptedGaps.find((a) => a.target === gap.target && a.feature === gap.feature);
        if (accepted) acceptedGaps.push({ ...gap, reason: accepted.reason });
      }
    }
  }
  return {
    targets: PARITY_TARGETS,
    features: FEATURES.map((f) => ({
      id: f.id,
      label: f.label,
      support: Object.fromEntries(
        PARITY_TARGETS.map((t) => [t, featuresOf(t, registered)[f.id] ?? u('not declared by the target')]),
      ),
    })),
    kubernetesRequirements: systems.map((system) => ({
      environment: system.environment,
      requirements: clusterRequirements(system),
    })),
    acceptedGaps: [...acceptedGaps]
      .map((g) => ({ ...g, environment: g.path.split('/')[0] ?? '' }))
      .sort((a, b) =>
        `${a.environment} ${a.target} ${a.feature} ${a.path}`.localeCompare(
          `${b.environment} ${b.target} ${b.feature} ${b.path}`,
        ),
      ),
  };
}

function cell(s: FeatureSupport): string {
  if (s.support === 'n/a') return '—';
  return `${s.support} (${s.how.replace(/\|/g, '\\|')})`;
}

/** The README's feature table (between `<!-- feature-table:start -->` and `<!-- feature-table:end -->`). */
export function featureTable(report: ParityReport): string {
  const head = ['Feature', ...report.targets.map((t) => TARGET_LABELS[t])];
  const rows = report.features.map((f) => [f.label, ...report.targets.map((t) => cell(f.support[t]!))]);
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), `|${head.map(() => '---').join('|')}|`, ...rows.map(line)].join('\n') + '\n';
}

const TARGET_LABELS: Record<TargetName, string> = {
  dockerfile: 'Dockerfile',
  compose: 'Compose',
  swarm: 'Swarm',
  kubernetes: 'Kubernetes',
  pulumi: 'Pulumi',
};

export const PARITY_MARKDOWN = 'PARITY.md';
export const PARITY_JSON = 'PARITY.json';

/** `dist/PARITY.md` and `dist/PARITY.json`. */
export function parityFiles(report: ParityReport, header: string): GeneratedFile[] {
  const gaps =
    report.acceptedGaps.length === 0
      ? 'None.\n'
      : [
          '| Environment | Target | Feature | Where | What the target does | Reason accepted |',
          '| --- | --- | --- | --- | --- | --- |',
        ]
          .concat(
            report.acceptedGaps.map(
              (g) => `| ${g.environment} | ${g.target} | ${g.feature} | ${g.path} | ${g.detail} | ${g.reason} |`,
            ),
          )
          .join('\n') + '\n';
  const md =
    `<!-- ${header
      .trim()
      .split('\n')
      .map((l) => l.replace(/^# /, ''))
      .join(' ')} -->\n\n` +
    '# Feature parity across targets\n\n' +
    'Native: the target expresses the feature directly. Emulated: the same effect another way (how is said). ' +
    'Unsupported: not expressed; synth fails unless the environment accepts the gap with a reason. —: not the ' +
    "target's concern.\n\n" +
    featureTable(report) +
    '\n## Accepted gaps\n\n' +
    gaps +
    requirementsSection(report);
  const json = `${JSON.stringify(
    {
      generatedBy: header
        .trim()
        .split('\n')
        .map((l) => l.replace(/^# /, '')),
      ...report,
    },
    null,
    2,
  )}\n`;
  return [
    { path: PARITY_MARKDOWN, content: md },
    { path: PARITY_JSON, content: json },
  ];
}

function requirementsSection(report: ParityReport): string {
  if (report.kubernetesRequirements.length === 0) return '';
  const lines = [
    '\n## Kubernetes cluster requirements\n',
    'What the cluster must provide for the manifests to work as modelled (`constructs/k8s/requirements.ts`).\n',
  ];
  for (const env of report.kubernetesRequirements) {
    lines.push(`### ${env.environment}\n`);
    lines.push(...env.requirements.map((r) => `- ${r.what}: ${r.why}`), '');
  }
  return lines.join('\n');
}

const TABLE_START = '<!-- feature-table:start -->\n';
const TABLE_END = '<!-- feature-table:end -->';

/** The README with its feature table replaced by `table`; throws when the markers are missing. */
export function replaceFeatureTable(readme: string, table: string): string {
  const start = readme.indexOf(TABLE_START);
  const end = readme.indexOf(TABLE_END);
  if (start === -1 || end < start) throw new Error(`README.md has no ${TABLE_START.trim()} … ${TABLE_END} markers`);
  return readme.slice(0, start + TABLE_START.length) + table + readme.slice(end);
}
