/**
 * The KEDA operator against the e2e cluster (`--keda`): it is built from `github.com/kedacore/keda/v2/cmd/operator`
 * and runs as a host process with the admin kubeconfig. dev's RabbitMQ is real, so this is where a ScaledObject can
 * scale on real queue depth: the consumer goes to 0 on an empty `jobs.work`, back to 1 when jobs wait there, and to
 * 0 again once they are done. That is the part of KEDA the operator does itself (activation); scaling between 1 and
 * `maxReplicaCount` goes through the HPA KEDA makes, which reads KEDA's external metrics API, served by a second
 * program (the metrics adapter) behind an APIService, which this cluster does not set up (e2e/README.md says why).
 * prod's own ScaledObject cannot be used: its broker is a fake pod.
 * @see https://keda.sh/docs/2.21/concepts/scaling-deployments/ (activation and scaling phases)
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { settle, type JobsClient, type Submission } from '../client.ts';
import { waitFor } from '../exec.ts';
import { type Report } from '../report.ts';
import { describeTally } from '../scenarios.ts';
import { type LocalCluster } from './cluster.ts';
import { type KubernetesDeployment } from './deploy.ts';

const NAME = 'e2e-keda';
/** The queue the consumer reads (`QUEUE_PREFIX` jobs + `.work`, as in prod's ScaledObject). */
const QUEUE = 'jobs.work';

interface DeploymentJson {
  spec: { replicas?: number };
  status: { readyReplicas?: number };
}

export interface KedaOptions {
  readonly operator: string;
  readonly crdDir: string;
  readonly dir: string;
  /** `.secrets/<env>`: the broker password of dev. */
  readonly secretsDir: string;
}

/** The operator's gRPC metrics service wants a CA and a key pair even when nothing calls it. */
function certificates(dir: string): string {
  const certs = join(dir, 'keda-certs');
  mkdirSync(certs, { recursive: true, mode: 0o700 });
  execFileSync(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=keda-operator'],
      ...['-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
      ...['-keyout', join(certs, 'tls.key'), '-out', join(certs, 'tls.crt')],
    ],
    { stdio: 'ignore' },
  );
  execFileSync('cp', [join(certs, 'tls.crt'), join(certs, 'ca.crt')]);
  return certs;
}

