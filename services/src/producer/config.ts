import { EnvReader, readCommonConfig, type CommonConfig, type Env } from '../shared/config';

export interface ProducerConfig extends CommonConfig {
  readonly bodyLimitBytes: number;
  readonly outboxRepublishAfterMs: number;
  readonly outboxSweepIntervalMs: number;
  readonly outboxScanIntervalMs: number;
  /** Path of the API keys file, or `null` when `AUTH_DISABLED=true`. */
  readonly apiKeysFile: string | null;
  readonly apiKeysReloadIntervalMs: number;
  /** Port of the separate `/metrics` listener (same host as the API). */
  readonly metricsPort: number;
  /** `null` when `RATE_LIMIT_PER_SECOND=0`. */
  readonly rateLimit: { readonly ratePerSecond: number; readonly burst: number } | null;
}

/** Reads and validates the producer's environment; throws one ConfigError naming every bad variable. */
export function loadProducerConfig(env: Env): ProducerConfig {
  const reader = new EnvReader(env);
  const common = readCommonConfig(reader, 8080);
  const bodyLimitBytes = reader.integer('BODY_LIMIT_BYTES', 65_536, 1024, 10 * 1024 * 1024);
  const outboxRepublishAfterMs = reader.integer('OUTBOX_REPUBLISH_AFTER_MS', 5000, 100, 3_600_000);
  const outboxSweepIntervalMs = reader.integer('OUTBOX_SWEEP_INTERVAL_MS', 1000, 50, 3_600_000);
  const outboxScanIntervalMs = reader.integer('OUTBOX_SCAN_INTERVAL_MS', 30_000, 50, 3_600_000);
  const authDisabled = reader.boolean('AUTH_DISABLED', false);
  const keysFile = env.API_KEYS_FILE === undefined || env.API_KEYS_FILE === '' ? undefined : env.API_KEYS_FILE;
  if (authDisabled && keysFile !== undefined) {
    reader.problem(`API_KEYS_FILE: got ${JSON.stringify(keysFile)}, expected it unset because AUTH_DISABLED=true`);
  } else if (!authDisabled && keysFile === undefined) {
    reader.problem(
      'API_KEYS_FILE: missing, expected the path of the API keys file (or AUTH_DISABLED=true, for local use only)',
    );
  }
  const ratePerSecond = reader.integer('RATE_LIMIT_PER_SECOND', 50, 0, 1_000_000);
  const burst = reader.integer('RATE_LIMIT_BURST', Math.max(1, ratePerSecond * 2), 1, 1_000_000);
  const config: ProducerConfig = {
    ...common,
    bodyLimitBytes,
    outboxRepublishAfterMs,
    outboxSweepIntervalMs,
    outboxScanIntervalMs,
    apiKeysFile: authDisabled ? null : (keysFile ?? ''),
    apiKeysReloadIntervalMs: reader.integer('API_KEYS_RELOAD_INTERVAL_MS', 5000, 100, 3_600_000),
    metricsPort: reader.integer('METRICS_PORT', 9464, 1, 65535),
    rateLimit: ratePerSecond === 0 ? null : { ratePerSecond, burst },
  };
  if (config.metricsPort === common.port) {
    reader.problem(`METRICS_PORT: got ${config.metricsPort}, expected a port other than PORT (${common.port})`);
  }
  reader.finish();
  return config;
}
