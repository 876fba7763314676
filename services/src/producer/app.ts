import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import { installProblemHandlers, problem, sendProblem } from '../shared/http';
import { UUID_RE } from '../shared/ids';
import { JOB_STATUSES, newJobDocument, StoreUnavailableError, type JobDocument, type JobStatus } from '../shared/jobs';
import type { Logger } from '../shared/logger';
import { validateJobRequest, type HandlerRegistry } from '../shared/registry';
import type { JobStore } from '../shared/store';
import { ProducerMetrics } from './metrics';
import { INDEX_HTML, APP_JS } from './page';

export interface JobPublisher {
  /** Resolves once the broker confirmed the message; rejects if it cannot be published now. */
  publish(job: Pick<JobDocument, '_id' | 'type'>): Promise<void>;
  isReady(): boolean;
}

export interface ProducerDeps {
  readonly store: JobStore;
  readonly publisher: JobPublisher;
  readonly registry: HandlerRegistry;
  readonly logger: Logger;
  readonly bodyLimitBytes: number;
  /** True once shutdown began: /readyz answers 503 so load balancers stop sending traffic first. */
  readonly isShuttingDown?: () => boolean;
  readonly metrics?: ProducerMetrics;
  readonly now?: () => Date;
}

/** Seconds a client should wait before retrying when MongoDB is unavailable. */
export const RETRY_AFTER_SECONDS = 5;

const IDEMPOTENCY_KEY_RE = /^[\x21-\x7e]{1,255}$/;
const JSON_CONTENT_TYPE_RE = /^application\/json\s*(;.*)?$/i;
const DEFAULT_PAGE_SIZE = 20;
const MAX_PAGE_SIZE = 100;

export interface JobView {
  readonly id: string;
  readonly type: string;
  readonly status: JobStatus;
  readonly attempts: number;
  readonly input: Record<string, unknown>;
  readonly result: unknown;
  readonly error: JobDocument['error'];
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
  readonly links: { readonly self: string };
}

export function jobLink(id: string): string {
  return `/v1/jobs/${id}`;
}

export function toView(job: JobDocument): JobView {
  return {
    id: job._id,
    type: job.type,
    status: job.status,
    attempts: job.attempts,
    input: job.input,
    result: job.result ?? null,
    error: job.error ?? null,
    createdAt: job.createdAt.toISOString(),
    updatedAt: job.updatedAt.toISOString(),
    startedAt: job.startedAt?.toISOString() ?? null,
    finishedAt: job.finishedAt?.toISOString() ?? null,
    links: { self: jobLink(job._id) },
  };
}

