/**
 * The Kubernetes phase of the e2e (issue 17): builds (once, cached) and starts a single-node cluster, loads the
 * images, deploys `dist/<env>/kubernetes.k8s.yaml` as the README says, checks the running pods' hardening, that
 * PodSecurity `restricted` is enforced, that the synthesized NetworkPolicies allow exactly the system's flows
 * (kube-router enforcing), then runs the shared smoke test and faults through `kubectl port-forward svc/producer`;
 * then removes dev and applies prod on the same API server with its pods on kwok's fake nodes (`prod.ts`), and
 * removes everything it started.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobsClient } from '../client.ts';
import { PhaseFailed, type Report } from '../report.ts';
import {
  brokerRestart,
  consumerKill,
  databaseOutage,
  PRODUCER,
  scaleConsumers,
  smoke,
  waitHealthy,
  type FaultContext,
} from '../scenarios.ts';
import { COREDNS_IMAGE, LocalCluster, NODE_NAME, PAUSE_IMAGE } from './cluster.ts';
import { KubernetesDeployment, readManifest, type Manifest } from './deploy.ts';
import { loadImages, singleBinaryImage } from './images.ts';
import { kedaScaling } from './keda.ts';
import { FAKE_NODES, kedaCrdDirectory, ProdOnFakeNodes } from './prod.ts';
import { ensureClusterTools, kedaVersion, KUBERNETES_VERSION } from './tools.ts';

export interface KubernetesPhaseOptions {
  readonly repo: string;
  readonly manifestPath: string;
  /** `.secrets/<env>`: the README creates each Kubernetes Secret from the file of its name there. */
  readonly secretsDir: string;
  readonly mongoPasswordFile: string;
  /** The e2e client's bearer token (its hash is in `<secretsDir>/api-keys`). */
  readonly token: string;
  readonly faults: boolean;
  /** Build and run the KEDA operator against dev's real queue (`--keda`). */
  readonly keda: boolean;
  /** `dist/prod/kubernetes.k8s.yaml`, applied after dev with its pods on fake nodes; none skips that part. */
  readonly prodManifestPath?: string;
  readonly keep: boolean;
  readonly faultReports: string[];
}

const STORAGE_CLASS = 'e2e-local';

/**
 * A default StorageClass without a provisioner and one `local` PersistentVolume per claim the StatefulSets will
 * make, on the node's disk under the run directory (what a local-path provisioner would do).
 */
function storageObjects(dir: string, manifest: Manifest): { objects: string; paths: string[] } {
  let claims = 0;
  for (const w of manifest.workloads.values()) {
    const templates = Array.isArray(w.spec.volumeClaimTemplates) ? w.spec.volumeClaimTemplates.length : 0;
    claims += templates * (typeof w.spec.replicas === 'number' ? w.spec.replicas : 1);
  }
  const objects: object[] = [
    {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: {
        name: STORAGE_CLASS,
        labels: { 'async-jobs-e2e': 'volume' },
        annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' },
      },
      provisioner: 'kubernetes.io/no-provisioner',
      volumeBindingMode: 'WaitForFirstConsumer',
      reclaimPolicy: 'Delete',
    },
  ];
  const paths: string[] = [];
  for (let i = 0; i < claims; i++) {
    const path = join(dir, 'volumes', `pv-${i}`);
    paths.push(path);
    objects.push({
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name: `e2e-local-${i}`, labels: { 'async-jobs-e2e': 'volume' } },
      spec: {
        capacity: { storage: '10Gi' },
        accessModes: ['ReadWriteOnce'],
        persistentVolumeReclaimPolicy: 'Retain',
        storageClassName: STORAGE_CLASS,
        local: { path },
        nodeAffinity: {
          required: {
            nodeSelectorTerms: [
              { matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [NODE_NAME] }] },
            ],
          },
        },
      },
    });
  }
  return { objects: objects.map((x) => JSON.stringify(x)).join('\n---\n'), paths };
}

/** One exec per pod: who it runs as, whether / and /tmp are writable, its capabilities, no_new_privs, seccomp. */
const PROBE_SCRIPT = [
  'id -u',
  'touch /e2e-write-probe 2>/dev/null && echo root=writable || echo root=readonly',
  'touch /tmp/e2e-write-probe 2>/dev/null && rm -f /tmp/e2e-write-probe && echo tmp=writable || echo tmp=readonly',
  'grep -E "^(CapEff|CapBnd|CapPrm|NoNewPrivs|Seccomp):" /proc/self/status',
].join('; ');

