import { type Collection, type Db, type Filter, type UpdateFilter } from 'mongodb';
import { jobsCollection, storeCall, type JobDocument, type JobError } from '../shared/jobs';

/**
 * The consumer's side of the job document. Every state change is one conditional update, so two workers
 * holding deliveries of the same job (redelivery after a crash, duplicate publish by the outbox) cannot both
 * run it while a lease is valid, and a result is written at most once (only by the lease owner, only while
 * the job is still `running`).
 */

export interface ClaimRequest {
  readonly jobId: string;
  readonly workerId: string;
  readonly now: Date;
  readonly leaseMs: number;
  readonly maxAttempts: number;
}

/** The filter of a claim: claimable statuses, attempts left, and an expired lease for a `running` job. */
export function claimFilter(req: ClaimRequest): Filter<JobDocument> {
  return {
    _id: req.jobId,
    attempts: { $lt: req.maxAttempts },
    $or: [
      { status: 'queued' },
      { status: 'retrying', nextAttemptAt: { $lte: req.now } },
      // The previous owner crashed or stalled past its lease: take over (counts as a new attempt).
      { status: 'running', leaseExpiresAt: { $lte: req.now } },
    ],
  } as Filter<JobDocument>;
}

export function claimUpdate(req: ClaimRequest): UpdateFilter<JobDocument> {
  return {
    $set: {
      status: 'running',
      leaseOwner: req.workerId,
      leaseExpiresAt: new Date(req.now.getTime() + req.leaseMs),
      startedAt: req.now,
      updatedAt: req.now,
    },
    $inc: { attempts: 1 },
  };
}

/** What to do with a delivery whose job could not be claimed. */
export type UnclaimableDecision =
  | { readonly action: 'missing' }
  | { readonly action: 'finished' }
  | { readonly action: 'wait'; readonly delayMs: number }
  | { readonly action: 'exhausted' }
  | { readonly action: 'retry-now' };

export interface JobWithSchedule extends JobDocument {
  nextAttemptAt?: Date | null;
}

export function decideUnclaimable(job: JobWithSchedule | null, now: Date, maxAttempts: number): UnclaimableDecision {
  if (job === null) return { action: 'missing' };
  if (job.status === 'succeeded' || job.status === 'failed') return { action: 'finished' };
  if (job.status === 'running') {
    const expires = job.leaseExpiresAt?.getTime() ?? 0;
    if (expires > now.getTime()) return { action: 'wait', delayMs: expires - now.getTime() };
    if (job.attempts >= maxAttempts) return { action: 'exhausted' };
    return { action: 'retry-now' };
  }
  if (job.attempts >= maxAttempts) return { action: 'exhausted' };
  if (job.status === 'retrying' && job.nextAttemptAt != null && job.nextAttemptAt.getTime() > now.getTime()) {
    return { action: 'wait', delayMs: job.nextAttemptAt.getTime() - now.getTime() };
  }
  return { action: 'retry-now' };
}

export class JobClaims {
  private readonly jobs: Collection<JobWithSchedule>;

  constructor(db: Db) {
    this.jobs = jobsCollection(db) as Collection<JobWithSchedule>;
  }

  /** Atomically claims the job; null when it is not claimable (finished, leased by another worker, no attempts left). */
  claim(req: ClaimRequest): Promise<JobWithSchedule | null> {
    return storeCall(() => this.jobs.findOneAndUpdate(claimFilter(req), claimUpdate(req), { returnDocument: 'after' }));
  }

  get(jobId: string): Promise<JobWithSchedule | null> {
    return storeCall(() => this.jobs.findOne({ _id: jobId }));
  }

  private owned(jobId: string, workerId: string): Filter<JobWithSchedule> {
    return { _id: jobId, status: 'running', leaseOwner: workerId };
  }

  async renewLease(jobId: string, workerId: string, until: Date): Promise<boolean> {
    const res = await storeCall(() =>
      this.jobs.updateOne(this.owned(jobId, workerId), { $set: { leaseExpiresAt: until } }),
    );
    return res.matchedCount === 1;
  }

  /** Counts a handler run whose result was discarded because the job was no longer this worker's. */
  async recordRun(jobId: string): Promise<void> {
    await storeCall(() => this.jobs.updateOne({ _id: jobId }, { $inc: { runs: 1 } }));
  }

  /** Writes the result once: only the lease owner, only while `running`. False when the lease was lost. */
  async complete(jobId: string, workerId: string, result: unknown, now: Date): Promise<boolean> {
    const res = await storeCall(() =>
      this.jobs.updateOne(this.owned(jobId, workerId), {
        $set: {
          status: 'succeeded',
          result,
          error: null,
          finishedAt: now,
          updatedAt: now,
          leaseOwner: null,
          leaseExpiresAt: null,
        },
        $inc: { runs: 1 },
      }),
    );
    return res.matchedCount === 1;
  }

  async scheduleRetry(
    jobId: string,
    workerId: string,
    error: JobError,
    nextAttemptAt: Date,
    now: Date,
  ): Promise<boolean> {
    const res = await storeCall(() =>
      this.jobs.updateOne(this.owned(jobId, workerId), {
        $set: { status: 'retrying', error, nextAttemptAt, updatedAt: now, leaseOwner: null, leaseExpiresAt: null },
      }),
    );
    return res.matchedCount === 1;
  }

  async fail(jobId: string, workerId: string, error: JobError, now: Date): Promise<boolean> {
    const res = await storeCall(() =>
      this.jobs.updateOne(this.owned(jobId, workerId), {
        $set: { status: 'failed', error, finishedAt: now, updatedAt: now, leaseOwner: null, leaseExpiresAt: null },
      }),
    );
    return res.matchedCount === 1;
  }

  /** The last attempt's worker died (lease expired with no attempts left): the job fails without running again. */
  async failExhausted(jobId: string, maxAttempts: number, error: JobError, now: Date): Promise<boolean> {
    const res = await storeCall(() =>
      this.jobs.updateOne(
        {
          _id: jobId,
          attempts: { $gte: maxAttempts },
          $or: [{ status: { $in: ['queued', 'retrying'] } }, { status: 'running', leaseExpiresAt: { $lte: now } }],
        } as Filter<JobWithSchedule>,
        { $set: { status: 'failed', error, finishedAt: now, updatedAt: now, leaseOwner: null, leaseExpiresAt: null } },
      ),
    );
    return res.matchedCount === 1;
  }

  /** Gives an interrupted attempt back (drain timeout): not counted, claimable again at once. */
  async release(jobId: string, workerId: string, now: Date): Promise<boolean> {
    const res = await storeCall(() =>
      this.jobs.updateOne(this.owned(jobId, workerId), {
        $set: { status: 'retrying', nextAttemptAt: now, updatedAt: now, leaseOwner: null, leaseExpiresAt: null },
        $inc: { attempts: -1 },
      }),
    );
    return res.matchedCount === 1;
  }
}
