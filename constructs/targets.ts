import type { Target } from './output/types';
import { composeTarget } from './compose';
import { dockerfileTarget } from './dockerfile';
import { kubernetesTarget } from './k8s';
import { swarmTarget } from './swarm';

/** Every target synth knows, in the order the CLI runs them. Each target adds itself here. */
export const TARGETS: readonly Target[] = [dockerfileTarget, composeTarget, swarmTarget, kubernetesTarget];
