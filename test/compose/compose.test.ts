import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ENVIRONMENTS } from '../../infra/app';
import { REPO_ROOT, synthFile, synthYaml } from '../helpers';
import { requireTool, run } from '../tools';
import { compileComposeSchema } from '../../verify/validators';

interface ComposeService {
  image: string;
  build?: { context: string; dockerfile: string };
  ports?: string[];
  networks: string[];
  secrets?: string[];
  volumes?: { type: string; source: string; target: string }[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck: { test: string[]; interval: string; timeout: string; retries: number; start_period: string };
  deploy: {
    replicas: number;
    resources: { limits: { cpus: string; memory: string }; reservations: { cpus: string; memory: string } };
  };
  environment: Record<string, string>;
  read_only: boolean;
  tmpfs: string[];
  cap_drop: string[];
  security_opt: string[];
  init: boolean;
  user: string;
  restart: string;
  stop_grace_period: string;
}
interface ComposeFile {
  name: string;
  services: Record<string, ComposeService>;
  networks: Record<string, { driver: string; internal?: boolean }>;
  volumes: Record<string, unknown>;
  secrets: Record<string, { file?: string; external?: boolean }>;
}

describe.each(ENVIRONMENTS)('compose.yaml for %s', (env) => {
  let compose: ComposeFile;
  beforeAll(async () => {
    compose = await synthYaml<ComposeFile>(`${env}/compose.yaml`);
  });

  test('has the four services under their cross-target names', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['consumer', 'mongo', 'producer', 'rabbitmq']);
    expect(compose.name).toBe(`async-jobs-${env}`);
  });

  test('health checks exist for all four services, with the broker and database checks the images support', () => {
    expect(compose.services.rabbitmq!.healthcheck.test).toEqual([
      'CMD',
      'rabbitmq-diagnostics',
      '-q',
      'check_port_connectivity',
    ]);
    expect(compose.services.mongo!.healthcheck.test).toEqual([
      'CMD',
      'mongosh',
      '--quiet',
      '--norc',
      '--eval',
      "db.adminCommand('ping').ok",
    ]);
    expect(compose.services.producer!.healthcheck.test).toEqual(['CMD', 'node', 'dist/healthcheck.js']);
    expect(compose.services.consumer!.healthcheck.test).toEqual(['CMD', 'node', 'dist/healthcheck.js']);
  });

  test('the producer and consumer wait for a healthy broker and database', () => {
    for (const name of ['producer', 'consumer']) {
      expect(compose.services[name]!.depends_on).toEqual({
        mongo: { condition: 'service_healthy' },
        rabbitmq: { condition: 'service_healthy' },
      });
    }
    expect(compose.services.rabbitmq!.depends_on).toBeUndefined();
  });

  test('broker and database data live in named volumes', () => {
    expect(compose.services.rabbitmq!.volumes).toEqual([
      { type: 'volume', source: 'rabbitmq-data', target: '/var/lib/rabbitmq' },
    ]);
    expect(compose.services.mongo!.volumes).toEqual([{ type: 'volume', source: 'mongo-data', target: '/data/db' }]);
    expect(Object.keys(compose.volumes).sort()).toEqual(['mongo-data', 'rabbitmq-data']);
  });

  test('the backend network is internal and only the producer and published services join the frontend', () => {
    expect(compose.networks).toEqual({ backend: { driver: 'bridge', internal: true }, frontend: { driver: 'bridge' } });
    expect(compose.services.consumer!.networks).toEqual(['backend']);
    expect(compose.services.mongo!.networks).toEqual(['backend']);
    expect(compose.services.producer!.networks).toEqual(['backend', 'frontend']);
  });

  test('secrets come from top-level secrets and *_FILE variables, never from values', () => {
    // Only secrets a service mounts are declared; the cluster-only ones are the Kubernetes target's.
    expect(Object.keys(compose.secrets).sort()).toEqual(['api-keys', 'mongo-password', 'rabbitmq-password']);
    for (const [name, secret] of Object.entries(compose.secrets)) {
      expect(secret).toEqual({ file: `../../.secrets/${env}/${name}` });
    }
    const producer = compose.services.producer!;
    expect(producer.secrets).toEqual(['api-keys', 'mongo-password', 'rabbitmq-password']);
    expect(producer.environment.API_KEYS_FILE).toBe('/run/secrets/api-keys');
    expect(compose.services.consumer!.secrets).toEqual(['mongo-password', 'rabbitmq-password']);
    expect(producer.environment.MONGO_PASSWORD_FILE).toBe('/run/secrets/mongo-password');
    expect(producer.environment.AMQP_PASSWORD_FILE).toBe('/run/secrets/rabbitmq-password');
    expect(compose.services.mongo!.environment.MONGO_INITDB_ROOT_PASSWORD_FILE).toBe('/run/secrets/mongo-password');
    for (const service of Object.values(compose.services)) {
      for (const [name, value] of Object.entries(service.environment)) {
        expect({ name, secretLike: /PASS(WORD)?$|SECRET$|TOKEN$/.test(name) }).toEqual({ name, secretLike: false });
        expect(value).not.toMatch(/:\/\/[^/@]*:[^/@]*@/);
      }
    }
  });

