import pino from 'pino';
import { OutboxSweeper } from '../../src/producer/sweeper';
import { MongoJobStore } from '../../src/shared/store';
import { createContext, faultReport, integrationEnv, type TestContext } from '../helpers/context';
import { startRabbitMq, type RabbitNode } from '../helpers/servers';

const env = integrationEnv();
const rabbitBin = process.env.AJ_TEST_RABBITMQ_BIN;
// Needs its own broker to restart; with an external AMQP_URL there is nothing this test may restart.
const describeRestart =
  env !== undefined && rabbitBin !== undefined && process.env.AJ_TEST_TMP !== undefined ? describe : describe.skip;

describeRestart('broker restarted under load', () => {
  let node: RabbitNode;
  let ctx: TestContext;
  let sweeper: OutboxSweeper;
  let failedPublishes = 0;

  beforeAll(async () => {
    if (env === undefined || rabbitBin === undefined || process.env.AJ_TEST_TMP === undefined)
      throw new Error('unreachable');
    node = await startRabbitMq(rabbitBin, process.env.AJ_TEST_TMP);
    ctx = await createContext('restart', env, { amqpUrl: node.url });
    sweeper = new OutboxSweeper({
      store: new MongoJobStore(ctx.db),
      publisher: ctx.publisher,
      logger: pino({ level: 'silent' }),
      republishAfterMs: 1000,
      intervalMs: 250,
      // Only the scan at start: the jobs whose publish fails during the restart come back from the producer's
      // memory (onPublishFailed), as in the real producer, not from a scan of the store.
      scanIntervalMs: 3_600_000,
    });
    ctx.onPublishFailed((job) => {
      failedPublishes++;
      sweeper.retryLater(job);
    });
    sweeper.start();
  });

  afterAll(async () => {
    await sweeper?.stop();
    await ctx?.close().catch(() => undefined);
    await node?.stop();
  });

  it('loses no job when RabbitMQ restarts while jobs are submitted and consumed', async () => {
    await ctx.startConsumer({ PREFETCH: '20', CONCURRENCY: '10' });
    const ids: string[] = [];
    const statuses: Record<number, number> = {};
    let submitting = true;
    const load = (async () => {
      // Bounded: at most 300 jobs or 30 s.
      const deadline = Date.now() + 30_000;
      for (let i = 0; submitting && i < 300 && Date.now() < deadline; i++) {
        const res = await ctx.submit(i % 2 === 0 ? 'noop' : 'sleep', i % 2 === 0 ? {} : { ms: 50 });
        statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
        if (res.statusCode === 202) ids.push(res.body.id as string);
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    // Traffic before the restart: wait for it rather than for a fixed time, which a loaded machine may not fill.
    const warmUntil = Date.now() + 15_000;
    while (ids.length <= 10 && Date.now() < warmUntil) await new Promise((r) => setTimeout(r, 100));
    const beforeRestart = ids.length;
    const t0 = Date.now();
    await node.halt('SIGTERM');
    const halted = Date.now() - t0;
    await new Promise((r) => setTimeout(r, 1000));
    await node.restart();
    const restarted = Date.now() - t0;
    await new Promise((r) => setTimeout(r, 2000));
    submitting = false;
    await load;
    console.log(
      `broker restart: ${beforeRestart} jobs before, halt took ${halted} ms, back after ${restarted} ms, ${ids.length} jobs in all, ${failedPublishes} publishes failed and were retried from memory`,
    );
    expect(beforeRestart).toBeGreaterThan(10);
    // Every accepted request got 202 even while the broker was down (the job is durable in MongoDB).
    expect(statuses).toEqual({ 202: ids.length });

    const docs = await ctx.waitForJobs(ids, ['succeeded', 'failed'], 90_000);
    const report = faultReport('broker restart under load', ids.length, docs);
    expect(report.lost).toBe(0);
    expect(report.completed).toBe(ids.length);
    expect(report.duplicated).toBe(0);
    // The restart made publishes fail (else this test shows nothing about the retry), and none is left waiting.
    expect(failedPublishes).toBeGreaterThan(0);
    expect(sweeper.pendingCount).toBe(0);
  });
});
