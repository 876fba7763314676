import { join } from 'node:path';
import type { ConsumerWorkers, GroupCommitProps } from './components';
import { ProducerAuth, QueueType } from './components';
import { contentTag } from './content-tag';
import type { HealthCheckProps } from './health';
import { type BuildImage, ImageSource, type RegistryImage } from './image';
import { Cpu, Duration, Memory } from './quantity';
import type {
  EnvVar,
  ResolvedHealthCheck,
  ResolvedImage,
  ResolvedPort,
  ResolvedResources,
  ResolvedSecret,
  ResolvedService,
  ResolvedSystem,
  ResolvedVolume,
} from './resolved';
import { FileSecretSource, ExternalSecretSource } from './secret';
import { SERVICE_NAMES, SwarmPublishMode, type JobSystem } from './system';
import type { Workload, WorkloadProps } from './workload';

/**
 * Every default of the model, in one place. Renderers read resolved values only.
 */
export const DEFAULTS = {
  nodeBaseImage: 'node:24.11.1-bookworm-slim',
  serviceUser: 10001,
  /** The official images' own `rabbitmq` and `mongodb` users own their data directories. */
  upstreamUser: 999,
  brokerImage: 'rabbitmq:4.1.4-management',
  databaseImage: 'mongo:8.0.12',
  producerPort: 8080,
  producerMetricsPort: 9464,
  apiKeysSecret: 'api-keys',
  consumerPort: 8081,
  amqpPort: 5672,
  managementPort: 15672,
  mongoPort: 27017,
  bodyLimitBytes: 65536,
  outboxRepublishAfter: Duration.seconds(5),
  outboxScanInterval: Duration.seconds(30),
  prefetch: 10,
  /** The services' own defaults (services/src/shared/config.ts), chosen from the benchmark. */
  groupCommit: { maxBatchSize: 100, maxWaitMs: 2 },
  maxAttempts: 5,
  retryBaseDelay: Duration.seconds(1),
  retryMaxDelay: Duration.seconds(60),
  lease: Duration.seconds(60),
  drainTimeout: Duration.seconds(25),
  terminationGracePeriod: Duration.seconds(30),
  cpuUtilizationPercent: 70,
  /** Restarts of a crash-looping container before the platform gives up (every target's policy is bounded). */
  restartMaxAttempts: 5,
  storageSize: Memory.gibibytes(1),
  ephemeralStorageRequest: Memory.mebibytes(64),
  ephemeralStorageLimit: Memory.mebibytes(256),
  /** Enough for what the images write to /tmp (sockets, pid files, mongosh's home in the init Job). */
  tmpfsSize: Memory.mebibytes(64),
  health: {
    interval: Duration.seconds(10),
    timeout: Duration.seconds(5),
    retries: 3,
    startPeriod: Duration.seconds(30),
  },
  resources: {
    producer: {
      cpuRequest: Cpu.millis(100),
      cpuLimit: Cpu.millis(500),
      memoryRequest: Memory.mebibytes(128),
      memoryLimit: Memory.mebibytes(256),
    },
    consumer: {
      cpuRequest: Cpu.millis(100),
      cpuLimit: Cpu.millis(500),
      memoryRequest: Memory.mebibytes(128),
      memoryLimit: Memory.mebibytes(256),
    },
    broker: {
      cpuRequest: Cpu.millis(250),
      cpuLimit: Cpu.millis(1000),
      memoryRequest: Memory.mebibytes(512),
      memoryLimit: Memory.mebibytes(1024),
    },
    database: {
      cpuRequest: Cpu.millis(250),
      cpuLimit: Cpu.millis(1000),
      memoryRequest: Memory.mebibytes(512),
      memoryLimit: Memory.mebibytes(1024),
    },
  },
} as const;

/** Options of {@link resolve}. */
export interface ResolveOptions {
  /** Repository root; build contexts are relative to it. @default process.cwd() */
  readonly repoRoot?: string;
  /** Computes a build image's tag. @default a hash of the context's content ({@link contentTag}) */
  readonly imageTag?: (context: string, salt: string) => string;
}

const SECRET_DIR = '/run/secrets';

function env(entries: Record<string, string>): EnvVar[] {
  return Object.keys(entries)
    .sort()
    .map((name) => ({ name, value: entries[name] as string }));
}