export async function kedaScaling(
  report: Report,
  cluster: LocalCluster,
  dep: KubernetesDeployment,
  client: JobsClient,
  o: KedaOptions,
): Promise<void> {
  const ns = dep.manifest.namespace;
  await cluster.kubectl(['apply', '--server-side', '--field-manager=async-jobs-e2e', '-f', o.crdDir]);
  await cluster.kubectl(['wait', '--for=condition=Established', '-f', o.crdDir, '--timeout=60s'], {
    timeoutMs: 70_000,
  });
  const certs = certificates(o.dir);
  const env = {
    ...process.env,
    WATCH_NAMESPACE: ns,
    KEDA_CLUSTER_OBJECT_NAMESPACE: ns,
    POD_NAMESPACE: ns,
    KUBECONFIG: cluster.kubeconfig,
  };
  // Everything it serves on loopback or off: metrics and probes off, the gRPC metrics service on a free port.
  const operator = cluster.spawnProcess(
    'keda-operator',
    o.operator,
    [
      `--kubeconfig=${cluster.kubeconfig}`,
      '--metrics-bind-address=0',
      '--health-probe-bind-address=0',
      '--metrics-service-bind-address=127.0.0.1:0',
      `--cert-dir=${certs}`,
      `--ca-dir=${certs}`,
      '--leader-elect=false',
      '--enable-prometheus-metrics=false',
      '--zap-log-level=info',
    ],
    env,
  );
  const deployment = async (): Promise<DeploymentJson> =>
    JSON.parse(await dep.kubectl(['get', 'deployment', 'consumer', '-o', 'json'])) as DeploymentJson;
  try {
    // The host reaches the broker pod over the node's bridge; cluster DNS names do not resolve on the host.
    const [rabbit] = await dep.pods('rabbitmq');
    const ip = rabbit?.status.podIP;
    if (ip === undefined) throw new Error('no rabbitmq pod with an IP');
    const password = readFileSync(join(o.secretsDir, 'rabbitmq-password'), 'utf8').trim();
    const objects = [
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: NAME, namespace: ns },
        stringData: { host: `amqp://app:${encodeURIComponent(password)}@${ip}:5672/%2F` },
      },
      {
        apiVersion: 'keda.sh/v1alpha1',
        kind: 'TriggerAuthentication',
        metadata: { name: NAME, namespace: ns },
        spec: { secretTargetRef: [{ parameter: 'host', name: NAME, key: 'host' }] },
      },
      {
        apiVersion: 'keda.sh/v1alpha1',
        kind: 'ScaledObject',
        metadata: { name: NAME, namespace: ns },
        spec: {
          scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'consumer' },
          minReplicaCount: 0,
          maxReplicaCount: 3,
          pollingInterval: 2,
          cooldownPeriod: 10,
          triggers: [
            {
              type: 'rabbitmq',
              metadata: { protocol: 'amqp', mode: 'QueueLength', value: '5', queueName: QUEUE },
              authenticationRef: { name: NAME },
            },
          ],
        },
      },
    ];
    await dep.apply(objects.map((x) => JSON.stringify(x)).join('\n---\n'));
    const t0 = Date.now();
    const readyMsg = await waitFor('the KEDA operator to make the ScaledObject Ready', 120_000, async () => {
      if (operator.exited) throw new Error(`keda-operator exited:\n${cluster.logTail('keda-operator', 10)}`);
      const r = await cluster.kubectlRun([
        ...['-n', ns, 'get', 'scaledobject', NAME],
        ...['-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.hpaName}'],
      ]);
      const [status, hpa] = r.stdout.trim().split(' ');
      return status === 'True' && hpa !== undefined ? `Ready, HPA ${hpa}` : undefined;
    });
    report.check(
      'kubernetes KEDA: the operator (host process) reconciles a ScaledObject on the consumer',
      true,
      `${readyMsg} after ${((Date.now() - t0) / 1000).toFixed(0)} s; trigger rabbitmq ${QUEUE}, value 5, minReplicaCount 0`,
    );
    const t1 = Date.now();
    await waitFor('KEDA to scale the consumer to 0 on an empty queue', 90_000, async () =>
      (await deployment()).spec.replicas === 0 && (await dep.pods('consumer')).length === 0 ? true : undefined,
    );
    report.check(
      'kubernetes KEDA: with the queue empty the consumer is scaled to 0',
      true,
      `${((Date.now() - t1) / 1000).toFixed(0)} s (cooldownPeriod 10 s)`,
    );
    // Jobs wait in the queue with no consumer; KEDA must see the depth and bring one back.
    const subs: Submission[] = [];
    const t2 = Date.now();
    for (let i = 0; i < 20; i++) {
      const request = { type: 'sleep', input: { ms: 200 } };
      const sub: Submission = { key: `keda-${Date.now()}-${i}`, request, ids: new Set(), accepted: false, tries: 1 };
      const r = await client.submit(sub.key, request);
      if (r.job !== undefined && (r.status === 202 || r.status === 200)) {
        sub.accepted = true;
        sub.ids.add(r.job.id);
      }
      subs.push(sub);
    }
    const [broker] = await dep.containers('rabbitmq');
    if (broker === undefined) throw new Error('no rabbitmq pod');
    const depth = await dep.exec(broker, ['rabbitmqctl', '-q', 'list_queues', 'name', 'messages_ready']);
    report.log(
      `${QUEUE} after ${((Date.now() - t2) / 1000).toFixed(0)} s of submitting: ${
        depth.stdout
          .split('\n')
          .find((l) => l.startsWith(`${QUEUE}\t`))
          ?.replace('\t', ' ') ?? `(rabbitmqctl: ${depth.stderr.trim().split('\n')[0] ?? ''})`
      } messages ready`,
    );
    const up = await waitFor('KEDA to scale the consumer up on queue depth', 90_000, async () => {
      const d = await deployment();
      return (d.spec.replicas ?? 0) > 0 ? d.spec.replicas : undefined;
    }).catch(() => 0);
    report.check(
      `kubernetes KEDA: ${subs.filter((s) => s.accepted).length} jobs waiting in ${QUEUE} scale the consumer from 0 to ${up}`,
      up > 0,
      `${((Date.now() - t2) / 1000).toFixed(0)} s after the first job was submitted (pollingInterval 2 s)`,
    );
    const tally = await settle(client, subs, 120_000);
    report.check(
      'kubernetes KEDA: the jobs that waited for a consumer all succeed, none lost or duplicated',
      tally.accepted === subs.length &&
        tally.succeeded === tally.accepted &&
        tally.lost === 0 &&
        tally.duplicated === 0,
      describeTally(tally),
    );
    const t3 = Date.now();
    const down = await waitFor('KEDA to scale the consumer back to 0', 90_000, async () =>
      (await deployment()).spec.replicas === 0 ? true : undefined,
    ).catch(() => false);
    report.check(
      'kubernetes KEDA: once the queue is empty again the consumer is scaled back to 0',
      down,
      `${((Date.now() - t3) / 1000).toFixed(0)} s after the last job finished`,
    );
    // What the HPA that KEDA made said while the consumer ran: scaling above 1 needs KEDA's metrics adapter.
    const events = await cluster.kubectlRun([
      ...['-n', ns, 'get', 'events', '--field-selector', `involvedObject.name=keda-hpa-${NAME}`],
      ...['-o', 'custom-columns=REASON:.reason,MESSAGE:.message', '--no-headers'],
    ]);
    const seen = [
      ...new Set(
        events.stdout
          .trim()
          .split('\n')
          .filter((l) => l.trim() !== ''),
      ),
    ];
    report.log(`events of KEDA's HPA keda-hpa-${NAME}: ${seen.join(' | ').slice(0, 600) || 'none'}`);
  } finally {
    // The operator removes its finalizer and its HPA, so it must still run while the ScaledObject goes.
    await cluster.kubectlRun(['-n', ns, 'delete', 'scaledobject,triggerauthentication,secret', NAME, '--timeout=60s'], {
      timeoutMs: 70_000,
    });
    await cluster.stopProcess(operator);
    await dep.scale('consumer', 1);
    await dep.kubectl(['rollout', 'status', 'deployment/consumer', '--timeout=120s'], 130_000);
  }
}
