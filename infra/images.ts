#!/usr/bin/env node
/**
 * The image build step of the Swarm (and Kubernetes) deployments: builds each service image from its synthesized
 * Dockerfile, tags it with its content tag (the tag the stack file refers to) and prints the tags. With
 * `--secret-versions` it prints the deploy-time secret versions the stack file's secret names interpolate.
 * Run `npm run images -- --help`.
 */
import { spawnSync } from 'node:child_process';
import { resolve as resolvePath } from 'node:path';
import { parseArgs } from 'node:util';
import { resolve, synthesize } from '../constructs';
import { dockerfileTarget } from '../constructs/dockerfile';
import { compareFiles } from '../constructs/output/files';
import { imageBuilds, secretVersions, type ImageBuild } from '../constructs/swarm';
import { defineSystem, ENVIRONMENTS, type EnvironmentName } from './app';

const HELP = `Usage: npm run images -- [options]

Builds the service images from the synthesized Dockerfiles (dist/<env>/<service>.Dockerfile, build context
services/), tags each with its content tag (<repository>:src-<hash>, the tag the Swarm stack refers to; never
latest) and prints one tag per line on stdout.

Options:
  --env <name>        Only this environment (repeatable). Environments: ${ENVIRONMENTS.join(', ')}
  --push              Also push each image to its registry repository
  --dry-run           Print the docker commands instead of running them
  --secret-versions   Build nothing; print "export <SECRET>_VERSION=<version>" for each file secret of one
                      environment, for: eval "$(npm run --silent images -- --env <env> --secret-versions)"
  --out <dir>         Where the synthesized files are (default: dist)
  -h, --help          Show this help

Exit codes: 0 success, 1 stale Dockerfiles, missing secret files or a failed docker command, 2 bad options.`;

function fail(message: string, code: number): never {
  process.stderr.write(`images: ${message}\n`);
  process.exit(code);
}

function docker(args: readonly string[], dryRun: boolean): void {
  const shown = ['docker', ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`));
  process.stderr.write(`+ ${shown.join(' ')}\n`);
  if (dryRun) return;
  const result = spawnSync('docker', args, { stdio: ['ignore', process.stderr, process.stderr] });
  if (result.error) fail(`docker ${args[0]}: ${result.error.message}`, 1);
  if (result.status !== 0) fail(`docker ${args.join(' ')}: exited with ${String(result.status)}`, 1);
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        env: { type: 'string', multiple: true },
        push: { type: 'boolean', default: false },
        'dry-run': { type: 'boolean', default: false },
        'secret-versions': { type: 'boolean', default: false },
        out: { type: 'string', default: 'dist' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      allowPositionals: false,
    });
  } catch (error) {
    fail(`${(error as Error).message}\n\n${HELP}`, 2);
  }
  const { values } = parsed;
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const envs = (values.env ?? [...ENVIRONMENTS]).flatMap((e) => e.split(','));
  for (const env of envs) {
    if (!(ENVIRONMENTS as readonly string[]).includes(env)) {
      fail(`--env: got ${JSON.stringify(env)}, expected one of ${ENVIRONMENTS.join(', ')}`, 2);
    }
  }
  const repoRoot = process.cwd();
  const systems = envs.map((e) => defineSystem(e as EnvironmentName));

  if (values['secret-versions']) {
    if (envs.length !== 1) fail(`--secret-versions: got ${envs.length} environments, expected exactly one --env`, 2);
    const { versions, errors } = secretVersions(resolve(systems[0]!, { repoRoot }), repoRoot);
    if (errors.length > 0) fail(errors.join('\n  '), 1);
    for (const v of versions) process.stdout.write(`export ${v.variable}=${v.value}\n`);
    return;
  }

  // The tags are computed from the model and the build context now; the Dockerfiles must be the ones synth
  // would write now too, or the image would not be what its tag promises.
  const synth = await synthesize({ systems, targets: [dockerfileTarget], resolveOptions: { repoRoot } });
  if (synth.errors.length > 0) fail(synth.errors.join('\n'), 1);
  const stale = compareFiles(resolvePath(values.out), synth.files, () => false);
  if (stale.length > 0) {
    fail(
      `${values.out}/ is not what synth writes (${stale.map((d) => `${d.state} ${values.out}/${d.path}`).join(', ')}); ` +
        'run npm run synth first',
      1,
    );
  }

  const builds: ImageBuild[] = [];
  for (const system of synth.resolved) {
    for (const build of imageBuilds(system, values.out)) {
      if (!builds.some((b) => b.reference === build.reference)) builds.push(build);
    }
  }
  if (values.push) {
    const local = builds.filter((b) => b.repository === null);
    if (local.length > 0) {
      fail(
        `--push: got ${local.map((b) => b.reference).join(', ')} with no registry repository, expected ` +
          "ImageSource.build(context, service, '<registry>/<repository>') in infra/app.ts",
        1,
      );
    }
  }
  for (const build of builds) {
    docker(['build', '--file', build.dockerfile, '--tag', build.reference, build.context], values['dry-run']);
    if (values.push) docker(['push', build.reference], values['dry-run']);
    process.stdout.write(`${build.reference}\n`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`images: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
