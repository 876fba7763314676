/**
 * The Kubernetes chart of one environment: a cdk8s Chart built from the resolved model only.
 */
import { createHash } from 'node:crypto';
import { ApiObject, App, Chart } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import type { ResolvedService, ResolvedSystem } from '../model';
import type { Gap } from '../output/types';
import { INGRESS_CONTROLLER, MONGO_INIT_NAME, networkPolicies } from './network';
import {
  containerPorts,
  containerSecurityContext,
  labelsFor,
  memoryEmptyDir,
  meta,
  PART_OF,
  placement,
  podSecurityContext,
  probes,
  PULL_POLICY,
  resources,
  scratchVolumes,
  secretFiles,
  serviceLabels,
  SECRET_KEY,
} from './pod';
import {
  headlessName,
  KEYFILE_DIR,
  keyfileScript,
  keyfileSource,
  mongodReplicaSetCommand,
  mongoReplicaSetUrl,
  peerDiscovery,
  RABBITMQ_PEER_PORTS,
  rabbitmqConf,
  rabbitmqPlugins,
  replicaSetInitScript,
} from './stateful';

/** The queue the consumers drain; KEDA scales on its depth. Named by the services (`QUEUE_PREFIX` + `.work`). */
export const WORK_QUEUE = 'jobs.work';

/**
 * A finished replica-set initiation Job is deleted after this long: long enough to read its logs, short enough that
 * the Jobs of earlier revisions (see `replicaSetJob`) do not accumulate.
 */
export const MONGO_INIT_TTL_SECONDS = 3600;

/** Rollout pacing shared by every workload. */
const MIN_READY_SECONDS = 10;
const PROGRESS_DEADLINE_SECONDS = 600;
const REVISION_HISTORY_LIMIT = 5;

/** What building a chart found besides the objects. */
export interface ChartReport {
  readonly gaps: Gap[];
  readonly warnings: string[];
  readonly errors: string[];
}

/**
 * Problems that make the model impossible to deploy as a Kubernetes cluster; each names the path, the value and
 * what is expected. Checked before anything is built.
 */
export function kubernetesErrors(system: ResolvedSystem): string[] {
  const errors: string[] = [];
  for (const s of system.services) {
    if (s.kind === 'broker' && s.replicas > 1 && s.replicas % 2 === 0) {
      errors.push(
        `[${s.path}] replicas: got ${s.replicas}, expected 1 or an odd number ≥ 3: quorum queues need a majority of the RabbitMQ nodes, ` +
          `so ${s.replicas} nodes tolerate ${tolerated(s.replicas)}, no more than ${s.replicas - 1} would`,
      );
    }
    if (s.kind === 'database' && s.replicas > 1) {
      if (s.replicas % 2 === 0) {
        errors.push(
          `[${s.path}] replicas: got ${s.replicas}, expected 1 or an odd number ≥ 3: a MongoDB replica set needs a majority of its voting members to elect a primary, ` +
            `so ${s.replicas} members tolerate ${tolerated(s.replicas)}, no more than ${s.replicas - 1} would`,
        );
      } else if (s.replicas > 7) {
        errors.push(
          `[${s.path}] replicas: got ${s.replicas}, expected at most 7 (a MongoDB replica set has at most 7 voting members)`,
        );
      }
      if (keyfileSource(system) === null) {
        errors.push(
          `[${s.path}] secrets: got no "${system.database.serviceName}-keyfile" and no "${system.database.passwordSecret}" secret, expected one of them ` +
            `because a ${s.replicas}-member replica set with authentication needs a key file`,
        );
      }
    }
  }
  return errors;
}

/** How many members a majority-based cluster of `n` can lose: `1 failure`, `0 failures`. */
function tolerated(n: number): string {
  const f = Math.floor((n - 1) / 2);
  return `${f} failure${f === 1 ? '' : 's'}`;
}

