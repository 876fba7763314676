/**
 * The Pulumi target: a program over `@pulumi/docker` that deploys the resolved model to one Docker host.
 * Not part of `constructs/index.ts`, so synth never loads the Pulumi SDK.
 */
export * from './model';
export * from './component';
export * from './program';
