/**
 * The `Pulumi.yaml` main (built to build/infra/pulumi.js by `npm run build`). The stack name selects the
 * environment of infra/app.ts; secrets come from stack config (`pulumi config set --secret …`).
 *
 * Pulumi calls the exported function and uses its result as the stack outputs.
 * @see https://www.pulumi.com/docs/iac/concepts/stacks/#outputs
 */
import * as pulumi from '@pulumi/pulumi';
import { projectRoot, runProgram, type StackOutputs } from '../constructs/pulumi';
import { defineSystem, ENVIRONMENTS } from './app';

function main(): StackOutputs {
  // The engine runs the program in the folder of `main` (build/infra), not where Pulumi.yaml is; its root
  // directory is the project. Mocks set none, so fall back to the Pulumi.yaml above this file.
  const repoRoot = projectRoot(pulumi.runtime.getRootDirectory(), __dirname);
  return runProgram({ environments: ENVIRONMENTS, defineSystem, repoRoot });
}

export = main;