function health(props: HealthCheckProps, http: ResolvedHealthCheck['http']): ResolvedHealthCheck {
  const d = DEFAULTS.health;
  return {
    command: props.command,
    intervalSeconds: (props.interval ?? d.interval).seconds,
    timeoutSeconds: (props.timeout ?? d.timeout).seconds,
    retries: props.retries ?? d.retries,
    startPeriodSeconds: (props.startPeriod ?? d.startPeriod).seconds,
    http,
  };
}

/** Resolves a model into the form every renderer reads. Never throws: problems are left for `validate`. */
/** `GROUP_COMMIT_*` of a producer or consumer (services/src/shared/config.ts reads them). */
function groupCommitEnv(gc: GroupCommitProps | undefined): Record<string, string> {
  return {
    GROUP_COMMIT_MAX_SIZE: String(gc?.maxBatchSize ?? DEFAULTS.groupCommit.maxBatchSize),
    GROUP_COMMIT_MAX_WAIT_MS: String(gc?.maxWaitMs ?? DEFAULTS.groupCommit.maxWaitMs),
  };
}

export function resolve(system: JobSystem, options: ResolveOptions = {}): ResolvedSystem {
  const repoRoot = options.repoRoot ?? process.cwd();
  const imageTag = options.imageTag ?? ((context: string, salt: string) => contentTag(join(repoRoot, context), salt));
  const props = system.props;
  const nodeBaseImage = props.nodeBaseImage?.reference ?? DEFAULTS.nodeBaseImage;

  const brokerProps = system.broker.props;
  const brokerReplicas = brokerProps.replicas ?? 1;
  const broker = {
    serviceName: SERVICE_NAMES.broker,
    queueType: (brokerProps.queueType ?? (brokerReplicas >= 3 ? QueueType.QUORUM : QueueType.CLASSIC)).name,
    vhost: brokerProps.vhost ?? '/',
    username: brokerProps.username ?? 'app',
    passwordSecret: brokerProps.passwordSecret ?? 'rabbitmq-password',
    erlangCookieSecret: brokerProps.erlangCookieSecret ?? 'rabbitmq-erlang-cookie',
    management: brokerProps.management ?? false,
    amqpPort: DEFAULTS.amqpPort,
    managementPort: DEFAULTS.managementPort,
    storage: brokerProps.storageSize ?? DEFAULTS.storageSize,
  };
  const dbProps = system.database.props;
  const database = {
    serviceName: SERVICE_NAMES.database,
    databaseName: dbProps.databaseName ?? 'jobs',
    username: dbProps.username ?? 'app',
    passwordSecret: dbProps.passwordSecret ?? 'mongo-password',
    replicaSetName: dbProps.replicaSetName ?? 'rs0',
    port: DEFAULTS.mongoPort,
    storage: dbProps.storageSize ?? DEFAULTS.storageSize,
  };

  const amqpUrl = `amqp://${broker.username}@${broker.serviceName}:${broker.amqpPort}/${encodeURIComponent(broker.vhost)}`;
  const mongoUrl = `mongodb://${database.username}@${database.serviceName}:${database.port}/${database.databaseName}?authSource=admin`;
  const connectionEnv = {
    AMQP_URL: amqpUrl,
    MONGO_URL: mongoUrl,
    QUEUE_PREFIX: 'jobs',
    QUEUE_TYPE: broker.queueType,
    LOG_LEVEL: 'info',
  };
  const connectionSecrets = [
    { secret: broker.passwordSecret, fileEnv: 'AMQP_PASSWORD_FILE' },
    { secret: database.passwordSecret, fileEnv: 'MONGO_PASSWORD_FILE' },
  ];

  const image = (workload: Workload, fallback: ImageSource, user: number): ResolvedImage => {
    const source = workload.props.image ?? fallback;
    if (source.kind === 'registry') {
      return { kind: 'registry', reference: (source as RegistryImage).reference };
    }
    const build = source as BuildImage;
    const localName = `async-jobs/${build.service}`;
    const tag = imageTag(build.context, `${build.service}\0${nodeBaseImage}\0${user}`);
    const repository = build.repository ?? null;
    return {
      kind: 'build',
      context: build.context,
      service: build.service,
      repository,
      localName,
      tag,
      reference: `${repository ?? localName}:${tag}`,
    };
  };

  type Kind = keyof typeof DEFAULTS.resources;
  const resources = (p: WorkloadProps, kind: Kind): ResolvedResources => {
    const d = DEFAULTS.resources[kind];
    const r = p.resources ?? {};
    return {
      cpuRequest: r.cpuRequest ?? d.cpuRequest,
      cpuLimit: r.cpuLimit ?? d.cpuLimit,
      memoryRequest: r.memoryRequest ?? d.memoryRequest,
      memoryLimit: r.memoryLimit ?? d.memoryLimit,
      ephemeralStorageRequest: r.ephemeralStorageRequest ?? DEFAULTS.ephemeralStorageRequest,
      ephemeralStorageLimit: r.ephemeralStorageLimit ?? DEFAULTS.ephemeralStorageLimit,
    };
  };

  interface KindDefaults {
    readonly kind: Kind;
    readonly image: ImageSource;
    readonly user: number;
    readonly command: readonly string[];
    readonly ports: readonly ResolvedPort[];
    readonly env: Record<string, string>;
    readonly secrets: readonly { secret: string; fileEnv: string }[];
    readonly volumeMounts: readonly { volume: string; path: string }[];
    readonly health: HealthCheckProps;
    readonly http: ResolvedHealthCheck['http'];
    readonly dependsOn: readonly string[];
    readonly stateful: boolean;
    readonly drainTimeoutSeconds: number;
  }

  const service = (workload: Workload, d: KindDefaults): ResolvedService => {
    const p = workload.props;
    const user = p.user ?? d.user;
    const publishedPorts = (p.publishedPorts ?? []).map((port) => ({
      containerPort: port.containerPort,
      hostPort: port.hostPort,
      hostIp: port.hostIp ?? '127.0.0.1',
    }));
    const autoscaling = p.autoscaling
      ? {
          minReplicas: p.autoscaling.minReplicas,
          maxReplicas: p.autoscaling.maxReplicas,
          cpuUtilizationPercent: p.autoscaling.cpuUtilizationPercent ?? DEFAULTS.cpuUtilizationPercent,
          queueLengthPerReplica: p.autoscaling.queueLengthPerReplica ?? null,
        }
      : null;
    return {
      kind: workload.kind,
      name: workload.node.id,
      path: workload.node.path,
      image: image(workload, d.image, user),
      command: d.command,
      replicas: p.replicas ?? 1,
      autoscaling,
      resources: resources(p, d.kind),
      ports: d.ports,
      publishedPorts,
      env: env({ ...d.env, ...(p.env ?? {}) }),
      secrets: [...d.secrets, ...(p.secrets ?? [])]
        .map((s) => ({ secret: s.secret, fileEnv: s.fileEnv, path: `${SECRET_DIR}/${s.secret}` }))
        .sort((a, b) =>
          a.secret === b.secret ? a.fileEnv.localeCompare(b.fileEnv) : a.secret.localeCompare(b.secret),
        ),
      volumeMounts: [...d.volumeMounts, ...(p.volumeMounts ?? [])],
      healthCheck: health(p.healthCheck ?? d.health, p.healthCheck ? null : d.http),
      security: {
        user,
        group: p.group ?? user,
        readOnlyRootFilesystem: p.readOnlyRootFilesystem ?? true,
        tmpfs: p.tmpfs ?? ['/tmp'],
        tmpfsSize: p.tmpfsSize ?? DEFAULTS.tmpfsSize,
      },
      terminationGracePeriodSeconds: (p.terminationGracePeriod ?? DEFAULTS.terminationGracePeriod).seconds,
      networks: publishedPorts.length > 0 || workload.kind === 'producer' ? ['backend', 'frontend'] : ['backend'],
      dependsOn: d.dependsOn,
      stateful: d.stateful,
      drainTimeoutSeconds: d.drainTimeoutSeconds,
      restartMaxAttempts: DEFAULTS.restartMaxAttempts,
    };
  };

  const nodeHealth = (port: number): Pick<KindDefaults, 'health' | 'http'> => ({
    health: { command: ['node', 'dist/healthcheck.js'], startPeriod: Duration.seconds(20) },
    http: { port, readinessPath: '/readyz', livenessPath: '/healthz' },
  });

  const brokerService = service(system.broker, {
    kind: 'broker',
    image: ImageSource.registry(DEFAULTS.brokerImage),
    user: DEFAULTS.upstreamUser,
    // The official image dropped `RABBITMQ_DEFAULT_PASS_FILE`; read the mounted secret into the variable the
    // server itself understands, so the password never appears in the container's definition.
    // @see https://github.com/docker-library/rabbitmq/pull/467
    command: [
      'sh',
      '-c',
      'RABBITMQ_DEFAULT_PASS="$(cat "$RABBITMQ_DEFAULT_PASS_FILE")" && export RABBITMQ_DEFAULT_PASS && exec docker-entrypoint.sh rabbitmq-server',
    ],
    ports: [
      { name: 'amqp', containerPort: broker.amqpPort },
      ...(broker.management ? [{ name: 'management', containerPort: broker.managementPort }] : []),
    ],
    env: { RABBITMQ_DEFAULT_USER: broker.username, RABBITMQ_DEFAULT_VHOST: broker.vhost },
    secrets: [{ secret: broker.passwordSecret, fileEnv: 'RABBITMQ_DEFAULT_PASS_FILE' }],
    volumeMounts: [{ volume: 'rabbitmq-data', path: '/var/lib/rabbitmq' }],
    // @see https://www.rabbitmq.com/docs/monitoring#health-checks
    health: {
      command: ['rabbitmq-diagnostics', '-q', 'check_port_connectivity'],
      startPeriod: Duration.seconds(60),
      interval: Duration.seconds(30),
      timeout: Duration.seconds(20),
    },
    http: null,
    dependsOn: [],
    stateful: true,
    drainTimeoutSeconds: 0,
  });

  const databaseService = service(system.database, {
    kind: 'database',
    image: ImageSource.registry(DEFAULTS.databaseImage),
    user: DEFAULTS.upstreamUser,
    command: [],
    ports: [{ name: 'mongodb', containerPort: database.port }],
    env: { MONGO_INITDB_ROOT_USERNAME: database.username },
    // The official mongo image reads `*_FILE` variants itself.
    secrets: [{ secret: database.passwordSecret, fileEnv: 'MONGO_INITDB_ROOT_PASSWORD_FILE' }],
    volumeMounts: [{ volume: 'mongo-data', path: '/data/db' }],
    health: {
      command: ['mongosh', '--quiet', '--norc', '--eval', "db.adminCommand('ping').ok"],
      startPeriod: Duration.seconds(40),
    },
    http: null,
    dependsOn: [],
    stateful: true,
    drainTimeoutSeconds: 0,
  });

  const producer = system.producer;
  const producerPort = producer.props.port ?? DEFAULTS.producerPort;
  const authentication =
    producer.props.authentication ??
    (system.secrets.some((x) => x.node.id === DEFAULTS.apiKeysSecret)
      ? ProducerAuth.apiKeys(DEFAULTS.apiKeysSecret)
      : ProducerAuth.disabled());
  const apiKeysSecret = authentication.kind === 'api-keys' ? authentication.secret : null;
  const producerService = service(producer, {
    kind: 'producer',
    image: ImageSource.build('services', 'producer'),
    user: DEFAULTS.serviceUser,
    command: [],
    ports: [{ name: 'http', containerPort: producerPort }],
    env: {
      ...connectionEnv,
      PORT: String(producerPort),
      BODY_LIMIT_BYTES: String(producer.props.bodyLimitBytes ?? DEFAULTS.bodyLimitBytes),
      OUTBOX_REPUBLISH_AFTER_MS: String(
        (producer.props.outboxRepublishAfter ?? DEFAULTS.outboxRepublishAfter).seconds * 1000,
      ),
      OUTBOX_SCAN_INTERVAL_MS: String(
        (producer.props.outboxScanInterval ?? DEFAULTS.outboxScanInterval).seconds * 1000,
      ),
      // The producer accepts exactly the job types some consumer runs, test handlers included.
      ENABLE_TEST_HANDLERS: String(system.consumers.some((c) => c.props.enableTestHandlers ?? false)),
      METRICS_PORT: String(producer.props.metricsPort ?? DEFAULTS.producerMetricsPort),
      ...groupCommitEnv(producer.props.groupCommit),
      ...(apiKeysSecret === null ? { AUTH_DISABLED: 'true' } : {}),
    },
    secrets: [
      ...connectionSecrets,
      ...(apiKeysSecret === null ? [] : [{ secret: apiKeysSecret, fileEnv: 'API_KEYS_FILE' }]),
    ],
    volumeMounts: [],
    ...nodeHealth(producerPort),
    dependsOn: [SERVICE_NAMES.broker, SERVICE_NAMES.database],
    stateful: false,
    drainTimeoutSeconds: 0,
  });

  const consumerServices = system.consumers.map((consumer: ConsumerWorkers) => {
    const c = consumer.props;
    const port = c.port ?? DEFAULTS.consumerPort;
    const prefetch = c.prefetch ?? DEFAULTS.prefetch;
    const drain = c.drainTimeout ?? DEFAULTS.drainTimeout;
    return service(consumer, {
      kind: 'consumer',
      image: ImageSource.build('services', 'consumer'),
      user: DEFAULTS.serviceUser,
      command: [],
      ports: [{ name: 'http', containerPort: port }],
      env: {
        ...connectionEnv,
        PORT: String(port),
        PREFETCH: String(prefetch),
        CONCURRENCY: String(c.concurrency ?? prefetch),
        MAX_ATTEMPTS: String(c.maxAttempts ?? DEFAULTS.maxAttempts),
        RETRY_BASE_DELAY_MS: String((c.retryBaseDelay ?? DEFAULTS.retryBaseDelay).seconds * 1000),
        RETRY_MAX_DELAY_MS: String((c.retryMaxDelay ?? DEFAULTS.retryMaxDelay).seconds * 1000),
        LEASE_SECONDS: String((c.lease ?? DEFAULTS.lease).seconds),
        DRAIN_TIMEOUT_SECONDS: String(drain.seconds),
        ENABLE_TEST_HANDLERS: String(c.enableTestHandlers ?? false),
        ...groupCommitEnv(c.groupCommit),
      },
      secrets: connectionSecrets,
      volumeMounts: [],
      ...nodeHealth(port),
      dependsOn: [SERVICE_NAMES.broker, SERVICE_NAMES.database],
      stateful: false,
      drainTimeoutSeconds: drain.seconds,
    });
  });

  const secrets: ResolvedSecret[] = system.secrets
    .map((secret) => {
      const source: unknown = secret.props.source;
      let resolved: ResolvedSecret['source'];
      if (source instanceof FileSecretSource) resolved = { kind: 'file', path: source.path };
      else if (source instanceof ExternalSecretSource) resolved = { kind: 'external' };
      else
        resolved = {
          kind: 'invalid',
          got: typeof source === 'string' ? 'a literal string (value hidden)' : typeof source,
        };
      return {
        name: secret.node.id,
        path: secret.node.path,
        source: resolved,
        description: secret.props.description ?? '',
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name));

  const volumes: ResolvedVolume[] = [
    { name: 'mongo-data', path: `${system.node.path}/volumes/mongo-data`, size: database.storage, retain: true },
    { name: 'rabbitmq-data', path: `${system.node.path}/volumes/rabbitmq-data`, size: broker.storage, retain: true },
    ...system.volumes.map((v) => ({
      name: v.node.id,
      path: v.node.path,
      size: v.props.size,
      retain: v.props.retain ?? true,
    })),
  ].sort((a, b) => a.name.localeCompare(b.name));

  return {
    environment: system.environment,
    path: system.node.path,
    namespace: props.namespace ?? `async-jobs-${system.environment}`,
    highlyAvailable: props.highlyAvailable ?? false,
    services: [brokerService, databaseService, producerService, ...consumerServices],
    broker,
    database,
    secrets,
    volumes,
    networks: [
      { name: 'backend', internal: true },
      { name: 'frontend', internal: false },
    ],
    acceptedGaps: props.acceptedGaps ?? [],
    ingressHost: producer.props.ingressHost ?? null,
    ingressTls:
      producer.props.ingressTls === undefined
        ? null
        : {
            secretName:
              producer.props.ingressTls.secretName ??
              `${(producer.props.ingressHost ?? 'ingress').replace(/\./g, '-')}-tls`,
            clusterIssuer: producer.props.ingressTls.clusterIssuer ?? null,
          },
    apiKeysSecret,
    nodeBaseImage,
    swarm: { publishMode: (props.swarm?.publishMode ?? SwarmPublishMode.INGRESS).name },
  };
}

/** The declared secrets some service mounts: the ones the Docker targets must declare and version. */
export function mountedSecrets(system: ResolvedSystem): ResolvedSecret[] {
  const used = new Set(system.services.flatMap((s) => s.secrets.map((use) => use.secret)));
  return system.secrets.filter((secret) => used.has(secret.name));
}
