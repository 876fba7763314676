import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers';

test('tsc accepts the Pulumi program and everything it imports under the strict settings', () => {
  const base = JSON.parse(readFileSync(join(REPO_ROOT, 'tsconfig.json'), 'utf8')) as {
    compilerOptions: Record<string, unknown>;
  };
  expect(base.compilerOptions).toMatchObject({
    strict: true,
    noUncheckedIndexedAccess: true,
    noImplicitOverride: true,
  });
  const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', join(__dirname, 'tsconfig.json')], {
    encoding: 'utf8',
    cwd: REPO_ROOT,
  });
  expect({ status: result.status, output: `${result.stdout}${result.stderr}` }).toEqual({ status: 0, output: '' });
});
