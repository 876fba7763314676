import { MongoClient, type Db } from 'mongodb';
import { Histogram, type Registry } from 'prom-client';
import { backoffDelayMs, sleep } from './backoff';
import { ensureIndexes } from './jobs';
import type { Logger } from './logger';

/**
 * `mongodb_command_duration_seconds{command,outcome}` on `registry`, fed by the driver's command monitoring: how
 * long each command took on the wire (find, insert, update, findAndModify…). Operators see the database's share of
 * a request or a job next to the HTTP and handler histograms; the benchmarks read it to split a job's time.
 * @see https://www.mongodb.com/docs/drivers/node/current/monitoring-and-logging/monitoring/
 */
function observeCommands(client: MongoClient, registry: Registry): void {
  const histogram = new Histogram({
    name: 'mongodb_command_duration_seconds',
    help: 'MongoDB command round trips by command name and outcome (succeeded, failed), from driver command monitoring',
    labelNames: ['command', 'outcome'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    registers: [registry],
  });
  client.on('commandSucceeded', (e) =>
    histogram.observe({ command: e.commandName, outcome: 'succeeded' }, e.duration / 1000),
  );
  client.on('commandFailed', (e) =>
    histogram.observe({ command: e.commandName, outcome: 'failed' }, e.duration / 1000),
  );
}

/**
 * `mongodb_group_commit_batch_size{kind}`: how many callers shared each round trip of a kind (insert, publication,
 * claim, outcome, renewal). Its sum ÷ count is the mean batch; a mean of 1 under load means batching is not working.
 */
export function groupCommitMetric(registry: Registry): (kind: string, size: number) => void {
  const histogram = new Histogram({
    name: 'mongodb_group_commit_batch_size',
    help: 'Writes that shared one MongoDB round trip (group commit), by kind',
    labelNames: ['kind'],
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [registry],
  });
  return (kind, size) => histogram.observe({ kind }, size);
}

export interface MongoOptions {
  /** Where to register the command-duration histogram (turns on the driver's command monitoring). */
  readonly metrics?: Registry;
  readonly signal?: AbortSignal;
}

export interface MongoConnection {
  readonly client: MongoClient;
  readonly db: Db;
}

/**
 * Creates the client at once and connects + creates the indexes in the background, retrying with backoff until
 * MongoDB answers or `signal` aborts; `ready` settles then. The driver reconnects by itself afterwards;
 * operations fail fast (serverSelectionTimeoutMS) while MongoDB is down, so the API answers 503 instead of
 * hanging.
 * @see https://www.mongodb.com/docs/drivers/node/current/connect/connection-options/
 */
export function openMongo(
  url: string,
  database: string,
  logger: Logger,
  appName: string,
  options: MongoOptions = {},
): MongoConnection & { readonly ready: Promise<void> } {
  const { signal, metrics } = options;
  const client = new MongoClient(url, {
    appName,
    serverSelectionTimeoutMS: 3000,
    connectTimeoutMS: 3000,
    retryWrites: true,
    monitorCommands: metrics !== undefined,
  });
  if (metrics !== undefined) observeCommands(client, metrics);
  const db = client.db(database);
  const ready = (async () => {
    for (let attempt = 1; ; attempt++) {
      try {
        await client.connect();
        await ensureIndexes(db);
        logger.info({ database, attempt }, 'mongodb connected');
        return;
      } catch (err) {
        if (signal?.aborted === true) throw err;
        const delayMs = backoffDelayMs(attempt, 250, 10_000);
        logger.warn({ err: (err as Error).message, attempt, delayMs }, 'mongodb not available; retrying');
        await sleep(delayMs, signal);
      }
    }
  })();
  return { client, db, ready };
}

/** Like {@link openMongo} but resolves only once connected (the consumer has nothing to do before that). */
export async function connectMongo(
  url: string,
  database: string,
  logger: Logger,
  appName: string,
  options: MongoOptions = {},
): Promise<MongoConnection> {
  const mongo = openMongo(url, database, logger, appName, options);
  try {
    await mongo.ready;
  } catch (err) {
    await mongo.client.close().catch(() => undefined);
    throw err;
  }
  return mongo;
}