/** `$(NAME)` in a container command is expanded by the kubelet; `$$` keeps a shell's `$(…)` literal. */
function escapeKubelet(args: readonly string[]): string[] {
  return args.map((a) => a.replace(/\$\(/g, '$$$$('));
}

class Builder {
  private readonly broker: ResolvedService;
  private readonly database: ResolvedService;
  public readonly report: ChartReport = { gaps: [], warnings: [], errors: [] };

  public constructor(
    private readonly scope: Construct,
    private readonly system: ResolvedSystem,
  ) {
    this.broker = this.byKind('broker');
    this.database = this.byKind('database');
  }

  private byKind(kind: 'broker' | 'database'): ResolvedService {
    const s = this.system.services.find((x) => x.kind === kind);
    if (!s) throw new Error(`[${this.system.path}] the resolved model has no ${kind}`);
    return s;
  }

  private get ns(): string {
    return this.system.namespace;
  }

  private kedaScales(s: ResolvedService): boolean {
    return s.kind === 'consumer' && s.autoscaling !== null && s.autoscaling.queueLengthPerReplica !== null;
  }

  public build(): void {
    const system = this.system;
    // Pod Security admission enforces "restricted" on everything in the namespace; audit and warn say the same.
    // @see https://kubernetes.io/docs/concepts/security/pod-security-admission/
    new k8s.KubeNamespace(this.scope, 'namespace', {
      metadata: {
        name: this.ns,
        labels: {
          'app.kubernetes.io/part-of': PART_OF,
          'pod-security.kubernetes.io/audit': 'restricted',
          'pod-security.kubernetes.io/enforce': 'restricted',
          'pod-security.kubernetes.io/enforce-version': 'v1.28',
          'pod-security.kubernetes.io/warn': 'restricted',
        },
      },
    });

    this.rabbitmq();
    this.mongo();
    const clients = system.services.filter((s) => s.kind === 'producer' || s.kind === 'consumer');
    for (const s of clients) this.stateless(s);

    const facts = {
      clients,
      broker: this.broker,
      database: this.database,
      producerIngress: system.ingressHost !== null,
      kedaScalesOnQueue: clients.some((s) => this.kedaScales(s)),
      brokerNeedsApi: this.broker.replicas > 1 && peerDiscovery(this.broker) === 'api',
    };
    for (const props of networkPolicies(system, facts)) {
      new k8s.KubeNetworkPolicy(this.scope, `netpol-${props.metadata?.name}`, props);
    }

    for (const s of system.services) {
      for (const p of s.publishedPorts) {
        this.report.warnings.push(
          `${s.path} publishes ${p.hostIp}:${p.hostPort}→${p.containerPort} on the host elsewhere; Kubernetes publishes no host ports: ` +
            `kubectl -n ${this.ns} port-forward ${s.kind === 'consumer' ? 'deployment' : 'svc'}/${s.name} ${p.hostPort}:${p.containerPort}`,
        );
      }
      if (s.image.kind === 'build' && s.image.repository === null) {
        this.report.warnings.push(
          `${s.path} image ${s.image.reference} is only built locally; load it into the cluster's nodes (kind load docker-image / minikube image load) or give ImageSource.build a repository`,
        );
      }
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Shared pieces
  // -------------------------------------------------------------------------------------------------------------

  /** The ConfigMap with a service's plain environment (secret file paths included; never a secret value). */
  private envConfigMap(s: ResolvedService, overrides: Record<string, string>): string {
    const name = `${s.name}-env`;
    const data: Record<string, string> = {};
    for (const e of s.env) data[e.name] = e.value;
    for (const use of s.secrets) data[use.fileEnv] = use.path;
    Object.assign(data, overrides);
    new k8s.KubeConfigMap(this.scope, name, {
      metadata: meta(this.system, name, serviceLabels(s)),
      data: sortRecord(data),
    });
    return name;
  }

  private container(
    s: ResolvedService,
    parts: {
      configMap: string;
      env?: k8s.EnvVar[];
      command?: readonly string[];
      mounts: k8s.VolumeMount[];
      readinessOnly: boolean;
    },
  ): k8s.Container {
    const command = parts.command ?? s.command;
    return {
      name: s.name,
      image: s.image.reference,
      imagePullPolicy: PULL_POLICY,
      command: command.length > 0 ? escapeKubelet(command) : undefined,
      env: parts.env,
      envFrom: [{ configMapRef: { name: parts.configMap } }],
      ports: containerPorts(s),
      resources: resources(s),
      securityContext: containerSecurityContext(s.security.user, s.security.group, s.security.readOnlyRootFilesystem),
      volumeMounts: sortMounts(parts.mounts),
      ...probes(s, parts.readinessOnly),
    };
  }

  /**
   * An init container of a service: same image, user, limits and restrictions as the service itself, including
   * its writable scratch paths (`/tmp`), since its root filesystem is read-only too.
   */
  private initContainer(s: ResolvedService, name: string, script: string, mounts: k8s.VolumeMount[]): k8s.Container {
    return {
      name,
      image: s.image.reference,
      imagePullPolicy: PULL_POLICY,
      command: ['sh', '-c', ...escapeKubelet([script])],
      resources: resources(s),
      securityContext: containerSecurityContext(s.security.user, s.security.group, true),
      volumeMounts: sortMounts([...mounts, ...scratchVolumes(s).mounts]),
    };
  }

  private podSpec(
    s: ResolvedService,
    spec: Omit<k8s.PodSpec, 'securityContext' | 'terminationGracePeriodSeconds'>,
  ): k8s.PodSpec {
    return {
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      ...placement(this.system, s),
      securityContext: podSecurityContext(s.security.user, s.security.group),
      terminationGracePeriodSeconds: s.terminationGracePeriodSeconds,
      ...spec,
      volumes: spec.volumes ? sortVolumes(spec.volumes) : undefined,
    };
  }

  /**
   * PodDisruptionBudget for a workload that runs more than one pod: voluntary disruptions (drains) take one pod at
   * a time (`maxUnavailable: 1`, relative to the current scale).
   *
   * A KEDA-scaled Deployment is the exception. Its manifest has no `replicas` (the scaler owns them), so until the
   * KEDA operator has reconciled the ScaledObject it runs the API default of one pod, and `maxUnavailable: 1` would
   * let a drain evict that last pod. Its budget is therefore absolute and tied to the model's minimum
   * (`minAvailable: minReplicas - 1`): at the minimum it allows one eviction as before, and below it (no operator)
   * it allows none, so a drain waits (and shows why) instead of stopping every consumer. The HPA of the producer
   * needs no such care: the HorizontalPodAutoscaler controller is part of Kubernetes and raises the Deployment to
   * `minReplicas` even without metrics.
   *
   * @see https://kubernetes.io/docs/tasks/run-application/configure-pdb/#think-about-how-your-application-reacts-to-disruptions
   */
  private disruptionBudget(s: ResolvedService): void {
    const min = s.autoscaling ? s.autoscaling.minReplicas : s.replicas;
    if (min < 2) return;
    const budget = this.kedaScales(s)
      ? { minAvailable: k8s.IntOrString.fromNumber(min - 1) }
      : { maxUnavailable: k8s.IntOrString.fromNumber(1) };
    new k8s.KubePodDisruptionBudget(this.scope, `${s.name}-pdb`, {
      metadata: meta(this.system, s.name, serviceLabels(s)),
      spec: { ...budget, selector: { matchLabels: serviceLabels(s) } },
    });
  }

  private clientService(s: ResolvedService, name: string): void {
    new k8s.KubeService(this.scope, `${name}-service`, {
      metadata: meta(this.system, name, serviceLabels(s)),
      spec: {
        type: 'ClusterIP',
        selector: serviceLabels(s),
        ports: s.ports.map((p) => ({
          name: p.name,
          port: p.containerPort,
          targetPort: k8s.IntOrString.fromString(p.name),
          protocol: 'TCP',
        })),
      },
    });
  }

  private headlessService(s: ResolvedService, ports: k8s.ServicePort[]): void {
    new k8s.KubeService(this.scope, `${s.name}-headless-service`, {
      metadata: meta(this.system, headlessName(s.name), serviceLabels(s)),
      spec: {
        clusterIp: 'None',
        // Members must resolve each other while they start, before they are ready.
        publishNotReadyAddresses: true,
        selector: serviceLabels(s),
        ports,
      },
    });
  }

  private statefulSet(s: ResolvedService, pod: k8s.PodSpec): void {
    const labels = serviceLabels(s);
    const claims = s.volumeMounts.map((m) => {
      const volume = this.system.volumes.find((v) => v.name === m.volume);
      if (!volume) throw new Error(`[${s.path}] volumeMounts: got ${m.volume}, expected a declared volume`);
      return volume;
    });
    const retain = claims.every((v) => v.retain) ? 'Retain' : 'Delete';
    new k8s.KubeStatefulSet(this.scope, s.name, {
      metadata: meta(this.system, s.name, labels),
      spec: {
        serviceName: headlessName(s.name),
        replicas: s.replicas,
        podManagementPolicy: 'OrderedReady',
        minReadySeconds: MIN_READY_SECONDS,
        revisionHistoryLimit: REVISION_HISTORY_LIMIT,
        updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 0 } },
        persistentVolumeClaimRetentionPolicy: { whenDeleted: retain, whenScaled: retain },
        selector: { matchLabels: labels },
        template: { metadata: { labels }, spec: pod },
        // The data volumes: one PersistentVolumeClaim per pod, from the model's volume sizes.
        volumeClaimTemplates: claims.map((v) => ({
          metadata: { name: v.name, labels },
          spec: {
            accessModes: ['ReadWriteOnce'],
            resources: { requests: { storage: k8s.Quantity.fromString(v.size.toKubernetes()) } },
          },
        })),
      },
    });
    this.disruptionBudget(s);
  }

  // -------------------------------------------------------------------------------------------------------------
  // RabbitMQ
  // -------------------------------------------------------------------------------------------------------------

  /**
   * RabbitMQ as a StatefulSet. Runs as the image's own `rabbitmq` user (uid/gid 999, the model's value): the
   * image's directories and Erlang's cookie checks assume that owner; `fsGroup` 999 makes the volume writable.
   * Probes: readiness only. RabbitMQ's guidance is that liveness probes restart nodes that are merely busy (long
   * boot, queue sync, partitions), which makes things worse, so there is no liveness or startup probe.
   *
   * @see https://www.rabbitmq.com/blog/2020/08/10/deploying-rabbitmq-to-kubernetes-whats-involved
   * @see https://www.rabbitmq.com/docs/monitoring#health-checks
   * @see https://www.rabbitmq.com/docs/cluster-formation#peer-discovery-k8s
   */
  private rabbitmq(): void {
    const s = this.broker;
    const system = this.system;
    const clustered = s.replicas > 1;
    const discovery = peerDiscovery(s);
    const configName = `${s.name}-config`;
    new k8s.KubeConfigMap(this.scope, configName, {
      metadata: meta(system, configName, serviceLabels(s)),
      data: { enabled_plugins: rabbitmqPlugins(system, s), 'rabbitmq.conf': rabbitmqConf(system, s) },
    });
    const envName = this.envConfigMap(s, {});
    const secrets = secretFiles(s.secrets);
    const scratch = scratchVolumes(s);
    const dataMounts = s.volumeMounts.map((m) => ({ name: m.volume, mountPath: m.path }));
    const dataDir = s.volumeMounts[0]?.path ?? '/var/lib/rabbitmq';

    const initContainers: k8s.Container[] = [];
    const volumes: k8s.Volume[] = [
      ...secrets.volumes,
      ...scratch.volumes,
      { name: 'config', configMap: { name: configName, defaultMode: 0o444 } },
    ];
    const cookie = system.broker.erlangCookieSecret;
    if (system.secrets.some((x) => x.name === cookie)) {
      // The cookie must be a file only its owner can read; a Secret volume is owned by root, so copy it into the
      // home directory (the data volume) where RabbitMQ and its CLI tools look for it.
      // @see https://www.rabbitmq.com/docs/clustering#erlang-cookie
      const cookieFiles = secretFiles([{ secret: cookie, path: `/run/secrets/${cookie}` }], 'erlang-cookie');
      volumes.push(...cookieFiles.volumes);
      const target = `${dataDir}/.erlang.cookie`;
      initContainers.push(
        this.initContainer(
          s,
          'erlang-cookie',
          `set -eu; rm -f ${target}; cp /run/secrets/${cookie} ${target}; chmod 0400 ${target}`,
          [...cookieFiles.mounts, ...dataMounts],
        ),
      );
    }

    const env: k8s.EnvVar[] = clustered
      ? [
          { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
          { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
          { name: 'RABBITMQ_USE_LONGNAME', value: 'true' },
          // Node names the peers can resolve through the headless Service.
          { name: 'RABBITMQ_NODENAME', value: `rabbit@$(POD_NAME).${headlessName(s.name)}.$(POD_NAMESPACE)` },
        ]
      : [];

    const usesApi = clustered && discovery === 'api';
    if (usesApi) {
      new k8s.KubeServiceAccount(this.scope, 'rabbitmq-sa', {
        metadata: meta(system, s.name, serviceLabels(s)),
        automountServiceAccountToken: false,
      });
      new k8s.KubeRole(this.scope, 'rabbitmq-role', {
        metadata: meta(system, s.name, serviceLabels(s)),
        rules: [{ apiGroups: [''], resources: ['endpoints'], verbs: ['get'] }],
      });
      new k8s.KubeRoleBinding(this.scope, 'rabbitmq-rolebinding', {
        metadata: meta(system, s.name, serviceLabels(s)),
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: s.name },
        subjects: [{ kind: 'ServiceAccount', name: s.name, namespace: this.ns }],
      });
    }

    const pod = this.podSpec(s, {
      // Only RabbitMQ < 4.1 peer discovery reads the API; it is then the only pod with a token.
      automountServiceAccountToken: usesApi,
      serviceAccountName: usesApi ? s.name : undefined,
      initContainers,
      containers: [
        this.container(s, {
          configMap: envName,
          env,
          mounts: [
            ...secrets.mounts,
            ...scratch.mounts,
            ...dataMounts,
            { name: 'config', mountPath: '/etc/rabbitmq', readOnly: true },
          ],
          readinessOnly: true,
        }),
      ],
      volumes,
    });
    this.statefulSet(s, pod);

    this.clientService(s, s.name);
    this.headlessService(s, [
      {
        name: 'epmd',
        port: RABBITMQ_PEER_PORTS.epmd,
        targetPort: k8s.IntOrString.fromNumber(RABBITMQ_PEER_PORTS.epmd),
        protocol: 'TCP',
      },
      {
        name: 'amqp',
        port: system.broker.amqpPort,
        targetPort: k8s.IntOrString.fromNumber(system.broker.amqpPort),
        protocol: 'TCP',
      },
      {
        name: 'clustering',
        port: RABBITMQ_PEER_PORTS.clustering,
        targetPort: k8s.IntOrString.fromNumber(RABBITMQ_PEER_PORTS.clustering),
        protocol: 'TCP',
      },
    ]);
  }

  // -------------------------------------------------------------------------------------------------------------
  // MongoDB
  // -------------------------------------------------------------------------------------------------------------

  /**
   * MongoDB as a StatefulSet, as the image's own `mongodb` user (uid/gid 999, the model's value, which owns the
   * image's data directories). With more than one replica: a replica set with key file authentication and a Job
   * that initiates it once.
   *
   * @see https://www.mongodb.com/docs/manual/tutorial/deploy-replica-set-with-keyfile-access-control/
   * @see https://hub.docker.com/_/mongo
   */
  private mongo(): void {
    const s = this.database;
    const system = this.system;
    const replicated = s.replicas > 1;
    const envName = this.envConfigMap(s, {});
    const secrets = secretFiles(s.secrets);
    const scratch = scratchVolumes(s);
    const dataMounts = s.volumeMounts.map((m) => ({ name: m.volume, mountPath: m.path }));
    const volumes: k8s.Volume[] = [...secrets.volumes, ...scratch.volumes];
    const mounts: k8s.VolumeMount[] = [...secrets.mounts, ...scratch.mounts, ...dataMounts];
    const initContainers: k8s.Container[] = [];
    let command: readonly string[] | undefined;

    const source = keyfileSource(system);
    if (replicated && source !== null) {
      if (source.derived) {
        this.report.warnings.push(
          `${s.path} replica set key file is derived from the "${source.secret}" secret; declare a "${system.database.serviceName}-keyfile" secret to use an independent key`,
        );
      }
      const keyFiles = secretFiles(
        [{ secret: source.secret, path: `/run/secrets/${source.secret}` }],
        'keyfile-source',
      );
      volumes.push(...keyFiles.volumes, {
        name: 'keyfile',
        emptyDir: { medium: 'Memory', sizeLimit: k8s.Quantity.fromString('1Mi') },
      });
      initContainers.push(
        this.initContainer(s, 'keyfile', keyfileScript(source), [
          ...keyFiles.mounts,
          { name: 'keyfile', mountPath: KEYFILE_DIR },
        ]),
      );
      mounts.push({ name: 'keyfile', mountPath: KEYFILE_DIR, readOnly: true });
      command = mongodReplicaSetCommand(system);
    }

    const pod = this.podSpec(s, {
      initContainers,
      containers: [this.container(s, { configMap: envName, command, mounts, readinessOnly: false })],
      volumes,
    });
    this.statefulSet(s, pod);
    this.clientService(s, s.name);
    this.headlessService(s, [
      {
        name: 'mongodb',
        port: system.database.port,
        targetPort: k8s.IntOrString.fromNumber(system.database.port),
        protocol: 'TCP',
      },
    ]);
    if (replicated && source !== null) this.replicaSetJob(s);
  }

  /**
   * The Job that initiates the replica set. Idempotent (see the script) and bounded (backoffLimit, deadline).
   *
   * A Job's pod template is immutable, so a Job of a fixed name could never follow a change of the mongo image,
   * its resources or its script: `kubectl apply` would fail with `spec.template: … field is immutable` for as long
   * as the old Job exists. The name therefore ends in a hash of everything the Job runs ({@link jobRevision}): a
   * changed template is a new Job, which `kubectl apply` creates (and which finds the replica set initiated and
   * exits 0), while an unchanged one keeps its name and applies as a no-op. Finished Jobs delete themselves after
   * `ttlSecondsAfterFinished`, so old revisions do not pile up; until then `kubectl logs job/<name>` still works.
   * Selectors (NetworkPolicy, `kubectl wait -l`) use its labels, which never change. It has no probes: it is a
   * one-shot task, not a service.
   *
   * @see https://kubernetes.io/docs/concepts/workloads/controllers/job/#ttl-mechanism-for-finished-jobs
   */
  private replicaSetJob(s: ResolvedService): void {
    const system = this.system;
    const labels = labelsFor(MONGO_INIT_NAME, 'database-init');
    const script = replicaSetInitScript(system, s.replicas);
    new k8s.KubeConfigMap(this.scope, `${MONGO_INIT_NAME}-script`, {
      metadata: meta(system, MONGO_INIT_NAME, labels),
      data: { 'initiate.js': script },
    });
    const secrets = secretFiles([
      { secret: system.database.passwordSecret, path: `/run/secrets/${system.database.passwordSecret}` },
    ]);
    const host = `${s.name}-0.${headlessName(s.name)}.${this.ns}.svc:${system.database.port}`;
    const template: k8s.PodTemplateSpec = {
      metadata: { labels },
      spec: {
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        restartPolicy: 'Never',
        securityContext: podSecurityContext(s.security.user, s.security.group),
        containers: [
          {
            name: 'initiate',
            image: s.image.reference,
            imagePullPolicy: PULL_POLICY,
            command: [
              'mongosh',
              '--quiet',
              '--norc',
              `mongodb://${host}/admin?directConnection=true`,
              '--file',
              '/scripts/initiate.js',
            ],
            // mongosh keeps history and logs under $HOME; the root filesystem is read-only.
            env: [{ name: 'HOME', value: '/tmp' }],
            resources: resources(s),
            securityContext: containerSecurityContext(s.security.user, s.security.group, true),
            volumeMounts: sortMounts([
              ...secrets.mounts,
              { name: 'scripts', mountPath: '/scripts', readOnly: true },
              { name: 'tmp', mountPath: '/tmp' },
            ]),
          },
        ],
        volumes: sortVolumes([
          ...secrets.volumes,
          { name: 'scripts', configMap: { name: MONGO_INIT_NAME, defaultMode: 0o444 } },
          { name: 'tmp', emptyDir: memoryEmptyDir(s) },
        ]),
      },
    };
    const name = `${MONGO_INIT_NAME}-${jobRevision(template, { 'initiate.js': script })}`;
    new k8s.KubeJob(this.scope, MONGO_INIT_NAME, {
      metadata: meta(system, name, labels),
      spec: {
        backoffLimit: 6,
        activeDeadlineSeconds: 900,
        ttlSecondsAfterFinished: MONGO_INIT_TTL_SECONDS,
        template,
      },
    });
  }

  // -------------------------------------------------------------------------------------------------------------
  // Producer and consumers
  // -------------------------------------------------------------------------------------------------------------

  private stateless(s: ResolvedService): void {
    const system = this.system;
    const labels = serviceLabels(s);
    for (const m of s.volumeMounts) {
      this.report.gaps.push({
        target: 'kubernetes',
        feature: 'volume-on-stateless-service',
        path: s.path,
        detail: `cannot mount the persistent volume "${m.volume}" into the replicated Deployment ${s.name} (each replica would need its own claim)`,
      });
    }
    const overrides: Record<string, string> = {};
    if (this.database.replicas > 1 && s.env.some((e) => e.name === 'MONGO_URL')) {
      overrides.MONGO_URL = mongoReplicaSetUrl(system, this.database.replicas);
    }
    if (this.kedaScales(s)) {
      // KEDA reads the AMQP user name from the scaled container's environment (TriggerAuthentication `env`).
      overrides.AMQP_USERNAME = system.broker.username;
    }
    const envName = this.envConfigMap(s, overrides);
    const secrets = secretFiles(s.secrets);
    const scratch = scratchVolumes(s);
    const autoscaled = s.autoscaling !== null;
    new k8s.KubeDeployment(this.scope, s.name, {
      metadata: meta(system, s.name, labels),
      spec: {
        // An autoscaler owns the replica count; writing it here would fight the autoscaler on every apply.
        replicas: autoscaled ? undefined : s.replicas,
        minReadySeconds: MIN_READY_SECONDS,
        progressDeadlineSeconds: PROGRESS_DEADLINE_SECONDS,
        revisionHistoryLimit: REVISION_HISTORY_LIMIT,
        strategy: {
          type: 'RollingUpdate',
          rollingUpdate: { maxSurge: k8s.IntOrString.fromString('25%'), maxUnavailable: k8s.IntOrString.fromNumber(0) },
        },
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: this.podSpec(s, {
            containers: [
              this.container(s, {
                configMap: envName,
                mounts: [...secrets.mounts, ...scratch.mounts],
                readinessOnly: false,
              }),
            ],
            volumes: [...secrets.volumes, ...scratch.volumes],
          }),
        },
      },
    });
    this.disruptionBudget(s);

    if (s.kind === 'producer') {
      this.clientService(s, s.name);
      if (system.ingressHost !== null) {
        const http = s.ports.find((p) => p.name === 'http') ?? s.ports[0];
        const tls = system.ingressTls;
        // ingress-nginx redirects HTTP to HTTPS (308) once a host has TLS; force-ssl-redirect says so explicitly
        // and keeps the redirect when TLS is terminated in front of the controller.
        // @see https://kubernetes.github.io/ingress-nginx/user-guide/nginx-configuration/annotations/#server-side-https-enforcement-through-redirect
        const annotations: Record<string, string> =
          tls === null
            ? {}
            : {
                'nginx.ingress.kubernetes.io/force-ssl-redirect': 'true',
                ...(tls.clusterIssuer !== null ? { 'cert-manager.io/cluster-issuer': tls.clusterIssuer } : {}),
              };
        new k8s.KubeIngress(this.scope, `${s.name}-ingress`, {
          metadata: {
            ...meta(system, s.name, labels),
            ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
          },
          spec: {
            ingressClassName: INGRESS_CONTROLLER.className,
            ...(tls !== null ? { tls: [{ hosts: [system.ingressHost], secretName: tls.secretName }] } : {}),
            rules: [
              {
                host: system.ingressHost,
                http: {
                  paths: [
                    {
                      path: '/',
                      pathType: 'Prefix',
                      backend: { service: { name: s.name, port: { name: http?.name } } },
                    },
                  ],
                },
              },
            ],
          },
        });
      }
    }
    this.autoscaler(s);
  }

  /**
   * HorizontalPodAutoscaler on CPU, or for a consumer with a queue length per replica a KEDA ScaledObject on the
   * work queue's depth (KEDA creates and owns the HPA itself).
   *
   * @see https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/
   * @see https://keda.sh/docs/latest/scalers/rabbitmq-queue/
   * @see https://keda.sh/docs/latest/concepts/authentication/
   */
  private autoscaler(s: ResolvedService): void {
    const a = s.autoscaling;
    if (a === null) return;
    const system = this.system;
    const labels = serviceLabels(s);
    if (this.kedaScales(s) && a.queueLengthPerReplica !== null) {
      const authName = `${s.name}-rabbitmq`;
      new ApiObject(this.scope, `${s.name}-trigger-auth`, {
        apiVersion: 'keda.sh/v1alpha1',
        kind: 'TriggerAuthentication',
        metadata: meta(system, authName, labels),
        spec: {
          env: [{ parameter: 'username', name: 'AMQP_USERNAME', containerName: s.name }],
          secretTargetRef: [{ parameter: 'password', name: system.broker.passwordSecret, key: SECRET_KEY }],
        },
      });
      new ApiObject(this.scope, `${s.name}-scaled-object`, {
        apiVersion: 'keda.sh/v1alpha1',
        kind: 'ScaledObject',
        metadata: meta(system, s.name, labels),
        spec: {
          scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: s.name },
          minReplicaCount: a.minReplicas,
          maxReplicaCount: a.maxReplicas,
          triggers: [
            {
              type: 'rabbitmq',
              metadata: {
                protocol: 'amqp',
                host: `amqp://${system.broker.serviceName}.${this.ns}.svc:${system.broker.amqpPort}/${encodeURIComponent(system.broker.vhost)}`,
                mode: 'QueueLength',
                queueName: WORK_QUEUE,
                value: String(a.queueLengthPerReplica),
              },
              authenticationRef: { name: authName },
            },
          ],
        },
      });
      return;
    }
    new k8s.KubeHorizontalPodAutoscalerV2(this.scope, `${s.name}-hpa`, {
      metadata: meta(system, s.name, labels),
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: s.name },
        minReplicas: a.minReplicas,
        maxReplicas: a.maxReplicas,
        metrics: [
          {
            type: 'Resource',
            resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: a.cpuUtilizationPercent } },
          },
        ],
      },
    });
  }
}

