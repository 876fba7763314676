import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as amqp from 'amqplib';
import type { FastifyInstance } from 'fastify';
import { MongoClient, type Db } from 'mongodb';
import pino from 'pino';
import { buildApp } from '../../src/producer/app';
import { hashToken, parseApiKeys } from '../../src/producer/auth';
import { AmqpPublisher } from '../../src/producer/publisher';
import { jobsCollection, ensureIndexes, type JobDocument, type JobRef } from '../../src/shared/jobs';
import { HandlerRegistry } from '../../src/shared/registry';
import { MongoJobStore, PUBLICATION_LINGER_MS } from '../../src/shared/store';
import { GROUP_COMMIT_DEFAULTS } from '../../src/shared/config';
import { topologyNames } from '../../src/shared/topology';
import { freePort } from './servers';

export const SERVICES_ROOT = resolve(__dirname, '..', '..');

export interface IntegrationEnv {
  readonly amqpUrl: string;
  /** mongodb://host:port without a database; each suite adds its own. */
  readonly mongoBaseUrl: string;
  readonly external: boolean;
}

export function integrationEnv(): IntegrationEnv | undefined {
  const amqpUrl = process.env.AJ_TEST_AMQP_URL;
  const mongoBaseUrl = process.env.AJ_TEST_MONGO_URL;
  if (amqpUrl === undefined || mongoBaseUrl === undefined) return undefined;
  return { amqpUrl, mongoBaseUrl, external: process.env.AJ_TEST_EXTERNAL === 'true' };
}

/** `describe` when servers are available, else a skipped describe (globalSetup already printed why). */
export const describeIntegration: jest.Describe = integrationEnv() !== undefined ? describe : describe.skip;

export function uniqueName(label: string): string {
  return `t${label}${randomBytes(4).toString('hex')}`;
}

export interface ServiceProcess {
  readonly child: ChildProcess;
  readonly lines: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitForLine(pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  kill(signal: NodeJS.Signals): void;
}

/** Runs `node dist/<service>/main.js` as a real child process with the given environment. */
export function spawnService(service: 'producer' | 'consumer', env: Record<string, string>): ServiceProcess {
  const child = spawn(process.execPath, [join(SERVICES_ROOT, 'dist', service, 'main.js')], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters: { pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] =
    [];
  const onData = (chunk: Buffer): void => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      lines.push(line);
      if (process.env.AJ_TEST_VERBOSE === 'true') process.stdout.write(`[${service} ${child.pid}] ${line}\n`);
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(line) as Record<string, unknown>;
      } catch {
        parsed = { raw: line };
      }
      for (const w of [...waiters]) {
        if (w.pred(parsed)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(parsed);
        }
      }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  return {
    child,
    lines,
    exited,
    waitForLine(pred, timeoutMs = 30_000) {
      for (const line of lines) {
        try {
          const parsed = JSON.parse(line) as Record<string, unknown>;
          if (pred(parsed)) return Promise.resolve(parsed);
        } catch {
          // not JSON
        }
      }
      return new Promise((resolveLine, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `no matching ${service} log line within ${timeoutMs} ms; last lines:\n${lines.slice(-20).join('\n')}`,
              ),
            ),
          timeoutMs,
        );
        waiters.push({
          pred,
          resolve: (l) => {
            clearTimeout(timer);
            resolveLine(l);
          },
        });
      });
    },
    kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}

/** API clients of every test context: name → scopes. Tokens are random per context. */
export const TEST_CLIENTS = {
  test: 'jobs:submit,jobs:read',
  other: 'jobs:submit,jobs:read',
  admin: 'jobs:admin',
  reader: 'jobs:read',
  submitter: 'jobs:submit',
} as const;
export type TestClient = keyof typeof TEST_CLIENTS;

/** Writes a keys file for {@link TEST_CLIENTS} with fresh tokens; returns its path and the tokens. */
export function writeKeysFile(dir: string): { path: string; tokens: Record<TestClient, string> } {
  const tokens = Object.fromEntries(
    Object.keys(TEST_CLIENTS).map((name) => [name, randomBytes(24).toString('base64url')]),
  ) as Record<TestClient, string>;
  const path = join(dir, 'api-keys');
  const lines = Object.entries(TEST_CLIENTS).map(
    ([name, scopes]) => `${name} ${scopes} ${hashToken(tokens[name as TestClient])}`,
  );
  writeFileSync(path, `# test clients\n${lines.join('\n')}\n`, { mode: 0o600 });
  return { path, tokens };
}

