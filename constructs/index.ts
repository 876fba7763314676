export * from './model';
export * from './output/types';
export { renderYaml, prune } from './output/yaml';
export { generatedHeader } from './output/header';
export { synthesize } from './synth';
export type { SynthRequest, SynthResult, TargetTiming } from './synth';
export { TARGETS } from './targets';
