import { mountedSecrets, type ResolvedService, type ResolvedSystem } from '../model';
import { dockerfilePath } from '../dockerfile';
import { renderYaml } from '../output/yaml';
import type { Gap, GeneratedFile, SynthContext, Target, TargetOutput } from '../output/types';

/** Compose and Swarm interpolate `$`; a literal one is written `$$`. */
export function escapeDollars(value: string): string {
  return value.replace(/\$/g, '$$$$');
}

/** Environment as a sorted mapping (values escaped). */
export function composeEnvironment(s: ResolvedService): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of s.env) out[e.name] = escapeDollars(e.value);
  for (const use of s.secrets) out[use.fileEnv] = use.path;
  return out;
}

/** The Compose `healthcheck` of a service. */
export function composeHealthcheck(s: ResolvedService): Record<string, unknown> {
  const hc = s.healthCheck;
  return {
    test: ['CMD', ...hc.command.map(escapeDollars)],
    interval: `${hc.intervalSeconds}s`,
    timeout: `${hc.timeoutSeconds}s`,
    retries: hc.retries,
    start_period: `${hc.startPeriodSeconds}s`,
  };
}

/** Resource limits and reservations in Docker's units. */
export function composeResources(s: ResolvedService): Record<string, unknown> {
  const r = s.resources;
  return {
    limits: { cpus: r.cpuLimit.toDocker(), memory: r.memoryLimit.toDocker() },
    reservations: { cpus: r.cpuRequest.toDocker(), memory: r.memoryRequest.toDocker() },
  };
}

/** Keys Compose and Swarm share for one service: image, command, environment, security, health, storage. */
export function commonServiceKeys(s: ResolvedService): Record<string, unknown> {
  return {
    image: s.image.reference,
    command: s.command.length > 0 ? s.command.map(escapeDollars) : undefined,
    environment: composeEnvironment(s),
    healthcheck: composeHealthcheck(s),
    user: `${s.security.user}:${s.security.group}`,
    read_only: s.security.readOnlyRootFilesystem,
    // `path:options` is what Docker's `--tmpfs` takes; the size caps what the tmpfs charges to the memory limit.
    tmpfs: s.security.tmpfs.map((path) => `${path}:size=${s.security.tmpfsSize.toDocker()}`),
    cap_drop: ['ALL'],
    stop_grace_period: `${s.terminationGracePeriodSeconds}s`,
    volumes: s.volumeMounts.map((m) => ({ type: 'volume', source: m.volume, target: m.path })),
    networks: [...s.networks].sort(),
  };
}

/** Path from `dist/<env>/` back to the repository root. */
const TO_ROOT = '../..';

/**
 * Compose resolves `build.dockerfile` against `build.context` (`services/`), so the synthesized Dockerfile is
 * reached through the repository root: `../dist/<env>/<service>.Dockerfile`. Synth writes to `dist/` by default;
 * a build from another `--out` directory uses the Dockerfiles committed under `dist/`.
 */
const OUT_FROM_CONTEXT = '../dist';

/**
 * Gaps shared by the single-host Docker targets: one broker node and one database member where the model has a
 * cluster, and (unless the target reports it itself) a fixed replica count where the model autoscales.
 * `container` words the details for targets that run plain containers (Pulumi).
 */
export function singleHostGaps(
  system: ResolvedSystem,
  target: 'compose' | 'swarm' | 'pulumi',
  options: { readonly autoscaling: boolean; readonly unit?: 'container' },
): Gap[] {
  const unit = options.unit;
  const gaps: Gap[] = [];
  for (const s of system.services) {
    if (s.kind === 'broker' && s.replicas > 1) {
      gaps.push({
        target,
        feature: 'broker-cluster',
        path: s.path,
        detail: `runs 1 RabbitMQ ${unit ?? 'node'} instead of a ${s.replicas}-node cluster`,
      });
    }
    if (s.kind === 'database' && s.replicas > 1) {
      gaps.push({
        target,
        feature: 'database-replica-set',
        path: s.path,
        detail: `runs 1 MongoDB ${unit ?? 'member'} instead of a ${s.replicas}-member replica set`,
      });
    }
    if (s.autoscaling && options.autoscaling) {
      gaps.push({
        target,
        feature: 'autoscaling',
        path: s.path,
        detail: `runs a fixed ${s.replicas} ${unit === undefined ? 'replicas' : `${unit}s`} instead of scaling from ${s.autoscaling.minReplicas} to ${s.autoscaling.maxReplicas}`,
      });
    }
  }
  return gaps;
}

