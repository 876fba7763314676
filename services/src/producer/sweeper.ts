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
    const jobs = await store.findUnpublished(olderThan, this.options.batchSize ?? 100);
    let published = 0;
    for (const job of jobs) {
      if (this.stopped) break;
      try {
        await publisher.publish(job);
        await store.markPublished(job._id, new Date());
        published++;
        logger.info({ jobId: job._id, jobType: job.type }, 'outbox: republished job');
      } catch (err) {
        logger.warn({ jobId: job._id, err: (err as Error).message }, 'outbox: republish failed');
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
