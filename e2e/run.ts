#!/usr/bin/env node
/**
 * End to end on a real Docker engine (issue 8): builds the images the synthesized files need, brings the system up
 * with the Compose file and then the Swarm stack, runs the smoke client and the faults, tears everything down and
 * prints a report ending in `N passed, N failed`. Run `node e2e/run.ts --help`.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureApiClient, JobsClient } from './lib/client.ts';
import { findCompose } from './lib/compose-cli.ts';
import { ensureDaemon, ensureHostTools, type Daemon } from './lib/daemon.ts';
import { ComposeDeployment, SwarmDeployment, type Deployment } from './lib/deploy.ts';
import { check, docker, run } from './lib/exec.ts';
import { dockerfileBases, readDeployFile, type DeployFile } from './lib/files.ts';
import { ensureImages } from './lib/images.ts';
import { kubernetesPhase } from './lib/kubernetes/phase.ts';
import { PhaseFailed, Report } from './lib/report.ts';
import {
  brokerRestart,
  checkHardening,
  checkStartOrder,
  consumerKill,
  databaseOutage,
  PRODUCER,
  scaleConsumers,
  smoke,
  waitHealthy,
  type FaultContext,
} from './lib/scenarios.ts';

const HELP = `Usage: npm run e2e -- [options]

Runs the synthesized dist/<env>/ files on a real Docker engine and a local Kubernetes: stand-in images (no
registry), the service images from the synthesized Dockerfiles, Compose up + smoke + faults, Swarm deploy + smoke,
a single-node Kubernetes built from package registries (cached in .tools/k8s) with the manifest deployed as the
README says + pod, PodSecurity and NetworkPolicy checks + smoke + faults, then dist/prod on the same API server
with its pods on kwok fake nodes (admission, scheduling, drains against the PodDisruptionBudgets), teardown. Starts dockerd when none
answers and stops what it started. Prints a report; the last line is "N passed, N failed".

Options:
  --env <name>        Environment whose files to run (default: dev)
  --dist <dir>        Where the synthesized files are (default: dist)
  --only <target>     compose, swarm or kubernetes (default: all three)
  --no-faults         Skip the fault scenarios
  --swarm-faults <l>  Faults to run on Swarm too: comma-separated names, all, or none
                      (default: consumer-kill,scale-consumers; Compose always runs all four)
  --compose <v>       v2 (default; built from the Go module proxy once, cached) or v1 (Debian's docker-compose 1.29)
  --keda              Kubernetes: also build the KEDA operator (several minutes cold, cached) and show it
                      scaling dev's consumer on the real queue depth
  --no-build          Use the service images already tagged (e.g. by \`npm run images\`) instead of building them
  --keep              Leave the deployment (and dockerd, the swarm, the cluster) running for inspection
  -h, --help          Show this help

Exit codes: 0 all checks passed, 1 a check failed, 2 bad options.`;

const FAULTS: readonly string[] = ['consumer-kill', 'broker-restart', 'database-outage', 'scale-consumers'];
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CACHE = join(REPO, '.tools', 'e2e-cache');

interface Options {
  readonly env: string;
  readonly dist: string;
  readonly only: 'compose' | 'swarm' | 'kubernetes' | undefined;
  readonly faults: boolean;
  readonly swarmFaults: ReadonlySet<string>;
  readonly keep: boolean;
  readonly build: boolean;
  readonly keda: boolean;
  readonly compose: 'v1' | 'v2';
}

function options(): Options {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        env: { type: 'string', default: 'dev' },
        dist: { type: 'string', default: 'dist' },
        only: { type: 'string' },
        'no-faults': { type: 'boolean', default: false },
        'swarm-faults': { type: 'string', default: 'consumer-kill,scale-consumers' },
        compose: { type: 'string', default: 'v2' },
        keep: { type: 'boolean', default: false },
        'no-build': { type: 'boolean', default: false },
        keda: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    process.stderr.write(`e2e: ${e instanceof Error ? e.message : String(e)}\n${HELP}\n`);
    process.exit(2);
  }
  const v = parsed.values;
  if (v.help) {
    process.stdout.write(`${HELP}\n`);
    process.exit(0);
  }
  if (v.only !== undefined && v.only !== 'compose' && v.only !== 'swarm' && v.only !== 'kubernetes') {
    process.stderr.write(`e2e: --only: got ${JSON.stringify(v.only)}, expected compose, swarm or kubernetes\n`);
    process.exit(2);
  }
  if (v.compose !== 'v1' && v.compose !== 'v2') {
    process.stderr.write(`e2e: --compose: got ${JSON.stringify(v.compose)}, expected v1 or v2\n`);
    process.exit(2);
  }
  const swarmFaults =
    v['swarm-faults'] === 'all' ? FAULTS : v['swarm-faults'] === 'none' ? [] : v['swarm-faults'].split(',');
  const unknownFault = swarmFaults.filter((f) => !FAULTS.includes(f));
  if (unknownFault.length > 0) {
    process.stderr.write(
      `e2e: --swarm-faults: got ${unknownFault.join(', ')}, expected some of ${FAULTS.join(', ')}, all or none\n`,
    );
    process.exit(2);
  }
  if (!/^[a-z0-9-]+$/.test(v.env)) {
    process.stderr.write(`e2e: --env: got ${JSON.stringify(v.env)}, expected an environment name such as dev\n`);
    process.exit(2);
  }
  return {
    env: v.env,
    dist: resolve(REPO, v.dist),
    only: v.only,
    faults: !v['no-faults'],
    swarmFaults: new Set(swarmFaults),
    keep: v.keep,
    build: !v['no-build'],
    keda: v.keda,
    compose: v.compose,
  };
}

/**
 * Creates the secret files the deploy files read when missing (random, like `npm run secrets`). Compose bind-mounts
 * a file secret with its host mode and owner, and the services run as 10001 and 999, so the files must be
 * readable by them: 0644 inside the 0700 directory keeps them from other host users.
 * @see https://docs.docker.com/compose/how-tos/use-secrets/
 */
