import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as amqp from 'amqplib';
import { Queue } from 'bullmq';
import { MongoClient, type Collection, type Db } from 'mongodb';
import {
  closedLoop,
  paced,
  getLoad,
  postJobs,
  scrapeCounter,
  scrapeHistogramMeanMs,
  waitForCount,
  WorkerChild,
  type HttpLoad,
} from './lib/load.js';
import { cpuMsPer, cpuSeconds } from './lib/cpu.js';
import { summarizeProfile, type ProfileSummary } from './lib/profile.js';
import {
  BENCH_ROOT,
  freePort,
  launch,
  pidsOf,
  readMemory,
  sampleMemory,
  startService,
  stopChild,
  waitForHttp,
  withDatabase,
  type DbBackend,
  type MongoEndpoint,
  type Running,
  type ServiceProcess,
} from './lib/servers.js';
import { servicesJobs, servicesTopology, type JobDoc } from './lib/services.js';
import { percentile, ratios, summarize, type Summary } from './lib/stats.js';

/** Fixed HTTP concurrency of every accept-path and pipeline load (autocannon `connections`). */
export const CONNECTIONS = 10;

export interface Sizes {
  readonly reps: number;
  readonly acceptDurationS: number;
  readonly pipelineJobs: number;
  readonly halfDurationS: number;
  readonly rawJobs: number;
  readonly bullJobs: number;
  readonly backlogJobs: number;
  readonly prefetchJobs: number;
  readonly profileDurationS: number;
}

/** Sizes of a full run on a real MongoDB (`--db mongodb://…`): the 100,000-job backlog. */
export const FULL: Sizes = {
  reps: 3,
  acceptDurationS: 8,
  pipelineJobs: 1000,
  halfDurationS: 8,
  rawJobs: 20_000,
  bullJobs: 10_000,
  backlogJobs: 100_000,
  prefetchJobs: 2000,
  profileDurationS: 8,
};

/**
 * FerretDB 1.24 as shipped finds even an `_id` by scanning the collection, so every job gets slower as the backlog
 * grows: on PostgreSQL without the bench's GIN indexes (`--db postgresql-plain`) 100,000 jobs drain at ~17 jobs/s
 * (about 100 min per drain), so that run uses 10,000; on SQLite, tens of jobs per second from the start, 1,000.
 */
export const FULL_FERRETDB_PLAIN: Sizes = { ...FULL, backlogJobs: 10_000 };
export const FULL_SQLITE: Sizes = { ...FULL, pipelineJobs: 150, backlogJobs: 1000, prefetchJobs: 200 };

export const QUICK: Sizes = {
  reps: 1,
  acceptDurationS: 2,
  pipelineJobs: 30,
  halfDurationS: 2,
  rawJobs: 2000,
  bullJobs: 1000,
  backlogJobs: 200,
  prefetchJobs: 200,
  profileDurationS: 0,
};

export function sizesFor(quick: boolean, backend: DbBackend): Sizes {
  if (quick) return QUICK;
  if (backend.kind === 'sqlite') return FULL_SQLITE;
  return backend.kind === 'postgresql' && !backend.mirrorIndexes ? FULL_FERRETDB_PLAIN : FULL;
}

export interface Servers {
  readonly rabbit: Running;
  readonly mongo: MongoEndpoint;
  readonly redis: Running & { readonly port: number };
}

export interface Ctx {
  readonly sizes: Sizes;
  readonly base: string;
  readonly servers: Servers;
  /** Prefixed to every database name, so runs against a shared MongoDB never meet (and can be dropped after). */
  readonly dbPrefix: string;
  readonly log: (line: string) => void;
  /** `GROUP_COMMIT_*` for every service process (`--group-commit`); empty: the services' defaults. */
  readonly serviceEnv: Readonly<Record<string, string>>;
}

/** Every database name this run used, for dropping them from an external MongoDB afterwards. */
export const usedDatabases = new Set<string>();

function dbName(ctx: Ctx, db: string): string {
  const name = `${ctx.dbPrefix}${db}`;
  usedDatabases.add(name);
  return name;
}

/** Drops the run's databases (only worth doing on a MongoDB that outlives the run). */
export async function dropDatabases(url: string): Promise<void> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 5000 });
  try {
    await client.connect();
    for (const name of usedDatabases) await client.db(name).dropDatabase();
  } finally {
    await client.close();
  }
}

/** Each part has its own queue prefix and database; `db` differs from the prefix when a part wants a fresh collection. */
function serviceEnv(ctx: Ctx, name: string, extra: Record<string, string> = {}, db = name): Record<string, string> {
  return {
    AMQP_URL: ctx.servers.rabbit.url,
    MONGO_URL: withDatabase(ctx.servers.mongo.url, dbName(ctx, db)),
    QUEUE_PREFIX: name,
    ...ctx.serviceEnv,
    ...extra,
  };
}

async function withMongo<T>(
  ctx: Ctx,
  db: string,
  fn: (jobs: Collection<JobDoc>, database: Db) => Promise<T>,
): Promise<T> {
  const client = new MongoClient(ctx.servers.mongo.url, { serverSelectionTimeoutMS: 5000 });
  try {
    await client.connect();
    const database = client.db(dbName(ctx, db));
    return await fn(database.collection<JobDoc>('jobs'), database);
  } finally {
    await client.close();
  }
}

