/**
 * No prod target publishes the producer without authentication: each one mounts the API keys secret into the
 * producer and points API_KEYS_FILE at it, and none turns authentication off. And the model refuses a producer
 * published beyond localhost without it.
 */
import { parse, parseAllDocuments } from 'yaml';
import { JobSystem, ProducerAuth, SecretSource, formatModelError, resolve, validate } from '../../constructs/model';
import { pulumiGaps } from '../../constructs/pulumi';
import { synthFile } from '../helpers';
import { deploy, plain, resolvedSystem } from '../pulumi/harness';

jest.setTimeout(120_000);

const KEYS = '/run/secrets/api-keys';

interface Service {
  secrets?: (string | { source: string; target?: string })[];
  environment?: Record<string, string>;
}

describe('prod publishes the producer only with the API keys secret', () => {
  test.each(['compose.yaml', 'docker-stack.yml'])('%s mounts api-keys and sets API_KEYS_FILE', async (file) => {
    const doc = parse(await synthFile(`prod/${file}`)) as { services: Record<string, Service> };
    const producer = doc.services.producer!;
    const sources = (producer.secrets ?? []).map((s) => (typeof s === 'string' ? s : s.source));
    expect(sources).toContain('api-keys');
    expect(producer.environment?.API_KEYS_FILE).toBe(KEYS);
    expect(producer.environment?.AUTH_DISABLED).toBeUndefined();
  });

  test('kubernetes projects the api-keys Secret into the producer and its ConfigMap sets API_KEYS_FILE', async () => {
    const docs = parseAllDocuments(await synthFile('prod/kubernetes.k8s.yaml')).map(
      (d) => d.toJS() as { kind: string; metadata: { name: string }; data?: Record<string, string>; spec?: unknown },
    );
    const cm = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'producer-env');
    expect(cm?.data?.API_KEYS_FILE).toBe(KEYS);
    expect(cm?.data?.AUTH_DISABLED).toBeUndefined();
    const deployment = docs.find((d) => d.kind === 'Deployment' && d.metadata.name === 'producer');
    expect(JSON.stringify(deployment?.spec)).toContain('"name":"api-keys"');
    // The only way in from outside is the Ingress, and it carries TLS.
    const ingress = docs.find((d) => d.kind === 'Ingress') as { spec: { tls?: unknown[] } } | undefined;
    expect(ingress?.spec.tls).toHaveLength(1);
  });

  test("the Pulumi program writes api-keys into every producer's secrets volume and sets API_KEYS_FILE", async () => {
    const base = resolvedSystem('prod');
    const { recorder } = await deploy(resolvedSystem('prod', [...new Set(pulumiGaps(base).map((g) => g.feature))]));
    const producers = recorder
      .serviceContainers()
      .map((r) => plain(r.inputs) as { name: string; envs?: string[]; uploads?: { file: string }[] })
      .filter((c) => c.name.includes('-producer-'));
    expect(producers.length).toBeGreaterThan(0);
    for (const c of producers) {
      expect(c.envs).toContain(`API_KEYS_FILE=${KEYS}`);
      expect(c.envs?.some((e) => e.startsWith('AUTH_DISABLED='))).toBe(false);
      expect(c.uploads ?? []).toEqual([]);
    }
    const writers = recorder
      .secretsWriters()
      .map((r) => plain(r.inputs) as { name: string; uploads?: { file: string }[] })
      .filter((w) => w.name.endsWith('-producer-secrets'));
    expect(writers).toHaveLength(1);
    expect((writers[0]!.uploads ?? []).map((u) => u.file)).toContain(KEYS);
  });
});

describe('the model refuses a published producer without authentication', () => {
  const secrets = {
    'mongo-password': { source: SecretSource.file('.secrets/t/mongo-password') },
    'rabbitmq-password': { source: SecretSource.file('.secrets/t/rabbitmq-password') },
  };
  const errorsOf = (producer: Record<string, unknown>): string[] =>
    validate(resolve(new JobSystem(undefined, 't', { secrets, producer }), { imageTag: () => 'src-000000000000' })).map(
      formatModelError,
    );

  test('an ingress or a non-local published port without an api-keys secret is an error naming both', () => {
    expect(errorsOf({ ingressHost: 'jobs.example.com' })).toEqual([
      '[t/producer] authentication: got no authentication (no "api-keys" secret declared, or ProducerAuth.disabled()), expected a declared "api-keys" secret or ProducerAuth.apiKeys(secret) because the producer is published beyond localhost (the ingress host "jobs.example.com"); npm run secrets creates the file',
    ]);
    expect(
      errorsOf({
        authentication: ProducerAuth.disabled(),
        publishedPorts: [{ containerPort: 8080, hostPort: 8080, hostIp: '0.0.0.0' }],
      }),
    ).toEqual([
      '[t/producer] authentication: got no authentication (no "api-keys" secret declared, or ProducerAuth.disabled()), expected a declared "api-keys" secret or ProducerAuth.apiKeys(secret) because the producer is published beyond localhost (port 8080 on 0.0.0.0); npm run secrets creates the file',
    ]);
    // Published on localhost only, authentication may be off (AUTH_DISABLED=true reaches the producer).
    expect(errorsOf({ publishedPorts: [{ containerPort: 8080, hostPort: 8080 }] })).toEqual([]);
    expect(errorsOf({ authentication: ProducerAuth.apiKeys('keys') })).toEqual([
      '[t/producer] secrets.keys: got a reference to "keys", expected one of the declared secrets (mongo-password, rabbitmq-password)',
    ]);
    expect(errorsOf({ ingressTls: { clusterIssuer: 'letsencrypt' } })).toEqual([
      '[t/producer] ingressTls: got TLS settings without an ingress, expected ingressHost to be set too',
    ]);
  });
});
