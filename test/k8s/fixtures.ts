import {
  ImageSource,
  JobSystem,
  type JobSystemProps,
  QueueType,
  resolve,
  type ResolvedSystem,
  SecretSource,
} from '../../constructs/model';
import { REPO_ROOT } from '../helpers';

/** A manifest object as parsed from YAML. */
// Manifests are arbitrary nested JSON; tests navigate them with explicit casts at each step.
export type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export const SECRET_NAMES = ['api-keys', 'mongo-password', 'rabbitmq-erlang-cookie', 'rabbitmq-password'] as const;

/** A small model in the shape of infra/app.ts, with every secret read from `secretPath(name)`. */
export function testSystem(
  env: string,
  props: Partial<JobSystemProps> = {},
  secretPath: (name: string) => string = (n) => `.secrets/${env}/${n}`,
): JobSystem {
  const secrets = Object.fromEntries(
    SECRET_NAMES.map((n) => [n, { source: SecretSource.file(secretPath(n)), description: n }]),
  );
  return new JobSystem(undefined, env, {
    ...props,
    secrets: { ...secrets, ...(props.secrets ?? {}) },
    broker: { image: ImageSource.registry('rabbitmq:4.1.4'), ...(props.broker ?? {}) },
    database: { image: ImageSource.registry('mongo:8.0.12'), ...(props.database ?? {}) },
  });
}

/** A highly available model like prod. */
export function clusterProps(overrides: Partial<JobSystemProps> = {}): Partial<JobSystemProps> {
  return {
    highlyAvailable: true,
    producer: { image: ImageSource.build('services', 'producer', 'ghcr.io/x/producer'), replicas: 2 },
    consumer: { image: ImageSource.build('services', 'consumer', 'ghcr.io/x/consumer'), replicas: 2 },
    ...overrides,
    broker: { replicas: 3, queueType: QueueType.QUORUM, ...(overrides.broker ?? {}) },
    database: { replicas: 3, ...(overrides.database ?? {}) },
  };
}

export function resolved(system: JobSystem): ResolvedSystem {
  return resolve(system, { repoRoot: REPO_ROOT, imageTag: () => 'src-000000000000' });
}

/** Pod templates of the workloads in a manifest list, with their owner. */
export function podTemplates(
  docs: readonly Obj[],
): { owner: string; kind: string; labels: Obj; spec: Obj; selector: Obj | undefined }[] {
  return docs
    .filter((d) => ['Deployment', 'StatefulSet', 'Job'].includes(d.kind as string))
    .map((d) => ({
      owner: `${d.kind}/${d.metadata.name}`,
      kind: d.kind as string,
      labels: d.spec.template.metadata.labels as Obj,
      spec: d.spec.template.spec as Obj,
      selector: d.spec.selector as Obj | undefined,
    }));
}
