import type { Construct } from 'constructs';
import type { Duration, Memory } from './quantity';
import { Workload, type WorkloadProps } from './workload';

/**
 * How API clients authenticate to the producer's `/v1/*` routes. A closed choice.
 * The services read the keys file named by `API_KEYS_FILE`: one client per line, `<client-id> <scopes> <sha256 of
 * the token>` (see services/README.md); `npm run secrets` creates one with a first admin client.
 */
export class ProducerAuth {
  /** Bearer tokens checked against the keys file in the secret `secret`, mounted at `/run/secrets/<secret>`. */
  public static apiKeys(secret = 'api-keys'): ProducerAuth {
    return new ProducerAuth('api-keys', secret);
  }

  /**
   * No authentication: every request may submit and read every job. Only for a producer that is not published
   * beyond localhost; validation refuses it otherwise.
   */
  public static disabled(): ProducerAuth {
    return new ProducerAuth('disabled', null);
  }

  private constructor(
    public readonly kind: 'api-keys' | 'disabled',
    public readonly secret: string | null,
  ) {}
}

/** TLS termination at the Ingress (Kubernetes). */
export interface IngressTlsProps {
  /**
   * The `kubernetes.io/tls` Secret holding the certificate; cert-manager creates it when `clusterIssuer` is set.
   * @default the host with dots as dashes, plus `-tls` (`jobs-example-com-tls`)
   */
  readonly secretName?: string;
  /**
   * cert-manager ClusterIssuer that issues the certificate (`cert-manager.io/cluster-issuer` annotation).
   * @default none: the Secret is provided by other means
   * @see https://cert-manager.io/docs/usage/ingress/
   */
  readonly clusterIssuer?: string;
}

/**
 * Group commit: how a service's concurrent MongoDB writes share one round trip (the producer's inserts and
 * publication records; the consumer's claims, outcomes and lease renewals). A batch goes out at once when none
 * is in flight, so a lone write never waits; under load, writes that arrive while one batch is in flight go out
 * together when it returns, when `maxBatchSize` are waiting, or after `maxWaitMs`.
 * @see BENCHMARKS.md (how the defaults were chosen)
 */
export interface GroupCommitProps {
  /** Most writes in one round trip; 1 sends every write alone. Integer, 1–10000. @default 100 */
  readonly maxBatchSize?: number;
  /**
   * Longest, in milliseconds, a write waits behind a batch in flight before its own batch goes out anyway.
   * Integer, 0–1000. @default 2
   */
  readonly maxWaitMs?: number;
}

/** Props of {@link ProducerApi}. */
export interface ProducerApiProps extends WorkloadProps {
  /** The HTTP port inside the container. @default 8080 */
  readonly port?: number;
  /** Largest accepted request body. @default 65536 */
  readonly bodyLimitBytes?: number;
  /** Republish jobs stored but not confirmed as published after this long. @default Duration.seconds(5) */
  readonly outboxRepublishAfter?: Duration;
  /**
   * Pause between the outbox sweeper's scans of MongoDB for jobs a crashed producer stored but never published,
   * once a scan has caught up: such a job is published within about this plus `outboxRepublishAfter`.
   * @default Duration.seconds(30)
   */
  readonly outboxScanInterval?: Duration;
  /** Public host name; Kubernetes gets an Ingress for it. @default no ingress */
  readonly ingressHost?: string;
  /** TLS on the Ingress, with HTTP redirected to HTTPS. Needs `ingressHost`. @default no TLS */
  readonly ingressTls?: IngressTlsProps;
  /**
   * How API clients authenticate.
   * @default ProducerAuth.apiKeys('api-keys') when the system declares a secret `api-keys`, else
   * ProducerAuth.disabled() (which validation refuses for a producer published beyond localhost)
   */
  readonly authentication?: ProducerAuth;
  /** Port of the producer's `/metrics` listener, never published nor routed by the Ingress. @default 9464 */
  readonly metricsPort?: number;
  /** How concurrent submissions share MongoDB round trips. @default { maxBatchSize: 100, maxWaitMs: 2 } */
  readonly groupCommit?: GroupCommitProps;
}

/** The HTTP API that accepts jobs, stores them and publishes them. */
export class ProducerApi extends Workload<ProducerApiProps> {
  public readonly kind = 'producer' as const;
  public constructor(scope: Construct, id: string, props: ProducerApiProps = {}) {
    super(scope, id, props);
  }
}