/** The bearer token of the e2e's API client, fresh per run; only its hash reaches the api-keys file. */
const E2E_TOKEN = randomBytes(32).toString('base64url');

function ensureSecrets(report: Report, files: readonly DeployFile[]): string[] {
  const created: string[] = [];
  for (const f of files) {
    for (const path of Object.values(f.secretFiles)) {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      chmodSync(dirname(path), 0o700);
      if (basename(path) === 'api-keys') {
        // Not random: the producer's API keys file, with the e2e's own client in it (services/README.md).
        if (ensureApiClient(path, E2E_TOKEN)) created.push(path);
      } else if (!existsSync(path) || statSync(path).size === 0) {
        writeFileSync(path, randomBytes(24).toString('base64url'), { mode: 0o644 });
        created.push(path);
      }
      chmodSync(path, 0o644);
    }
  }
  report.log(
    created.length > 0
      ? `created secrets ${created.map((p) => p.replace(`${REPO}/`, '')).join(', ')}`
      : 'secrets present',
  );
  return created;
}

/**
 * The Dockerfile a service's `build:` names. Compose resolves a relative `dockerfile` against the build context;
 * when that file does not exist the check fails and the Dockerfile synthesized beside the compose file is used,
 * so the rest of the run still says something.
 * @see https://docs.docker.com/reference/compose-file/build/#dockerfile
 */
function serviceDockerfile(report: Report, compose: DeployFile, name: string): string | undefined {
  const s = compose.services[name];
  if (s?.build === undefined) return undefined;
  if (existsSync(s.build.dockerfile)) return s.build.dockerfile;
  const beside = join(dirname(compose.path), `${name}.Dockerfile`);
  const rel = (p: string): string => p.replace(`${REPO}/`, '');
  report.check(
    `compose ${name} build.dockerfile names an existing file`,
    false,
    `resolved against the build context ${rel(s.build.context)} it is ${rel(s.build.dockerfile)}, which does not exist; using ${rel(beside)}`,
  );
  return existsSync(beside) ? beside : s.build.dockerfile;
}

