import pino from 'pino';
import { buildApp, buildMetricsApp } from '../../src/producer/app';
import { ProducerMetrics } from '../../src/producer/metrics';
import { OutboxSweeper } from '../../src/producer/sweeper';
import { HandlerRegistry } from '../../src/shared/registry';
import { FakePublisher, FakeStore } from './fakes';

function setup(options: { shuttingDown?: boolean } = {}) {
  const store = new FakeStore();
  const publisher = new FakePublisher();
  const logger = pino({ level: 'silent' });
  const producerMetrics = new ProducerMetrics(store);
  const app = buildApp({
    metrics: producerMetrics,
    store,
    publisher,
    registry: HandlerRegistry.create({ enableTestHandlers: false }),
    logger,
    bodyLimitBytes: 1024,
    // Authentication has its own suite (auth.test.ts); here every request is the anonymous admin.
    apiClients: null,
    isShuttingDown: () => options.shuttingDown === true,
  });
  const submit = (payload: unknown, headers: Record<string, string> = { 'idempotency-key': 'k1' }) =>
    app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: { 'content-type': 'application/json', ...headers },
      payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
    });
  return { store, publisher, app, submit, logger, producerMetrics };
}

describe('POST /v1/jobs', () => {
  it('stores, publishes and answers 202 with the id, status and link', async () => {
    const { app, store, publisher, submit } = setup();
    const res = await submit({ type: 'factorial', input: { n: 5 } });
    expect(res.statusCode).toBe(202);
    const body = res.json();
    expect(body).toMatchObject({
      status: 'queued',
      type: 'factorial',
      attempts: 0,
      input: { n: 5 },
      result: null,
      error: null,
    });
    expect(body.links).toEqual({ self: `/v1/jobs/${body.id}` });
    expect(res.headers.location).toBe(`/v1/jobs/${body.id}`);
    expect(publisher.messages).toEqual([body.id]);
    expect(store.published.has(body.id)).toBe(true);
    await app.close();
  });

  it('returns the same job with 200 for the same key and body, 422 for another body', async () => {
    const { app, store, publisher, submit } = setup();
    const first = (await submit({ type: 'sqrt', input: { x: 4 } })).json();
    const again = await submit({ input: { x: 4 }, type: 'sqrt' });
    expect(again.statusCode).toBe(200);
    expect(again.json().id).toBe(first.id);
    const other = await submit({ type: 'sqrt', input: { x: 5 } });
    expect(other.statusCode).toBe(422);
    expect(other.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(other.json()).toEqual({
      type: 'urn:async-jobs:problem:idempotency-key-reused',
      title: 'Unprocessable Content',
      status: 422,
      detail: 'Idempotency-Key "k1" was already used with a different request body',
    });
    expect(store.jobs.size).toBe(1);
    expect(publisher.messages).toHaveLength(1);
    await app.close();
  });

  it.each([
    ['a missing Idempotency-Key', { type: 'noop', input: {} }, {}, 400, 'the Idempotency-Key header is required'],
    [
      'a malformed Idempotency-Key',
      { type: 'noop', input: {} },
      { 'idempotency-key': 'has space' },
      400,
      'Idempotency-Key must be 1 to 255 visible ASCII characters',
    ],
    [
      'an unknown job type',
      { type: 'fail-always', input: {} },
      undefined,
      400,
      'unknown job type "fail-always"; expected one of "factorial", "sqrt", "sleep", "noop"',
    ],
    [
      'a schema error',
      { type: 'factorial', input: { n: -1 } },
      undefined,
      400,
      '/input/n: Expected integer to be greater or equal to 0',
    ],
    ['malformed JSON', '{"type":', undefined, 400, undefined],
  ])('rejects %s with problem+json and changes nothing', async (_name, payload, headers, status, detail) => {
    const { app, store, publisher, submit } = setup();
    const res = await submit(payload, headers);
    expect(res.statusCode).toBe(status);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    if (detail !== undefined) expect(res.json().detail).toBe(detail);
    expect(store.jobs.size).toBe(0);
    expect(publisher.messages).toHaveLength(0);
    await app.close();
  });

  it('names the field path of schema errors', async () => {
    const { app, submit } = setup();
    const res = await submit({ type: 'sleep', input: { ms: 'long' } });
    expect(res.json().errors).toEqual([{ path: '/input/ms', message: 'Expected integer' }]);
    await app.close();
  });

  it('answers 413 for a body over the limit and 415 for another content type', async () => {
    const { app, store, submit } = setup();
    const big = await submit({ type: 'noop', input: { pad: 'x'.repeat(2000) } });
    expect(big.statusCode).toBe(413);
    expect(big.headers['content-type']).toMatch(/^application\/problem\+json/);
    const text = await app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: { 'content-type': 'text/plain', 'idempotency-key': 'k' },
      payload: 'hi',
    });
    expect(text.statusCode).toBe(415);
    expect(text.json().detail).toBe('got Content-Type "text/plain", expected application/json');
    expect(store.jobs.size).toBe(0);
    await app.close();
  });

  it('answers 503 with Retry-After when MongoDB is down', async () => {
    const { app, store, submit } = setup();
    store.down = true;
    const res = await submit({ type: 'noop', input: {} });
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.json().type).toBe('urn:async-jobs:problem:store-unavailable');
    await app.close();
  });

  it('still answers 202 when the broker is down, and the sweeper publishes the job later', async () => {
    const { app, store, publisher, submit, logger } = setup();
    publisher.ready = false;
    const res = await submit({ type: 'noop', input: {} });
    expect(res.statusCode).toBe(202);
    const id = res.json().id as string;
    expect(store.jobs.has(id)).toBe(true);
    expect(store.published.size).toBe(0);
    publisher.ready = true;
    const sweeper = new OutboxSweeper({ store, publisher, logger, republishAfterMs: -1000, intervalMs: 1000 });
    expect(await sweeper.sweepOnce()).toBe(1);
    expect(publisher.messages).toEqual([id]);
    expect(await sweeper.sweepOnce()).toBe(0);
    await app.close();
  });
});

