import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class ConsumerMetrics {
  readonly registry = new Registry();
  readonly outcomes: Counter<'type' | 'outcome'>;
  readonly duration: Histogram<'type' | 'outcome'>;
  readonly inFlight: Gauge;

  constructor(options: { readonly defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics === true) collectDefaultMetrics({ register: this.registry });
    this.outcomes = new Counter({
      name: 'job_deliveries_total',
      help: 'Deliveries by job type and outcome (succeeded, retried, failed, duplicate, store-unavailable)',
      labelNames: ['type', 'outcome'],
      registers,
    });
    this.duration = new Histogram({
      name: 'job_handler_duration_seconds',
      help: 'Handler run time by job type and outcome',
      labelNames: ['type', 'outcome'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60],
      registers,
    });
    this.inFlight = new Gauge({ name: 'jobs_in_flight', help: 'Handlers running now', registers });
  }
}
