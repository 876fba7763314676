import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import { parse } from 'yaml';
import { synthesize, TARGETS } from '../../constructs';
import { clusterRequirements, kubernetesTarget, MONGO_INIT_NAME, MONGO_INIT_TTL_SECONDS } from '../../constructs/k8s';
import { DEFAULT_CONTEXT } from '../../constructs/output/types';
import { ImageSource, Memory, SecretSource } from '../../constructs/model';
import { defineSystem } from '../../infra/app';
import { REPO_ROOT, synthFile, synthYamlDocuments } from '../helpers';
import { clusterProps, type Obj, podTemplates, resolved, testSystem } from './fixtures';

const ENVS = ['dev', 'prod'] as const;
const manifest = (env: string): string => `${env}/kubernetes.k8s.yaml`;
const docsOf = (env: string): Promise<Obj[]> => synthYamlDocuments<Obj>(manifest(env));
const find = (docs: readonly Obj[], kind: string, name: string): Obj => {
  const doc = docs.find((d) => d.kind === kind && d.metadata.name === name);
  if (!doc) throw new Error(`no ${kind}/${name}`);
  return doc;
};
const labelsOf = (name: string, component: string): Obj => ({
  'app.kubernetes.io/component': component,
  'app.kubernetes.io/name': name,
  'app.kubernetes.io/part-of': 'async-jobs',
});
/** The replica-set initiation Job, found by its label: its name carries a revision hash. */
const initJob = (docs: readonly Obj[]): Obj => {
  const jobs = docs.filter((d) => d.kind === 'Job' && d.metadata.labels['app.kubernetes.io/name'] === MONGO_INIT_NAME);
  if (jobs.length !== 1) throw new Error(`expected one ${MONGO_INIT_NAME} Job, got ${jobs.length}`);
  return jobs[0] as Obj;
};

/** One line per allowed flow: `from -> to:port/protocol (direction)`. */
function describePeer(peer: Obj): string {
  if (peer.ipBlock) return String(peer.ipBlock.cidr);
  const ns = peer.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] as string | undefined;
  const labels = (peer.podSelector?.matchLabels ?? {}) as Obj;
  const expressions = (peer.podSelector?.matchExpressions ?? []) as Obj[];
  let pods: string;
  if (expressions.length > 0)
    pods = `${expressions.map((e) => `${e.key} in ${(e.values as string[]).join('|')}`).join(',')}`;
  else pods = String(labels['app.kubernetes.io/name'] ?? labels['k8s-app'] ?? labels.app ?? '*');
  return ns ? `${ns}/${pods}` : pods;
}

function flows(docs: readonly Obj[]): string[] {
  const out: string[] = [];
  for (const p of docs.filter((d) => d.kind === 'NetworkPolicy')) {
    const self = describePeer({ podSelector: p.spec.podSelector });
    for (const rule of (p.spec.ingress ?? []) as Obj[]) {
      for (const from of rule.from as Obj[])
        for (const port of rule.ports as Obj[])
          out.push(`${describePeer(from)} -> ${self}:${port.port}/${port.protocol} (ingress)`);
    }
    for (const rule of (p.spec.egress ?? []) as Obj[]) {
      for (const to of rule.to as Obj[])
        for (const port of rule.ports as Obj[])
          out.push(`${self} -> ${describePeer(to)}:${port.port}/${port.protocol} (egress)`);
    }
  }
  return out.sort();
}

const CLIENTS = 'app.kubernetes.io/component in consumer|producer';
const COMMON_FLOWS = [
  '* -> kube-system/kube-dns:53/TCP (egress)',
  '* -> kube-system/kube-dns:53/UDP (egress)',
  `${CLIENTS} -> mongo:27017/TCP (ingress)`,
  `${CLIENTS} -> rabbitmq:5672/TCP (ingress)`,
  'consumer -> mongo:27017/TCP (egress)',
  'consumer -> rabbitmq:5672/TCP (egress)',
  'producer -> mongo:27017/TCP (egress)',
  'producer -> rabbitmq:5672/TCP (egress)',
];
const EXPECTED_FLOWS: Record<(typeof ENVS)[number], string[]> = {
  dev: [...COMMON_FLOWS].sort(),
  prod: [
    ...COMMON_FLOWS,
    'ingress-nginx/ingress-nginx -> producer:8080/TCP (ingress)',
    'keda/keda-operator -> rabbitmq:5672/TCP (ingress)',
    'rabbitmq -> rabbitmq:4369/TCP (egress)',
    'rabbitmq -> rabbitmq:4369/TCP (ingress)',
    'rabbitmq -> rabbitmq:25672/TCP (egress)',
    'rabbitmq -> rabbitmq:25672/TCP (ingress)',
    'rabbitmq -> rabbitmq:5672/TCP (egress)',
    'rabbitmq -> rabbitmq:5672/TCP (ingress)',
    'mongo -> mongo:27017/TCP (egress)',
    'mongo -> mongo:27017/TCP (ingress)',
    'mongo-replica-set-init -> mongo:27017/TCP (ingress)',
    'mongo-replica-set-init -> mongo:27017/TCP (egress)',
  ].sort(),
};

const RESTRICTED_VOLUME_TYPES = new Set([
  'configMap',
  'csi',
  'downwardAPI',
  'emptyDir',
  'ephemeral',
  'persistentVolumeClaim',
  'projected',
  'secret',
]);

