import { jobsCollection, newJobDocument, type JobDocument } from '../../src/shared/jobs';
import {
  createContext,
  describeIntegration,
  faultReport,
  integrationEnv,
  spawnService,
  type TestContext,
} from '../helpers/context';
import { freePort } from '../helpers/servers';

describeIntegration('fault scenarios with real processes', () => {
  let ctx: TestContext;

  beforeEach(async () => {
    const env = integrationEnv();
    if (env === undefined) throw new Error('unreachable: suite runs only with servers');
    ctx = await createContext('fault', env);
  });

  afterEach(async () => {
    await ctx?.close();
  });

  it('completes every job exactly once when a consumer is killed with SIGKILL mid-job', async () => {
    const first = await ctx.startConsumer({ PREFETCH: '10' });
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push((await ctx.submit('sleep', { ms: 1500 })).body.id as string);
    for (let i = 0; i < 12; i++) ids.push((await ctx.submit('factorial', { n: 100 + i })).body.id as string);
    await first.waitForLine((l) => l.msg === 'job started' && l.jobType === 'sleep', 20_000);
    first.kill('SIGKILL');
    expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });
    // Some sleep jobs were mid-run with a lease held by the dead worker.
    const running = await jobsCollection(ctx.db).countDocuments({ status: 'running' });
    expect(running).toBeGreaterThan(0);

    await ctx.startConsumer();
    const docs = await ctx.waitForJobs(ids, ['succeeded', 'failed'], 40_000);
    const report = faultReport('consumer SIGKILL mid-job', ids.length, docs);
    expect(report).toMatchObject({ submitted: 20, completed: 20, duplicated: 0, lost: 0 });
    // The interrupted jobs were taken over after their lease expired, as a new attempt.
    expect(docs.filter((d) => d.attempts === 2).length).toBeGreaterThan(0);
  });

  it('publishes a job stored by a producer that crashed before publishing (outbox sweeper)', async () => {
    // Simulates the crash: the job document exists, no message was published and no confirm recorded.
    const now = new Date(Date.now() - 2000);
    const orphans: JobDocument[] = Array.from({ length: 5 }, (_, i) =>
      newJobDocument({
        owner: 'test',
        idempotencyKey: `crashed-producer-${i}`,
        type: 'factorial',
        input: { n: 10 + i },
        at: new Date(now.getTime() + i),
      }),
    );
    await jobsCollection(ctx.db).insertMany(orphans);
    await ctx.startConsumer();
    const port = await freePort();
    const producer = spawnService(
      'producer',
      await ctx.producerEnv(port, { OUTBOX_REPUBLISH_AFTER_MS: '500', OUTBOX_SWEEP_INTERVAL_MS: '200' }),
    );
    try {
      const docs = await ctx.waitForJobs(
        orphans.map((o) => o._id),
        ['succeeded', 'failed'],
        30_000,
      );
      const report = faultReport('producer crash between insert and publish', orphans.length, docs);
      expect(report).toMatchObject({ submitted: 5, completed: 5, duplicated: 0, lost: 0 });
      expect(docs.map((d) => d.result)).toEqual(['3628800', '39916800', '479001600', '6227020800', '87178291200']);
      // And the real producer serves its API and shuts down cleanly on SIGTERM.
      const res = await fetch(`http://127.0.0.1:${port}/v1/jobs/${orphans[0]?._id ?? ''}`, { headers: ctx.auth() });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { status: string }).status).toBe('succeeded');
      producer.kill('SIGTERM');
      expect(await producer.exited).toEqual({ code: 0, signal: null });
    } finally {
      producer.kill('SIGKILL');
    }
  });

  it('finishes an in-flight sleep job on SIGTERM and exits 0', async () => {
    const consumer = await ctx.startConsumer({ DRAIN_TIMEOUT_SECONDS: '20' });
    const id = (await ctx.submit('sleep', { ms: 2500 })).body.id as string;
    await consumer.waitForLine((l) => l.msg === 'job started' && l.jobId === id, 15_000);
    consumer.kill('SIGTERM');
    const exit = await consumer.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    const doc = await ctx.job(id);
    expect(doc).toMatchObject({ status: 'succeeded', attempts: 1, runs: 1, result: { sleptMs: 2500 } });
    const drained = consumer.lines.findIndex((l) => l.includes('"msg":"draining"'));
    const succeeded = consumer.lines.findIndex((l) => l.includes('"msg":"job succeeded"'));
    const stopped = consumer.lines.findIndex((l) => l.includes('"msg":"stopped"'));
    expect(drained).toBeGreaterThanOrEqual(0);
    expect(succeeded).toBeGreaterThan(drained);
    expect(stopped).toBeGreaterThan(succeeded);
    faultReport('SIGTERM during a sleep job', 1, doc === null ? [] : [doc]);
  });

  it('gives an interrupted job back when the drain timeout passes, and another worker completes it', async () => {
    const consumer = await ctx.startConsumer({ DRAIN_TIMEOUT_SECONDS: '1' });
    const id = (await ctx.submit('sleep', { ms: 5000 })).body.id as string;
    await consumer.waitForLine((l) => l.msg === 'job started' && l.jobId === id, 15_000);
    consumer.kill('SIGTERM');
    expect(await consumer.exited).toEqual({ code: 0, signal: null });
    expect(await ctx.job(id)).toMatchObject({ status: 'retrying', attempts: 0 });
    await ctx.startConsumer();
    const [doc] = await ctx.waitForJobs([id], ['succeeded', 'failed'], 20_000);
    expect(doc).toMatchObject({ status: 'succeeded', attempts: 1, runs: 1 });
  });
});
