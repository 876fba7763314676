import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

/** Never part of an image's content: local build output and dependencies. */
const ALWAYS_IGNORED = new Set(['node_modules', 'dist', 'coverage', '.git']);

function ignoredNames(contextDir: string): Set<string> {
  const names = new Set(ALWAYS_IGNORED);
  const file = join(contextDir, '.dockerignore');
  if (existsSync(file)) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const entry = line.trim().replace(/^\/+|\/+$/g, '');
      // Plain names only; a pattern we do not interpret is conservatively kept in the hash.
      if (entry !== '' && !entry.startsWith('#') && !/[*?[\]!]/.test(entry) && !entry.includes('/')) {
        names.add(entry);
      }
    }
  }
  return names;
}

function listFiles(root: string, dir: string, ignored: Set<string>, out: string[]): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (dir === root && ignored.has(entry.name)) continue;
    if (entry.name === 'node_modules') continue;
    const full = join(dir, entry.name);
    if (entry.isDirectory()) listFiles(root, full, ignored, out);
    else if (entry.isFile()) out.push(relative(root, full).split(sep).join('/'));
  }
}

/**
 * Files git tracks or would track (not ignored) under the context, so that local scratch files do not change
 * the tag and a clean clone computes the same one. Undefined outside a git work tree.
 */
function gitFiles(contextDir: string): string[] | undefined {
  try {
    const out = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard', '--', '.'], {
      cwd: contextDir,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const ignored = ignoredNames(contextDir);
    const files = out
      .split('\0')
      .filter((f) => f !== '' && !ignored.has(f.split('/')[0] ?? '') && existsSync(join(contextDir, f)));
    return [...new Set(files)];
  } catch {
    return undefined;
  }
}

const cache = new Map<string, string>();

/**
 * A tag derived from the build context's files (names and bytes, sorted) and the Dockerfile's inputs, so an
 * unchanged build keeps its tag and any change to what goes into the image gives a new one.
 */
export function contentTag(contextDir: string, salt: string): string {
  const key = `${contextDir}\0${salt}`;
  const cached = cache.get(key);
  if (cached !== undefined) return cached;
  const hash = createHash('sha256');
  hash.update(salt);
  if (existsSync(contextDir)) {
    const files = gitFiles(contextDir) ?? [];
    if (files.length === 0) listFiles(contextDir, contextDir, ignoredNames(contextDir), files);
    files.sort();
    for (const file of files) {
      hash.update(`\0${file}\0`);
      hash.update(readFileSync(join(contextDir, file)));
    }
  }
  const tag = `src-${hash.digest('hex').slice(0, 12)}`;
  cache.set(key, tag);
  return tag;
}
