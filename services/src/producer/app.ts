import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import { installProblemHandlers, problem, sendProblem } from '../shared/http';
import { UUID_RE } from '../shared/ids';
import {
  JOB_STATUSES,
  newJobDocument,
  StoreUnavailableError,
  type JobDocument,
  type JobRef,
  type JobStatus,
} from '../shared/jobs';
import type { Logger } from '../shared/logger';
import { validateJobRequest, type HandlerRegistry } from '../shared/registry';
import type { JobStore } from '../shared/store';
import { hasScope, isAdmin, type ApiClient, type ApiClients, type Scope } from './auth';
import { ProducerMetrics } from './metrics';
import { RateLimiter, type RateLimitOptions } from './ratelimit';
import { INDEX_HTML, APP_JS } from './page';

export interface JobPublisher {
  /** Resolves once the broker confirmed the message; rejects if it cannot be published now. */
  publish(job: JobRef): Promise<void>;
  isReady(): boolean;
}

export interface ProducerDeps {
  readonly store: JobStore;
  readonly publisher: JobPublisher;
  readonly registry: HandlerRegistry;
  readonly logger: Logger;
  readonly bodyLimitBytes: number;
  /**
   * The clients allowed on `/v1/*` (read per request, so a reloaded keys file applies at once), or `null` for no
   * authentication: every request is then the client {@link ANONYMOUS} with every scope (local use only).
   */
  readonly apiClients: (() => ApiClients) | null;
  /** Per-client token bucket on `/v1/*`. @default no limit */
  readonly rateLimit?: RateLimitOptions;
  /** True once shutdown began: /readyz answers 503 so load balancers stop sending traffic first. */
  readonly isShuttingDown?: () => boolean;
  readonly metrics?: ProducerMetrics;
  readonly now?: () => Date;
  /** A stored job whose publish failed (the 202 still goes out): the outbox sweeper publishes it again. */
  readonly onPublishFailed?: (job: JobRef) => void;
}

/** Seconds a client should wait before retrying when MongoDB is unavailable. */
export const RETRY_AFTER_SECONDS = 5;

const IDEMPOTENCY_KEY_RE = /^[\x21-\x7e]{1,255}$/;
const JSON_CONTENT_TYPE_RE = /^application\/json\s*(;.*)?$/i;
const DEFAULT_PAGE_SIZE = 20;
const MAX_PAGE_SIZE = 100;

/** The client of every request when authentication is off. */
export const ANONYMOUS: ApiClient = { id: 'anonymous', scopes: new Set<Scope>(['jobs:admin']) };

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated client (set on `/v1/*` routes). */
    apiClient: ApiClient | null;
  }
  interface FastifyContextConfig {
    /** The scope a `/v1/*` route needs; without one any authenticated client may call it. */
    scope?: Scope;
  }
}

