import { MongoClient, type Db } from 'mongodb';
import { backoffDelayMs, sleep } from './backoff';
import { ensureIndexes } from './jobs';
import type { Logger } from './logger';

export interface MongoConnection {
  readonly client: MongoClient;
  readonly db: Db;
}

/**
 * Connects and creates the indexes, retrying with backoff until MongoDB answers or `signal` aborts. After
 * that the driver reconnects by itself; operations fail fast (serverSelectionTimeoutMS) while it is down so
 * the API can answer 503 instead of hanging.
 * @see https://www.mongodb.com/docs/drivers/node/current/connect/connection-options/
 */
export async function connectMongo(url: string, database: string, logger: Logger, appName: string, signal?: AbortSignal): Promise<MongoConnection> {
  const client = new MongoClient(url, { appName, serverSelectionTimeoutMS: 3000, connectTimeoutMS: 3000, retryWrites: true });
  const db = client.db(database);
  for (let attempt = 1; ; attempt++) {
    try {
      await client.connect();
      await ensureIndexes(db);
      logger.info({ database, attempt }, 'mongodb connected');
      return { client, db };
    } catch (err) {
      if (signal?.aborted === true) {
        await client.close().catch(() => undefined);
        throw err;
      }
      const delayMs = backoffDelayMs(attempt, 250, 10_000);
      logger.warn({ err: (err as Error).message, attempt, delayMs }, 'mongodb not available; retrying');
      await sleep(delayMs, signal);
    }
  }
}
