/**
 * What a real engine does that the mocks do not, pinned as tests (issue 14; each was a failure of `pulumi up`
 * against a real Docker engine with the Docker provider):
 *
 * - the engine runs the program, and the provider, with the folder of `main` (build/infra) as working directory;
 * - the provider reads some inputs back in its own forms, and any other form is a change on every `pulumi up`
 *   (for `cpus`, a replacement of the broker and the database);
 * - Docker refuses the provider's `uploads` into a container whose root filesystem is read-only;
 * - a second run must give the engine exactly the inputs of the first, or it shows a diff.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { Cpu, Memory } from '../../constructs/model';
import {
  IMAGE_BUILDERS,
  checkSecretsWriterExit,
  cpusProblem,
  goDuration,
  imageBuilderFromConfig,
  memorySwapMebibytes,
  projectRoot,
  providerCpus,
} from '../../constructs/pulumi';
import main from '../../infra/pulumi';
import { REPO_ROOT } from '../helpers';
import {
  deploy,
  drain,
  plain,
  Recorder,
  resolvedSystem,
  settle,
  TYPES,
  useStack,
  type RecordedResource,
} from './harness';

const DEV_SECRETS = ['api-keys', 'mongo-password', 'rabbitmq-password'];

/** Runs infra/pulumi.ts as the engine does, from `cwd`, and returns what it registered. */
async function runMain(cwd: string, stack = 'dev', recorder = new Recorder()): Promise<Recorder> {
  await useStack(recorder, stack, DEV_SECRETS);
  const before = process.cwd();
  process.chdir(cwd);
  try {
    const outputs = main();
    await settle(outputs.containerNames);
    await settle(outputs.producerUrl);
    await drain();
  } finally {
    process.chdir(before);
  }
  return recorder;
}

interface HealthcheckInputs {
  tests: string[];
  interval: string;
  timeout: string;
  startPeriod: string;
  startInterval?: string;
  retries: number;
}

function containerInputs(r: RecordedResource): Record<string, unknown> & { healthcheck?: HealthcheckInputs } {
  return plain(r.inputs) as Record<string, unknown> & { healthcheck?: HealthcheckInputs };
}

