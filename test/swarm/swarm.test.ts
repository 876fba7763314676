import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import {
  ImageSource,
  JobSystem,
  type JobSystemProps,
  resolve,
  SecretSource,
  synthesize,
  type SynthResult,
} from '../../constructs';
import { imageBuilds, renderSwarm, secretVersions, SWARM_FEATURES, swarmTarget } from '../../constructs/swarm';
import { DEFAULT_CONTEXT } from '../../constructs/output/types';
import { defineSystem, ENVIRONMENTS, type EnvironmentName } from '../../infra/app';
import { REPO_ROOT } from '../helpers';
import { requireTool } from '../tools';

interface SwarmSecretRef {
  source: string;
  target: string;
  uid: string;
  gid: string;
  mode: number;
}
interface UpdateConfig {
  parallelism: number;
  delay?: string;
  order: string;
  failure_action: string;
  monitor: string;
  max_failure_ratio?: number;
}
interface SwarmService {
  image: string;
  build?: unknown;
  depends_on?: unknown;
  restart?: unknown;
  security_opt?: unknown;
  tmpfs?: unknown;
  command?: string[];
  user: string;
  read_only: boolean;
  cap_drop: string[];
  init: boolean;
  stop_grace_period: string;
  networks: string[];
  healthcheck: { test: string[] };
  secrets: SwarmSecretRef[];
  volumes: { type: string; source?: string; target: string }[];
  ports?: { target: number; published: number; protocol: string; mode: string }[];
  deploy: {
    mode: string;
    replicas: number;
    endpoint_mode: string;
    resources: { limits: { cpus: string; memory: string }; reservations: { cpus: string; memory: string } };
    restart_policy: { condition: string; delay: string; max_attempts: number; window: string };
    update_config: UpdateConfig;
    rollback_config: UpdateConfig;
    placement?: { constraints?: string[]; max_replicas_per_node?: number };
  };
}
interface StackFile {
  version: string;
  services: Record<string, SwarmService>;
  networks: Record<string, { driver: string; internal?: boolean; driver_opts?: Record<string, string> }>;
  volumes: Record<string, { driver: string; labels: Record<string, string> }>;
  secrets: Record<string, { name: string; file?: string; external?: boolean }>;
}

/** The environments exactly as infra/app.ts defines them (dev names a local registry and publishes in host mode). */
function swarmReadyProps(env: EnvironmentName): JobSystemProps {
  return defineSystem(env).props;
}

function swarmReadySystem(env: EnvironmentName): JobSystem {
  return new JobSystem(undefined, env, swarmReadyProps(env));
}

let synthesized: Promise<SynthResult> | undefined;
function synthSwarm(): Promise<SynthResult> {
  synthesized ??= synthesize({
    systems: ENVIRONMENTS.map(swarmReadySystem),
    targets: [swarmTarget],
    resolveOptions: { repoRoot: REPO_ROOT },
  });
  return synthesized;
}

async function stackContent(env: string): Promise<string> {
  const result = await synthSwarm();
  expect(result.errors).toEqual([]);
  const file = result.files.find((f) => f.path === `${env}/docker-stack.yml`);
  if (!file) throw new Error(`no ${env}/docker-stack.yml among ${result.files.map((f) => f.path).join(', ')}`);
  return file.content;
}

const SECRET_NAMES = ['mongo-password', 'rabbitmq-password', 'api-keys'];
const VERSION_VARIABLES = ['MONGO_PASSWORD_VERSION', 'RABBITMQ_PASSWORD_VERSION', 'API_KEYS_VERSION'];

