import { join } from 'node:path';
import {
  containerEnvs,
  goDuration,
  healthWaitSeconds,
  providerCpus,
  pulumiGaps,
  scopedName,
  secretConfigKey,
} from '../../constructs/pulumi';
import { REPO_ROOT } from '../helpers';
import type { ResolvedService, ResolvedSystem } from '../../constructs/model';
import {
  deploy,
  plain,
  plaintextOccurrences,
  resolvedSystem,
  secretOccurrences,
  sentinel,
  settle,
  TYPES,
  type Deployment,
  type RecordedResource,
} from './harness';

/** Prod as a single Docker host can run it: the gaps the lead has to accept in infra/app.ts. */
const PROD_PULUMI_GAPS = ['autoscaling', 'broker-cluster', 'database-replica-set', 'ingress', 'ingress-tls'];

interface ContainerInputs {
  name: string;
  image: string;
  command?: string[];
  envs: string[];
  healthcheck: { tests: string[]; interval: string; timeout: string; retries: number; startPeriod: string };
  restart: string;
  maxRetryCount: number;
  memory: number;
  memoryReservation: number;
  memorySwap: number;
  cpus: string;
  cpuShares: number;
  readOnly: boolean;
  tmpfs: Record<string, string>;
  capabilities: { drops: string[] };
  securityOpts: string[];
  user: string;
  init: boolean;
  stopTimeout: number;
  networksAdvanced: { name: string; aliases: string[] }[];
  ports: { internal: number; external: number; ip: string; protocol: string }[];
  volumes: { volumeName: string; containerPath: string; readOnly?: boolean }[];
  mounts?: unknown;
  uploads?: { file: string; content: string; permissions: string }[];
  wait: boolean;
  waitTimeout: number;
  labels: { label: string; value: string }[];
}

interface WriterInputs {
  name: string;
  image: string;
  entrypoints: string[];
  command: string[];
  user: string;
  networkMode: string;
  readOnly: boolean;
  capabilities: { drops: string[]; adds: string[] };
  securityOpts: string[];
  healthcheck: Record<string, unknown>;
  restart: string;
  volumes: { volumeName: string; containerPath: string }[];
  uploads: { file: string; content: string; permissions: string }[];
  mustRun: boolean;
  attach: boolean;
  labels: { label: string; value: string }[];
}

function inputsOf(r: RecordedResource): ContainerInputs {
  return plain(r.inputs) as ContainerInputs;
}

function service(system: ResolvedSystem, name: string): ResolvedService {
  const s = system.services.find((x) => x.name === name);
  if (!s) throw new Error(`no service ${name}`);
  return s;
}

