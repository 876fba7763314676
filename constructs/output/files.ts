/**
 * The only module that reads or writes synthesized files: write a file set, or compare it with what is on disk
 * (`--check`, `--diff`).
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import type { GeneratedFile } from './types';

export interface FileDifference {
  readonly path: string;
  readonly state: 'missing' | 'stale' | 'extra';
  /** Current content on disk, when there is one. */
  readonly actual?: string;
  /** What synth would write, when it writes this file. */
  readonly expected?: string;
}

function listTree(root: string): string[] {
  if (!existsSync(root)) return [];
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else out.push(relative(root, full).split(sep).join('/'));
    }
  };
  walk(root);
  return out.sort();
}

/**
 * Compares `files` with the directory. `owned` decides which files on disk synth is responsible for, so that a
 * partial synth (one environment or target) does not report the rest as extra.
 */
export function compareFiles(
  outDir: string,
  files: readonly GeneratedFile[],
  owned: (path: string) => boolean,
): FileDifference[] {
  const expected = new Map(files.map((f) => [f.path, f.content]));
  const differences: FileDifference[] = [];
  for (const [path, content] of [...expected].sort(([a], [b]) => a.localeCompare(b))) {
    const full = join(outDir, path);
    if (!existsSync(full)) {
      differences.push({ path, state: 'missing', expected: content });
      continue;
    }
    const actual = readFileSync(full, 'utf8');
    if (actual !== content) differences.push({ path, state: 'stale', actual, expected: content });
  }
  for (const path of listTree(outDir)) {
    if (!expected.has(path) && owned(path)) {
      differences.push({ path, state: 'extra', actual: readFileSync(join(outDir, path), 'utf8') });
    }
  }
  return differences;
}

/** Writes the files that changed and removes owned files synth no longer produces. Returns what it changed. */
export function writeFiles(
  outDir: string,
  files: readonly GeneratedFile[],
  owned: (path: string) => boolean,
): FileDifference[] {
  const differences = compareFiles(outDir, files, owned);
  for (const d of differences) {
    const full = join(outDir, d.path);
    if (d.state === 'extra') {
      rmSync(full);
    } else {
      mkdirSync(dirname(full), { recursive: true });
      writeFileSync(full, d.expected as string);
    }
  }
  return differences;
}
