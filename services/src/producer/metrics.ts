import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { JOB_STATUSES } from '../shared/jobs';
import type { JobStore } from '../shared/store';

/** One registry per app instance (not prom-client's global one), so tests can build several apps. */
export class ProducerMetrics {
  readonly registry: Registry;
  readonly httpRequests: Counter<'method' | 'route' | 'status_code'>;
  readonly httpDuration: Histogram<'method' | 'route'>;
  readonly submissions: Counter<'outcome'>;
  readonly publishDuration: Histogram<'outcome'>;
  readonly outboxBacklog: Gauge;
  readonly rateLimited: Counter;

  constructor(store: JobStore, options: { readonly defaultMetrics?: boolean; readonly registry?: Registry } = {}) {
    this.registry = options.registry ?? new Registry();
    const registers = [this.registry];
    if (options.defaultMetrics === true) collectDefaultMetrics({ register: this.registry });
    this.httpRequests = new Counter({
      name: 'http_requests_total',
      help: 'HTTP requests by route and status code',
      labelNames: ['method', 'route', 'status_code'],
      registers,
    });
    this.httpDuration = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration',
      labelNames: ['method', 'route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.submissions = new Counter({
      name: 'job_submissions_total',
      help: 'POST /v1/jobs outcomes: created, duplicate (same key and body), conflict (same key, other body)',
      labelNames: ['outcome'],
      registers,
    });
    this.publishDuration = new Histogram({
      name: 'job_publish_duration_seconds',
      help: 'Time from publish to broker confirm, by outcome (confirmed, failed)',
      labelNames: ['outcome'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers,
    });
    new Gauge({
      name: 'jobs',
      help: 'Jobs in MongoDB by status (read at scrape time)',
      labelNames: ['status'],
      registers,
      async collect() {
        try {
          const counts = await store.countByStatus();
          for (const status of JOB_STATUSES) this.set({ status }, counts[status]);
        } catch {
          // MongoDB down: keep the last values rather than failing the whole scrape.
        }
      },
    });
    this.rateLimited = new Counter({
      name: 'http_rate_limited_total',
      help: 'Requests answered 429 because the client exceeded its rate limit',
      registers,
    });
    this.outboxBacklog = new Gauge({
      name: 'outbox_backlog',
      help: 'Jobs stored without a broker confirm: publishes of this process waiting for a retry, plus orphans the last outbox scan found and could not publish yet',
      registers,
    });
  }
}