describe.each(ENVIRONMENTS)('docker-stack.yml for %s', (env) => {
  let stack: StackFile;
  beforeAll(async () => {
    stack = parse(await stackContent(env)) as StackFile;
  });
  const services = (): [string, SwarmService][] => Object.entries(stack.services);

  test('is the only file and has the four services under their cross-target names', async () => {
    expect((await synthSwarm()).files.map((f) => f.path)).toEqual(['dev/docker-stack.yml', 'prod/docker-stack.yml']);
    expect(stack.version).toBe('3.9');
    expect(Object.keys(stack.services)).toEqual(['consumer', 'mongo', 'producer', 'rabbitmq']);
  });

  test('refers to images only: no build, and built images by their registry content tag, never latest', () => {
    const resolved = resolve(swarmReadySystem(env), { repoRoot: REPO_ROOT });
    for (const [name, s] of services()) {
      expect(s.build).toBeUndefined();
      expect(s.image).not.toMatch(/:latest$/);
      expect(s.image).toBe(resolved.services.find((r) => r.name === name)!.image.reference);
    }
    const repository = env === 'dev' ? 'localhost:5000/async-jobs' : 'ghcr.io/async-jobs';
    expect(stack.services.producer!.image).toMatch(new RegExp(`^${repository}/producer:src-[0-9a-f]{12}$`));
    expect(stack.services.consumer!.image).toMatch(new RegExp(`^${repository}/consumer:src-[0-9a-f]{12}$`));
  });

  test('has no depends_on, restart, security_opt or short tmpfs keys, which Swarm rejects or ignores', () => {
    for (const [, s] of services()) {
      expect(s.depends_on).toBeUndefined();
      expect(s.restart).toBeUndefined();
      expect(s.security_opt).toBeUndefined();
      expect(s.tmpfs).toBeUndefined();
    }
  });

  test('restarts are bounded: at most 5 in a sliding 2-minute window', () => {
    for (const [, s] of services()) {
      expect(s.deploy.restart_policy).toEqual({ condition: 'any', delay: '5s', max_attempts: 5, window: '120s' });
    }
  });

  test('a failed update rolls back, and a failed rollback pauses for a person', () => {
    for (const [, s] of services()) {
      expect(s.deploy.update_config).toMatchObject({
        parallelism: 1,
        failure_action: 'rollback',
        max_failure_ratio: 0,
      });
      expect(s.deploy.rollback_config).toMatchObject({ parallelism: 1, failure_action: 'pause' });
      expect(s.deploy.rollback_config.order).toBe(s.deploy.update_config.order);
    }
    expect(stack.services.rabbitmq!.deploy.update_config.monitor).toBe('120s');
    expect(stack.services.consumer!.deploy.update_config.monitor).toBe('40s');
  });

  test('stateless services update start-first and stateful ones stop-first, pinned to their labelled node', () => {
    expect(stack.services.consumer!.deploy.update_config.order).toBe('start-first');
    for (const name of ['rabbitmq', 'mongo']) {
      const s = stack.services[name]!;
      expect(s.deploy.update_config.order).toBe('stop-first');
      expect(s.deploy.placement!.constraints).toEqual([`node.labels.async-jobs.${name} == true`]);
      expect(s.deploy.replicas).toBe(1);
    }
    expect(stack.services.consumer!.deploy.placement?.constraints).toBeUndefined();
  });

  test('every secret has a content-versioned name and is mounted 0400 for the numeric uid and gid', () => {
    expect(stack.secrets).toEqual(
      Object.fromEntries(
        SECRET_NAMES.map((name, i) => [
          name,
          {
            name: `async-jobs-${env}_${name}-\${${VERSION_VARIABLES[i]}:?see Deploying to Docker Swarm in README.md}`,
            file: `../../.secrets/${env}/${name}`,
          },
        ]),
      ),
    );
    const uid = { rabbitmq: '999', mongo: '999', producer: '10001', consumer: '10001' } as Record<string, string>;
    for (const [name, s] of services()) {
      expect(s.secrets.length).toBeGreaterThan(0);
      for (const ref of s.secrets) {
        expect(ref).toEqual({ source: ref.source, target: ref.source, uid: uid[name], gid: uid[name], mode: 0o400 });
      }
      expect(s.user).toBe(`${uid[name]}:${uid[name]}`);
    }
    expect(stack.services.producer!.secrets.map((r) => r.source)).toEqual([
      'api-keys',
      'mongo-password',
      'rabbitmq-password',
    ]);
    expect(stack.services.consumer!.secrets.map((r) => r.source)).toEqual(['mongo-password', 'rabbitmq-password']);
  });

  test('the backend overlay is encrypted and internal; the frontend is a plain overlay', () => {
    expect(stack.networks).toEqual({
      backend: { driver: 'overlay', internal: true, driver_opts: { encrypted: '' } },
      frontend: { driver: 'overlay' },
    });
    expect(stack.services.consumer!.networks).toEqual(['backend']);
    expect(stack.services.producer!.networks).toEqual(['backend', 'frontend']);
  });

  test('keeps the hardening Swarm supports: read-only root, tmpfs mounts, no capabilities, init', () => {
    for (const [, s] of services()) {
      expect(s.read_only).toBe(true);
      expect(s.cap_drop).toEqual(['ALL']);
      expect(s.init).toBe(true);
      expect(s.volumes).toContainEqual({ type: 'tmpfs', target: '/tmp', tmpfs: { size: 64 * 1024 * 1024 } });
    }
    expect(stack.services.mongo!.volumes).toEqual([
      { type: 'volume', source: 'mongo-data', target: '/data/db' },
      { type: 'tmpfs', target: '/tmp', tmpfs: { size: 64 * 1024 * 1024 } },
    ]);
  });

  test('backend services resolve by DNS round robin, so no IPVS virtual IP is needed between services', () => {
    for (const name of ['consumer', 'mongo', 'rabbitmq']) {
      expect(stack.services[name]!.deploy.endpoint_mode).toBe('dnsrr');
    }
  });
});

