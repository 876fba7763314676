/**
 * Loads every target's output for the policy suite: the file targets from the in-memory synth (what dist/ holds
 * once committed), and the Pulumi program's containers, networks and volumes from a run under mocks.
 */
import { TARGETS } from '../../constructs';
import { pulumiGaps } from '../../constructs/pulumi';
import { ENVIRONMENTS } from '../../infra/app';
import { synthAll } from '../helpers';
import { deploy, plain, resolvedSystem, TYPES } from '../pulumi/harness';
import { parseOutput, type Parsed, type PolicyTarget, type PulumiContainer, type PulumiOutput } from './outputs';

/** Targets whose output exists now: the registered file targets, and Pulumi (a program, always present). */
export function presentTargets(): Set<PolicyTarget> {
  const names = new Set<PolicyTarget>(['pulumi']);
  for (const t of TARGETS) names.add(t.name);
  return names;
}

/** The Pulumi program's resources for one environment, as plain inputs. Gaps are accepted: the policy is not about them. */
export async function pulumiOutput(env: (typeof ENVIRONMENTS)[number]): Promise<Parsed> {
  const base = resolvedSystem(env);
  const system = resolvedSystem(env, [...new Set(pulumiGaps(base).map((g) => g.feature))]);
  const { recorder } = await deploy(system);
  // The component registers its outputs a few ticks after its children; the next setMocks must not replace the
  // mock monitor before that (it would reject the registration as an unknown resource).
  await new Promise((done) => setTimeout(done, 200));
  const inputs = (type: string): Record<string, unknown>[] =>
    recorder.ofType(type).map((r) => plain(r.inputs) as Record<string, unknown>);
  // The secrets writers (one per service, `attach`) run once as root with only CAP_CHOWN and no network, to hand
  // the secret files to the service user; they are not services, and test/pulumi/resources.test.ts pins their
  // exact settings. The policy is about the containers that serve.
  const containers = recorder.serviceContainers().map((r) => {
    const c = plain(r.inputs) as Record<string, unknown>;
    const labels = (c.labels as { label: string; value: string }[] | undefined) ?? [];
    return { ...c, service: labels.find((l) => l.label.endsWith('.service'))?.value } as PulumiContainer;
  });
  const pulumi: PulumiOutput = {
    containers,
    networks: inputs(TYPES.network) as PulumiOutput['networks'],
    volumes: inputs(TYPES.volume) as PulumiOutput['volumes'],
  };
  return { target: 'pulumi', env, file: `${env}/pulumi (program under mocks)`, pulumi };
}

let cached: Promise<Parsed[]> | undefined;

/** Every parsed output of every present target and environment. */
export function allOutputs(): Promise<Parsed[]> {
  cached ??= (async () => {
    const result = await synthAll();
    if (result.errors.length > 0) throw new Error(`synth failed:\n${result.errors.join('\n')}`);
    const parsed = result.files.map(parseOutput).filter((p): p is Parsed => p !== null);
    for (const env of ENVIRONMENTS) parsed.push(await pulumiOutput(env));
    return parsed;
  })();
  return cached;
}