async function checkPods(report: Report, dep: KubernetesDeployment): Promise<void> {
  for (const [service, w] of dep.manifest.workloads) {
    const template = (w.spec.template ?? {}) as { spec?: { containers?: Record<string, unknown>[] } };
    const spec = template.spec?.containers?.find((c) => c.name === service) ?? {};
    const expectedUser = Number((spec.securityContext as { runAsUser?: number } | undefined)?.runAsUser);
    const probes = ['startupProbe', 'readinessProbe', 'livenessProbe'].filter((p) => spec[p] !== undefined);
    for (const c of await dep.containers(service)) {
      const label = `kubernetes ${service} (${c.name})`;
      const r = await dep.exec(c, ['sh', '-c', PROBE_SCRIPT]);
      const lines = r.stdout.trim().split('\n');
      const uid = lines[0] ?? '';
      const field = (k: string): string =>
        (lines.find((l) => l.startsWith(`${k}:`)) ?? '').replace(/^[^:]+:\s*/, '').trim();
      report.check(
        `${label} runs as its numeric non-root user ${expectedUser}`,
        /^\d+$/.test(uid) && uid !== '0' && Number(uid) === expectedUser,
        `id -u ${uid || r.stderr.trim()}, runAsUser ${expectedUser}`,
      );
      report.check(
        `${label} has a read-only root filesystem`,
        c.readOnlyRoot && lines.includes('root=readonly'),
        `readOnlyRootFilesystem ${c.readOnlyRoot}, write to / ${lines.includes('root=readonly') ? 'refused' : 'succeeded'}`,
      );
      report.check(`${label} can write its /tmp`, lines.includes('tmp=writable'), lines.join(' '));
      const zero = /^0+$/;
      report.check(
        `${label} has no capabilities (effective, permitted, bounding)`,
        zero.test(field('CapEff')) && zero.test(field('CapPrm')) && zero.test(field('CapBnd')),
        `CapEff ${field('CapEff')}, CapPrm ${field('CapPrm')}, CapBnd ${field('CapBnd')}, drop ${JSON.stringify(c.capDrop)}`,
      );
      report.check(
        `${label} runs under a seccomp filter with no_new_privs`,
        field('Seccomp') === '2' && field('NoNewPrivs') === '1' && c.securityOpt.includes('seccomp=RuntimeDefault'),
        `Seccomp ${field('Seccomp')} (2 = filter), NoNewPrivs ${field('NoNewPrivs')}, ${c.securityOpt.join(', ')}`,
      );
      const pod = (await dep.pods(service)).find((p) => p.metadata.name === c.name);
      const st = pod?.status.containerStatuses?.find((s) => s.name === service);
      report.check(
        `${label} passes its probes (${probes.join(', ') || 'none defined'})`,
        probes.includes('readinessProbe') && st?.ready === true && st.started === true && c.health === 'healthy',
        `started ${st?.started}, ready ${st?.ready}, restarts ${st?.restartCount ?? '?'}`,
      );
    }
  }
}

async function checkPodSecurity(report: Report, cluster: LocalCluster, dep: KubernetesDeployment): Promise<void> {
  const ns = dep.manifest.namespace;
  const labels = JSON.parse(
    await cluster.kubectl(['get', 'namespace', ns, '-o', 'jsonpath={.metadata.labels}']),
  ) as Record<string, string>;
  report.check(
    `kubernetes namespace ${ns} enforces Pod Security "restricted"`,
    labels['pod-security.kubernetes.io/enforce'] === 'restricted',
    Object.entries(labels)
      .filter(([k]) => k.startsWith('pod-security'))
      .map(([k, v]) => `${k}=${v}`)
      .join(', '),
  );
  report.check(
    'kubernetes apply of the manifest printed no warnings',
    dep.applyWarnings.length === 0,
    dep.applyWarnings.join(' | '),
  );
  const image = dep.file.services[PRODUCER]?.image ?? '';
  const bad = await cluster.kubectlRun([
    ...['-n', ns, 'run', 'psa-violator', `--image=${image}`, '--image-pull-policy=Never', '--restart=Never'],
    ...['--dry-run=server', '--', 'sleep', '1'],
  ]);
  report.check(
    'kubernetes refuses a pod that violates "restricted" in the namespace',
    bad.code !== 0 && /violates PodSecurity "restricted/.test(bad.stderr),
    bad.stderr.trim().split('\n')[0] ?? '',
  );
  // Every app pod, re-submitted as a bare Pod (server-side dry run): admitted with no warning.
  for (const service of dep.manifest.workloads.keys()) {
    for (const p of await dep.pods(service)) {
      const pod = JSON.parse(await dep.kubectl(['get', 'pod', p.metadata.name, '-o', 'json'])) as {
        metadata: Record<string, unknown>;
        spec: Record<string, unknown>;
      };
      const copy = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: `${p.metadata.name}-psa-check`, namespace: ns },
        spec: pod.spec,
      };
      const r = await cluster.kubectlRun(['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(copy) });
      report.check(
        `kubernetes admits pod ${p.metadata.name} under "restricted" with no warning`,
        r.code === 0 && !/warning/i.test(r.stderr),
        r.code === 0 ? r.stderr.trim() : r.stderr.trim().split('\n')[0],
      );
    }
  }
}