describe.each(ENVS)('the Kubernetes manifests of %s', (env) => {
  test('the namespace enforces the restricted Pod Security profile and holds every other object', async () => {
    const docs = await docsOf(env);
    const ns = find(docs, 'Namespace', `async-jobs-${env}`);
    expect(ns.metadata.labels['pod-security.kubernetes.io/enforce']).toBe('restricted');
    expect(ns.metadata.labels['pod-security.kubernetes.io/enforce-version']).toBe('v1.28');
    for (const d of docs.filter((x) => x.kind !== 'Namespace'))
      expect(`${d.kind}/${d.metadata.name}:${d.metadata.namespace}`).toBe(
        `${d.kind}/${d.metadata.name}:async-jobs-${env}`,
      );
  });

  test('every pod meets the restricted profile with numeric non-root ids and a read-only root filesystem', async () => {
    for (const t of podTemplates(await docsOf(env))) {
      const pod = t.spec.securityContext as Obj;
      expect({ owner: t.owner, runAsNonRoot: pod.runAsNonRoot, seccomp: pod.seccompProfile }).toEqual({
        owner: t.owner,
        runAsNonRoot: true,
        seccomp: { type: 'RuntimeDefault' },
      });
      expect(
        Number.isInteger(pod.runAsUser) && pod.runAsUser > 0 && Number.isInteger(pod.runAsGroup) && pod.runAsGroup > 0,
      ).toBe(true);
      expect([t.spec.hostNetwork, t.spec.hostPID, t.spec.hostIPC]).toEqual([undefined, undefined, undefined]);
      for (const v of (t.spec.volumes ?? []) as Obj[]) {
        const types = Object.keys(v).filter((k) => k !== 'name');
        expect(types.every((k) => RESTRICTED_VOLUME_TYPES.has(k))).toBe(true);
      }
      for (const c of [...((t.spec.initContainers ?? []) as Obj[]), ...(t.spec.containers as Obj[])]) {
        expect({ owner: t.owner, container: c.name, securityContext: c.securityContext }).toEqual({
          owner: t.owner,
          container: c.name,
          securityContext: {
            allowPrivilegeEscalation: false,
            capabilities: { drop: ['ALL'] },
            privileged: false,
            readOnlyRootFilesystem: true,
            runAsGroup: pod.runAsGroup,
            runAsNonRoot: true,
            runAsUser: pod.runAsUser,
            seccompProfile: { type: 'RuntimeDefault' },
          },
        });
      }
    }
  });

  test('the services run as 10001 and the broker and database as the images’ own 999, as the model says', async () => {
    const ids = Object.fromEntries(
      podTemplates(await docsOf(env)).map((t) => [
        t.owner,
        [t.spec.securityContext.runAsUser, t.spec.securityContext.runAsGroup],
      ]),
    );
    expect(ids['Deployment/producer']).toEqual([10001, 10001]);
    expect(ids['Deployment/consumer']).toEqual([10001, 10001]);
    expect(ids['StatefulSet/rabbitmq']).toEqual([999, 999]);
    expect(ids['StatefulSet/mongo']).toEqual([999, 999]);
  });

  test('no pod gets a service account token (RabbitMQ 4.1 peer discovery does not use the API)', async () => {
    for (const t of podTemplates(await docsOf(env)))
      expect([t.owner, t.spec.automountServiceAccountToken]).toEqual([t.owner, false]);
    const docs = await docsOf(env);
    expect(docs.filter((d) => ['ServiceAccount', 'Role', 'RoleBinding'].includes(d.kind as string))).toEqual([]);
  });

  test('every container has requests and limits for cpu, memory and ephemeral storage', async () => {
    for (const t of podTemplates(await docsOf(env))) {
      for (const c of [...((t.spec.initContainers ?? []) as Obj[]), ...(t.spec.containers as Obj[])]) {
        expect([
          t.owner,
          c.name,
          Object.keys(c.resources.limits).sort(),
          Object.keys(c.resources.requests).sort(),
        ]).toEqual([t.owner, c.name, ['cpu', 'ephemeral-storage', 'memory'], ['cpu', 'ephemeral-storage', 'memory']]);
      }
    }
  });

  test('every service container has probes: readiness, liveness and startup, except RabbitMQ (readiness only) and the one-shot Job', async () => {
    const kinds: Record<string, string[]> = {};
    for (const t of podTemplates(await docsOf(env))) {
      for (const c of t.spec.containers as Obj[])
        kinds[`${t.owner}/${c.name}`] = ['readinessProbe', 'livenessProbe', 'startupProbe'].filter(
          (p) => c[p] !== undefined,
        );
    }
    const expected: Record<string, string[]> = {
      'Deployment/consumer/consumer': ['readinessProbe', 'livenessProbe', 'startupProbe'],
      'Deployment/producer/producer': ['readinessProbe', 'livenessProbe', 'startupProbe'],
      'StatefulSet/mongo/mongo': ['readinessProbe', 'livenessProbe', 'startupProbe'],
      'StatefulSet/rabbitmq/rabbitmq': ['readinessProbe'],
    };
    if (env === 'prod') expected[`Job/${initJob(await docsOf(env)).metadata.name}/initiate`] = [];
    expect(kinds).toEqual(expected);
    const producer = find(await docsOf(env), 'Deployment', 'producer').spec.template.spec.containers[0] as Obj;
    expect([
      producer.readinessProbe.httpGet.path,
      producer.livenessProbe.httpGet.path,
      producer.startupProbe.httpGet.path,
    ]).toEqual(['/readyz', '/healthz', '/healthz']);
  });

  test('the NetworkPolicies deny everything and then allow exactly the system’s flows', async () => {
    const docs = await docsOf(env);
    const deny = find(docs, 'NetworkPolicy', 'default-deny');
    expect(deny.spec).toEqual({ podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
    expect(flows(docs)).toEqual(EXPECTED_FLOWS[env]);
    for (const p of docs.filter(
      (d) => d.kind === 'NetworkPolicy' && !['default-deny', 'allow-dns'].includes(d.metadata.name as string),
    )) {
      expect([p.metadata.name, p.spec.policyTypes]).toEqual([p.metadata.name, ['Ingress', 'Egress']]);
    }
  });

  test('selectors equal the pod template labels, and Services select existing pods', async () => {
    const docs = await docsOf(env);
    const templates = podTemplates(docs);
    for (const t of templates.filter((x) => x.kind !== 'Job'))
      expect([t.owner, t.selector]).toEqual([t.owner, { matchLabels: t.labels }]);
    for (const s of docs.filter((d) => d.kind === 'Service')) {
      expect([
        s.metadata.name,
        templates.some((t) => JSON.stringify(t.labels) === JSON.stringify(s.spec.selector)),
      ]).toEqual([s.metadata.name, true]);
    }
    for (const pdb of docs.filter((d) => d.kind === 'PodDisruptionBudget')) {
      expect([
        pdb.metadata.name,
        templates.some((t) => JSON.stringify({ matchLabels: t.labels }) === JSON.stringify(pdb.spec.selector)),
      ]).toEqual([pdb.metadata.name, true]);
    }
  });

  test('names match the other targets', async () => {
    const names = (await docsOf(env))
      .filter((d) => ['StatefulSet', 'Deployment', 'Service'].includes(d.kind as string))
      .map((d) => `${d.kind}/${d.metadata.name}`)
      .sort();
    expect(names).toEqual([
      'Deployment/consumer',
      'Deployment/producer',
      'Service/mongo',
      'Service/mongo-headless',
      'Service/producer',
      'Service/rabbitmq',
      'Service/rabbitmq-headless',
      'StatefulSet/mongo',
      'StatefulSet/rabbitmq',
    ]);
  });

  test('no secret value appears: no Secret objects, no literal secret variables, secret files mounted from the named Secrets', async () => {
    const docs = await docsOf(env);
    expect(docs.filter((d) => d.kind === 'Secret')).toEqual([]);
    for (const cm of docs.filter((d) => d.kind === 'ConfigMap')) {
      for (const key of Object.keys(cm.data as Obj)) expect(/(PASSWORD|SECRET|TOKEN|COOKIE)$/i.test(key)).toBe(false);
    }
    for (const t of podTemplates(docs)) {
      for (const c of [...((t.spec.initContainers ?? []) as Obj[]), ...(t.spec.containers as Obj[])]) {
        for (const e of (c.env ?? []) as Obj[])
          expect([e.name, /(PASSWORD|SECRET|TOKEN|COOKIE)/i.test(e.name as string)]).toEqual([e.name, false]);
      }
    }
    const producer = find(docs, 'Deployment', 'producer').spec.template.spec as Obj;
    expect(producer.volumes.find((v: Obj) => v.name === 'secrets')).toEqual({
      name: 'secrets',
      projected: {
        defaultMode: 0o440,
        sources: [
          { secret: { name: 'api-keys', items: [{ key: 'value', path: 'api-keys' }] } },
          { secret: { name: 'mongo-password', items: [{ key: 'value', path: 'mongo-password' }] } },
          { secret: { name: 'rabbitmq-password', items: [{ key: 'value', path: 'rabbitmq-password' }] } },
        ],
      },
    });
    expect(producer.containers[0].volumeMounts).toContainEqual({
      name: 'secrets',
      mountPath: '/run/secrets',
      readOnly: true,
    });
  });

  test('both stateful services keep their data in a volumeClaimTemplate sized from the model', async () => {
    const docs = await docsOf(env);
    const size = (name: string): unknown =>
      find(docs, 'StatefulSet', name).spec.volumeClaimTemplates.map((c: Obj) => [
        c.metadata.name,
        c.spec.accessModes,
        c.spec.resources.requests.storage,
      ]);
    expect(size('rabbitmq')).toEqual([['rabbitmq-data', ['ReadWriteOnce'], env === 'prod' ? '20Gi' : '1Gi']]);
    expect(size('mongo')).toEqual([['mongo-data', ['ReadWriteOnce'], env === 'prod' ? '50Gi' : '1Gi']]);
  });
});

describe('replication, autoscaling and disruption in prod', () => {
  test('every replicated workload has a PodDisruptionBudget; dev has none', async () => {
    const pdbs = (docs: Obj[]): string[] =>
      docs
        .filter((d) => d.kind === 'PodDisruptionBudget')
        .map((d) =>
          d.spec.maxUnavailable !== undefined
            ? `${d.metadata.name}: maxUnavailable ${d.spec.maxUnavailable}`
            : `${d.metadata.name}: minAvailable ${d.spec.minAvailable}`,
        )
        .sort();
    expect(pdbs(await docsOf('prod'))).toEqual([
      'consumer: minAvailable 3',
      'mongo: maxUnavailable 1',
      'producer: maxUnavailable 1',
      'rabbitmq: maxUnavailable 1',
    ]);
    expect(pdbs(await docsOf('dev'))).toEqual([]);
  });

  test('the KEDA-scaled consumer keeps its floor without the operator: its budget is the model minimum less one, not relative to a scale that may be 1', async () => {
    const docs = await docsOf('prod');
    const scaled = find(docs, 'ScaledObject', 'consumer').spec as Obj;
    expect([scaled.minReplicaCount, scaled.maxReplicaCount]).toEqual([4, 20]);
    // No replicas on the Deployment (the scaler owns them), so without KEDA's operator it runs the API default, 1:
    // an absolute budget then allows no eviction of that pod, where `maxUnavailable: 1` would allow evicting it.
    expect(find(docs, 'Deployment', 'consumer').spec.replicas).toBeUndefined();
    const budget = find(docs, 'PodDisruptionBudget', 'consumer').spec as Obj;
    expect([budget.minAvailable, budget.maxUnavailable]).toEqual([scaled.minReplicaCount - 1, undefined]);
    const allowed = (healthy: number): number => Math.max(0, healthy - (budget.minAvailable as number));
    expect([1, 4, 6].map(allowed)).toEqual([0, 1, 3]);
  });

  test('Deployments owned by an autoscaler have no replicas; the producer has a CPU HPA and the consumer a KEDA ScaledObject', async () => {
    const docs = await docsOf('prod');
    expect(find(docs, 'Deployment', 'producer').spec.replicas).toBeUndefined();
    expect(find(docs, 'Deployment', 'consumer').spec.replicas).toBeUndefined();
    expect(find(docs, 'HorizontalPodAutoscaler', 'producer').spec).toEqual({
      maxReplicas: 10,
      metrics: [
        { resource: { name: 'cpu', target: { averageUtilization: 70, type: 'Utilization' } }, type: 'Resource' },
      ],
      minReplicas: 3,
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'producer' },
    });
    expect(docs.filter((d) => d.kind === 'HorizontalPodAutoscaler').map((d) => d.metadata.name)).toEqual(['producer']);
    const scaled = find(docs, 'ScaledObject', 'consumer');
    expect(scaled.spec.triggers[0].metadata).toEqual({
      host: 'amqp://rabbitmq.async-jobs-prod.svc:5672/%2F',
      mode: 'QueueLength',
      protocol: 'amqp',
      queueName: 'jobs.work',
      value: '100',
    });
    expect(find(docs, 'TriggerAuthentication', 'consumer-rabbitmq').spec).toEqual({
      env: [{ containerName: 'consumer', name: 'AMQP_USERNAME', parameter: 'username' }],
      secretTargetRef: [{ key: 'value', name: 'rabbitmq-password', parameter: 'password' }],
    });
    const dev = await docsOf('dev');
    expect(find(dev, 'Deployment', 'consumer').spec.replicas).toBe(1);
  });

  test('KEDA objects match a minimal schema that rejects unknown fields (KEDA CRDs are not in the Kubernetes schema)', async () => {
    const strict = (properties: Obj, required: string[]): Obj => ({
      type: 'object',
      additionalProperties: false,
      properties,
      required,
    });
    const str = { type: 'string' };
    const meta = strict({ name: str, namespace: str, labels: { type: 'object', additionalProperties: str } }, [
      'name',
      'namespace',
    ]);
    const scaledObject = strict(
      {
        apiVersion: { const: 'keda.sh/v1alpha1' },
        kind: { const: 'ScaledObject' },
        metadata: meta,
        spec: strict(
          {
            scaleTargetRef: strict({ apiVersion: str, kind: str, name: str }, ['name']),
            minReplicaCount: { type: 'integer', minimum: 0 },
            maxReplicaCount: { type: 'integer', minimum: 1 },
            triggers: {
              type: 'array',
              minItems: 1,
              items: strict(
                {
                  type: { const: 'rabbitmq' },
                  metadata: strict(
                    {
                      host: str,
                      protocol: { enum: ['amqp', 'http', 'auto'] },
                      mode: { enum: ['QueueLength', 'MessageRate'] },
                      queueName: str,
                      value: { type: 'string', pattern: '^[0-9]+(\\.[0-9]+)?$' },
                    },
                    ['mode', 'queueName', 'value'],
                  ),
                  authenticationRef: strict({ name: str }, ['name']),
                },
                ['type', 'metadata'],
              ),
            },
          },
          ['scaleTargetRef', 'triggers'],
        ),
      },
      ['apiVersion', 'kind', 'metadata', 'spec'],
    );
    const ref = (extra: Obj): Obj => ({
      type: 'array',
      items: strict({ parameter: str, name: str, ...extra }, ['parameter', 'name']),
    });
    const triggerAuth = strict(
      {
        apiVersion: { const: 'keda.sh/v1alpha1' },
        kind: { const: 'TriggerAuthentication' },
        metadata: meta,
        spec: strict({ env: ref({ containerName: str }), secretTargetRef: ref({ key: str }) }, []),
      },
      ['apiVersion', 'kind', 'metadata', 'spec'],
    );
    const ajv = new Ajv({ allErrors: true, strict: true });
    const docs = await docsOf('prod');
    for (const [schema, kind] of [
      [scaledObject, 'ScaledObject'],
      [triggerAuth, 'TriggerAuthentication'],
    ] as const) {
      const validate = ajv.compile(schema);
      const objects = docs.filter((d) => d.kind === kind);
      expect(objects).toHaveLength(1);
      for (const o of objects) expect([kind, validate(o), validate.errors ?? null]).toEqual([kind, true, null]);
    }
  });

  test('RabbitMQ forms a 3-node cluster by Kubernetes peer discovery with quorum queues and a shared Erlang cookie', async () => {
    const docs = await docsOf('prod');
    const config = find(docs, 'ConfigMap', 'rabbitmq-config').data as Obj;
    expect(config.enabled_plugins).toBe('[rabbitmq_peer_discovery_k8s].\n');
    expect(config['rabbitmq.conf']).toContain('cluster_formation.peer_discovery_backend = k8s\n');
    expect(config['rabbitmq.conf']).toContain('default_queue_type = quorum\n');
    const set = find(docs, 'StatefulSet', 'rabbitmq').spec as Obj;
    expect([set.replicas, set.serviceName]).toEqual([3, 'rabbitmq-headless']);
    const pod = set.template.spec as Obj;
    expect(pod.containers[0].env.find((e: Obj) => e.name === 'RABBITMQ_NODENAME').value).toBe(
      'rabbit@$(POD_NAME).rabbitmq-headless.$(POD_NAMESPACE)',
    );
    expect(pod.initContainers.map((c: Obj) => c.name)).toEqual(['erlang-cookie']);
    expect(pod.volumes.find((v: Obj) => v.name === 'erlang-cookie').projected.sources).toEqual([
      { secret: { name: 'rabbitmq-erlang-cookie', items: [{ key: 'value', path: 'rabbitmq-erlang-cookie' }] } },
    ]);
    expect(find(docs, 'Service', 'rabbitmq-headless').spec).toMatchObject({
      clusterIP: 'None',
      publishNotReadyAddresses: true,
    });
    // The kubelet would expand `$(cat …)`; `$$(` keeps the shell substitution for sh.
    expect(pod.containers[0].command[2]).toContain('RABBITMQ_DEFAULT_PASS="$$(cat "$RABBITMQ_DEFAULT_PASS_FILE")"');
  });

  test('MongoDB runs a 3-member replica set with a key file, an idempotent initiation Job and member-listing connection strings', async () => {
    const docs = await docsOf('prod');
    const pod = find(docs, 'StatefulSet', 'mongo').spec.template.spec as Obj;
    expect(pod.containers[0].command[2]).toContain(
      'exec docker-entrypoint.sh mongod --replSet rs0 --bind_ip_all --port 27017 --keyFile /etc/mongo-keyfile/key',
    );
    expect(pod.initContainers.map((c: Obj) => c.name)).toEqual(['keyfile']);
    const script = find(docs, 'ConfigMap', 'mongo-replica-set-init').data['initiate.js'] as string;
    expect(script).toContain('replSetGetStatus');
    expect(script.indexOf('replSetGetStatus')).toBeLessThan(script.indexOf('replSetInitiate'));
    expect(script).toContain('status.code !== 94');
    const url =
      'mongodb://app@mongo-0.mongo-headless.async-jobs-prod.svc:27017,mongo-1.mongo-headless.async-jobs-prod.svc:27017,mongo-2.mongo-headless.async-jobs-prod.svc:27017/jobs?authSource=admin&replicaSet=rs0';
    expect(find(docs, 'ConfigMap', 'producer-env').data.MONGO_URL).toBe(url);
    expect(find(docs, 'ConfigMap', 'consumer-env').data.MONGO_URL).toBe(url);
    const job = initJob(docs).spec as Obj;
    expect([job.backoffLimit, job.activeDeadlineSeconds, job.template.spec.restartPolicy]).toEqual([6, 900, 'Never']);
    expect(job.ttlSecondsAfterFinished).toBe(MONGO_INIT_TTL_SECONDS);
    expect(initJob(docs).metadata.name).toMatch(/^mongo-replica-set-init-[0-9a-f]{10}$/);
    expect(find(await docsOf('dev'), 'ConfigMap', 'producer-env').data.MONGO_URL).toBe(
      'mongodb://app@mongo:27017/jobs?authSource=admin',
    );
  });

  test('rolling updates, grace periods from the model and spreading in prod', async () => {
    const docs = await docsOf('prod');
    const consumer = find(docs, 'Deployment', 'consumer').spec as Obj;
    expect([consumer.strategy, consumer.minReadySeconds, consumer.progressDeadlineSeconds]).toEqual([
      { rollingUpdate: { maxSurge: '25%', maxUnavailable: 0 }, type: 'RollingUpdate' },
      10,
      600,
    ]);
    expect(consumer.template.spec.terminationGracePeriodSeconds).toBe(60);
    for (const name of ['rabbitmq', 'mongo']) {
      expect(
        find(docs, 'StatefulSet', name).spec.template.spec.affinity.podAntiAffinity
          .requiredDuringSchedulingIgnoredDuringExecution,
      ).toEqual([
        {
          labelSelector: { matchLabels: labelsOf(name, name === 'mongo' ? 'database' : 'broker') },
          topologyKey: 'kubernetes.io/hostname',
        },
      ]);
    }
    for (const dev of await docsOf('dev'))
      expect([
        dev.kind,
        dev.metadata.name,
        dev.spec?.template?.spec?.topologySpreadConstraints,
        dev.spec?.template?.spec?.affinity,
      ]).toEqual([dev.kind, dev.metadata.name, undefined, undefined]);
  });

  test('producers and consumers are spread over nodes as a hard constraint (a soft one put all producers on one node) and over zones softly', async () => {
    const docs = await docsOf('prod');
    for (const [name, component] of [
      ['producer', 'producer'],
      ['consumer', 'consumer'],
    ] as const) {
      const labelSelector = { matchLabels: labelsOf(name, component) };
      expect(find(docs, 'Deployment', name).spec.template.spec.topologySpreadConstraints).toEqual([
        {
          labelSelector,
          // Each rollout's ReplicaSet spreads on its own, so surge pods are not held back by old ones.
          matchLabelKeys: ['pod-template-hash'],
          maxSkew: 1,
          // Tainted and cordoned nodes are not empty domains that would hold every other node to one pod.
          nodeTaintsPolicy: 'Honor',
          topologyKey: 'kubernetes.io/hostname',
          whenUnsatisfiable: 'DoNotSchedule',
        },
        // Hard on zones would reject every node without a zone label.
        { labelSelector, maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway' },
      ]);
      expect(find(docs, 'Deployment', name).spec.template.spec.affinity).toBeUndefined();
    }
  });

  test('the producer has an Ingress for the model’s host in prod and none in dev', async () => {
    const ingress = find(await docsOf('prod'), 'Ingress', 'producer');
    // TLS from the model: cert-manager issues the certificate into the named Secret; HTTP is redirected to HTTPS.
    expect(ingress.metadata.annotations).toEqual({
      'cert-manager.io/cluster-issuer': 'letsencrypt-prod',
      'nginx.ingress.kubernetes.io/force-ssl-redirect': 'true',
    });
    expect(ingress.spec).toEqual({
      tls: [{ hosts: ['jobs.example.com'], secretName: 'jobs-example-com-tls' }],
      ingressClassName: 'nginx',
      rules: [
        {
          host: 'jobs.example.com',
          http: {
            paths: [
              { backend: { service: { name: 'producer', port: { name: 'http' } } }, path: '/', pathType: 'Prefix' },
            ],
          },
        },
      ],
    });
    expect((await docsOf('dev')).filter((d) => d.kind === 'Ingress')).toEqual([]);
  });
});

describe('secret values never reach any output', () => {
  test('a sentinel written into every secret file appears in no synthesized file, of any target or of a cluster', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'k8s-sentinel-'));
    const sentinel = `SENTINEL-${process.pid}-${Date.now()}-c0ffee`;
    try {
      for (const n of ['api-keys', 'mongo-password', 'rabbitmq-erlang-cookie', 'rabbitmq-password'])
        writeFileSync(join(dir, n), sentinel);
      const opts = { resolveOptions: { repoRoot: REPO_ROOT, imageTag: () => 'src-000000000000' } };
      // Every target on a single-node model (the others report clusters as gaps); Kubernetes also on a cluster.
      const single = {
        producer: { image: ImageSource.build('services', 'producer', 'ghcr.io/x/producer') },
        consumer: { image: ImageSource.build('services', 'consumer', 'ghcr.io/x/consumer') },
      };
      const all = await synthesize({
        systems: [testSystem('single', single, (n) => join(dir, n))],
        targets: TARGETS,
        ...opts,
      });
      const cluster = await synthesize({
        systems: [testSystem('cluster', clusterProps(), (n) => join(dir, n))],
        targets: [kubernetesTarget],
        ...opts,
      });
      expect([...all.errors, ...cluster.errors]).toEqual([]);
      const files = [...all.files, ...cluster.files];
      expect(files.map((f) => f.path)).toEqual(
        expect.arrayContaining(['single/kubernetes.k8s.yaml', 'cluster/kubernetes.k8s.yaml']),
      );
      expect(files.filter((f) => f.content.includes(sentinel)).map((f) => f.path)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('models the Kubernetes target cannot express', () => {
  const synth = (props: Parameters<typeof testSystem>[1]) =>
    synthesize({
      systems: [testSystem('t', props)],
      targets: [kubernetesTarget],
      resolveOptions: { repoRoot: REPO_ROOT, imageTag: () => 'src-000000000000' },
    });

  test('a 2-node RabbitMQ cluster is refused because quorum queues need an odd majority', async () => {
    const result = await synth(clusterProps({ broker: { replicas: 2 } }));
    expect(result.errors).toEqual([
      '[t] kubernetes: [t/rabbitmq] replicas: got 2, expected 1 or an odd number ≥ 3: quorum queues need a majority of the RabbitMQ nodes, so 2 nodes tolerate 0 failures, no more than 1 would',
    ]);
    expect(result.files).toEqual([]);
  });

  test('a 4-member and a 9-member MongoDB replica set are refused', async () => {
    expect((await synth(clusterProps({ database: { replicas: 4 } }))).errors).toEqual([
      '[t] kubernetes: [t/mongo] replicas: got 4, expected 1 or an odd number ≥ 3: a MongoDB replica set needs a majority of its voting members to elect a primary, so 4 members tolerate 1 failure, no more than 3 would',
    ]);
    expect((await synth(clusterProps({ database: { replicas: 9 } }))).errors).toEqual([
      '[t] kubernetes: [t/mongo] replicas: got 9, expected at most 7 (a MongoDB replica set has at most 7 voting members)',
    ]);
  });

  test('a replica set without any secret to make a key file from is refused by name', () => {
    const system = resolved(testSystem('t', clusterProps({ database: { replicas: 3, passwordSecret: 'db-root' } })));
    const out = kubernetesTarget.synth(system, DEFAULT_CONTEXT) as ReturnType<typeof kubernetesTarget.synth> & {
      errors: string[];
    };
    expect(out.errors).toEqual([
      '[t/mongo] secrets: got no "mongo-keyfile" and no "db-root" secret, expected one of them because a 3-member replica set with authentication needs a key file',
    ]);
  });

  test('a persistent volume on a Deployment is reported as a gap, not dropped', async () => {
    const result = await synth({
      volumes: { uploads: { size: Memory.gibibytes(1) } },
      producer: { volumeMounts: [{ volume: 'uploads', path: '/uploads' }] },
    });
    expect(result.errors).toEqual([
      '[t/producer] kubernetes cannot express "volume-on-stateless-service": it cannot mount the persistent volume "uploads" into the replicated Deployment producer (each replica would need its own claim); ' +
        "accept it in the model with acceptedGaps: [{ target: 'kubernetes', feature: 'volume-on-stateless-service', reason: '…' }] or change the model",
    ]);
  });
});

describe('model variants', () => {
  const objects = async (
    props: Parameters<typeof testSystem>[1],
  ): Promise<{ docs: Obj[]; warnings: readonly string[] }> => {
    const result = await synthesize({
      systems: [testSystem('t', props)],
      targets: [kubernetesTarget],
      resolveOptions: { repoRoot: REPO_ROOT, imageTag: () => 'src-000000000000' },
    });
    expect(result.errors).toEqual([]);
    const file = result.files[0];
    if (!file) throw new Error('no file');
    return { docs: file.content.split(/^---$/m).map((d) => parse(d) as Obj), warnings: result.warnings };
  };

  test('RabbitMQ before 4.1 discovers peers through the API: only its pods get a token, a Role to get endpoints and egress to the API', async () => {
    const { docs } = await objects(
      clusterProps({ broker: { replicas: 3, image: ImageSource.registry('rabbitmq:4.0.9') } }),
    );
    expect(find(docs, 'Role', 'rabbitmq').rules).toEqual([
      { apiGroups: [''], resources: ['endpoints'], verbs: ['get'] },
    ]);
    expect(find(docs, 'RoleBinding', 'rabbitmq').subjects).toEqual([
      { kind: 'ServiceAccount', name: 'rabbitmq', namespace: 'async-jobs-t' },
    ]);
    const tokens = podTemplates(docs)
      .filter((t) => t.spec.automountServiceAccountToken !== false)
      .map((t) => [t.owner, t.spec.serviceAccountName]);
    expect(tokens).toEqual([['StatefulSet/rabbitmq', 'rabbitmq']]);
    expect(flows(docs)).toContain('rabbitmq -> 0.0.0.0/0:443/TCP (egress)');
    expect(flows(docs)).toContain('rabbitmq -> 0.0.0.0/0:6443/TCP (egress)');
    expect(find(docs, 'ConfigMap', 'rabbitmq-config').data['rabbitmq.conf']).toContain(
      'cluster_formation.k8s.service_name = rabbitmq-headless\n',
    );
  });

  test('a declared mongo-keyfile secret is used as the key file instead of deriving one', async () => {
    const { docs, warnings } = await objects(
      clusterProps({ secrets: { 'mongo-keyfile': { source: SecretSource.external(), description: 'key' } } }),
    );
    const init = find(docs, 'StatefulSet', 'mongo').spec.template.spec.initContainers[0] as Obj;
    expect(init.command[2]).toBe(
      'set -eu; umask 0277; rm -f /etc/mongo-keyfile/key; cat /run/secrets/mongo-keyfile > /etc/mongo-keyfile/key',
    );
    expect(warnings.filter((w) => w.includes('key file'))).toEqual([]);
  });

  test('a consumer that scales on CPU gets an HPA instead of a ScaledObject', async () => {
    const { docs } = await objects(
      clusterProps({
        consumer: {
          image: ImageSource.build('services', 'consumer', 'ghcr.io/x/consumer'),
          autoscaling: { minReplicas: 2, maxReplicas: 5 },
        },
      }),
    );
    expect(docs.filter((d) => d.kind === 'ScaledObject')).toEqual([]);
    expect(find(docs, 'HorizontalPodAutoscaler', 'consumer').spec.metrics[0].resource.target).toEqual({
      averageUtilization: 70,
      type: 'Utilization',
    });
    // The built-in HPA controller raises the Deployment to minReplicas by itself, so a relative budget is safe.
    expect(find(docs, 'PodDisruptionBudget', 'consumer').spec.maxUnavailable).toBe(1);
  });

  describe('the replica-set initiation Job can be re-applied after a change (a Job’s pod template is immutable)', () => {
    const jobOf = async (props: Parameters<typeof testSystem>[1]): Promise<Obj> => initJob((await objects(props)).docs);
    const image = (reference: string): Parameters<typeof testSystem>[1] =>
      clusterProps({ database: { replicas: 3, image: ImageSource.registry(reference) } });

    test('a changed mongo image gives the Job a new name, so kubectl apply creates a new Job instead of patching the old one', async () => {
      const before = await jobOf(image('mongo:8.0.12'));
      const after = await jobOf(image('mongo:8.0.13'));
      expect(before.spec.template.spec.containers[0].image).toBe('mongo:8.0.12');
      expect(after.spec.template.spec.containers[0].image).toBe('mongo:8.0.13');
      expect(before.metadata.name).toMatch(/^mongo-replica-set-init-[0-9a-f]{10}$/);
      expect(after.metadata.name).toMatch(/^mongo-replica-set-init-[0-9a-f]{10}$/);
      expect(after.metadata.name).not.toBe(before.metadata.name);
      // Selectors keep working across revisions: NetworkPolicies and `kubectl wait -l` use the labels.
      expect(after.metadata.labels).toEqual(before.metadata.labels);
      expect(after.spec.template.metadata.labels).toEqual(before.spec.template.metadata.labels);
    });

    test('the same model gives the same name, and a change the Job does not run (producer replicas) keeps it', async () => {
      const base = await jobOf(image('mongo:8.0.12'));
      expect((await jobOf(image('mongo:8.0.12'))).metadata.name).toBe(base.metadata.name);
      const moreProducers = clusterProps({
        database: { replicas: 3, image: ImageSource.registry('mongo:8.0.12') },
        producer: { image: ImageSource.build('services', 'producer', 'ghcr.io/x/producer'), replicas: 5 },
      });
      expect((await jobOf(moreProducers)).metadata.name).toBe(base.metadata.name);
    });

    test('across model changes, a Job that keeps its name keeps its whole template: what makes a second apply succeed', async () => {
      const variants = [
        image('mongo:8.0.12'),
        image('mongo:8.0.13'),
        clusterProps({ database: { replicas: 5, image: ImageSource.registry('mongo:8.0.12') } }),
        clusterProps({ database: { replicas: 3, image: ImageSource.registry('mongo:8.0.12'), replicaSetName: 'rs1' } }),
        clusterProps({
          database: {
            replicas: 3,
            image: ImageSource.registry('mongo:8.0.12'),
            resources: { memoryLimit: Memory.gibibytes(2) },
          },
        }),
        clusterProps({
          database: { replicas: 3, image: ImageSource.registry('mongo:8.0.12'), tmpfsSize: Memory.mebibytes(32) },
        }),
      ];
      const templates = new Map<string, string>();
      for (const props of variants) {
        const { docs } = await objects(props);
        const job = initJob(docs);
        // The script is in a ConfigMap the template only names; the hash covers it too.
        const script = find(docs, 'ConfigMap', MONGO_INIT_NAME).data['initiate.js'] as string;
        const content = JSON.stringify([job.spec.template, script]);
        const seen = templates.get(job.metadata.name as string);
        if (seen !== undefined) expect(content).toBe(seen);
        templates.set(job.metadata.name as string, content);
      }
      expect(templates.size).toBe(variants.length);
    });
  });

  test('every memory-backed emptyDir has a sizeLimit: the model’s tmpfsSize for /tmp, which counts against the memory limit', async () => {
    const sizes = (docs: Obj[]): string[] =>
      podTemplates(docs).flatMap((t) =>
        ((t.spec.volumes ?? []) as Obj[])
          .filter((v) => v.emptyDir !== undefined)
          .map((v) => `${t.owner} ${v.name}: ${v.emptyDir.medium} ${v.emptyDir.sizeLimit}`),
      );
    const { docs } = await objects(
      clusterProps({
        producer: {
          image: ImageSource.build('services', 'producer', 'ghcr.io/x/producer'),
          replicas: 2,
          tmpfsSize: Memory.mebibytes(16),
        },
      }),
    );
    const job = initJob(docs).metadata.name as string;
    expect(sizes(docs).sort()).toEqual(
      [
        'Deployment/consumer tmp: Memory 64Mi',
        'Deployment/producer tmp: Memory 16Mi',
        `Job/${job} tmp: Memory 64Mi`,
        'StatefulSet/mongo keyfile: Memory 1Mi',
        'StatefulSet/mongo tmp: Memory 64Mi',
        'StatefulSet/rabbitmq tmp: Memory 64Mi',
      ].sort(),
    );
    for (const env of ENVS) for (const line of sizes(await docsOf(env))) expect(line).toMatch(/: Memory [0-9]+Mi$/);
  });
});

describe('offline validation with real tools', () => {
  const validator = spawnSync('kubernetes-validate', ['--version'], { encoding: 'utf8' });
  const available = validator.status === 0;

  test('every object validates against the Kubernetes 1.28 schema with unknown fields rejected (kubernetes-validate --strict)', async () => {
    if (!available) {
      if (process.env.CI === 'true')
        throw new Error('kubernetes-validate is not installed: run scripts/install-k8s-validators.sh');
      console.warn(
        'kubernetes-validate is not installed (scripts/install-k8s-validators.sh); skipping the strict schema check',
      );
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'k8s-validate-'));
    try {
      const files = [];
      for (const env of ENVS) {
        const path = join(dir, `${env}.yaml`);
        writeFileSync(path, await synthFile(manifest(env)));
        files.push(path);
      }
      const run = spawnSync('kubernetes-validate', ['-k', '1.28.0', '--strict', ...files], { encoding: 'utf8' });
      const lines = `${run.stdout}${run.stderr}`.split('\n').filter((l) => l.trim() !== '');
      // KEDA's CRDs are not part of the Kubernetes schema; their shape is checked by the ajv test above.
      const unexpected = lines.filter(
        (l) =>
          !l.startsWith('INFO ') &&
          !/Couldn't find schema for kind (ScaledObject|TriggerAuthentication) with api version keda\.sh\/v1alpha1/.test(
            l,
          ),
      );
      expect(unexpected).toEqual([]);
      expect(run.status).toBe(0);
      expect(lines.filter((l) => l.startsWith('INFO ')).length).toBeGreaterThan(40);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('cdk8s synth --no-check-upgrade from the repository root writes exactly the manifests of npm run synth', async () => {
    const out = mkdtempSync(join(tmpdir(), 'k8s-cdk8s-'));
    try {
      const bin = join(REPO_ROOT, 'node_modules', '.bin');
      execFileSync(join(bin, 'cdk8s'), ['synth', '--no-check-upgrade', '--output', out], {
        cwd: REPO_ROOT,
        env: {
          ...process.env,
          PATH: `${join(REPO_ROOT, '.tools', 'node_modules', '.bin')}:${bin}:${process.env.PATH ?? ''}`,
        },
        stdio: 'pipe',
      });
      for (const env of ENVS)
        expect(readFileSync(join(out, manifest(env)), 'utf8')).toBe(await synthFile(manifest(env)));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 180_000);
});

describe('the README tells a cluster operator what the manifests need', () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Kubernetes'), readme.indexOf('### Pulumi'));

  test.each(ENVS)('the Kubernetes section names every cluster requirement of %s, as derived from the model', (env) => {
    const requirements = clusterRequirements(resolved(defineSystem(env)));
    expect(section.length).toBeGreaterThan(1000);
    expect(requirements.map((r) => r.what).filter((what) => !section.includes(what))).toEqual([]);
  });

  test('the parity report lists the same requirements per environment, with why', async () => {
    const md = await synthFile('PARITY.md');
    for (const env of ENVS) {
      const section = md.slice(md.indexOf(`### ${env}\n`));
      for (const r of clusterRequirements(resolved(defineSystem(env))))
        expect([env, r.id, section.includes(`- ${r.what}: ${r.why}\n`)]).toEqual([env, r.id, true]);
    }
  });

  test('prod needs 3 nodes, metrics-server and the KEDA operator besides what dev needs', () => {
    const ids = (env: (typeof ENVS)[number]): string[] =>
      clusterRequirements(resolved(defineSystem(env))).map((r) => r.id);
    expect(ids('dev')).toEqual(['kubernetes', 'storage-class', 'network-policy']);
    expect(ids('prod')).toEqual([
      'kubernetes',
      'nodes',
      'storage-class',
      'network-policy',
      'metrics-server',
      'keda',
      'ingress-nginx',
    ]);
    const prod = clusterRequirements(resolved(defineSystem('prod')));
    expect(prod.find((r) => r.id === 'nodes')).toMatchObject({
      what: 'at least 3 schedulable nodes',
      why: expect.stringContaining('rabbitmq (3), mongo (3)') as string,
    });
    expect(prod.find((r) => r.id === 'metrics-server')?.why).toContain('HorizontalPodAutoscaler of producer');
    expect(prod.find((r) => r.id === 'keda')?.why).toContain('ScaledObject of consumer');
  });

  test('it says how a cluster gets dev’s locally built images: a registry at localhost:5000 or loading them into each node', async () => {
    const builds = resolved(defineSystem('dev')).services.filter((s) => s.image.kind === 'build');
    expect(builds.map((s) => (s.image.kind === 'build' ? s.image.repository : null))).toEqual([
      'localhost:5000/async-jobs/producer',
      'localhost:5000/async-jobs/consumer',
    ]);
    expect(section).toContain('`localhost:5000/async-jobs/<service>:src-<hash>`');
    for (const how of [
      'npm run images -- --env dev --push',
      'npm run images -- --env dev`',
      'kind load docker-image <tag>',
      'minikube image load <tag>',
      'ctr -n k8s.io images import -',
    ])
      expect([how, section.includes(how)]).toEqual([how, true]);
    // Loading works only because the kubelet does not pull an image it already has.
    for (const t of podTemplates(await docsOf('dev')))
      for (const c of t.spec.containers as Obj[]) expect([c.name, c.imagePullPolicy]).toEqual([c.name, 'IfNotPresent']);
  });
});