export interface TestContext {
  readonly prefix: string;
  /** The API keys file of this context (clients {@link TEST_CLIENTS}). */
  readonly keysFile: string;
  readonly tokens: Readonly<Record<TestClient, string>>;
  /** `{ authorization: 'Bearer …' }` for a test client (default `test`). */
  auth(client?: TestClient): Record<string, string>;
  /** Environment for `node dist/producer/main.js` against this suite's database, queues and keys file. */
  producerEnv(port: number, extra?: Record<string, string>): Promise<Record<string, string>>;
  readonly dbName: string;
  readonly mongoUrl: string;
  readonly amqpUrl: string;
  readonly db: Db;
  readonly app: FastifyInstance;
  readonly publisher: AmqpPublisher;
  /** Where the in-process producer reports a job whose publish failed (the real one hands it to its sweeper). */
  onPublishFailed(handler: (job: JobRef) => void): void;
  /** Environment for `node dist/consumer/main.js` pointing at this suite's database and queues. */
  consumerEnv(extra?: Record<string, string>): Record<string, string>;
  startConsumer(extra?: Record<string, string>): Promise<ServiceProcess>;
  submit(
    type: string,
    input: Record<string, unknown>,
    key?: string,
    client?: TestClient,
  ): Promise<{ statusCode: number; body: Record<string, unknown> }>;
  job(id: string): Promise<JobDocument | null>;
  waitForJobs(ids: readonly string[], statuses: readonly string[], timeoutMs: number): Promise<JobDocument[]>;
  queueDepth(queue: string): Promise<number>;
  names: ReturnType<typeof topologyNames>;
  close(): Promise<void>;
}

const FAST_CONSUMER_ENV: Record<string, string> = {
  HOST: '127.0.0.1',
  LOG_LEVEL: 'info',
  ENABLE_TEST_HANDLERS: 'true',
  MAX_ATTEMPTS: '3',
  RETRY_BASE_DELAY_MS: '100',
  RETRY_MAX_DELAY_MS: '400',
  LEASE_SECONDS: '3',
  DRAIN_TIMEOUT_SECONDS: '10',
  PREFETCH: '10',
};

