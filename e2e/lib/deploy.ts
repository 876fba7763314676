/**
 * The two ways the e2e brings the synthesized system up on the engine: Compose (the compose.yaml, as written)
 * and Swarm (the docker-stack.yml, deployed with `--resolve-image never`). Both expose the same operations so
 * the smoke test and the faults are written once.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { check, docker, run, sleep, waitFor, type RunResult } from './exec.ts';
import { type DeployFile } from './files.ts';

export interface ContainerState {
  readonly id: string;
  readonly name: string;
  readonly service: string;
  readonly running: boolean;
  readonly health: string;
  readonly user: string;
  readonly readOnlyRoot: boolean;
  readonly capDrop: readonly string[];
  readonly securityOpt: readonly string[];
  readonly startedAt: string;
  /** Host addresses its published ports are bound to, e.g. 127.0.0.1:8080. */
  readonly published: readonly string[];
}

export interface Deployment {
  readonly kind: 'compose' | 'swarm' | 'kubernetes';
  readonly file: DeployFile;
  /** What the run created, for teardown and the report. */
  readonly project: string;
  up(): Promise<void>;
  /** Running containers of one service. */
  containers(service: string): Promise<ContainerState[]>;
  /** Runs a command in one of them (`docker exec`, `kubectl exec`). */
  exec(container: ContainerState, argv: readonly string[], timeoutMs?: number): Promise<RunResult>;
  scale(service: string, replicas: number): Promise<void>;
  /** Restarts a service's containers the target's way; returns how. */
  restart(service: string): Promise<string>;
  /** Crashes a service's containers with SIGKILL, so the restart policy (not a person) decides what follows. */
  crash(service: string): Promise<string>;
  /** Takes a service's containers away for `ms` (Compose: docker stop/start; Swarm: scale to 0 and back). */
  outage(service: string, ms: number): Promise<void>;
  down(): Promise<void>;
  /** Containers, networks and volumes of the run still present (for the teardown check). */
  leftovers(): Promise<string[]>;
  /** What to show when bringing it up failed: task errors, last log lines. */
  diagnose(): Promise<string>;
}

async function lastLogs(filter: string): Promise<string> {
  const out: string[] = [];
  for (const id of (await docker(['ps', '-aq', '--filter', filter]))
    .split('\n')
    .filter((l) => l !== '')
    .slice(0, 8)) {
    const r = await run('docker', ['logs', '--tail', '12', id]);
    const name = (
      await run('docker', ['inspect', '--format', '{{.Name}} {{.State.Status}} exit {{.State.ExitCode}}', id])
    ).stdout.trim();
    out.push(
      `${name}:`,
      ...`${r.stdout}${r.stderr}`
        .trim()
        .split('\n')
        .map((l) => `    ${l}`),
    );
  }
  return out.join('\n');
}

interface Inspect {
  Id: string;
  Name: string;
  Config: { User: string; Labels: Record<string, string> | null };
  State: { Running: boolean; StartedAt: string; Health?: { Status: string } };
  HostConfig: { ReadonlyRootfs: boolean; CapDrop: string[] | null; SecurityOpt: string[] | null };
  NetworkSettings: { Ports: Record<string, { HostIp: string; HostPort: string }[] | null> | null };
}

