/**
 * Finds a Compose CLI. Debian bookworm packages only docker-compose 1.29 (no docker-compose-v2 or
 * docker-compose-plugin: `apt-cache policy` lists none), which predates the top-level `name:` key the synthesized
 * files use; so Compose v2 is built from the Go module proxy once and cached, and 1.29 is the fallback.
 * `go install github.com/docker/compose/v2/cmd@…` refuses (the module's go.mod has exclude directives), so the
 * module source is copied and built as the main module.
 */
import { cpSync, existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { check, run } from './exec.ts';
import { type ComposeCli } from './deploy.ts';

export const COMPOSE_V2_VERSION = 'v2.40.3';

async function version(bin: string): Promise<string | undefined> {
  const r = await run(bin, ['version', '--short'], { timeoutMs: 20_000 });
  if (r.code === 0) return r.stdout.trim();
  const legacy = await run(bin, ['version'], { timeoutMs: 20_000 });
  return legacy.code === 0 ? /version ([\d.]+)/.exec(legacy.stdout)?.[1] : undefined;
}

async function buildV2(cacheDir: string, log: (line: string) => void): Promise<string | undefined> {
  const target = join(cacheDir, `docker-compose-${COMPOSE_V2_VERSION}`);
  if (existsSync(target)) return target;
  if ((await run('sh', ['-c', 'command -v go'])).code !== 0) return undefined;
  log(`building Compose ${COMPOSE_V2_VERSION} from the Go module proxy (first run only; several minutes)`);
  const env = { ...process.env, GOFLAGS: '-mod=mod', CGO_ENABLED: '0' };
  const dir = mkdtempSync(join(cacheDir, 'compose-build-'));
  try {
    const info = JSON.parse(
      await check('go', ['mod', 'download', '-json', `github.com/docker/compose/v2@${COMPOSE_V2_VERSION}`], {
        cwd: dir,
        env,
        timeoutMs: 600_000,
      }),
    ) as { Dir: string };
    cpSync(info.Dir, join(dir, 'src'), { recursive: true });
    await check('chmod', ['-R', 'u+w', join(dir, 'src')]);
    const ldflags = `-s -w -X github.com/docker/compose/v2/internal.Version=${COMPOSE_V2_VERSION}`;
    await check('go', ['build', '-trimpath', '-ldflags', ldflags, '-o', `${target}.partial`, './cmd'], {
      cwd: join(dir, 'src'),
      env,
      timeoutMs: 1_800_000,
    });
    renameSync(`${target}.partial`, target);
    return target;
  } catch (e) {
    log(
      `Compose v2 build failed (${e instanceof Error ? e.message.split('\n')[0] : String(e)}); falling back to docker-compose 1.29`,
    );
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function findCompose(
  cacheDir: string,
  prefer: 'v1' | 'v2',
  log: (line: string) => void,
): Promise<ComposeCli> {
  if (prefer === 'v2') {
    const bin = await buildV2(cacheDir, log);
    const v = bin === undefined ? undefined : await version(bin);
    if (bin !== undefined && v !== undefined) return { bin, version: v, supportsName: true };
  }
  if ((await run('sh', ['-c', 'command -v docker-compose'])).code !== 0) {
    await check('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'docker-compose'], {
      timeoutMs: 600_000,
    });
  }
  const v = await version('docker-compose');
  if (v === undefined) throw new Error('docker-compose does not run');
  return { bin: 'docker-compose', version: v, supportsName: !v.startsWith('1.') };
}
