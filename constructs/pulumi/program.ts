import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve as resolvePath } from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import type { JobSystem, ResolvedSystem } from '../model';
import { formatModelError, resolve, validate } from '../model';
import { DEFAULT_CONTEXT } from '../output/types';
import { DockerJobSystem, type DockerJobSystemOutputs } from './component';
import {
  IMAGE_BUILDERS,
  IMAGE_BUILDER_CONFIG_KEY,
  dockerfileProblems,
  secretConfigKey,
  unacceptedGapMessage,
  unacceptedGaps,
  usedSecrets,
  type ImageBuilder,
} from './model';

/** Stack outputs of the program, as `pulumi stack output` shows them. */
export interface StackOutputs {
  readonly environment: string;
  readonly producerUrl: pulumi.Output<string>;
  readonly rabbitmqManagementUrl?: pulumi.Output<string>;
  readonly containerNames: pulumi.Output<string[]>;
}

/** Maps a Pulumi stack name to the model's environment; the stack name is the environment name. */
export function environmentForStack<E extends string>(stack: string, environments: readonly E[]): E {
  const env = environments.find((e) => e === stack);
  if (env === undefined) {
    throw new Error(
      `Pulumi stack ${JSON.stringify(stack)} is not an environment of infra/app.ts; expected a stack named one of ${environments.join(', ')} (pulumi stack init <name>)`,
    );
  }
  return env;
}

/**
 * Checks a resolved system the way synth does (model errors, unaccepted gaps) plus what the program itself needs
 * (current Dockerfiles), and throws once with every problem.
 */
export function checkSystem(system: ResolvedSystem, repoRoot: string): void {
  const problems = [
    ...validate(system).map(formatModelError),
    ...unacceptedGaps(system).map(unacceptedGapMessage),
    ...dockerfileProblems(system, repoRoot, DEFAULT_CONTEXT),
  ];
  if (problems.length > 0) {
    throw new Error(
      `The Pulumi program cannot deploy environment ${JSON.stringify(system.environment)} (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
        problems.map((p) => `  ${p}`).join('\n'),
    );
  }
}

/** Reads every secret the containers mount from stack config, as secret Outputs. */
export function secretsFromConfig(
  system: ResolvedSystem,
  config: pulumi.Config,
): Record<string, pulumi.Output<string>> {
  const missing = usedSecrets(system).filter((name) => config.getSecret(secretConfigKey(name)) === undefined);
  if (missing.length > 0) {
    throw new Error(
      `Stack config lacks ${missing.length === 1 ? 'a secret' : 'secrets'} the containers mount: ` +
        missing.map((name) => `${config.name}:${secretConfigKey(name)} (${name})`).join(', ') +
        `; set ${missing.length === 1 ? 'it' : 'each'} with: ` +
        missing.map((name) => `pulumi config set --secret ${secretConfigKey(name)} <value>`).join(' && '),
    );
  }
  return Object.fromEntries(usedSecrets(system).map((name) => [name, config.requireSecret(secretConfigKey(name))]));
}

/** The image builder the stack config names (`imageBuilder`), BuildKit when unset. */
export function imageBuilderFromConfig(config: pulumi.Config): ImageBuilder {
  const value = config.get(IMAGE_BUILDER_CONFIG_KEY);
  if (value === undefined) return 'buildkit';
  if (value in IMAGE_BUILDERS) return value as ImageBuilder;
  throw new Error(
    `Stack config ${config.name}:${IMAGE_BUILDER_CONFIG_KEY}: got ${JSON.stringify(value)}, expected one of ${Object.keys(IMAGE_BUILDERS).join(', ')}`,
  );
}

/**
 * The project root: the engine's root directory (where `Pulumi.yaml` is), which is not the working directory it
 * runs the program in (the folder of `main`). Without an engine (mocks) the SDK answers a placeholder, the
 * relative `rootDirectory`; then the nearest directory above `start` that holds a `Pulumi.yaml`.
 *
 * @see https://www.pulumi.com/docs/iac/concepts/projects/project-file/#attributes
 */
export function projectRoot(rootDirectory: string, start: string): string {
  if (isAbsolute(rootDirectory)) return rootDirectory;
  for (let dir = resolvePath(start); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'Pulumi.yaml'))) return dir;
    if (dirname(dir) === dir) {
      throw new Error(`No Pulumi.yaml in ${resolvePath(start)} or above it; expected the program inside its project`);
    }
  }
}

/** What {@link deploySystem} needs besides the system. */
export interface DeployOptions {
  readonly secrets: Readonly<Record<string, pulumi.Output<string>>>;
  /** Absolute project root. */
  readonly repoRoot: string;
  readonly imageBuilder: ImageBuilder;
}

/** Deploys one resolved, checked system and returns the stack outputs. */
export function deploySystem(system: ResolvedSystem, options: DeployOptions): StackOutputs {
  const component = new DockerJobSystem(system.namespace, { system, ...options });
  return toStackOutputs(component.outputs);
}

function toStackOutputs(o: DockerJobSystemOutputs): StackOutputs {
  return {
    environment: o.environment,
    producerUrl: o.producerUrl,
    ...(o.rabbitmqManagementUrl === undefined ? {} : { rabbitmqManagementUrl: o.rabbitmqManagementUrl }),
    containerNames: o.containerNames,
  };
}

/** Everything the entry point passes in; tests pass the same with mocks. */
export interface ProgramOptions<E extends string> {
  readonly environments: readonly E[];
  readonly defineSystem: (env: E) => JobSystem;
  /** Absolute project root (see {@link projectRoot}); build contexts and `dist/` are relative to it. */
  readonly repoRoot: string;
}

/** The Pulumi program: stack → environment → resolved model → checks → resources. */
export function runProgram<E extends string>(options: ProgramOptions<E>): StackOutputs {
  const env = environmentForStack(pulumi.getStack(), options.environments);
  const system = resolve(options.defineSystem(env), { repoRoot: options.repoRoot });
  checkSystem(system, options.repoRoot);
  const config = new pulumi.Config();
  const secrets = secretsFromConfig(system, config);
  return deploySystem(system, { secrets, repoRoot: options.repoRoot, imageBuilder: imageBuilderFromConfig(config) });
}
