/**
 * Runs the Pulumi program in-process against mocks and records every resource: its type, name, inputs as the
 * engine would receive them (secret values stay wrapped in Pulumi's secret marker) and its resource options.
 *
 * @see https://www.pulumi.com/docs/iac/guides/testing/unit/
 */
import * as pulumi from '@pulumi/pulumi';
import { defineSystem, type EnvironmentName } from '../../infra/app';
import { resolve, type ResolvedSystem } from '../../constructs/model';
import { DockerJobSystem, secretConfigKey, type DockerJobSystemOutputs } from '../../constructs/pulumi';
import { REPO_ROOT } from '../helpers';

export const PROJECT = 'async-jobs';

/** Pulumi's wire marker of a secret value (`rpc.ts` specialSigKey / specialSecretSig). */
const SIG_KEY = '4dabf18193072939515e22adb298388d';
const SECRET_SIG = '1b47061264138c4ac30d75fd1eb44270';

/** A value no real config holds, so finding it anywhere means a secret travelled there. */
export function sentinel(secretName: string): string {
  return `SENTINEL-${secretName}-7f3a9c`;
}

export interface RecordedResource {
  readonly type: string;
  readonly name: string;
  /** As serialized for the engine: secrets are `{ [SIG_KEY]: SECRET_SIG, value }` objects. */
  readonly inputs: Record<string, unknown>;
}

export interface RecordedOptions {
  readonly parent: string | undefined;
  readonly dependsOn: readonly string[];
  readonly protect: boolean;
  readonly deleteBeforeReplace: boolean;
  readonly additionalSecretOutputs: readonly string[];
  readonly replaceWith: readonly string[];
}

export function isSecretMarker(value: unknown): value is { value: unknown } {
  return typeof value === 'object' && value !== null && (value as Record<string, unknown>)[SIG_KEY] === SECRET_SIG;
}