describe('docker-stack.yml specifics per environment', () => {
  test('prod runs the modelled replicas and limits of the stateless services', async () => {
    const stack = parse(await stackContent('prod')) as StackFile;
    expect(stack.services.producer!.deploy.replicas).toBe(3);
    expect(stack.services.consumer!.deploy.replicas).toBe(4);
    expect(stack.services.consumer!.deploy.resources).toEqual({
      limits: { cpus: '1', memory: '512M' },
      reservations: { cpus: '0.25', memory: '256M' },
    });
    expect(stack.services.consumer!.stop_grace_period).toBe('60s');
    expect(stack.services.producer!.deploy.update_config.order).toBe('start-first');
  });

  test('dev publishes in host mode: dnsrr, one task per node and stop-first updates for the port owners', async () => {
    const stack = parse(await stackContent('dev')) as StackFile;
    const producer = stack.services.producer!;
    expect(producer.ports).toEqual([{ target: 8080, published: 8080, protocol: 'tcp', mode: 'host' }]);
    expect(producer.deploy.endpoint_mode).toBe('dnsrr');
    expect(producer.deploy.placement).toEqual({ max_replicas_per_node: 1 });
    expect(producer.deploy.update_config.order).toBe('stop-first');
    expect(stack.services.rabbitmq!.ports).toEqual([
      { target: 15672, published: 15672, protocol: 'tcp', mode: 'host' },
    ]);
  });

  test('in the default ingress mode a publishing service gets a virtual IP and start-first updates', () => {
    const props = swarmReadyProps('dev');
    const system = new JobSystem(undefined, 'dev', { ...props, swarm: {} });
    const out = renderSwarm(resolve(system, { repoRoot: REPO_ROOT }), DEFAULT_CONTEXT);
    expect(out.errors).toEqual([]);
    const stack = parse(out.files[0]!.content) as StackFile;
    const producer = stack.services.producer!;
    expect(producer.ports).toEqual([{ target: 8080, published: 8080, protocol: 'tcp', mode: 'ingress' }]);
    expect(producer.deploy.endpoint_mode).toBe('vip');
    expect(producer.deploy.placement).toBeUndefined();
    expect(producer.deploy.update_config.order).toBe('start-first');
    expect(stack.services.consumer!.deploy.endpoint_mode).toBe('dnsrr');
  });

  test('an external secret is referenced by its exact name', () => {
    const props = swarmReadyProps('prod');
    const system = new JobSystem(undefined, 'prod', {
      ...props,
      secrets: { ...props.secrets, 'mongo-password': { source: SecretSource.external() } },
    });
    const stack = parse(
      renderSwarm(resolve(system, { repoRoot: REPO_ROOT }), DEFAULT_CONTEXT).files[0]!.content,
    ) as StackFile;
    expect(stack.secrets['mongo-password']).toEqual({ name: 'mongo-password', external: true });
  });
});

