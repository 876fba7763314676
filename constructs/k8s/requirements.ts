/**
 * What a cluster must provide for an environment's manifests to work as modelled. Derived from the resolved model,
 * so the README and the parity report (which list them) cannot drift from the manifests: a test holds the README
 * to this list.
 */
import type { ResolvedSystem } from '../model';
import { requiredNodes } from './pod';

/** One thing the cluster must have. */
export interface ClusterRequirement {
  /** Stable id. */
  readonly id:
    'kubernetes' | 'nodes' | 'storage-class' | 'network-policy' | 'metrics-server' | 'keda' | 'ingress-nginx';
  /** What to have, as the README says it (the README must contain this text). */
  readonly what: string;
  /** Why, naming the objects that need it and what happens without it. */
  readonly why: string;
}

/** The requirements of one environment, in a fixed order. */
export function clusterRequirements(system: ResolvedSystem): ClusterRequirement[] {
  const out: ClusterRequirement[] = [
    {
      id: 'kubernetes',
      what: 'Kubernetes ≥ 1.28',
      why: 'the manifests use the 1.28 API and the namespace enforces Pod Security restricted:v1.28',
    },
  ];
  const nodes = requiredNodes(system);
  if (nodes > 1) {
    const members = system.services
      .filter((s) => s.stateful && s.replicas > 1)
      .map((s) => `${s.name} (${s.replicas})`)
      .join(', ');
    out.push({
      id: 'nodes',
      what: `at least ${nodes} schedulable nodes`,
      why: `required pod anti-affinity puts each member of ${members} on its own node; with fewer nodes the extra members stay Pending`,
    });
  }
  out.push(
    {
      id: 'storage-class',
      what: 'a default StorageClass',
      why: 'the StatefulSets’ volumeClaimTemplates name no class',
    },
    {
      id: 'network-policy',
      what: 'a CNI that enforces NetworkPolicy',
      why: 'isolation is default-deny NetworkPolicies; a CNI without policy support ignores them silently',
    },
  );
  const autoscaled = system.services.filter((s) => s.autoscaling !== null);
  const keda = autoscaled.filter((s) => s.kind === 'consumer' && s.autoscaling?.queueLengthPerReplica !== null);
  const hpa = autoscaled.filter((s) => !keda.includes(s));
  if (hpa.length > 0) {
    out.push({
      id: 'metrics-server',
      what: 'metrics-server',
      why: `the HorizontalPodAutoscaler of ${hpa.map((s) => s.name).join(', ')} reads CPU from the resource metrics API (metrics.k8s.io); without it the HPA holds minReplicas and never scales`,
    });
  }
  if (keda.length > 0) {
    out.push({
      id: 'keda',
      what: 'the KEDA operator',
      why:
        `the ScaledObject of ${keda.map((s) => s.name).join(', ')} is what sets its replica count (the Deployment has none); ` +
        'with only the CRDs, or none, it runs a single pod and its PodDisruptionBudget blocks drains',
    });
  }
  if (system.ingressHost !== null) {
    out.push({
      id: 'ingress-nginx',
      what: 'ingress-nginx',
      why: `the Ingress for ${system.ingressHost} uses the nginx class, and the producer's NetworkPolicy admits the ingress-nginx namespace`,
    });
  }
  return out;
}