describe('GET /v1/jobs', () => {
  it('reads one job, 404 for unknown ids', async () => {
    const { app, submit } = setup();
    const id = (await submit({ type: 'noop', input: {} })).json().id as string;
    const res = await app.inject({ method: 'GET', url: `/v1/jobs/${id}` });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id, status: 'queued', attempts: 0, startedAt: null, finishedAt: null });
    const missing = await app.inject({ method: 'GET', url: '/v1/jobs/01a20000-0000-7000-8000-000000000000' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().type).toBe('urn:async-jobs:problem:job-not-found');
    expect((await app.inject({ method: 'GET', url: '/v1/jobs/nope' })).statusCode).toBe(404);
    await app.close();
  });

  it('paginates newest first with a stable cursor and filters by status', async () => {
    const { app, store, submit } = setup();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await submit({ type: 'sqrt', input: { x: i } }, { 'idempotency-key': `k${i}` })).json().id as string);
      await new Promise((r) => setTimeout(r, 2));
    }
    const done = store.jobs.get(ids[1] ?? '');
    if (done !== undefined) done.status = 'succeeded';
    const page1 = (await app.inject({ method: 'GET', url: '/v1/jobs?limit=2' })).json();
    expect(page1.items.map((j: { id: string }) => j.id)).toEqual([ids[4], ids[3]]);
    const page2 = (await app.inject({ method: 'GET', url: page1.links.next })).json();
    expect(page2.items.map((j: { id: string }) => j.id)).toEqual([ids[2], ids[1]]);
    const page3 = (await app.inject({ method: 'GET', url: page2.links.next })).json();
    expect(page3.items.map((j: { id: string }) => j.id)).toEqual([ids[0]]);
    expect(page3.nextCursor).toBeNull();
    const succeeded = (await app.inject({ method: 'GET', url: '/v1/jobs?status=succeeded' })).json();
    expect(succeeded.items.map((j: { id: string }) => j.id)).toEqual([ids[1]]);
    const bad = await app.inject({ method: 'GET', url: '/v1/jobs?status=done&limit=0&cursor=zz' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors.map((e: { path: string }) => e.path)).toEqual([
      'query:status',
      'query:limit',
      'query:cursor',
    ]);
    await app.close();
  });
});

describe('operations endpoints', () => {
  it('reports liveness, readiness and metrics', async () => {
    const { app, store, publisher, submit, logger, producerMetrics } = setup();
    await submit({ type: 'noop', input: {} });
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    publisher.ready = false;
    expect((await app.inject({ method: 'GET', url: '/readyz' })).json()).toEqual({
      status: 'not ready',
      checks: { mongodb: 'ok', broker: 'not connected' },
    });
    publisher.ready = true;
    store.down = true;
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(503);
    store.down = false;
    // /metrics is not on the API app: it has its own listener (buildMetricsApp on METRICS_PORT).
    expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(404);
    const metricsApp = buildMetricsApp(producerMetrics, logger);
    const metrics = (await metricsApp.inject({ method: 'GET', url: '/metrics' })).body;
    await metricsApp.close();
    expect(metrics).toContain('jobs{status="queued"} 1');
    expect(metrics).toContain('job_submissions_total{outcome="created"} 1');
    expect(metrics).toContain('http_requests_total{method="POST",route="/v1/jobs",status_code="202"} 1');
    expect(metrics).toContain('job_publish_duration_seconds_count{outcome="confirmed"} 1');
    expect(metrics).toContain('outbox_backlog');
    await app.close();
  });

  it('fails readiness once shutdown begins', async () => {
    const { app } = setup({ shuttingDown: true });
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.json().checks.shutdown).toBe('shutting down');
    await app.close();
  });

  it('serves the HTML page and its script', async () => {
    const { app } = setup();
    const page = await app.inject({ method: 'GET', url: '/' });
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.body).toContain('<script src="/app.js"></script>');
    expect((await app.inject({ method: 'GET', url: '/app.js' })).statusCode).toBe(200);
    const unknown = await app.inject({ method: 'GET', url: '/nope' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.headers['content-type']).toMatch(/^application\/problem\+json/);
    await app.close();
  });
});