describe.each([
  { env: 'dev' as const, accept: [] as string[] },
  { env: 'prod' as const, accept: PROD_PULUMI_GAPS },
])('the Pulumi program for $env', ({ env, accept }) => {
  const system = resolvedSystem(env, accept);
  let d: Deployment;
  beforeAll(async () => {
    d = await deploy(system);
  });

  test('one component holds every resource, and every resource is its child', () => {
    const components = d.recorder.ofType(TYPES.component);
    expect(components.map((c) => c.name)).toEqual([`async-jobs-${env}`]);
    for (const r of d.recorder.resources.filter((x) => x.type !== TYPES.component)) {
      expect({ name: r.name, parent: d.recorder.options.get(r.name)?.parent }).toEqual({
        name: r.name,
        parent: `async-jobs-${env}`,
      });
    }
  });

  test('the resource graph has the networks, volumes, images and one container per replica', () => {
    const names = (type: string): string[] =>
      d.recorder
        .ofType(type)
        .map((r) => r.name)
        .sort();
    const withSecrets = system.services.filter((s) => s.secrets.length > 0).map((s) => s.name);
    expect(withSecrets.sort()).toEqual(['consumer', 'mongo', 'producer', 'rabbitmq']);
    expect(names(TYPES.network)).toEqual(['backend-network', 'frontend-network']);
    expect(names(TYPES.volume)).toEqual(
      ['mongo-data-volume', 'rabbitmq-data-volume', ...withSecrets.map((n) => `${n}-secrets-volume`)].sort(),
    );
    expect(names(TYPES.image)).toEqual(['consumer-image', 'producer-image']);
    expect(names(TYPES.remoteImage)).toEqual(['mongo-image', 'rabbitmq-image']);
    const expected = system.services.flatMap((s) =>
      Array.from({ length: s.stateful ? 1 : s.replicas }, (_u, i) => `${s.name}-${i}`),
    );
    expect(
      d.recorder
        .serviceContainers()
        .map((r) => r.name)
        .sort(),
    ).toEqual(expected.sort());
    expect(
      d.recorder
        .secretsWriters()
        .map((r) => r.name)
        .sort(),
    ).toEqual(withSecrets.map((n) => `${n}-secrets`).sort());
    expect(d.recorder.resources).toHaveLength(1 + 2 + 2 + 4 + 2 + 2 + 4 + expected.length);
  });

  test("the consumer runs the model's replica count of containers, each named <namespace>-<service>-<i>", () => {
    const consumer = service(system, 'consumer');
    const containers = d.recorder.serviceContainers().filter((r) => r.name.startsWith('consumer-'));
    expect(containers).toHaveLength(consumer.replicas);
    expect(containers.map((c) => inputsOf(c).name).sort()).toEqual(
      Array.from({ length: consumer.replicas }, (_u, i) => `async-jobs-${env}-consumer-${i}`),
    );
    expect(d.containerNames).toEqual(
      d.recorder
        .serviceContainers()
        .map((c) => inputsOf(c).name)
        .sort(),
    );
  });

  test('the backend network is internal and the frontend is not', () => {
    const net = (n: string) => plain(d.recorder.named(TYPES.network, `${n}-network`).inputs) as Record<string, unknown>;
    expect(net('backend')).toMatchObject({ name: `async-jobs-${env}-backend`, internal: true, driver: 'bridge' });
    expect(net('frontend')).toMatchObject({ name: `async-jobs-${env}-frontend`, internal: false, driver: 'bridge' });
  });

  test('data volumes are protected from deletion and replaced only by deleting first', () => {
    for (const v of system.volumes) {
      expect(plain(d.recorder.named(TYPES.volume, `${v.name}-volume`).inputs)).toMatchObject({
        name: `async-jobs-${env}-${v.name}`,
      });
      expect(d.recorder.options.get(`${v.name}-volume`)).toMatchObject({
        protect: v.retain,
        deleteBeforeReplace: true,
      });
    }
  });

  test('built images use the synthesized Dockerfiles and the services/ context by absolute path, and content tags; registry images are pinned', () => {
    for (const name of ['producer', 'consumer']) {
      const s = service(system, name);
      if (s.image.kind !== 'build') throw new Error('expected a build image');
      expect(s.image.tag).toMatch(/^src-[0-9a-f]{12}$/);
      expect(plain(d.recorder.named(TYPES.image, `${name}-image`).inputs)).toEqual({
        imageName: s.image.reference,
        build: {
          context: join(REPO_ROOT, 'services'),
          dockerfile: join(REPO_ROOT, 'dist', env, `${name}.Dockerfile`),
          builderVersion: 'BuilderBuildKit',
        },
        skipPush: true,
        // The SDK's default: `pulumi preview` does not build.
        buildOnPreview: false,
      });
    }
    for (const name of ['rabbitmq', 'mongo']) {
      expect(plain(d.recorder.named(TYPES.remoteImage, `${name}-image`).inputs)).toEqual({
        name: service(system, name).image.reference,
        keepLocally: true,
      });
    }
  });

  test("every container runs its service's image, env, ports, health check, limits, security settings and aliases", () => {
    for (const r of d.recorder.serviceContainers()) {
      const index = Number(r.name.slice(r.name.lastIndexOf('-') + 1));
      const s = service(system, r.name.slice(0, r.name.lastIndexOf('-')));
      const c = inputsOf(r);
      const hc = s.healthCheck;
      expect(c.image).toBe(s.image.kind === 'build' ? s.image.reference : `sha256:id-of-${s.image.reference}`);
      expect(c.command).toEqual(s.command.length > 0 ? s.command : undefined);
      expect(c.envs).toEqual(containerEnvs(s));
      expect(c.healthcheck).toEqual({
        tests: ['CMD', ...hc.command],
        interval: goDuration(hc.intervalSeconds),
        timeout: goDuration(hc.timeoutSeconds),
        retries: hc.retries,
        startPeriod: goDuration(hc.startPeriodSeconds),
      });
      expect(c.ports).toEqual(
        index === 0
          ? s.publishedPorts.map((p) => ({
              internal: p.containerPort,
              external: p.hostPort,
              ip: p.hostIp,
              protocol: 'tcp',
            }))
          : [],
      );
      expect(c).toMatchObject({
        restart: 'on-failure',
        maxRetryCount: 5,
        memory: s.resources.memoryLimit.mebibytes,
        memoryReservation: s.resources.memoryRequest.mebibytes,
        memorySwap: 2 * s.resources.memoryLimit.mebibytes,
        cpus: providerCpus(s.resources.cpuLimit),
        readOnly: true,
        // The model's tmpfsSize, in Docker's spelling (binary M), as Compose and Swarm have it.
        tmpfs: { '/tmp': 'size=64M' },
        capabilities: { drops: ['ALL'] },
        securityOpts: ['no-new-privileges:true'],
        user: `${s.security.user}:${s.security.group}`,
        init: true,
        stopTimeout: s.terminationGracePeriodSeconds,
        wait: true,
        waitTimeout: healthWaitSeconds(hc),
      });
      expect(c.networksAdvanced).toEqual(
        [...s.networks].sort().map((n) => ({ name: scopedName(system, n), aliases: [s.name] })),
      );
      expect(c.volumes).toEqual([
        ...s.volumeMounts.map((m) => ({ volumeName: scopedName(system, m.volume), containerPath: m.path })),
        { volumeName: scopedName(system, `${s.name}-secrets`), containerPath: '/run/secrets', readOnly: true },
      ]);
      expect(d.recorder.options.get(r.name)).toMatchObject({
        deleteBeforeReplace: true,
        additionalSecretOutputs: [],
        replaceWith: [`${s.name}-secrets`],
      });
    }
  });

  test('producer and consumers depend on the broker and database containers, which wait until healthy, and every container on its secrets writer', () => {
    for (const r of d.recorder.serviceContainers()) {
      const s = service(system, r.name.slice(0, r.name.lastIndexOf('-')));
      expect({ container: r.name, dependsOn: d.recorder.options.get(r.name)?.dependsOn }).toEqual({
        container: r.name,
        dependsOn: [
          ...(s.kind === 'producer' || s.kind === 'consumer' ? ['rabbitmq-0', 'mongo-0'] : []),
          `${s.name}-secrets`,
        ],
      });
    }
    expect(inputsOf(d.recorder.named(TYPES.container, 'rabbitmq-0')).wait).toBe(true);
    expect(inputsOf(d.recorder.named(TYPES.container, 'mongo-0')).wait).toBe(true);
  });

  test('secrets arrive as files in /run/secrets, mode 0400, handed to the service user by a writer container; never as env values', () => {
    for (const r of d.recorder.serviceContainers()) {
      const s = service(system, r.name.slice(0, r.name.lastIndexOf('-')));
      const c = inputsOf(r);
      expect({ container: r.name, uploads: c.uploads, mounts: c.mounts }).toEqual({ container: r.name });
      expect(c.labels).toContainEqual({
        label: 'io.async-jobs.secrets-from',
        value: `async-jobs-${env}-${s.name}-secrets`,
      });
      for (const use of s.secrets) expect(c.envs).toContain(`${use.fileEnv}=/run/secrets/${use.secret}`);
    }
    for (const r of d.recorder.secretsWriters()) {
      const s = service(system, r.name.replace(/-secrets$/, ''));
      const w = plain(r.inputs) as WriterInputs;
      const image = d.recorder.serviceContainers().find((c) => c.name === `${s.name}-0`);
      expect(w).toEqual({
        name: `async-jobs-${env}-${s.name}-secrets`,
        image: image && inputsOf(image).image,
        entrypoints: ['chown'],
        command: ['-R', `${s.security.user}:${s.security.group}`, '/run/secrets'],
        user: '0:0',
        networkMode: 'none',
        readOnly: false,
        capabilities: { drops: ['ALL'], adds: ['CHOWN'] },
        securityOpts: ['no-new-privileges:true'],
        healthcheck: {
          tests: ['NONE'],
          interval: '0s',
          timeout: '0s',
          startPeriod: '0s',
          startInterval: '0s',
          retries: 0,
        },
        restart: 'no',
        volumes: [{ volumeName: `async-jobs-${env}-${s.name}-secrets`, containerPath: '/run/secrets' }],
        uploads: s.secrets.map((use) => ({
          file: `/run/secrets/${use.secret}`,
          content: sentinel(use.secret),
          permissions: '0400',
        })),
        mustRun: false,
        attach: true,
        labels: [
          { label: 'io.async-jobs.environment', value: env },
          { label: 'io.async-jobs.secrets-of', value: s.name },
        ],
      });
      expect(d.recorder.options.get(r.name)).toMatchObject({
        deleteBeforeReplace: true,
        additionalSecretOutputs: ['uploads'],
        replaceWith: [`${s.name}-secrets-volume`],
        protect: false,
      });
      expect(d.recorder.options.get(`${s.name}-secrets-volume`)).toMatchObject({ protect: false });
    }
  });

  test('no secret value appears in plaintext in any resource input, and each reaches its containers marked secret', () => {
    const secrets = [...new Set(system.services.flatMap((s) => s.secrets.map((u) => u.secret)))];
    expect(secrets.map(secretConfigKey).sort()).toEqual(['apiKeys', 'mongoPassword', 'rabbitmqPassword']);
    for (const secret of secrets) {
      for (const r of d.recorder.resources) {
        expect({ resource: r.name, plaintext: plaintextOccurrences(r.inputs, sentinel(secret)) }).toEqual({
          resource: r.name,
          plaintext: [],
        });
      }
      const users = system.services.filter((s) => s.secrets.some((u) => u.secret === secret)).map((s) => s.name);
      const carriers = d.recorder.resources.filter((r) => secretOccurrences(r.inputs, sentinel(secret)).length > 0);
      expect(carriers.map((r) => r.name).sort()).toEqual(users.map((u) => `${u}-secrets`).sort());
      for (const r of carriers) {
        expect({ carrier: r.name, at: secretOccurrences(r.inputs, sentinel(secret)) }).toEqual({
          carrier: r.name,
          at: ['.uploads'],
        });
      }
    }
  });

  test('only the secrets writers carry secrets; the services keep them out of envs and state in plaintext', async () => {
    for (const r of d.recorder.serviceContainers()) {
      expect({ container: r.name, secret: secretOccurrences(r.inputs, 'SENTINEL') }).toEqual({
        container: r.name,
        secret: [],
      });
    }
    for (const list of Object.values(d.component.containers)) {
      for (const c of list) {
        const envs = await settle(c.envs);
        expect(envs.secret).toBe(false);
        expect(JSON.stringify(envs.value)).not.toContain('SENTINEL');
      }
    }
  });

  test('stack outputs name the producer URL, the management URL when enabled and every container, with no secret', async () => {
    const producerUrl = await settle(d.outputs.producerUrl);
    expect(producerUrl.secret).toBe(false);
    if (env === 'dev') {
      expect(producerUrl.value).toBe('http://127.0.0.1:8080');
      expect(d.outputs.rabbitmqManagementUrl).toBeDefined();
      expect(await settle(d.outputs.rabbitmqManagementUrl!)).toEqual({
        value: 'http://127.0.0.1:15672',
        secret: false,
      });
    } else {
      // No published port in prod: the first producer container's address on the frontend network (mock IPs).
      expect(producerUrl.value).toMatch(/^http:\/\/172\.30\.1\.\d+:8080$/);
      expect(d.outputs.rabbitmqManagementUrl).toBeUndefined();
    }
    expect(JSON.stringify(d.containerNames)).not.toContain('SENTINEL');
  });
});

