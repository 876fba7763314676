import * as docker from '@pulumi/docker';
import * as pulumi from '@pulumi/pulumi';
import type { ResolvedService, ResolvedSystem } from '../model';
import { dockerfilePath } from '../dockerfile';
import {
  COMPONENT_TYPE,
  DIST_DIR,
  SECRET_FILE_MODE,
  containerCount,
  containerEnvs,
  containerHealthcheck,
  containerName,
  cpuShares,
  healthWaitSeconds,
  scopedName,
  secretDirectories,
  usedSecrets,
} from './model';

/** Inputs of {@link DockerJobSystem}. */
export interface DockerJobSystemArgs {
  /** The resolved, validated model of one environment, with every Pulumi gap accepted. */
  readonly system: ResolvedSystem;
  /** Secret values by model secret name; each must be a secret Output (e.g. from `config.requireSecret`). */
  readonly secrets: Readonly<Record<string, pulumi.Output<string>>>;
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
      const image = this.image(system, s);
      // Broker and database containers wait until healthy, so depending on them means starting after they are healthy.
      const dependsOn = s.dependsOn.flatMap((d) => {
        const upstream = containers[d];
        if (!upstream)
          throw new Error(`[${s.path}] pulumi: dependsOn ${JSON.stringify(d)} is not a service declared before it`);
        return upstream;
      });
      containers[s.name] = Array.from({ length: containerCount(s) }, (_unused, index) =>
        this.container(system, s, index, { image, networks, volumes, secrets: args.secrets, dependsOn, labels }),
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
  private image(system: ResolvedSystem, s: ResolvedService): pulumi.Output<string> {
    if (s.image.kind === 'build') {
      const built = new docker.Image(
        `${s.name}-image`,
        {
          // The content tag changes only when the build context or the Dockerfile's inputs change, so an
          // unchanged build shows no diff.
          imageName: s.image.reference,
          build: {
            context: s.image.context,
            // Relative to the project root (where Pulumi.yaml is), not to the build context.
            // @see https://github.com/pulumi/pulumi-docker/releases/tag/v4.0.1
            dockerfile: `${DIST_DIR}/${dockerfilePath(system.environment, s.name)}`,
            builderVersion: 'BuilderBuildKit',
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
      secrets: Readonly<Record<string, pulumi.Output<string>>>;
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
        cpus: s.resources.cpuLimit.toDocker(),
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
        volumes: s.volumeMounts.map((m) => ({ volumeName: volume(m.volume).name, containerPath: m.path })),
        // The root filesystem is read-only and Docker refuses to copy into it, so each secret directory is an
        // anonymous volume, created with the container and removed with it (`removeVolumes` defaults to true).
        // @see https://docs.docker.com/reference/cli/docker/container/cp/
        mounts: secretDirectories(s).map((dir) => ({ type: 'volume', target: dir })),
        // Secret files are written before the container starts; the content stays a secret Output, so Pulumi
        // encrypts it in state, and it never appears in `envs`.
        uploads: s.secrets.map((use) => {
          const value = ctx.secrets[use.secret];
          if (!value) throw new Error(`[${s.path}] pulumi: secret ${JSON.stringify(use.secret)} has no value`);
          return { file: use.path, content: pulumi.secret(value), owner, group, permissions: SECRET_FILE_MODE };
        }),
        wait: true,
        waitTimeout: healthWaitSeconds(s.healthCheck),
        labels: ctx.labels({ [`${LABEL_PREFIX}.service`]: s.name, [`${LABEL_PREFIX}.replica`]: String(index) }),
      },
      {
        parent: this,
        dependsOn: ctx.dependsOn,
        // A fixed container name cannot exist twice, so a replacement must delete the old container first.
        deleteBeforeReplace: true,
        // The uploads hold secret file contents; mark the whole property secret in state whatever the provider does.
        // @see https://www.pulumi.com/docs/iac/concepts/options/additionalsecretoutputs/
        additionalSecretOutputs: ['uploads'],
      },
    );
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
