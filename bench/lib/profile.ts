import { readFileSync } from 'node:fs';

/**
 * Summarises a V8 `.cpuprofile` (written by `node --cpu-prof`): self time per function and per origin
 * (an npm package, the services' own code, Node internals, GC, idle).
 * @see https://nodejs.org/api/cli.html#--cpu-prof
 * @see https://chromedevtools.github.io/devtools-protocol/tot/Profiler/#type-Profile
 */

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly hitCount?: number;
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples?: readonly number[];
}

export interface ProfileSummary {
  readonly samples: number;
  /** Share of non-idle samples, percent, biggest first. */
  readonly topFunctions: readonly { readonly name: string; readonly percent: number }[];
  readonly byOrigin: readonly { readonly origin: string; readonly percent: number }[];
  readonly idlePercent: number;
}

export function originOf(url: string, functionName: string): string {
  if (functionName === '(garbage collector)') return 'GC';
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(program)') return 'V8/native (program)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg !== null) return pkg[1] ?? 'node_modules';
  if (url.includes('/services/dist/')) return 'services (own code)';
  if (url.startsWith('node:') || url === '') return 'Node core / native';
  return 'other';
}

export function summarizeProfile(path: string, top = 12): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const hits = new Map<number, number>();
  if (profile.samples !== undefined) for (const s of profile.samples) hits.set(s, (hits.get(s) ?? 0) + 1);
  const byFunction = new Map<string, number>();
  const byOrigin = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const node of profile.nodes) {
    const n = hits.get(node.id) ?? node.hitCount ?? 0;
    if (n === 0) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const origin = originOf(url, functionName);
    total += n;
    if (origin === 'idle') {
      idle += n;
      continue;
    }
    const file = url
      .replace(/^.*\/node_modules\//, '')
      .replace(/^.*\/services\/dist\//, 'services/dist/')
      .replace(/^file:\/\//, '');
    const name = `${functionName || '(anonymous)'} ${file}${file !== '' ? `:${lineNumber + 1}` : ''}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + n);
    byOrigin.set(origin, (byOrigin.get(origin) ?? 0) + n);
  }
  const busy = Math.max(1, total - idle);
  const sorted = (m: Map<string, number>): [string, number][] => [...m.entries()].sort((a, b) => b[1] - a[1]);
  return {
    samples: total,
    idlePercent: (idle * 100) / Math.max(1, total),
    topFunctions: sorted(byFunction)
      .slice(0, top)
      .map(([name, n]) => ({ name, percent: (n * 100) / busy })),
    byOrigin: sorted(byOrigin).map(([origin, n]) => ({ origin, percent: (n * 100) / busy })),
  };
}