/** The Compose service definition. */
export function composeService(system: ResolvedSystem, s: ResolvedService): Record<string, unknown> {
  // Compose runs stateful services as one container; their extra replicas are reported as gaps.
  const replicas = s.stateful ? 1 : s.replicas;
  return {
    ...commonServiceKeys(s),
    build:
      s.image.kind === 'build'
        ? {
            context: `${TO_ROOT}/${s.image.context}`,
            dockerfile: `${OUT_FROM_CONTEXT}/${dockerfilePath(system.environment, s.name)}`,
          }
        : undefined,
    secrets: s.secrets.map((use) => use.secret),
    ports: s.publishedPorts.map((p) => `${p.hostIp}:${p.hostPort}:${p.containerPort}`),
    depends_on: Object.fromEntries(s.dependsOn.map((d) => [d, { condition: 'service_healthy' }])),
    deploy: { replicas, resources: composeResources(s) },
    // Bounded: a crash-looping container stops instead of restarting forever.
    restart: `on-failure:${s.restartMaxAttempts}`,
    init: true,
    security_opt: ['no-new-privileges:true'],
  };
}

export function renderCompose(system: ResolvedSystem, context: SynthContext): { file: GeneratedFile; gaps: Gap[] } {
  const gaps = singleHostGaps(system, 'compose', { autoscaling: true });
  const secrets: Record<string, unknown> = {};
  for (const secret of mountedSecrets(system)) {
    if (secret.source.kind === 'file') {
      secrets[secret.name] = { file: `${TO_ROOT}/${secret.source.path}` };
    } else {
      secrets[secret.name] = { external: true };
      gaps.push({
        target: 'compose',
        feature: 'external-secrets',
        path: secret.path,
        detail: 'cannot read platform secrets outside Swarm mode',
      });
    }
  }
  if (system.ingressTls !== null) {
    gaps.push({
      target: 'compose',
      feature: 'ingress-tls',
      path: system.path,
      detail: `cannot terminate TLS for ${system.ingressHost ?? ''} (Compose has no TLS-terminating proxy; terminate TLS in the proxy in front of the producer)`,
    });
  }
  if (system.ingressHost !== null) {
    gaps.push({
      target: 'compose',
      feature: 'ingress',
      path: system.path,
      detail: `has no ingress for ${system.ingressHost} (put a reverse proxy in front of the producer)`,
    });
  }
  const doc = {
    name: system.namespace,
    services: Object.fromEntries(system.services.map((s) => [s.name, composeService(system, s)])),
    networks: Object.fromEntries(
      system.networks.map((n) => [n.name, { driver: 'bridge', internal: n.internal ? true : undefined }]),
    ),
    volumes: Object.fromEntries(system.volumes.map((v) => [v.name, { labels: { 'io.async-jobs.volume': v.name } }])),
    secrets,
  };
  return {
    file: { path: `${system.environment}/compose.yaml`, content: renderYaml([doc], context, system.environment) },
    gaps,
  };
}

export const composeTarget: Target = {
  name: 'compose',
  description: 'Docker Compose file per environment: dist/<env>/compose.yaml',
  synth(system: ResolvedSystem, context: SynthContext): TargetOutput {
    const { file, gaps } = renderCompose(system, context);
    return { files: [file], gaps, warnings: [], errors: [] };
  },
};
