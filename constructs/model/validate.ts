import { parseImageReference } from './image';
import type { Cpu, Memory } from './quantity';
import type { ResolvedService, ResolvedSystem } from './resolved';

/** One problem in a model: where, and what is wrong (received value and what was expected). */
export interface ModelError {
  readonly path: string;
  readonly field: string;
  readonly message: string;
}

/** Thrown once with every problem of a model. */
export class ValidationError extends Error {
  public constructor(public readonly errors: readonly ModelError[]) {
    super(
      `The model has ${errors.length} error${errors.length === 1 ? '' : 's'}:\n` +
        errors.map((e) => `  ${formatModelError(e)}`).join('\n'),
    );
    this.name = 'ValidationError';
  }
}

export function formatModelError(e: ModelError): string {
  return `[${e.path}] ${e.field}: ${e.message}`;
}

const DNS_1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Variable names that hold credentials; their values belong in a secret. */
const SECRET_LIKE_NAME = /(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIALS?)$/i;
const IPV4 = /^(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}$/;

/** Services that must survive the loss of one replica when the system is highly available. */
const HA_KINDS = new Set(['producer', 'consumer', 'broker', 'database']);

class Collector {
  public readonly errors: ModelError[] = [];
  public add(path: string, field: string, message: string): void {
    this.errors.push({ path, field, message });
  }
}

function checkName(c: Collector, path: string, field: string, name: string): void {
  if (name.length > 63 || !DNS_1123_LABEL.test(name)) {
    c.add(
      path,
      field,
      `got ${JSON.stringify(name)}, expected a DNS-1123 label (lowercase letters, digits and "-", starting and ending with a letter or digit, at most 63 characters)`,
    );
  }
}

function checkInteger(
  c: Collector,
  path: string,
  field: string,
  value: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `from ${min} to ${max}`;
    c.add(path, field, `got ${String(value)}, expected an integer ${range}`);
  }
}

/** A Duration the service reads as whole milliseconds, from `minMs` to one hour. */
function checkMillis(c: Collector, path: string, field: string, ms: number, minMs: number): void {
  if (!Number.isInteger(ms) || ms < minMs || ms > 3_600_000) {
    c.add(path, field, `got ${String(ms)} ms, expected whole milliseconds from ${minMs} ms to 1 hour`);
  }
}

function checkQuantityPair(
  c: Collector,
  path: string,
  name: string,
  request: Cpu | Memory,
  limit: Cpu | Memory,
  size: (q: Cpu | Memory) => number,
): void {
  const requestProblem = request.problem();
  const limitProblem = limit.problem();
  if (requestProblem) c.add(path, `resources.${name}Request`, requestProblem);
  if (limitProblem) c.add(path, `resources.${name}Limit`, limitProblem);
  if (!requestProblem && !limitProblem && size(request) > size(limit)) {
    c.add(
      path,
      `resources.${name}Request`,
      `got ${request.toString()}, expected at most the limit ${limit.toString()}`,
    );
  }
}

/**
 * A tmpfs is charged to the container's memory cgroup, so the tmpfs paths together must leave room below the memory
 * limit for the process itself.
 */
function checkTmpfsSize(c: Collector, s: ResolvedService): void {
  const size = s.security.tmpfsSize;
  const problem = size.problem();
  if (problem) {
    c.add(s.path, 'tmpfsSize', problem);
    return;
  }
  const limit = s.resources.memoryLimit;
  const paths = s.security.tmpfs.length;
  if (paths === 0 || limit.problem() !== undefined) return;
  const total = size.mebibytes * paths;
  if (total >= limit.mebibytes) {
    const got = paths === 1 ? size.toString() : `${size.toString()} for each of ${paths} paths (${total}Mi in all)`;
    c.add(
      s.path,
      'tmpfsSize',
      `got ${got}, expected less than resources.memoryLimit (${limit.toString()}) because what is written to a tmpfs counts against the memory limit`,
    );
  }
}

function envValue(s: ResolvedService, name: string): string | undefined {
  return s.env.find((e) => e.name === name)?.value;
}

