import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { redactUrl } from '../shared/config';
import { createLogger } from '../shared/logger';
import { connectMongo, groupCommitMetric } from '../shared/mongo';
import { loadConfigOrExit } from '../shared/process';
import { HandlerRegistry } from '../shared/registry';
import { JobClaims } from './claims';
import { loadConsumerConfig } from './config';
import { buildHealthApp } from './health';
import { ConsumerMetrics } from './metrics';
import { ConsumerService } from './service';
import { Worker } from './worker';

async function main(): Promise<void> {
  const config = loadConfigOrExit(() => loadConsumerConfig(process.env));
  const workerId = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const logger = createLogger('consumer', config.logLevel).child({ workerId });
  logger.info(
    {
      broker: redactUrl(config.amqpUrl),
      mongo: redactUrl(config.mongoUrl),
      queuePrefix: config.queuePrefix,
      prefetch: config.prefetch,
      concurrency: config.concurrency,
    },
    'starting',
  );

  const startup = new AbortController();
  let shutdown: (signal: string) => void = () => startup.abort();
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  const metrics = new ConsumerMetrics({ defaultMetrics: true });
  let mongoPing: () => Promise<void> = () => Promise.reject(new Error('not connected yet'));
  // eslint-disable-next-line prefer-const -- the readiness closure below reads it before the service exists
  let service: ConsumerService | undefined;
  const health = buildHealthApp({
    logger,
    metrics,
    isConsuming: () => service?.isReady() ?? false,
    pingStore: () => mongoPing(),
  });
  await health.listen({ host: config.host, port: config.port });

  let mongo;
  try {
    mongo = await connectMongo(config.mongoUrl, config.mongoDatabase, logger, 'async-jobs-consumer', {
      signal: startup.signal,
      metrics: metrics.registry,
    });
  } catch {
    await health.close();
    logger.info('stopped before MongoDB was reachable');
    process.exit(0);
  }
  const db = mongo.db;
  mongoPing = async () => {
    await db.command({ ping: 1 });
  };
  const claims = new JobClaims(db, {
    groupCommit: config.groupCommit,
    onBatch: groupCommitMetric(metrics.registry),
  });
  const worker = new Worker({
    claims,
    registry: HandlerRegistry.create({ enableTestHandlers: config.enableTestHandlers }),
    logger,
    workerId,
    maxAttempts: config.maxAttempts,
    retryBaseDelayMs: config.retryBaseDelayMs,
    retryMaxDelayMs: config.retryMaxDelayMs,
    leaseMs: config.leaseSeconds * 1000,
    metrics,
  });
  const consumer = new ConsumerService({
    url: config.amqpUrl,
    queuePrefix: config.queuePrefix,
    queueType: config.queueType,
    prefetch: config.prefetch,
    concurrency: config.concurrency,
    retryBaseDelayMs: config.retryBaseDelayMs,
    retryMaxDelayMs: config.retryMaxDelayMs,
    worker,
    logger,
  });
  service = consumer;

  let stopping = false;
  shutdown = (signal) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, inFlight: consumer.inFlight, drainTimeoutSeconds: config.drainTimeoutSeconds }, 'draining');
    void (async () => {
      try {
        const { timedOut } = await consumer.drain(config.drainTimeoutSeconds * 1000);
        await claims.drain();
        await mongo.client.close();
        await health.close();
        logger.info({ timedOut }, 'stopped');
        process.exit(0);
      } catch (err) {
        logger.error({ err: (err as Error).message }, 'error during shutdown');
        process.exit(1);
      }
    })();
  };
  consumer.start();
}

main().catch((err: unknown) => {
  process.stderr.write(`fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
