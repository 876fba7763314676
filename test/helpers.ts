import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { synthesize, type SynthResult } from '../constructs';
import { defineSystem, ENVIRONMENTS } from '../infra/app';

export const REPO_ROOT = join(__dirname, '..');

let cached: Promise<SynthResult> | undefined;

/** Synthesizes every environment and target in memory, once per test file. */
export function synthAll(): Promise<SynthResult> {
  cached ??= synthesize({ systems: ENVIRONMENTS.map((e) => defineSystem(e)), resolveOptions: { repoRoot: REPO_ROOT } });
  return cached;
}

/** The content of one synthesized file; throws when synth did not produce it. */
export async function synthFile(path: string): Promise<string> {
  const result = await synthAll();
  const file = result.files.find((f) => f.path === path);
  if (!file) throw new Error(`synth produced no ${path}; it produced ${result.files.map((f) => f.path).join(', ')}`);
  return file.content;
}

/** One YAML document parsed. */
export async function synthYaml<T = Record<string, unknown>>(path: string): Promise<T> {
  return parse(await synthFile(path)) as T;
}

/** Every YAML document of a multi-document file. */
export async function synthYamlDocuments<T = Record<string, unknown>>(path: string): Promise<T[]> {
  return parseAllDocuments(await synthFile(path)).map((d) => d.toJSON() as T);
}

/** The committed copy under dist/, which is the snapshot. */
export function committed(path: string): string {
  return readFileSync(join(REPO_ROOT, 'dist', path), 'utf8');
}
