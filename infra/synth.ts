#!/usr/bin/env node
/**
 * The synth CLI: writes every target for every environment under dist/, or checks that dist/ is current.
 * Run `npm run synth -- --help`.
 */
import { resolve as resolvePath } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { synthesize, TARGETS, type JobSystem, type Target } from '../constructs';
import { compareFiles, writeFiles, type FileDifference } from '../constructs/output/files';
import { renderResourceDiff } from '../constructs/output/diff';
import * as defaultApp from './app';

/** What a system definition module exports (infra/app.ts, or the module given with --app). */
interface AppModule {
  readonly ENVIRONMENTS: readonly string[];
  defineSystem(environment: string): JobSystem;
}

const HELP = `Usage: npm run synth -- [options]

Synthesizes the async job system defined in infra/app.ts into every deployment target.

Options:
  --env <name>      Only this environment (repeatable). Environments: ${defaultApp.ENVIRONMENTS.join(', ')}
  --target <name>   Only this target (repeatable). Targets:
${TARGETS.map((t) => `                      ${t.name.padEnd(11)} ${t.description}`).join('\n')}
  --out <dir>       Output directory (default: dist)
  --app <module>    A compiled module exporting ENVIRONMENTS and defineSystem(env), instead of infra/app.ts
  --check           Write nothing; exit 1 and list stale, missing or extra files if <out> is not what synth
                    would write (CI runs this)
  --diff            Write nothing; print what would change against <out> for a pull request: per target and
                    environment, the resources added, removed or changed, with each changed field
  --quiet           Print errors only
  -h, --help        Show this help

Exit codes: 0 success, 1 model errors or a failed --check, 2 bad command-line options.
Every error names the construct path, the value received and what was expected; on any error nothing is written.`;

function fail(message: string, code: number): never {
  process.stderr.write(`synth: ${message}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        env: { type: 'string', multiple: true },
        target: { type: 'string', multiple: true },
        out: { type: 'string', default: 'dist' },
        app: { type: 'string' },
        check: { type: 'boolean', default: false },
        diff: { type: 'boolean', default: false },
        quiet: { type: 'boolean', default: false },
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
  let app: AppModule = defaultApp;
  if (values.app !== undefined) {
    try {
      app = (await import(pathToFileURL(resolvePath(values.app)).href)) as AppModule;
    } catch (error) {
      fail(`--app: could not load ${JSON.stringify(values.app)}: ${(error as Error).message}`, 2);
    }
    if (!Array.isArray(app.ENVIRONMENTS) || typeof app.defineSystem !== 'function') {
      fail(`--app: ${JSON.stringify(values.app)} exports no ENVIRONMENTS array and defineSystem function`, 2);
    }
  }
  const envs = (values.env ?? [...app.ENVIRONMENTS]).flatMap((e) => e.split(','));
  for (const env of envs) {
    if (!app.ENVIRONMENTS.includes(env)) {
      fail(`--env: got ${JSON.stringify(env)}, expected one of ${app.ENVIRONMENTS.join(', ')}`, 2);
    }
  }
  const targetNames = (values.target ?? TARGETS.map((t) => t.name)).flatMap((t) => t.split(','));
  const targets: Target[] = [];
  for (const name of targetNames) {
    const target = TARGETS.find((t) => t.name === name);
    if (!target)
      fail(`--target: got ${JSON.stringify(name)}, expected one of ${TARGETS.map((t) => t.name).join(', ')}`, 2);
    targets.push(target);
  }
  if (values.check && values.diff) fail('--check and --diff: got both, expected at most one', 2);

  const started = process.hrtime.bigint();
  const result = await synthesize({
    systems: envs.map((e) => app.defineSystem(e)),
    targets,
    resolveOptions: { repoRoot: process.cwd() },
    // The parity report covers every target and environment, so only a full run writes it.
    parity: values.env === undefined && values.target === undefined,
  });
  if (result.errors.length > 0) {
    process.stderr.write(
      `synth: ${result.errors.length} error${result.errors.length === 1 ? '' : 's'}; nothing was written\n`,
    );
    for (const e of result.errors) process.stderr.write(`  ${e}\n`);
    process.exit(1);
  }
  for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);

  const outDir = resolvePath(values.out);
  const fullRun = values.env === undefined && values.target === undefined;
  const envSet = new Set(envs);
  // A partial run owns only the files of its environments and targets; a full run owns the whole directory.
  const produced = new Set(result.files.map((f) => f.path));
  const owned = (path: string): boolean => fullRun || (produced.has(path) && envSet.has(path.split('/')[0] ?? ''));

  if (values.check || values.diff) {
    const differences = compareFiles(outDir, result.files, owned);
    if (values.diff) {
      process.stdout.write(
        differences.length === 0
          ? `No changes against ${values.out}/.\n`
          : renderResourceDiff(differences, result.targetOf),
      );
      return;
    }
    if (differences.length > 0) {
      process.stderr.write(
        `synth --check: ${values.out}/ is not what synth writes (${differences.length} file${differences.length === 1 ? '' : 's'}):\n`,
      );
      for (const d of differences) process.stderr.write(`  ${d.state.padEnd(7)} ${values.out}/${d.path}\n`);
      process.stderr.write('Run `npm run synth` and commit the result.\n');
      process.exit(1);
    }
    if (!values.quiet)
      process.stdout.write(`synth --check: ${values.out}/ is up to date (${result.files.length} files)\n`);
    return;
  }
  const changed: FileDifference[] = writeFiles(outDir, result.files, owned);
  if (!values.quiet) {
    for (const t of result.timings) {
      process.stdout.write(
        `${t.target.padEnd(11)} ${String(t.files).padStart(3)} files  ${t.milliseconds.toFixed(1).padStart(7)} ms\n`,
      );
    }
    const total = Number(process.hrtime.bigint() - started) / 1e6;
    process.stdout.write(
      `wrote ${values.out}/ (${result.files.length} files, ${changed.length} changed) for ${envs.join(', ')} in ${total.toFixed(0)} ms\n`,
    );
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`synth: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