function encodeCursor(id: string): string {
  return Buffer.from(id, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): string | undefined {
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  return UUID_RE.test(id) ? id : undefined;
}

function storeUnavailable(reply: FastifyReply): FastifyReply {
  reply.header('retry-after', String(RETRY_AFTER_SECONDS));
  return sendProblem(
    reply,
    problem(503, 'store-unavailable', 'Service Unavailable', 'the job store is unavailable; retry later'),
  );
}

/** Builds the producer HTTP API. Never listens: `main.ts` does, tests use `app.inject()`. */
export function buildApp(deps: ProducerDeps): FastifyInstance {
  const { store, publisher, registry, logger } = deps;
  const now = deps.now ?? (() => new Date());
  const metrics = deps.metrics ?? new ProducerMetrics(store);
  const isShuttingDown = deps.isShuttingDown ?? (() => false);

  const app = Fastify({
    // fastify types its logger as its own pino major's interface; ours is structurally the same at runtime.
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: deps.bodyLimitBytes,
    logController: new LogController({ disableRequestLogging: true }),
    // Behind a proxy the request id of the proxy is kept, so log lines can be joined across hops.
    requestIdHeader: 'x-request-id',
  });
  installProblemHandlers(app);
  // Only JSON: fastify also parses text/plain by default, which this API does not accept.
  app.removeContentTypeParser('text/plain');

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.httpRequests.inc({ method: request.method, route, status_code: String(reply.statusCode) });
    metrics.httpDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    if (route !== '/healthz' && route !== '/readyz' && route !== '/metrics') {
      request.log.info(
        { method: request.method, route, statusCode: reply.statusCode, ms: Math.round(reply.elapsedTime) },
        'request',
      );
    }
  });

  app.get('/', async (_request, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('content-security-policy', "default-src 'self'; style-src 'self' 'unsafe-inline'")
      .send(INDEX_HTML),
  );
  app.get('/app.js', async (_request, reply) => reply.type('text/javascript; charset=utf-8').send(APP_JS));
  app.get('/v1/job-types', async () => ({
    items: registry.list().map((h) => ({ type: h.type, description: h.description, example: h.example })),
  }));

  const checkSubmitHeaders = async (
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<FastifyReply | undefined> => {
    const contentType = request.headers['content-type'];
    if (contentType === undefined || !JSON_CONTENT_TYPE_RE.test(contentType)) {
      return sendProblem(
        reply,
        problem(
          415,
          'unsupported-media-type',
          'Unsupported Media Type',
          `got Content-Type ${JSON.stringify(contentType ?? '')}, expected application/json`,
        ),
      );
    }
    const key = request.headers['idempotency-key'];
    if (key === undefined) {
      return sendProblem(
        reply,
        problem(400, 'idempotency-key', 'Bad Request', 'the Idempotency-Key header is required', [
          { path: 'header:Idempotency-Key', message: 'required header' },
        ]),
      );
    }
    if (typeof key !== 'string' || !IDEMPOTENCY_KEY_RE.test(key)) {
      return sendProblem(
        reply,
        problem(400, 'idempotency-key', 'Bad Request', 'Idempotency-Key must be 1 to 255 visible ASCII characters', [
          { path: 'header:Idempotency-Key', message: 'expected 1 to 255 visible ASCII characters' },
        ]),
      );
    }
    return undefined;
  };

  app.post('/v1/jobs', { onRequest: checkSubmitHeaders }, async (request, reply) => {
    const key = request.headers['idempotency-key'] as string;
    const validation = validateJobRequest(registry, request.body);
    if (!validation.ok) {
      const slug = validation.reason === 'unknown-type' ? 'unknown-job-type' : 'invalid-body';
      return sendProblem(reply, problem(400, slug, 'Bad Request', validation.detail, validation.errors));
    }
    const at = now();
    const doc = newJobDocument({ idempotencyKey: key, type: validation.type, input: validation.input, at });
    try {
      const outcome = await store.insert(doc);
      if (outcome === 'duplicate') {
        // Concurrent or repeated requests with one key: the unique index picked a winner; answer with it.
        const existing = await store.findByIdempotencyKey(key);
        if (existing === null) throw new StoreUnavailableError('job with a duplicate key vanished');
        if (existing.bodyHash !== doc.bodyHash) {
          metrics.submissions.inc({ outcome: 'conflict' });
          return sendProblem(
            reply,
            problem(
              422,
              'idempotency-key-reused',
              'Unprocessable Content',
              `Idempotency-Key ${JSON.stringify(key)} was already used with a different request body`,
            ),
          );
        }
        metrics.submissions.inc({ outcome: 'duplicate' });
        return reply.code(200).header('location', jobLink(existing._id)).send(toView(existing));
      }
    } catch (err) {
      if (err instanceof StoreUnavailableError) {
        request.log.warn({ err: err.message, idempotencyKey: key }, 'job store unavailable');
        return storeUnavailable(reply);
      }
      throw err;
    }
    metrics.submissions.inc({ outcome: 'created' });
    const log = request.log.child({ jobId: doc._id, jobType: doc.type });
    const started = process.hrtime.bigint();
    try {
      await publisher.publish(doc);
      metrics.publishDuration.observe({ outcome: 'confirmed' }, Number(process.hrtime.bigint() - started) / 1e9);
      // The job is already durable: if this write fails the sweeper publishes it again (harmless duplicate).
      await store
        .markPublished(doc._id, now())
        .catch((err: Error) => log.warn({ err: err.message }, 'could not mark job published'));
      log.info('job accepted and published');
    } catch (err) {
      metrics.publishDuration.observe({ outcome: 'failed' }, Number(process.hrtime.bigint() - started) / 1e9);
      log.warn({ err: (err as Error).message }, 'job accepted; publish failed, the outbox sweeper will retry');
    }
    return reply.code(202).header('location', jobLink(doc._id)).send(toView(doc));
  });

  app.get<{ Params: { id: string } }>('/v1/jobs/:id', async (request, reply) => {
    const { id } = request.params;
    const notFound = (): FastifyReply =>
      sendProblem(reply, problem(404, 'job-not-found', 'Not Found', `no job with id ${JSON.stringify(id)}`));
    if (!UUID_RE.test(id)) return notFound();
    try {
      const job = await store.findById(id);
      return job === null ? notFound() : reply.send(toView(job));
    } catch (err) {
      if (err instanceof StoreUnavailableError) return storeUnavailable(reply);
      throw err;
    }
  });

  app.get<{ Querystring: Record<string, string | string[] | undefined> }>('/v1/jobs', async (request, reply) => {
    const q = request.query;
    const errors: { path: string; message: string }[] = [];
    const single = (name: string): string | undefined => {
      const v = q[name];
      if (Array.isArray(v)) {
        errors.push({ path: `query:${name}`, message: 'expected one value' });
        return undefined;
      }
      return v === '' ? undefined : v;
    };
    const statusRaw = single('status');
    const limitRaw = single('limit');
    const cursorRaw = single('cursor');
    let status: JobStatus | undefined;
    if (statusRaw !== undefined) {
      if ((JOB_STATUSES as readonly string[]).includes(statusRaw)) status = statusRaw as JobStatus;
      else errors.push({ path: 'query:status', message: `expected one of ${JOB_STATUSES.join(', ')}` });
    }
    let limit = DEFAULT_PAGE_SIZE;
    if (limitRaw !== undefined) {
      if (/^\d+$/.test(limitRaw) && Number(limitRaw) >= 1 && Number(limitRaw) <= MAX_PAGE_SIZE)
        limit = Number(limitRaw);
      else errors.push({ path: 'query:limit', message: `expected an integer between 1 and ${MAX_PAGE_SIZE}` });
    }
    let beforeId: string | undefined;
    if (cursorRaw !== undefined) {
      beforeId = decodeCursor(cursorRaw);
      if (beforeId === undefined)
        errors.push({ path: 'query:cursor', message: 'expected a cursor returned by a previous page' });
    }
    if (errors.length > 0) {
      return sendProblem(
        reply,
        problem(400, 'invalid-query', 'Bad Request', errors.map((e) => `${e.path}: ${e.message}`).join('; '), errors),
      );
    }
    try {
      const rows = await store.list({ status, limit: limit + 1, beforeId });
      const items = rows.slice(0, limit).map(toView);
      const last = items[items.length - 1];
      const nextCursor = rows.length > limit && last !== undefined ? encodeCursor(last.id) : null;
      const params = new URLSearchParams();
      if (status !== undefined) params.set('status', status);
      params.set('limit', String(limit));
      if (nextCursor !== null) params.set('cursor', nextCursor);
      return reply.send({
        items,
        nextCursor,
        links: { next: nextCursor === null ? null : `/v1/jobs?${params.toString()}` },
      });
    } catch (err) {
      if (err instanceof StoreUnavailableError) return storeUnavailable(reply);
      throw err;
    }
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const checks: Record<string, string> = {}; // 'ok' or what is wrong
    if (isShuttingDown()) checks.shutdown = 'shutting down';
    try {
      await store.ping();
      checks.mongodb = 'ok';
    } catch (err) {
      checks.mongodb = (err as Error).message;
    }
    checks.broker = publisher.isReady() ? 'ok' : 'not connected';
    const ready = Object.entries(checks).every(([name, v]) => name !== 'shutdown' && v === 'ok');
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks });
  });

  app.get('/metrics', async (_request, reply) => {
    const body = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(body);
  });

  return app;
}
