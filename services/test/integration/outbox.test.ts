import pino from 'pino';
import { OutboxSweeper } from '../../src/producer/sweeper';
import { jobsCollection, newJobDocument, publicationsCollection, type JobDocument } from '../../src/shared/jobs';
import { MongoJobStore, type JobStore } from '../../src/shared/store';
import { createContext, describeIntegration, integrationEnv, type TestContext } from '../helpers/context';

describeIntegration('outbox scan against a real MongoDB-wire server', () => {
  let ctx: TestContext;

  beforeAll(async () => {
    const env = integrationEnv();
    if (env === undefined) throw new Error('unreachable: suite runs only with servers');
    ctx = await createContext('outbox', env);
  });

  afterAll(async () => {
    await ctx?.close();
  });

  const job = (key: string, ageMs: number): JobDocument =>
    newJobDocument({ owner: 'test', idempotencyKey: key, type: 'noop', input: {}, at: new Date(Date.now() - ageMs) });

  it('after catching up reads the store only every scanIntervalMs, and finds orphans stored since, from a clock behind too', async () => {
    const store = new MongoJobStore(ctx.db);
    let scans = 0;
    const counted: JobStore = Object.assign(Object.create(store) as JobStore, {
      findUnpublished: (...args: Parameters<JobStore['findUnpublished']>) => {
        scans++;
        return store.findUnpublished(...args);
      },
    });
    const sweeper = new OutboxSweeper({
      store: counted,
      publisher: ctx.publisher,
      logger: pino({ level: 'silent' }),
      republishAfterMs: 300,
      intervalMs: 100,
      scanIntervalMs: 1000,
    });
    // Jobs published long ago (they have their records) and waiting in the queue.
    const published = [job('published-1', 120_000), job('published-2', 90_000)];
    await jobsCollection(ctx.db).insertMany(published);
    await publicationsCollection(ctx.db).insertMany(published.map((p) => ({ _id: p._id, at: new Date() })));
    expect(await sweeper.sweepOnce()).toBe(0);
    expect(scans).toBe(1);

    // Stored after that scan without being published: by a producer that then crashed, and by one whose clock is
    // 40 s behind ours (its id sorts before the first scan's bound).
    const orphans = [job('orphan-now', 0), job('orphan-skewed', 40_000)];
    await jobsCollection(ctx.db).insertMany(orphans);
    expect(await sweeper.sweepOnce()).toBe(0);
    expect(scans).toBe(1);

    await new Promise((r) => setTimeout(r, 1100));
    expect(await sweeper.sweepOnce()).toBe(2);
    expect(scans).toBe(2);
    const records = await publicationsCollection(ctx.db)
      .find({ _id: { $in: orphans.map((o) => o._id) } })
      .toArray();
    expect(records.map((r) => r._id).sort()).toEqual(orphans.map((o) => o._id).sort());
    // And the published jobs were not published again.
    expect(await sweeper.sweepOnce()).toBe(0);
    expect(scans).toBe(2);
  });
});