  test('every service is hardened: read-only root, tmpfs /tmp, no capabilities, no new privileges, init, numeric user', () => {
    for (const [name, s] of Object.entries(compose.services)) {
      expect({
        name,
        read_only: s.read_only,
        tmpfs: s.tmpfs,
        cap_drop: s.cap_drop,
        security_opt: s.security_opt,
        init: s.init,
      }).toEqual({
        name,
        read_only: true,
        // Sized by the model's tmpfsSize: a tmpfs counts against the memory limit.
        tmpfs: ['/tmp:size=64M'],
        cap_drop: ['ALL'],
        security_opt: ['no-new-privileges:true'],
        init: true,
      });
      expect(s.user).toMatch(/^[0-9]+:[0-9]+$/);
      expect(s.restart).toBe('on-failure:5');
      expect(s.stop_grace_period).toMatch(/^[0-9]+s$/);
      expect(s.deploy.resources.limits.memory).toMatch(/^[0-9]+[MG]$/);
      expect(s.deploy.resources.limits.cpus).toMatch(/^[0-9.]+$/);
    }
  });

  test('images are pinned and the built services point at the synthesized Dockerfiles', () => {
    for (const s of Object.values(compose.services)) {
      expect(s.image).toMatch(/^[a-z0-9./-]+(:[0-9]+)?[a-z0-9./-]*:[A-Za-z0-9_.-]+$/);
      expect(s.image).not.toMatch(/:latest$/);
    }
    for (const name of ['producer', 'consumer']) {
      const s = compose.services[name]!;
      expect(s.build).toEqual({ context: '../../services', dockerfile: `../dist/${env}/${name}.Dockerfile` });
      expect(s.image).toMatch(new RegExp(`/${name}:src-[0-9a-f]{12}$`));
    }
  });

  test('every reference to a network, volume, secret or service is declared', () => {
    for (const [name, s] of Object.entries(compose.services)) {
      for (const n of s.networks)
        expect({ name, network: n, declared: n in compose.networks }).toEqual({ name, network: n, declared: true });
      for (const v of s.volumes ?? [])
        expect({ name, volume: v.source, declared: v.source in compose.volumes }).toEqual({
          name,
          volume: v.source,
          declared: true,
        });
      for (const x of s.secrets ?? [])
        expect({ name, secret: x, declared: x in compose.secrets }).toEqual({ name, secret: x, declared: true });
      for (const d of Object.keys(s.depends_on ?? {}))
        expect({ name, dependsOn: d, declared: d in compose.services }).toEqual({ name, dependsOn: d, declared: true });
    }
  });

  test('a literal "$" in a command is escaped so Compose does not interpolate it', () => {
    const command = (compose.services.rabbitmq as unknown as { command: string[] }).command;
    expect(command[2]).toContain('$$(cat "$$RABBITMQ_DEFAULT_PASS_FILE")');
  });

  test('is valid against the compose-spec JSON schema that Compose v2 embeds', () => {
    const validateSchema = compileComposeSchema();
    const valid = validateSchema(compose);
    expect(validateSchema.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
  });

  test('the schema check fails on a key Compose does not know', () => {
    const validateSchema = compileComposeSchema();
    const broken = {
      ...compose,
      services: { ...compose.services, producer: { ...compose.services.producer, replica: 2 } },
    };
    expect(validateSchema(broken)).toBe(false);
    expect(validateSchema.errors?.map((e) => e.params)).toContainEqual({ unevaluatedProperty: 'replica' });
  });

  requireTool('docker-compose', 'apt-get install docker-compose')(
    "is accepted by Debian's docker-compose config (which predates top-level name:, so it is passed as -p)",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'compose-'));
      try {
        const file = join(dir, 'compose.yaml');
        writeFileSync(file, (await synthFile(`${env}/compose.yaml`)).replace(/^name: .*\n/m, ''));
        const result = run('docker-compose', [
          '-p',
          compose.name,
          '--project-directory',
          join(REPO_ROOT, 'dist', env),
          '-f',
          file,
          'config',
          '-q',
        ]);
        expect(result.output).toBe('');
        expect(result.status).toBe(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

describe('dev compose.yaml', () => {
  test('publishes ports on 127.0.0.1 only', async () => {
    const compose = await synthYaml<ComposeFile>('dev/compose.yaml');
    expect(compose.services.producer!.ports).toEqual(['127.0.0.1:8080:8080']);
    expect(compose.services.rabbitmq!.ports).toEqual(['127.0.0.1:15672:15672']);
    expect(compose.services.mongo!.ports).toBeUndefined();
  });
});

describe('prod compose.yaml', () => {
  test('runs the fixed minimum of the stateless replicas and one node of each stateful service', async () => {
    const compose = await synthYaml<ComposeFile>('prod/compose.yaml');
    const replicas = Object.fromEntries(Object.entries(compose.services).map(([n, s]) => [n, s.deploy.replicas]));
    expect(replicas).toEqual({ consumer: 4, mongo: 1, producer: 3, rabbitmq: 1 });
    expect(compose.services.producer!.ports).toBeUndefined();
  });
});