/** Builds the service images with the legacy builder from the synthesized Dockerfiles, unmodified. */
async function buildServiceImages(
  report: Report,
  compose: DeployFile,
  dockerfiles: ReadonlyMap<string, string>,
): Promise<void> {
  for (const [name, s] of Object.entries(compose.services)) {
    const dockerfile = dockerfiles.get(name);
    if (s.build === undefined || dockerfile === undefined) continue;
    const t0 = Date.now();
    await check('docker', ['build', '-q', '--force-rm', '-f', dockerfile, '-t', s.image, s.build.context], {
      env: { ...process.env, DOCKER_BUILDKIT: '0' },
      timeoutMs: 1_200_000,
    });
    report.log(
      `built ${s.image} from ${dockerfile.replace(`${REPO}/`, '')} (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
    );
  }
}

function producerUrl(file: DeployFile): string {
  const port = file.services[PRODUCER]?.ports[0];
  if (port === undefined) throw new Error(`${file.path}: the producer publishes no port; the smoke client needs one`);
  return `http://127.0.0.1:${port.host}`;
}

async function runDeployment(
  report: Report,
  dep: Deployment,
  opts: Options,
  mongoPasswordFile: string,
  faultReports: string[],
): Promise<void> {
  const t = dep.kind;
  const since = new Date(Date.now() - 1000);
  try {
    await report.phase(
      `${t}: up until healthy`,
      async () => {
        await dep.up();
        const containers = await waitHealthy(dep, 300_000);
        report.check(
          `${t} brings all ${Object.keys(dep.file.services).length} services to healthy`,
          true,
          containers.map((c) => c.name).join(', '),
        );
      },
      true,
    );
    await report.phase(`${t}: checks`, async () => {
      if (t === 'compose') await checkStartOrder(report, dep, since);
      const all = (await Promise.all(Object.keys(dep.file.services).map((s) => dep.containers(s)))).flat();
      await checkHardening(report, dep, all);
    });
    const client = new JobsClient(producerUrl(dep.file), E2E_TOKEN);
    await report.phase(`${t}: smoke`, () => smoke(report, dep, client));
    if (opts.faults) {
      const ctx: FaultContext = { report, dep, client, mongoPasswordFile, faultReports };
      const scenarios: Record<string, (c: FaultContext) => Promise<void>> = {
        'consumer-kill': consumerKill,
        'broker-restart': brokerRestart,
        'database-outage': databaseOutage,
        'scale-consumers': scaleConsumers,
      };
      for (const name of FAULTS) {
        const scenario = scenarios[name];
        if (scenario === undefined || (t === 'swarm' && !opts.swarmFaults.has(name))) continue;
        await report.phase(`${t}: fault ${name}`, () => scenario(ctx));
      }
    }
  } catch (e) {
    if (!(e instanceof PhaseFailed)) throw e;
    report.log(`${t}: ${e.message}`);
    report.log((await dep.diagnose()).replace(/^/gm, '    '));
  } finally {
    if (opts.keep) {
      report.note(`${t}: kept running (--keep); remove with the commands in e2e/README.md`);
    } else {
      await report.phase(`${t}: teardown`, async () => {
        await dep.down();
        const left = await dep.leftovers();
        report.check(`${t} teardown leaves no containers, networks or volumes`, left.length === 0, left.join(', '));
      });
    }
  }
}

async function swarmInit(report: Report): Promise<{ initialized: boolean; gwbridgeBefore: boolean }> {
  const gwbridgeBefore = (await run('docker', ['network', 'inspect', 'docker_gwbridge'])).code === 0;
  const state = await docker(['info', '--format', '{{.Swarm.LocalNodeState}}']);
  if (state === 'active') {
    report.note('a swarm was already active on this engine; deploying into it and leaving it active');
    return { initialized: false, gwbridgeBefore };
  }
  await docker(['swarm', 'init', '--advertise-addr', '127.0.0.1', '--listen-addr', '127.0.0.1:2377']);
  report.log('docker swarm init --advertise-addr 127.0.0.1');
  return { initialized: true, gwbridgeBefore };
}

/** Labels the node for the stack's placement constraints (`node.labels.<k> == <v>`), as the README tells operators to. */
async function labelNode(report: Report, stackPath: string, text: string): Promise<void> {
  const node = await docker(['info', '--format', '{{.Swarm.NodeID}}']);
  const labels = [
    ...new Set([...text.matchAll(/node\.labels\.([\w.-]+)\s*==\s*([\w.-]+)/g)].map((m) => `${m[1]}=${m[2]}`)),
  ];
  for (const l of labels) await docker(['node', 'update', '--label-add', l, node]);
  report.log(
    `labelled node ${node} with ${labels.join(', ') || 'nothing'} (placement constraints of ${stackPath.replace(`${REPO}/`, '')})`,
  );
}

/** The secret versions the stack's secret names interpolate, from the documented command. */
async function secretVersions(opts: Options): Promise<Record<string, string>> {
  const out = await check(
    'npm',
    ['run', '--silent', 'images', '--', '--env', opts.env, '--secret-versions', '--out', opts.dist],
    { cwd: REPO, timeoutMs: 300_000 },
  );
  const vars: Record<string, string> = {};
  for (const m of out.matchAll(/^export ([A-Z0-9_]+)=['"]?([^'"\n]+)['"]?$/gm)) vars[m[1] as string] = m[2] as string;
  return vars;
}

async function main(): Promise<number> {
  const opts = options();
  const report = new Report();
  const envDir = join(opts.dist, opts.env);
  const composePath = join(envDir, 'compose.yaml');
  const stackPath = join(envDir, 'docker-stack.yml');
  const manifestPath = join(envDir, 'kubernetes.k8s.yaml');
  const runs = (t: 'compose' | 'swarm' | 'kubernetes'): boolean => opts.only === undefined || opts.only === t;
  const faultReports: string[] = [];
  let daemon: Daemon | undefined;
  let swarm: { initialized: boolean; gwbridgeBefore: boolean } | undefined;
  process.stdout.write(`e2e: environment ${opts.env}, files in ${envDir.replace(`${REPO}/`, '')}\n`);
  try {
    mkdirSync(CACHE, { recursive: true });
    const compose = readDeployFile(composePath);
    const stack = runs('swarm') && existsSync(stackPath) ? readDeployFile(stackPath) : undefined;
    if (runs('swarm') && stack === undefined)
      report.check('the Swarm stack file exists', false, `${stackPath} not found`);
    if (runs('kubernetes') && !existsSync(manifestPath))
      report.check('the Kubernetes manifest exists', false, `${manifestPath} not found`);

    const dockerfiles = new Map<string, string>();
    for (const name of Object.keys(compose.services)) {
      const d = serviceDockerfile(report, compose, name);
      if (d !== undefined) dockerfiles.set(name, d);
    }
    await report.phase(
      'engine',
      async () => {
        await ensureHostTools((l) => report.log(l));
        daemon = await ensureDaemon(CACHE, (l) => report.log(l));
        report.log(`Docker engine ${daemon.serverVersion}`);
      },
      true,
    );

    await report.phase(
      'stand-in images',
      async () => {
        const files = [compose, ...(stack === undefined ? [] : [stack])];
        const builtImages = new Set(
          Object.values(compose.services)
            .filter((s) => s.build !== undefined)
            .map((s) => s.image),
        );
        const registry = [...new Set(files.flatMap((f) => Object.values(f.services).map((s) => s.image)))].filter(
          (i) => !builtImages.has(i),
        );
        const nodeBases = [...new Set([...dockerfiles.values()].flatMap((d) => dockerfileBases(d)))];
        const unknown = registry.filter((i) => !/^(rabbitmq|mongo):/.test(i));
        if (unknown.length > 0)
          throw new Error(
            `no stand-in for ${unknown.join(', ')}; expected only rabbitmq:* and mongo:* registry images`,
          );
        await ensureImages(
          { repoRoot: REPO, cacheDir: CACHE, log: (l) => report.log(l) },
          {
            nodeBases,
            rabbitmq: registry.filter((i) => i.startsWith('rabbitmq:')),
            mongo: registry.filter((i) => i.startsWith('mongo:')),
          },
        );
      },
      true,
    );

    if (opts.build) {
      await report.phase(
        'service images (synthesized Dockerfiles)',
        () => buildServiceImages(report, compose, dockerfiles),
        true,
      );
    } else {
      report.note('service images were not built by this run (--no-build)');
      for (const s of Object.values(compose.services)) {
        if (s.build !== undefined) await docker(['image', 'inspect', '--format', '{{.Id}}', s.image]);
      }
    }
    ensureSecrets(report, [compose, ...(stack === undefined ? [] : [stack])]);
    const mongoPasswordFile = compose.secretFiles['mongo-password'] ?? '';

    if (runs('compose')) {
      const cli = await report.phase(
        'compose CLI',
        async () => {
          const c = await findCompose(CACHE, opts.compose, (l) => report.log(l));
          report.log(`Compose ${c.version} (${c.bin.replace(`${REPO}/`, '')})`);
          return c;
        },
        true,
      );
      if (cli !== undefined)
        await runDeployment(
          report,
          new ComposeDeployment(cli, compose, `async-jobs-${opts.env}`, CACHE),
          opts,
          mongoPasswordFile,
          faultReports,
        );
    }

    if (stack !== undefined) {
      const vars = await report.phase(
        'swarm: init',
        async () => {
          swarm = await swarmInit(report);
          await labelNode(report, stackPath, readFileSync(stackPath, 'utf8'));
          const v = await secretVersions(opts);
          const missing = stack.requiredVariables.filter((name) => v[name] === undefined);
          if (missing.length > 0)
            throw new Error(`npm run images -- --secret-versions printed no ${missing.join(', ')}`);
          return v;
        },
        true,
      );
      if (vars !== undefined)
        await runDeployment(
          report,
          new SwarmDeployment(stack, `async-jobs-${opts.env}`, vars),
          opts,
          mongoPasswordFile,
          faultReports,
        );
    }

    if (runs('kubernetes') && existsSync(manifestPath)) {
      await kubernetesPhase(report, {
        repo: REPO,
        manifestPath,
        secretsDir: join(REPO, '.secrets', opts.env),
        mongoPasswordFile,
        token: E2E_TOKEN,
        faults: opts.faults,
        keda: opts.keda,
        ...(opts.env === 'dev' && existsSync(join(opts.dist, 'prod', 'kubernetes.k8s.yaml'))
          ? { prodManifestPath: join(opts.dist, 'prod', 'kubernetes.k8s.yaml') }
          : {}),
        keep: opts.keep,
        faultReports,
      });
    }
  } catch (e) {
    if (!(e instanceof PhaseFailed))
      report.check('the e2e run completes', false, e instanceof Error ? (e.stack ?? e.message) : String(e));
  } finally {
    if (!opts.keep) {
      await report.phase('engine teardown', async () => {
        if (swarm?.initialized === true) {
          await docker(['swarm', 'leave', '--force'], { timeoutMs: 120_000 });
          if (!swarm.gwbridgeBefore) await run('docker', ['network', 'rm', 'docker_gwbridge']);
          report.log('left the swarm this run created');
        }
        if (daemon !== undefined) await daemon.stop();
      });
    }
  }
  if (faultReports.length > 0) {
    process.stdout.write('\n== fault report\n');
    for (const l of faultReports) process.stdout.write(`  ${l}\n`);
  }
  process.stdout.write(`${report.summary()}\n`);
  return report.failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`e2e: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n0 passed, 1 failed\n`);
    process.exit(1);
  },
);