describe('the working directory: the engine runs main in build/infra, not in the project root', () => {
  const buildInfra = join(REPO_ROOT, 'build', 'infra');
  beforeAll(() => mkdirSync(buildInfra, { recursive: true }));

  test('run from build/infra, the program finds dist/ and gives the provider absolute build paths', async () => {
    const recorder = await runMain(buildInfra);
    const images = recorder.ofType(TYPES.image).map((r) => plain(r.inputs) as { build: Record<string, string> });
    expect(images).toHaveLength(2);
    for (const { build } of images) {
      expect({ context: isAbsolute(build.context ?? ''), dockerfile: isAbsolute(build.dockerfile ?? '') }).toEqual({
        context: true,
        dockerfile: true,
      });
      expect(build.context).toBe(join(REPO_ROOT, 'services'));
      expect(build.dockerfile).toMatch(new RegExp(`^${REPO_ROOT}/dist/dev/(producer|consumer)\\.Dockerfile$`));
    }
  });

  test('run from any other directory, it registers exactly the same inputs', async () => {
    const elsewhere = mkdtempSync(join(tmpdir(), 'pulumi-cwd-'));
    try {
      const fromRoot = await runMain(REPO_ROOT);
      const fromElsewhere = await runMain(elsewhere);
      expect(fromElsewhere.resources).toEqual(fromRoot.resources);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  test("the engine's root directory is the project root; without an engine the SDK answers a relative placeholder", async () => {
    await useStack(new Recorder(), 'dev', DEV_SECRETS);
    expect(pulumi.runtime.getRootDirectory()).toBe('rootDirectory');
    expect(projectRoot('/srv/checkout', buildInfra)).toBe('/srv/checkout');
    expect(projectRoot('rootDirectory', buildInfra)).toBe(REPO_ROOT);
    expect(projectRoot('', join(REPO_ROOT, 'infra'))).toBe(REPO_ROOT);
  });

  test('with no Pulumi.yaml above the program, it says so', () => {
    const stray = mkdtempSync(join(tmpdir(), 'pulumi-stray-'));
    try {
      expect(() => projectRoot('rootDirectory', stray)).toThrow(
        `No Pulumi.yaml in ${stray} or above it; expected the program inside its project`,
      );
    } finally {
      rmSync(stray, { recursive: true, force: true });
    }
  });
});

describe("inputs in the Docker provider's read-back forms", () => {
  // What the provider's Read writes into state for what Docker stores (cpus: helpers.go
  // nanoInt64ToDecimalString, over NanoCPUs; durations: Go's time.Duration.String(); memory_swap: MemorySwap in
  // MiB, which Docker sets to twice the memory when it is not given). The first column is what the engine
  // stores; the provider's own unit test holds the 1, 1.5, 2 and 2.25 rows.
  test.each([
    { millicores: 1000, readBack: '1.0' },
    { millicores: 1500, readBack: '1.5' },
    { millicores: 2000, readBack: '2.0' },
    { millicores: 2250, readBack: '2.25' },
    { millicores: 500, readBack: '0.5' },
    { millicores: 250, readBack: '0.25' },
    { millicores: 100, readBack: '0.1' },
    { millicores: 125, readBack: '0.125' },
    { millicores: 10500, readBack: '10.5' },
    { millicores: 10000, readBack: '10.' },
    { millicores: 50, readBack: '0.1' },
    { millicores: 1, readBack: '0.0' },
  ])('cpus: NanoCPUs of $millicores millicores read back as "$readBack"', ({ millicores, readBack }) => {
    expect(providerCpus(Cpu.millis(millicores))).toBe(readBack);
  });

  test('a CPU limit whose read-back form is another amount is refused, naming the service and the form', () => {
    const dev = resolvedSystem('dev');
    const producer = dev.services.find((s) => s.name === 'producer');
    if (!producer) throw new Error('no producer');
    const tiny = { ...producer, resources: { ...producer.resources, cpuLimit: Cpu.millis(50) } };
    expect(cpusProblem(tiny)).toBe(
      '[dev/producer] pulumi: resources.cpuLimit 50m is read back by the Docker provider as cpus "0.1", another amount, ' +
        'so every `pulumi up` would replace the container; expected a limit the provider keeps (a multiple of 100m, or 0.105 and the like)',
    );
    expect(cpusProblem(producer)).toBeUndefined();
  });

  test.each([
    { seconds: 0, readBack: '0s' },
    { seconds: 5, readBack: '5s' },
    { seconds: 30, readBack: '30s' },
    { seconds: 59, readBack: '59s' },
    { seconds: 60, readBack: '1m0s' },
    { seconds: 90, readBack: '1m30s' },
    { seconds: 600, readBack: '10m0s' },
    { seconds: 3600, readBack: '1h0m0s' },
    { seconds: 3725, readBack: '1h2m5s' },
  ])('durations: $seconds s read back as "$readBack"', ({ seconds, readBack }) => {
    expect(goDuration(seconds)).toBe(readBack);
  });

  test('memorySwap: unset reads back as twice the memory limit, so it is sent as that', () => {
    const mongo = resolvedSystem('dev').services.find((s) => s.name === 'mongo');
    if (!mongo) throw new Error('no mongo');
    expect(memorySwapMebibytes({ ...mongo, resources: { ...mongo.resources, memoryLimit: Memory.gibibytes(1) } })).toBe(
      2048,
    );
  });

  describe.each(['dev', 'prod'] as const)('every container of %s', (env) => {
    let containers: RecordedResource[];
    beforeAll(async () => {
      const accept = env === 'prod' ? ['autoscaling', 'broker-cluster', 'database-replica-set', 'ingress'] : [];
      containers = (await deploy(resolvedSystem(env, accept))).recorder.ofType(TYPES.container);
    });

    test('sends cpus, health check durations and memorySwap in the read-back form', () => {
      const goForm = /^(?:\d+h)?(?:\d+m)?\d+s$/;
      for (const r of containers) {
        const c = containerInputs(r);
        if (c.cpus !== undefined) expect({ container: r.name, cpus: c.cpus }).toMatchObject({ cpus: /^\d+\.\d*$/ });
        if (c.memory !== undefined) {
          expect({ container: r.name, memorySwap: c.memorySwap }).toEqual({
            container: r.name,
            memorySwap: 2 * (c.memory as number),
          });
        }
        const hc = c.healthcheck;
        if (!hc) throw new Error(`${r.name} has no health check: Docker would copy the image's, read back as a change`);
        for (const field of ['interval', 'timeout', 'startPeriod'] as const) {
          expect({ container: r.name, field, value: hc[field] }).toMatchObject({ value: goForm });
        }
        // Round trip: the Go form of what the duration means is the very string sent.
        for (const field of ['interval', 'timeout', 'startPeriod'] as const) {
          const m = /^(?:(\d+)h)?(?:(\d+)m)?(\d+)s$/.exec(hc[field]);
          const secs = Number(m?.[1] ?? 0) * 3600 + Number(m?.[2] ?? 0) * 60 + Number(m?.[3]);
          expect({ container: r.name, field, value: hc[field] }).toEqual({
            container: r.name,
            field,
            value: goDuration(secs),
          });
        }
      }
    });

    test('no container combines a read-only root filesystem with uploads (Docker refuses the copy)', () => {
      expect(containers.length).toBeGreaterThan(0);
      for (const r of containers) {
        const c = containerInputs(r);
        const uploads = (c.uploads ?? []) as unknown[];
        expect({ container: r.name, readOnlyWithUploads: c.readOnly === true && uploads.length > 0 }).toEqual({
          container: r.name,
          readOnlyWithUploads: false,
        });
      }
      const readOnly = containers.filter((r) => containerInputs(r).readOnly === true);
      expect(readOnly.length).toBeGreaterThan(0);
    });

    test('a container the provider leaves exited (the secrets writers) does not have to keep running and is waited for', () => {
      for (const r of containers.filter((x) => containerInputs(x).uploads !== undefined)) {
        expect({ container: r.name, ...containerInputs(r) }).toMatchObject({
          container: r.name,
          mustRun: false,
          attach: true,
          restart: 'no',
          readOnly: false,
          networkMode: 'none',
        });
      }
    });
  });
});

describe('determinism: a second run gives the engine the same inputs', () => {
  test.each(['dev', 'prod'] as const)(
    '%s: two runs register identical inputs and options for every resource',
    async (env) => {
      const accept = env === 'prod' ? ['autoscaling', 'broker-cluster', 'database-replica-set', 'ingress'] : [];
      const first = await deploy(resolvedSystem(env, accept));
      const second = await deploy(resolvedSystem(env, accept));
      expect(second.recorder.resources.length).toBeGreaterThan(10);
      const byName = (rs: readonly RecordedResource[]) =>
        Object.fromEntries(rs.map((r) => [`${r.type}::${r.name}`, r.inputs]));
      expect(byName(second.recorder.resources)).toEqual(byName(first.recorder.resources));
      expect(Object.fromEntries(second.recorder.options)).toEqual(Object.fromEntries(first.recorder.options));
    },
  );
});

describe('the secrets writer', () => {
  test('a writer that did not exit with 0 stops the deployment and names the container to look at', () => {
    const mongo = resolvedSystem('dev').services.find((s) => s.name === 'mongo');
    if (!mongo) throw new Error('no mongo');
    expect(() => checkSecretsWriterExit(mongo, 'async-jobs-dev-mongo-secrets', 0)).not.toThrow();
    expect(() => checkSecretsWriterExit(mongo, 'async-jobs-dev-mongo-secrets', 1)).toThrow(
      '[dev/mongo] pulumi: container async-jobs-dev-mongo-secrets, which writes the secret files, exited with code 1; see `docker logs async-jobs-dev-mongo-secrets`',
    );
    expect(() => checkSecretsWriterExit(mongo, 'async-jobs-dev-mongo-secrets', undefined)).toThrow(
      'exited with code undefined',
    );
  });
});

describe('stack config imageBuilder', () => {
  test('is BuildKit unless set, classic when set so, and anything else names the key and the choices', async () => {
    await useStack(new Recorder(), 'dev', DEV_SECRETS);
    expect(imageBuilderFromConfig(new pulumi.Config())).toBe('buildkit');
    pulumi.runtime.setConfig('async-jobs:imageBuilder', 'classic');
    expect(imageBuilderFromConfig(new pulumi.Config())).toBe('classic');
    expect(IMAGE_BUILDERS.classic).toBe('BuilderV1');
    pulumi.runtime.setConfig('async-jobs:imageBuilder', 'kaniko');
    expect(() => imageBuilderFromConfig(new pulumi.Config())).toThrow(
      'Stack config async-jobs:imageBuilder: got "kaniko", expected one of buildkit, classic',
    );
  });
});
