/**
 * NetworkPolicies: deny everything in both directions, then allow exactly the flows the system needs. Each allowed
 * flow is written on both ends (egress of the client, ingress of the server), because both directions are denied.
 *
 * Allowed, and nothing else:
 * - DNS: every pod → kube-dns (kube-system, `k8s-app: kube-dns`) on 53/UDP and 53/TCP.
 * - ingress controller (namespace `ingress-nginx`) → producer on its HTTP port, when the model has an ingress host.
 * - producer and consumers → RabbitMQ on AMQP and → MongoDB on its port.
 * - RabbitMQ nodes ↔ each other on 4369 (epmd), 25672 (distribution, which carries quorum queue replication) and
 *   AMQP, when clustered.
 * - MongoDB members ↔ each other on the MongoDB port, and the replica set initiation Job → MongoDB, when replicated.
 * - KEDA's operator (namespace `keda`) → RabbitMQ on AMQP, when a consumer scales on queue length: the scaler
 *   reads the queue depth over AMQP.
 * - RabbitMQ → the Kubernetes API (443 and 6443, the API server's usual ports; its address is not known here) only
 *   for RabbitMQ < 4.1, whose peer discovery lists endpoints through the API. 4.1 needs no API access.
 *
 * Kubelet probes and `kubectl port-forward` are not subject to NetworkPolicy on the common CNI plugins.
 *
 * @see https://kubernetes.io/docs/concepts/services-networking/network-policies/
 * @see https://www.rabbitmq.com/docs/networking#ports
 */
import { k8s } from 'cdk8s-plus-28';
import type { ResolvedService, ResolvedSystem } from '../model';
import { labelsFor, PART_OF, serviceLabels } from './pod';
import { RABBITMQ_PEER_PORTS } from './stateful';

/** Where the cluster's DNS runs. */
export const KUBE_DNS = { namespace: 'kube-system', podLabels: { 'k8s-app': 'kube-dns' } } as const;
/** The ingress controller the Ingress is written for (ingress-nginx's default install). */
export const INGRESS_CONTROLLER = {
  className: 'nginx',
  namespace: 'ingress-nginx',
  podLabels: { 'app.kubernetes.io/name': 'ingress-nginx' },
} as const;
/** KEDA's operator (KEDA's default install). */
export const KEDA_OPERATOR = { namespace: 'keda', podLabels: { app: 'keda-operator' } } as const;

/** Pods of the initiation Job of the MongoDB replica set. */
export const MONGO_INIT_NAME = 'mongo-replica-set-init';

export interface NetworkFacts {
  readonly clients: readonly ResolvedService[];
  readonly broker: ResolvedService;
  readonly database: ResolvedService;
  readonly producerIngress: boolean;
  readonly kedaScalesOnQueue: boolean;
  readonly brokerNeedsApi: boolean;
}

type Props = k8s.KubeNetworkPolicyProps;

const tcp = (port: number): k8s.NetworkPolicyPort => ({ port: k8s.IntOrString.fromNumber(port), protocol: 'TCP' });
const inNamespace = (namespace: string, podLabels: Record<string, string>): k8s.NetworkPolicyPeer => ({
  namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
  podSelector: { matchLabels: { ...podLabels } },
});
const pods = (labels: Record<string, string>): k8s.NetworkPolicyPeer => ({ podSelector: { matchLabels: labels } });
/** Producer and consumer pods of this system. */
const clientPods = (): k8s.NetworkPolicyPeer => ({
  podSelector: {
    matchExpressions: [{ key: 'app.kubernetes.io/component', operator: 'In', values: ['consumer', 'producer'] }],
    matchLabels: { 'app.kubernetes.io/part-of': PART_OF },
  },
});

function policy(
  system: ResolvedSystem,
  name: string,
  podSelector: k8s.LabelSelector,
  spec: Omit<k8s.NetworkPolicySpec, 'podSelector'>,
): Props {
  return {
    metadata: { name, namespace: system.namespace, labels: { 'app.kubernetes.io/part-of': PART_OF } },
    spec: { podSelector, ...spec },
  };
}

