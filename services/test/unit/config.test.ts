import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConsumerConfig } from '../../src/consumer/config';
import { loadProducerConfig } from '../../src/producer/config';
import { ConfigError, redactUrl } from '../../src/shared/config';

const base = {
  AMQP_URL: 'amqp://app@rabbitmq:5672/%2F',
  MONGO_URL: 'mongodb://app@mongo:27017/jobs?authSource=admin',
  API_KEYS_FILE: '/run/secrets/api-keys',
};

function problems(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('producer configuration', () => {
  it('applies the documented defaults', () => {
    expect(loadProducerConfig(base)).toEqual({
      amqpUrl: 'amqp://app@rabbitmq:5672/%2F',
      mongoUrl: 'mongodb://app@mongo:27017/jobs?authSource=admin',
      mongoDatabase: 'jobs',
      logLevel: 'info',
      queuePrefix: 'jobs',
      queueType: 'classic',
      port: 8080,
      enableTestHandlers: false,
      host: '0.0.0.0',
      bodyLimitBytes: 65536,
      outboxRepublishAfterMs: 5000,
      outboxScanIntervalMs: 30_000,
      outboxSweepIntervalMs: 1000,
      apiKeysFile: '/run/secrets/api-keys',
      apiKeysReloadIntervalMs: 5000,
      metricsPort: 9464,
      rateLimit: { ratePerSecond: 50, burst: 100 },
      groupCommit: { maxSize: 100, maxWaitMs: 2 },
    });
  });

  it('reads the group commit bounds, 1 and 0 turning batching and waiting off, and rejects others', () => {
    expect(
      loadProducerConfig({ ...base, GROUP_COMMIT_MAX_SIZE: '1', GROUP_COMMIT_MAX_WAIT_MS: '0' }).groupCommit,
    ).toEqual({ maxSize: 1, maxWaitMs: 0 });
    expect(
      problems(() => loadConsumerConfig({ ...base, GROUP_COMMIT_MAX_SIZE: '0', GROUP_COMMIT_MAX_WAIT_MS: '1.5' })),
    ).toEqual([
      'GROUP_COMMIT_MAX_SIZE: got "0", expected an integer between 1 and 10000',
      'GROUP_COMMIT_MAX_WAIT_MS: got "1.5", expected an integer between 0 and 1000',
    ]);
  });

  it('requires API_KEYS_FILE unless authentication is switched off explicitly, and checks the limits', () => {
    const noKeys = { AMQP_URL: base.AMQP_URL, MONGO_URL: base.MONGO_URL };
    expect(problems(() => loadProducerConfig(noKeys))).toEqual([
      'API_KEYS_FILE: missing, expected the path of the API keys file (or AUTH_DISABLED=true, for local use only)',
    ]);
    expect(loadProducerConfig({ ...noKeys, AUTH_DISABLED: 'true', RATE_LIMIT_PER_SECOND: '0' })).toMatchObject({
      apiKeysFile: null,
      rateLimit: null,
    });
    expect(
      problems(() =>
        loadProducerConfig({ ...base, AUTH_DISABLED: 'true', RATE_LIMIT_BURST: '0', METRICS_PORT: '8080' }),
      ),
    ).toEqual([
      'API_KEYS_FILE: got "/run/secrets/api-keys", expected it unset because AUTH_DISABLED=true',
      'RATE_LIMIT_BURST: got "0", expected an integer between 1 and 1000000',
      'METRICS_PORT: got 8080, expected a port other than PORT (8080)',
    ]);
    expect(loadProducerConfig({ ...base, RATE_LIMIT_PER_SECOND: '5' }).rateLimit).toEqual({
      ratePerSecond: 5,
      burst: 10,
    });
  });

  it('names every missing or malformed variable with its value and what is expected', () => {
    expect(
      problems(() =>
        loadProducerConfig({ PORT: 'eighty', QUEUE_TYPE: 'stream', LOG_LEVEL: 'loud', AUTH_DISABLED: 'true' }),
      ),
    ).toEqual([
      'AMQP_URL: missing, expected a value',
      'MONGO_URL: missing, expected a value',
      'LOG_LEVEL: got "loud", expected one of "fatal", "error", "warn", "info", "debug", "trace", "silent"',
      'QUEUE_TYPE: got "stream", expected one of "classic", "quorum"',
      'PORT: got "eighty", expected an integer between 1 and 65535',
    ]);
    expect(problems(() => loadProducerConfig({ ...base, AMQP_URL: 'http://x', BODY_LIMIT_BYTES: '12' }))).toEqual([
      'AMQP_URL: got "http://x", expected a URL starting with amqp:// or amqps://',
      'BODY_LIMIT_BYTES: got "12", expected an integer between 1024 and 10485760',
    ]);
  });

  it('prints the whole list in the error message', () => {
    expect(() => loadProducerConfig({})).toThrow(
      'invalid configuration:\n  - AMQP_URL: missing, expected a value\n  - MONGO_URL: missing, expected a value',
    );
  });

  it('injects passwords from env or from *_FILE (trailing newline trimmed) without echoing them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'aj-cfg-'));
    try {
      writeFileSync(join(dir, 'amqp'), 'p@ss:w/rd\n');
      const cfg = loadProducerConfig({ ...base, AMQP_PASSWORD_FILE: join(dir, 'amqp'), MONGO_PASSWORD: 's3cr3t' });
      expect(cfg.amqpUrl).toBe('amqp://app:p%40ss%3Aw%2Frd@rabbitmq:5672/%2F');
      expect(cfg.mongoUrl).toBe('mongodb://app:s3cr3t@mongo:27017/jobs?authSource=admin');
      expect(redactUrl(cfg.amqpUrl)).toBe('amqp://app:<redacted>@rabbitmq:5672/%2F');
      expect(problems(() => loadProducerConfig({ ...base, MONGO_PASSWORD_FILE: join(dir, 'nope') }))).toEqual([
        `MONGO_PASSWORD_FILE: got "${join(dir, 'nope')}", expected a readable file (ENOENT)`,
      ]);
      const both = problems(() =>
        loadProducerConfig({ ...base, AMQP_PASSWORD: 'x', AMQP_PASSWORD_FILE: join(dir, 'amqp') }),
      );
      expect(both).toEqual([
        `AMQP_PASSWORD_FILE: got "${join(dir, 'amqp')}", expected it unset because AMQP_PASSWORD is also set`,
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('never prints a password that is part of a malformed URL', () => {
    const msgs = problems(() => loadProducerConfig({ ...base, MONGO_URL: 'mongo://app:hunter2@mongo/jobs' }));
    expect(msgs).toEqual([
      'MONGO_URL: got "mongo://app:<redacted>@mongo/jobs", expected a URL like mongodb://user@host:27017/jobs?authSource=admin',
    ]);
    expect(msgs.join('')).not.toContain('hunter2');
  });

  it('reads the database from MONGO_URL and accepts several hosts', () => {
    const cfg = loadProducerConfig({ ...base, MONGO_URL: 'mongodb://a:27017,b:27017/orders?replicaSet=rs0' });
    expect(cfg.mongoDatabase).toBe('orders');
    expect(loadProducerConfig({ ...base, MONGO_URL: 'mongodb://mongo:27017' }).mongoDatabase).toBe('jobs');
  });
});

describe('consumer configuration', () => {
  it('applies the documented defaults (CONCURRENCY defaults to PREFETCH)', () => {
    expect(loadConsumerConfig({ ...base, PREFETCH: '4' })).toMatchObject({
      host: '0.0.0.0',
      port: 8081,
      prefetch: 4,
      concurrency: 4,
      maxAttempts: 5,
      retryBaseDelayMs: 1000,
      retryMaxDelayMs: 60000,
      leaseSeconds: 60,
      drainTimeoutSeconds: 25,
      enableTestHandlers: false,
      groupCommit: { maxSize: 100, maxWaitMs: 2 },
    });
  });

  it('listens where HOST says (tests and benchmarks keep it on 127.0.0.1) and rejects a malformed one', () => {
    expect(loadConsumerConfig({ ...base, HOST: '127.0.0.1' }).host).toBe('127.0.0.1');
    expect(problems(() => loadConsumerConfig({ ...base, HOST: 'a b' }))).toEqual([
      'HOST: got "a b", expected an IP address or host name',
    ]);
  });

  it('rejects CONCURRENCY above PREFETCH and other malformed values', () => {
    expect(
      problems(() =>
        loadConsumerConfig({
          ...base,
          PREFETCH: '5',
          CONCURRENCY: '6',
          MAX_ATTEMPTS: '0',
          ENABLE_TEST_HANDLERS: 'yes',
          QUEUE_PREFIX: 'a b',
        }),
      ),
    ).toEqual([
      'QUEUE_PREFIX: got "a b", expected letters, digits, "_", "." or "-" (at most 100, starting with a letter or digit)',
      'ENABLE_TEST_HANDLERS: got "yes", expected "true" or "false"',
      'CONCURRENCY: got "6", expected an integer ≤ PREFETCH (5)',
      'MAX_ATTEMPTS: got "0", expected an integer between 1 and 1000',
    ]);
  });
});
