/**
 * The parts of the Pulumi target that are pure functions of the resolved model: names, gaps, config keys, the
 * Docker settings of one container. Kept apart from the resources so they can be read and tested without a
 * Pulumi runtime.
 */
import { readFileSync, existsSync } from 'node:fs';
import { join, posix } from 'node:path';
import type { Cpu, ResolvedHealthCheck, ResolvedService, ResolvedSystem } from '../model';
import { dockerfilePath, renderDockerfile } from '../dockerfile';
import { singleHostGaps } from '../compose';
import type { Gap, SynthContext } from '../output/types';

/** Type token of the component that holds the whole system. */
export const COMPONENT_TYPE = 'async-jobs:index:JobSystem';

/** Where `npm run synth` writes, relative to the repository root; the images are built from its Dockerfiles. */
export const DIST_DIR = 'dist';

/** Unix permission of a secret file: readable by the container's user only. */
export const SECRET_FILE_MODE = '0400';

/**
 * How images are built: BuildKit (the default), or Docker's classic builder for hosts where BuildKit cannot run
 * the synthesized Dockerfiles' `# syntax=docker/dockerfile:1` line (it pulls that frontend image from a registry).
 */
export const IMAGE_BUILDERS = { buildkit: 'BuilderBuildKit', classic: 'BuilderV1' } as const;
export type ImageBuilder = keyof typeof IMAGE_BUILDERS;

/** Pulumi config key choosing the {@link ImageBuilder}. */
export const IMAGE_BUILDER_CONFIG_KEY = 'imageBuilder';

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

/**
 * A whole number of seconds as Go's `time.Duration.String()` writes it (`60` → `1m0s`), the form the Docker
 * provider reads a health check back in. Anything else shows as a change on every `pulumi up`.
 *
 * @see https://pkg.go.dev/time#Duration.String
 */
export function goDuration(seconds: number): string {
  if (!Number.isInteger(seconds) || seconds < 0) {
    throw new Error(`goDuration: got ${seconds}, expected a whole number of seconds ≥ 0`);
  }
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const rest = seconds % 60;
  if (hours > 0) return `${hours}h${minutes}m${rest}s`;
  if (minutes > 0) return `${minutes}m${rest}s`;
  return `${rest}s`;
}

/**
 * A CPU limit as the Docker provider reads `cpus` back from the engine's `NanoCPUs` (its
 * `nanoInt64ToDecimalString`): nine decimals, then `"1.0"` when the digits hold exactly nine zeros, else the
 * trailing zeros trimmed (`2250m` → `"2.25"`, `10` cores → `"10."`). `cpus` forces a replacement, so the program
 * must send this exact form or every `pulumi up` replaces the container.
 *
 * @see https://github.com/kreuzwerker/terraform-provider-docker/blob/master/internal/provider/helpers.go
 */
export function providerCpus(cpu: Cpu): string {
  const nano = BigInt(cpu.millicores) * 1_000_000n;
  if (nano === 0n) return '0';
  const ns = 1_000_000_000n;
  const nine = `${nano / ns}.${String(nano % ns).padStart(9, '0')}`;
  if ([...nine].filter((c) => c === '0').length === 9) {
    // big.Rat.FloatString(1) rounds half away from zero.
    const tenths = nano / 100_000_000n + (2n * (nano % 100_000_000n) >= 100_000_000n ? 1n : 0n);
    return `${tenths / 10n}.${tenths % 10n}`;
  }
  return nine.replace(/0+$/, '');
}

/**
 * The problem with a service's CPU limit when the provider's form of it means another amount (`50m` reads back
 * as `"0.1"`): no input then stays unchanged across runs, so the program refuses it.
 */
export function cpusProblem(service: ResolvedService): string | undefined {
  const cpu = service.resources.cpuLimit;
  const form = providerCpus(cpu);
  if (Math.round(Number(form) * 1000) === cpu.millicores) return undefined;
  return (
    `[${service.path}] pulumi: resources.cpuLimit ${cpu.toKubernetes()} is read back by the Docker provider as cpus "${form}", ` +
    `another amount, so every \`pulumi up\` would replace the container; expected a limit the provider keeps (a multiple of 100m, or 0.105 and the like)`
  );
}

/**
 * Total memory plus swap in MiB: Docker's own default (twice the limit, what Compose and Swarm containers of the
 * same model get), set explicitly because the provider reads it back and shows an unset value as a change.
 *
 * @see https://docs.docker.com/engine/containers/resource_constraints/#--memory-swap-details
 */
export function memorySwapMebibytes(service: ResolvedService): number {
  return service.resources.memoryLimit.mebibytes * 2;
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
    interval: goDuration(hc.intervalSeconds),
    timeout: goDuration(hc.timeoutSeconds),
    retries: hc.retries,
    startPeriod: goDuration(hc.startPeriodSeconds),
  };
}

/**
 * The health check of a container that must have none: `NONE` disables the one its image declares, which Docker
 * would otherwise copy into the container (and the provider would read back as a change).
 */
export const NO_HEALTHCHECK = {
  tests: ['NONE'],
  interval: '0s',
  timeout: '0s',
  startPeriod: '0s',
  startInterval: '0s',
  retries: 0,
} as const;

/**
 * Docker CPU shares for a CPU request, with the conversion Kubernetes uses for the same field (1024 shares = one
 * core), so a request means the same relative weight on both.
 *
 * @see https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/#how-pods-with-resource-limits-are-run
 */
export function cpuShares(millicores: number): number {
  return Math.max(2, Math.round((millicores * 1024) / 1000));
}

/**
 * The one directory a service's secret files live in (`/run/secrets`), where its secrets volume is mounted, or
 * undefined when it reads no secret.
 */
export function secretsDirectory(service: ResolvedService): string | undefined {
  const dirs = [...new Set(service.secrets.map((use) => posix.dirname(use.path)))].sort();
  if (dirs.length > 1) {
    throw new Error(
      `[${service.path}] pulumi: secret files in ${dirs.join(', ')}; expected them in one directory (one volume holds them)`,
    );
  }
  return dirs[0];
}

/**
 * Throws unless the container that wrote a service's secret files exited with 0. It ran to its end before the
 * service's containers are created (`attach`); a failed chown would leave files the service user cannot read.
 */
export function checkSecretsWriterExit(service: ResolvedService, writer: string, exitCode: number | undefined): void {
  if (exitCode === 0) return;
  throw new Error(
    `[${service.path}] pulumi: container ${writer}, which writes the secret files, exited with code ${String(exitCode)}; see \`docker logs ${writer}\``,
  );
}

/** Docker name of the volume holding a service's secret files, and of the container that fills it. */
export function secretsName(system: ResolvedSystem, service: ResolvedService): string {
  return scopedName(system, `${service.name}-secrets`);
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
