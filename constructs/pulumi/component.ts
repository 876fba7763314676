import { isAbsolute, join } from 'node:path';
import * as docker from '@pulumi/docker';
import * as pulumi from '@pulumi/pulumi';
import type { ResolvedService, ResolvedSystem } from '../model';
import { dockerfilePath } from '../dockerfile';
import {
  COMPONENT_TYPE,
  DIST_DIR,
  IMAGE_BUILDERS,
  NO_HEALTHCHECK,
  SECRET_FILE_MODE,
  containerCount,
  containerEnvs,
  containerHealthcheck,
  containerName,
  checkSecretsWriterExit,
  cpuShares,
  cpusProblem,
  healthWaitSeconds,
  memorySwapMebibytes,
  providerCpus,
  scopedName,
  secretsDirectory,
  secretsName,
  usedSecrets,
  type ImageBuilder,
} from './model';

/** Inputs of {@link DockerJobSystem}. */
export interface DockerJobSystemArgs {
  /** The resolved, validated model of one environment, with every Pulumi gap accepted. */
  readonly system: ResolvedSystem;
  /** Secret values by model secret name; each must be a secret Output (e.g. from `config.requireSecret`). */
  readonly secrets: Readonly<Record<string, pulumi.Output<string>>>;
  /**
   * Absolute path of the project root (where `Pulumi.yaml` and `dist/` are). The engine runs the program and the
   * provider in the folder of `main` (`build/infra`), so every path handed to the provider is absolute.
   */
  readonly repoRoot: string;
  /** How images are built. */
  readonly imageBuilder: ImageBuilder;
}

/** What the stack reports after `pulumi up`. */
export interface DockerJobSystemOutputs {
  readonly environment: string;
  /** Where the producer API answers: its published host port, else the first container's address on its network. */
  readonly producerUrl: pulumi.Output<string>;
  /** RabbitMQ management UI, or undefined when the model disables the plugin. */
  readonly rabbitmqManagementUrl: pulumi.Output<string> | undefined;
  /** Every container as the provider named it, sorted. */
  readonly containerNames: pulumi.Output<string[]>;
}

const LABEL_PREFIX = 'io.async-jobs';

/** A service's secret files: the volume that holds them, the container that wrote them, where they are mounted. */
interface SecretFiles {
  readonly volume: docker.Volume;
  readonly writer: docker.Container;
  readonly directory: string;
}

/**
 * The whole async job system on one Docker host, as one component: networks, volumes, images and a container per
 * service replica, all parented to it. Built from the same resolved model as every other target.
 *
 * @see https://www.pulumi.com/docs/iac/concepts/components/
 * @see https://www.pulumi.com/registry/packages/docker/api-docs/container/
 */
export class DockerJobSystem extends pulumi.ComponentResource {
  public readonly networks: Readonly<Record<string, docker.Network>>;
  public readonly volumes: Readonly<Record<string, docker.Volume>>;
  /** Containers by service name, in replica order. */
  public readonly containers: Readonly<Record<string, readonly docker.Container[]>>;
  public readonly outputs: DockerJobSystemOutputs;

  public constructor(name: string, args: DockerJobSystemArgs, opts?: pulumi.ComponentResourceOptions) {
    super(COMPONENT_TYPE, name, {}, opts);
    const { system } = args;
    const parent = { parent: this };
    if (!isAbsolute(args.repoRoot)) {
      throw new Error(
        `[${system.path}] pulumi: repoRoot ${JSON.stringify(args.repoRoot)} is relative; expected an absolute path (the provider runs in another directory)`,
      );
    }
    const cpuProblems = system.services.map(cpusProblem).filter((p): p is string => p !== undefined);
    if (cpuProblems.length > 0) throw new Error(cpuProblems.join('\n'));

    for (const secret of usedSecrets(system)) {
      if (!(secret in args.secrets)) {
        throw new Error(
          `[${system.path}] pulumi: secret ${JSON.stringify(secret)} has no value; expected one in args.secrets`,
        );
      }
    }

    const labels = (extra: Record<string, string>): { label: string; value: string }[] =>
      Object.entries({ [`${LABEL_PREFIX}.environment`]: system.environment, ...extra })
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([label, value]) => ({ label, value }));