/** Every NetworkPolicy of the system, in a stable order. */
export function networkPolicies(system: ResolvedSystem, facts: NetworkFacts): Props[] {
  const b = facts.broker;
  const d = facts.database;
  const amqp = system.broker.amqpPort;
  const mongoPort = system.database.port;
  const brokerPods = pods(serviceLabels(b));
  const databasePods = pods(serviceLabels(d));
  const clustered = b.replicas > 1;
  const replicated = d.replicas > 1;
  const peerPorts = [tcp(RABBITMQ_PEER_PORTS.epmd), tcp(RABBITMQ_PEER_PORTS.clustering), tcp(amqp)];
  // The empty selector selects every pod of the namespace (kept through rendering by render.ts).
  const everyPod: k8s.LabelSelector = {};

  const out: Props[] = [
    policy(system, 'default-deny', everyPod, { policyTypes: ['Ingress', 'Egress'] }),
    policy(system, 'allow-dns', everyPod, {
      egress: [
        {
          to: [inNamespace(KUBE_DNS.namespace, KUBE_DNS.podLabels)],
          ports: [{ port: k8s.IntOrString.fromNumber(53), protocol: 'UDP' }, tcp(53)],
        },
      ],
      policyTypes: ['Egress'],
    }),
  ];

  for (const c of facts.clients) {
    const http = c.ports.find((p) => p.name === 'http');
    const ingress: k8s.NetworkPolicyIngressRule[] = [];
    if (c.kind === 'producer' && facts.producerIngress && http) {
      ingress.push({
        from: [inNamespace(INGRESS_CONTROLLER.namespace, INGRESS_CONTROLLER.podLabels)],
        ports: [tcp(http.containerPort)],
      });
    }
    out.push(
      policy(
        system,
        c.name,
        { matchLabels: serviceLabels(c) },
        {
          ingress,
          egress: [
            { to: [brokerPods], ports: [tcp(amqp)] },
            { to: [databasePods], ports: [tcp(mongoPort)] },
          ],
          policyTypes: ['Ingress', 'Egress'],
        },
      ),
    );
  }

  const brokerIngress: k8s.NetworkPolicyIngressRule[] = [{ from: [clientPods()], ports: [tcp(amqp)] }];
  if (facts.kedaScalesOnQueue)
    brokerIngress.push({ from: [inNamespace(KEDA_OPERATOR.namespace, KEDA_OPERATOR.podLabels)], ports: [tcp(amqp)] });
  const brokerEgress: k8s.NetworkPolicyEgressRule[] = [];
  if (clustered) {
    brokerIngress.push({ from: [brokerPods], ports: peerPorts });
    brokerEgress.push({ to: [brokerPods], ports: peerPorts });
    if (facts.brokerNeedsApi)
      brokerEgress.push({ to: [{ ipBlock: { cidr: '0.0.0.0/0' } }], ports: [tcp(443), tcp(6443)] });
  }
  out.push(
    policy(
      system,
      b.name,
      { matchLabels: serviceLabels(b) },
      { ingress: brokerIngress, egress: brokerEgress, policyTypes: ['Ingress', 'Egress'] },
    ),
  );

  const databaseIngress: k8s.NetworkPolicyIngressRule[] = [{ from: [clientPods()], ports: [tcp(mongoPort)] }];
  const databaseEgress: k8s.NetworkPolicyEgressRule[] = [];
  if (replicated) {
    databaseIngress.push({
      from: [databasePods, pods(labelsFor(MONGO_INIT_NAME, 'database-init'))],
      ports: [tcp(mongoPort)],
    });
    databaseEgress.push({ to: [databasePods], ports: [tcp(mongoPort)] });
  }
  out.push(
    policy(
      system,
      d.name,
      { matchLabels: serviceLabels(d) },
      { ingress: databaseIngress, egress: databaseEgress, policyTypes: ['Ingress', 'Egress'] },
    ),
  );
  if (replicated) {
    out.push(
      policy(
        system,
        MONGO_INIT_NAME,
        { matchLabels: labelsFor(MONGO_INIT_NAME, 'database-init') },
        {
          egress: [{ to: [databasePods], ports: [tcp(mongoPort)] }],
          policyTypes: ['Ingress', 'Egress'],
        },
      ),
    );
  }
  return out;
}