describe('what the Swarm target reports', () => {
  test('it warns, naming them, that docker stack deploy ignores no-new-privileges', async () => {
    const message =
      'swarm: security_opt "no-new-privileges:true" is left out for rabbitmq, mongo, producer, consumer: docker stack ' +
      'deploy ignores security_opt, so a setuid binary in the image could gain privileges; cap_drop ALL and the ' +
      'numeric non-root user still apply';
    expect((await synthSwarm()).warnings).toEqual([`[dev] ${message}`, `[prod] ${message}`]);
  });

  test('its accepted gaps are the host IP in dev, and the broker cluster, replica set, autoscaling and ingress in prod', async () => {
    const gaps = (await synthSwarm()).acceptedGaps.map((g) => `${g.path} ${g.feature}`);
    expect(gaps).toEqual([
      'dev/rabbitmq published-port-host-ip',
      'dev/producer published-port-host-ip',
      'prod/rabbitmq broker-cluster',
      'prod/mongo database-replica-set',
      'prod/producer autoscaling',
      'prod/consumer autoscaling',
      'prod ingress-tls',
      'prod ingress',
    ]);
  });

  test('its feature table covers every row of the README table', () => {
    expect(Object.keys(SWARM_FEATURES)).toEqual([
      'replicas',
      'autoscaling',
      'health checks',
      'startup ordering',
      'secrets',
      'resource limits',
      'read-only root + tmpfs',
      'non-root user',
      'capabilities dropped',
      'no-new-privileges',
      'network isolation',
      'persistent volumes',
      'broker cluster',
      'database replica set',
      'ingress',
      'ingress tls',
      'rolling updates',
      'disruption budgets',
    ]);
    expect(SWARM_FEATURES['no-new-privileges']!.support).toBe('unsupported');
    expect(SWARM_FEATURES['startup ordering']!.support).toBe('emulated');
  });
});

