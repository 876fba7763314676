import {
  Cpu,
  Duration,
  ImageSource,
  JobSystem,
  type JobSystemProps,
  Memory,
  QueueType,
  SecretSource,
  formatModelError,
  resolve,
  validate,
} from '../../constructs/model';
import { synthesize } from '../../constructs';

const SECRETS: JobSystemProps['secrets'] = {
  'mongo-password': { source: SecretSource.file('.secrets/t/mongo-password') },
  'rabbitmq-password': { source: SecretSource.file('.secrets/t/rabbitmq-password') },
  'rabbitmq-erlang-cookie': { source: SecretSource.file('.secrets/t/rabbitmq-erlang-cookie') },
};

/** Validates a model built from `props` (with the required secrets) and returns the formatted errors. */
function errorsOf(props: JobSystemProps, environment = 'test'): string[] {
  const system = new JobSystem(undefined, environment, { secrets: SECRETS, ...props });
  return validate(resolve(system, { imageTag: () => 'src-000000000000' })).map(formatModelError);
}

describe('validation', () => {
  test('the default model is valid', () => {
    expect(errorsOf({})).toEqual([]);
  });

  test('a name that is not a DNS-1123 label is rejected with the path and value', () => {
    const system = new JobSystem(undefined, 'test', { secrets: SECRETS });
    system.addConsumer('Image_Resizer', {});
    expect(validate(resolve(system, { imageTag: () => 'src-0' })).map(formatModelError)).toEqual([
      '[test/Image_Resizer] name: got "Image_Resizer", expected a DNS-1123 label (lowercase letters, digits and "-", starting and ending with a letter or digit, at most 63 characters)',
    ]);
  });

  test('replicas must be an integer of at least 0', () => {
    expect(errorsOf({ consumer: { replicas: -1 } })).toEqual([
      '[test/consumer] replicas: got -1, expected an integer ≥ 0',
    ]);
    expect(errorsOf({ consumer: { replicas: 1.5 } })).toEqual([
      '[test/consumer] replicas: got 1.5, expected an integer ≥ 0',
    ]);
  });

  test('a highly available environment needs at least 2 replicas of every component', () => {
    expect(
      errorsOf({
        highlyAvailable: true,
        broker: { replicas: 3 },
        database: { replicas: 3 },
        producer: { replicas: 1 },
        consumer: { autoscaling: { minReplicas: 1, maxReplicas: 4 } },
      }),
    ).toEqual([
      '[test/producer] replicas: got 1, expected at least 2 because test is highly available',
      '[test/consumer] autoscaling.minReplicas: got 1, expected at least 2 because test is highly available',
    ]);
  });

  test('ports must be within 1–65535 and published once per host address', () => {
    expect(
      errorsOf({
        producer: { port: 70000, publishedPorts: [{ containerPort: 70000, hostPort: 0 }] },
        broker: { management: true, publishedPorts: [{ containerPort: 15672, hostPort: 8080 }] },
        consumer: { publishedPorts: [{ containerPort: 8081, hostPort: 8080 }] },
      }),
    ).toEqual([
      '[test/producer] ports.http: got 70000, expected an integer from 1 to 65535',
      '[test/producer] publishedPorts[0].hostPort: got 0, expected an integer from 1 to 65535',
      '[test/producer] publishedPorts[0].containerPort: got 70000, expected an integer from 1 to 65535',
      '[test/consumer] publishedPorts[0].hostPort: got 127.0.0.1:8080, expected a host port not already published by test/rabbitmq',
    ]);
  });

  test('memory written as "512m" is rejected as ambiguous, and a request above its limit is reported', () => {
    expect(
      errorsOf({
        consumer: {
          resources: { memoryLimit: Memory.parse('512m'), cpuRequest: Cpu.millis(800), cpuLimit: Cpu.millis(500) },
        },
      }),
    ).toEqual([
      '[test/consumer] resources.cpuRequest: got 800m, expected at most the limit 500m',
      '[test/consumer] resources.memoryLimit: got "512m", expected a binary quantity such as "512Mi" or Memory.mebibytes(512) ("m" means milli in Kubernetes and mega in Compose)',
    ]);
  });

  test('parsed quantities that are valid resolve to the same values as typed ones', () => {
    expect(Memory.parse('512Mi').mebibytes).toBe(512);
    expect(Memory.parse('2Gi').toDocker()).toBe('2G');
    expect(Cpu.parse('500m').toKubernetes()).toBe('500m');
    expect(Cpu.parse('1.5').toDocker()).toBe('1.5');
    expect(Cpu.parse('half').problem()).toBe(
      'got "half", expected a CPU quantity > 0 such as Cpu.millis(500) or "500m"',
    );
  });

  test('image references must be pinned: no latest, no empty tag, a valid digest', () => {
    const digest = 'a'.repeat(64);
    expect(errorsOf({ broker: { image: ImageSource.registry(`rabbitmq:4.1@sha256:${digest}`) } })).toEqual([]);
    expect(
      errorsOf({
        broker: { image: ImageSource.registry('rabbitmq:latest') },
        database: { image: ImageSource.registry('mongo') },
        producer: { image: ImageSource.registry('ghcr.io/acme/producer:') },
        consumer: { image: ImageSource.registry('ghcr.io/acme/consumer@sha256:abc') },
      }),
    ).toEqual([
      '[test/rabbitmq] image: got "rabbitmq:latest", expected a pinned tag or digest, not "latest"',
      '[test/mongo] image: got "mongo", expected a pinned tag or digest (no tag means "latest")',
      '[test/producer] image: got "ghcr.io/acme/producer:", expected a non-empty tag after ":"',
      '[test/consumer] image: got "ghcr.io/acme/consumer@sha256:abc", expected the digest as "sha256:" followed by 64 lowercase hex digits',
    ]);
  });

  test('references to undeclared secrets and volumes are reported with the declared names', () => {
    expect(
      errorsOf({
        consumer: {
          secrets: [{ secret: 'api-token', fileEnv: 'API_TOKEN_FILE' }],
          volumeMounts: [{ volume: 'scratch', path: '/scratch' }],
        },
      }),
    ).toEqual([
      '[test/consumer] secrets.api-token: got a reference to "api-token", expected one of the declared secrets (mongo-password, rabbitmq-erlang-cookie, rabbitmq-password)',
      '[test/consumer] volumeMounts.scratch: got a reference to "scratch", expected one of the declared volumes (mongo-data, rabbitmq-data)',
    ]);
  });

  test('literal secret values are rejected without repeating them', () => {
    const errors = errorsOf({
      producer: { env: { API_TOKEN: 'hunter2', UPSTREAM_URL: 'https://user:hunter2@example.com/' } },
      secrets: {
        ...SECRETS,
        // A JavaScript caller can pass a string where a SecretSource is expected.
        'api-token': { source: 'hunter2' as unknown as SecretSource },
      },
    });
    expect(errors).toEqual([
      '[test/producer] env.API_TOKEN: got a literal value (hidden), expected a secret: declare it in `secrets` and use it via `secrets: [{ secret, fileEnv }]`',
      '[test/producer] env.UPSTREAM_URL: got a URL with a password in it (hidden), expected the URL without the password and the password in a secret',
      '[test/secrets/api-token] source: got a literal string (value hidden), expected SecretSource.file(path) or SecretSource.external() (secret values never go into the model)',
    ]);
    expect(errors.join('\n')).not.toContain('hunter2');
  });

  test('a tmpfs is charged to the memory limit, so its size must be a binary quantity below that limit', () => {
    expect(
      errorsOf({
        producer: { tmpfsSize: Memory.mebibytes(256) },
        consumer: { tmpfs: ['/tmp', '/var/cache/app'], tmpfsSize: Memory.mebibytes(200) },
        broker: { tmpfsSize: Memory.parse('64m') },
      }),
    ).toEqual([
      '[test/rabbitmq] tmpfsSize: got "64m", expected a binary quantity such as "512Mi" or Memory.mebibytes(512) ("m" means milli in Kubernetes and mega in Compose)',
      '[test/producer] tmpfsSize: got 256Mi, expected less than resources.memoryLimit (256Mi) because what is written to a tmpfs counts against the memory limit',
      '[test/consumer] tmpfsSize: got 200Mi for each of 2 paths (400Mi in all), expected less than resources.memoryLimit (256Mi) because what is written to a tmpfs counts against the memory limit',
    ]);
    expect(errorsOf({ producer: { tmpfsSize: Memory.mebibytes(255) } })).toEqual([]);
  });

  test('a read-only root filesystem needs a writable /tmp', () => {
    expect(errorsOf({ producer: { tmpfs: [] } })).toEqual([
      '[test/producer] tmpfs: got [], expected "/tmp" to be writable (a tmpfs or volume) because readOnlyRootFilesystem is true',
    ]);
    expect(errorsOf({ producer: { tmpfs: [], readOnlyRootFilesystem: false } })).toEqual([]);
  });

  test('the grace period must cover the consumer drain time', () => {
    expect(
      errorsOf({ consumer: { drainTimeout: Duration.seconds(50), terminationGracePeriod: Duration.seconds(30) } }),
    ).toEqual([
      '[test/consumer] terminationGracePeriod: got 30s, expected at least drainTimeout + 5s (55s) so in-flight jobs finish and connections close before SIGKILL',
    ]);
  });

  test('group commit bounds are integers in range, named by their model path', () => {
    expect(
      errorsOf({
        producer: { groupCommit: { maxBatchSize: 0 } },
        consumer: { groupCommit: { maxBatchSize: 20_000, maxWaitMs: 1.5 } },
      }),
    ).toEqual([
      '[test/producer] groupCommit.maxBatchSize: got 0, expected an integer from 1 to 10000',
      '[test/consumer] groupCommit.maxBatchSize: got 20000, expected an integer from 1 to 10000',
      '[test/consumer] groupCommit.maxWaitMs: got 1.5, expected an integer from 0 to 1000',
    ]);
    expect(errorsOf({ producer: { groupCommit: { maxBatchSize: 1, maxWaitMs: 0 } } })).toEqual([]);
  });

  test('outbox durations are within what the producer reads, named by their model path', () => {
    expect(
      errorsOf({
        producer: { outboxRepublishAfter: Duration.seconds(0), outboxScanInterval: Duration.minutes(61) },
      }),
    ).toEqual([
      '[test/producer] outboxRepublishAfter: got 0 ms, expected whole milliseconds from 100 ms to 1 hour',
      '[test/producer] outboxScanInterval: got 3660000 ms, expected whole milliseconds from 50 ms to 1 hour',
    ]);
    expect(
      errorsOf({ producer: { outboxRepublishAfter: Duration.seconds(1), outboxScanInterval: Duration.minutes(60) } }),
    ).toEqual([]);
  });

  test('prefetch must be at least the worker concurrency', () => {
    expect(errorsOf({ consumer: { prefetch: 5, concurrency: 10 } })).toEqual([
      '[test/consumer] prefetch: got 5, expected at least the worker concurrency (10) so every worker slot can hold a delivery',
    ]);
  });

  test('a broker cluster needs quorum queues and an Erlang cookie secret', () => {
    const system = new JobSystem(undefined, 'test', {
      secrets: { 'mongo-password': SECRETS['mongo-password']!, 'rabbitmq-password': SECRETS['rabbitmq-password']! },
      broker: { replicas: 3, queueType: QueueType.CLASSIC },
    });
    expect(validate(resolve(system, { imageTag: () => 'src-0' })).map(formatModelError)).toEqual([
      '[test/rabbitmq] erlangCookieSecret: got a reference to "rabbitmq-erlang-cookie", expected a declared secret because a 3-node cluster shares an Erlang cookie',
      '[test/rabbitmq] queueType: got "classic", expected "quorum" for a 3-node cluster so queues survive the loss of a node',
    ]);
  });

  test('a model with five different mistakes reports all five with their paths, and synth returns no files', async () => {
    const system = new JobSystem(undefined, 'broken', {
      secrets: SECRETS,
      producer: { replicas: -2, image: ImageSource.registry('producer:latest') },
      consumer: { prefetch: 2, concurrency: 4, resources: { memoryLimit: Memory.parse('512m') } },
      database: { secrets: [{ secret: 'missing', fileEnv: 'MISSING_FILE' }] },
    });
    const result = await synthesize({ systems: [system], resolveOptions: { imageTag: () => 'src-0' } });
    expect(result.files).toEqual([]);
    expect(result.errors).toEqual([
      '[broken/mongo] secrets.missing: got a reference to "missing", expected one of the declared secrets (mongo-password, rabbitmq-erlang-cookie, rabbitmq-password)',
      '[broken/producer] replicas: got -2, expected an integer ≥ 0',
      '[broken/producer] image: got "producer:latest", expected a pinned tag or digest, not "latest"',
      '[broken/consumer] resources.memoryLimit: got "512m", expected a binary quantity such as "512Mi" or Memory.mebibytes(512) ("m" means milli in Kubernetes and mega in Compose)',
      '[broken/consumer] prefetch: got 2, expected at least the worker concurrency (4) so every worker slot can hold a delivery',
    ]);
  });
});
