#!/usr/bin/env node
/**
 * `npm run bench`: every benchmark of BENCHMARKS.md, in one run, on this machine.
 *
 *   node bench/build/run.js [--quick] [--only synth,accept,pipeline,backlog,prefetch,profile] [--no-doc]
 *                           [--db postgresql|postgresql-plain|sqlite|mongodb://…]
 *
 * Prints each figure as it is measured, then the tables; writes bench/results/<date>[-quick][-<parts>].json and .md.
 * A full run of every part also rewrites the results section of BENCHMARKS.md (between its markers).
 * `--quick` runs each part on a small size (CI checks the scripts still run; its figures are not meaningful).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { memoryCgroupsAvailable } from './lib/cgroup.js';
import { renderMarkdown, type Results } from './lib/report.js';
import {
  installExitHandlers,
  makeWorkDir,
  postgresBinDir,
  redactMongoUrl,
  REPO_ROOT,
  removeDir,
  setServiceMemoryLimits,
  startMongo,
  startRabbitMq,
  startRedis,
  stopAll,
  type DbBackend,
  type MongoEndpoint,
} from './lib/servers.js';
import { prodMemoryLimits } from './lib/services.js';
import { runSynthBench } from './synth.js';
import {
  dropDatabases,
  runAccept,
  runBacklog,
  runPipeline,
  runPrefetch,
  runProfiles,
  sizesFor,
  type Ctx,
} from './system.js';

/** A bad option: printed as one line with the usage hint, exit 2. */
class UsageError extends Error {}