describe('failing paths', () => {
  test('a built image without a registry repository is an error naming the service and the fix', async () => {
    const props = swarmReadyProps('dev');
    const system = new JobSystem(undefined, 'dev', {
      ...props,
      producer: { ...props.producer, image: ImageSource.build('services', 'producer') },
    });
    const result = await synthesize({
      systems: [system],
      targets: [swarmTarget],
      resolveOptions: { repoRoot: REPO_ROOT },
    });
    expect(result.files).toEqual([]);
    expect(result.errors).toEqual([
      "[dev] swarm: [dev/producer] image: got ImageSource.build('services', 'producer') with no registry repository, " +
        "expected one such as ImageSource.build('services', 'producer', 'localhost:5000/async-jobs/producer'); " +
        'docker stack deploy ignores build:, so every node must pull the image from a registry',
    ]);
  });

  test('the gaps are errors until the model accepts them', async () => {
    const prod = defineSystem('prod').props;
    const dev = swarmReadyProps('dev');
    const result = await synthesize({
      systems: [
        new JobSystem(undefined, 'dev', { ...dev, acceptedGaps: [] }),
        new JobSystem(undefined, 'prod', { ...prod, acceptedGaps: [] }),
      ],
      targets: [swarmTarget],
      resolveOptions: { repoRoot: REPO_ROOT },
    });
    const accept = (feature: string): string =>
      `accept it in the model with acceptedGaps: [{ target: 'swarm', feature: '${feature}', reason: '…' }] or change the model`;
    expect(result.errors).toEqual([
      '[dev/rabbitmq] swarm cannot express "published-port-host-ip": it publishes port 15672 on every interface of the ' +
        `node instead of only 127.0.0.1 (the stack file format has no host_ip); ${accept('published-port-host-ip')}`,
      '[dev/producer] swarm cannot express "published-port-host-ip": it publishes port 8080 on every interface of the ' +
        `node instead of only 127.0.0.1 (the stack file format has no host_ip); ${accept('published-port-host-ip')}`,
      `[prod/rabbitmq] swarm cannot express "broker-cluster": it runs 1 RabbitMQ node instead of a 3-node cluster; ${accept('broker-cluster')}`,
      `[prod/mongo] swarm cannot express "database-replica-set": it runs 1 MongoDB member instead of a 3-member replica set; ${accept('database-replica-set')}`,
      '[prod/producer] swarm cannot express "autoscaling": it runs a fixed 3 replicas instead of scaling from 3 to 10 ' +
        `(Swarm has no autoscaler); ${accept('autoscaling')}`,
      '[prod/consumer] swarm cannot express "autoscaling": it runs a fixed 4 replicas instead of scaling from 4 to 20 ' +
        `(Swarm has no autoscaler); ${accept('autoscaling')}`,
      '[prod] swarm cannot express "ingress-tls": it cannot terminate TLS for jobs.example.com (the routing mesh ' +
        `forwards TCP only; terminate TLS in the proxy in front of the producer); ${accept('ingress-tls')}`,
      '[prod] swarm cannot express "ingress": it has no HTTP ingress for jobs.example.com (its routing mesh is TCP only; ' +
        `put a reverse proxy or load balancer in front of the producer); ${accept('ingress')}`,
    ]);
  });

  test('a secret whose Swarm name would pass 64 characters is an error', () => {
    const props = swarmReadyProps('prod');
    const system = new JobSystem(undefined, 'prod', {
      ...props,
      namespace: 'async-jobs-production-eu-west-1-blue',
    });
    const out = renderSwarm(resolve(system, { repoRoot: REPO_ROOT }), DEFAULT_CONTEXT);
    expect(out.errors).toEqual([
      '[prod/secrets/rabbitmq-password] name: got "rabbitmq-password", which makes the Swarm secret name ' +
        'async-jobs-production-eu-west-1-blue_rabbitmq-password-<version> 67 characters long, expected at most 64 ' +
        '(shorten the secret name or the namespace)',
    ]);
  });
});

