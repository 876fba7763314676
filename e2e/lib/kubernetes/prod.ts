/**
 * prod on the e2e's API server (issue 17 part 2). prod needs at least 3 nodes (required anti-affinity on mongo and
 * rabbitmq) and far more memory than one test machine has, so its pods go to fake nodes: kwok registers 3 nodes in
 * 3 zones and reports the pods bound to them as Running (nothing runs). What is real is everything above the
 * kubelet: admission (server-side dry run and apply, PodSecurity, the KEDA CRDs' schemas), the scheduler (anti-
 * affinity, topology spread, volume binding), the controllers (StatefulSet, Deployment, HPA, Job, disruption) and
 * the eviction API that `kubectl drain` uses, which is where PodDisruptionBudgets are enforced.
 *
 * dev is deleted before the fake nodes are registered and the real node is cordoned, so no real pod is ever
 * scheduled onto a fake node and no prod pod onto the real one, without a taint or toleration that prod's manifest
 * would have to carry.
 * @see e2e/README.md (Kubernetes, prod on fake nodes) for the results and every difference from a real cluster.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { check, sleep, waitFor } from '../exec.ts';
import { type Report } from '../report.ts';
import { NODE_NAME, type LocalCluster } from './cluster.ts';
import { type Manifest } from './deploy.ts';
import { type ClusterTools } from './tools.ts';

type Obj = Record<string, unknown>;

/** Three fake nodes, one per zone: the least prod's required anti-affinity accepts. */
export const FAKE_NODES: readonly { readonly name: string; readonly zone: string }[] = [
  { name: 'kwok-a', zone: 'e2e-zone-a' },
  { name: 'kwok-b', zone: 'e2e-zone-b' },
  { name: 'kwok-c', zone: 'e2e-zone-c' },
];
const FAKE_NODE_LABEL = 'async-jobs-e2e=fake-node';
/** kwok manages only the nodes carrying this annotation, never the real one. */
const KWOK_ANNOTATION = 'kwok.x-k8s.io/node=fake';
/**
 * The addresses kwok reports for fake pods and nodes: TEST-NET-1 (RFC 5737), never routed; nothing in the run sends
 * anything to them (kube-proxy and kube-router only write them into rules).
 */
const KWOK_POD_CIDR = '192.0.2.1/24';
const KWOK_NODE_IP = '192.0.2.254';

interface PodJson {
  metadata: { name: string; labels?: Record<string, string>; deletionTimestamp?: string };
  spec: { nodeName?: string };
  status: { phase?: string; conditions?: { type: string; status: string }[] };
}

interface PdbJson {
  metadata: { name: string };
  spec: { minAvailable?: number | string; maxUnavailable?: number | string };
  status?: { currentHealthy?: number; desiredHealthy?: number; disruptionsAllowed?: number; expectedPods?: number };
}

function o(v: unknown): Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {};
}

const ready = (p: PodJson): boolean =>
  p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;

/** Counts per node, every fake node listed (0 included), in node order. */
function perNode(pods: readonly PodJson[]): Map<string, number> {
  const m = new Map<string, number>(FAKE_NODES.map((n) => [n.name, 0]));
  for (const p of pods) {
    const n = p.spec.nodeName ?? '(unscheduled)';
    m.set(n, (m.get(n) ?? 0) + 1);
  }
  return m;
}

const show = (m: ReadonlyMap<string, number>): string => [...m].map(([n, c]) => `${n}:${c}`).join(' ');

/**
 * Watches every PodDisruptionBudget of the namespace (polled every 500 ms) and keeps the lowest `currentHealthy`
 * each one reached, with its `desiredHealthy`.
 */
class PdbWatch {
  readonly lowest = new Map<string, { healthy: number; desired: number; before: number }>();
  private stopped = false;
  private loop: Promise<void> | undefined;

  private readonly read: () => Promise<PdbJson[]>;

  constructor(read: () => Promise<PdbJson[]>) {
    this.read = read;
  }

