import type { AcceptedGap } from './system';
import type { Cpu, Memory } from './quantity';
import type { WorkloadKind } from './workload';

/**
 * The model after defaults: nothing is optional, so renderers never decide a default themselves. Quantities stay
 * typed; each renderer asks them for its own spelling.
 */
export interface ResolvedSystem {
  readonly environment: string;
  /** Construct path of the system (the environment). */
  readonly path: string;
  readonly namespace: string;
  readonly highlyAvailable: boolean;
  /** Broker first, then database, producer and the consumers in declaration order. */
  readonly services: readonly ResolvedService[];
  readonly broker: ResolvedBrokerSettings;
  readonly database: ResolvedDatabaseSettings;
  readonly secrets: readonly ResolvedSecret[];
  readonly volumes: readonly ResolvedVolume[];
  readonly networks: readonly ResolvedNetwork[];
  readonly acceptedGaps: readonly AcceptedGap[];
  /** Public host name of the producer, or null when it has none. */
  readonly ingressHost: string | null;
  /** TLS at the Ingress, or null for none. */
  readonly ingressTls: { readonly secretName: string; readonly clusterIssuer: string | null } | null;
  /** How clients authenticate to the producer: the API keys secret's name, or null when authentication is off. */
  readonly apiKeysSecret: string | null;
  /** Base image reference of the services' Dockerfiles. */
  readonly nodeBaseImage: string;
  /** Settings only the Swarm target reads. */
  readonly swarm: { readonly publishMode: 'ingress' | 'host' };
}

export type ResolvedImage =
  | {
      readonly kind: 'build';
      /** Build context relative to the repository root. */
      readonly context: string;
      /** Which service's Dockerfile. */
      readonly service: string;
      /** Registry repository, or null when the image is only built locally. */
      readonly repository: string | null;
      /** Local name used when there is no repository: `async-jobs/<service>`. */
      readonly localName: string;
      /** Content tag: `src-<12 hex>` over the build context and the Dockerfile's inputs. */
      readonly tag: string;
      /** `<repository or localName>:<tag>`. */
      readonly reference: string;
    }
  | {
      readonly kind: 'registry';
      readonly reference: string;
    };

export interface ResolvedResources {
  readonly cpuRequest: Cpu;
  readonly cpuLimit: Cpu;
  readonly memoryRequest: Memory;
  readonly memoryLimit: Memory;
  readonly ephemeralStorageRequest: Memory;
  readonly ephemeralStorageLimit: Memory;
}

export interface ResolvedPort {
  /** IANA-style name (`http`, `amqp`, `mongodb`, `management`). */
  readonly name: string;
  readonly containerPort: number;
}

export interface ResolvedPublishedPort {
  readonly containerPort: number;
  readonly hostPort: number;
  readonly hostIp: string;
}

export interface EnvVar {
  readonly name: string;
  readonly value: string;
}

export interface ResolvedSecretUse {
  readonly secret: string;
  /** The variable naming the file. */
  readonly fileEnv: string;
  /** Where the file is mounted: `/run/secrets/<secret>`. */
  readonly path: string;
}

export interface ResolvedHealthCheck {
  readonly command: readonly string[];
  readonly intervalSeconds: number;
  readonly timeoutSeconds: number;
  readonly retries: number;
  readonly startPeriodSeconds: number;
  /** The same check over HTTP, for targets with HTTP probes; null when the service has none. */
  readonly http: { readonly port: number; readonly readinessPath: string; readonly livenessPath: string } | null;
}

export interface ResolvedAutoscaling {
  readonly minReplicas: number;
  readonly maxReplicas: number;
  readonly cpuUtilizationPercent: number;
  /** Messages per replica for queue-depth scaling, or null for CPU scaling only. */
  readonly queueLengthPerReplica: number | null;
}

export interface ResolvedSecurity {
  readonly user: number;
  readonly group: number;
  readonly readOnlyRootFilesystem: boolean;
  readonly tmpfs: readonly string[];
  /** Size limit of each tmpfs path; charged to the memory limit. */
  readonly tmpfsSize: Memory;
}

export interface ResolvedService {
  readonly kind: WorkloadKind;
  readonly name: string;
  readonly path: string;
  readonly image: ResolvedImage;
  /** Overrides the image's command; empty keeps the image's own. */
  readonly command: readonly string[];
  readonly replicas: number;
  readonly autoscaling: ResolvedAutoscaling | null;
  readonly resources: ResolvedResources;
  readonly ports: readonly ResolvedPort[];
  readonly publishedPorts: readonly ResolvedPublishedPort[];
  /** Sorted by name. */
  readonly env: readonly EnvVar[];
  /** Sorted by secret name. */
  readonly secrets: readonly ResolvedSecretUse[];
  readonly volumeMounts: readonly { readonly volume: string; readonly path: string }[];
  readonly healthCheck: ResolvedHealthCheck;
  readonly security: ResolvedSecurity;
  readonly terminationGracePeriodSeconds: number;
  /** Networks the service joins: always `backend`; `frontend` when it is reachable from outside. */
  readonly networks: readonly string[];
  /** Services that must be healthy before this one starts. */
  readonly dependsOn: readonly string[];
  /** Holds data (broker, database): pinned to nodes, never surged. */
  readonly stateful: boolean;
  /** Consumer-only settings the targets need (drain time). Zero for others. */
  readonly drainTimeoutSeconds: number;
  /** Restarts of a crash-looping container before the platform stops restarting it. */
  readonly restartMaxAttempts: number;
}

export interface ResolvedBrokerSettings {
  readonly serviceName: string;
  readonly queueType: 'classic' | 'quorum';
  readonly vhost: string;
  readonly username: string;
  readonly passwordSecret: string;
  readonly erlangCookieSecret: string;
  readonly management: boolean;
  readonly amqpPort: number;
  readonly managementPort: number;
  readonly storage: Memory;
}

export interface ResolvedDatabaseSettings {
  readonly serviceName: string;
  readonly databaseName: string;
  readonly username: string;
  readonly passwordSecret: string;
  readonly replicaSetName: string;
  readonly port: number;
  readonly storage: Memory;
}

export interface ResolvedSecret {
  readonly name: string;
  readonly path: string;
  readonly source:
    | { readonly kind: 'file'; readonly path: string }
    | { readonly kind: 'external' }
    | { readonly kind: 'invalid'; readonly got: string };
  readonly description: string;
}

export interface ResolvedVolume {
  readonly name: string;
  readonly path: string;
  readonly size: Memory;
  readonly retain: boolean;
}

export interface ResolvedNetwork {
  readonly name: 'frontend' | 'backend';
  /** No route to the outside world (Compose `internal: true`). */
  readonly internal: boolean;
}
