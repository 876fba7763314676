import type { FileDifference } from './files';
import { parseAllDocuments } from 'yaml';

/** A minimal line diff (longest common subsequence), enough for review output of generated files. */
export function lineDiff(before: string, after: string): string[] {
  const a = before.split('\n');
  const b = after.split('\n');
  const n = a.length;
  const m = b.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      i++;
      j++;
    } else if (i < n && (j === m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      out.push(`- ${a[i]}`);
      i++;
    } else {
      out.push(`+ ${b[j]}`);
      j++;
    }
  }
  return out;
}

/** Markdown for a pull request: one section per changed file. */
export function renderDiff(differences: readonly FileDifference[]): string {
  const parts: string[] = [];
  for (const d of differences) {
    const verb = d.state === 'missing' ? 'added' : d.state === 'extra' ? 'removed' : 'changed';
    parts.push(
      `### ${d.path} (${verb})\n\n\`\`\`diff\n${lineDiff(d.actual ?? '', d.expected ?? '').join('\n')}\n\`\`\`\n`,
    );
  }
  return parts.join('\n');
}

/** One changed field of a resource: its path inside the resource, with the value before and after. */
export interface FieldChange {
  readonly field: string;
  readonly before: string;
  readonly after: string;
}

/** What changed in one file, resource by resource. */
export interface ResourceChanges {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly changed: readonly { readonly resource: string; readonly fields: readonly FieldChange[] }[];
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const COMPOSE_SECTIONS = ['services', 'networks', 'volumes', 'secrets', 'configs'];

/**
 * The resources of a YAML file by key: Kubernetes objects by `Kind/name` (with the namespace when set), Compose and
 * Swarm entries by `services/<name>`, `networks/<name>`… and any other top-level key by itself.
 */
function resourcesOf(text: string): Map<string, Json> | null {
  let docs: Json[];
  try {
    const parsed = parseAllDocuments(text);
    if (parsed.some((d) => d.errors.length > 0)) return null;
    docs = parsed.map((d) => d.toJSON() as Json).filter((d) => d !== null);
  } catch {
    return null;
  }
  const out = new Map<string, Json>();
  for (const doc of docs) {
    if (typeof doc !== 'object' || Array.isArray(doc) || doc === null) return null;
    const meta = doc.metadata as { name?: string; namespace?: string } | undefined;
    if (typeof doc.kind === 'string' && meta?.name) {
      out.set(`${doc.kind}/${meta.namespace ? `${meta.namespace}/` : ''}${meta.name}`, doc);
      continue;
    }
    for (const [key, value] of Object.entries(doc)) {
      if (COMPOSE_SECTIONS.includes(key) && value !== null && typeof value === 'object' && !Array.isArray(value)) {
        for (const [name, entry] of Object.entries(value)) out.set(`${key}/${name}`, entry);
      } else {
        out.set(key, value);
      }
    }
  }
  return out;
}

function show(value: Json | undefined): string {
  return value === undefined ? '(none)' : JSON.stringify(value);
}

function isMap(v: Json | undefined): v is { [key: string]: Json } {
  return v !== null && v !== undefined && typeof v === 'object' && !Array.isArray(v);
}

/** Changed leaves between two values, as dotted paths (`environment.PREFETCH`, `containers[0].image`). */
function fieldChanges(before: Json | undefined, after: Json | undefined, path: string, out: FieldChange[]): void {
  if (JSON.stringify(before) === JSON.stringify(after)) return;
  if (isMap(before) && isMap(after)) {
    for (const key of [...new Set([...Object.keys(before), ...Object.keys(after)])].sort()) {
      fieldChanges(before[key], after[key], path === '' ? key : `${path}.${key}`, out);
    }
    return;
  }
  // Arrays of objects (containers, ports, rules) compare element by element; lists of scalars as a whole.
  if (
    Array.isArray(before) &&
    Array.isArray(after) &&
    [...before, ...after].some((x) => isMap(x) || Array.isArray(x))
  ) {
    for (let i = 0; i < Math.max(before.length, after.length); i++)
      fieldChanges(before[i], after[i], `${path}[${i}]`, out);
    return;
  }
  out.push({ field: path === '' ? '(value)' : path, before: show(before), after: show(after) });
}

/** Resource-level changes of a YAML file, or null when either side is not YAML of resources. */
export function resourceChanges(
  path: string,
  before: string | undefined,
  after: string | undefined,
): ResourceChanges | null {
  if (!/\.ya?ml$/.test(path)) return null;
  const a = before === undefined ? new Map<string, Json>() : resourcesOf(before);
  const b = after === undefined ? new Map<string, Json>() : resourcesOf(after);
  if (a === null || b === null) return null;
  const added = [...b.keys()].filter((k) => !a.has(k)).sort();
  const removed = [...a.keys()].filter((k) => !b.has(k)).sort();
  const changed: { resource: string; fields: FieldChange[] }[] = [];
  for (const key of [...a.keys()].filter((k) => b.has(k)).sort()) {
    const fields: FieldChange[] = [];
    fieldChanges(a.get(key), b.get(key), '', fields);
    if (fields.length > 0) changed.push({ resource: key, fields });
  }
  return { added, removed, changed };
}

/**
 * Markdown for a pull request, per target and environment: for YAML, the resources added, removed and changed, with
 * each changed field as before → after; other files (Dockerfiles, reports) as a line diff. `targetOf` names the
 * target that writes each file (synth's `SynthResult.targetOf`).
 */
export function renderResourceDiff(
  differences: readonly FileDifference[],
  targetOf: Readonly<Record<string, string>> = {},
): string {
  const parts: string[] = [];
  for (const d of differences) {
    const verb = d.state === 'missing' ? 'added' : d.state === 'extra' ? 'removed' : 'changed';
    const env = d.path.includes('/') ? d.path.split('/')[0] : null;
    const where = [targetOf[d.path], env].filter((x): x is string => typeof x === 'string' && x !== '').join(', ');
    const title = `### ${d.path}${where ? ` (${where})` : ''}: ${verb}`;
    const changes = resourceChanges(d.path, d.actual, d.expected);
    if (changes === null) {
      parts.push(`${title}\n\n\`\`\`diff\n${lineDiff(d.actual ?? '', d.expected ?? '').join('\n')}\n\`\`\`\n`);
      continue;
    }
    const lines: string[] = [];
    for (const r of changes.added) lines.push(`- added \`${r}\``);
    for (const r of changes.removed) lines.push(`- removed \`${r}\``);
    for (const c of changes.changed) {
      lines.push(`- changed \`${c.resource}\``);
      for (const f of c.fields) lines.push(`  - \`${f.field}\`: ${f.before} → ${f.after}`);
    }
    if (lines.length === 0) lines.push('- no resource changed (formatting or comments only)');
    parts.push(`${title}\n\n${lines.join('\n')}\n`);
  }
  return parts.join('\n');
}
