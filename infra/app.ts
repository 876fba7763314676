/**
 * The one definition of the async job system, per environment. Every target is synthesized from this.
 */
import {
  type AcceptedGap,
  type TargetName,
  Cpu,
  Duration,
  ImageSource,
  JobSystem,
  Memory,
  QueueType,
  SecretSource,
  SwarmPublishMode,
} from '../constructs/model';

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
    'mongo-keyfile': {
      source: source('mongo-keyfile'),
      description: 'Key the MongoDB replica set members authenticate each other with',
    },
    'rabbitmq-erlang-cookie': {
      source: source('rabbitmq-erlang-cookie'),
      description: 'Erlang cookie shared by the RabbitMQ cluster nodes',
    },
    'rabbitmq-password': { source: source('rabbitmq-password'), description: 'RabbitMQ application user password' },
    'api-keys': {
      source: source('api-keys'),
      description: 'API clients of the producer: one per line, client id, scopes and the sha256 of its token',
    },
  };
}

/**
 * What the single-host targets (Compose, Swarm as modelled, Pulumi's Docker provider) cannot express of prod,
 * accepted on purpose: prod's high availability is the Kubernetes target's job.
 */
function singleHostGaps(target: TargetName): AcceptedGap[] {
  return [
    {
      target,
      feature: 'broker-cluster',
      reason: 'the HA RabbitMQ cluster runs on Kubernetes; this target runs one node',
    },
    {
      target,
      feature: 'database-replica-set',
      reason: 'the MongoDB replica set runs on Kubernetes; this target runs one member',
    },
    { target, feature: 'autoscaling', reason: 'no autoscaler here; the minimum replica count is used' },
    { target, feature: 'ingress', reason: 'the operator fronts the producer with their own proxy or load balancer' },
    {
      target,
      feature: 'ingress-tls',
      reason: 'TLS is terminated by that proxy or load balancer; the target itself has no TLS-terminating edge',
    },
  ];
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
          image: ImageSource.build('services', 'producer', 'localhost:5000/async-jobs/producer'),
          publishedPorts: [{ containerPort: 8080, hostPort: 8080 }],
        },
        consumer: {
          image: ImageSource.build('services', 'consumer', 'localhost:5000/async-jobs/consumer'),
          prefetch: 10,
          enableTestHandlers: true,
        },
        // Swarm's routing mesh needs IPVS, which development machines (and ours) may lack.
        swarm: { publishMode: SwarmPublishMode.HOST },
        acceptedGaps: [
          {
            target: 'swarm',
            feature: 'published-port-host-ip',
            reason: 'Swarm cannot bind a published port to 127.0.0.1; the dev swarm is a local test machine',
          },
        ],
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
          // cert-manager issues the certificate into jobs-example-com-tls; the Ingress redirects HTTP to HTTPS.
          ingressTls: { clusterIssuer: 'letsencrypt-prod' },
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
        acceptedGaps: [...singleHostGaps('compose'), ...singleHostGaps('swarm'), ...singleHostGaps('pulumi')],
      });
  }
}