  async start(): Promise<void> {
    for (const p of await this.read()) {
      const healthy = p.status?.currentHealthy ?? 0;
      this.lowest.set(p.metadata.name, { healthy, desired: p.status?.desiredHealthy ?? 0, before: healthy });
    }
    this.loop = (async () => {
      while (!this.stopped) {
        const pdbs = await this.read().catch(() => [] as PdbJson[]);
        for (const p of pdbs) {
          const seen = this.lowest.get(p.metadata.name);
          const healthy = p.status?.currentHealthy ?? 0;
          if (seen !== undefined && healthy < seen.healthy) seen.healthy = healthy;
        }
        await sleep(500);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  /** PDBs whose healthy count went below what they guarantee (or, for one already short, below where it started). */
  violations(): string[] {
    return [...this.lowest]
      .filter(([, v]) => v.healthy < Math.min(v.desired, v.before))
      .map(([n, v]) => `${n}: lowest currentHealthy ${v.healthy}, desiredHealthy ${v.desired}`);
  }

  describe(): string {
    return [...this.lowest].map(([n, v]) => `${n} ≥${v.healthy} (desired ${v.desired})`).join(', ');
  }
}

export class ProdOnFakeNodes {
  readonly namespace: string;
  private readonly report: Report;
  private readonly cluster: LocalCluster;
  private readonly tools: ClusterTools;
  private readonly manifest: Manifest;
  private readonly dir: string;
  private applied = false;
  private nodesMade = false;

  constructor(report: Report, cluster: LocalCluster, tools: ClusterTools, manifest: Manifest, dir: string) {
    this.report = report;
    this.cluster = cluster;
    this.tools = tools;
    this.manifest = manifest;
    this.namespace = manifest.namespace;
    this.dir = dir;
  }

  private kubectl(args: readonly string[], timeoutMs = 120_000): Promise<string> {
    return this.cluster.kubectl(args, { timeoutMs });
  }

  private ns(args: readonly string[]): string[] {
    return ['-n', this.namespace, ...args];
  }

  private async pods(selector?: string): Promise<PodJson[]> {
    const out = await this.kubectl(
      this.ns(['get', 'pods', ...(selector === undefined ? [] : ['-l', selector]), '-o', 'json']),
    );
    return (JSON.parse(out) as { items: PodJson[] }).items.filter((p) => p.metadata.deletionTimestamp === undefined);
  }

  private app(name: string): Promise<PodJson[]> {
    return this.pods(`app.kubernetes.io/name=${name}`);
  }

  private async pdbs(): Promise<PdbJson[]> {
    return (JSON.parse(await this.kubectl(this.ns(['get', 'pdb', '-o', 'json']))) as { items: PdbJson[] }).items;
  }

  /**
   * kwok, the fake nodes (Ready, untainted, zone and hostname labels), the real node cordoned, the KEDA CRDs, and
   * one `local` PersistentVolume per fake node and claim template (as a local-path provisioner would make them).
   */
  async setUp(kedaCrdDir: string): Promise<void> {
    const kubeconfig = this.cluster.kubeconfig;
    writeFileSync(join(this.dir, 'kwok.yaml'), '');
    this.cluster.spawnProcess('kwok', this.tools.kwok, [
      `--kubeconfig=${kubeconfig}`,
      // An empty file instead of ~/.kwok/kwok.yaml: only the flags below and kwok's built-in stages apply.
      `--config=${join(this.dir, 'kwok.yaml')}`,
      '--manage-all-nodes=false',
      `--manage-nodes-with-annotation-selector=${KWOK_ANNOTATION}`,
      `--cidr=${KWOK_POD_CIDR}`,
      `--node-ip=${KWOK_NODE_IP}`,
      '--node-lease-duration-seconds=40',
      // No --server-address and no --node-port: kwok's own server (logs, exec) stays off, nothing listens.
      '-v=INFO',
    ]);
    await this.kubectl(['cordon', NODE_NAME]);
    const [annotationKey, annotationValue] = KWOK_ANNOTATION.split('=') as [string, string];
    const [labelKey, labelValue] = FAKE_NODE_LABEL.split('=') as [string, string];
    const nodes = FAKE_NODES.map((n) => ({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name: n.name,
        annotations: { [annotationKey]: annotationValue, 'node.alpha.kubernetes.io/ttl': '0' },
        labels: {
          [labelKey]: labelValue,
          'kubernetes.io/hostname': n.name,
          'kubernetes.io/os': 'linux',
          'kubernetes.io/arch': 'amd64',
          'topology.kubernetes.io/zone': n.zone,
          type: 'kwok',
        },
      },
      // A node size prod's requests fit on with room (mongo 2 Gi + rabbitmq 1 Gi + 2 stateless pods per node).
      status: {
        allocatable: { cpu: '8', memory: '32Gi', pods: '110', 'ephemeral-storage': '100Gi' },
        capacity: { cpu: '8', memory: '32Gi', pods: '110', 'ephemeral-storage': '100Gi' },
      },
    }));
    this.nodesMade = true;
    await this.cluster.kubectl(['create', '-f', '-'], { input: nodes.map((n) => JSON.stringify(n)).join('\n---\n') });
    await this.kubectl(['wait', '--for=condition=Ready', 'node', '-l', FAKE_NODE_LABEL, '--timeout=90s'], 100_000);
    const crds = readdirSync(kedaCrdDir).filter((f) => f.endsWith('.yaml'));
    // Server-side: the ScaledJob CRD is too large for client-side apply's last-applied annotation.
    await this.kubectl(['apply', '--server-side', '--field-manager=async-jobs-e2e', '-f', kedaCrdDir]);
    await this.kubectl(['wait', '--for=condition=Established', '-f', kedaCrdDir, '--timeout=60s'], 70_000);
    const pvs: object[] = [];
    for (const w of this.manifest.workloads.values()) {
      if (w.kind !== 'StatefulSet') continue;
      const templates = Array.isArray(w.spec.volumeClaimTemplates) ? (w.spec.volumeClaimTemplates as Obj[]) : [];
      for (const t of templates) {
        const spec = o(t.spec);
        const storage = String(o(o(spec.resources).requests).storage);
        for (const n of FAKE_NODES) {
          const name = `e2e-${n.name}-${w.name}-${String(o(t.metadata).name)}`;
          pvs.push({
            apiVersion: 'v1',
            kind: 'PersistentVolume',
            metadata: { name, labels: { 'async-jobs-e2e': 'volume' } },
            spec: {
              capacity: { storage },
              accessModes: spec.accessModes,
              persistentVolumeReclaimPolicy: 'Retain',
              storageClassName: 'e2e-local',
              // Never mounted: no kubelet serves the fake nodes.
              local: { path: `/var/lib/async-jobs-e2e/${name}` },
              nodeAffinity: {
                required: {
                  nodeSelectorTerms: [
                    { matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [n.name] }] },
                  ],
                },
              },
            },
          });
        }
      }
    }
    await this.cluster.kubectl(['apply', '-f', '-'], { input: pvs.map((p) => JSON.stringify(p)).join('\n---\n') });
    const nodeList = await this.kubectl([
      'get',
      'nodes',
      '-o',
      'custom-columns=NAME:.metadata.name,ZONE:.metadata.labels.topology\\.kubernetes\\.io/zone,SCHEDULABLE:.spec.unschedulable,TAINTS:.spec.taints[*].key',
      '--no-headers',
    ]);
    this.report.check(
      `kubernetes prod: ${FAKE_NODES.length} kwok nodes Ready in ${new Set(FAKE_NODES.map((n) => n.zone)).size} zones, untainted; the real node ${NODE_NAME} cordoned`,
      FAKE_NODES.every((n) => new RegExp(`^${n.name}\\s+${n.zone}\\s+<none>\\s+<none>$`, 'm').test(nodeList)) &&
        new RegExp(`^${NODE_NAME}\\s+\\S+\\s+true\\s`, 'm').test(nodeList),
      nodeList
        .trim()
        .replace(/\s*\n\s*/g, '; ')
        .replace(/\s+/g, ' '),
    );
    this.report.log(`KEDA CRDs ${crds.join(', ')}; ${pvs.length} local PersistentVolumes on the fake nodes`);
  }

  /** Random secret files for this run (the user's `.secrets/prod` is never read or written) and a self-signed TLS pair. */
  private secretFiles(): { generic: Map<string, string>; tls: { name: string; crt: string; key: string }[] } {
    const d = join(this.dir, 'prod-secrets');
    mkdirSync(d, { recursive: true, mode: 0o700 });
    const generic = new Map<string, string>();
    for (const s of this.manifest.secrets) {
      const f = join(d, s);
      writeFileSync(f, randomBytes(24).toString('base64url'), { mode: 0o600 });
      generic.set(s, f);
    }
    const tls: { name: string; crt: string; key: string }[] = [];
    for (const x of this.manifest.objects.filter((y) => y.kind === 'Ingress')) {
      for (const t of Array.isArray(o(x.spec).tls) ? (o(x.spec).tls as Obj[]) : []) {
        const name = String(t.secretName);
        const host = Array.isArray(t.hosts) ? String(t.hosts[0]) : 'example.com';
        const crt = join(d, `${name}.crt`);
        const key = join(d, `${name}.key`);
        execFileSync(
          'openssl',
          [
            ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${host}`],
            ...['-addext', `subjectAltName=DNS:${host}`, '-keyout', key, '-out', crt],
          ],
          { stdio: 'ignore' },
        );
        tls.push({ name, crt, key });
      }
    }
    return { generic, tls };
  }

  /**
   * The namespace first (a server-side dry run of namespaced objects needs their namespace to exist), then a
   * server-side dry run of the whole file and the real server-side apply, each with its stderr kept: zero
   * rejections and zero warnings. Then the README's secrets.
   */
  async apply(): Promise<void> {
    const path = this.manifest.path;
    const objects = this.manifest.objects.length;
    const nsDoc = this.manifest.objects.find((x) => x.kind === 'Namespace');
    const ssa = ['apply', '--server-side', '--field-manager=kubectl'];
    const nsRun = await this.cluster.kubectlRun([...ssa, '-f', '-'], { input: JSON.stringify(nsDoc) });
    this.applied = true;
    if (nsRun.code !== 0) throw new Error(`apply of the Namespace: ${nsRun.stderr.trim()}`);
    const dry = await this.cluster.kubectlRun([...ssa, '--dry-run=server', '-f', path]);
    const dryLines = dry.stdout.split('\n').filter((l) => /serverside-applied \(server dry run\)/.test(l));
    this.report.check(
      `kubernetes prod: server-side dry run accepts all ${objects} objects of ${path.replace(/^.*\/dist\//, 'dist/')} with no warning`,
      dry.code === 0 && dryLines.length === objects && dry.stderr.trim() === '',
      `exit ${dry.code}, ${dryLines.length} accepted${dry.stderr.trim() === '' ? ', stderr empty' : `, stderr: ${dry.stderr.trim().split('\n').slice(0, 3).join(' | ')}`}`,
    );
    const real = await this.cluster.kubectlRun([...ssa, '-f', path]);
    const realLines = real.stdout.split('\n').filter((l) => /serverside-applied$/.test(l.trim()));
    this.report.check(
      `kubernetes prod: server-side apply creates all ${objects} objects with no warning`,
      real.code === 0 && realLines.length === objects && real.stderr.trim() === '',
      `exit ${real.code}, ${realLines.length} applied${real.stderr.trim() === '' ? ', stderr empty' : `, stderr: ${real.stderr.trim().split('\n').slice(0, 3).join(' | ')}`}`,
    );
    if (real.code !== 0) throw new Error(`kubectl apply --server-side -f ${path}: ${real.stderr.trim()}`);
    const diff = await this.cluster.kubectlRun(['diff', '--server-side', '--field-manager=kubectl', '-f', path]);
    this.report.check(
      'kubernetes prod: a second server-side apply would change nothing (kubectl diff --server-side is empty)',
      diff.code === 0 && diff.stdout.trim() === '',
      diff.code === 0
        ? 'no difference'
        : `exit ${diff.code}: ${(diff.stdout + diff.stderr).trim().split('\n').slice(0, 6).join(' | ')}`,
    );
    const files = this.secretFiles();
    for (const [s, f] of files.generic)
      await this.kubectl(this.ns(['create', 'secret', 'generic', s, `--from-file=value=${f}`]));
    for (const t of files.tls)
      await this.kubectl(this.ns(['create', 'secret', 'tls', t.name, `--cert=${t.crt}`, `--key=${t.key}`]));
    this.report.log(
      `created secrets ${[...files.generic.keys(), ...files.tls.map((t) => `${t.name} (tls)`)].join(', ')} as the README says`,
    );
  }

  /** Waits for the HPA's minimum of producers and every pod bound and Running (Job pods: Succeeded), then checks placement. */
  async scheduling(): Promise<void> {
    const hpaMin = Number(
      o(this.manifest.objects.find((x) => x.kind === 'HorizontalPodAutoscaler')?.spec).minReplicas ?? 1,
    );
    const t0 = Date.now();
    let pods: PodJson[] = [];
    try {
      pods = await waitFor(
        'every prod pod bound and Running, and the HPA minimum of producers',
        180_000,
        async () => {
          const all = await this.pods();
          const producers = all.filter((p) => p.metadata.labels?.['app.kubernetes.io/name'] === 'producer');
          const settled = all.every(
            (p) =>
              p.spec.nodeName !== undefined &&
              (p.status.phase === 'Succeeded' || (p.status.phase === 'Running' && ready(p))),
          );
          // From the same list: a StatefulSet makes its members one by one (OrderedReady).
          const stsDone = [...this.manifest.workloads.values()]
            .filter((w) => w.kind === 'StatefulSet')
            .every(
              (w) =>
                all.filter((p) => p.metadata.labels?.['app.kubernetes.io/name'] === w.name).length ===
                Number(w.spec.replicas ?? 1),
            );
          return settled && producers.length >= hpaMin && stsDone ? all : undefined;
        },
        2000,
      );
    } finally {
      if (pods.length === 0) pods = await this.pods();
    }
    const seconds = ((Date.now() - t0) / 1000).toFixed(0);
    const nodeOf = new Map(FAKE_NODES.map((n) => [n.name, n.zone]));
    const running = pods.filter((p) => p.status.phase === 'Running');
    this.report.check(
      `kubernetes prod: every pod is scheduled onto a fake node and Running (Job pods Succeeded) within ${seconds} s`,
      pods.length > 0 &&
        pods.every(
          (p) => nodeOf.has(p.spec.nodeName ?? '') && (p.status.phase === 'Running' || p.status.phase === 'Succeeded'),
        ),
      `${running.length} Running, ${pods.length - running.length} other: ${pods
        .map((p) => `${p.metadata.name}@${p.spec.nodeName ?? '-'}(${p.status.phase ?? '?'})`)
        .join(' ')}`,
    );
    const everywhere = (
      JSON.parse(await this.kubectl(['get', 'pods', '--all-namespaces', '-o', 'json'])) as {
        items: (PodJson & { metadata: { namespace: string } })[];
      }
    ).items;
    const misplaced = everywhere.filter(
      (p) => (p.metadata.namespace === this.namespace) !== nodeOf.has(p.spec.nodeName ?? ''),
    );
    this.report.check(
      `kubernetes prod: the fake nodes run only prod's pods, the real node ${NODE_NAME} none of them`,
      misplaced.length === 0,
      misplaced.length === 0
        ? `${everywhere.length - pods.length} other pods, all on ${NODE_NAME}: ${everywhere
            .filter((p) => p.metadata.namespace !== this.namespace)
            .map((p) => `${p.metadata.namespace}/${p.metadata.name}`)
            .join(', ')}`
        : misplaced.map((p) => `${p.metadata.namespace}/${p.metadata.name}@${p.spec.nodeName ?? '-'}`).join(', '),
    );
    for (const w of this.manifest.workloads.values()) {
      if (w.kind !== 'StatefulSet') continue;
      const members = await this.app(w.name);
      const nodes = members.map((p) => p.spec.nodeName ?? '-');
      const zones = new Set(nodes.map((n) => nodeOf.get(n) ?? '?'));
      this.report.check(
        `kubernetes prod: the ${members.length} ${w.name} members run on ${members.length} distinct nodes (required anti-affinity)`,
        members.length === Number(w.spec.replicas) &&
          members.every((p) => nodeOf.has(p.spec.nodeName ?? '') && p.status.phase === 'Running') &&
          new Set(nodes).size === members.length,
        `${members.map((p) => `${p.metadata.name}@${p.spec.nodeName ?? '-'}`).join(', ')}; zones ${[...zones].join(', ')}`,
      );
    }
    const producers = await this.app('producer');
    const counts = perNode(producers);
    const fake = [...counts].filter(([n]) => nodeOf.has(n)).map(([, c]) => c);
    const distinct = producers.length <= FAKE_NODES.length;
    this.report.check(
      `kubernetes prod: the HPA keeps ${hpaMin} producers without metrics-server, spread ${distinct ? 'one per node' : 'with skew ≤ 1'} (hard topology spread)`,
      producers.length === hpaMin &&
        (distinct
          ? new Set(producers.map((p) => p.spec.nodeName)).size === producers.length
          : Math.max(...fake) - Math.min(...fake) <= 1),
      show(counts),
    );
    const hpa = await this.cluster.kubectlRun(
      this.ns(['get', 'hpa', 'producer', '-o', 'jsonpath={.status.conditions[?(@.type=="ScalingActive")].message}']),
    );
    this.report.log(`producer HPA ScalingActive: ${hpa.stdout.trim() || hpa.stderr.trim()}`);
    const consumers = await this.app('consumer');
    const deployment = JSON.parse(await this.kubectl(this.ns(['get', 'deployment', 'consumer', '-o', 'json']))) as {
      spec: { replicas?: number };
    };
    const so = JSON.parse(await this.kubectl(this.ns(['get', 'scaledobject', 'consumer', '-o', 'json']))) as {
      spec: { minReplicaCount?: number };
      status?: unknown;
    };
    const pdb = (await this.pdbs()).find((p) => p.metadata.name === 'consumer');
    this.report.check(
      'kubernetes prod: without the KEDA operator the consumer runs 1 pod, and its PDB allows no disruption',
      consumers.length === 1 &&
        deployment.spec.replicas === 1 &&
        so.status === undefined &&
        pdb?.status?.disruptionsAllowed === 0,
      `Deployment replicas ${deployment.spec.replicas} (defaulted; the manifest leaves them to KEDA), ScaledObject minReplicaCount ${so.spec.minReplicaCount}, status ${so.status === undefined ? 'none (no operator)' : JSON.stringify(so.status)}; PDB consumer minAvailable ${pdb?.spec.minAvailable}, currentHealthy ${pdb?.status?.currentHealthy}, disruptionsAllowed ${pdb?.status?.disruptionsAllowed}`,
    );
  }

  /** `kubectl drain` as an operator runs it; resolves with its exit code and output. */
  private drain(node: string, timeoutSeconds: number) {
    return this.cluster.kubectlRun(
      ['drain', node, '--ignore-daemonsets', '--delete-emptydir-data', `--timeout=${timeoutSeconds}s`],
      { timeoutMs: (timeoutSeconds + 30) * 1000 },
    );
  }

  private async settle(what: string, expectedConsumers: number): Promise<void> {
    await waitFor(
      what,
      120_000,
      async () => {
        const all = await this.pods();
        const consumers = all.filter((p) => p.metadata.labels?.['app.kubernetes.io/name'] === 'consumer');
        const ok =
          consumers.length === expectedConsumers &&
          all.every((p) => p.status.phase === 'Succeeded' || (p.status.phase === 'Running' && ready(p)));
        return ok ? true : undefined;
      },
      2000,
    );
  }

  /**
   * The node of the single consumer is drained with a timeout: the eviction API refuses the consumer (its PDB
   * wants 3 healthy pods and has 1), evicts the rest (their PDBs allow 1 unavailable), and no PDB goes below what it
   * guarantees. The refusal is then asked for directly, for the PDB it names.
   */
  async drainRefused(): Promise<void> {
    const [consumer] = await this.app('consumer');
    const node = consumer?.spec.nodeName;
    if (consumer === undefined || node === undefined) throw new Error('no scheduled consumer pod');
    const before = (await this.pods()).filter((p) => p.spec.nodeName === node && p.status.phase === 'Running');
    const watch = new PdbWatch(() => this.pdbs());
    await watch.start();
    const t0 = Date.now();
    const r = await this.drain(node, 20);
    const seconds = ((Date.now() - t0) / 1000).toFixed(0);
    await sleep(2000);
    await watch.stop();
    const out = `${r.stdout}\n${r.stderr}`;
    const refusals = out.split('\n').filter((l) => l.includes(consumer.metadata.name) && /disruption budget/.test(l));
    this.report.check(
      `kubernetes prod: kubectl drain ${node} (20 s timeout) fails: every eviction of the consumer is refused for its disruption budget`,
      r.code !== 0 && refusals.length > 0,
      `exit ${r.code} after ${seconds} s, ${refusals.length} refusals: ${(refusals[0] ?? out.trim().split('\n').pop() ?? '').trim()}`,
    );
    const after = await this.pods();
    const left = after.filter((p) => p.spec.nodeName === node).map((p) => p.metadata.name);
    const evicted = before.filter((p) => !left.includes(p.metadata.name)).map((p) => p.metadata.name);
    this.report.check(
      `kubernetes prod: the drain evicted every other pod of ${node} and left the consumer running there`,
      left.length === 1 && left[0] === consumer.metadata.name && evicted.length === before.length - 1,
      `evicted ${evicted.join(', ') || 'none'}; left on ${node}: ${left.join(', ') || 'none'}`,
    );
    const eviction = await this.cluster.api(
      'POST',
      `/api/v1/namespaces/${this.namespace}/pods/${consumer.metadata.name}/eviction`,
      {
        apiVersion: 'policy/v1',
        kind: 'Eviction',
        metadata: { name: consumer.metadata.name, namespace: this.namespace },
      },
    );
    const causes = (o(eviction.body.details).causes ?? []) as { reason?: string; message?: string }[];
    const cause = causes.find((c) => c.reason === 'DisruptionBudget');
    this.report.check(
      'kubernetes prod: the eviction API refuses the consumer with 429, naming PodDisruptionBudget consumer',
      eviction.code === 429 && /disruption budget consumer\b/.test(cause?.message ?? ''),
      `${eviction.code} ${typeof eviction.body.message === 'string' ? eviction.body.message : ''} (${cause?.reason ?? '?'}: ${cause?.message ?? 'no cause'})`,
    );
    const violations = watch.violations();
    this.report.check(
      'kubernetes prod: no PodDisruptionBudget went below what it guarantees during the refused drain',
      violations.length === 0,
      violations.length === 0 ? `lowest currentHealthy: ${watch.describe()}` : violations.join('; '),
    );
    const stateful = after.filter(
      (p) => /^(mongo|rabbitmq)-\d+$/.test(p.metadata.name) && p.spec.nodeName === undefined,
    );
    this.report.log(
      `after the drain: ${stateful.map((p) => `${p.metadata.name} Pending (its local volume is on the cordoned ${node})`).join(', ') || 'no stateful pod pending'}; producers ${show(perNode(await this.app('producer')))}`,
    );
    await this.kubectl(['uncordon', node]);
  }

  /**
   * With the consumer at the ScaledObject's `minReplicaCount` (what the KEDA operator keeps it at; scaled by hand
   * here), draining the node with the most consumers completes, and no PDB goes below what it guarantees.
   */
  async drainAtMinReplicas(): Promise<void> {
    const so = this.manifest.objects.find((x) => x.kind === 'ScaledObject');
    const min = Number(o(so?.spec).minReplicaCount ?? 1);
    await this.settle('the pods the first drain evicted to be Running again after uncordon', 1);
    await this.kubectl(this.ns(['scale', 'deployment/consumer', `--replicas=${min}`]));
    await this.settle(`${min} consumers Running`, min);
    const consumers = await this.app('consumer');
    const counts = perNode(consumers);
    const fake = [...counts].map(([, c]) => c);
    this.report.check(
      `kubernetes prod: ${min} consumers (the ScaledObject's minReplicaCount, scaled as KEDA would) spread with skew ≤ 1`,
      consumers.length === min && Math.max(...fake) - Math.min(...fake) <= 1,
      show(counts),
    );
    const node = [...counts].sort((x, y) => y[1] - x[1])[0]?.[0] ?? FAKE_NODES[0]?.name ?? '';
    const before = (await this.pods()).filter((p) => p.spec.nodeName === node && p.status.phase === 'Running');
    const watch = new PdbWatch(() => this.pdbs());
    await watch.start();
    const t0 = Date.now();
    const r = await this.drain(node, 120);
    const seconds = ((Date.now() - t0) / 1000).toFixed(0);
    await sleep(2000);
    await watch.stop();
    const refused = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => /disruption budget/.test(l)).length;
    this.report.check(
      `kubernetes prod: kubectl drain ${node} completes with ${counts.get(node)} of the ${min} consumers on it`,
      r.code === 0,
      `exit ${r.code} after ${seconds} s; evicted ${before.map((p) => p.metadata.name).join(', ')}; ${refused} evictions refused and retried while a PDB was at its minimum${r.code === 0 ? '' : `; ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`}`,
    );
    const violations = watch.violations();
    this.report.check(
      'kubernetes prod: no PodDisruptionBudget went below what it guarantees during the drain',
      violations.length === 0,
      violations.length === 0 ? `lowest currentHealthy: ${watch.describe()}` : violations.join('; '),
    );
    await waitFor(`${min} consumers Running off ${node}`, 60_000, async () => {
      const c = (await this.app('consumer')).filter((p) => p.status.phase === 'Running' && ready(p));
      return c.length === min ? c : undefined;
    }).catch(() => undefined);
    const afterConsumers = await this.app('consumer');
    this.report.check(
      `kubernetes prod: after the drain ${min} consumers run on the other nodes, none on ${node}`,
      afterConsumers.length === min &&
        afterConsumers.every((p) => p.spec.nodeName !== node && p.status.phase === 'Running'),
      show(perNode(afterConsumers)),
    );
  }

  /** Deletes the namespace (kwok finishes the pods) and the fake nodes; returns what is left. */
  async tearDown(): Promise<string[]> {
    const left: string[] = [];
    if (this.applied) {
      const r = await this.cluster.kubectlRun(['delete', 'namespace', this.namespace, '--timeout=120s'], {
        timeoutMs: 130_000,
      });
      if (r.code !== 0 && !/NotFound/.test(r.stderr)) left.push(`namespace ${this.namespace}: ${r.stderr.trim()}`);
    }
    if (this.nodesMade) {
      const r = await this.cluster.kubectlRun(['delete', 'node', '-l', FAKE_NODE_LABEL, '--timeout=60s']);
      if (r.code !== 0) left.push(`fake nodes: ${r.stderr.trim()}`);
    }
    const nodes = await this.cluster.kubectlRun(['get', 'nodes', '-l', FAKE_NODE_LABEL, '-o', 'name']);
    if (nodes.stdout.trim() !== '') left.push(nodes.stdout.trim().replace(/\n/g, ' '));
    return left;
  }
}

/** The KEDA CRDs shipped in the KEDA module (`config/crd/bases`), fetched through the Go module proxy. */
export async function kedaCrdDirectory(version: string, cwd: string): Promise<string> {
  const out = await check('go', ['mod', 'download', '-json', `github.com/kedacore/keda/v2@${version}`], {
    cwd,
    env: { ...process.env, GOFLAGS: '', GOTOOLCHAIN: 'local' },
    timeoutMs: 600_000,
  });
  const dir = (JSON.parse(out) as { Dir?: string; Error?: string }).Dir;
  if (dir === undefined) throw new Error(`go mod download github.com/kedacore/keda/v2@${version}: ${out.trim()}`);
  return join(dir, 'config', 'crd', 'bases');
}
