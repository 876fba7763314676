import {
  mountedSecrets,
  type ResolvedSecret,
  type ResolvedSecretUse,
  type ResolvedService,
  type ResolvedSystem,
} from '../model';
import { commonServiceKeys, composeResources, singleHostGaps } from '../compose';
import { renderYaml } from '../output/yaml';
import { SECRET_VERSION_LENGTH, secretVersionVariable } from './deploy';
import type { Gap, GeneratedFile, SynthContext, Target, TargetOutput } from '../output/types';

/**
 * The Docker Swarm target: one `docker stack deploy` file per environment, `dist/<env>/docker-stack.yml`.
 *
 * It shares the service keys Compose and Swarm agree on (`commonServiceKeys`) and forks where Swarm differs:
 * images only (a stack cannot build), everything operational under `deploy:`, overlay networks, secrets with
 * versioned names, tmpfs as mounts, and no `depends_on`.
 *
 * @see https://docs.docker.com/reference/compose-file/legacy-versions/ (the v3 format `docker stack` reads)
 * @see https://docs.docker.com/engine/swarm/stack-deploy/
 */

/** The v3 schema version written: 3.8 added `max_replicas_per_node`; 3.9 is read by Docker Engine 19.03 and later. */
export const STACK_FILE_VERSION = '3.9';

/** Path of an environment's stack file relative to the output directory. */
export function stackFilePath(environment: string): string {
  return `${environment}/docker-stack.yml`;
}

/** Path from `dist/<env>/` back to the repository root (`docker stack` resolves `file:` against the stack file). */
const TO_ROOT = '../..';

/** Swarm mounts secrets under this directory; a reference's `target` is relative to it. */
const SECRET_DIR = '/run/secrets/';

/**
 * Longest secret name Swarm accepts.
 *
 * @see https://github.com/moby/swarmkit/blob/master/manager/controlapi/common.go (validateConfigOrSecretAnnotations)
 */
const SWARM_NAME_MAX_LENGTH = 64;

/** Read-only for the owner: the services read their secrets, nothing writes them. */
const SECRET_FILE_MODE = 0o400;

/**
 * The window in which the model's `restartMaxAttempts` count before Swarm gives up on a task slot. Swarm counts
 * restarts in a sliding window when `window` is set, so a crash loop stops while an occasional crash weeks apart
 * never exhausts the budget.
 *
 * @see https://github.com/moby/swarmkit/blob/master/manager/orchestrator/restart/restart.go (shouldRestart)
 */
const RESTART_WINDOW_SECONDS = 120;
const RESTART_DELAY_SECONDS = 5;

/** Label an operator sets on the node that holds a stateful service's data (`docker node update --label-add`). */
export function placementLabel(service: string): string {
  return `async-jobs.${service}`;
}

/** The placement constraint pinning a stateful service to its labelled node. */
export function placementConstraint(service: string): string {
  return `node.labels.${placementLabel(service)} == true`;
}

/**
 * The Swarm name of a file secret. Swarm secrets are immutable, so a changed value needs a new name: the suffix is a
 * version computed on the deploying machine from the file's content. It is a variable rather than a hash written
 * at synth time because the file exists only where one deploys (never in CI or in git), the output must not
 * depend on it, and no value derived from a secret may land in the repository. `:?` makes the deploy fail with a
 * pointer to the README when the variable is unset, instead of silently creating `…-`. The message has no `:` or
 * `-`: docker's interpolation misreads `${VAR:?see README: npm run images -- …}` as another expression.
 *
 * @see https://docs.docker.com/engine/swarm/secrets/#example-rotate-a-secret
 * @see https://docs.docker.com/compose/how-tos/environment-variables/variable-interpolation/
 */
export function secretName(system: ResolvedSystem, secret: string): string {
  return `${system.namespace}_${secret}-\${${secretVersionVariable(secret)}:?see Deploying to Docker Swarm in README.md}`;
}

/**
 * Whether the service's published ports go through the routing mesh. A mesh port needs the service's virtual IP;
 * everything else resolves to its task IPs by DNS round robin, so service-to-service traffic needs no IPVS.
 *
 * @see https://docs.docker.com/engine/swarm/ingress/#configure-an-external-load-balancer
 */
function usesRoutingMesh(system: ResolvedSystem, s: ResolvedService): boolean {
  return s.publishedPorts.length > 0 && system.swarm.publishMode === 'ingress';
}

/** Host-mode ports bind on the task's node, so a second task of the service on that node could not start. */
function bindsHostPorts(system: ResolvedSystem, s: ResolvedService): boolean {
  return s.publishedPorts.length > 0 && system.swarm.publishMode === 'host';
}

/**
 * Start the new task before stopping the old one, except where two cannot run side by side: a stateful service
 * (two processes on one data volume) and a service that binds a host port (the new task could not bind it).
 */
