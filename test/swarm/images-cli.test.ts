import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolve, synthesize } from '../../constructs';
import { dockerfileTarget } from '../../constructs/dockerfile';
import { defineSystem } from '../../infra/app';
import { REPO_ROOT } from '../helpers';
import { run } from '../tools';

/** The built image step (`npm test` builds first), run as `npm run images` runs it. */
const CLI = join(REPO_ROOT, 'build', 'infra', 'images.js');

function images(args: readonly string[], cwd = REPO_ROOT) {
  return run(process.execPath, [CLI, ...args], { cwd });
}

let scratch: string;
beforeAll(async () => {
  if (!existsSync(CLI)) {
    // `npm test` builds first; build here too so the suite also runs on its own.
    const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const built = run(process.execPath, [tsc, '-p', join(REPO_ROOT, 'tsconfig.build.json')], { cwd: REPO_ROOT });
    if (built.status !== 0 || !existsSync(CLI)) throw new Error(`could not build ${CLI}:\n${built.output}`);
  }
  scratch = mkdtempSync(join(tmpdir(), 'images-cli-'));
  const result = await synthesize({
    systems: [defineSystem('prod')],
    targets: [dockerfileTarget],
    resolveOptions: { repoRoot: REPO_ROOT },
  });
  for (const file of result.files) {
    mkdirSync(join(scratch, 'dist', 'prod'), { recursive: true });
    writeFileSync(join(scratch, 'dist', file.path), file.content);
  }
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('npm run images', () => {
  test('builds each image from its synthesized Dockerfile, tags it by content and prints the tags', () => {
    const out = join(scratch, 'dist');
    const result = images(['--env', 'prod', '--dry-run', '--push', '--out', out]);
    expect(result.status).toBe(0);
    const refs = resolve(defineSystem('prod'), { repoRoot: REPO_ROOT }).services.flatMap((s) =>
      s.image.kind === 'build' ? [s.image.reference] : [],
    );
    expect(refs).toHaveLength(2);
    expect(result.stdout).toBe(`${refs.join('\n')}\n`);
    expect(result.stderr).toBe(
      `+ docker build --file ${out}/prod/producer.Dockerfile --tag ${refs[0]} services\n` +
        `+ docker push ${refs[0]}\n` +
        `+ docker build --file ${out}/prod/consumer.Dockerfile --tag ${refs[1]} services\n` +
        `+ docker push ${refs[1]}\n`,
    );
  });

  test('refuses to build from Dockerfiles that are not what synth writes', () => {
    const stale = join(scratch, 'stale');
    mkdirSync(join(stale, 'prod'), { recursive: true });
    writeFileSync(join(stale, 'prod', 'producer.Dockerfile'), 'FROM scratch\n');
    const result = images(['--env', 'prod', '--dry-run', '--out', stale]);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      `images: ${stale}/ is not what synth writes (missing ${stale}/prod/consumer.Dockerfile, missing ` +
        `${stale}/prod/consumer.Dockerfile.dockerignore, stale ${stale}/prod/producer.Dockerfile, missing ` +
        `${stale}/prod/producer.Dockerfile.dockerignore); run npm run synth first\n`,
    );
  });

  test('prints the secret versions the stack file interpolates, for eval before docker stack deploy', () => {
    const root = mkdtempSync(join(tmpdir(), 'images-secrets-'));
    try {
      mkdirSync(join(root, '.secrets', 'prod'), { recursive: true });
      const values = {
        'api-keys': 'k',
        'mongo-password': 'a',
        'rabbitmq-erlang-cookie': 'b',
        'rabbitmq-password': 'c',
      };
      for (const [name, value] of Object.entries(values)) writeFileSync(join(root, '.secrets', 'prod', name), value);
      const result = images(['--env', 'prod', '--secret-versions'], root);
      const v = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 12);
      expect(result.stdout).toBe(
        `export API_KEYS_VERSION=${v('k')}\n` +
          `export MONGO_PASSWORD_VERSION=${v('a')}\n` +
          `export RABBITMQ_PASSWORD_VERSION=${v('c')}\n`,
      );
      expect(result.status).toBe(0);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('names a missing secret file and how to create it', () => {
    const root = mkdtempSync(join(tmpdir(), 'images-secrets-'));
    try {
      const result = images(['--env', 'dev', '--secret-versions'], root);
      expect(result.status).toBe(1);
      expect(result.stderr.split('\n')[0]).toBe(
        'images: [dev/secrets/api-keys] source: got ".secrets/dev/api-keys", which does not exist, ' +
          "expected the secret's file (create it, or run npm run secrets -- dev)",
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('rejects an unknown environment and several environments for secret versions', () => {
    expect(images(['--env', 'staging']).stderr).toBe('images: --env: got "staging", expected one of dev, prod\n');
    expect(images(['--secret-versions']).stderr).toBe(
      'images: --secret-versions: got 2 environments, expected exactly one --env\n',
    );
  });
});
