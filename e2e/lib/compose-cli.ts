/**
 * Finds a Compose CLI. Debian bookworm packages only docker-compose 1.29, which predates the top-level `name:`
 * key the synthesized files use. Compose v2, in order: a binary cached by an earlier run; Debian trixie's
 * `docker-compose` package (Compose 2.26, a static Go binary needing only libc6 ≥ 2.34, which bookworm has),
 * fetched from the host's Debian mirror and verified InRelease signature → Packages.xz hash → .deb hash, in
 * seconds; else built from the Go module proxy (several minutes; `go install github.com/docker/compose/v2/cmd@…`
 * refuses because the module's go.mod has exclude directives, so the module source is built as the main module).
 * Debian's 1.29 is the last fallback.
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { check, run } from './exec.ts';
import { type ComposeCli } from './deploy.ts';
import { debianMirror } from './images.ts';

export const COMPOSE_V2_VERSION = 'v2.40.3';

async function version(bin: string): Promise<string | undefined> {
  const r = await run(bin, ['version', '--short'], { timeoutMs: 20_000 });
  if (r.code === 0) return r.stdout.trim();
  const legacy = await run(bin, ['version'], { timeoutMs: 20_000 });
  return legacy.code === 0 ? /version ([\d.]+)/.exec(legacy.stdout)?.[1] : undefined;
}

const DEBIAN_SUITE = 'trixie';
const DEBIAN_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';
/** Where the package puts the binary (a CLI plugin that also runs standalone as `docker-compose`). */
const DEBIAN_PLUGIN_PATH = 'usr/libexec/docker/cli-plugins/docker-compose';

async function download(url: string, timeoutMs: number): Promise<Buffer> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/**
 * Debian trixie's docker-compose, verified: InRelease checked by gpgv against the host's Debian archive keyring,
 * Packages.xz against the SHA256 the signed InRelease lists, the .deb against the SHA256 in Packages.
 * @see https://wiki.debian.org/DebianRepository/Format
 */
async function debianV2(cacheDir: string, log: (line: string) => void): Promise<string | undefined> {
  const cached = join(cacheDir, `docker-compose-debian-${DEBIAN_SUITE}`);
  if (existsSync(cached)) return cached;
  if (!existsSync(DEBIAN_KEYRING) || (await run('sh', ['-c', 'command -v gpgv && command -v dpkg-deb'])).code !== 0)
    return undefined;
  const dir = mkdtempSync(join(cacheDir, 'compose-deb-'));
  try {
    const mirror = debianMirror('bookworm').replace(/\/+$/, '');
    log(`fetching Debian ${DEBIAN_SUITE}'s docker-compose package (first run only)`);
    const inRelease = join(dir, 'InRelease');
    writeFileSync(inRelease, await download(`${mirror}/dists/${DEBIAN_SUITE}/InRelease`, 60_000));
    await check('gpgv', ['--keyring', DEBIAN_KEYRING, inRelease]);
    const packagesPath = 'main/binary-amd64/Packages.xz';
    const signed = readFileSync(inRelease, 'utf8');
    const sha256Section = signed.slice(signed.indexOf('\nSHA256:'));
    const listed = new RegExp(`^ ([0-9a-f]{64})\\s+\\d+ ${packagesPath.replace(/\./g, '\\.')}$`, 'm').exec(
      sha256Section,
    )?.[1];
    if (listed === undefined) throw new Error(`InRelease lists no SHA256 for ${packagesPath}`);
    const packagesXz = await download(`${mirror}/dists/${DEBIAN_SUITE}/${packagesPath}`, 300_000);
    if (sha256(packagesXz) !== listed) throw new Error(`${packagesPath}: SHA256 differs from the signed InRelease`);
    writeFileSync(join(dir, 'Packages.xz'), packagesXz);
    const packages = await check('xz', ['-dc', join(dir, 'Packages.xz')], { timeoutMs: 120_000 });
    const stanza = packages.split(/\n\n/).find((st) => /^Package: docker-compose$/m.test(st));
    const field = (name: string): string | undefined => new RegExp(`^${name}: (.+)$`, 'm').exec(stanza ?? '')?.[1];
    const filename = field('Filename');
    const debSha = field('SHA256');
    if (filename === undefined || debSha === undefined) throw new Error(`no docker-compose package in ${DEBIAN_SUITE}`);
    const deb = await download(`${mirror}/${filename}`, 300_000);
    if (sha256(deb) !== debSha) throw new Error(`${filename}: SHA256 differs from the signed Packages index`);
    writeFileSync(join(dir, 'pkg.deb'), deb);
    await check('dpkg-deb', ['-x', join(dir, 'pkg.deb'), join(dir, 'root')]);
    renameSync(join(dir, 'root', DEBIAN_PLUGIN_PATH), cached);
    log(`Debian ${DEBIAN_SUITE} docker-compose ${field('Version') ?? ''} verified and cached`);
    return cached;
  } catch (e) {
    log(
      `Debian ${DEBIAN_SUITE}'s Compose v2 unavailable (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`,
    );
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function buildV2(cacheDir: string, log: (line: string) => void): Promise<string | undefined> {
  const target = join(cacheDir, `docker-compose-${COMPOSE_V2_VERSION}`);
  if (existsSync(target)) return target;
  const debian = await debianV2(cacheDir, log);
  if (debian !== undefined) return debian;
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