const OPTIONS = {
  quick: { type: 'boolean', default: false },
  only: { type: 'string' },
  'no-doc': { type: 'boolean', default: false },
  db: { type: 'string' },
  'backlog-jobs': { type: 'string' },
  'no-memory-limit': { type: 'boolean', default: false },
  'group-commit': { type: 'string' },
  env: { type: 'string', multiple: true },
  render: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

function parseOptions(): ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>> {
  try {
    return parseArgs({ options: OPTIONS });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}

const PARTS = ['synth', 'accept', 'pipeline', 'backlog', 'prefetch', 'profile'] as const;

const HELP = `Usage: npm run bench -- [options]

Every benchmark of BENCHMARKS.md in one run on this machine: prints each figure as it is measured, then the
tables; writes bench/results/<date>[-quick][-<parts> with --only].json and .md; a full run of every part rewrites the results section
of BENCHMARKS.md. Starts its own RabbitMQ, Redis and database on 127.0.0.1 and stops exactly what it started.

Options:
  --quick          Every part on a tiny size (CI: the scripts still run; the figures mean nothing)
  --only <parts>   Comma-separated: ${PARTS.join(', ')} (default: all)
  --db <backend>   Where the services' MongoDB-wire database lives:
                     postgresql  FerretDB on a throwaway PostgreSQL cluster (default when Debian's
                                 postgresql is installed), with GIN indexes its pushed-down
                                 equality filters can use (bench/lib/ferretdb-pg-indexes.sql)
                     postgresql-plain
                                 the same without those indexes: every by-id operation scans
                     sqlite      FerretDB on SQLite (default otherwise; small sizes, see BENCHMARKS.md)
                     mongodb://… your own MongoDB (databases named ajb<run>-*, dropped afterwards)
                   Also BENCH_DB in the environment.
  --backlog-jobs <n>
                   Size of the backlog part (default: 100000 on postgresql and on a MongoDB URL,
                   10000 on postgresql-plain, 1000 on sqlite, 200 with --quick)
  --no-memory-limit
                   Run the producer and consumer without the memory limit of their prod containers
                   (by default each runs in a memory cgroup with that limit, when this machine has one
                   it may write: Node sizes its heap from it, as in the container)
  --group-commit <maxSize>,<maxWaitMs>
                   The services' group commit bounds (GROUP_COMMIT_MAX_SIZE, GROUP_COMMIT_MAX_WAIT_MS;
                   default: the services' defaults). 1,0 sends every write alone, as before group commit.
                   Results are named …-gc<maxSize>-<maxWaitMs>, and BENCHMARKS.md is not rewritten
  --env <NAME>=<value>
                   Set one environment variable of every producer and consumer the run starts (repeat
                   for more), e.g. --env OUTBOX_SWEEP_INTERVAL_MS=60000 to compare a setting. Results
                   are named …-env, and BENCHMARKS.md is not rewritten
  --no-doc         Do not rewrite BENCHMARKS.md even after a full run
  --render <file>  Measure nothing: render the tables again from a results file this script wrote
                   (bench/results/<name>.json), rewriting <name>.md beside it and, for a full run,
                   the results section of BENCHMARKS.md (after a change to how a figure is judged)
  -h, --help       Show this help`;

/** Gives the services their prod containers' memory limits when this machine allows it; says what was done. */
function limitServiceMemory(off: boolean, log: (line: string) => void): string {
  if (off) return 'no memory limit (--no-memory-limit); Node sized its heap for the whole machine';
  const can = memoryCgroupsAvailable();
  if (!can.ok) {
    const said = `no memory limit (no memory cgroup to use: ${can.why}); Node sized its heap for the whole machine`;
    log(`services: ${said}`);
    return said;
  }
  const limits = prodMemoryLimits();
  setServiceMemoryLimits(limits);
  return `producer and consumer each in a memory cgroup of their prod containers' limits (${limits.producer} and ${limits.consumer} MiB, infra/app.ts), so Node sizes its heap as it does in the container`;
}

function parseBackend(value: string | undefined): DbBackend {
  if (value === undefined || value === '')
    return postgresBinDir() !== undefined ? { kind: 'postgresql', mirrorIndexes: true } : { kind: 'sqlite' };
  if (value === 'postgresql') return { kind: 'postgresql', mirrorIndexes: true };
  if (value === 'postgresql-plain') return { kind: 'postgresql', mirrorIndexes: false };
  if (value === 'sqlite') return { kind: 'sqlite' };
  if (/^mongodb(\+srv)?:\/\//.test(value)) return { kind: 'external', url: value };
  throw new UsageError(
    `--db: got ${JSON.stringify(redactMongoUrl(value))}, expected postgresql, postgresql-plain, sqlite or a mongodb:// URL`,
  );
}
type Part = (typeof PARTS)[number];

function version(cmd: string, args: readonly string[], re: RegExp): string {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'] });
    return re.exec(out)?.[1] ?? out.trim().split('\n')[0] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function machine(database: string): Results['machine'] {
  const osRelease = existsSync('/etc/os-release')
    ? (/^PRETTY_NAME="?([^"\n]*)/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'unknown')
    : 'unknown';
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `${osRelease}, Linux ${release()}`,
    node: process.version,
    rabbitmq: version('dpkg-query', ['-W', '-f', '${Version}', 'rabbitmq-server'], /^(\S+)/),
    database,
    redis: version('redis-server', ['--version'], /v=(\S+)/),
  };
}

async function main(): Promise<void> {
  const { values } = parseOptions();
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  if (values.render !== undefined) {
    renderAgain(values.render, !values['no-doc']);
    return;
  }
  const backend = parseBackend(values.db ?? process.env.BENCH_DB);
  const parts = new Set<Part>();
  for (const p of (values.only ?? PARTS.join(',')).split(',')) {
    if (!(PARTS as readonly string[]).includes(p))
      throw new UsageError(`--only: got ${JSON.stringify(p)}, expected some of ${PARTS.join(', ')}`);
    parts.add(p as Part);
  }
  // Profiles are a diagnosis, not a figure: full runs only.
  if (values.quick) parts.delete('profile');
  installExitHandlers();
  const quick = values.quick;
  const backlogJobs = values['backlog-jobs'];
  if (backlogJobs !== undefined && !/^[1-9]\d{0,7}$/.test(backlogJobs))
    throw new UsageError(
      `--backlog-jobs: got ${JSON.stringify(backlogJobs)}, expected a whole number from 1 to 99999999`,
    );
  const groupCommit = values['group-commit'];
  const gc = groupCommit === undefined ? undefined : /^([1-9]\d{0,4}),(\d{1,4})$/.exec(groupCommit);
  if (gc === null || (gc !== undefined && (Number(gc[1]) > 10_000 || Number(gc[2]) > 1000)))
    throw new UsageError(
      `--group-commit: got ${JSON.stringify(groupCommit)}, expected <maxSize>,<maxWaitMs> with maxSize 1 to 10000 and maxWaitMs 0 to 1000 (e.g. 1,0 or 100,2)`,
    );
  const serviceEnv: Record<string, string> =
    gc === undefined ? {} : { GROUP_COMMIT_MAX_SIZE: gc[1] ?? '', GROUP_COMMIT_MAX_WAIT_MS: gc[2] ?? '' };
  const extraEnv = values.env ?? [];
  for (const pair of extraEnv) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(pair);
    if (m === null)
      throw new UsageError(
        `--env: got ${JSON.stringify(pair)}, expected NAME=value with NAME in upper case (e.g. OUTBOX_SWEEP_INTERVAL_MS=60000)`,
      );
    serviceEnv[m[1] ?? ''] = m[2] ?? '';
  }
  const sizes = {
    ...sizesFor(quick, backend),
    ...(backlogJobs !== undefined ? { backlogJobs: Number(backlogJobs) } : {}),
  };
  const started = Date.now();
  const log = (line: string): void => {
    process.stdout.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
  };
  const base = makeWorkDir();
  let database: MongoEndpoint | undefined;
  const results: Results = {
    date: new Date().toISOString(),
    quick,
    machine: machine('not started'),
    serviceMemory: 'not started (synth only)',
    sizes,
    parts: [...parts],
    durationS: 0,
    groupCommit:
      gc === undefined
        ? "the services' defaults (GROUP_COMMIT_MAX_SIZE=100, GROUP_COMMIT_MAX_WAIT_MS=2)"
        : `GROUP_COMMIT_MAX_SIZE=${gc[1]}, GROUP_COMMIT_MAX_WAIT_MS=${gc[2]}${gc[1] === '1' ? ' (every write alone, as before group commit)' : ''}`,
    ...(extraEnv.length > 0 ? { serviceEnv: extraEnv.join(' ') } : {}),
  };
  try {
    if (parts.has('synth')) results.synth = await runSynthBench({ quick, workDir: base, log });
    if ([...parts].some((p) => p !== 'synth')) {
      results.serviceMemory = limitServiceMemory(values['no-memory-limit'], log);
      log(`starting RabbitMQ, Redis and the database (${backend.kind}) on 127.0.0.1`);
      const [rabbit, mongo, redis] = await Promise.all([
        startRabbitMq(base),
        startMongo(base, backend),
        startRedis(base),
      ]);
      database = mongo;
      results.machine = machine(mongo.label);
      const ctx: Ctx = {
        sizes,
        base,
        servers: { rabbit, mongo, redis },
        dbPrefix: `ajb${Date.now().toString(36)}-`,
        log,
        serviceEnv,
      };
      log(`servers up; database: ${mongo.label}`);
      if (parts.has('accept')) results.accept = await runAccept(ctx);
      if (parts.has('pipeline')) results.pipeline = await runPipeline(ctx);
      if (parts.has('prefetch')) results.prefetch = await runPrefetch(ctx);
      if (parts.has('backlog')) results.backlog = await runBacklog(ctx);
      if (parts.has('profile')) results.profiles = await runProfiles(ctx);
    } else {
      results.machine = machine('not used');
    }
  } finally {
    if (database !== undefined && backend.kind === 'external')
      await dropDatabases(database.url).catch((err: unknown) =>
        log(`could not drop the run's databases: ${String(err)}`),
      );
    await database?.stop();
    await stopAll();
    removeDir(base);
  }
  results.durationS = (Date.now() - started) / 1000;
  const md = renderMarkdown(results);
  process.stdout.write(`\n${md}\n`);
  const dir = join(REPO_ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  // A run of some parts gets its own name, so it never overwrites the day's full results.
  const some = values.only === undefined ? '' : `-${PARTS.filter((p) => parts.has(p)).join('-')}`;
  const gcName = gc === undefined ? '' : `-gc${gc[1]}-${gc[2]}`;
  const envName = extraEnv.length === 0 ? '' : '-env';
  const stem = `${results.date.slice(0, 10)}${quick ? '-quick' : ''}${some}${gcName}${envName}`;
  writeFileSync(join(dir, `${stem}.json`), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(dir, `${stem}.md`), `${md}\n`);
  log(`wrote bench/results/${stem}.json and .md`);
  if (!quick && parts.size === PARTS.length && !values['no-doc'] && gc === undefined && extraEnv.length === 0) {
    writeDocSection(md, log);
  }
}

/** Replaces the results section of BENCHMARKS.md (between its markers) with `md`. */
function writeDocSection(md: string, log: (line: string) => void): void {
  const doc = join(REPO_ROOT, 'BENCHMARKS.md');
  const start = '<!-- bench:results:start -->';
  const end = '<!-- bench:results:end -->';
  const text = existsSync(doc) ? readFileSync(doc, 'utf8') : '';
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  if (a !== -1 && b > a) {
    writeFileSync(doc, `${text.slice(0, a + start.length)}\n\n${md}\n\n${text.slice(b)}`);
    log('updated the results section of BENCHMARKS.md');
  } else {
    log(`BENCHMARKS.md has no ${start} … ${end} markers; left unchanged`);
  }
}

/** `--render`: the tables of a saved run again, with today's report code; a full plain run also goes to BENCHMARKS.md. */
function renderAgain(file: string, doc: boolean): void {
  if (!file.endsWith('.json'))
    throw new UsageError(`--render: got ${JSON.stringify(file)}, expected a .json results file`);
  let results: Results;
  try {
    results = JSON.parse(readFileSync(file, 'utf8')) as Results;
  } catch (err) {
    throw new UsageError(`--render: cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof results.date !== 'string' || !Array.isArray(results.parts)) {
    throw new UsageError(`--render: ${file} has no "date" and "parts": not a results file of this script`);
  }
  const log = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };
  const md = renderMarkdown(results);
  process.stdout.write(`${md}\n`);
  const out = `${file.slice(0, -'.json'.length)}.md`;
  writeFileSync(out, `${md}\n`);
  log(`wrote ${out}`);
  // Only a plain full run is named <date>.json (see main): runs of some parts, quick, -gc and -env runs are not.
  if (doc && /^\d{4}-\d{2}-\d{2}\.json$/.test(basename(file))) writeDocSection(md, log);
}

main().catch(async (err: unknown) => {
  if (err instanceof UsageError) {
    process.stderr.write(`bench: ${err.message} (see --help)\n`);
    process.exit(2);
  }
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  await stopAll();
  process.exit(1);
});
