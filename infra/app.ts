/**
 * The one definition of the async job system, per environment. Every target is synthesized from this.
 */
import { Cpu, Duration, ImageSource, JobSystem, Memory, QueueType, SecretSource } from '../constructs/model';

/** The environments this repository deploys, in synth order. */
export const ENVIRONMENTS = ['dev', 'prod'] as const;
export type EnvironmentName = (typeof ENVIRONMENTS)[number];

function secretsFor(env: EnvironmentName): Record<string, { source: SecretSource; description: string }> {
  // Compose and Swarm read these files on the deploying machine; Kubernetes references Secrets of the same
  // names and Pulumi reads secret config values. `npm run secrets -- <env>` creates random ones.
  const source = (name: string): SecretSource => SecretSource.file(`.secrets/${env}/${name}`);
  return {
    'mongo-password': {
      source: source('mongo-password'),
      description: 'MongoDB root password the services connect with',
    },
    'rabbitmq-erlang-cookie': {
      source: source('rabbitmq-erlang-cookie'),
      description: 'Erlang cookie shared by the RabbitMQ cluster nodes',
    },
    'rabbitmq-password': { source: source('rabbitmq-password'), description: 'RabbitMQ application user password' },
  };
}

/** Builds the model of one environment. */
export function defineSystem(env: EnvironmentName): JobSystem {
  switch (env) {
    case 'dev':
      return new JobSystem(undefined, 'dev', {
        secrets: secretsFor(env),
        broker: {
          image: ImageSource.registry('rabbitmq:4.1-management'),
          management: true,
          publishedPorts: [{ containerPort: 15672, hostPort: 15672 }],
        },
        database: { image: ImageSource.registry('mongo:8.0') },
        producer: {
          publishedPorts: [{ containerPort: 8080, hostPort: 8080 }],
        },
        consumer: { prefetch: 10, enableTestHandlers: true },
      });
    case 'prod':
      return new JobSystem(undefined, 'prod', {
        highlyAvailable: true,
        secrets: secretsFor(env),
        broker: {
          image: ImageSource.registry('rabbitmq:4.1.4'),
          replicas: 3,
          queueType: QueueType.QUORUM,
          storageSize: Memory.gibibytes(20),
          resources: {
            cpuRequest: Cpu.millis(500),
            cpuLimit: Cpu.cores(2),
            memoryRequest: Memory.gibibytes(1),
            memoryLimit: Memory.gibibytes(2),
          },
        },
        database: {
          image: ImageSource.registry('mongo:8.0.12'),
          replicas: 3,
          storageSize: Memory.gibibytes(50),
          resources: {
            cpuRequest: Cpu.millis(500),
            cpuLimit: Cpu.cores(2),
            memoryRequest: Memory.gibibytes(2),
            memoryLimit: Memory.gibibytes(4),
          },
        },
        producer: {
          image: ImageSource.build('services', 'producer', 'ghcr.io/async-jobs/producer'),
          replicas: 3,
          autoscaling: { minReplicas: 3, maxReplicas: 10, cpuUtilizationPercent: 70 },
          ingressHost: 'jobs.example.com',
          resources: {
            cpuRequest: Cpu.millis(250),
            cpuLimit: Cpu.cores(1),
            memoryRequest: Memory.mebibytes(256),
            memoryLimit: Memory.mebibytes(512),
          },
        },
        consumer: {
          image: ImageSource.build('services', 'consumer', 'ghcr.io/async-jobs/consumer'),
          replicas: 4,
          autoscaling: { minReplicas: 4, maxReplicas: 20, queueLengthPerReplica: 100 },
          prefetch: 20,
          concurrency: 10,
          drainTimeout: Duration.seconds(50),
          terminationGracePeriod: Duration.seconds(60),
          resources: {
            cpuRequest: Cpu.millis(250),
            cpuLimit: Cpu.cores(1),
            memoryRequest: Memory.mebibytes(256),
            memoryLimit: Memory.mebibytes(512),
          },
        },
        acceptedGaps: [
          {
            target: 'compose',
            feature: 'broker-cluster',
            reason: 'Compose is for a single host; the HA broker runs on Kubernetes',
          },
          {
            target: 'compose',
            feature: 'database-replica-set',
            reason: 'Compose is for a single host; the replica set runs on Kubernetes',
          },
          {
            target: 'compose',
            feature: 'autoscaling',
            reason: 'a single host has fixed capacity; the minimum replica count is used',
          },
          {
            target: 'compose',
            feature: 'ingress',
            reason: 'on a single host the operator fronts the producer with their own proxy',
          },
        ],
      });
  }
}
