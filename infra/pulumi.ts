/**
 * The `Pulumi.yaml` main (built to build/infra/pulumi.js by `npm run build`). The stack name selects the
 * environment of infra/app.ts; secrets come from stack config (`pulumi config set --secret …`).
 *
 * Pulumi calls the exported function and uses its result as the stack outputs.
 * @see https://www.pulumi.com/docs/iac/concepts/stacks/#outputs
 */
import { runProgram, type StackOutputs } from '../constructs/pulumi';
import { defineSystem, ENVIRONMENTS } from './app';

function main(): StackOutputs {
  // Pulumi runs the program with the project directory (where Pulumi.yaml is) as its working directory.
  return runProgram({ environments: ENVIRONMENTS, defineSystem, repoRoot: process.cwd() });
}

export = main;