function validateService(c: Collector, system: ResolvedSystem, s: ResolvedService): void {
  const p = s.path;
  checkName(c, p, 'name', s.name);
  checkInteger(c, p, 'replicas', s.replicas, 0);
  if (system.highlyAvailable && HA_KINDS.has(s.kind)) {
    const effective = s.autoscaling ? s.autoscaling.minReplicas : s.replicas;
    if (Number.isInteger(effective) && effective < 2) {
      const field = s.autoscaling ? 'autoscaling.minReplicas' : 'replicas';
      c.add(p, field, `got ${effective}, expected at least 2 because ${system.path} is highly available`);
    }
  }
  if (s.autoscaling) {
    checkInteger(c, p, 'autoscaling.minReplicas', s.autoscaling.minReplicas, 1);
    checkInteger(c, p, 'autoscaling.maxReplicas', s.autoscaling.maxReplicas, 1);
    if (s.autoscaling.maxReplicas < s.autoscaling.minReplicas) {
      c.add(
        p,
        'autoscaling.maxReplicas',
        `got ${s.autoscaling.maxReplicas}, expected at least minReplicas (${s.autoscaling.minReplicas})`,
      );
    }
    checkInteger(c, p, 'autoscaling.cpuUtilizationPercent', s.autoscaling.cpuUtilizationPercent, 1, 100);
    if (s.autoscaling.queueLengthPerReplica !== null) {
      checkInteger(c, p, 'autoscaling.queueLengthPerReplica', s.autoscaling.queueLengthPerReplica, 1);
    }
  }

  const r = s.resources;
  checkQuantityPair(c, p, 'cpu', r.cpuRequest, r.cpuLimit, (q) => (q as Cpu).millicores);
  checkQuantityPair(c, p, 'memory', r.memoryRequest, r.memoryLimit, (q) => (q as Memory).mebibytes);
  checkQuantityPair(
    c,
    p,
    'ephemeralStorage',
    r.ephemeralStorageRequest,
    r.ephemeralStorageLimit,
    (q) => (q as Memory).mebibytes,
  );

  if (s.image.kind === 'registry') {
    const parsed = parseImageReference(s.image.reference);
    if (typeof parsed === 'string') c.add(p, 'image', parsed);
  } else if (s.image.repository !== null) {
    const parsed = parseImageReference(`${s.image.repository}:${s.image.tag}`);
    if (typeof parsed === 'string') c.add(p, 'image.repository', parsed);
  }

  const containerPorts = new Set<number>();
  for (const port of s.ports) {
    checkInteger(c, p, `ports.${port.name}`, port.containerPort, 1, 65535);
    if (containerPorts.has(port.containerPort)) {
      c.add(p, `ports.${port.name}`, `got ${port.containerPort} twice, expected each container port once`);
    }
    containerPorts.add(port.containerPort);
  }
  s.publishedPorts.forEach((port, i) => {
    checkInteger(c, p, `publishedPorts[${i}].hostPort`, port.hostPort, 1, 65535);
    checkInteger(c, p, `publishedPorts[${i}].containerPort`, port.containerPort, 1, 65535);
    if (Number.isInteger(port.containerPort) && !containerPorts.has(port.containerPort)) {
      c.add(
        p,
        `publishedPorts[${i}].containerPort`,
        `got ${port.containerPort}, expected one of the service's ports (${[...containerPorts].join(', ')})`,
      );
    }
    if (!IPV4.test(port.hostIp)) {
      c.add(
        p,
        `publishedPorts[${i}].hostIp`,
        `got ${JSON.stringify(port.hostIp)}, expected an IPv4 address such as "127.0.0.1"`,
      );
    }
  });

  for (const e of s.env) {
    if (!ENV_NAME.test(e.name)) {
      c.add(
        p,
        `env.${e.name}`,
        `got the name ${JSON.stringify(e.name)}, expected letters, digits and "_", not starting with a digit`,
      );
    }
    if (SECRET_LIKE_NAME.test(e.name) && e.value !== '') {
      c.add(
        p,
        `env.${e.name}`,
        'got a literal value (hidden), expected a secret: declare it in `secrets` and use it via `secrets: [{ secret, fileEnv }]`',
      );
    }
    if (/^[a-z][a-z0-9+.-]*:\/\/[^/@\s]*:[^/@\s]*@/i.test(e.value)) {
      c.add(
        p,
        `env.${e.name}`,
        'got a URL with a password in it (hidden), expected the URL without the password and the password in a secret',
      );
    }
  }

  const declaredSecrets = new Set(system.secrets.map((x) => x.name));
  for (const use of s.secrets) {
    if (!declaredSecrets.has(use.secret)) {
      c.add(
        p,
        `secrets.${use.secret}`,
        `got a reference to ${JSON.stringify(use.secret)}, expected one of the declared secrets (${[...declaredSecrets].sort().join(', ') || 'none declared'})`,
      );
    }
    if (!ENV_NAME.test(use.fileEnv) || !use.fileEnv.endsWith('_FILE')) {
      c.add(
        p,
        `secrets.${use.secret}.fileEnv`,
        `got ${JSON.stringify(use.fileEnv)}, expected a variable name ending in "_FILE"`,
      );
    }
  }
  const declaredVolumes = new Set(system.volumes.map((v) => v.name));
  for (const mount of s.volumeMounts) {
    if (!declaredVolumes.has(mount.volume)) {
      c.add(
        p,
        `volumeMounts.${mount.volume}`,
        `got a reference to ${JSON.stringify(mount.volume)}, expected one of the declared volumes (${[...declaredVolumes].sort().join(', ')})`,
      );
    }
    if (!mount.path.startsWith('/')) {
      c.add(p, `volumeMounts.${mount.volume}.path`, `got ${JSON.stringify(mount.path)}, expected an absolute path`);
    }
  }

  const hc = s.healthCheck;
  if (hc.command.length === 0)
    c.add(
      p,
      'healthCheck.command',
      'got an empty command, expected an exec-form command such as ["node", "dist/healthcheck.js"]',
    );
  checkInteger(c, p, 'healthCheck.retries', hc.retries, 1);
  checkInteger(c, p, 'healthCheck.intervalSeconds', hc.intervalSeconds, 1);
  checkInteger(c, p, 'healthCheck.timeoutSeconds', hc.timeoutSeconds, 1);
  if (hc.timeoutSeconds > hc.intervalSeconds) {
    c.add(
      p,
      'healthCheck.timeout',
      `got ${hc.timeoutSeconds}s, expected at most the interval (${hc.intervalSeconds}s)`,
    );
  }

  checkInteger(c, p, 'user', s.security.user, 1);
  checkInteger(c, p, 'group', s.security.group, 1);
  if (s.security.readOnlyRootFilesystem) {
    const writableTmp = s.security.tmpfs.includes('/tmp') || s.volumeMounts.some((m) => m.path === '/tmp');
    if (!writableTmp) {
      c.add(
        p,
        'tmpfs',
        `got ${JSON.stringify(s.security.tmpfs)}, expected "/tmp" to be writable (a tmpfs or volume) because readOnlyRootFilesystem is true`,
      );
    }
  }
  checkTmpfsSize(c, s);
  checkInteger(c, p, 'terminationGracePeriod', s.terminationGracePeriodSeconds, 0);

  if (s.kind === 'producer' || s.kind === 'consumer') {
    checkInteger(c, p, 'groupCommit.maxBatchSize', Number(envValue(s, 'GROUP_COMMIT_MAX_SIZE')), 1, 10_000);
    checkInteger(c, p, 'groupCommit.maxWaitMs', Number(envValue(s, 'GROUP_COMMIT_MAX_WAIT_MS')), 0, 1000);
  }

  if (s.kind === 'producer') {
    checkMillis(c, p, 'outboxRepublishAfter', Number(envValue(s, 'OUTBOX_REPUBLISH_AFTER_MS')), 100);
    checkMillis(c, p, 'outboxScanInterval', Number(envValue(s, 'OUTBOX_SCAN_INTERVAL_MS')), 50);
  }

  if (s.kind === 'consumer') {
    const prefetch = Number(envValue(s, 'PREFETCH'));
    const concurrency = Number(envValue(s, 'CONCURRENCY'));
    const maxAttempts = Number(envValue(s, 'MAX_ATTEMPTS'));
    checkInteger(c, p, 'prefetch', prefetch, 1, 65535);
    checkInteger(c, p, 'concurrency', concurrency, 1);
    checkInteger(c, p, 'maxAttempts', maxAttempts, 1);
    if (Number.isInteger(prefetch) && Number.isInteger(concurrency) && prefetch < concurrency) {
      c.add(
        p,
        'prefetch',
        `got ${prefetch}, expected at least the worker concurrency (${concurrency}) so every worker slot can hold a delivery`,
      );
    }
    if (s.terminationGracePeriodSeconds < s.drainTimeoutSeconds + 5) {
      c.add(
        p,
        'terminationGracePeriod',
        `got ${s.terminationGracePeriodSeconds}s, expected at least drainTimeout + 5s (${s.drainTimeoutSeconds + 5}s) so in-flight jobs finish and connections close before SIGKILL`,
      );
    }
  }
}

