/**
 * The parts of the Pulumi target that are pure functions of the resolved model: names, gaps, config keys, the
 * Docker settings of one container. Kept apart from the resources so they can be read and tested without a
 * Pulumi runtime.
 */
import { readFileSync, existsSync } from 'node:fs';
import { join, posix } from 'node:path';
import type { ResolvedHealthCheck, ResolvedService, ResolvedSystem } from '../model';
import { dockerfilePath, renderDockerfile } from '../dockerfile';
import { singleHostGaps } from '../compose';
import type { Gap, SynthContext } from '../output/types';

/** Type token of the component that holds the whole system. */
export const COMPONENT_TYPE = 'async-jobs:index:JobSystem';

/** Where `npm run synth` writes, relative to the repository root; the images are built from its Dockerfiles. */
export const DIST_DIR = 'dist';

/** Unix permission of an uploaded secret file: readable by the container's user only. */
export const SECRET_FILE_MODE = '0400';

/**
 * Pulumi config key of a model secret: `mongo-password` → `mongoPassword`, the spelling Pulumi's own examples
 * use for config keys.
 *
 * @see https://www.pulumi.com/docs/iac/concepts/config/
 */
export function secretConfigKey(secretName: string): string {
  return secretName.replace(/[-_.]+([a-z0-9])/gi, (_match, c: string) => c.toUpperCase());
}

/** Names of the secrets some service mounts, sorted. Secrets no container reads need no config value. */
export function usedSecrets(system: ResolvedSystem): string[] {
  return [...new Set(system.services.flatMap((s) => s.secrets.map((use) => use.secret)))].sort();
}

/**
 * How many containers a service runs: its replicas, except for stateful services, which run as one container
 * (a RabbitMQ cluster or a MongoDB replica set needs more than copies of one container; reported as gaps).
 */
export function containerCount(service: ResolvedService): number {
  return service.stateful ? Math.min(service.replicas, 1) : service.replicas;
}

/** Docker container name of one replica: `<namespace>-<service>-<index>`. */
export function containerName(system: ResolvedSystem, service: ResolvedService, index: number): string {
  return `${system.namespace}-${service.name}-${index}`;
}

/** Docker name of a network or volume: `<namespace>-<name>`, so two environments share a host without clashing. */
export function scopedName(system: ResolvedSystem, name: string): string {
  return `${system.namespace}-${name}`;
}

/**
 * Seconds to wait for a new container to report healthy: its start period, then one check more than it takes to
 * be declared unhealthy. Past that Docker itself would have marked it unhealthy.
 *
 * @see https://docs.docker.com/reference/dockerfile/#healthcheck
 */
export function healthWaitSeconds(hc: ResolvedHealthCheck): number {
  return hc.startPeriodSeconds + (hc.intervalSeconds + hc.timeoutSeconds) * (hc.retries + 1);
}

/** `KEY=value` pairs: plain variables and `<X>_FILE` paths of the mounted secrets, sorted by name. */
export function containerEnvs(service: ResolvedService): string[] {
  const pairs: [string, string][] = [
    ...service.env.map((e): [string, string] => [e.name, e.value]),
    ...service.secrets.map((use): [string, string] => [use.fileEnv, use.path]),
  ];
  return pairs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, value]) => `${name}=${value}`);
}

/** The Docker health check of a service (exec form, no shell). */
export function containerHealthcheck(service: ResolvedService): {
  tests: string[];
  interval: string;
  timeout: string;
  retries: number;
  startPeriod: string;
} {
  const hc = service.healthCheck;
  return {
    tests: ['CMD', ...hc.command],
    interval: `${hc.intervalSeconds}s`,
    timeout: `${hc.timeoutSeconds}s`,
    retries: hc.retries,
    startPeriod: `${hc.startPeriodSeconds}s`,
  };
}

/**
 * Docker CPU shares for a CPU request, with the conversion Kubernetes uses for the same field (1024 shares = one
 * core), so a request means the same relative weight on both.
 *
 * @see https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/#how-pods-with-resource-limits-are-run
 */
export function cpuShares(millicores: number): number {
  return Math.max(2, Math.round((millicores * 1024) / 1000));
}

/** Directories the secret files are uploaded into (each gets its own anonymous volume). */
export function secretDirectories(service: ResolvedService): string[] {
  return [...new Set(service.secrets.map((use) => posix.dirname(use.path)))].sort();
}

/**
 * Features of the model a set of standalone Docker containers cannot express. Each fails the program unless the
 * environment accepts it (`acceptedGaps` with target `pulumi`), like synth does for the file targets.
 */
export function pulumiGaps(system: ResolvedSystem): Gap[] {
  const target = 'pulumi';
  const gaps: Gap[] = singleHostGaps(system, target, { autoscaling: true, unit: 'container' });
  for (const s of system.services) {
    if (s.publishedPorts.length > 0 && containerCount(s) > 1) {
      gaps.push({
        target,
        feature: 'published-port-replicas',
        path: s.path,
        detail: `publishes its host ports from container 0 only (a host port binds once), not from all ${containerCount(s)}`,
      });
    }
  }
  if (system.ingressTls !== null) {
    gaps.push({
      target,
      feature: 'ingress-tls',
      path: system.path,
      detail: `cannot terminate TLS for ${system.ingressHost ?? ''} (the Docker provider runs containers, no TLS-terminating proxy; terminate TLS in the proxy in front of the producer)`,
    });
  }
  if (system.ingressHost !== null) {
    gaps.push({
      target,
      feature: 'ingress',
      path: system.path,
      detail: `has no ingress for ${system.ingressHost} (put a reverse proxy in front of the producer)`,
    });
  }
  return gaps;
}

/** The error synth prints for a gap the model has not accepted, word for word. */
export function unacceptedGapMessage(gap: Gap): string {
  return (
    `[${gap.path}] ${gap.target} cannot express "${gap.feature}": it ${gap.detail}; ` +
    `accept it in the model with acceptedGaps: [{ target: '${gap.target}', feature: '${gap.feature}', reason: '…' }] or change the model`
  );
}

/** Gaps of this system that its model does not accept. */
export function unacceptedGaps(system: ResolvedSystem): Gap[] {
  return pulumiGaps(system).filter(
    (gap) => !system.acceptedGaps.some((a) => a.target === gap.target && a.feature === gap.feature),
  );
}

/**
 * Problems with the synthesized Dockerfiles the images are built from: missing, or not what synth would write
 * now (the model changed since the last `npm run synth`).
 */
export function dockerfileProblems(system: ResolvedSystem, repoRoot: string, context: SynthContext): string[] {
  const problems: string[] = [];
  for (const s of system.services) {
    if (s.image.kind !== 'build') continue;
    const relative = `${DIST_DIR}/${dockerfilePath(system.environment, s.name)}`;
    const file = join(repoRoot, relative);
    if (!existsSync(file)) {
      problems.push(
        `[${s.path}] pulumi: image build needs ${relative}, which does not exist; run \`npm run synth\` first`,
      );
    } else if (readFileSync(file, 'utf8') !== renderDockerfile(system, s, context)) {
      problems.push(
        `[${s.path}] pulumi: ${relative} is stale (the model changed since it was synthesized); run \`npm run synth\` first`,
      );
    }
  }
  return problems;
}