async function inspectContainers(
  ids: readonly string[],
  serviceLabel: string,
  prefix: string,
): Promise<ContainerState[]> {
  if (ids.length === 0) return [];
  const parsed = JSON.parse(await docker(['inspect', ...ids])) as Inspect[];
  return parsed.map((c) => ({
    id: c.Id.slice(0, 12),
    name: c.Name.replace(/^\//, ''),
    service: (c.Config.Labels?.[serviceLabel] ?? '').replace(prefix, ''),
    running: c.State.Running,
    health: c.State.Health?.Status ?? 'none',
    user: c.Config.User,
    readOnlyRoot: c.HostConfig.ReadonlyRootfs,
    capDrop: c.HostConfig.CapDrop ?? [],
    securityOpt: c.HostConfig.SecurityOpt ?? [],
    startedAt: c.State.StartedAt,
    published: Object.values(c.NetworkSettings.Ports ?? {}).flatMap((bindings) =>
      (bindings ?? []).map((b) => `${b.HostIp === '' ? '0.0.0.0' : b.HostIp}:${b.HostPort}`),
    ),
  }));
}

async function ps(filters: readonly string[]): Promise<string[]> {
  const out = await docker(['ps', '-q', ...filters.flatMap((f) => ['--filter', f])]);
  return out === '' ? [] : out.split('\n');
}

async function labelled(kind: 'container' | 'network' | 'volume', label: string): Promise<string[]> {
  const args =
    kind === 'container'
      ? ['ps', '-a', '--filter', `label=${label}`, '--format', '{{.Names}}']
      : [kind, 'ls', '--filter', `label=${label}`, '--format', '{{.Name}}'];
  const out = await docker(args);
  return out === '' ? [] : out.split('\n').map((n) => `${kind} ${n}`);
}

/** A Compose CLI: Compose v2 when available, else Debian's docker-compose 1.29. */
export interface ComposeCli {
  readonly bin: string;
  readonly version: string;
  /** docker-compose 1.29 predates the top-level `name:` key. */
  readonly supportsName: boolean;
}

export class ComposeDeployment implements Deployment {
  readonly kind = 'compose';
  readonly file: DeployFile;
  readonly project: string;
  private readonly cli: ComposeCli;
  private readonly fileArgs: string[];

  constructor(cli: ComposeCli, file: DeployFile, fallbackName: string, scratchDir: string) {
    this.cli = cli;
    this.file = file;
    this.project = file.name ?? fallbackName;
    if (cli.supportsName) {
      this.fileArgs = ['-f', file.path, '-p', this.project];
    } else {
      // The one adaptation 1.29 needs: the `name:` line goes, the same name is passed as -p, and relative paths
      // still resolve against the file's own directory.
      const copy = join(scratchDir, 'compose.v1.yaml');
      writeFileSync(copy, readFileSync(file.path, 'utf8').replace(/^name: .*\n/m, ''));
      this.fileArgs = ['-f', copy, '--project-directory', join(file.path, '..'), '-p', this.project];
    }
  }

  private compose(args: readonly string[], timeoutMs = 300_000): Promise<string> {
    return check(this.cli.bin, [...this.fileArgs, ...args], { timeoutMs });
  }

  async up(): Promise<void> {
    await this.compose(['up', '-d', '--no-build'], 600_000);
  }

  async containers(service: string): Promise<ContainerState[]> {
    const ids = await ps([
      `label=com.docker.compose.project=${this.project}`,
      `label=com.docker.compose.service=${service}`,
    ]);
    return inspectContainers(ids, 'com.docker.compose.service', '');
  }

  exec(c: ContainerState, argv: readonly string[], timeoutMs = 60_000): Promise<RunResult> {
    return run('docker', ['exec', c.id, ...argv], { timeoutMs });
  }

  async scale(service: string, replicas: number): Promise<void> {
    await this.compose([
      'up',
      '-d',
      '--no-build',
      '--no-deps',
      '--no-recreate',
      '--scale',
      `${service}=${replicas}`,
      service,
    ]);
  }

  /**
   * `docker kill` counts as a manual stop, and Docker never restarts a manually stopped container whatever its
   * restart policy; so the crash is a SIGKILL from the host to the container's init process, which Docker sees as
   * the container dying on its own.
   * @see https://docs.docker.com/engine/containers/start-containers-automatically/#restart-policy-details
   */
  async crash(service: string): Promise<string> {
    const victims = await this.containers(service);
    for (const c of victims) {
      const pid = Number(await docker(['inspect', '--format', '{{.State.Pid}}', c.id]));
      if (!Number.isInteger(pid) || pid <= 1) throw new Error(`container ${c.name}: no host pid (${pid})`);
      process.kill(pid, 'SIGKILL');
    }
    return `SIGKILL from the host to the init process of ${victims.map((c) => c.name).join(', ')}`;
  }

  async restart(service: string): Promise<string> {
    const cs = await this.containers(service);
    await docker(['restart', '--time', '30', ...cs.map((c) => c.id)], { timeoutMs: 120_000 });
    return `docker restart ${cs.map((c) => c.name).join(', ')}`;
  }

  async outage(service: string, ms: number): Promise<void> {
    const ids = (await this.containers(service)).map((c) => c.id);
    await docker(['stop', ...ids], { timeoutMs: 60_000 });
    await sleep(ms);
    await docker(['start', ...ids], { timeoutMs: 60_000 });
  }

  async down(): Promise<void> {
    await this.compose(['down', '--volumes', '--remove-orphans', '--timeout', '30'], 300_000);
  }

  diagnose(): Promise<string> {
    return lastLogs(`label=com.docker.compose.project=${this.project}`);
  }

  async leftovers(): Promise<string[]> {
    const label = `com.docker.compose.project=${this.project}`;
    return [
      ...(await labelled('container', label)),
      ...(await labelled('network', label)),
      ...(await labelled('volume', label)),
    ];
  }
}

export class SwarmDeployment implements Deployment {
  readonly kind = 'swarm';
  readonly file: DeployFile;
  readonly project: string;
  private readonly env: NodeJS.ProcessEnv;

  constructor(file: DeployFile, stack: string, variables: Readonly<Record<string, string>>) {
    this.file = file;
    this.project = stack;
    this.env = { ...process.env, ...variables };
  }

  async up(): Promise<void> {
    await docker(['stack', 'deploy', '--resolve-image', 'never', '-c', this.file.path, this.project], {
      env: this.env,
      timeoutMs: 300_000,
    });
  }

  async containers(service: string): Promise<ContainerState[]> {
    const ids = await ps([`label=com.docker.swarm.service.name=${this.project}_${service}`]);
    return inspectContainers(ids, 'com.docker.swarm.service.name', `${this.project}_`);
  }

  exec(c: ContainerState, argv: readonly string[], timeoutMs = 60_000): Promise<RunResult> {
    return run('docker', ['exec', c.id, ...argv], { timeoutMs });
  }

  async scale(service: string, replicas: number): Promise<void> {
    await docker(['service', 'scale', '--detach', `${this.project}_${service}=${replicas}`], { timeoutMs: 120_000 });
  }

  /** A Swarm service restarts by replacing its tasks (its update_config decides the order). */
  async restart(service: string): Promise<string> {
    await docker(['service', 'update', '--force', '--detach', `${this.project}_${service}`], { timeoutMs: 120_000 });
    return `docker service update --force ${this.project}_${service}`;
  }

  /** Swarm's restart policy does apply to a `docker kill`ed task: the task failed, a new one is scheduled. */
  async crash(service: string): Promise<string> {
    const victims = await this.containers(service);
    await docker(['kill', ...victims.map((c) => c.id)]);
    return `docker kill ${victims.map((c) => c.name).join(', ')}`;
  }

  async outage(service: string, ms: number): Promise<void> {
    await this.scale(service, 0);
    await waitFor(`${service} to stop`, 60_000, async () =>
      (await this.containers(service)).length === 0 ? true : undefined,
    );
    await sleep(ms);
    await this.scale(service, 1);
  }

  async down(): Promise<void> {
    await docker(['stack', 'rm', this.project], { timeoutMs: 120_000 });
    const label = `com.docker.stack.namespace=${this.project}`;
    // `docker stack rm` returns before the tasks are gone, and never removes volumes.
    await waitFor('the stack to be removed', 120_000, async () =>
      (await labelled('container', label)).length === 0 && (await labelled('network', label)).length === 0
        ? true
        : undefined,
    );
    for (const v of await labelled('volume', label)) {
      const name = v.replace(/^volume /, '');
      // A volume stays busy for a moment after its container is removed.
      await waitFor(`volume ${name} to be removed`, 30_000, async () =>
        (await run('docker', ['volume', 'rm', name])).code === 0 ? true : undefined,
      );
    }
  }

  async diagnose(): Promise<string> {
    const tasks = await run('docker', [
      'stack',
      'ps',
      '--no-trunc',
      '--format',
      '{{.Name}} {{.CurrentState}} {{.Error}}',
      this.project,
    ]);
    return `${tasks.stdout.trim()}\n${await lastLogs(`label=com.docker.stack.namespace=${this.project}`)}`;
  }

  async leftovers(): Promise<string[]> {
    const label = `com.docker.stack.namespace=${this.project}`;
    const secrets = (await docker(['secret', 'ls', '--filter', `label=${label}`, '--format', '{{.Name}}']))
      .split('\n')
      .filter((s) => s !== '');
    return [
      ...(await labelled('container', label)),
      ...(await labelled('network', label)),
      ...(await labelled('volume', label)),
      ...secrets.map((s) => `secret ${s}`),
    ];
  }
}
