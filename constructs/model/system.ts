import { Construct } from 'constructs';
import {
  ConsumerWorkers,
  type ConsumerWorkersProps,
  MongoDatabase,
  type MongoDatabaseProps,
  ProducerApi,
  type ProducerApiProps,
  RabbitMqBroker,
  type RabbitMqBrokerProps,
} from './components';
import { Secret, type SecretProps, Volume, type VolumeProps } from './secret';
import type { RegistryImage } from './image';
import type { Workload } from './workload';

/** The deployment targets. */
export type TargetName = 'dockerfile' | 'compose' | 'swarm' | 'kubernetes' | 'pulumi';

/**
 * A feature of the model that a target cannot express, accepted on purpose. Without an acceptance such a gap
 * fails synth, so nothing is dropped silently.
 */
export interface AcceptedGap {
  readonly target: TargetName;
  /** The feature id as the target reports it, e.g. `broker-cluster`. */
  readonly feature: string;
  /** Why it is acceptable in this environment. */
  readonly reason: string;
}

/** Props of {@link JobSystem}. */
export interface JobSystemProps {
  /** Kubernetes namespace and Compose/Swarm project name. @default `async-jobs-<environment>` */
  readonly namespace?: string;
  /** Components must survive the loss of one replica: replicas ≥ 2 everywhere. @default false */
  readonly highlyAvailable?: boolean;
  /** @default ProducerApi defaults */
  readonly producer?: ProducerApiProps;
  /** The first consumer service, named `consumer`. Add more with {@link JobSystem.addConsumer}. @default ConsumerWorkers defaults */
  readonly consumer?: ConsumerWorkersProps;
  /** @default RabbitMqBroker defaults */
  readonly broker?: RabbitMqBrokerProps;
  /** @default MongoDatabase defaults */
  readonly database?: MongoDatabaseProps;
  /** Secrets by name. The broker and database secrets must be among them. @default none */
  readonly secrets?: Readonly<Record<string, SecretProps>>;
  /** Extra volumes by name; the broker and database volumes are declared automatically. @default none */
  readonly volumes?: Readonly<Record<string, VolumeProps>>;
  /** Base image of the services' Dockerfiles (build and runtime stages). @default ImageSource.registry('node:24.11.1-bookworm-slim') */
  readonly nodeBaseImage?: RegistryImage;
  /** Gaps accepted in this environment. @default none */
  readonly acceptedGaps?: readonly AcceptedGap[];
  /** Settings only the Docker Swarm target reads. @default SwarmProps defaults */
  readonly swarm?: SwarmProps;
}

/**
 * How Docker Swarm publishes a service's ports.
 *
 * @see https://docs.docker.com/engine/swarm/ingress/
 */
export class SwarmPublishMode {
  /**
   * The routing mesh: every node accepts the port and forwards to a task through the service's virtual IP. Needs
   * IPVS in every node's kernel; replicas may outnumber nodes.
   */
  public static readonly INGRESS = new SwarmPublishMode('ingress');
  /**
   * Each task binds the port on its own node (no virtual IP, no IPVS): at most one task per node, and a load
   * balancer in front of the nodes spreads the traffic.
   */
  public static readonly HOST = new SwarmPublishMode('host');
  private constructor(public readonly name: 'ingress' | 'host') {}
}

/** Props of the Swarm-only settings of {@link JobSystemProps}. */
export interface SwarmProps {
  /** @default SwarmPublishMode.INGRESS */
  readonly publishMode?: SwarmPublishMode;
}

/** Construct ids of the built-in services; they are also their names in every target. */
export const SERVICE_NAMES = {
  producer: 'producer',
  consumer: 'consumer',
  broker: 'rabbitmq',
  database: 'mongo',
} as const;

/**
 * The whole async job system for one environment: its id is the environment name (`dev`, `prod`), and its
 * children are the producer API, the consumer workers, the RabbitMQ broker, the MongoDB database and the
 * declared secrets and volumes.
 */
export class JobSystem extends Construct {
  public readonly producer: ProducerApi;
  public readonly broker: RabbitMqBroker;
  public readonly database: MongoDatabase;
  private readonly consumerList: ConsumerWorkers[] = [];

  public constructor(
    scope: Construct | undefined,
    environment: string,
    public readonly props: JobSystemProps = {},
  ) {
    // A model is usually its own root; `undefined` makes it one, so paths read `prod/consumer`.
    super(scope ?? (undefined as unknown as Construct), environment);
    this.broker = new RabbitMqBroker(this, SERVICE_NAMES.broker, props.broker);
    this.database = new MongoDatabase(this, SERVICE_NAMES.database, props.database);
    this.producer = new ProducerApi(this, SERVICE_NAMES.producer, props.producer);
    this.addConsumer(SERVICE_NAMES.consumer, props.consumer ?? {});
    const secrets = new Construct(this, 'secrets');
    for (const [name, secretProps] of Object.entries(props.secrets ?? {})) {
      new Secret(secrets, name, secretProps);
    }
    const volumes = new Construct(this, 'volumes');
    for (const [name, volumeProps] of Object.entries(props.volumes ?? {})) {
      new Volume(volumes, name, volumeProps);
    }
  }

  /** The environment name (the construct id). */
  public get environment(): string {
    return this.node.id;
  }

  /** Adds another consumer-type service (its own queue consumers, scaled on their own). */
  public addConsumer(name: string, props: ConsumerWorkersProps): ConsumerWorkers {
    const consumer = new ConsumerWorkers(this, name, props);
    this.consumerList.push(consumer);
    return consumer;
  }

  public get consumers(): readonly ConsumerWorkers[] {
    return this.consumerList;
  }

  public get workloads(): readonly Workload[] {
    return [this.broker, this.database, this.producer, ...this.consumerList];
  }

  public get secrets(): readonly Secret[] {
    return this.node.findChild('secrets').node.children.filter((c): c is Secret => c instanceof Secret);
  }

  public get volumes(): readonly Volume[] {
    return this.node.findChild('volumes').node.children.filter((c): c is Volume => c instanceof Volume);
  }
}