export async function createContext(
  label: string,
  env: IntegrationEnv,
  overrides: { amqpUrl?: string; queueType?: 'classic' | 'quorum' } = {},
): Promise<TestContext> {
  const prefix = uniqueName(label);
  const dbName = prefix;
  const amqpUrl = overrides.amqpUrl ?? env.amqpUrl;
  const mongoUrl = `${env.mongoBaseUrl}/${dbName}`;
  const client = new MongoClient(mongoUrl, { serverSelectionTimeoutMS: 5000 });
  await client.connect();
  const db = client.db(dbName);
  await ensureIndexes(db);
  const logger = pino({ level: process.env.AJ_TEST_VERBOSE === 'true' ? 'info' : 'silent' });
  const queueType = overrides.queueType ?? 'classic';
  const publisher = new AmqpPublisher({ url: amqpUrl, queuePrefix: prefix, queueType, logger });
  publisher.start();
  if (!(await publisher.connection.waitForConnection(30_000))) throw new Error('publisher did not connect');
  while (!publisher.isReady()) await new Promise((r) => setTimeout(r, 20));
  // The in-process producer batches as the real one does by default (group commit).
  const store = new MongoJobStore(db, GROUP_COMMIT_DEFAULTS, undefined, PUBLICATION_LINGER_MS);
  const keysDir = mkdtempSync(join(tmpdir(), 'aj-keys-'));
  const keys = writeKeysFile(keysDir);
  const clients = parseApiKeys(readFileSync(keys.path, 'utf8'), keys.path);
  let publishFailed: ((job: JobRef) => void) | undefined;
  const app = buildApp({
    store,
    publisher,
    registry: HandlerRegistry.create({ enableTestHandlers: true }),
    logger,
    bodyLimitBytes: 65_536,
    apiClients: () => clients,
    onPublishFailed: (job) => publishFailed?.(job),
  });
  const auth = (name: TestClient = 'test'): Record<string, string> => ({
    authorization: `Bearer ${keys.tokens[name]}`,
  });
  // Reconnected on demand: the broker-restart test closes it under us.
  let inspectorConn: amqp.ChannelModel | undefined;
  const inspector = async (): Promise<amqp.ChannelModel> => {
    if (inspectorConn === undefined) {
      const conn = await amqp.connect(amqpUrl);
      conn.on('error', () => undefined);
      conn.on('close', () => {
        if (inspectorConn === conn) inspectorConn = undefined;
      });
      inspectorConn = conn;
    }
    return inspectorConn;
  };
  const children: ServiceProcess[] = [];
  const names = topologyNames(prefix);

  const consumerEnv = (extra: Record<string, string> = {}): Record<string, string> => ({
    ...FAST_CONSUMER_ENV,
    AMQP_URL: amqpUrl,
    MONGO_URL: mongoUrl,
    QUEUE_PREFIX: prefix,
    QUEUE_TYPE: queueType,
    ...extra,
  });

  const ctx: TestContext = {
    prefix,
    keysFile: keys.path,
    tokens: keys.tokens,
    auth,
    async producerEnv(port, extra = {}) {
      return {
        AMQP_URL: amqpUrl,
        MONGO_URL: mongoUrl,
        QUEUE_PREFIX: prefix,
        QUEUE_TYPE: queueType,
        HOST: '127.0.0.1',
        PORT: String(port),
        METRICS_PORT: String(await freePort()),
        API_KEYS_FILE: keys.path,
        ...extra,
      };
    },
    dbName,
    mongoUrl,
    amqpUrl,
    db,
    app,
    publisher,
    onPublishFailed(handler) {
      publishFailed = handler;
    },
    names,
    consumerEnv,
    async startConsumer(extra = {}) {
      const proc = spawnService('consumer', consumerEnv({ PORT: String(await freePort()), ...extra }));
      children.push(proc);
      await proc.waitForLine((l) => l.msg === 'consuming', 40_000);
      return proc;
    },
    async submit(type, input, key = uniqueName('key'), client = 'test') {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/jobs',
        headers: { 'content-type': 'application/json', 'idempotency-key': key, ...auth(client) },
        payload: { type, input },
      });
      return { statusCode: res.statusCode, body: res.json<Record<string, unknown>>() };
    },
    job: (id) => jobsCollection(db).findOne({ _id: id }),
    async waitForJobs(ids, statuses, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const docs = await jobsCollection(db)
          .find({ _id: { $in: [...ids] } })
          .toArray();
        if (docs.length === ids.length && docs.every((d) => statuses.includes(d.status))) return docs;
        if (Date.now() > deadline) {
          const summary = docs.reduce<Record<string, number>>(
            (acc, d) => ({ ...acc, [d.status]: (acc[d.status] ?? 0) + 1 }),
            {},
          );
          throw new Error(
            `jobs not ${statuses.join('/')} within ${timeoutMs} ms: ${JSON.stringify(summary)} of ${ids.length}`,
          );
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async queueDepth(queue) {
      const ch = await (await inspector()).createChannel();
      try {
        return (await ch.checkQueue(queue)).messageCount;
      } finally {
        await ch.close().catch(() => undefined);
      }
    },
    async close() {
      for (const c of children) c.kill('SIGKILL');
      await Promise.all(children.map((c) => c.exited));
      await app.close();
      await publisher.close();
      const ch = await inspector()
        .then((c) => c.createChannel())
        .catch(() => undefined);
      if (ch !== undefined) {
        // Leave the shared broker clean for the next suite.
        for (let tier = 0; tier < 20; tier++) await ch.deleteQueue(names.retryQueue(tier)).catch(() => undefined);
        await ch.deleteQueue(names.workQueue).catch(() => undefined);
        await ch.deleteQueue(names.deadQueue).catch(() => undefined);
        await ch.deleteExchange(names.exchange).catch(() => undefined);
        await ch.close().catch(() => undefined);
      }
      await inspectorConn?.close().catch(() => undefined);
      await db.dropDatabase().catch(() => undefined);
      await client.close();
      rmSync(keysDir, { recursive: true, force: true });
    },
  };
  return ctx;
}

/** Counts for a fault scenario: submitted, completed, duplicated (a finished job whose handler ran > 1 time), lost. */
export interface FaultReport {
  readonly scenario: string;
  readonly submitted: number;
  readonly completed: number;
  readonly duplicated: number;
  readonly lost: number;
}

export function faultReport(scenario: string, submitted: number, docs: readonly JobDocument[]): FaultReport {
  const completed = docs.filter((d) => d.status === 'succeeded').length;
  const duplicated = docs.filter((d) => d.runs > 1).length;
  const report = { scenario, submitted, completed, duplicated, lost: submitted - completed };
  console.log(`FAULT REPORT ${JSON.stringify(report)}`);
  return report;
}