function updateOrder(system: ResolvedSystem, s: ResolvedService): 'start-first' | 'stop-first' {
  return s.stateful || bindsHostPorts(system, s) ? 'stop-first' : 'start-first';
}

/**
 * How long Swarm watches an updated task for failure: long enough for its health check to fail `retries` times
 * after it first passed (Swarm counts a task with a health check as running only once it is healthy).
 *
 * @see https://docs.docker.com/reference/compose-file/deploy/#update_config
 */
function monitorSeconds(s: ResolvedService): number {
  return s.healthCheck.intervalSeconds * (s.healthCheck.retries + 1);
}

function secretTarget(use: ResolvedSecretUse): string {
  return use.path.startsWith(SECRET_DIR) ? use.path.slice(SECRET_DIR.length) : use.path;
}

/** The `deploy:` section: everything Swarm uses to schedule, restart, update and roll back the service. */
function swarmDeploy(system: ResolvedSystem, s: ResolvedService): Record<string, unknown> {
  const order = updateOrder(system, s);
  const monitor = `${monitorSeconds(s)}s`;
  return {
    mode: 'replicated',
    // A stateful service runs one task on its labelled node; more replicas are reported as gaps.
    replicas: s.stateful ? 1 : s.replicas,
    endpoint_mode: usesRoutingMesh(system, s) ? 'vip' : 'dnsrr',
    resources: composeResources(s),
    restart_policy: {
      condition: 'any',
      delay: `${RESTART_DELAY_SECONDS}s`,
      max_attempts: s.restartMaxAttempts,
      window: `${RESTART_WINDOW_SECONDS}s`,
    },
    update_config: { parallelism: 1, delay: '10s', order, failure_action: 'rollback', monitor, max_failure_ratio: 0 },
    // A rollback that fails too needs a person: pause rather than flip-flop.
    rollback_config: { parallelism: 1, order, failure_action: 'pause', monitor },
    placement: {
      // Swarm volumes are local to a node: a rescheduled broker or database must land where its data is.
      constraints: s.stateful ? [placementConstraint(s.name)] : [],
      max_replicas_per_node: bindsHostPorts(system, s) ? 1 : undefined,
    },
  };
}

/** The Swarm service definition. */
export function swarmService(system: ResolvedSystem, s: ResolvedService): Record<string, unknown> {
  const common = commonServiceKeys(s);
  const seen = new Set<string>();
  const secrets = s.secrets.filter((use) => !seen.has(use.secret) && seen.add(use.secret));
  return {
    ...common,
    // `docker stack deploy` ignores the short `tmpfs:` key; a tmpfs mount is what it converts.
    // @see https://github.com/docker/cli/blob/master/cli/compose/convert/volume.go
    tmpfs: undefined,
    volumes: [
      ...s.volumeMounts.map((m) => ({ type: 'volume', source: m.volume, target: m.path })),
      ...s.security.tmpfs.map((path) => ({
        type: 'tmpfs',
        target: path,
        // The stack format takes the size in bytes (an integer); the tmpfs is charged to the memory limit.
        tmpfs: { size: s.security.tmpfsSize.bytes },
      })),
    ],
    init: true,
    secrets: secrets.map((use) => ({
      source: use.secret,
      target: secretTarget(use),
      uid: String(s.security.user),
      gid: String(s.security.group),
      // Written as the number (256): YAML 1.1 readers take `0400` as octal, YAML 1.2 readers as four hundred.
      mode: SECRET_FILE_MODE,
    })),
    ports: s.publishedPorts.map((p) => ({
      target: p.containerPort,
      published: p.hostPort,
      protocol: 'tcp',
      mode: system.swarm.publishMode,
    })),
    deploy: swarmDeploy(system, s),
  };
}

function swarmSecret(system: ResolvedSystem, secret: ResolvedSecret): Record<string, unknown> | string {
  switch (secret.source.kind) {
    case 'file': {
      const deployedName = `${system.namespace}_${secret.name}-${'0'.repeat(SECRET_VERSION_LENGTH)}`;
      if (deployedName.length > SWARM_NAME_MAX_LENGTH) {
        return (
          `[${secret.path}] name: got ${JSON.stringify(secret.name)}, which makes the Swarm secret name ` +
          `${system.namespace}_${secret.name}-<version> ${deployedName.length} characters long, expected at most ${SWARM_NAME_MAX_LENGTH} ` +
          '(shorten the secret name or the namespace)'
        );
      }
      return { name: secretName(system, secret.name), file: `${TO_ROOT}/${secret.source.path}` };
    }
    case 'external':
      // Created and rotated by the operator (`docker secret create <name>`); referenced by its exact name.
      return { name: secret.name, external: true };
    case 'invalid':
      return `[${secret.path}] source: got ${secret.source.got}, expected SecretSource.file(…) or SecretSource.external()`;
  }
}

