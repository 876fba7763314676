import { mkdirSync, writeFileSync } from 'node:fs';
import { synthesize, JobSystem, ImageSource, SwarmPublishMode } from '../../constructs';
import { swarmTarget } from '../../constructs/swarm';
import { defineSystem } from '../../infra/app';
test('scratch', async () => {
  const dev = defineSystem('dev').props;
  const prod = defineSystem('prod').props;
  const systems = [
    new JobSystem(undefined, 'dev', {
      ...dev,
      swarm: { publishMode: SwarmPublishMode.HOST },
      producer: {
        ...dev.producer,
        image: ImageSource.build('services', 'producer', 'localhost:5000/async-jobs/producer'),
      },
      consumer: {
        ...dev.consumer,
        image: ImageSource.build('services', 'consumer', 'localhost:5000/async-jobs/consumer'),
      },
      acceptedGaps: [...(dev.acceptedGaps ?? []), { target: 'swarm', feature: 'published-port-host-ip', reason: 'x' }],
    }),
    new JobSystem(undefined, 'prod', {
      ...prod,
      acceptedGaps: [
        ...(prod.acceptedGaps ?? []),
        ...['broker-cluster', 'database-replica-set', 'autoscaling', 'ingress'].map((f) => ({
          target: 'swarm' as const,
          feature: f,
          reason: 'x',
        })),
      ],
    }),
  ];
  const r = await synthesize({ systems, targets: [swarmTarget], resolveOptions: { repoRoot: process.cwd() } });
  writeFileSync(
    '/tmp/swarm-scratch/out.json',
    JSON.stringify({ errors: r.errors, warnings: r.warnings, files: r.files.map((f) => f.path) }, null, 1),
  );
  for (const f of r.files) {
    mkdirSync(`/tmp/swarm-scratch/${f.path.split('/')[0]}`, { recursive: true });
    writeFileSync(`/tmp/swarm-scratch/${f.path}`, f.content);
  }
});