describe('the deploy-time helpers behind npm run images', () => {
  test('images are built from the synthesized Dockerfiles with the build context and tagged by content', () => {
    const resolved = resolve(swarmReadySystem('prod'), { repoRoot: REPO_ROOT });
    const builds = imageBuilds(resolved);
    expect(builds.map((b) => ({ ...b, reference: b.reference.replace(/src-[0-9a-f]{12}$/, 'src-<hash>') }))).toEqual([
      {
        services: ['producer'],
        reference: 'ghcr.io/async-jobs/producer:src-<hash>',
        repository: 'ghcr.io/async-jobs/producer',
        dockerfile: 'dist/prod/producer.Dockerfile',
        context: 'services',
      },
      {
        services: ['consumer'],
        reference: 'ghcr.io/async-jobs/consumer:src-<hash>',
        repository: 'ghcr.io/async-jobs/consumer',
        dockerfile: 'dist/prod/consumer.Dockerfile',
        context: 'services',
      },
    ]);
  });

  test("secret versions are the first 12 hex digits of each file secret's SHA-256, and a missing file is named", () => {
    const root = mkdtempSync(join(tmpdir(), 'swarm-secrets-'));
    try {
      mkdirSync(join(root, '.secrets', 'dev'), { recursive: true });
      writeFileSync(join(root, '.secrets', 'dev', 'mongo-password'), 's3cret');
      const resolved = resolve(swarmReadySystem('dev'), { repoRoot: REPO_ROOT });
      const { versions, errors } = secretVersions(resolved, root);
      const digest = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 12);
      expect(versions).toEqual([
        { secret: 'mongo-password', variable: 'MONGO_PASSWORD_VERSION', value: digest('s3cret') },
      ]);
      expect(errors).toEqual([
        '[dev/secrets/api-keys] source: got ".secrets/dev/api-keys", which does not exist, ' +
          "expected the secret's file (create it, or run npm run secrets -- dev)",
        '[dev/secrets/rabbitmq-password] source: got ".secrets/dev/rabbitmq-password", which does not exist, ' +
          "expected the secret's file (create it, or run npm run secrets -- dev)",
      ]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('docker stack config (the docker client validates offline, no daemon needed)', () => {
  const dockerTest = requireTool('docker', 'apt-get install docker.io (the client is enough)');
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'swarm-stack-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const versions = Object.fromEntries(VERSION_VARIABLES.map((v, i) => [v, `v${i}abc`]));
  const write = async (env: string): Promise<string> => {
    mkdirSync(join(dir, env), { recursive: true });
    const file = join(dir, env, 'docker-stack.yml');
    writeFileSync(file, await stackContent(env));
    return file;
  };
  const stackConfig = (file: string, env: Record<string, string>) => {
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.endsWith('_VERSION')));
    const result = spawnSync('docker', ['stack', 'config', '-c', file], {
      encoding: 'utf8',
      env: { ...clean, ...env },
    });
    return {
      status: result.status,
      stdout: result.stdout,
      stderr: result.stderr,
      output: `${result.stdout}${result.stderr}`,
    };
  };

  dockerTest.each(ENVIRONMENTS)('accepts the %s stack once the secret versions are set', async (env) => {
    const result = stackConfig(await write(env), versions);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    // What docker itself parsed: the keys that matter survived its v3 schema and types.
    const config = parse(result.stdout) as StackFile;
    expect(config.secrets['mongo-password']!.name).toBe(`async-jobs-${env}_mongo-password-v0abc`);
    expect(Object.keys(config.services)).toEqual(['consumer', 'mongo', 'producer', 'rabbitmq']);
    const consumer = config.services.consumer!;
    expect(consumer.deploy.endpoint_mode).toBe('dnsrr');
    expect(consumer.deploy.restart_policy.max_attempts).toBe(5);
    expect(consumer.deploy.update_config.failure_action).toBe('rollback');
    expect(consumer.secrets[0]).toEqual({
      source: 'mongo-password',
      target: 'mongo-password',
      uid: '10001',
      gid: '10001',
      mode: 0o400,
    });
    // The size survived docker's own parsing (the v3 schema takes it in bytes).
    expect(consumer.volumes).toEqual([{ type: 'tmpfs', target: '/tmp', tmpfs: { size: 64 * 1024 * 1024 } }]);
    expect(config.networks.backend).toEqual({ driver: 'overlay', internal: true, driver_opts: { encrypted: '' } });
  });

  dockerTest('refuses the stack while a secret version is unset, pointing at the README', async () => {
    const result = stackConfig(await write('prod'), {});
    expect(result.status).not.toBe(0);
    expect(result.output).toMatch(
      /required variable (API_KEYS|MONGO_PASSWORD|RABBITMQ_ERLANG_COOKIE|RABBITMQ_PASSWORD)_VERSION is missing a value: see Deploying to Docker Swarm in README\.md/,
    );
  });

  dockerTest('rejects the long depends_on form that Compose uses, which is why the stack has none', () => {
    const file = join(dir, 'depends-on.yml');
    writeFileSync(
      file,
      'version: "3.9"\nservices:\n  a:\n    image: a:1\n    depends_on:\n      b:\n        condition: service_healthy\n  b:\n    image: b:1\n',
    );
    const result = stackConfig(file, {});
    expect(result.status).not.toBe(0);
    expect(result.output).toContain('services.a.depends_on must be a list');
  });
});
