import { Duration, JobSystem, SecretSource, resolve } from '../../constructs/model';
import { defineSystem } from '../../infra/app';

const tag = { imageTag: () => 'src-000000000000' };

function minimal(): JobSystem {
  return new JobSystem(undefined, 'test', {
    secrets: {
      'mongo-password': { source: SecretSource.file('.secrets/test/mongo-password') },
      'rabbitmq-password': { source: SecretSource.file('.secrets/test/rabbitmq-password') },
    },
  });
}

describe('model defaults', () => {
  test('a minimal system resolves to the four services in a fixed order with their names', () => {
    const r = resolve(minimal(), tag);
    expect(r.services.map((s) => `${s.kind}:${s.name}`)).toEqual([
      'broker:rabbitmq',
      'database:mongo',
      'producer:producer',
      'consumer:consumer',
    ]);
    expect(r.namespace).toBe('async-jobs-test');
  });

  test('services run as numeric non-root users with a read-only root filesystem and a writable /tmp', () => {
    const r = resolve(minimal(), tag);
    for (const s of r.services) {
      expect(s.security.readOnlyRootFilesystem).toBe(true);
      expect(s.security.tmpfs).toEqual(['/tmp']);
      expect(s.security.tmpfsSize.toKubernetes()).toBe('64Mi');
    }
    const byName = Object.fromEntries(r.services.map((s) => [s.name, s.security.user]));
    expect(byName).toEqual({ rabbitmq: 999, mongo: 999, producer: 10001, consumer: 10001 });
  });

  test('the services get connection strings without passwords and the passwords as files', () => {
    const consumer = resolve(minimal(), tag).services.find((s) => s.name === 'consumer')!;
    const env = Object.fromEntries(consumer.env.map((e) => [e.name, e.value]));
    expect(env.AMQP_URL).toBe('amqp://app@rabbitmq:5672/%2F');
    expect(env.MONGO_URL).toBe('mongodb://app@mongo:27017/jobs?authSource=admin');
    expect(env.PREFETCH).toBe('10');
    expect(env.CONCURRENCY).toBe('10');
    expect([env.GROUP_COMMIT_MAX_SIZE, env.GROUP_COMMIT_MAX_WAIT_MS]).toEqual(['100', '2']);
    expect(consumer.secrets).toEqual([
      { secret: 'mongo-password', fileEnv: 'MONGO_PASSWORD_FILE', path: '/run/secrets/mongo-password' },
      { secret: 'rabbitmq-password', fileEnv: 'AMQP_PASSWORD_FILE', path: '/run/secrets/rabbitmq-password' },
    ]);
  });

  test('group commit bounds reach both services as the GROUP_COMMIT_* variables the services read', () => {
    const system = new JobSystem(undefined, 'test', {
      producer: { groupCommit: { maxBatchSize: 1, maxWaitMs: 0 } },
      consumer: { groupCommit: { maxWaitMs: 5 } },
    });
    const env = (name: string): Record<string, string> =>
      Object.fromEntries(
        resolve(system, tag)
          .services.find((s) => s.name === name)!
          .env.map((e) => [e.name, e.value]),
      );
    expect(env('producer')).toMatchObject({ GROUP_COMMIT_MAX_SIZE: '1', GROUP_COMMIT_MAX_WAIT_MS: '0' });
    expect(env('consumer')).toMatchObject({ GROUP_COMMIT_MAX_SIZE: '100', GROUP_COMMIT_MAX_WAIT_MS: '5' });
  });

  test('built images get a content tag and a local name when no repository is given', () => {
    const producer = resolve(minimal(), tag).services.find((s) => s.name === 'producer')!;
    expect(producer.image).toEqual({
      kind: 'build',
      context: 'services',
      service: 'producer',
      repository: null,
      localName: 'async-jobs/producer',
      tag: 'src-000000000000',
      reference: 'async-jobs/producer:src-000000000000',
    });
  });

  test('only services reachable from outside join the frontend network', () => {
    const r = resolve(defineSystem('dev'), tag);
    expect(Object.fromEntries(r.services.map((s) => [s.name, s.networks]))).toEqual({
      rabbitmq: ['backend', 'frontend'],
      mongo: ['backend'],
      producer: ['backend', 'frontend'],
      consumer: ['backend'],
    });
    expect(r.networks).toEqual([
      { name: 'backend', internal: true },
      { name: 'frontend', internal: false },
    ]);
  });

  test('a three-node broker defaults to quorum queues', () => {
    const system = new JobSystem(undefined, 'test', { broker: { replicas: 3 } });
    expect(resolve(system, tag).broker.queueType).toBe('quorum');
  });

  test('dev and prod differ in replicas, resources, published ports and image pinning', () => {
    const dev = resolve(defineSystem('dev'), tag);
    const prod = resolve(defineSystem('prod'), tag);
    const replicas = (r: typeof dev) => Object.fromEntries(r.services.map((s) => [s.name, s.replicas]));
    expect(replicas(dev)).toEqual({ rabbitmq: 1, mongo: 1, producer: 1, consumer: 1 });
    expect(replicas(prod)).toEqual({ rabbitmq: 3, mongo: 3, producer: 3, consumer: 4 });
    expect(prod.highlyAvailable).toBe(true);
    expect(dev.services.flatMap((s) => s.publishedPorts.map((p) => `${p.hostIp}:${p.hostPort}`))).toEqual([
      '127.0.0.1:15672',
      '127.0.0.1:8080',
    ]);
    expect(prod.services.flatMap((s) => s.publishedPorts)).toEqual([]);
    expect(prod.services.filter((s) => s.image.kind === 'build').map((s) => s.image.reference)).toEqual([
      'ghcr.io/async-jobs/producer:src-000000000000',
      'ghcr.io/async-jobs/consumer:src-000000000000',
    ]);
    const consumer = prod.services.find((s) => s.name === 'consumer')!;
    expect(consumer.terminationGracePeriodSeconds).toBe(Duration.seconds(60).seconds);
    expect(consumer.drainTimeoutSeconds).toBe(50);
  });
});