describe('gaps of the Pulumi target', () => {
  test('dev has none', () => {
    expect(pulumiGaps(resolvedSystem('dev'))).toEqual([]);
  });

  test('prod reports the broker cluster, the replica set, autoscaling and the ingress', () => {
    expect(pulumiGaps(resolvedSystem('prod'))).toEqual([
      {
        target: 'pulumi',
        feature: 'broker-cluster',
        path: 'prod/rabbitmq',
        detail: 'runs 1 RabbitMQ container instead of a 3-node cluster',
      },
      {
        target: 'pulumi',
        feature: 'database-replica-set',
        path: 'prod/mongo',
        detail: 'runs 1 MongoDB container instead of a 3-member replica set',
      },
      {
        target: 'pulumi',
        feature: 'autoscaling',
        path: 'prod/producer',
        detail: 'runs a fixed 3 containers instead of scaling from 3 to 10',
      },
      {
        target: 'pulumi',
        feature: 'autoscaling',
        path: 'prod/consumer',
        detail: 'runs a fixed 4 containers instead of scaling from 4 to 20',
      },
      {
        target: 'pulumi',
        feature: 'ingress-tls',
        path: 'prod',
        detail:
          'cannot terminate TLS for jobs.example.com (the Docker provider runs containers, no TLS-terminating proxy; terminate TLS in the proxy in front of the producer)',
      },
      {
        target: 'pulumi',
        feature: 'ingress',
        path: 'prod',
        detail: 'has no ingress for jobs.example.com (put a reverse proxy in front of the producer)',
      },
    ]);
  });
});
