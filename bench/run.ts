#!/usr/bin/env node
/**
 * `npm run bench`: every benchmark of BENCHMARKS.md, in one run, on this machine.
 *
 *   node bench/build/run.js [--quick] [--only synth,accept,pipeline,backlog,prefetch,db,profile] [--no-doc]
 *
 * Prints each figure as it is measured, then the tables; writes bench/results/<date>[-quick].json and .md.
 * A full run of every part also rewrites the results section of BENCHMARKS.md (between its markers).
 * `--quick` runs each part on a small size (CI checks the scripts still run; its figures are not meaningful).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { renderMarkdown, type Results } from './lib/report.js';
import {
  ferretDbBinary,
  installExitHandlers,
  makeWorkDir,
  REPO_ROOT,
  removeDir,
  startFerretDb,
  startRabbitMq,
  startRedis,
  stopAll,
} from './lib/servers.js';
import { runSynthBench } from './synth.js';
import {
  FULL,
  QUICK,
  runAccept,
  runBacklog,
  runDb,
  runPipeline,
  runPrefetch,
  runProfiles,
  type Ctx,
} from './system.js';

const PARTS = ['synth', 'accept', 'pipeline', 'backlog', 'prefetch', 'db', 'profile'] as const;
type Part = (typeof PARTS)[number];

function version(cmd: string, args: readonly string[], re: RegExp): string {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'] });
    return re.exec(out)?.[1] ?? out.trim().split('\n')[0] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function machine(): Results['machine'] {
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
    ferretdb: version(ferretDbBinary(), ['--version'], /version:\s*(\S+)/),
    redis: version('redis-server', ['--version'], /v=(\S+)/),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      'no-doc': { type: 'boolean', default: false },
    },
  });
  const parts = new Set<Part>();
  for (const p of (values.only ?? PARTS.join(',')).split(',')) {
    if (!(PARTS as readonly string[]).includes(p))
      throw new Error(`--only: got ${JSON.stringify(p)}, expected some of ${PARTS.join(', ')}`);
    parts.add(p as Part);
  }
  // Profiles are a diagnosis, not a figure: full runs only.
  if (values.quick) parts.delete('profile');
  installExitHandlers();
  const quick = values.quick;
  const sizes = quick ? QUICK : FULL;
  const started = Date.now();
  const log = (line: string): void => {
    process.stdout.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
  };
  const base = makeWorkDir();
  const results: Results = {
    date: new Date().toISOString(),
    quick,
    machine: machine(),
    sizes,
    parts: [...parts],
    durationS: 0,
  };
  try {
    if (parts.has('synth')) results.synth = await runSynthBench({ quick, workDir: base, log });
    if ([...parts].some((p) => p !== 'synth')) {
      log('starting RabbitMQ, FerretDB and Redis on 127.0.0.1');
      const [rabbit, ferret, redis] = await Promise.all([startRabbitMq(base), startFerretDb(base), startRedis(base)]);
      const ctx: Ctx = { sizes, base, servers: { rabbit, ferret, redis }, log };
      log('servers up');
      if (parts.has('accept')) results.accept = await runAccept(ctx);
      if (parts.has('pipeline')) results.pipeline = await runPipeline(ctx);
      if (parts.has('prefetch')) results.prefetch = await runPrefetch(ctx);
      if (parts.has('db')) results.db = await runDb(ctx);
      if (parts.has('backlog')) results.backlog = await runBacklog(ctx);
      if (parts.has('profile')) results.profiles = await runProfiles(ctx);
    }
  } finally {
    await stopAll();
    removeDir(base);
  }
  results.durationS = (Date.now() - started) / 1000;
  const md = renderMarkdown(results);
  process.stdout.write(`\n${md}\n`);
  const dir = join(REPO_ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const stem = `${results.date.slice(0, 10)}${quick ? '-quick' : ''}`;
  writeFileSync(join(dir, `${stem}.json`), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(dir, `${stem}.md`), `${md}\n`);
  log(`wrote bench/results/${stem}.json and .md`);
  if (!quick && parts.size === PARTS.length && !values['no-doc']) {
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
}

main().catch(async (err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  await stopAll();
  process.exit(1);
});
