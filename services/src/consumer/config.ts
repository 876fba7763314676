import { EnvReader, readCommonConfig, type CommonConfig, type Env } from '../shared/config';

export interface ConsumerConfig extends CommonConfig {
  readonly prefetch: number;
  readonly concurrency: number;
  readonly maxAttempts: number;
  readonly retryBaseDelayMs: number;
  readonly retryMaxDelayMs: number;
  readonly leaseSeconds: number;
  readonly drainTimeoutSeconds: number;
}

/** Reads and validates the consumer's environment; throws one ConfigError naming every bad variable. */
export function loadConsumerConfig(env: Env): ConsumerConfig {
  const reader = new EnvReader(env);
  const common = readCommonConfig(reader, 8081);
  // @see https://www.rabbitmq.com/docs/consumer-prefetch (65535 is the protocol's limit for prefetch_count)
  const prefetch = reader.integer('PREFETCH', 10, 1, 65_535);
  const concurrency = reader.integer('CONCURRENCY', prefetch, 1, 65_535);
  if (concurrency > prefetch) {
    reader.problem(`CONCURRENCY: got "${concurrency}", expected an integer ≤ PREFETCH (${prefetch})`);
  }
  const retryBaseDelayMs = reader.integer('RETRY_BASE_DELAY_MS', 1000, 1, 3_600_000);
  const retryMaxDelayMs = reader.integer('RETRY_MAX_DELAY_MS', 60_000, 1, 86_400_000);
  if (retryMaxDelayMs < retryBaseDelayMs) {
    reader.problem(
      `RETRY_MAX_DELAY_MS: got "${retryMaxDelayMs}", expected an integer ≥ RETRY_BASE_DELAY_MS (${retryBaseDelayMs})`,
    );
  }
  const config: ConsumerConfig = {
    ...common,
    prefetch,
    concurrency,
    maxAttempts: reader.integer('MAX_ATTEMPTS', 5, 1, 1000),
    retryBaseDelayMs,
    retryMaxDelayMs,
    leaseSeconds: reader.integer('LEASE_SECONDS', 60, 1, 86_400),
    drainTimeoutSeconds: reader.integer('DRAIN_TIMEOUT_SECONDS', 25, 0, 3600),
  };
  reader.finish();
  return config;
}
