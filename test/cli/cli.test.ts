import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  appendFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TARGETS } from '../../constructs';
import { REPO_ROOT } from '../helpers';
import { run } from '../tools';

/** The built CLI (`npm test` builds first), run as users run it. */
const CLI = join(REPO_ROOT, 'build', 'infra', 'synth.js');

function synth(...args: string[]) {
  return run(process.execPath, [CLI, ...args], { cwd: REPO_ROOT });
}

function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, prefix: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name), `${prefix}${e.name}/`);
      else out[`${prefix}${e.name}`] = readFileSync(join(d, e.name), 'utf8');
    }
  };
  walk(dir, '');
  return out;
}

let scratch: string;
beforeAll(() => {
  if (!existsSync(CLI)) {
    // `npm test` builds first; build here too so the suite also runs on its own.
    const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const built = run(process.execPath, [tsc, '-p', join(REPO_ROOT, 'tsconfig.build.json')], { cwd: REPO_ROOT });
    if (built.status !== 0 || !existsSync(CLI)) throw new Error(`could not build ${CLI}:\n${built.output}`);
  }
  scratch = mkdtempSync(join(tmpdir(), 'synth-cli-'));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('the synth CLI', () => {
  test('--help lists every option and target', () => {
    const result = synth('--help');
    expect(result.status).toBe(0);
    for (const option of ['--env', '--target', '--out', '--check', '--diff', '--app', '--help']) {
      expect(result.stdout).toContain(option);
    }
    for (const target of TARGETS) expect(result.stdout).toContain(target.name);
  });

  test('an unknown option or environment exits 2 and says what was expected', () => {
    const bad = synth('--frobnicate');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("Unknown option '--frobnicate'");
    const env = synth('--env', 'staging');
    expect(env.status).toBe(2);
    expect(env.stderr).toBe('synth: --env: got "staging", expected one of dev, prod\n');
    const target = synth('--target', 'nomad');
    expect(target.status).toBe(2);
    expect(target.stderr).toBe(
      `synth: --target: got "nomad", expected one of ${TARGETS.map((t) => t.name).join(', ')}\n`,
    );
  });

  test('writes every target, prints one line per target with its files and time, and is byte-identical twice', () => {
    const a = join(scratch, 'a');
    const b = join(scratch, 'b');
    const first = synth('--out', a);
    expect(first.status).toBe(0);
    const lines = first.stdout.trim().split('\n');
    expect(lines).toHaveLength(TARGETS.length + 1);
    TARGETS.forEach((t, i) => expect(lines[i]).toMatch(new RegExp(`^${t.name}\\s+\\d+ files\\s+[0-9.]+ ms$`)));
    expect(synth('--out', b).status).toBe(0);
    expect(tree(b)).toEqual(tree(a));
  });

  test('--check passes on the committed dist/ and fails after any hand edit, naming the file', () => {
    expect(synth('--check').stdout).toMatch(/^synth --check: dist\/ is up to date \(\d+ files\)\n$/);
    const copy = join(scratch, 'edited');
    cpSync(join(REPO_ROOT, 'dist'), copy, { recursive: true });
    appendFileSync(join(copy, 'dev', 'compose.yaml'), '# hand edit\n');
    writeFileSync(join(copy, 'dev', 'stray.yaml'), 'x: 1\n');
    rmSync(join(copy, 'prod', 'producer.Dockerfile'));
    const result = synth('--check', '--out', copy);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('  stale   edited/dev/compose.yaml'.replace('edited', copy));
    expect(result.stderr).toContain(`  extra   ${copy}/dev/stray.yaml`);
    expect(result.stderr).toContain(`  missing ${copy}/prod/producer.Dockerfile`);
  });

  test('--diff prints, per target and environment, the changed resources with each field before → after, and writes nothing', () => {
    const copy = join(scratch, 'diff');
    cpSync(join(REPO_ROOT, 'dist'), copy, { recursive: true });
    const file = join(copy, 'dev', 'compose.yaml');
    const edited = readFileSync(file, 'utf8')
      .replace('PREFETCH: "10"', 'PREFETCH: "99"')
      .replace(/^volumes:\n/m, 'volumes:\n  stale-data:\n    labels:\n      io.async-jobs.volume: stale-data\n');
    writeFileSync(file, edited);
    const dockerfile = join(copy, 'prod', 'producer.Dockerfile');
    writeFileSync(
      dockerfile,
      readFileSync(dockerfile, 'utf8').replace('ENV NODE_ENV=production', 'ENV NODE_ENV=development'),
    );
    const result = synth('--diff', '--out', copy);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(
      '### dev/compose.yaml (compose, dev): changed\n\n' +
        '- removed `volumes/stale-data`\n' +
        '- changed `services/consumer`\n' +
        '  - `environment.PREFETCH`: "99" → "10"\n',
    );
    expect(result.stdout).toContain('### prod/producer.Dockerfile (dockerfile, prod): changed\n\n```diff\n');
    expect(result.stdout).toContain('- ENV NODE_ENV=development\n+ ENV NODE_ENV=production');
    expect(readFileSync(file, 'utf8')).toBe(edited);
  });

  test('a model with errors exits 1, lists every error with its path and writes nothing', () => {
    const app = join(scratch, 'broken-app.js');
    const model = JSON.stringify(join(REPO_ROOT, 'build', 'constructs', 'model'));
    writeFileSync(
      app,
      `const m = require(${model});
exports.ENVIRONMENTS = ['oops'];
exports.defineSystem = (env) => new m.JobSystem(undefined, env, {
  secrets: {
    'mongo-password': { source: m.SecretSource.file('.secrets/x/mongo-password') },
    'rabbitmq-password': { source: m.SecretSource.file('.secrets/x/rabbitmq-password') },
  },
  producer: { replicas: -1 },
  consumer: { prefetch: 1, concurrency: 2, resources: { memoryLimit: m.Memory.parse('512m') } },
  broker: { image: m.ImageSource.registry('rabbitmq:latest') },
  database: { volumeMounts: [{ volume: 'backups', path: '/backups' }] },
});\n`,
    );
    const out = join(scratch, 'never');
    const result = synth('--app', app, '--out', out);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('synth: 5 errors; nothing was written');
    expect(result.stderr).toContain(
      '[oops/rabbitmq] image: got "rabbitmq:latest", expected a pinned tag or digest, not "latest"',
    );
    expect(result.stderr).toContain('[oops/producer] replicas: got -1, expected an integer ≥ 0');
    expect(result.stderr).toContain('[oops/consumer] prefetch: got 1, expected at least the worker concurrency (2)');
    expect(result.stderr).toContain('[oops/consumer] resources.memoryLimit: got "512m", expected a binary quantity');
    expect(result.stderr).toContain(
      '[oops/mongo] volumeMounts.backups: got a reference to "backups", expected one of the declared volumes (mongo-data, rabbitmq-data)',
    );
    expect(existsSync(out)).toBe(false);
  });
});
