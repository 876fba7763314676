import { uuidv7Floor } from '../shared/ids';
import type { JobRef } from '../shared/jobs';
import type { Logger } from '../shared/logger';
import type { JobStore } from '../shared/store';
import type { JobPublisher } from './app';

export interface OutboxSweeperOptions {
  readonly store: JobStore;
  readonly publisher: JobPublisher;
  readonly logger: Logger;
  /** A stored job with no publication record is taken for an orphan once it is this old. */
  readonly republishAfterMs: number;
  /** Pause between ticks. Each tick publishes again the jobs whose publish failed in this process. */
  readonly intervalMs: number;
  /**
   * Pause between scans of the store for orphans (jobs of a producer that crashed before publishing), once a scan
   * has caught up. @default 30000
   */
  readonly scanIntervalMs?: number;
  /** Jobs read per page of a scan, and failed publishes retried per tick. @default 5000 */
  readonly batchSize?: number;
  /** Jobs known to be stored without a broker confirm: this process's failed publishes plus the last scan's orphans. */
  readonly onBacklog?: (count: number) => void;
}

const DEFAULT_BATCH = 5000;

/** Jobs kept for a retry in memory; beyond this a failed publish is left to the scan. */
export const MAX_PENDING = 10_000;

/**
 * How far behind the age bound each scan window starts again: ids carry their producer's clock, so an orphan of a
 * producer whose clock is behind ours still falls inside a later window.
 */
export const CLOCK_SLACK_MS = 60_000;

/**
 * Publishes jobs that were stored but never confirmed as published. Two sources, so that the store is not read
 * every second:
 *
 * - **This process's failed publishes** (broker down or slow to confirm): kept in memory and published again on
 *   every tick (`intervalMs`) while the broker is connected.
 * - **Orphans of other processes** (a producer crashed between insert and publish, or a publication record was
 *   lost): found by scanning the store for `queued`, never-claimed jobs older than `republishAfterMs` with no
 *   publication record. A pass reads pages of ids (creation order) up to the age bound it started with, one page
 *   per tick. The first pass walks the whole store; the next ones, every `scanIntervalMs`, read only the jobs
 *   created since the last bound, from {@link CLOCK_SLACK_MS} before it. The bound is fixed for a pass, so a
 *   pass ends even while jobs arrive faster than a page per tick (most of them published and waiting in the
 *   queue, which a scan cannot tell from orphans without reading their publication records).
 *
 * Several producer replicas may publish the same job; the consumer's atomic claim makes the duplicate harmless.
 */
export class OutboxSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** Where the next page starts (exclusive); undefined: at the first job. */
  private scanFrom: string | undefined;
  /** The age bound of the pass under way; undefined between passes. */
  private passBound: Date | undefined;
  private nextScanAt = 0;
  private lastScanOrphans = 0;
  private readonly pending = new Map<string, JobRef>();
  private overflowWarned = false;

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

  /** A job this process stored but could not publish: published again on the next tick. */
  retryLater(job: JobRef): void {
    if (this.pending.size >= MAX_PENDING) {
      if (!this.overflowWarned) {
        this.options.logger.warn(
          { pending: this.pending.size },
          'outbox: too many failed publishes to keep in memory; the next scans of the store will find the rest',
        );
        this.overflowWarned = true;
      }
      return;
    }
    this.pending.set(job._id, { _id: job._id, type: job.type });
  }

  /** Failed publishes waiting for a retry in this process. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** One tick: the failed publishes again, then a scan of the store when one is due. Returns how many were published. */
  async sweepOnce(): Promise<number> {
    let published = 0;
    if (this.options.publisher.isReady()) {
      const retried = await this.publishPending();
      published = retried.published;
      // A refused retry means the broker refuses now: a scan would read the store only to publish nothing.
      if (!retried.refused && !this.stopped && Date.now() >= this.nextScanAt) published += await this.scan();
    }
    this.options.onBacklog?.(this.pending.size + this.lastScanOrphans);
    return published;
  }

  private async publishPending(): Promise<{ published: number; refused: boolean }> {
    const batch = [...this.pending.values()].slice(0, this.options.batchSize ?? DEFAULT_BATCH);
    let published = 0;
    let refused = false;
    for (const job of batch) {
      if (this.stopped) break;
      if (!(await this.publishOne(job))) {
        refused = true;
        break;
      }
      this.pending.delete(job._id);
      published++;
    }
    if (this.pending.size < MAX_PENDING / 2) this.overflowWarned = false;
    return { published, refused };
  }

  private async scan(): Promise<number> {
    const { store, republishAfterMs } = this.options;
    const started = Date.now();
    this.passBound ??= new Date(started - republishAfterMs);
    const olderThan = this.passBound;
    const batchSize = this.options.batchSize ?? DEFAULT_BATCH;
    const { jobs, scanned, lastId } = await store.findUnpublished(olderThan, batchSize, this.scanFrom);
    // This process's own failed publishes are retried from memory already.
    const orphans = jobs.filter((j) => !this.pending.has(j._id));
    let published = 0;
    for (const job of orphans) {
      if (this.stopped || !(await this.publishOne(job))) {
        // Same page again on the next tick: the jobs published meanwhile have their records and drop out.
        this.lastScanOrphans = orphans.length - published;
        this.nextScanAt = 0;
        return published;
      }
      published++;
    }
    this.lastScanOrphans = 0;
    if (scanned === batchSize && lastId !== undefined) {
      // More below this pass's bound: the next page on the next tick.
      this.scanFrom = lastId;
      this.nextScanAt = 0;
    } else {
      // Pass done: the next one reads what was created since, from the slack before this one's bound.
      const floor = uuidv7Floor(olderThan.getTime() - CLOCK_SLACK_MS);
      this.scanFrom = this.scanFrom === undefined || floor > this.scanFrom ? floor : this.scanFrom;
      this.passBound = undefined;
      this.nextScanAt = started + (this.options.scanIntervalMs ?? 30_000);
    }
    return published;
  }

  /** Publishes and records one job; false (logged) when the broker or the store refused. */
  private async publishOne(job: JobRef): Promise<boolean> {
    const { store, publisher, logger } = this.options;
    try {
      await publisher.publish(job);
      await store.markPublished(job._id, new Date());
      logger.info({ jobId: job._id, jobType: job.type }, 'outbox: published a job that had no broker confirm');
      return true;
    } catch (err) {
      logger.warn({ jobId: job._id, err: (err as Error).message }, 'outbox: publish failed');
      return false;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.running;
  }
}
