import { Construct } from 'constructs';
import type { HealthCheckProps } from './health';
import type { ImageSource } from './image';
import type { Cpu, Duration, Memory } from './quantity';

/** Requests and limits. Every target gets limits; requests are used where the target has them. */
export interface ResourcesProps {
  /** @default the kind's default (see `defaults.ts`) */
  readonly cpuRequest?: Cpu;
  /** @default the kind's default */
  readonly cpuLimit?: Cpu;
  /** @default the kind's default */
  readonly memoryRequest?: Memory;
  /** @default the kind's default */
  readonly memoryLimit?: Memory;
  /** @default Memory.mebibytes(64) */
  readonly ephemeralStorageRequest?: Memory;
  /** @default Memory.mebibytes(256) */
  readonly ephemeralStorageLimit?: Memory;
}

/** A container port published on the host. Only for local environments; production goes through an ingress. */
export interface PublishedPort {
  /** The port inside the container. */
  readonly containerPort: number;
  /** The port on the host. */
  readonly hostPort: number;
  /** @default '127.0.0.1' */
  readonly hostIp?: string;
}

/** A volume from the system's declared volumes, mounted into the container. */
export interface VolumeMount {
  /** Name of a volume declared with `JobSystem.addVolume` (or a built-in one such as `rabbitmq-data`). */
  readonly volume: string;
  /** Absolute path in the container. */
  readonly path: string;
}

/** A secret from the system's declared secrets, delivered as a file plus a `<env>_FILE` variable. */
export interface SecretUse {
  /** Name of a secret declared with `JobSystem.addSecret`. */
  readonly secret: string;
  /** The variable that names the file, e.g. `MONGO_PASSWORD_FILE`. */
  readonly fileEnv: string;
}

/** Horizontal autoscaling. A target that owns replicas through an autoscaler omits the fixed count. */
export interface AutoscalingProps {
  readonly minReplicas: number;
  readonly maxReplicas: number;
  /** Target average CPU utilisation in percent of the request. @default 70 */
  readonly cpuUtilizationPercent?: number;
  /** Scale on queue depth (messages per replica) with KEDA where available. @default CPU scaling only */
  readonly queueLengthPerReplica?: number;
}

/** Props shared by every workload of the system. */
export interface WorkloadProps {
  /** @default the kind's image (built from `services/` or the pinned upstream image) */
  readonly image?: ImageSource;
  /** @default 1 */
  readonly replicas?: number;
  /** @default no autoscaling */
  readonly autoscaling?: AutoscalingProps;
  /** @default the kind's defaults */
  readonly resources?: ResourcesProps;
  /** Extra plain environment variables (never secrets). @default none */
  readonly env?: Readonly<Record<string, string>>;
  /** Extra secrets delivered as files. @default none beyond the kind's own */
  readonly secrets?: readonly SecretUse[];
  /** @default none */
  readonly publishedPorts?: readonly PublishedPort[];
  /** Extra volume mounts. @default none beyond the kind's own data volume */
  readonly volumeMounts?: readonly VolumeMount[];
  /** @default the kind's health check */
  readonly healthCheck?: HealthCheckProps;
  /** @default true */
  readonly readOnlyRootFilesystem?: boolean;
  /** Writable in-memory paths. @default ['/tmp'] */
  readonly tmpfs?: readonly string[];
  /**
   * Size limit of each `tmpfs` path. A tmpfs lives in memory: what is written there counts against
   * `resources.memoryLimit` (a Kubernetes memory-backed `emptyDir` and a Docker tmpfs are both charged to the
   * container's memory cgroup), so all of them together must stay below that limit. Without a limit a tmpfs may
   * grow until the container is OOM-killed.
   * @see https://kubernetes.io/docs/concepts/storage/volumes/#emptydir
   * @default Memory.mebibytes(64)
   */
  readonly tmpfsSize?: Memory;
  /** Numeric user id. @default 10001 for the services, the upstream image's own user for broker and database */
  readonly user?: number;
  /** Numeric group id. @default same as `user` */
  readonly group?: number;
  /** Time between SIGTERM and SIGKILL. @default Duration.seconds(30) */
  readonly terminationGracePeriod?: Duration;
}

/** The kinds of workload the system has. */
export type WorkloadKind = 'producer' | 'consumer' | 'broker' | 'database';

/** Base of the four workload constructs; holds props only. Defaults are resolved in `resolve.ts`. */
export abstract class Workload<P extends WorkloadProps = WorkloadProps> extends Construct {
  public abstract readonly kind: WorkloadKind;

  protected constructor(
    scope: Construct,
    id: string,
    public readonly props: P,
  ) {
    super(scope, id);
  }
}
