/**
 * What the Swarm target does with each feature of the model, for the README's feature table and the parity report.
 * `native`: Swarm itself does it; `emulated`: the same outcome by other means; `unsupported`: not done (reported as
 * a gap or a synth warning).
 */
export type FeatureSupport = 'native' | 'emulated' | 'unsupported';

export interface SwarmFeature {
  readonly support: FeatureSupport;
  readonly note: string;
}

export const SWARM_FEATURES: Readonly<Record<string, SwarmFeature>> = {
  replicas: { support: 'native', note: '`deploy.replicas`; broker and database run 1 task (see their rows)' },
  autoscaling: { support: 'unsupported', note: 'Swarm has no autoscaler; fixed replicas, gap `autoscaling`' },
  'health checks': { support: 'native', note: '`healthcheck`; a task counts as running only once healthy' },
  'startup ordering': {
    support: 'emulated',
    note: 'no `depends_on` in Swarm; services connect with backoff and health checks gate updates',
  },
  secrets: {
    support: 'native',
    note: 'Swarm secrets, mode 0400 with the service uid/gid; names versioned by content at deploy time',
  },
  'resource limits': { support: 'native', note: '`deploy.resources` limits and reservations (no ephemeral storage)' },
  'read-only root + tmpfs': { support: 'native', note: '`read_only` plus `type: tmpfs` mounts with `tmpfs.size`' },
  'non-root user': { support: 'native', note: 'numeric `user: uid:gid`' },
  'capabilities dropped': { support: 'native', note: '`cap_drop: [ALL]` (Docker ≥ 20.10)' },
  'no-new-privileges': {
    support: 'unsupported',
    note: '`docker stack deploy` ignores `security_opt`; synth warns',
  },
  'network isolation': {
    support: 'native',
    note: 'overlay networks: encrypted internal `backend`, `frontend` for the producer',
  },
  'persistent volumes': { support: 'native', note: 'local named volumes; stateful services pinned to labelled nodes' },
  'broker cluster': { support: 'unsupported', note: 'one RabbitMQ task; gap `broker-cluster`' },
  'database replica set': { support: 'unsupported', note: 'one MongoDB task; gap `database-replica-set`' },
  ingress: {
    support: 'unsupported',
    note: 'routing mesh (TCP) or host ports, no HTTP host routing; gap `ingress`',
  },
  'ingress tls': {
    support: 'unsupported',
    note: 'the routing mesh forwards TCP and terminates no TLS; the operator terminates TLS in front of the producer (gap `ingress-tls`)',
  },
  'rolling updates': {
    support: 'native',
    note: '`update_config` with health-monitored rollback; start-first for stateless services',
  },
  'disruption budgets': {
    support: 'emulated',
    note: 'updates replace one task at a time (`parallelism: 1`); node drains are not budgeted',
  },
};
