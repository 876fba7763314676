import { MongoClient, type Db } from 'mongodb';
import pino from 'pino';
import { buildApp } from '../../src/producer/app';
import { JobClaims } from '../../src/consumer/claims';
import { ensureIndexes, jobsCollection, newJobDocument, StoreUnavailableError } from '../../src/shared/jobs';
import { HandlerRegistry } from '../../src/shared/registry';
import { MongoJobStore } from '../../src/shared/store';
import { createContext, describeIntegration, integrationEnv, type TestContext } from '../helpers/context';

/**
 * Group commit against the real MongoDB-wire server: concurrent writes share round trips, and a batch in which
 * one document's write fails answers that caller alone, without failing or writing twice any other.
 */
describeIntegration('group commit', () => {
  let ctx: TestContext;
  let client: MongoClient;
  let db: Db;
  /** Commands sent on `client`, by name (driver command monitoring): the round trips. */
  const commands: string[] = [];

  beforeAll(async () => {
    const env = integrationEnv();
    if (env === undefined) throw new Error('unreachable: suite runs only with servers');
    ctx = await createContext('gc', env);
    client = new MongoClient(ctx.mongoUrl, { monitorCommands: true, serverSelectionTimeoutMS: 5000 });
    client.on('commandStarted', (e) => commands.push(e.commandName));
    await client.connect();
    db = client.db(ctx.dbName);
    await ensureIndexes(db);
  });

  afterAll(async () => {
    await client?.close();
    await ctx?.close();
  });

  const seed = async (n: number, label: string): Promise<string[]> => {
    const docs = Array.from({ length: n }, (_, i) =>
      newJobDocument({ owner: 'c', idempotencyKey: `${label}-${i}`, type: 'noop', input: {}, at: new Date() }),
    );
    await jobsCollection(db).insertMany(docs);
    return docs.map((d) => d._id);
  };

  /** Claims that record the size of every claim batch; `claimAll` claims every id for one worker at once. */
  const claimsWithBatches = () => {
    const batches: number[] = [];
    const claims = new JobClaims(db, {
      groupCommit: { maxSize: 100, maxWaitMs: 5 },
      onBatch: (kind, size) => kind === 'claim' && batches.push(size),
    });
    const claimAll = (ids: readonly string[], workerId: string, now: Date) =>
      Promise.all(ids.map((jobId) => claims.claim({ jobId, workerId, now, leaseMs: 60_000, maxAttempts: 3 })));
    return { claims, batches, claimAll };
  };

  it('shares one insertMany among concurrent submissions; reused keys in the batch get the answers they get alone', async () => {
    const batches: { kind: string; size: number }[] = [];
    const store = new MongoJobStore(db, { maxSize: 50, maxWaitMs: 20 }, (kind, size) => batches.push({ kind, size }));
    const app = buildApp({
      store,
      publisher: ctx.publisher,
      registry: HandlerRegistry.create({ enableTestHandlers: true }),
      logger: pino({ level: 'silent' }),
      bodyLimitBytes: 65_536,
      apiClients: null,
    });
    const post = (key: string, n: number) =>
      app.inject({
        method: 'POST',
        url: '/v1/jobs',
        headers: { 'content-type': 'application/json', 'idempotency-key': key },
        payload: { type: 'factorial', input: { n } },
      });
    const first = await post('gc-reused', 5);
    expect(first.statusCode).toBe(202);

    batches.length = 0;
    commands.length = 0;
    const responses = await Promise.all([
      ...Array.from({ length: 16 }, (_, i) => post(`gc-new-${i}`, 3)),
      post('gc-reused', 5), // same key, same body: the stored job, 200
      post('gc-reused', 6), // same key, other body: 422
      post('gc-twice', 7), // the same new key twice in one batch: one 202, one 200 with the same job
      post('gc-twice', 7),
    ]);
    const codes = responses.map((r) => r.statusCode);
    expect(codes.slice(0, 16)).toEqual(Array(16).fill(202));
    expect(codes.slice(16, 18)).toEqual([200, 422]);
    expect(codes.slice(18).sort()).toEqual([200, 202]);
    expect(responses[16]?.json().id).toBe(first.json().id);
    expect(responses[18]?.json().id).toBe(responses[19]?.json().id);

    const inserts = batches.filter((b) => b.kind === 'insert');
    expect(inserts.reduce((n, b) => n + b.size, 0)).toBe(20);
    expect(inserts.length).toBeLessThan(5); // 20 submissions, a handful of round trips
    expect(commands.filter((c) => c === 'insert').length).toBeLessThan(20);
    await store.drain();
    const stored = await jobsCollection(db).countDocuments({ idempotencyKey: { $regex: /^gc-(new|twice|reused)/ } });
    expect(stored).toBe(18); // 16 new + gc-twice + gc-reused, each once
    const published = await db.collection('job_publications').countDocuments({
      _id: { $in: responses.filter((r) => r.statusCode === 202).map((r) => r.json().id) },
    } as object);
    expect(published).toBe(17);
  });

  it('writes publication records that arrive over the linger in one insertMany, and drains them at once', async () => {
    const batches: { kind: string; size: number }[] = [];
    const store = new MongoJobStore(
      db,
      { maxSize: 50, maxWaitMs: 2 },
      (kind, size) => batches.push({ kind, size }),
      150,
    );
    const ids = await seed(12, 'linger');
    const marks: Promise<void>[] = [];
    for (const id of ids.slice(0, 8)) {
      marks.push(store.markPublished(id, new Date()));
      await new Promise((r) => setTimeout(r, 5)); // spread over ~40 ms: apart, each would go out alone
    }
    await Promise.all(marks);
    expect(batches).toEqual([{ kind: 'publication', size: 8 }]);
    // Shutdown does not wait for the linger: drain sends what waits at once.
    const late = ids.slice(8).map((id) => store.markPublished(id, new Date()));
    const started = Date.now();
    await store.drain();
    await Promise.all(late);
    expect(Date.now() - started).toBeLessThan(150);
    expect(batches).toEqual([
      { kind: 'publication', size: 8 },
      { kind: 'publication', size: 4 },
    ]);
    expect(await db.collection('job_publications').countDocuments({ _id: { $in: ids } } as object)).toBe(12);
  });

  it('claims two deliveries that arrive together by one findOneAndUpdate each, sent side by side', async () => {
    const ids = await seed(2, 'pair');
    const { claims, batches, claimAll } = claimsWithBatches();
    const now = new Date();
    commands.length = 0;
    const won = await claimAll(ids, 'w1', now);
    expect(batches).toEqual([2]);
    expect(commands).toEqual(['findAndModify', 'findAndModify']);
    expect(won.map((d) => [d?._id, d?.status, d?.attempts])).toEqual(ids.map((id) => [id, 'running', 1]));
    // Claimed again while the leases hold: neither wins.
    expect(await claimAll(ids, 'w2', now)).toEqual([null, null]);
    await claims.drain();
  });

  it('claims the deliveries that arrive together in two round trips, each job by exactly one of two workers', async () => {
    const ids = await seed(12, 'claim');
    const { batches, claimAll } = claimsWithBatches();
    const now = new Date();
    commands.length = 0;
    const [w1, w2] = await Promise.all(['w1', 'w2'].map((workerId) => claimAll(ids, workerId, now)));
    expect(batches).toEqual([24]);
    expect(commands.filter((c) => c === 'update' || c === 'find').length).toBe(3); // one bulk, a find per worker
    ids.forEach((id, i) => {
      const won = [w1?.[i], w2?.[i]].filter((d) => d !== null && d !== undefined);
      expect(won).toHaveLength(1);
      expect(won[0]).toMatchObject({ _id: id, status: 'running', attempts: 1 });
    });
    const docs = await jobsCollection(db)
      .find({ _id: { $in: ids } })
      .toArray();
    expect(docs.every((d) => d.attempts === 1 && d.status === 'running')).toBe(true);
  });

  it('fails only the job whose outcome write fails in a batch; the others are written once', async () => {
    const ids = await seed(5, 'partial');
    const claims = new JobClaims(db, { groupCommit: { maxSize: 100, maxWaitMs: 5 } });
    const now = new Date();
    const claimed = await Promise.all(
      ids.map((jobId) => claims.claim({ jobId, workerId: 'w', now, leaseMs: 60_000, maxAttempts: 3 })),
    );
    expect(claimed.every((d) => d !== null)).toBe(true);
    // `runs` of one job is no number: its completion's $inc fails on the server, for that document only.
    const bad = ids[1] ?? '';
    await jobsCollection(db).updateOne({ _id: bad }, { $set: { runs: 'x' as unknown as number } });
    const outcomes = await Promise.allSettled(ids.map((jobId, i) => claims.complete(jobId, 'w', { i }, new Date())));
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
    expect(outcomes.filter((o) => o.status === 'fulfilled').map((o) => o.value)).toEqual([true, true, true, true]);
    const failed = outcomes[1];
    expect(failed?.status === 'rejected' && failed.reason).toBeInstanceOf(StoreUnavailableError);
    const docs = new Map(
      (
        await jobsCollection(db)
          .find({ _id: { $in: ids } })
          .toArray()
      ).map((d) => [d._id, d]),
    );
    ids.forEach((id, i) => {
      const d = docs.get(id);
      if (id === bad) expect(d).toMatchObject({ status: 'running', leaseOwner: 'w', runs: 'x' });
      else expect(d).toMatchObject({ status: 'succeeded', runs: 1, result: { i }, leaseOwner: null });
    });
  });

  it('tells, within one outcome batch, the write whose lease was lost from those that landed', async () => {
    const ids = await seed(4, 'lost');
    const claims = new JobClaims(db, { groupCommit: { maxSize: 100, maxWaitMs: 5 } });
    const t0 = new Date(Date.now() - 10_000);
    await Promise.all(
      ids.map((jobId) => claims.claim({ jobId, workerId: 'old', now: t0, leaseMs: 1000, maxAttempts: 3 })),
    );
    // The lease of one job expired and another worker took it over.
    const taken = ids[2] ?? '';
    const other = new JobClaims(db);
    expect(
      await other.claim({ jobId: taken, workerId: 'new', now: new Date(), leaseMs: 60_000, maxAttempts: 3 }),
    ).not.toBeNull();
    commands.length = 0;
    const written = await Promise.all(ids.map((jobId) => claims.complete(jobId, 'old', 'r', new Date())));
    expect(written).toEqual([true, true, false, true]);
    const doc = await jobsCollection(db).findOne({ _id: taken });
    expect(doc).toMatchObject({ status: 'running', leaseOwner: 'new', attempts: 2, runs: 0 });
  });
});