/** Removes the secret markers, for assertions on values. */
export function plain(value: unknown): unknown {
  if (isSecretMarker(value)) return plain(value.value);
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

/** Where a string containing `needle` appears outside a secret marker, as property paths. */
export function plaintextOccurrences(value: unknown, needle: string, path = ''): string[] {
  if (isSecretMarker(value)) return [];
  if (typeof value === 'string') return value.includes(needle) ? [path] : [];
  if (Array.isArray(value)) return value.flatMap((v, i) => plaintextOccurrences(v, needle, `${path}[${i}]`));
  if (typeof value === 'object' && value !== null) {
    return Object.entries(value).flatMap(([k, v]) => plaintextOccurrences(v, needle, `${path}.${k}`));
  }
  return [];
}

/** Where `needle` appears inside a secret marker. */
export function secretOccurrences(value: unknown, needle: string, path = ''): string[] {
  if (isSecretMarker(value)) return JSON.stringify(value.value).includes(needle) ? [path] : [];
  if (Array.isArray(value)) return value.flatMap((v, i) => secretOccurrences(v, needle, `${path}[${i}]`));
  if (typeof value === 'object' && value !== null) {
    return Object.entries(value).flatMap(([k, v]) => secretOccurrences(v, needle, `${path}.${k}`));
  }
  return [];
}

/** Fake container addresses: 172.30.<network index>.<container ordinal>. */
function networkDatas(inputs: Record<string, unknown>, ordinal: number): Record<string, unknown>[] {
  const networks = (plain(inputs.networksAdvanced) ?? []) as { name: string }[];
  return networks.map((n, i) => ({ networkName: n.name, ipAddress: `172.30.${i}.${ordinal}` }));
}

export class Recorder {
  public readonly resources: RecordedResource[] = [];
  public readonly options = new Map<string, RecordedOptions>();
  private containers = 0;

  /** @param exitCode what a container the provider waits for (`attach`) exits with, as the provider reads it back. */
  public constructor(private readonly exitCode = 0) {}

  public readonly mocks: pulumi.runtime.Mocks = {
    newResource: (args: pulumi.runtime.MockResourceArgs): { id: string; state: Record<string, unknown> } => {
      const inputs = args.inputs as Record<string, unknown>;
      this.resources.push({ type: args.type, name: args.name, inputs });
      const state: Record<string, unknown> = { ...inputs };
      if (args.type === 'docker:index/container:Container') {
        state.networkDatas = networkDatas(inputs, ++this.containers);
        if (inputs.attach === true) state.exitCode = this.exitCode;
      }
      if (args.type === 'docker:index/remoteImage:RemoteImage') state.imageId = `sha256:id-of-${String(inputs.name)}`;
      return { id: `${args.name}-id`, state };
    },
    call: (args: pulumi.runtime.MockCallArgs): Record<string, unknown> => args.inputs as Record<string, unknown>,
  };

  /**
   * A legacy transformation on the component applies to all its children and sees their resource options,
   * which the mock monitor does not pass on.
   * @see https://www.pulumi.com/docs/iac/concepts/options/transformations/
   */
  public readonly transformation: pulumi.ResourceTransformation = (args) => {
    const nameOf = (r: pulumi.Resource | undefined): string | undefined => (r ? this.names.get(r) : undefined);
    this.names.set(args.resource, args.name);
    const opts = args.opts as pulumi.CustomResourceOptions;
    const dependsOn =
      opts.dependsOn === undefined ? [] : Array.isArray(opts.dependsOn) ? opts.dependsOn : [opts.dependsOn];
    this.options.set(args.name, {
      parent: nameOf(opts.parent),
      dependsOn: (dependsOn as pulumi.Resource[]).map((r) => nameOf(r) ?? '?'),
      protect: opts.protect === true,
      deleteBeforeReplace: opts.deleteBeforeReplace === true,
      additionalSecretOutputs: opts.additionalSecretOutputs ?? [],
      replaceWith: (opts.replaceWith ?? []).map((r) => nameOf(r) ?? '?'),
    });
    return undefined;
  };

  private readonly names = new Map<pulumi.Resource, string>();

  public ofType(type: string): RecordedResource[] {
    return this.resources.filter((r) => r.type === type);
  }

  /** The long-running containers: one per service replica. */
  public serviceContainers(): RecordedResource[] {
    return this.ofType(TYPES.container).filter((r) => !isSecretsWriter(r));
  }

  /** The containers that write a service's secret files once and exit. */
  public secretsWriters(): RecordedResource[] {
    return this.ofType(TYPES.container).filter(isSecretsWriter);
  }

  public named(type: string, name: string): RecordedResource {
    const found = this.resources.find((r) => r.type === type && r.name === name);
    if (!found)
      throw new Error(`no ${type} named ${name}; have ${this.resources.map((r) => `${r.type} ${r.name}`).join(', ')}`);
    return found;
  }
}

/** A secrets writer runs to its end during `pulumi up` (`attach`) and is not kept running. */
export function isSecretsWriter(r: RecordedResource): boolean {
  return r.type === TYPES.container && r.inputs.attach === true;
}

export const TYPES = {
  component: 'async-jobs:index:JobSystem',
  network: 'docker:index/network:Network',
  volume: 'docker:index/volume:Volume',
  image: 'docker:index/image:Image',
  remoteImage: 'docker:index/remoteImage:RemoteImage',
  container: 'docker:index/container:Container',
} as const;

/**
 * Waits until every registration the program started has reached the monitor, so that the next test's mocks
 * never receive the last test's calls. Internal to the SDK (`settings.ts`), hence the cast.
 */
export async function drain(): Promise<void> {
  await (pulumi.runtime as unknown as { waitForRPCs(): Promise<void> }).waitForRPCs();
}

/** The value of an Output, with whether it is secret. */
export async function settle<T>(output: pulumi.Output<T>): Promise<{ value: T; secret: boolean }> {
  const value = await new Promise<T>((done) => output.apply((v) => done(v)));
  return { value, secret: await pulumi.isSecret(output) };
}

/** Sets mocks and secret config (sentinel values) for a stack. */
export async function useStack(recorder: Recorder, stack: string, secretNames: readonly string[]): Promise<void> {
  await pulumi.runtime.setMocks(recorder.mocks, PROJECT, stack, false);
  const config = Object.fromEntries(secretNames.map((n) => [`${PROJECT}:${secretConfigKey(n)}`, sentinel(n)]));
  pulumi.runtime.setAllConfig(config, Object.keys(config));
}

/** The resolved model of an environment, optionally with extra accepted gaps (prod accepts none for pulumi yet). */
export function resolvedSystem(env: EnvironmentName, acceptPulumiGaps: readonly string[] = []): ResolvedSystem {
  const system = resolve(defineSystem(env), { repoRoot: REPO_ROOT });
  return {
    ...system,
    acceptedGaps: [
      ...system.acceptedGaps,
      ...acceptPulumiGaps.map((feature) => ({ target: 'pulumi' as const, feature, reason: 'test' })),
    ],
  };
}

export interface Deployment {
  readonly recorder: Recorder;
  readonly component: DockerJobSystem;
  readonly outputs: DockerJobSystemOutputs;
  readonly containerNames: string[];
}

/** Builds the component for a system under mocks and waits until every container is registered. */
export async function deploy(system: ResolvedSystem, recorder = new Recorder()): Promise<Deployment> {
  const secretNames = [...new Set(system.services.flatMap((s) => s.secrets.map((u) => u.secret)))];
  await useStack(recorder, system.environment, secretNames);
  const config = new pulumi.Config();
  const secrets = Object.fromEntries(secretNames.map((n) => [n, config.requireSecret(secretConfigKey(n))]));
  const component = new DockerJobSystem(
    system.namespace,
    { system, secrets, repoRoot: REPO_ROOT, imageBuilder: 'buildkit' },
    { transformations: [recorder.transformation] },
  );
  const { value: containerNames } = await settle(component.outputs.containerNames);
  await settle(component.urn);
  await drain();
  return { recorder, component, outputs: component.outputs, containerNames };
}
