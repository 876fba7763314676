import { factorial } from '../../src/shared/handlers';
import { createContext, describeIntegration, integrationEnv, type TestContext } from '../helpers/context';

describeIntegration('jobs against real RabbitMQ and MongoDB wire protocol', () => {
  let ctx: TestContext;

  beforeAll(async () => {
    const env = integrationEnv();
    if (env === undefined) throw new Error('unreachable: suite runs only with servers');
    ctx = await createContext('jobs', env);
    await ctx.startConsumer();
  });

  afterAll(async () => {
    await ctx?.close();
  });

  it('runs a submitted factorial job to succeeded with the right result', async () => {
    const res = await ctx.submit('factorial', { n: 25 });
    expect(res.statusCode).toBe(202);
    expect(res.body.status).toBe('queued');
    const id = res.body.id as string;
    expect(res.body.links).toEqual({ self: `/v1/jobs/${id}` });
    const [doc] = await ctx.waitForJobs([id], ['succeeded', 'failed'], 20_000);
    expect(doc?.status).toBe('succeeded');
    expect(doc?.result).toBe(factorial(25));
    expect(doc?.result).toBe('15511210043330985984000000');
    expect(doc?.attempts).toBe(1);
    expect(doc?.runs).toBe(1);
    // The publication record is written after the 202 and may land after the job is done: wait for it (bounded).
    const records = async (): Promise<number> =>
      ctx.db.collection('job_publications').countDocuments({ _id: id } as object);
    const until = Date.now() + 5000;
    while ((await records()) === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect(await records()).toBe(1);
    const view = await ctx.app.inject({ method: 'GET', url: `/v1/jobs/${id}`, headers: ctx.auth() });
    expect(view.statusCode).toBe(200);
    expect(view.json()).toMatchObject({
      id,
      status: 'succeeded',
      attempts: 1,
      result: '15511210043330985984000000',
      error: null,
    });
  });

  it('returns the same job with 200 when the same key and body are sent again', async () => {
    const first = await ctx.submit('sqrt', { x: 16 }, 'same-key-sequential');
    const second = await ctx.submit('sqrt', { x: 16 }, 'same-key-sequential');
    expect(first.statusCode).toBe(202);
    expect(second.statusCode).toBe(200);
    expect(second.body.id).toBe(first.body.id);
    expect(await ctx.db.collection('jobs').countDocuments({ idempotencyKey: 'same-key-sequential' })).toBe(1);
    const [doc] = await ctx.waitForJobs([first.body.id as string], ['succeeded'], 20_000);
    expect(doc?.result).toBe(4);
  });

  it('creates exactly one job for 50 concurrent requests with one key', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, () => ctx.submit('noop', {}, 'same-key-concurrent')));
    const ids = new Set(results.map((r) => r.body.id));
    expect(ids.size).toBe(1);
    expect(results.filter((r) => r.statusCode === 202)).toHaveLength(1);
    expect(results.filter((r) => r.statusCode === 200)).toHaveLength(49);
    expect(await ctx.db.collection('jobs').countDocuments({ idempotencyKey: 'same-key-concurrent' })).toBe(1);
    const [doc] = await ctx.waitForJobs([...ids] as string[], ['succeeded'], 20_000);
    expect(doc?.runs).toBe(1);
  });

  it('answers 422 and changes nothing when a key is reused with a different body', async () => {
    const first = await ctx.submit('sqrt', { x: 9 }, 'reused-key');
    const second = await ctx.submit('sqrt', { x: 10 }, 'reused-key');
    expect(first.statusCode).toBe(202);
    expect(second.statusCode).toBe(422);
    expect(second.body).toMatchObject({ status: 422, type: 'urn:async-jobs:problem:idempotency-key-reused' });
    const docs = await ctx.db.collection('jobs').find({ idempotencyKey: 'reused-key' }).toArray();
    expect(docs).toHaveLength(1);
    expect(docs[0]?.input).toEqual({ x: 9 });
  });

  it('retries a handler that fails twice and succeeds on attempt 3', async () => {
    const res = await ctx.submit('fail-times', { times: 2 });
    const [doc] = await ctx.waitForJobs([res.body.id as string], ['succeeded', 'failed'], 30_000);
    expect(doc?.status).toBe('succeeded');
    expect(doc?.attempts).toBe(3);
    expect(doc?.result).toEqual({ succeededOnAttempt: 3 });
    expect(doc?.runs).toBe(1);
  });

  it('fails an always-failing job after MAX_ATTEMPTS and dead-letters its message', async () => {
    const before = await ctx.queueDepth(ctx.names.deadQueue);
    const res = await ctx.submit('fail-always', {});
    const id = res.body.id as string;
    const [doc] = await ctx.waitForJobs([id], ['failed', 'succeeded'], 30_000);
    expect(doc?.status).toBe('failed');
    expect(doc?.attempts).toBe(3);
    expect(doc?.error).toEqual({ message: 'fail-always: attempt 3 failed on purpose', attempt: 3 });
    const deadline = Date.now() + 5000;
    while ((await ctx.queueDepth(ctx.names.deadQueue)) === before && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    expect(await ctx.queueDepth(ctx.names.deadQueue)).toBe(before + 1);
    const view = await ctx.app.inject({ method: 'GET', url: `/v1/jobs/${id}`, headers: ctx.auth() });
    expect(view.json()).toMatchObject({
      status: 'failed',
      attempts: 3,
      error: { message: 'fail-always: attempt 3 failed on purpose' },
    });
  });
});
