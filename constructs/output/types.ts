import type { ResolvedSystem, TargetName } from '../model';

/** One synthesized file, its path relative to the output directory (`dev/compose.yaml`). */
export interface GeneratedFile {
  readonly path: string;
  readonly content: string;
}

/**
 * A feature of the model a target cannot express as modelled. Synth fails on a gap the model has not accepted
 * (`acceptedGaps`), so nothing is dropped silently.
 */
export interface Gap {
  readonly target: TargetName;
  /** Stable feature id, e.g. `broker-cluster`. */
  readonly feature: string;
  /** Construct path of what the gap is about. */
  readonly path: string;
  /** What the target does instead. */
  readonly detail: string;
}

/** What a target produced for one environment. */
export interface TargetOutput {
  readonly files: readonly GeneratedFile[];
  /** Gaps found; the CLI checks them against the model's accepted gaps. */
  readonly gaps: readonly Gap[];
  /** Things a reader should know that are not gaps (printed by the CLI). */
  readonly warnings: readonly string[];
  /** Errors that make the output unusable for this target (e.g. Swarm without a registry tag). */
  readonly errors: readonly string[];
}

/** Facts every renderer may cite in its generated-file header. */
export interface SynthContext {
  /** The model's source file, e.g. `infra/app.ts`. */
  readonly source: string;
  /** The command that regenerates the output. */
  readonly command: string;
}

/**
 * How a target expresses one feature of the model, for the parity report (`dist/PARITY.md`) and the README's
 * feature table. `n/a`: not the target's concern (a Dockerfile has no replicas).
 */
export interface FeatureSupport {
  readonly support: 'native' | 'emulated' | 'unsupported' | 'n/a';
  /** How it is done, or why not. */
  readonly how: string;
}

/** A deployment target: a pure function of the resolved model. */
export interface Target {
  readonly name: TargetName;
  /** One line for `--help`. */
  readonly description: string;
  /**
   * The target's support of each model feature, by feature id (`constructs/parity` FEATURES).
   * @default the rows kept for it in constructs/parity
   */
  readonly features?: Readonly<Record<string, FeatureSupport>>;
  synth(system: ResolvedSystem, context: SynthContext): TargetOutput | Promise<TargetOutput>;
}

export const DEFAULT_CONTEXT: SynthContext = { source: 'infra/app.ts', command: 'npm run synth' };
