import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { REPO_ROOT, removeDir } from './lib/servers.js';
import { linearFit, ratios, summarize, type LinearFit, type Summary } from './lib/stats.js';

const require = createRequire(import.meta.url);

/** The parts of the compiled library this benchmark calls (build/ is CommonJS without .d.ts files). */
interface JobSystemLike {
  addConsumer(name: string, props: { replicas?: number; image?: unknown }): unknown;
}
interface ImageSourceLike {
  build(context: string, service: string, repository: string): unknown;
}
interface SynthModules {
  synthesize(request: { systems: readonly unknown[]; resolveOptions: { repoRoot: string } }): Promise<{
    files: readonly unknown[];
    errors: readonly string[];
  }>;
  defineSystem(env: string): JobSystemLike;
  ImageSource: ImageSourceLike;
  targets: readonly string[];
}

function loadBuild(): SynthModules {
  const lib = require(join(REPO_ROOT, 'build', 'constructs', 'index.js')) as Pick<SynthModules, 'synthesize'> & {
    TARGETS: readonly { name: string }[];
  };
  const app = require(join(REPO_ROOT, 'build', 'infra', 'app.js')) as Pick<SynthModules, 'defineSystem'>;
  const model = require(join(REPO_ROOT, 'build', 'constructs', 'model', 'index.js')) as Pick<
    SynthModules,
    'ImageSource'
  >;
  return {
    synthesize: lib.synthesize,
    defineSystem: app.defineSystem,
    ImageSource: model.ImageSource,
    targets: lib.TARGETS.map((t) => t.name),
  };
}

export interface SynthResults {
  readonly targets: readonly string[];
  readonly baselineMode: 'chart' | 'hand';
  readonly repetitions: number;
  /** Whole-process wall time, ms. */
  readonly cliMs: Summary;
  readonly bareMs: Summary;
  /** cli / bare, per repetition. */
  readonly ratio: Summary;
  /** In-process synthesize() of one environment (prod) with n consumer services, ms. */
  readonly inProcess: readonly { readonly consumers: number; readonly ms: Summary }[];
  readonly fit: LinearFit;
  /** ms(50) / ms(1) and ms(10) / ms(1), medians. */
  readonly growth: { readonly x10: number; readonly x50: number };
}

function timeProcess(args: readonly string[]): number {
  const started = process.hrtime.bigint();
  const res = spawnSync(process.execPath, args, { cwd: REPO_ROOT, encoding: 'utf8', timeout: 120_000 });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (res.status !== 0) throw new Error(`node ${args.join(' ')}: exit ${res.status ?? res.signal}: ${res.stderr}`);
  return ms;
}

export async function runSynthBench(options: {
  quick: boolean;
  workDir: string;
  log: (s: string) => void;
}): Promise<SynthResults> {
  const { quick, workDir, log } = options;
  const cli = join(REPO_ROOT, 'build', 'infra', 'synth.js');
  const bare = join(REPO_ROOT, 'bench', 'build', 'bare-k8s.js');
  if (!existsSync(cli)) throw new Error(`${cli}: not found; run \`npm run build\` first`);
  const baselineMode = existsSync(join(REPO_ROOT, 'build', 'constructs', 'k8s', 'chart.js')) ? 'chart' : 'hand';
  const reps = quick ? 3 : 9;
  const outCli = join(workDir, 'synth-cli');
  const outBare = join(workDir, 'synth-bare');
  mkdirSync(outCli, { recursive: true });
  mkdirSync(outBare, { recursive: true });

  // One warm-up each (page cache, compile cache), then interleaved so drift hits both sides alike.
  timeProcess([cli, '--out', outCli, '--quiet']);
  timeProcess([bare, '--out', outBare]);
  const cliMs: number[] = [];
  const bareMs: number[] = [];
  for (let i = 0; i < reps; i++) {
    cliMs.push(timeProcess([cli, '--out', outCli, '--quiet']));
    bareMs.push(timeProcess([bare, '--out', outBare]));
  }
  log(
    `synth: CLI ${summarize(cliMs).median.toFixed(0)} ms, bare cdk8s ${summarize(bareMs).median.toFixed(0)} ms (${baselineMode})`,
  );
  removeDir(outCli);
  removeDir(outBare);

  const m = loadBuild();
  const sizes = [1, 10, 50];
  const timeSynth = async (consumers: number): Promise<number> => {
    const system = m.defineSystem('prod');
    // Added like prod's own consumer: highly available (≥ 2 replicas) and pushed to a registry (Swarm pulls).
    for (let i = 1; i < consumers; i++) {
      system.addConsumer(`worker-${String(i).padStart(2, '0')}`, {
        replicas: 2,
        image: m.ImageSource.build('services', 'consumer', 'ghcr.io/async-jobs/consumer'),
      });
    }
    const started = process.hrtime.bigint();
    const result = await m.synthesize({ systems: [system], resolveOptions: { repoRoot: REPO_ROOT } });
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    if (result.errors.length > 0)
      throw new Error(`synthesize with ${consumers} consumers: ${result.errors.join('; ')}`);
    return ms;
  };
  for (const n of sizes) await timeSynth(n);
  const samples = new Map<number, number[]>(sizes.map((n) => [n, []]));
  const inReps = quick ? 3 : 7;
  for (let i = 0; i < inReps; i++) for (const n of sizes) samples.get(n)?.push(await timeSynth(n));
  const inProcess = sizes.map((n) => ({ consumers: n, ms: summarize(samples.get(n) ?? []) }));
  const xs = sizes.flatMap((n) => (samples.get(n) ?? []).map(() => n));
  const ys = sizes.flatMap((n) => samples.get(n) ?? []);
  const fit = linearFit(xs, ys);
  const med = (n: number): number => inProcess.find((p) => p.consumers === n)?.ms.median ?? Number.NaN;
  log(
    `synth in-process: ${inProcess.map((p) => `${p.consumers}: ${p.ms.median.toFixed(1)} ms`).join(', ')}; slope ${fit.slope.toFixed(2)} ms/service, R² ${fit.r2.toFixed(3)}`,
  );
  return {
    targets: m.targets,
    baselineMode,
    repetitions: reps,
    cliMs: summarize(cliMs),
    bareMs: summarize(bareMs),
    ratio: ratios(cliMs, bareMs),
    inProcess,
    fit,
    growth: { x10: med(10) / med(1), x50: med(50) / med(1) },
  };
}
