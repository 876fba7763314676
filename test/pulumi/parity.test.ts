import { synthYaml } from '../helpers';
import { deploy, plain, resolvedSystem, TYPES, type Deployment } from './harness';

interface ComposeService {
  image: string;
  command?: string[];
  environment: Record<string, string>;
  healthcheck: { test: string[]; interval: string; timeout: string; retries: number; start_period: string };
  ports?: string[];
  networks: string[];
  user: string;
  read_only: boolean;
  tmpfs: string[];
  cap_drop: string[];
  security_opt: string[];
  init: boolean;
  restart: string;
  stop_grace_period: string;
  volumes?: { source: string; target: string }[];
  secrets?: string[];
  deploy: {
    replicas: number;
    resources: { limits: { cpus: string; memory: string }; reservations: { cpus: string; memory: string } };
  };
}

interface Container {
  name: string;
  image: string;
  command?: string[];
  envs: string[];
  healthcheck: { tests: string[]; interval: string; timeout: string; retries: number; startPeriod: string };
  ports: { internal: number; external: number; ip: string }[];
  networksAdvanced: { name: string; aliases: string[] }[];
  user: string;
  readOnly: boolean;
  tmpfs: Record<string, string>;
  capabilities: { drops: string[] };
  securityOpts: string[];
  init: boolean;
  restart: string;
  maxRetryCount: number;
  stopTimeout: number;
  memory: number;
  cpus: string;
  volumes: { volumeName: string; containerPath: string; readOnly?: boolean }[];
}

/** Compose writes a literal `$` as `$$`; Docker's API takes the value as is. */
const unescape = (v: string): string => v.replace(/\$\$/g, '$');

/** A Compose duration (`1m`, `1m30s`, `10s`) or a Go one (`1m0s`) in seconds. */
const seconds = (v: string): number => {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(v);
  if (!m || v === '') throw new Error(`not a duration: ${v}`);
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
};

/** Docker byte value (`256M`, `1G`) in MiB, the unit of the provider's `memory`. */
const mebibytes = (v: string): number => (v.endsWith('G') ? Number(v.slice(0, -1)) * 1024 : Number(v.slice(0, -1)));

describe.each([
  { env: 'dev' as const, accept: [] as string[] },
  { env: 'prod' as const, accept: ['autoscaling', 'broker-cluster', 'database-replica-set', 'ingress', 'ingress-tls'] },
])('Pulumi and Compose agree for $env', ({ env, accept }) => {
  let compose: Record<string, ComposeService>;
  let d: Deployment;
  let byService: Map<string, Container[]>;
  beforeAll(async () => {
    compose = (await synthYaml<{ services: Record<string, ComposeService> }>(`${env}/compose.yaml`)).services;
    d = await deploy(resolvedSystem(env, accept));
    byService = new Map();
    for (const r of d.recorder.serviceContainers()) {
      const c = plain(r.inputs) as Container;
      const service = c.networksAdvanced[0]?.aliases[0] ?? '?';
      byService.set(service, [...(byService.get(service) ?? []), c]);
    }
  });

  const each = (check: (name: string, svc: ComposeService, containers: Container[]) => void): void => {
    for (const [name, svc] of Object.entries(compose)) check(name, svc, byService.get(name) ?? []);
  };

  test('the same services, with as many containers as Compose runs replicas', () => {
    expect([...byService.keys()].sort()).toEqual(Object.keys(compose).sort());
    each((name, svc, containers) =>
      expect({ name, count: containers.length }).toEqual({ name, count: svc.deploy.replicas }),
    );
  });

  test('the same images', () => {
    for (const r of d.recorder.ofType(TYPES.image)) {
      const name = r.name.replace(/-image$/, '');
      expect((plain(r.inputs) as { imageName: string }).imageName).toBe(compose[name]?.image);
    }
    for (const r of d.recorder.ofType(TYPES.remoteImage)) {
      const name = r.name.replace(/-image$/, '');
      expect((plain(r.inputs) as { name: string }).name).toBe(compose[name]?.image);
    }
  });

  test('the same environment variable names and values', () => {
    each((name, svc, containers) => {
      const expected = Object.entries(svc.environment)
        .map(([k, v]) => `${k}=${unescape(v)}`)
        .sort();
      for (const c of containers) expect({ name, envs: c.envs }).toEqual({ name, envs: expected });
    });
  });

  test('the same published ports', () => {
    each((name, svc, containers) => {
      expect({ name, ports: containers[0]?.ports.map((p) => `${p.ip}:${p.external}:${p.internal}`) }).toEqual({
        name,
        ports: svc.ports ?? [],
      });
    });
  });

  test('the same health checks', () => {
    each((name, svc, containers) => {
      const hc = svc.healthcheck;
      for (const c of containers) {
        const pulumiHc = {
          ...c.healthcheck,
          interval: seconds(c.healthcheck.interval),
          timeout: seconds(c.healthcheck.timeout),
          startPeriod: seconds(c.healthcheck.startPeriod),
        };
        expect({ name, healthcheck: pulumiHc }).toEqual({
          name,
          healthcheck: {
            tests: hc.test.map(unescape),
            interval: seconds(hc.interval),
            timeout: seconds(hc.timeout),
            retries: hc.retries,
            startPeriod: seconds(hc.start_period),
          },
        });
      }
    });
  });

  test('the same command, user, security settings, restart budget, limits, networks, volumes and secret files', () => {
    each((name, svc, containers) => {
      for (const c of containers) {
        expect({ name, command: c.command }).toEqual({ name, command: svc.command?.map(unescape) });
        expect({ ...c, service: name }).toMatchObject({
          service: name,
          user: svc.user,
          readOnly: svc.read_only,
          // Compose's `path:options` is Pulumi's `{ path: options }`: the same size limit on both.
          tmpfs: Object.fromEntries(svc.tmpfs.map((t) => [t.split(':')[0], t.split(':')[1] ?? ''])),
          capabilities: { drops: svc.cap_drop },
          securityOpts: svc.security_opt,
          init: svc.init,
          restart: svc.restart.split(':')[0],
          maxRetryCount: Number(svc.restart.split(':')[1]),
          stopTimeout: Number(svc.stop_grace_period.replace(/s$/, '')),
          memory: mebibytes(svc.deploy.resources.limits.memory),
        });
        expect({ name, cpus: Number(c.cpus) }).toEqual({ name, cpus: Number(svc.deploy.resources.limits.cpus) });
        expect({ name, networks: c.networksAdvanced.map((n) => n.name.replace(`async-jobs-${env}-`, '')) }).toEqual({
          name,
          networks: svc.networks,
        });
        const data = c.volumes.filter((v) => v.containerPath !== '/run/secrets');
        expect({
          name,
          volumes: data.map((v) => `${v.volumeName.replace(`async-jobs-${env}-`, '')}:${v.containerPath}`),
        }).toEqual({
          name,
          volumes: (svc.volumes ?? []).map((v) => `${v.source}:${v.target}`),
        });
        const writer = d.recorder.named(TYPES.container, `${name}-secrets`);
        const files = (plain(writer.inputs) as { uploads: { file: string }[] }).uploads.map((u) => u.file);
        expect({ name, secrets: files }).toEqual({
          name,
          secrets: (svc.secrets ?? []).map((s) => `/run/secrets/${s}`),
        });
        expect(c.volumes).toContainEqual({
          volumeName: `async-jobs-${env}-${name}-secrets`,
          containerPath: '/run/secrets',
          readOnly: true,
        });
      }
    });
  });
});