/** A TCP connect from inside a pod, by node (every app image and the probe run Node): open, refused or timeout. */
const CONNECT = `const s=require('net').connect(+process.argv[2],process.argv[1]);s.setTimeout(3000);s.on('connect',()=>{console.log('open');process.exit(0)});s.on('timeout',()=>{console.log('timeout');process.exit(0)});s.on('error',(e)=>{console.log(e.code);process.exit(0)})`;
const LOOKUP = `require('dns').lookup(process.argv[1],(e,a)=>{console.log(e?e.code:a)})`;

async function checkNetworkPolicy(report: Report, cluster: LocalCluster, dep: KubernetesDeployment): Promise<void> {
  if (!cluster.running('kube-router'))
    throw new Error(`kube-router is not running:\n${cluster.logTail('kube-router', 8)}`);
  const probeImage = dep.file.services[PRODUCER]?.image ?? '';
  const probe = {
    apiVersion: 'v1',
    kind: 'Pod',
    // No app labels: no policy allows anything to or from it beyond DNS.
    metadata: { name: 'netpol-probe', namespace: dep.manifest.namespace, labels: { 'async-jobs-e2e': 'netpol-probe' } },
    spec: {
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 1,
      securityContext: { runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        {
          name: 'probe',
          image: probeImage,
          imagePullPolicy: 'Never',
          command: ['sleep', '900'],
          securityContext: {
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ['ALL'] },
          },
        },
      ],
    },
  };
  await dep.apply(JSON.stringify(probe));
  try {
    await dep.kubectl(['wait', '--for=condition=Ready', 'pod/netpol-probe', '--timeout=90s'], 100_000);
    const ip = async (svc: string): Promise<string> =>
      dep.kubectl(['get', 'svc', svc, '-o', 'jsonpath={.spec.clusterIP}']);
    const first = async (service: string) => {
      const [c] = await dep.containers(service);
      if (c === undefined) throw new Error(`no running ${service} pod`);
      return c;
    };
    const probeC = { ...(await first(PRODUCER)), id: 'netpol-probe', name: 'netpol-probe', service: 'probe' };
    const connect = async (from: typeof probeC, host: string, port: number): Promise<string> => {
      const r = await dep.exec(from, ['node', '-e', CONNECT, host, String(port)], 30_000);
      return (r.stdout.trim() || r.stderr.trim()).split('\n').pop() ?? '';
    };
    const consumer = await first('consumer');
    const producer = await first(PRODUCER);
    const mongo = await ip('mongo');
    const rabbit = await ip('rabbitmq');
    const prod = await ip(PRODUCER);
    const cases: [string, typeof probeC, string, number, boolean][] = [
      ['the consumer reaches mongo:27017', consumer, mongo, 27017, true],
      ['the consumer reaches rabbitmq:5672', consumer, rabbit, 5672, true],
      ['the producer reaches mongo:27017', producer, mongo, 27017, true],
      ['the producer reaches rabbitmq:5672', producer, rabbit, 5672, true],
      ['the consumer cannot reach the producer :8080', consumer, prod, 8080, false],
      ['a pod without the app labels cannot reach mongo:27017', probeC, mongo, 27017, false],
      ['a pod without the app labels cannot reach rabbitmq:5672', probeC, rabbit, 5672, false],
      ['a pod without the app labels cannot reach the producer :8080', probeC, prod, 8080, false],
      ['the producer cannot reach the RabbitMQ management port :15672', producer, rabbit, 15672, false],
    ];
    for (const [what, from, host, port, allowed] of cases) {
      const got = await connect(from, host, port);
      report.check(
        `kubernetes NetworkPolicy: ${what}`,
        allowed ? got === 'open' : got === 'timeout' || got === 'ECONNREFUSED',
        `${from.name} → ${host}:${port}: ${got}`,
      );
    }
    const dns = await dep.exec(probeC, ['node', '-e', LOOKUP, 'mongo'], 30_000);
    report.check(
      'kubernetes NetworkPolicy: DNS (allow-dns) works from any pod of the namespace',
      dns.stdout.trim() === mongo,
      `lookup mongo from netpol-probe: ${dns.stdout.trim() || dns.stderr.trim()} (Service ${mongo})`,
    );
  } finally {
    await dep.kubectl(['delete', 'pod', 'netpol-probe', '--wait=false', '--ignore-not-found']);
  }
}

