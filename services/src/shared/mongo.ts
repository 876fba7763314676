import { MongoClient, type Db } from 'mongodb';
import { backoffDelayMs, sleep } from './backoff';
import { ensureIndexes } from './jobs';
import type { Logger } from './logger';

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
  signal?: AbortSignal,
): MongoConnection & { readonly ready: Promise<void> } {
  const client = new MongoClient(url, {
    appName,
    serverSelectionTimeoutMS: 3000,
    connectTimeoutMS: 3000,
    retryWrites: true,
  });
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
  signal?: AbortSignal,
): Promise<MongoConnection> {
  const mongo = openMongo(url, database, logger, appName, signal);
  try {
    await mongo.ready;
  } catch (err) {
    await mongo.client.close().catch(() => undefined);
    throw err;
  }
  return mongo;
}
