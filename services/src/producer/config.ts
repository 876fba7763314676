import { EnvReader, readCommonConfig, type CommonConfig, type Env } from '../shared/config';

export interface ProducerConfig extends CommonConfig {
  readonly bodyLimitBytes: number;
  readonly outboxRepublishAfterMs: number;
  readonly outboxSweepIntervalMs: number;
}

/** Reads and validates the producer's environment; throws one ConfigError naming every bad variable. */
export function loadProducerConfig(env: Env): ProducerConfig {
  const reader = new EnvReader(env);
  const common = readCommonConfig(reader, 8080);
  const config: ProducerConfig = {
    ...common,
    bodyLimitBytes: reader.integer('BODY_LIMIT_BYTES', 65_536, 1024, 10 * 1024 * 1024),
    outboxRepublishAfterMs: reader.integer('OUTBOX_REPUBLISH_AFTER_MS', 5000, 100, 3_600_000),
    outboxSweepIntervalMs: reader.integer('OUTBOX_SWEEP_INTERVAL_MS', 1000, 50, 3_600_000),
  };
  reader.finish();
  return config;
}