/** Checks a resolved model; returns every problem (empty when valid). */
export function validate(system: ResolvedSystem): ModelError[] {
  const c = new Collector();
  checkName(c, system.path, 'environment', system.environment);
  checkName(c, system.path, 'namespace', system.namespace);
  for (const s of system.services) validateService(c, system, s);

  const published = new Map<string, string>();
  for (const s of system.services) {
    s.publishedPorts.forEach((port, i) => {
      const key = `${port.hostIp}:${port.hostPort}`;
      const owner = published.get(key);
      if (owner !== undefined) {
        c.add(
          s.path,
          `publishedPorts[${i}].hostPort`,
          `got ${key}, expected a host port not already published by ${owner}`,
        );
      } else {
        published.set(key, s.path);
      }
    });
  }

  for (const secret of system.secrets) {
    checkName(c, secret.path, 'name', secret.name);
    if (secret.source.kind === 'invalid') {
      c.add(
        secret.path,
        'source',
        `got ${secret.source.got}, expected SecretSource.file(path) or SecretSource.external() (secret values never go into the model)`,
      );
    }
  }
  for (const volume of system.volumes) {
    checkName(c, volume.path, 'name', volume.name);
    const problem = volume.size.problem();
    if (problem) c.add(volume.path, 'size', problem);
  }
  const producer = system.services.find((s) => s.kind === 'producer');
  if (producer !== undefined) {
    const beyond = [
      ...(system.ingressHost !== null ? [`the ingress host ${JSON.stringify(system.ingressHost)}`] : []),
      ...producer.publishedPorts
        .filter((p) => p.hostIp !== '127.0.0.1')
        .map((p) => `port ${p.hostPort} on ${p.hostIp}`),
    ];
    if (system.apiKeysSecret === null && beyond.length > 0) {
      c.add(
        producer.path,
        'authentication',
        `got no authentication (no "api-keys" secret declared, or ProducerAuth.disabled()), expected a declared "api-keys" secret or ProducerAuth.apiKeys(secret) because the producer is published beyond localhost (${beyond.join(', ')}); npm run secrets creates the file`,
      );
    }
    if (system.ingressTls !== null) {
      if (system.ingressHost === null) {
        c.add(producer.path, 'ingressTls', 'got TLS settings without an ingress, expected ingressHost to be set too');
      }
      checkName(c, producer.path, 'ingressTls.secretName', system.ingressTls.secretName);
      if (system.ingressTls.clusterIssuer !== null) {
        checkName(c, producer.path, 'ingressTls.clusterIssuer', system.ingressTls.clusterIssuer);
      }
    }
  }
  const brokerPath = system.services.find((s) => s.kind === 'broker')?.path ?? system.path;
  const broker = system.services.find((s) => s.kind === 'broker');
  if (broker && broker.replicas > 1) {
    if (!system.secrets.some((s) => s.name === system.broker.erlangCookieSecret)) {
      c.add(
        brokerPath,
        'erlangCookieSecret',
        `got a reference to ${JSON.stringify(system.broker.erlangCookieSecret)}, expected a declared secret because a ${broker.replicas}-node cluster shares an Erlang cookie`,
      );
    }
    if (system.broker.queueType !== 'quorum') {
      c.add(
        brokerPath,
        'queueType',
        `got "${system.broker.queueType}", expected "quorum" for a ${broker.replicas}-node cluster so queues survive the loss of a node`,
      );
    }
  }
  const gapKeys = new Set<string>();
  system.acceptedGaps.forEach((gap, i) => {
    if (gap.reason.trim() === '')
      c.add(system.path, `acceptedGaps[${i}].reason`, 'got an empty reason, expected why the gap is acceptable');
    const key = `${gap.target}/${gap.feature}`;
    if (gapKeys.has(key)) c.add(system.path, `acceptedGaps[${i}]`, `got ${key} twice, expected each gap once`);
    gapKeys.add(key);
  });
  return c.errors;
}