    const networks: Record<string, docker.Network> = {};
    for (const n of system.networks) {
      networks[n.name] = new docker.Network(
        `${n.name}-network`,
        {
          name: scopedName(system, n.name),
          driver: 'bridge',
          internal: n.internal,
          labels: labels({ [`${LABEL_PREFIX}.network`]: n.name }),
        },
        // A fixed name cannot exist twice, so a replacement must delete the old network first.
        { ...parent, deleteBeforeReplace: true },
      );
    }

    const volumes: Record<string, docker.Volume> = {};
    for (const v of system.volumes) {
      volumes[v.name] = new docker.Volume(
        `${v.name}-volume`,
        { name: scopedName(system, v.name), labels: labels({ [`${LABEL_PREFIX}.volume`]: v.name }) },
        // Data volumes survive `pulumi destroy` and any replacement: `protect` makes both fail until unprotected.
        // @see https://www.pulumi.com/docs/iac/concepts/options/protect/
        { ...parent, protect: v.retain, deleteBeforeReplace: true },
      );
    }

    const containers: Record<string, docker.Container[]> = {};
    for (const s of system.services) {
      const image = this.image(system, s, args);
      const secrets = this.secrets(system, s, { image, secrets: args.secrets, labels });
      // Broker and database containers wait until healthy, so depending on them means starting after they are healthy.
      const dependsOn = s.dependsOn.flatMap((d) => {
        const upstream = containers[d];
        if (!upstream)
          throw new Error(`[${s.path}] pulumi: dependsOn ${JSON.stringify(d)} is not a service declared before it`);
        return upstream;
      });
      containers[s.name] = Array.from({ length: containerCount(s) }, (_unused, index) =>
        this.container(system, s, index, { image, networks, volumes, secrets, dependsOn, labels }),
      );
    }