/** Enqueue-to-done of the jobs created since `since` (finishedAt − createdAt, both written by the services). */
async function jobLatencies(
  ctx: Ctx,
  db: string,
  since: Date,
): Promise<{ latencies: number[]; first: number; last: number }> {
  return withMongo(ctx, db, async (jobs) => {
    const rows = await jobs
      .find({ createdAt: { $gte: since }, status: 'succeeded' }, { projection: { createdAt: 1, finishedAt: 1 } })
      .toArray();
    const latencies: number[] = [];
    let first = Number.POSITIVE_INFINITY;
    let last = 0;
    for (const r of rows) {
      const c = r.createdAt.getTime();
      const f = r.finishedAt?.getTime() ?? c;
      latencies.push(f - c);
      first = Math.min(first, c);
      last = Math.max(last, f);
    }
    return { latencies, first, last };
  });
}

/** Seconds the processes spent in MongoDB round trips so far (driver command monitoring, all commands). */
async function dbSeconds(procs: readonly ServiceProcess[]): Promise<number> {
  const sums = await Promise.all(
    procs.map((p) => scrapeCounter(p.metricsUrl, 'mongodb_command_duration_seconds_sum', {})),
  );
  return sums.reduce((a, b) => a + b, 0);
}

/** MongoDB round trips the processes made so far (every command, from driver command monitoring). */
async function dbRoundTrips(procs: readonly ServiceProcess[]): Promise<number> {
  const counts = await Promise.all(
    procs.map((p) => scrapeCounter(p.metricsUrl, 'mongodb_command_duration_seconds_count', {})),
  );
  return counts.reduce((a, b) => a + b, 0);
}

/** Root pids of the servers, by name, for {@link cpuSeconds}. */
function serverPids(ctx: Ctx): Record<string, readonly number[]> {
  return { rabbitmq: pidsOf(ctx.servers.rabbit), ...ctx.servers.mongo.pids };
}

function succeeded(consumers: readonly ServiceProcess[]): () => Promise<number> {
  return async () => {
    const counts = await Promise.all(
      consumers.map((c) => scrapeCounter(c.metricsUrl, 'job_deliveries_total', { outcome: 'succeeded' })),
    );
    return counts.reduce((a, b) => a + b, 0);
  };
}

// ─── 2. Accept path ──────────────────────────────────────────────────────────────────────────────────────────

export interface AcceptResults {
  readonly connections: number;
  readonly durationS: number;
  readonly producerRps: Summary;
  readonly constantRps: Summary;
  readonly ratio: Summary;
  readonly producerSatP99Ms: Summary;
  /**
   * The same producer with authentication on (bearer token checked against a keys file of
   * {@link AUTH_BENCH_CLIENTS} clients, constant-time) and the per-client rate limiter on (a limit never reached),
   * in the same repetitions, interleaved with the producer without them.
   */
  readonly auth: {
    readonly rps: Summary;
    readonly satP99Ms: Summary;
    readonly ratio: Summary;
    /**
     * `GET /v1/job-types` (no database, no broker) at saturation on both producers: the cost of authentication
     * and the limiter alone, which the database-bound POST cannot resolve.
     */
    readonly noDb: { readonly withoutRps: Summary; readonly withRps: Summary; readonly ratio: Summary };
  };
  /** At a fixed rate of half of each server's own saturation. */
  readonly half: {
    readonly producerRate: number;
    readonly constantRate: number;
    readonly producerP50Ms: Summary;
    readonly producerP99Ms: Summary;
    readonly constantP50Ms: Summary;
    readonly constantP99Ms: Summary;
  };
  /** Means from the producer's own /metrics over the whole part (warm-up included). */
  readonly producerMetrics: {
    readonly httpMeanMs: number;
    readonly publishConfirmMeanMs: number;
    /** MongoDB round-trip time per POST /v1/jobs (every command the producer sent, ÷ requests). */
    readonly dbMsPerRequest: number;
    /** MongoDB round trips per POST /v1/jobs (every command the producer sent, ÷ requests). */
    readonly dbRoundTripsPerRequest: number;
  };
  /** The producer with one connection sending one request at a time (a lone request's latency). */
  readonly oneAtATime: { readonly rps: Summary; readonly p50Ms: Summary; readonly p99Ms: Summary };
  /** CPU ms per accepted request of the producer and each server at saturation, medians over the repetitions. */
  readonly cpuMsPerRequest: Readonly<Record<string, number>>;
}

