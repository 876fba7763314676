/**
 * No secret value anywhere: secret files holding a sentinel are created in a scratch copy of the repository root,
 * every target is synthesized from it in memory, and no output file may contain the sentinel. The Pulumi program
 * gets the sentinel as its secret config and must keep it inside Pulumi's secret marker.
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { synthesize, TARGETS } from '../../constructs';
import { defineSystem, ENVIRONMENTS } from '../../infra/app';
import { REPO_ROOT } from '../helpers';
import { deploy, plaintextOccurrences, resolvedSystem, sentinel } from '../pulumi/harness';
import { pulumiGaps } from '../../constructs/pulumi';

jest.setTimeout(120_000);

const SENTINEL = 'SENTINEL-secret-value-4b1d0c9e';

describe('no secret value anywhere', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'policy-secrets-'));
    cpSync(join(REPO_ROOT, 'services'), join(root, 'services'), {
      recursive: true,
      filter: (src) => !/[/\\](node_modules|dist|coverage)$/.test(src),
    });
    for (const env of ENVIRONMENTS) {
      mkdirSync(join(root, '.secrets', env), { recursive: true });
      for (const name of ['api-keys', 'mongo-password', 'rabbitmq-password', 'rabbitmq-erlang-cookie']) {
        writeFileSync(join(root, '.secrets', env, name), `${SENTINEL}-${env}-${name}\n`);
      }
    }
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  test('a sentinel in every secret file appears in no file synthesized by any target', async () => {
    const saved = { ...process.env };
    // Variables a careless renderer might read are set to the sentinel too.
    for (const name of ['MONGO_PASSWORD', 'RABBITMQ_PASSWORD', 'RABBITMQ_DEFAULT_PASS', 'AMQP_PASSWORD'])
      process.env[name] = SENTINEL;
    try {
      const result = await synthesize({
        systems: ENVIRONMENTS.map((e) => defineSystem(e)),
        targets: TARGETS,
        resolveOptions: { repoRoot: root },
      });
      expect(result.errors).toEqual([]);
      expect(result.files.length).toBeGreaterThan(0);
      expect(result.files.filter((f) => f.content.includes(SENTINEL)).map((f) => f.path)).toEqual([]);
    } finally {
      process.env = saved;
    }
  });

  test.each(ENVIRONMENTS.map((e) => [e]))(
    'the Pulumi program for %s keeps its sentinel secret config inside secret markers only',
    async (env) => {
      const base = resolvedSystem(env);
      const { recorder } = await deploy(resolvedSystem(env, [...new Set(pulumiGaps(base).map((g) => g.feature))]));
      await new Promise((done) => setTimeout(done, 200));
      const leaks = recorder.resources.flatMap((r) =>
        ['api-keys', 'mongo-password', 'rabbitmq-password', 'rabbitmq-erlang-cookie'].flatMap((n) =>
          plaintextOccurrences(r.inputs, sentinel(n)).map((p) => `${r.type} ${r.name}${p}`),
        ),
      );
      expect(leaks).toEqual([]);
    },
  );
});