    this.networks = networks;
    this.volumes = volumes;
    this.containers = containers;
    this.outputs = {
      environment: system.environment,
      producerUrl: this.serviceUrl(system, 'producer', 'http'),
      rabbitmqManagementUrl: system.broker.management
        ? this.serviceUrl(system, system.broker.serviceName, 'management')
        : undefined,
      containerNames: pulumi
        .all(Object.values(containers).flatMap((list) => list.map((c) => c.name)))
        .apply((names) => [...names].sort()),
    };
    this.registerOutputs({ ...this.outputs });
  }

  /** A locally built image for `build` sources, a pulled, pinned one for registry references. Returns what a container runs. */
  private image(system: ResolvedSystem, s: ResolvedService, args: DockerJobSystemArgs): pulumi.Output<string> {
    if (s.image.kind === 'build') {
      const built = new docker.Image(
        `${s.name}-image`,
        {
          // The content tag changes only when the build context or the Dockerfile's inputs change, so an
          // unchanged build shows no diff.
          imageName: s.image.reference,
          build: {
            // Absolute: the provider resolves relative paths against its own working directory, the folder of
            // `main` (build/infra), not the project root.
            context: join(args.repoRoot, s.image.context),
            dockerfile: join(args.repoRoot, DIST_DIR, dockerfilePath(system.environment, s.name)),
            builderVersion: IMAGE_BUILDERS[args.imageBuilder],
          },
          // Containers run on the Docker host that built the image; publishing to a registry is CI's job.
          skipPush: true,
        },
        { parent: this },
      );
      return built.imageName;
    }
    const remote = new docker.RemoteImage(
      `${s.name}-image`,
      { name: s.image.reference, keepLocally: true },
      { parent: this },
    );
    // The provider's documented way to point a container at a pulled image.
    return remote.imageId;
  }

  private container(
    system: ResolvedSystem,
    s: ResolvedService,
    index: number,
    ctx: {
      image: pulumi.Output<string>;
      networks: Record<string, docker.Network>;
      volumes: Record<string, docker.Volume>;
      secrets: SecretFiles | undefined;
      dependsOn: docker.Container[];
      labels: (extra: Record<string, string>) => { label: string; value: string }[];
    },
  ): docker.Container {
    const sec = s.security;
    const owner = String(sec.user);
    const group = String(sec.group);
    const grace = s.terminationGracePeriodSeconds;
    const network = (name: string): docker.Network => {
      const n = ctx.networks[name];
      if (!n) throw new Error(`[${s.path}] pulumi: network ${JSON.stringify(name)} is not declared by the system`);
      return n;
    };
    const volume = (name: string): docker.Volume => {
      const v = ctx.volumes[name];
      if (!v) throw new Error(`[${s.path}] pulumi: volume ${JSON.stringify(name)} is not declared by the system`);
      return v;
    };
    return new docker.Container(
      `${s.name}-${index}`,
      {
        name: containerName(system, s, index),
        image: ctx.image,
        command: s.command.length > 0 ? [...s.command] : undefined,
        envs: containerEnvs(s),
        healthcheck: containerHealthcheck(s),
        // Bounded by the model, as in Compose and Swarm: a crash-looping container stops instead of restarting forever.
        restart: 'on-failure',
        maxRetryCount: s.restartMaxAttempts,
        // The provider's memory fields are in MiB ("MBs" in its docs; it multiplies by 1024 * 1024).
        memory: s.resources.memoryLimit.mebibytes,
        memoryReservation: s.resources.memoryRequest.mebibytes,
        // The provider reads these back in its own forms; anything else is a change (a replacement for `cpus`)
        // on every `pulumi up`.
        memorySwap: memorySwapMebibytes(s),
        cpus: providerCpus(s.resources.cpuLimit),
        cpuShares: cpuShares(s.resources.cpuRequest.millicores),
        readOnly: sec.readOnlyRootFilesystem,
        tmpfs: Object.fromEntries(sec.tmpfs.map((path) => [path, `size=${sec.tmpfsSize.toDocker()}`])),
        capabilities: { drops: ['ALL'] },
        securityOpts: ['no-new-privileges:true'],
        user: `${owner}:${group}`,
        init: true,
        stopTimeout: grace,
        destroyGraceSeconds: grace,
        networksAdvanced: [...s.networks].sort().map((n) => ({ name: network(n).name, aliases: [s.name] })),
        // A host port binds once: only the first replica publishes (a reported gap when there are more).
        ports:
          index === 0
            ? s.publishedPorts.map((p) => ({
                internal: p.containerPort,
                external: p.hostPort,
                ip: p.hostIp,
                protocol: 'tcp',
              }))
            : [],
        volumes: [
          ...s.volumeMounts.map((m) => ({ volumeName: volume(m.volume).name, containerPath: m.path })),
          // The secret files, written by the service's secrets container; read-only here.
          ...(ctx.secrets
            ? [{ volumeName: ctx.secrets.volume.name, containerPath: ctx.secrets.directory, readOnly: true }]
            : []),
        ],
        wait: true,
        waitTimeout: healthWaitSeconds(s.healthCheck),
        labels: ctx.secrets
          ? pulumi.all([ctx.secrets.writer.name, ctx.secrets.writer.exitCode]).apply(([writer, exitCode]) => {
              checkSecretsWriterExit(s, writer, exitCode);
              return ctx.labels({
                [`${LABEL_PREFIX}.service`]: s.name,
                [`${LABEL_PREFIX}.replica`]: String(index),
                [`${LABEL_PREFIX}.secrets-from`]: writer,
              });
            })
          : ctx.labels({ [`${LABEL_PREFIX}.service`]: s.name, [`${LABEL_PREFIX}.replica`]: String(index) }),
      },
      {
        parent: this,
        dependsOn: [...ctx.dependsOn, ...(ctx.secrets ? [ctx.secrets.writer] : [])],
        // A fixed container name cannot exist twice, so a replacement must delete the old container first.
        deleteBeforeReplace: true,
        // New secret files (a changed value) reach the service only through a new container.
        ...(ctx.secrets ? { replaceWith: [ctx.secrets.writer] } : {}),
      },
    );
  }

  /**
   * The secret files of one service: a volume, and a short-lived container that writes them into it and exits.
   *
   * Docker refuses any copy into a container whose root filesystem is read-only (the provider's `uploads` copy
   * to `/`, whatever volume is mounted below), so the files are uploaded into this writer instead: its root is
   * writable, it has no network, runs the service's own image as root with only `CAP_CHOWN`, and its one command
   * hands the files (mode 0400) to the service's uid:gid. The service's containers mount the volume read-only.
   * The values stay secret Outputs, so the state holds them encrypted; they are in no container's `envs`, so
   * `docker inspect` shows none.
   *
   * @see https://docs.docker.com/reference/api/engine/version/v1.43/#tag/Container/operation/PutContainerArchive
   */
  private secrets(
    system: ResolvedSystem,
    s: ResolvedService,
    ctx: {
      image: pulumi.Output<string>;
      secrets: Readonly<Record<string, pulumi.Output<string>>>;
      labels: (extra: Record<string, string>) => { label: string; value: string }[];
    },
  ): SecretFiles | undefined {
    const directory = secretsDirectory(s);
    if (directory === undefined) return undefined;
    const name = secretsName(system, s);
    if (system.volumes.some((v) => scopedName(system, v.name) === name)) {
      throw new Error(
        `[${s.path}] pulumi: volume name ${name} holds the service's secret files; rename the model's volume`,
      );
    }
    const volume = new docker.Volume(
      `${s.name}-secrets-volume`,
      { name, labels: ctx.labels({ [`${LABEL_PREFIX}.secrets-of`]: s.name }) },
      // Not protected: the writer fills it again from stack config.
      { parent: this, deleteBeforeReplace: true },
    );
    const owner = `${s.security.user}:${s.security.group}`;
    const writer = new docker.Container(
      `${s.name}-secrets`,
      {
        name,
        image: ctx.image,
        entrypoints: ['chown'],
        command: ['-R', owner, directory],
        user: '0:0',
        networkMode: 'none',
        readOnly: false,
        capabilities: { drops: ['ALL'], adds: ['CHOWN'] },
        securityOpts: ['no-new-privileges:true'],
        healthcheck: { ...NO_HEALTHCHECK, tests: [...NO_HEALTHCHECK.tests] },
        restart: 'no',
        volumes: [{ volumeName: volume.name, containerPath: directory }],
        uploads: s.secrets.map((use) => {
          const value = ctx.secrets[use.secret];
          if (!value) throw new Error(`[${s.path}] pulumi: secret ${JSON.stringify(use.secret)} has no value`);
          return { file: use.path, content: pulumi.secret(value), permissions: SECRET_FILE_MODE };
        }),
        // Runs once: create waits for it to exit, and an exited writer is its expected state.
        mustRun: false,
        attach: true,
        labels: ctx.labels({ [`${LABEL_PREFIX}.secrets-of`]: s.name }),
      },
      {
        parent: this,
        deleteBeforeReplace: true,
        // An emptied volume (replaced) needs its files written again.
        replaceWith: [volume],
        // The uploads hold the secret values; keep the whole property secret in state whatever the provider does.
        // @see https://www.pulumi.com/docs/iac/concepts/options/additionalsecretoutputs/
        additionalSecretOutputs: ['uploads'],
      },
    );
    return { volume, writer, directory };
  }

  /** URL of a named port of a service: its published host port, else the first container's IP on its outermost network. */
  private serviceUrl(system: ResolvedSystem, serviceName: string, portName: string): pulumi.Output<string> {
    const s = system.services.find((x) => x.name === serviceName);
    const port = s?.ports.find((p) => p.name === portName);
    const first = this.containers[serviceName]?.[0];
    if (!s || !port || !first) {
      throw new Error(
        `[${system.path}] pulumi: service ${JSON.stringify(serviceName)} has no running container with a ${JSON.stringify(portName)} port`,
      );
    }
    const published = s.publishedPorts.find((p) => p.containerPort === port.containerPort);
    if (published) return pulumi.output(`http://${published.hostIp}:${published.hostPort}`);
    const outermost = system.networks
      .filter((n) => s.networks.includes(n.name))
      .sort((a, b) => Number(a.internal) - Number(b.internal))[0];
    const networkName = scopedName(system, outermost ? outermost.name : 'backend');
    return first.networkDatas.apply((datas) => {
      const ip = datas.find((d) => d.networkName === networkName)?.ipAddress ?? datas[0]?.ipAddress ?? s.name;
      return `http://${ip}:${port.containerPort}`;
    });
  }
}
