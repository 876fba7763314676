import { writeFileSync } from 'node:fs';
import { MongoClient } from 'mongodb';
import { hashToken } from '../../src/producer/auth';
import { ensureIndexes, jobsCollection } from '../../src/shared/jobs';
import {
  createContext,
  describeIntegration,
  integrationEnv,
  spawnService,
  TEST_CLIENTS,
  uniqueName,
  type ServiceProcess,
  type TestClient,
  type TestContext,
} from '../helpers/context';
import { freePort } from '../helpers/servers';

/** The real producer process (`node dist/producer/main.js`) over HTTP, as a client outside the project sees it. */
describeIntegration('authentication, isolation and rate limits of the real producer', () => {
  let ctx: TestContext;
  let producer: ServiceProcess;
  let base: string;
  let metricsPort: number;

  beforeAll(async () => {
    const env = integrationEnv();
    if (env === undefined) throw new Error('unreachable: suite runs only with servers');
    ctx = await createContext('auth', env);
    await ctx.startConsumer();
    const port = await freePort();
    const penv = await ctx.producerEnv(port, {
      API_KEYS_RELOAD_INTERVAL_MS: '200',
      RATE_LIMIT_PER_SECOND: '2',
      RATE_LIMIT_BURST: '40',
    });
    metricsPort = Number(penv.METRICS_PORT);
    producer = spawnService('producer', penv);
    await producer.waitForLine((l) => l.msg === 'producer listening', 30_000);
    base = `http://127.0.0.1:${port}`;
    // Wait until MongoDB and the broker are connected (the API answers 503 before).
    for (let i = 0; i < 100; i++) {
      if ((await fetch(`${base}/readyz`)).status === 200) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  afterAll(async () => {
    producer?.kill('SIGTERM');
    await producer?.exited;
    await ctx?.close();
  });

  const call = (client: TestClient | null, path: string, init: RequestInit = {}) =>
    fetch(`${base}${path}`, {
      ...init,
      headers: { ...(client === null ? {} : ctx.auth(client)), ...(init.headers as Record<string, string>) },
    });
  const submit = (client: TestClient | null, key: string, input: Record<string, unknown> = { n: 5 }) =>
    call(client, '/v1/jobs', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify({ type: 'factorial', input }),
    });

  it('answers 401 with WWW-Authenticate without a token or with an unknown one, and keeps probes open', async () => {
    const none = await submit(null, 'k-none');
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="async-jobs"');
    expect(none.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
    const wrong = await fetch(`${base}/v1/jobs`, { headers: { authorization: 'Bearer not-a-known-token' } });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await fetch(`${base}/metrics`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).status).toBe(200);
    // The token never reaches the logs.
    expect(producer.lines.join('\n')).not.toContain(ctx.tokens.test);
    expect(await jobsCollection(ctx.db).countDocuments({ idempotencyKey: 'k-none' })).toBe(0);
  });

  it('answers 403 for a token without the scope of the route', async () => {
    const res = await submit('reader', 'k-reader');
    expect(res.status).toBe(403);
    expect(((await res.json()) as { detail: string }).detail).toBe('client "reader" lacks the scope jobs:submit');
    expect((await call('submitter', '/v1/jobs')).status).toBe(403);
  });

  it('gives two clients sending the same Idempotency-Key two different jobs, each visible only to its owner', async () => {
    const key = uniqueName('shared');
    const a = await submit('test', key);
    const b = await submit('other', key, { n: 6 });
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    const aId = ((await a.json()) as { id: string }).id;
    const bId = ((await b.json()) as { id: string }).id;
    expect(aId).not.toBe(bId);
    const docs = await jobsCollection(ctx.db).find({ idempotencyKey: key }).sort({ owner: 1 }).toArray();
    expect(docs.map((d) => [d.owner, d._id])).toEqual([
      ['other', bId],
      ['test', aId],
    ]);
    expect((await submit('test', key)).status).toBe(200);
    expect((await call('other', `/v1/jobs/${aId}`)).status).toBe(404);
    expect((await call('test', `/v1/jobs/${aId}`)).status).toBe(200);
    expect((await call('admin', `/v1/jobs/${aId}`)).status).toBe(200);
    const otherList = (await (await call('other', '/v1/jobs?limit=100')).json()) as { items: { id: string }[] };
    expect(otherList.items.map((j) => j.id)).toContain(bId);
    expect(otherList.items.map((j) => j.id)).not.toContain(aId);
    const adminList = (await (await call('admin', '/v1/jobs?limit=100')).json()) as { items: { id: string }[] };
    expect(adminList.items.map((j) => j.id)).toEqual(expect.arrayContaining([aId, bId]));
    await ctx.waitForJobs([aId, bId], ['succeeded'], 20_000);
  });

  it('reloads the keys file without a restart: a rotated token works, the old one gets 401', async () => {
    const before = await call('reader', '/v1/jobs');
    expect(before.status).toBe(200);
    const lines = Object.entries(TEST_CLIENTS)
      .filter(([name]) => name !== 'reader')
      .map(([name, scopes]) => `${name} ${scopes} ${hashToken(ctx.tokens[name as TestClient])}`);
    writeFileSync(ctx.keysFile, `${lines.join('\n')}\nreader jobs:read ${hashToken('rotated-reader-token')}\n`);
    await producer.waitForLine((l) => l.msg === 'API keys reloaded', 10_000);
    expect((await call('reader', '/v1/jobs')).status).toBe(401);
    const rotated = await fetch(`${base}/v1/jobs`, { headers: { authorization: 'Bearer rotated-reader-token' } });
    expect(rotated.status).toBe(200);
  });

  it('answers 429 with Retry-After and RateLimit headers once a client used its burst', async () => {
    let limited: Response | undefined;
    for (let i = 0; i < 60 && limited === undefined; i++) {
      const res = await call('other', '/v1/job-types');
      if (res.status === 429) limited = res;
      else expect(res.status).toBe(200);
    }
    expect(limited?.status).toBe(429);
    expect(Number(limited?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(limited?.headers.get('ratelimit-limit')).toBe('40');
    expect(limited?.headers.get('ratelimit-remaining')).toBe('0');
    // Another client has its own bucket.
    expect((await call('admin', '/v1/job-types')).status).toBe(200);
  });
});

describeIntegration('producer startup with a malformed keys file, and the index migration', () => {
  let ctx: TestContext;

  beforeAll(async () => {
    const env = integrationEnv();
    if (env === undefined) throw new Error('unreachable: suite runs only with servers');
    ctx = await createContext('authstart', env);
  });

  afterAll(async () => {
    await ctx?.close();
  });

  it('exits 1 naming the line and field of a malformed keys file, without echoing the token', async () => {
    writeFileSync(ctx.keysFile, `ok jobs:read ${hashToken('x')}\nbad jobs:read plain-token-oops\n`);
    const producer = spawnService('producer', await ctx.producerEnv(await freePort()));
    const { code } = await producer.exited;
    expect(code).toBe(1);
    const out = producer.lines.join('\n');
    expect(out).toContain(
      `API_KEYS_FILE "${ctx.keysFile}": line 2, field 3 (sha256): got 16 characters (not all hex digits), expected 64 lowercase hex digits`,
    );
    expect(out).not.toContain('plain-token-oops');
  });

  it('replaces the global unique idempotency index with one per owner on an existing database', async () => {
    const env = integrationEnv();
    if (env === undefined) throw new Error('unreachable');
    const dbName = uniqueName('migrate');
    const client = new MongoClient(`${env.mongoBaseUrl}/${dbName}`);
    await client.connect();
    try {
      const db = client.db(dbName);
      // The index of the previous version, on a collection that already holds a job without owner.
      await jobsCollection(db).createIndex({ idempotencyKey: 1 }, { name: 'idempotencyKey_unique', unique: true });
      await db.collection('jobs').insertOne({ _id: 'legacy' as never, idempotencyKey: 'k', status: 'succeeded' });
      await ensureIndexes(db);
      const names = (await jobsCollection(db).listIndexes().toArray()).map((i: { name?: unknown }) => String(i.name));
      expect(names).not.toContain('idempotencyKey_unique');
      expect(names).toContain('owner_idempotencyKey_unique');
      // Two owners, one key: both stored; the same owner twice: refused by the index.
      await db.collection('jobs').insertOne({ _id: 'a' as never, owner: 'a', idempotencyKey: 'k' });
      await db.collection('jobs').insertOne({ _id: 'b' as never, owner: 'b', idempotencyKey: 'k' });
      await expect(
        db.collection('jobs').insertOne({ _id: 'c' as never, owner: 'a', idempotencyKey: 'k' }),
      ).rejects.toMatchObject({ code: 11000 });
      // Running it again (every start does) changes nothing.
      await ensureIndexes(db);
      await db.dropDatabase();
    } finally {
      await client.close();
    }
  });
});