/** Options `docker stack deploy` ignores that the other Docker targets set; reported, never dropped silently. */
function ignoredOptionWarnings(system: ResolvedSystem): string[] {
  const names = system.services.map((s) => s.name).join(', ');
  return [
    `security_opt "no-new-privileges:true" is left out for ${names}: docker stack deploy ignores security_opt, ` +
      'so a setuid binary in the image could gain privileges; cap_drop ALL and the numeric non-root user still apply',
  ];
}

/** Model features Swarm cannot express as modelled. */
export function swarmGaps(system: ResolvedSystem): Gap[] {
  const gaps = singleHostGaps(system, 'swarm', { autoscaling: false });
  for (const s of system.services) {
    if (s.autoscaling) {
      gaps.push({
        target: 'swarm',
        feature: 'autoscaling',
        path: s.path,
        detail: `runs a fixed ${s.replicas} replicas instead of scaling from ${s.autoscaling.minReplicas} to ${s.autoscaling.maxReplicas} (Swarm has no autoscaler)`,
      });
    }
    for (const p of s.publishedPorts) {
      if (p.hostIp !== '0.0.0.0') {
        gaps.push({
          target: 'swarm',
          feature: 'published-port-host-ip',
          path: s.path,
          detail: `publishes port ${p.hostPort} on every interface of the node instead of only ${p.hostIp} (the stack file format has no host_ip)`,
        });
      }
    }
  }
  if (system.ingressTls !== null) {
    gaps.push({
      target: 'swarm',
      feature: 'ingress-tls',
      path: system.path,
      detail: `cannot terminate TLS for ${system.ingressHost ?? ''} (the routing mesh forwards TCP only; terminate TLS in the proxy in front of the producer)`,
    });
  }
  if (system.ingressHost !== null) {
    gaps.push({
      target: 'swarm',
      feature: 'ingress',
      path: system.path,
      detail: `has no HTTP ingress for ${system.ingressHost} (its routing mesh is TCP only; put a reverse proxy or load balancer in front of the producer)`,
    });
  }
  return gaps;
}

/** Every build image must name a registry repository: a stack cannot build, and every node pulls by tag. */
function imageErrors(system: ResolvedSystem): string[] {
  const errors: string[] = [];
  for (const s of system.services) {
    if (s.image.kind === 'build' && s.image.repository === null) {
      errors.push(
        `[${s.path}] image: got ImageSource.build('${s.image.context}', '${s.image.service}') with no registry repository, ` +
          `expected one such as ImageSource.build('${s.image.context}', '${s.image.service}', 'localhost:5000/${s.image.localName}'); ` +
          'docker stack deploy ignores build:, so every node must pull the image from a registry',
      );
    }
  }
  return errors;
}

/** Renders the stack file of one environment. */
export function renderSwarm(system: ResolvedSystem, context: SynthContext): TargetOutput {
  const errors = imageErrors(system);
  const secrets: Record<string, unknown> = {};
  for (const secret of mountedSecrets(system)) {
    const rendered = swarmSecret(system, secret);
    if (typeof rendered === 'string') errors.push(rendered);
    else secrets[secret.name] = rendered;
  }
  const gaps = swarmGaps(system);
  const warnings = ignoredOptionWarnings(system);
  if (errors.length > 0) return { files: [], gaps, warnings, errors };
  const doc = {
    version: STACK_FILE_VERSION,
    services: Object.fromEntries(system.services.map((s) => [s.name, swarmService(system, s)])),
    networks: Object.fromEntries(
      system.networks.map((n) => [
        n.name,
        {
          driver: 'overlay',
          internal: n.internal ? true : undefined,
          // The backend carries passwords and job data between nodes: IPsec on the VXLAN traffic.
          // @see https://docs.docker.com/engine/network/drivers/overlay/#encrypt-traffic-on-an-overlay-network
          driver_opts: n.name === 'backend' ? { encrypted: '' } : undefined,
        },
      ]),
    ),
    volumes: Object.fromEntries(
      system.volumes.map((v) => [v.name, { driver: 'local', labels: { 'io.async-jobs.volume': v.name } }]),
    ),
    secrets,
  };
  const file: GeneratedFile = {
    path: stackFilePath(system.environment),
    content: renderYaml([doc], context, system.environment),
  };
  return { files: [file], gaps, warnings, errors };
}

export const swarmTarget: Target = {
  name: 'swarm',
  description: 'Docker Swarm stack file per environment: dist/<env>/docker-stack.yml',
  synth(system: ResolvedSystem, context: SynthContext): TargetOutput {
    return renderSwarm(system, context);
  },
};

export { SWARM_FEATURES } from './features';
export {
  imageBuilds,
  secretVersions,
  secretVersionVariable,
  SECRET_VERSION_LENGTH,
  type ImageBuild,
  type SecretVersion,
} from './deploy';