/** The README's `kubectl delete -f` of the manifest: the namespace and everything in it. */
async function removeDev(report: Report, dep: KubernetesDeployment): Promise<void> {
  dep.stopForward();
  await dep.down().catch((e: unknown) => report.log(`delete: ${e instanceof Error ? e.message : String(e)}`));
  const left = await dep.leftovers().catch(() => [] as string[]);
  report.check('kubernetes kubectl delete -f leaves no namespace', left.length === 0, left.join(', '));
}

export async function kubernetesPhase(report: Report, o: KubernetesPhaseOptions): Promise<void> {
  const manifest = readManifest(o.manifestPath);
  const tools = await report.phase(`kubernetes: cluster binaries (${KUBERNETES_VERSION}, cached in .tools/k8s)`, () =>
    ensureClusterTools(o.repo, (l) => report.log(l), { kedaOperator: o.keda }),
  );
  if (tools === undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'aj-k8s-'));
  const cluster = new LocalCluster({ dir, tools, log: (l) => report.log(l) });
  let dep: KubernetesDeployment | undefined;
  let devRemoved = false;
  let prod: ProdOnFakeNodes | undefined;
  try {
    const started = await report.phase('kubernetes: cluster up', async () => {
      mkdirSync(join(dir, 'scratch'), { recursive: true });
      await singleBinaryImage(tools.pause, PAUSE_IMAGE, join(dir, 'scratch'));
      await singleBinaryImage(tools.coredns, COREDNS_IMAGE, join(dir, 'scratch'));
      const images = [
        PAUSE_IMAGE,
        COREDNS_IMAGE,
        ...new Set(
          [...manifest.workloads.values()].map((w) => {
            const t = (w.spec.template ?? {}) as { spec?: { containers?: { image?: string }[] } };
            return t.spec?.containers?.[0]?.image ?? '';
          }),
        ),
      ];
      const times = await cluster.start(async () => {
        const n = await loadImages(cluster, images, join(dir, 'scratch'));
        report.log(`imported ${n} images into the node's containerd: ${images.join(', ')}`);
      });
      report.log(
        `step wall times: ${Object.entries(times)
          .map(([k, v]) => `${k} ${v.toFixed(1)} s`)
          .join(', ')}`,
      );
      const storage = storageObjects(dir, manifest);
      for (const p of storage.paths) mkdirSync(p, { recursive: true, mode: 0o755 });
      await cluster.kubectl(['apply', '-f', '-'], { input: storage.objects });
      report.log(`default StorageClass ${STORAGE_CLASS} with ${storage.paths.length} local PersistentVolumes`);
      const version = await cluster.kubectl(['version', '-o', 'json']);
      report.log(
        `server ${(JSON.parse(version) as { serverVersion: { gitVersion: string } }).serverVersion.gitVersion}, node ${NODE_NAME} Ready`,
      );
      return true;
    });
    if (started === undefined) throw new PhaseFailed('kubernetes: cluster up');
    dep = new KubernetesDeployment(cluster, manifest, o.secretsDir);
    const d = dep;
    const up = await report.phase(
      `kubernetes: deploy ${o.manifestPath.replace(`${o.repo}/`, '')} as the README says`,
      async () => {
        await d.up();
        const all = await waitHealthy(d, 300_000);
        report.check(
          `kubernetes brings all ${Object.keys(d.file.services).length} workloads to Ready`,
          true,
          all.map((c) => c.name).join(', '),
        );
        return true;
      },
    );
    if (up === undefined) throw new PhaseFailed('kubernetes: deploy');
    await report.phase('kubernetes: pod checks', () => checkPods(report, d));
    await report.phase('kubernetes: PodSecurity', () => checkPodSecurity(report, cluster, d));
    await report.phase('kubernetes: NetworkPolicy (kube-router)', () => checkNetworkPolicy(report, cluster, d));
    const url = await report.phase('kubernetes: port-forward svc/producer', async () => {
      const u = await d.forwardProducer(PRODUCER, 8080);
      report.log(`kubectl -n ${manifest.namespace} port-forward svc/producer → ${u}`);
      return u;
    });
    if (url === undefined) throw new PhaseFailed('kubernetes: port-forward');
    const client = new JobsClient(url, o.token);
    await report.phase('kubernetes: smoke', () => smoke(report, d, client));
    if (o.faults) {
      const ctx: FaultContext = {
        report,
        dep: d,
        client,
        mongoPasswordFile: o.mongoPasswordFile,
        faultReports: o.faultReports,
      };
      await report.phase('kubernetes: fault consumer-kill (pod deleted mid-job)', () => consumerKill(ctx));
      await report.phase('kubernetes: fault broker-restart (pod deleted)', () => brokerRestart(ctx));
      await report.phase('kubernetes: fault database-outage (StatefulSet 0 → 1)', () => databaseOutage(ctx));
      await report.phase('kubernetes: fault scale-consumers', () => scaleConsumers(ctx));
    }
    if (o.keda && tools.kedaOperator !== undefined) {
      const operator = tools.kedaOperator;
      await report.phase(
        `kubernetes: KEDA operator ${kedaVersion(o.repo)} scales the consumer on queue depth`,
        async () =>
          kedaScaling(report, cluster, d, client, {
            operator,
            crdDir: await kedaCrdDirectory(kedaVersion(o.repo), dir),
            dir,
            secretsDir: o.secretsDir,
          }),
      );
    }
    if (o.prodManifestPath !== undefined) {
      const prodManifest = readManifest(o.prodManifestPath);
      // dev goes first, so none of its real pods can ever be rescheduled onto a fake node.
      const removed = await report.phase('kubernetes: remove dev (kubectl delete -f) before prod', async () => {
        await removeDev(report, d);
        devRemoved = true;
        return true;
      });
      if (removed !== undefined) {
        const p = new ProdOnFakeNodes(report, cluster, tools, prodManifest, dir);
        prod = p;
        const nodes = await report.phase('kubernetes prod: kwok fake nodes, KEDA CRDs', async () => {
          const keda = kedaVersion(o.repo);
          const crds = await kedaCrdDirectory(keda, dir);
          report.log(`KEDA ${keda} CRDs from the module: ${crds.replace(/^.*\/pkg\/mod\//, '$GOMODCACHE/')}`);
          await p.setUp(crds);
          return true;
        });
        const applied =
          nodes === undefined
            ? undefined
            : await report.phase(`kubernetes prod: server-side dry run and apply`, async () => {
                await p.apply();
                return true;
              });
        if (applied !== undefined) {
          const scheduled = await report.phase('kubernetes prod: scheduling on the fake nodes', async () => {
            await p.scheduling();
            return true;
          });
          if (scheduled !== undefined) {
            const first = await report.phase('kubernetes prod: drain, consumer at 1 (no KEDA operator)', async () => {
              await p.drainRefused();
              return true;
            });
            if (first !== undefined)
              await report.phase("kubernetes prod: drain, consumer at KEDA's minReplicaCount", () =>
                p.drainAtMinReplicas(),
              );
          }
        }
      }
    }
  } catch (e) {
    if (!(e instanceof PhaseFailed)) throw e;
    report.log(`kubernetes: ${e.message}`);
    if (dep !== undefined) report.log((await dep.diagnose().catch((x: unknown) => String(x))).replace(/^/gm, '    '));
    for (const n of ['kubelet', 'kube-apiserver', 'containerd']) {
      const t = cluster.logTail(n, 6);
      if (t !== '') report.log(`${n} log:\n${t.replace(/^/gm, '    ')}`);
    }
  } finally {
    if (o.keep) {
      report.note(
        `kubernetes: kept running (--keep): KUBECONFIG=${cluster.kubeconfig}; e2e/README.md says how to stop it`,
      );
    } else {
      await report.phase('kubernetes: teardown', async () => {
        if (prod !== undefined) {
          const left = await prod.tearDown();
          report.check(
            'kubernetes prod: its namespace and the fake nodes deleted',
            left.length === 0,
            left.join('; ') || `namespace ${prod.namespace}, nodes ${FAKE_NODES.map((n) => n.name).join(', ')}`,
          );
        }
        if (dep !== undefined && !devRemoved) await removeDev(report, dep);
        const pv = await cluster.kubectlRun([
          'delete',
          'pv,storageclass',
          '-l',
          'async-jobs-e2e=volume',
          '--timeout=60s',
        ]);
        report.check(
          'kubernetes PersistentVolumes and StorageClass of the run deleted',
          pv.code === 0,
          pv.code === 0 ? pv.stdout.trim().split('\n').length + ' objects' : pv.stderr.trim(),
        );
        const left = await cluster.stop();
        report.check(
          'kubernetes teardown leaves no process, mount, bridge or iptables rule',
          left.length === 0,
          left.join('; '),
        );
        if (left.length === 0) rmSync(dir, { recursive: true, force: true });
      });
    }
  }
}