const REALM = 'async-jobs';

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
  app.decorateRequest('apiClient', null);
  const limiter = deps.rateLimit === undefined ? undefined : new RateLimiter(deps.rateLimit);

  // Authentication, then the rate limit (every authenticated request costs a token, refused ones too), then the
  // route's scope. Global onRequest hooks run before route hooks, so nothing of a request is looked at first.
  app.addHook('onRequest', async (request, reply) => {
    // The raw URL and the matched route both count, so no spelling of a path reaches a /v1 handler unchecked.
    if (!request.url.startsWith('/v1/') && !(request.routeOptions.url ?? '').startsWith('/v1/')) return undefined;
    let client: ApiClient | undefined;
    if (deps.apiClients === null) client = ANONYMOUS;
    else {
      const header = request.headers.authorization;
      const m = header === undefined ? null : /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
      if (m === null) {
        reply.header('www-authenticate', `Bearer realm="${REALM}"`);
        return sendProblem(
          reply,
          problem(401, 'unauthorized', 'Unauthorized', 'an Authorization: Bearer <token> header is required'),
        );
      }
      client = deps.apiClients().authenticate(m[1] ?? '');
      if (client === undefined) {
        reply.header('www-authenticate', `Bearer realm="${REALM}", error="invalid_token"`);
        return sendProblem(reply, problem(401, 'unauthorized', 'Unauthorized', 'the bearer token is not valid'));
      }
    }
    request.apiClient = client;
    if (limiter !== undefined) {
      const d = limiter.take(client.id);
      reply.header('ratelimit-limit', String(limiter.options.burst));
      reply.header('ratelimit-remaining', String(d.remaining));
      reply.header('ratelimit-reset', String(d.resetSeconds));
      reply.header(
        'ratelimit-policy',
        `${limiter.options.burst};w=${Math.max(1, Math.ceil(limiter.options.burst / limiter.options.ratePerSecond))}`,
      );
      if (!d.allowed) {
        metrics.rateLimited.inc();
        reply.header('retry-after', String(d.retryAfterSeconds));
        return sendProblem(
          reply,
          problem(
            429,
            'rate-limited',
            'Too Many Requests',
            `client ${JSON.stringify(client.id)} exceeded ${limiter.options.ratePerSecond} requests per second (burst ${limiter.options.burst}); retry after ${d.retryAfterSeconds} s`,
          ),
        );
      }
    }
    const scope = request.routeOptions.config?.scope;
    if (scope !== undefined && !hasScope(client, scope)) {
      reply.header('www-authenticate', `Bearer realm="${REALM}", error="insufficient_scope", scope="${scope}"`);
      return sendProblem(
        reply,
        problem(403, 'forbidden', 'Forbidden', `client ${JSON.stringify(client.id)} lacks the scope ${scope}`),
      );
    }
    return undefined;
  });

  // Only JSON: fastify also parses text/plain by default, which this API does not accept.
  app.removeContentTypeParser('text/plain');

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.httpRequests.inc({ method: request.method, route, status_code: String(reply.statusCode) });
    metrics.httpDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    if (route !== '/healthz' && route !== '/readyz') {
      request.log.info(
        {
          method: request.method,
          route,
          statusCode: reply.statusCode,
          ms: Math.round(reply.elapsedTime),
          ...(request.apiClient !== null ? { client: request.apiClient.id } : {}),
        },
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

  /** The authenticated client; the onRequest hook answered already for every `/v1/*` request without one. */
  const clientOf = (request: FastifyRequest): ApiClient => {
    if (request.apiClient === null) throw new Error('unreachable: /v1 route without an authenticated client');
    return request.apiClient;
  };

  app.post('/v1/jobs', { onRequest: checkSubmitHeaders, config: { scope: 'jobs:submit' } }, async (request, reply) => {
    const key = request.headers['idempotency-key'] as string;
    const owner = clientOf(request).id;
    const validation = validateJobRequest(registry, request.body);
    if (!validation.ok) {
      const slug = validation.reason === 'unknown-type' ? 'unknown-job-type' : 'invalid-body';
      return sendProblem(reply, problem(400, slug, 'Bad Request', validation.detail, validation.errors));
    }
    const at = now();
    const doc = newJobDocument({ owner, idempotencyKey: key, type: validation.type, input: validation.input, at });
    try {
      const outcome = await store.insert(doc);
      if (outcome === 'duplicate') {
        // Concurrent or repeated requests with one key: the unique index picked a winner; answer with it.
        const existing = await store.findByIdempotencyKey(owner, key);
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
      // The job is stored and published, which is what 202 promises; the publication record is bookkeeping for
      // the sweeper, so the answer does not wait for it (if it is lost the sweeper publishes the job again, a
      // harmless duplicate). Shutdown waits for it: the store drains its batches before the client closes.
      void store
        .markPublished(doc._id, now())
        .catch((err: Error) => log.warn({ err: err.message }, 'could not mark job published'));
      log.info('job accepted and published');
    } catch (err) {
      metrics.publishDuration.observe({ outcome: 'failed' }, Number(process.hrtime.bigint() - started) / 1e9);
      log.warn({ err: (err as Error).message }, 'job accepted; publish failed, the outbox sweeper will retry');
      deps.onPublishFailed?.(doc);
    }
    return reply.code(202).header('location', jobLink(doc._id)).send(toView(doc));
  });

  app.get<{ Params: { id: string } }>('/v1/jobs/:id', { config: { scope: 'jobs:read' } }, async (request, reply) => {
    const { id } = request.params;
    const client = clientOf(request);
    const notFound = (): FastifyReply =>
      sendProblem(reply, problem(404, 'job-not-found', 'Not Found', `no job with id ${JSON.stringify(id)}`));
    if (!UUID_RE.test(id)) return notFound();
    try {
      const job = await store.findById(id);
      // Another client's job is as absent as a job that does not exist: no way to probe ids.
      if (job === null || (job.owner !== client.id && !isAdmin(client))) return notFound();
      return reply.send(toView(job));
    } catch (err) {
      if (err instanceof StoreUnavailableError) return storeUnavailable(reply);
      throw err;
    }
  });

  app.get<{ Querystring: Record<string, string | string[] | undefined> }>(
    '/v1/jobs',
    { config: { scope: 'jobs:read' } },
    async (request, reply) => {
      const q = request.query;
      const client = clientOf(request);
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
        const owner = isAdmin(client) ? undefined : client.id;
        const rows = await store.list({ status, limit: limit + 1, beforeId, owner });
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
    },
  );

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

  return app;
}

/**
 * `/metrics` on its own listener (`METRICS_PORT`), never on the API port: the Ingress and published ports carry
 * only the API, and the metrics port is reached by the scraper inside the cluster or network.
 */
export function buildMetricsApp(metrics: ProducerMetrics, logger: Logger): FastifyInstance {
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
  });
  installProblemHandlers(app);
  app.get('/metrics', async (_request, reply) => {
    const body = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(body);
  });
  return app;
}
