import type { JobSystem, ResolveOptions, ResolvedSystem, TargetName } from './model';
import { formatModelError, resolve, validate } from './model';
import type { Gap, GeneratedFile, SynthContext, Target } from './output/types';
import { DEFAULT_CONTEXT } from './output/types';
import { TARGETS } from './targets';

export interface SynthRequest {
  /** Models by environment, in output order. */
  readonly systems: readonly JobSystem[];
  /** @default every target */
  readonly targets?: readonly Target[];
  readonly context?: SynthContext;
  readonly resolveOptions?: ResolveOptions;
}

export interface TargetTiming {
  readonly target: TargetName;
  readonly files: number;
  readonly milliseconds: number;
}

export interface SynthResult {
  /** Every file, sorted by path. Empty when there are errors. */
  readonly files: readonly GeneratedFile[];
  /** Model, target and gap errors, each naming its path. */
  readonly errors: readonly string[];
  readonly warnings: readonly string[];
  /** Gaps that the models accepted (with reasons), for the parity report. */
  readonly acceptedGaps: readonly (Gap & { readonly reason: string })[];
  readonly timings: readonly TargetTiming[];
  readonly resolved: readonly ResolvedSystem[];
}

/**
 * Resolves, validates and renders. Pure apart from reading build contexts for image tags: the caller decides
 * what to do with the files (`output/files.ts` writes or compares them).
 */
export async function synthesize(request: SynthRequest): Promise<SynthResult> {
  const targets = request.targets ?? TARGETS;
  const context = request.context ?? DEFAULT_CONTEXT;
  const resolved = request.systems.map((s) => resolve(s, request.resolveOptions));
  const modelErrors = resolved.flatMap((r) => validate(r).map(formatModelError));
  if (modelErrors.length > 0) {
    return { files: [], errors: modelErrors, warnings: [], acceptedGaps: [], timings: [], resolved };
  }
  const files: GeneratedFile[] = [];
  const errors: string[] = [];
  const warnings: string[] = [];
  const acceptedGaps: (Gap & { reason: string })[] = [];
  const timings: TargetTiming[] = [];
  for (const target of targets) {
    const started = process.hrtime.bigint();
    let count = 0;
    for (const system of resolved) {
      const out = await target.synth(system, context);
      count += out.files.length;
      files.push(...out.files);
      errors.push(...out.errors.map((e) => `[${system.path}] ${target.name}: ${e}`));
      warnings.push(...out.warnings.map((w) => `[${system.path}] ${target.name}: ${w}`));
      for (const gap of out.gaps) {
        const accepted = system.acceptedGaps.find((a) => a.target === gap.target && a.feature === gap.feature);
        if (accepted) {
          acceptedGaps.push({ ...gap, reason: accepted.reason });
        } else {
          errors.push(
            `[${gap.path}] ${gap.target} cannot express "${gap.feature}": it ${gap.detail}; ` +
              `accept it in the model with acceptedGaps: [{ target: '${gap.target}', feature: '${gap.feature}', reason: '…' }] or change the model`,
          );
        }
      }
    }
    timings.push({ target: target.name, files: count, milliseconds: Number(process.hrtime.bigint() - started) / 1e6 });
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { files: errors.length > 0 ? [] : files, errors, warnings, acceptedGaps, timings, resolved };
}
