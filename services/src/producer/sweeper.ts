import type { Logger } from '../shared/logger';
import type { JobStore } from '../shared/store';
import type { JobPublisher } from './app';

export interface OutboxSweeperOptions {
  readonly store: JobStore;
  readonly publisher: JobPublisher;
  readonly logger: Logger;
  readonly republishAfterMs: number;
  readonly intervalMs: number;
  readonly batchSize?: number;
  /** Unpublished jobs found by the last sweep (for the outbox_backlog gauge). */
  readonly onBacklog?: (count: number) => void;
}

/**
 * Publishes jobs that were stored but never confirmed as published (producer crashed between insert and
 * publish, or the broker was down). Several producer replicas may publish the same job; the consumer's atomic
 * claim makes the duplicate message harmless.
 */
export class OutboxSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private resumeAfter: string | undefined;

  constructor(private readonly options: OutboxSweeperOptions) {}

  start(): void {
    const tick = (): void => {
      if (this.stopped) return;
      this.running = this.sweepOnce()
        .then(() => undefined)
        .catch((err: Error) => this.options.logger.warn({ err: err.message }, 'outbox sweep failed'))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.options.intervalMs);
        });
    };
    this.timer = setTimeout(tick, this.options.intervalMs);
  }

  /** One pass; returns how many jobs were republished. */
  async sweepOnce(): Promise<number> {
    const { store, publisher, logger } = this.options;
    if (!publisher.isReady()) return 0;
    const olderThan = new Date(Date.now() - this.options.republishAfterMs);
    const batchSize = this.options.batchSize ?? 500;
    const { jobs, scanned, lastId } = await store.findUnpublished(olderThan, batchSize, this.resumeAfter);
    // Page through a long backlog of published-but-unconsumed jobs across sweeps; start over at the end.
    this.resumeAfter = scanned === batchSize ? lastId : undefined;
    this.options.onBacklog?.(jobs.length);
    let published = 0;
    for (const job of jobs) {
      if (this.stopped) break;
      try {
        await publisher.publish(job);
        await store.markPublished(job._id, new Date());
        published++;
        logger.info({ jobId: job._id, jobType: job.type }, 'outbox: published a job that had no broker confirm');
      } catch (err) {
        logger.warn({ jobId: job._id, err: (err as Error).message }, 'outbox: publish failed');
        break;
      }
    }
    return published;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.running;
  }
}