/** Props of {@link ConsumerWorkers}. */
export interface ConsumerWorkersProps extends WorkloadProps {
  /** RabbitMQ consumer prefetch (unacknowledged deliveries per worker). @default 10 */
  readonly prefetch?: number;
  /** Jobs run at once per worker; at most `prefetch`. @default same as `prefetch` */
  readonly concurrency?: number;
  /** Attempts, counted by the application, before a job is dead-lettered. @default 5 */
  readonly maxAttempts?: number;
  /** First retry delay; doubles per attempt with jitter. @default Duration.seconds(1) */
  readonly retryBaseDelay?: Duration;
  /** Upper bound of the retry delay. @default Duration.seconds(60) */
  readonly retryMaxDelay?: Duration;
  /** How long a claim is held before another worker may take the job over. @default Duration.seconds(60) */
  readonly lease?: Duration;
  /** How long in-flight jobs may run after SIGTERM. Must fit in the grace period. @default Duration.seconds(25) */
  readonly drainTimeout?: Duration;
  /** The health endpoint's port. @default 8081 */
  readonly port?: number;
  /** Enable the always-failing test handlers. @default false */
  readonly enableTestHandlers?: boolean;
  /** How the claims and results of deliveries that arrive together share MongoDB round trips. @default { maxBatchSize: 100, maxWaitMs: 2 } */
  readonly groupCommit?: GroupCommitProps;
}

/** Workers that claim jobs, run their handlers and record results. */
export class ConsumerWorkers extends Workload<ConsumerWorkersProps> {
  public readonly kind = 'consumer' as const;
  public constructor(scope: Construct, id: string, props: ConsumerWorkersProps = {}) {
    super(scope, id, props);
  }
}

/** Type of the work queue. A closed choice. */
export class QueueType {
  /** Classic durable queue; one node. */
  public static readonly CLASSIC = new QueueType('classic');
  /**
   * Replicated Raft queue; what a cluster should use.
   * @see https://www.rabbitmq.com/docs/quorum-queues
   */
  public static readonly QUORUM = new QueueType('quorum');
  private constructor(public readonly name: 'classic' | 'quorum') {}
}

/** Props of {@link RabbitMqBroker}. */
export interface RabbitMqBrokerProps extends WorkloadProps {
  /** @default QueueType.CLASSIC, or QueueType.QUORUM when replicas ≥ 3 */
  readonly queueType?: QueueType;
  /** @default '/' */
  readonly vhost?: string;
  /** The application user name. @default 'app' */
  readonly username?: string;
  /** Size of the data volume. @default Memory.gibibytes(1) */
  readonly storageSize?: Memory;
  /** Name of the secret holding the application user's password. @default 'rabbitmq-password' */
  readonly passwordSecret?: string;
  /** Name of the secret holding the Erlang cookie (clusters). @default 'rabbitmq-erlang-cookie' */
  readonly erlangCookieSecret?: string;
  /** Serve the management UI on port 15672. @default false */
  readonly management?: boolean;
}

/** The RabbitMQ broker (a cluster when replicas > 1). */
export class RabbitMqBroker extends Workload<RabbitMqBrokerProps> {
  public readonly kind = 'broker' as const;
  public constructor(scope: Construct, id: string, props: RabbitMqBrokerProps = {}) {
    super(scope, id, props);
  }
}

/** Props of {@link MongoDatabase}. */
export interface MongoDatabaseProps extends WorkloadProps {
  /** @default 'jobs' */
  readonly databaseName?: string;
  /** The root user the services connect as. @default 'app' */
  readonly username?: string;
  /** Size of the data volume. @default Memory.gibibytes(1) */
  readonly storageSize?: Memory;
  /** Name of the secret holding the password. @default 'mongo-password' */
  readonly passwordSecret?: string;
  /** Replica set name when replicas > 1. @default 'rs0' */
  readonly replicaSetName?: string;
}

/** The MongoDB database (a replica set when replicas > 1). */
export class MongoDatabase extends Workload<MongoDatabaseProps> {
  public readonly kind = 'database' as const;
  public constructor(scope: Construct, id: string, props: MongoDatabaseProps = {}) {
    super(scope, id, props);
  }
}
