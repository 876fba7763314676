#!/usr/bin/env node
/**
 * The baseline of the synth benchmark: a bare cdk8s App that synthesizes only the Kubernetes chart of every
 * environment and writes it with `app.synth()`, with none of the other targets, validation, gap checks or file
 * comparison. `npm run synth` is compared with this process's wall time.
 *
 * Mode `chart` (used when the Kubernetes target is built): resolves the same model and calls only the target's
 * chart construction (`buildChart`), so both sides build identical objects. Mode `hand` (fallback, or
 * `--hand`): an equivalent chart written directly with cdk8s-plus-28 (two Deployments, two StatefulSets and
 * their Services per environment).
 *
 * Usage: node bench/build/bare-k8s.js --out <dir> [--hand]
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { App, Chart, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { REPO_ROOT } from './lib/servers.js';

const require = createRequire(import.meta.url);

/** The parts of the compiled model and K8s target this baseline calls (build/ has no .d.ts files). */
interface ChartModules {
  readonly app: { ENVIRONMENTS: readonly string[]; defineSystem(env: string): unknown };
  readonly model: { resolve(system: unknown, options: { repoRoot: string }): unknown };
  readonly chart: { buildChart(system: unknown, app: App): unknown };
}

const CHART_MODULE = join(REPO_ROOT, 'build', 'constructs', 'k8s', 'chart.js');

function loadChartModules(): ChartModules {
  return {
    app: require(join(REPO_ROOT, 'build', 'infra', 'app.js')) as ChartModules['app'],
    model: require(join(REPO_ROOT, 'build', 'constructs', 'model', 'index.js')) as ChartModules['model'],
    chart: require(CHART_MODULE) as ChartModules['chart'],
  };
}

const SECURITY: kplus.ContainerSecurityContextProps = {
  ensureNonRoot: true,
  readOnlyRootFilesystem: true,
  allowPrivilegeEscalation: false,
  user: 1000,
  group: 1000,
};

function resources(cpuMillis: number, memMiB: number): kplus.ContainerResources {
  return {
    cpu: { request: kplus.Cpu.millis(cpuMillis / 2), limit: kplus.Cpu.millis(cpuMillis) },
    memory: { request: Size.mebibytes(memMiB / 2), limit: Size.mebibytes(memMiB) },
  };
}

/** A hand-written chart with the same workloads as the model: producer, consumer, rabbitmq, mongo. */
function handChart(app: App, env: string, replicas: number): void {
  const chart = new Chart(app, env, { namespace: `async-jobs-${env}`, disableResourceNameHashes: true });
  const common = {
    AMQP_URL: 'amqp://app@rabbitmq:5672/%2F',
    MONGO_URL: 'mongodb://app@mongo:27017/jobs?authSource=admin',
  };
  const envVars = (extra: Record<string, string>): Record<string, kplus.EnvValue> =>
    Object.fromEntries(Object.entries({ ...common, ...extra }).map(([k, v]) => [k, kplus.EnvValue.fromValue(v)]));

  const producer = new kplus.Deployment(chart, 'producer', {
    metadata: { name: 'producer' },
    replicas,
    containers: [
      {
        name: 'producer',
        image: 'ghcr.io/async-jobs/producer:bench',
        portNumber: 8080,
        envVariables: envVars({ PORT: '8080' }),
        resources: resources(1000, 512),
        securityContext: SECURITY,
        readiness: kplus.Probe.fromHttpGet('/readyz', { port: 8080 }),
        liveness: kplus.Probe.fromHttpGet('/healthz', { port: 8080 }),
      },
    ],
  });
  producer.exposeViaService({ name: 'producer', ports: [{ port: 8080 }] });

  new kplus.Deployment(chart, 'consumer', {
    metadata: { name: 'consumer' },
    replicas,
    containers: [
      {
        name: 'consumer',
        image: 'ghcr.io/async-jobs/consumer:bench',
        portNumber: 8081,
        envVariables: envVars({ PORT: '8081', PREFETCH: '10', CONCURRENCY: '10' }),
        resources: resources(1000, 512),
        securityContext: SECURITY,
        readiness: kplus.Probe.fromHttpGet('/readyz', { port: 8081 }),
        liveness: kplus.Probe.fromHttpGet('/healthz', { port: 8081 }),
      },
    ],
  });

  for (const [name, image, port, path] of [
    ['rabbitmq', 'rabbitmq:4.1.4', 5672, '/var/lib/rabbitmq'],
    ['mongo', 'mongo:8.0.12', 27017, '/data/db'],
  ] as const) {
    const service = new kplus.Service(chart, `${name}-service`, {
      metadata: { name },
      clusterIP: 'None',
      ports: [{ port }],
    });
    const set = new kplus.StatefulSet(chart, name, {
      metadata: { name },
      service,
      replicas,
      containers: [
        {
          name,
          image,
          portNumber: port,
          resources: resources(2000, 2048),
          securityContext: { ...SECURITY, readOnlyRootFilesystem: false },
        },
      ],
    });
    const data = kplus.Volume.fromEmptyDir(chart, `${name}-data`, 'data');
    set.containers[0]?.mount(path, data);
  }
}

function main(): void {
  const { values } = parseArgs({ options: { out: { type: 'string' }, hand: { type: 'boolean', default: false } } });
  if (values.out === undefined) throw new Error('--out: missing, expected a directory');
  const app = new App({ outdir: values.out, outputFileExtension: '.k8s.yaml' });
  if (!values.hand && existsSync(CHART_MODULE)) {
    const m = loadChartModules();
    for (const env of m.app.ENVIRONMENTS) {
      m.chart.buildChart(m.model.resolve(m.app.defineSystem(env), { repoRoot: REPO_ROOT }), app);
    }
  } else {
    handChart(app, 'dev', 1);
    handChart(app, 'prod', 3);
  }
  app.synth();
}

main();