/**
 * Revision of a Job: the first 10 hex digits of the SHA-256 of its pod template as the API server receives it
 * (keys sorted) and of the files it mounts from ConfigMaps, whose content the template only names.
 */
export function jobRevision(template: k8s.PodTemplateSpec, files: Readonly<Record<string, string>>): string {
  const canonical = JSON.stringify(sortKeysDeep({ files, template: k8s.toJson_PodTemplateSpec(template) }));
  return createHash('sha256').update(canonical).digest('hex').slice(0, JOB_REVISION_LENGTH);
}

const JOB_REVISION_LENGTH = 10;

function sortKeysDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => sortKeysDeep(v));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeysDeep((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

function sortRecord(data: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.keys(data)
      .sort()
      .map((k) => [k, data[k] as string]),
  );
}

function sortMounts(mounts: k8s.VolumeMount[]): k8s.VolumeMount[] {
  return [...mounts].sort((a, b) => a.mountPath.localeCompare(b.mountPath));
}

function sortVolumes(volumes: k8s.Volume[]): k8s.Volume[] {
  return [...volumes].sort((a, b) => a.name.localeCompare(b.name));
}

/** A cdk8s App holding one Chart for the environment; nothing is written to disk until `app.synth()`. */
export function buildChart(
  system: ResolvedSystem,
  app: App = new App({ outdir: 'cdk8s.out' }),
): { app: App; chart: Chart; report: ChartReport } {
  const chart = new Chart(app, system.environment, { disableResourceNameHashes: true });
  const builder = new Builder(chart, system);
  builder.build();
  return { app, chart, report: builder.report };
}
