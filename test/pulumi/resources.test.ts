import { containerEnvs, healthWaitSeconds, pulumiGaps, scopedName, secretConfigKey } from '../../constructs/pulumi';
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
  volumes: { volumeName: string; containerPath: string }[];
  mounts: { type: string; target: string }[];
  uploads: { file: string; content: string; owner: string; group: string; permissions: string }[];
  wait: boolean;
  waitTimeout: number;
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
    expect(names(TYPES.network)).toEqual(['backend-network', 'frontend-network']);
    expect(names(TYPES.volume)).toEqual(['mongo-data-volume', 'rabbitmq-data-volume']);
    expect(names(TYPES.image)).toEqual(['consumer-image', 'producer-image']);
    expect(names(TYPES.remoteImage)).toEqual(['mongo-image', 'rabbitmq-image']);
    const expected = system.services.flatMap((s) =>
      Array.from({ length: s.stateful ? 1 : s.replicas }, (_u, i) => `${s.name}-${i}`),
    );
    expect(names(TYPES.container)).toEqual(expected.sort());
    expect(d.recorder.resources).toHaveLength(1 + 2 + 2 + 2 + 2 + expected.length);
  });

  test("the consumer runs the model's replica count of containers, each named <namespace>-<service>-<i>", () => {
    const consumer = service(system, 'consumer');
    const containers = d.recorder.ofType(TYPES.container).filter((r) => r.name.startsWith('consumer-'));
    expect(containers).toHaveLength(consumer.replicas);
    expect(containers.map((c) => inputsOf(c).name).sort()).toEqual(
      Array.from({ length: consumer.replicas }, (_u, i) => `async-jobs-${env}-consumer-${i}`),
    );
    expect(d.containerNames).toEqual(
      d.recorder
        .ofType(TYPES.container)
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

  test('built images use the synthesized Dockerfiles, the services/ context and content tags; registry images are pinned', () => {
    for (const name of ['producer', 'consumer']) {
      const s = service(system, name);
      if (s.image.kind !== 'build') throw new Error('expected a build image');
      expect(s.image.tag).toMatch(/^src-[0-9a-f]{12}$/);
      expect(plain(d.recorder.named(TYPES.image, `${name}-image`).inputs)).toEqual({
        imageName: s.image.reference,
        build: { context: 'services', dockerfile: `dist/${env}/${name}.Dockerfile`, builderVersion: 'BuilderBuildKit' },
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
    for (const r of d.recorder.ofType(TYPES.container)) {
      const index = Number(r.name.slice(r.name.lastIndexOf('-') + 1));
      const s = service(system, r.name.slice(0, r.name.lastIndexOf('-')));
      const c = inputsOf(r);
      const hc = s.healthCheck;
      expect(c.image).toBe(s.image.kind === 'build' ? s.image.reference : `sha256:id-of-${s.image.reference}`);
      expect(c.command).toEqual(s.command.length > 0 ? s.command : undefined);
      expect(c.envs).toEqual(containerEnvs(s));
      expect(c.healthcheck).toEqual({
        tests: ['CMD', ...hc.command],
        interval: `${hc.intervalSeconds}s`,
        timeout: `${hc.timeoutSeconds}s`,
        retries: hc.retries,
        startPeriod: `${hc.startPeriodSeconds}s`,
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
        cpus: s.resources.cpuLimit.toDocker(),
        readOnly: true,
        tmpfs: { '/tmp': '' },
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
      expect(c.volumes).toEqual(
        s.volumeMounts.map((m) => ({ volumeName: scopedName(system, m.volume), containerPath: m.path })),
      );
      expect(d.recorder.options.get(r.name)).toMatchObject({
        deleteBeforeReplace: true,
        additionalSecretOutputs: ['uploads'],
      });
    }
  });

  test('producer and consumers depend on the broker and database containers, which wait until healthy', () => {
    for (const r of d.recorder.ofType(TYPES.container)) {
      const s = service(system, r.name.slice(0, r.name.lastIndexOf('-')));
      expect({ container: r.name, dependsOn: d.recorder.options.get(r.name)?.dependsOn }).toEqual({
        container: r.name,
        dependsOn: s.kind === 'producer' || s.kind === 'consumer' ? ['rabbitmq-0', 'mongo-0'] : [],
      });
    }
    expect(inputsOf(d.recorder.named(TYPES.container, 'rabbitmq-0')).wait).toBe(true);
    expect(inputsOf(d.recorder.named(TYPES.container, 'mongo-0')).wait).toBe(true);
  });

  test('secrets arrive as files in /run/secrets, owned by the container user with mode 0400, never as env values', () => {
    for (const r of d.recorder.ofType(TYPES.container)) {
      const s = service(system, r.name.slice(0, r.name.lastIndexOf('-')));
      const c = inputsOf(r);
      expect(c.uploads).toEqual(
        s.secrets.map((use) => ({
          file: `/run/secrets/${use.secret}`,
          content: sentinel(use.secret),
          owner: String(s.security.user),
          group: String(s.security.group),
          permissions: '0400',
        })),
      );
      expect(c.mounts).toEqual([{ type: 'volume', target: '/run/secrets' }]);
      for (const use of s.secrets) expect(c.envs).toContain(`${use.fileEnv}=/run/secrets/${use.secret}`);
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
      expect([...new Set(carriers.map((r) => r.name.slice(0, r.name.lastIndexOf('-'))))].sort()).toEqual(users.sort());
      for (const r of carriers) expect(secretOccurrences(r.inputs, sentinel(secret))).toEqual(['.uploads']);
    }
  });

  test("a container's uploads output is secret and its envs output is not", async () => {
    for (const list of Object.values(d.component.containers)) {
      for (const c of list) {
        expect((await settle(c.uploads)).secret).toBe(true);
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