async function startConstant(ctx: Ctx): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const child = launch(process.execPath, [join(BENCH_ROOT, 'build', 'constant-server.js')], {
    env: { PATH: process.env.PATH ?? '', PORT: String(port) },
    logFile: join(ctx.base, 'constant.log'),
  });
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/readyz`, 20_000, () => child.exitCode === null);
  return { url, stop: () => stopChild(child) };
}

/** Clients in the keys file of the authenticated producer: every request compares against all of them. */
export const AUTH_BENCH_CLIENTS = 10;

/** A keys file of {@link AUTH_BENCH_CLIENTS} clients; returns its path and the token of the last one. */
function writeBenchKeys(base: string): { path: string; token: string } {
  const lines: string[] = [];
  let token = '';
  for (let i = 0; i < AUTH_BENCH_CLIENTS; i++) {
    token = randomBytes(32).toString('base64url');
    lines.push(`bench${i} jobs:submit,jobs:read ${createHash('sha256').update(token).digest('hex')}`);
  }
  const path = join(base, 'api-keys');
  writeFileSync(path, `${lines.join('\n')}\n`, { mode: 0o600 });
  return { path, token };
}

export async function runAccept(ctx: Ctx): Promise<AcceptResults> {
  const { sizes, log } = ctx;
  const constant = await startConstant(ctx);
  const producer = await startService('producer', ctx.base, serviceEnv(ctx, 'accept'));
  const keys = writeBenchKeys(ctx.base);
  const authed = await startService(
    'producer',
    ctx.base,
    serviceEnv(ctx, 'acceptauth', {
      API_KEYS_FILE: keys.path,
      RATE_LIMIT_PER_SECOND: '1000000',
      RATE_LIMIT_BURST: '1000000',
    }),
  );
  try {
    const d = sizes.acceptDurationS;
    await postJobs(constant.url, { connections: CONNECTIONS, durationS: 1, keyPrefix: 'warm' });
    await postJobs(producer.url, { connections: CONNECTIONS, durationS: 2, keyPrefix: 'warm' });
    await postJobs(authed.url, { connections: CONNECTIONS, durationS: 2, keyPrefix: 'warm', token: keys.token });
    const prod: HttpLoad[] = [];
    const cons: HttpLoad[] = [];
    const auth: HttpLoad[] = [];
    const acceptGroups = { producer: [producer.pid], ...serverPids(ctx) };
    const acceptCpu: Record<string, number[]> = {};
    for (let r = 0; r < sizes.reps; r++) {
      cons.push(await postJobs(constant.url, { connections: CONNECTIONS, durationS: d, keyPrefix: `c${r}` }));
      // Alternating order: the second run of a pair meets the database still settling the first one's writes.
      const runProd = async (): Promise<void> => {
        const cpu0 = cpuSeconds(acceptGroups);
        const load = await postJobs(producer.url, { connections: CONNECTIONS, durationS: d, keyPrefix: `s${r}` });
        prod.push(load);
        for (const [k, v] of Object.entries(cpuMsPer(cpu0, cpuSeconds(acceptGroups), load.ok)))
          acceptCpu[k] = [...(acceptCpu[k] ?? []), v];
      };
      const runAuth = async (): Promise<void> => {
        auth.push(
          await postJobs(authed.url, { connections: CONNECTIONS, durationS: d, keyPrefix: `a${r}`, token: keys.token }),
        );
      };
      if (r % 2 === 0) {
        await runProd();
        await runAuth();
      } else {
        await runAuth();
        await runProd();
      }
      log(
        `accept rep ${r + 1}: producer ${prod[r]?.rps.toFixed(0)} rps, with auth ${auth[r]?.rps.toFixed(0)} rps, constant ${cons[r]?.rps.toFixed(0)} rps`,
      );
    }
    const typesWithout: HttpLoad[] = [];
    const typesWith: HttpLoad[] = [];
    for (let r = 0; r < sizes.reps; r++) {
      const without = (): Promise<HttpLoad> =>
        getLoad(producer.url, '/v1/job-types', { connections: CONNECTIONS, durationS: d });
      const withAuth = (): Promise<HttpLoad> =>
        getLoad(authed.url, '/v1/job-types', { connections: CONNECTIONS, durationS: d, token: keys.token });
      if (r % 2 === 0) {
        typesWithout.push(await without());
        typesWith.push(await withAuth());
      } else {
        typesWith.push(await withAuth());
        typesWithout.push(await without());
      }
      log(
        `accept GET /v1/job-types rep ${r + 1}: without auth ${typesWithout[r]?.rps.toFixed(0)} rps, with auth ${typesWith[r]?.rps.toFixed(0)} rps`,
      );
    }
    const authErrors = [...auth, ...typesWith].reduce((s, p) => s + p.errors, 0);
    if (authErrors > 0) log(`accept: ${authErrors} authenticated producer requests failed or were not 2xx`);
    const prodRps = summarize(prod.map((p) => p.rps));
    const consRps = summarize(cons.map((p) => p.rps));
    const producerRate = Math.max(1, Math.round(prodRps.median / 2));
    const constantRate = Math.max(1, Math.round(consRps.median / 2));
    const hp: HttpLoad[] = [];
    const hc: HttpLoad[] = [];
    for (let r = 0; r < sizes.reps; r++) {
      hc.push(
        await postJobs(constant.url, {
          connections: CONNECTIONS,
          durationS: d,
          overallRate: constantRate,
          keyPrefix: `hc${r}`,
        }),
      );
      hp.push(
        await postJobs(producer.url, {
          connections: CONNECTIONS,
          durationS: d,
          overallRate: producerRate,
          keyPrefix: `hs${r}`,
        }),
      );
      log(`accept half rep ${r + 1}: producer p50 ${hp[r]?.p50Ms} ms p99 ${hp[r]?.p99Ms} ms at ${producerRate}/s`);
    }
    // One request at a time (one connection, closed loop): what group commit's wait bound may cost a lone request.
    const lone: HttpLoad[] = [];
    for (let r = 0; r < sizes.reps; r++) {
      lone.push(await postJobs(producer.url, { connections: 1, durationS: d, keyPrefix: `one${r}` }));
      log(
        `accept one at a time rep ${r + 1}: p50 ${lone[r]?.p50Ms} ms p99 ${lone[r]?.p99Ms} ms, ${lone[r]?.rps.toFixed(0)} rps`,
      );
    }
    const errors = [...prod, ...hp, ...lone].reduce((s, p) => s + p.errors, 0);
    if (errors > 0) log(`accept: ${errors} producer requests failed or were not 2xx`);
    const metricsUrl = producer.metricsUrl;
    const producerMetrics = {
      httpMeanMs: await scrapeHistogramMeanMs(metricsUrl, 'http_request_duration_seconds', { route: '/v1/jobs' }),
      publishConfirmMeanMs: await scrapeHistogramMeanMs(metricsUrl, 'job_publish_duration_seconds', {
        outcome: 'confirmed',
      }),
      dbMsPerRequest:
        ((await dbSeconds([producer])) * 1000) /
        Math.max(1, await scrapeCounter(metricsUrl, 'http_request_duration_seconds_count', { route: '/v1/jobs' })),
      dbRoundTripsPerRequest:
        (await dbRoundTrips([producer])) /
        Math.max(1, await scrapeCounter(metricsUrl, 'http_request_duration_seconds_count', { route: '/v1/jobs' })),
    };
    return {
      connections: CONNECTIONS,
      durationS: d,
      producerRps: prodRps,
      constantRps: consRps,
      ratio: ratios(
        prod.map((p) => p.rps),
        cons.map((p) => p.rps),
      ),
      producerSatP99Ms: summarize(prod.map((p) => p.p99Ms)),
      auth: {
        rps: summarize(auth.map((p) => p.rps)),
        satP99Ms: summarize(auth.map((p) => p.p99Ms)),
        ratio: ratios(
          auth.map((p) => p.rps),
          prod.map((p) => p.rps),
        ),
        noDb: {
          withoutRps: summarize(typesWithout.map((p) => p.rps)),
          withRps: summarize(typesWith.map((p) => p.rps)),
          ratio: ratios(
            typesWith.map((p) => p.rps),
            typesWithout.map((p) => p.rps),
          ),
        },
      },
      half: {
        producerRate,
        constantRate,
        producerP50Ms: summarize(hp.map((p) => p.p50Ms)),
        producerP99Ms: summarize(hp.map((p) => p.p99Ms)),
        constantP50Ms: summarize(hc.map((p) => p.p50Ms)),
        constantP99Ms: summarize(hc.map((p) => p.p99Ms)),
      },
      producerMetrics,
      oneAtATime: {
        rps: summarize(lone.map((l) => l.rps)),
        p50Ms: summarize(lone.map((l) => l.p50Ms)),
        p99Ms: summarize(lone.map((l) => l.p99Ms)),
      },
      cpuMsPerRequest: Object.fromEntries(Object.entries(acceptCpu).map(([k, v]) => [k, summarize(v).median])),
    };
  } finally {
    await producer.stop();
    await authed.stop();
    await constant.stop();
    await purge(ctx, ['accept.work', 'acceptauth.work']);
  }
}

async function purge(ctx: Ctx, queues: readonly string[]): Promise<void> {
  const conn = await amqp.connect(ctx.servers.rabbit.url);
  try {
    const ch = await conn.createChannel();
    for (const q of queues) await ch.deleteQueue(q).catch(() => undefined);
  } finally {
    await conn.close().catch(() => undefined);
  }
}

// ─── 3. Pipeline against the broker's ceiling and BullMQ ─────────────────────────────────────────────────────

export interface PipelineSystem {
  readonly jobsPerSecond: Summary;
  readonly halfRate: number;
  readonly p50Ms: Summary;
  readonly p99Ms: Summary;
}

export interface PipelineResults {
  readonly concurrency: number;
  readonly services: PipelineSystem;
  readonly amqp: PipelineSystem;
  readonly bullmq: PipelineSystem;
  readonly vsAmqp: Summary;
  readonly vsBullmq: Summary;
  /** MongoDB round trips of the producer and the consumer together per job, over the saturation runs. */
  readonly dbRoundTripsPerJob: number;
  /** CPU ms per job of each process (tree) over the saturation runs: where a job's time goes. */
  readonly cpuMsPerJob: Readonly<Record<string, number>>;
}

interface Batch {
  readonly jobsPerSecond: number;
  readonly latencies: readonly number[];
}

/** One batch through producer → RabbitMQ → consumer: `rate` undefined means as fast as 10 clients can submit. */
async function servicesBatch(
  ctx: Ctx,
  producer: ServiceProcess,
  consumer: ServiceProcess,
  jobs: number,
  rate: number | undefined,
  tag: string,
): Promise<Batch> {
  const since = new Date(Date.now() - 1);
  const before = await succeeded([consumer])();
  const load = await postJobs(producer.url, {
    connections: CONNECTIONS,
    amount: jobs,
    ...(rate !== undefined ? { overallRate: rate } : {}),
    keyPrefix: tag,
  });
  await waitForCount(async () => (await succeeded([consumer])()) - before, load.ok, 120_000 + jobs * 500);
  const { latencies, first, last } = await jobLatencies(ctx, 'pipeline', since);
  return { jobsPerSecond: (latencies.length * 1000) / Math.max(1, last - first), latencies };
}

async function amqpBatch(
  ch: amqp.ConfirmChannel,
  worker: WorkerChild,
  jobs: number,
  rate: number | undefined,
): Promise<Batch> {
  await worker.reset();
  const send = (): Promise<void> =>
    new Promise((resolve, reject) => {
      ch.publish(
        '',
        'raw.work',
        Buffer.from(JSON.stringify({ t: Date.now() })),
        { persistent: true, contentType: 'application/json' },
        (err: unknown) =>
          err !== null && err !== undefined
            ? reject(err instanceof Error ? err : new Error('publish not confirmed'))
            : resolve(),
      );
    });
  const t0 = Date.now();
  if (rate === undefined) await closedLoop(jobs, CONNECTIONS, send);
  else await paced(jobs, rate, send);
  await waitForCount(async () => (await worker.report()).count, jobs, 120_000);
  const report = await worker.report();
  return { jobsPerSecond: (jobs * 1000) / Math.max(1, report.lastDoneAt - t0), latencies: report.latenciesMs };
}

async function bullBatch(queue: Queue, worker: WorkerChild, jobs: number, rate: number | undefined): Promise<Batch> {
  await worker.reset();
  const send = async (): Promise<void> => {
    await queue.add('noop', {});
  };
  const t0 = Date.now();
  if (rate === undefined) await closedLoop(jobs, CONNECTIONS, send);
  else await paced(jobs, rate, send);
  await waitForCount(async () => (await worker.report()).count, jobs, 120_000);
  const report = await worker.report();
  return { jobsPerSecond: (jobs * 1000) / Math.max(1, report.lastDoneAt - t0), latencies: report.latenciesMs };
}

function system(sat: readonly Batch[], half: readonly Batch[], halfRate: number): PipelineSystem {
  return {
    jobsPerSecond: summarize(sat.map((b) => b.jobsPerSecond)),
    halfRate,
    p50Ms: summarize(half.map((b) => percentile(b.latencies, 50))),
    p99Ms: summarize(half.map((b) => percentile(b.latencies, 99))),
  };
}

export async function runPipeline(ctx: Ctx): Promise<PipelineResults> {
  const { sizes, log, servers } = ctx;
  const producer = await startService('producer', ctx.base, serviceEnv(ctx, 'pipeline'));
  const consumer = await startService(
    'consumer',
    ctx.base,
    serviceEnv(ctx, 'pipeline', { PREFETCH: '10', CONCURRENCY: '10' }),
  );
  const conn = await amqp.connect(servers.rabbit.url, { noDelay: true });
  const ch = await conn.createConfirmChannel();
  await ch.assertQueue('raw.work', { durable: true, arguments: { 'x-queue-type': 'classic' } });
  const amqpWorker = await WorkerChild.start(
    ['amqp', servers.rabbit.url, 'raw.work', '10'],
    join(ctx.base, 'amqp-worker.log'),
  );
  const queue = new Queue('bench', { connection: { host: '127.0.0.1', port: servers.redis.port } });
  const bullWorker = await WorkerChild.start(
    ['bullmq', String(servers.redis.port), 'bench', '10'],
    join(ctx.base, 'bull-worker.log'),
  );
  try {
    // Warm-up: JIT, connection pools, queue creation.
    await servicesBatch(ctx, producer, consumer, 20, undefined, 'warm');
    await amqpBatch(ch, amqpWorker, 1000, undefined);
    await bullBatch(queue, bullWorker, 500, undefined);
    const sat = { s: [] as Batch[], a: [] as Batch[], b: [] as Batch[] };
    let roundTrips = 0;
    const groups = { producer: [producer.pid], consumer: [consumer.pid], ...serverPids(ctx) };
    const cpu: Record<string, number> = {};
    for (let r = 0; r < sizes.reps; r++) {
      const rt0 = await dbRoundTrips([producer, consumer]);
      const cpu0 = cpuSeconds(groups);
      sat.s.push(await servicesBatch(ctx, producer, consumer, sizes.pipelineJobs, undefined, `sat${r}`));
      for (const [k, v] of Object.entries(cpuMsPer(cpu0, cpuSeconds(groups), sizes.reps * sizes.pipelineJobs)))
        cpu[k] = (cpu[k] ?? 0) + v;
      roundTrips += (await dbRoundTrips([producer, consumer])) - rt0;
      sat.a.push(await amqpBatch(ch, amqpWorker, sizes.rawJobs, undefined));
      sat.b.push(await bullBatch(queue, bullWorker, sizes.bullJobs, undefined));
      log(
        `pipeline rep ${r + 1}: services ${sat.s[r]?.jobsPerSecond.toFixed(0)} jobs/s, amqplib ${sat.a[r]?.jobsPerSecond.toFixed(0)}, BullMQ ${sat.b[r]?.jobsPerSecond.toFixed(0)}`,
      );
    }
    const halfOf = (bs: readonly Batch[]): number =>
      Math.max(1, Math.round(summarize(bs.map((b) => b.jobsPerSecond)).median / 2));
    const rates = { s: halfOf(sat.s), a: halfOf(sat.a), b: halfOf(sat.b) };
    const half = { s: [] as Batch[], a: [] as Batch[], b: [] as Batch[] };
    const d = sizes.halfDurationS;
    for (let r = 0; r < sizes.reps; r++) {
      half.s.push(await servicesBatch(ctx, producer, consumer, rates.s * d, rates.s, `half${r}`));
      half.a.push(await amqpBatch(ch, amqpWorker, rates.a * d, rates.a));
      half.b.push(await bullBatch(queue, bullWorker, rates.b * d, rates.b));
      log(
        `pipeline half rep ${r + 1}: services p99 ${percentile(half.s[r]?.latencies ?? [], 99)} ms, amqplib ${percentile(half.a[r]?.latencies ?? [], 99)} ms, BullMQ ${percentile(half.b[r]?.latencies ?? [], 99)} ms`,
      );
    }
    return {
      concurrency: CONNECTIONS,
      services: system(sat.s, half.s, rates.s),
      amqp: system(sat.a, half.a, rates.a),
      bullmq: system(sat.b, half.b, rates.b),
      vsAmqp: ratios(
        sat.s.map((b) => b.jobsPerSecond),
        sat.a.map((b) => b.jobsPerSecond),
      ),
      vsBullmq: ratios(
        sat.s.map((b) => b.jobsPerSecond),
        sat.b.map((b) => b.jobsPerSecond),
      ),
      dbRoundTripsPerJob: roundTrips / Math.max(1, sizes.reps * sizes.pipelineJobs),
      cpuMsPerJob: cpu,
    };
  } finally {
    await bullWorker.stop();
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    await amqpWorker.stop();
    await ch.deleteQueue('raw.work').catch(() => undefined);
    await conn.close().catch(() => undefined);
    await consumer.stop();
    await producer.stop();
  }
}

// ─── 4 and 5. Backlog drain, memory, prefetch ────────────────────────────────────────────────────────────────

/** Lets the producer declare the exchange and work queue (so the seed matches the services' topology exactly). */
async function declareTopology(ctx: Ctx, name: string): Promise<void> {
  const producer = await startService('producer', ctx.base, serviceEnv(ctx, name));
  await producer.stop();
}

/**
 * Puts `jobs` queued no-op jobs in MongoDB and their messages in RabbitMQ exactly as the producer stores and
 * publishes them (the services' own newJobDocument, publication records and message encoding; the publication
 * records tell the outbox sweeper they are published), without going through HTTP: the drain is what is measured.
 */
async function seedBacklog(ctx: Ctx, name: string, jobs: number, db = name): Promise<void> {
  const { newJobDocument, PUBLICATIONS_COLLECTION } = servicesJobs();
  const { encodeJobMessage, topologyNames, WORK_ROUTING_KEY } = servicesTopology();
  const { exchange } = topologyNames(name);
  const conn = await amqp.connect(ctx.servers.rabbit.url, { noDelay: true });
  const ch = await conn.createConfirmChannel();
  try {
    await withMongo(ctx, db, async (coll, database) => {
      const publications = database.collection<{ _id: string; at: Date }>(PUBLICATIONS_COLLECTION);
      const batch = 1000;
      for (let i = 0; i < jobs; i += batch) {
        const at = new Date();
        const docs = Array.from({ length: Math.min(batch, jobs - i) }, () =>
          newJobDocument({ owner: 'bench', idempotencyKey: randomUUID(), type: 'noop', input: {}, at }),
        );
        await coll.insertMany(docs, { ordered: false });
        for (const doc of docs) {
          ch.publish(exchange, WORK_ROUTING_KEY, encodeJobMessage(doc._id), {
            persistent: true,
            contentType: 'application/json',
            messageId: doc._id,
            type: doc.type,
            timestamp: Math.floor(at.getTime() / 1000),
          });
        }
        await ch.waitForConfirms();
        await publications.insertMany(
          docs.map((d) => ({ _id: d._id, at })),
          { ordered: false },
        );
      }
    });
  } finally {
    await conn.close().catch(() => undefined);
  }
}

interface Drain {
  readonly jobsPerSecond: number;
  readonly peakRssMiB: readonly number[];
  /** RSS of each consumer once ready, before the drain: peak − ready shows whether memory grows with the backlog. */
  readonly readyRssMiB: readonly number[];
  /** Median of each consumer's RSS samples (every 250 ms) during the drain. */
  readonly medianRssMiB: readonly number[];
  /**
   * Median RSS of the last tenth of the drain minus that of the first tenth, per consumer: near 0 when memory is
   * flat, growing with the backlog when something accumulates per job.
   */
  readonly rssGrowthMiB: readonly number[];
  readonly seconds: number;
  /** The consumers' MongoDB round-trip time per job during the drain (driver command monitoring). */
  readonly dbMsPerJob: number;
  /** The consumers' MongoDB round trips per job during the drain. */
  readonly dbRoundTripsPerJob: number;
  /** CPU ms per job of the consumers and each server during the drain. */
  readonly cpuMsPerJob: Readonly<Record<string, number>>;
}

async function drain(
  ctx: Ctx,
  name: string,
  jobs: number,
  consumers: number,
  env: Record<string, string> = {},
  nodeArgs: readonly string[] = [],
  db = name,
): Promise<Drain> {
  const procs = await Promise.all(
    Array.from({ length: consumers }, () =>
      startService('consumer', ctx.base, serviceEnv(ctx, name, env, db), nodeArgs),
    ),
  );
  const readyRssMiB = procs.map((p) => readMemory(p.pid)?.rssMiB ?? Number.NaN);
  const samplers = procs.map((p) => sampleMemory(p.pid));
  try {
    const read = succeeded(procs);
    const db0 = await dbSeconds(procs);
    const rt0 = await dbRoundTrips(procs);
    const groups = { consumer: procs.map((p) => p.pid), ...serverPids(ctx) };
    const cpu0 = cpuSeconds(groups);
    const c0 = await read();
    const t0 = Date.now();
    const t1 = await waitForCount(read, jobs, 120_000 + jobs * 500, 200);
    const seconds = (t1 - t0) / 1000;
    const dbMsPerJob = (((await dbSeconds(procs)) - db0) * 1000) / Math.max(1, jobs - c0);
    const dbRoundTripsPerJob = ((await dbRoundTrips(procs)) - rt0) / Math.max(1, jobs - c0);
    const cpuMsPerJob = cpuMsPer(cpu0, cpuSeconds(groups), jobs - c0);
    const memory = samplers.map((s) => s.stop());
    return {
      jobsPerSecond: (jobs - c0) / seconds,
      peakRssMiB: memory.map((m) => m.peakMiB),
      readyRssMiB,
      medianRssMiB: memory.map((m) => summarize(m.rssMiB).median),
      rssGrowthMiB: memory.map((m) => {
        const tenth = Math.max(1, Math.floor(m.rssMiB.length / 10));
        return summarize(m.rssMiB.slice(-tenth)).median - summarize(m.rssMiB.slice(0, tenth)).median;
      }),
      seconds,
      dbMsPerJob,
      dbRoundTripsPerJob,
      cpuMsPerJob,
    };
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
  }
}

export interface BacklogResults {
  readonly jobs: number;
  readonly prefetch: number;
  readonly reps: number;
  /** Every drain, in the order run (1 and 2 consumers interleaved, each from a fresh collection). */
  readonly runs: readonly ({ readonly consumers: number; readonly rep: number } & Drain)[];
  readonly byConsumers: readonly {
    readonly consumers: number;
    readonly jobsPerSecond: Summary;
    readonly dbMsPerJob: Summary;
    readonly dbRoundTripsPerJob: Summary;
    /** CPU ms per job by process, medians over the repetitions. */
    readonly cpuMsPerJob: Readonly<Record<string, number>>;
    /** Over every consumer process of every repetition. */
    readonly readyRssMiB: Summary;
    readonly medianRssMiB: Summary;
    readonly peakRssMiB: Summary;
    readonly rssGrowthMiB: Summary;
  }[];
  /** jobs/s with 2 consumers ÷ with 1, per repetition. */
  readonly scaling: Summary;
}

export async function runBacklog(ctx: Ctx): Promise<BacklogResults> {
  const runs: BacklogResults['runs'][number][] = [];
  const counts = [1, 2];
  for (const consumers of counts) await declareTopology(ctx, `backlog${consumers}`);
  for (let rep = 0; rep < ctx.sizes.reps; rep++) {
    for (const consumers of counts) {
      const name = `backlog${consumers}`;
      // A fresh collection per drain, so every drain starts from the same collection size.
      const db = `${name}-${rep}`;
      const seedStart = Date.now();
      await seedBacklog(ctx, name, ctx.sizes.backlogJobs, db);
      ctx.log(
        `backlog rep ${rep + 1}: seeded ${ctx.sizes.backlogJobs} jobs in ${((Date.now() - seedStart) / 1000).toFixed(1)} s`,
      );
      const d = await drain(ctx, name, ctx.sizes.backlogJobs, consumers, { PREFETCH: '10', CONCURRENCY: '10' }, [], db);
      ctx.log(
        `backlog rep ${rep + 1}: ${consumers} consumer(s) drained at ${d.jobsPerSecond.toFixed(0)} jobs/s, ${d.dbMsPerJob.toFixed(2)} ms in MongoDB per job (${d.dbRoundTripsPerJob.toFixed(2)} round trips), RSS median ${d.medianRssMiB.map((m) => m.toFixed(0)).join(', ')} MiB, peak ${d.peakRssMiB.map((m) => m.toFixed(0)).join(', ')} MiB`,
      );
      runs.push({ consumers, rep, ...d });
    }
  }
  const of = (consumers: number): BacklogResults['runs'] => runs.filter((r) => r.consumers === consumers);
  return {
    jobs: ctx.sizes.backlogJobs,
    prefetch: 10,
    reps: ctx.sizes.reps,
    runs,
    byConsumers: counts.map((consumers) => {
      const rs = of(consumers);
      return {
        consumers,
        jobsPerSecond: summarize(rs.map((r) => r.jobsPerSecond)),
        dbMsPerJob: summarize(rs.map((r) => r.dbMsPerJob)),
        dbRoundTripsPerJob: summarize(rs.map((r) => r.dbRoundTripsPerJob)),
        cpuMsPerJob: Object.fromEntries(
          Object.keys(rs[0]?.cpuMsPerJob ?? {}).map((k) => [k, summarize(rs.map((r) => r.cpuMsPerJob[k] ?? 0)).median]),
        ),
        readyRssMiB: summarize(rs.flatMap((r) => r.readyRssMiB)),
        medianRssMiB: summarize(rs.flatMap((r) => r.medianRssMiB)),
        peakRssMiB: summarize(rs.flatMap((r) => r.peakRssMiB)),
        rssGrowthMiB: summarize(rs.flatMap((r) => r.rssGrowthMiB)),
      };
    }),
    scaling: ratios(
      of(2).map((r) => r.jobsPerSecond),
      of(1).map((r) => r.jobsPerSecond),
    ),
  };
}

export interface PrefetchResults {
  readonly jobs: number;
  readonly values: readonly {
    readonly prefetch: number;
    readonly jobsPerSecond: Summary;
    readonly vsDefault: Summary;
    /** The consumer's MongoDB round-trip ms per job. */
    readonly dbMsPerJob: Summary;
  }[];
}

export async function runPrefetch(ctx: Ctx): Promise<PrefetchResults> {
  const values = [1, 10, 100];
  const name = 'prefetch';
  await declareTopology(ctx, name);
  const samples = new Map<number, number[]>(values.map((v) => [v, []]));
  const dbMs = new Map<number, number[]>(values.map((v) => [v, []]));
  for (let r = 0; r < ctx.sizes.reps; r++) {
    for (const p of values) {
      // A fresh collection per drain, so every value starts from the same collection size.
      const db = `prefetch-${p}-${r}`;
      await seedBacklog(ctx, name, ctx.sizes.prefetchJobs, db);
      const d = await drain(
        ctx,
        name,
        ctx.sizes.prefetchJobs,
        1,
        { PREFETCH: String(p), CONCURRENCY: String(p) },
        [],
        db,
      );
      samples.get(p)?.push(d.jobsPerSecond);
      dbMs.get(p)?.push(d.dbMsPerJob);
      ctx.log(
        `prefetch ${p} rep ${r + 1}: ${d.jobsPerSecond.toFixed(0)} jobs/s, ${d.dbMsPerJob.toFixed(2)} ms in MongoDB per job`,
      );
    }
  }
  const base = samples.get(10) ?? [];
  return {
    jobs: ctx.sizes.prefetchJobs,
    values: values.map((p) => ({
      prefetch: p,
      jobsPerSecond: summarize(samples.get(p) ?? []),
      vsDefault: ratios(samples.get(p) ?? [], base),
      dbMsPerJob: summarize(dbMs.get(p) ?? []),
    })),
  };
}

// ─── Profiles ────────────────────────────────────────────────────────────────────────────────────────────────

export interface ProfileResults {
  readonly producer: ProfileSummary;
  readonly consumer: ProfileSummary;
}

/** CPU profiles (node --cpu-prof) of the producer at saturation and of a consumer draining a backlog. */
export async function runProfiles(ctx: Ctx): Promise<ProfileResults> {
  const dir = join(ctx.base, 'profiles');
  mkdirSync(dir, { recursive: true });
  const prodDir = join(dir, 'producer');
  const consDir = join(dir, 'consumer');
  const producer = await startService('producer', ctx.base, serviceEnv(ctx, 'profile'), [
    '--cpu-prof',
    `--cpu-prof-dir=${prodDir}`,
  ]);
  try {
    await postJobs(producer.url, {
      connections: CONNECTIONS,
      durationS: ctx.sizes.profileDurationS,
      keyPrefix: 'prof',
    });
  } finally {
    await producer.stop();
  }
  await purge(ctx, ['profile.work']);
  await declareTopology(ctx, 'profile-drain');
  await seedBacklog(ctx, 'profile-drain', ctx.sizes.prefetchJobs);
  await drain(ctx, 'profile-drain', ctx.sizes.prefetchJobs, 1, { PREFETCH: '10', CONCURRENCY: '10' }, [
    '--cpu-prof',
    `--cpu-prof-dir=${consDir}`,
  ]);
  const first = (d: string): string => {
    const f = readdirSync(d).find((n) => n.endsWith('.cpuprofile'));
    if (f === undefined) throw new Error(`${d}: no .cpuprofile written`);
    return join(d, f);
  };
  return { producer: summarizeProfile(first(prodDir)), consumer: summarizeProfile(first(consDir)) };
}
