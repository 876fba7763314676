import { loadConfigOrExit } from '../shared/process';
import { redactUrl } from '../shared/config';
import { createLogger } from '../shared/logger';
import { Registry } from 'prom-client';
import { groupCommitMetric, openMongo } from '../shared/mongo';
import { HandlerRegistry } from '../shared/registry';
import { MongoJobStore, publicationLingerMs } from '../shared/store';
import { ApiKeysError, ApiKeysFile } from './auth';
import { buildApp, buildMetricsApp } from './app';
import { loadProducerConfig } from './config';
import { ProducerMetrics } from './metrics';
import { AmqpPublisher } from './publisher';
import { OutboxSweeper } from './sweeper';

async function main(): Promise<void> {
  const config = loadConfigOrExit(() => loadProducerConfig(process.env));
  const logger = createLogger('producer', config.logLevel);
  logger.info(
    {
      broker: redactUrl(config.amqpUrl),
      mongo: redactUrl(config.mongoUrl),
      port: config.port,
      metricsPort: config.metricsPort,
      auth: config.apiKeysFile === null ? 'disabled' : 'bearer',
      rateLimit: config.rateLimit ?? 'off',
      queuePrefix: config.queuePrefix,
    },
    'starting',
  );

  let keys: ApiKeysFile | null = null;
  if (config.apiKeysFile === null) {
    logger.warn('AUTH_DISABLED=true: /v1/* accepts every request without a token; use only on a private machine');
  } else {
    try {
      keys = ApiKeysFile.load(config.apiKeysFile, logger);
    } catch (err) {
      if (!(err instanceof ApiKeysError)) throw err;
      process.stderr.write(`invalid configuration:\n  - ${err.message}\n`);
      process.exit(1);
    }
    logger.info({ clients: keys.clients.size, reloadIntervalMs: config.apiKeysReloadIntervalMs }, 'API keys loaded');
    keys.start(config.apiKeysReloadIntervalMs);
  }

  let shuttingDown = false;
  const startup = new AbortController();
  const publisher = new AmqpPublisher({
    url: config.amqpUrl,
    queuePrefix: config.queuePrefix,
    queueType: config.queueType,
    logger,
  });
  publisher.start();

  let shutdown: (signal: string) => void = () => undefined;
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  // Listen before MongoDB answers: /healthz is up, /readyz and the API answer 503 until it does.
  const metricsRegistry = new Registry();
  const mongo = openMongo(config.mongoUrl, config.mongoDatabase, logger, 'async-jobs-producer', {
    signal: startup.signal,
    metrics: metricsRegistry,
  });
  mongo.ready.catch((err: Error) => logger.info({ err: err.message }, 'stopped connecting to MongoDB'));
  const store = new MongoJobStore(
    mongo.db,
    config.groupCommit,
    groupCommitMetric(metricsRegistry),
    publicationLingerMs(config.outboxRepublishAfterMs),
  );
  const registry = HandlerRegistry.create({ enableTestHandlers: config.enableTestHandlers });
  const metrics = new ProducerMetrics(store, { defaultMetrics: true, registry: metricsRegistry });
  const sweeper = new OutboxSweeper({
    store,
    publisher,
    logger,
    republishAfterMs: config.outboxRepublishAfterMs,
    intervalMs: config.outboxSweepIntervalMs,
    scanIntervalMs: config.outboxScanIntervalMs,
    onBacklog: (n) => metrics.outboxBacklog.set(n),
  });
  const app = buildApp({
    store,
    publisher,
    registry,
    logger,
    bodyLimitBytes: config.bodyLimitBytes,
    apiClients: keys === null ? null : () => (keys as ApiKeysFile).clients,
    ...(config.rateLimit !== null ? { rateLimit: config.rateLimit } : {}),
    metrics,
    isShuttingDown: () => shuttingDown,
    onPublishFailed: (job) => sweeper.retryLater(job),
  });
  const metricsApp = buildMetricsApp(metrics, logger);

  shutdown = (signal) => {
    if (shuttingDown) return;
    shuttingDown = true;
    startup.abort();
    logger.info({ signal }, 'shutting down: readiness fails, then drain');
    void (async () => {
      try {
        // /readyz already answers 503; app.close() stops accepting connections, answers 503 on kept-alive
        // ones and waits for in-flight requests. (Kubernetes adds its own delay via a preStop hook.)
        await app.close();
        await metricsApp.close();
        keys?.stop();
        await sweeper.stop();
        await store.drain();
        await publisher.close();
        await mongo.client.close();
        logger.info('stopped');
        process.exit(0);
      } catch (err) {
        logger.error({ err: (err as Error).message }, 'error during shutdown');
        process.exit(1);
      }
    })();
  };

  await app.listen({ host: config.host, port: config.port });
  await metricsApp.listen({ host: config.host, port: config.metricsPort });
  sweeper.start();
  logger.info({ host: config.host, port: config.port, metricsPort: config.metricsPort }, 'producer listening');
}

main().catch((err: unknown) => {
  process.stderr.write(`fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
