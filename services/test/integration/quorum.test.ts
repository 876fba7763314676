import { createContext, describeIntegration, integrationEnv, type TestContext } from '../helpers/context';

describeIntegration('QUEUE_TYPE=quorum', () => {
  let ctx: TestContext;

  beforeAll(async () => {
    const env = integrationEnv();
    if (env === undefined) throw new Error('unreachable');
    ctx = await createContext('quorum', env, { queueType: 'quorum' });
    await ctx.startConsumer();
  });

  afterAll(async () => {
    await ctx?.close();
  });

  it('retries through quorum retry queues (per-message TTL, at-least-once dead-lettering) and dead-letters', async () => {
    const retried = (await ctx.submit('fail-times', { times: 1 })).body.id as string;
    const failing = (await ctx.submit('fail-always', {})).body.id as string;
    const docs = await ctx.waitForJobs([retried, failing], ['succeeded', 'failed'], 30_000);
    expect(docs.find((d) => d._id === retried)).toMatchObject({ status: 'succeeded', attempts: 2 });
    expect(docs.find((d) => d._id === failing)).toMatchObject({ status: 'failed', attempts: 3 });
    const deadline = Date.now() + 5000;
    while ((await ctx.queueDepth(ctx.names.deadQueue)) === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    expect(await ctx.queueDepth(ctx.names.deadQueue)).toBe(1);
  });
});
