import { randomUUID } from 'node:crypto';
import { type Collection, type Db, type Filter, type UpdateFilter } from 'mongodb';
import { GroupCommit, NO_GROUP_COMMIT, settle, type GroupCommitOptions, type Settled } from '../shared/group-commit';
import { jobsCollection, storeCall, isPartialWriteError, type JobDocument, type JobError } from '../shared/jobs';

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
  /** The outcome batch that last wrote the job (a random token), so a worker can tell which writes of a batch landed. */
  lastWrite?: string;
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

/** One outcome write of a job this worker holds: only the lease owner, only while `running`. */
export type OutcomeWrite =
  | {
      readonly kind: 'succeeded';
      readonly jobId: string;
      readonly workerId: string;
      readonly result: unknown;
      readonly now: Date;
    }
  | {
      readonly kind: 'retrying';
      readonly jobId: string;
      readonly workerId: string;
      readonly error: JobError;
      readonly nextAttemptAt: Date;
      readonly now: Date;
    }
  | {
      readonly kind: 'failed';
      readonly jobId: string;
      readonly workerId: string;
      readonly error: JobError;
      readonly now: Date;
    };

/** The update of an outcome write; `token` names the batch that wrote it (see {@link JobClaims}). */
export function outcomeUpdate(o: OutcomeWrite, token: string): UpdateFilter<JobWithSchedule> {
  const released = { updatedAt: o.now, leaseOwner: null, leaseExpiresAt: null, lastWrite: token };
  switch (o.kind) {
    case 'succeeded':
      return {
        $set: { status: 'succeeded', result: o.result, error: null, finishedAt: o.now, ...released },
        $inc: { runs: 1 },
      };
    case 'retrying':
      return { $set: { status: 'retrying', error: o.error, nextAttemptAt: o.nextAttemptAt, ...released } };
    case 'failed':
      return { $set: { status: 'failed', error: o.error, finishedAt: o.now, ...released } };
  }
}

interface Renewal {
  readonly jobId: string;
  readonly workerId: string;
  readonly until: Date;
}

export interface JobClaimsOptions {
  /** How the claims, outcome writes and lease renewals of this worker share round trips. @default none */
  readonly groupCommit?: GroupCommitOptions;
  /** Called with the kind (`claim`, `outcome`, `renewal`) and size of every batch sent (metrics). */
  readonly onBatch?: (kind: string, size: number) => void;
}

/**
 * Claims and outcome writes are group-committed: three or more deliveries that arrive together are claimed in
 * one unordered `bulkWrite` of conditional `updateOne`s (each as atomic as a lone one) plus one `find` of this
 * worker's running jobs, which tells which claims won (one or two are claimed by `findOneAndUpdate` each); the
 * results that finish together are written in one `bulkWrite`. Every operation names one `_id`, because FerretDB pushes only equality filters down to its
 * indexes (`$in` scans the collection).
 */
export class JobClaims {
  private readonly jobs: Collection<JobWithSchedule>;
  private readonly claims: GroupCommit<ClaimRequest, JobWithSchedule | null>;
  private readonly outcomes: GroupCommit<OutcomeWrite, boolean>;
  private readonly renewals: GroupCommit<Renewal, void>;

  constructor(db: Db, options: JobClaimsOptions = {}) {
    this.jobs = jobsCollection(db) as Collection<JobWithSchedule>;
    const groupCommit = options.groupCommit ?? NO_GROUP_COMMIT;
    const onBatch = options.onBatch;
    this.claims = new GroupCommit(
      (reqs) => this.claimBatch(reqs),
      groupCommit,
      (n) => onBatch?.('claim', n),
    );
    this.outcomes = new GroupCommit(
      (os) => this.outcomeBatch(os),
      groupCommit,
      (n) => onBatch?.('outcome', n),
    );
    this.renewals = new GroupCommit(
      (rs) => this.renewBatch(rs),
      groupCommit,
      (n) => onBatch?.('renewal', n),
    );
  }

  /** Atomically claims the job; null when it is not claimable (finished, leased by another worker, no attempts left). */
  claim(req: ClaimRequest): Promise<JobWithSchedule | null> {
    return this.claims.submit(req);
  }

  private async claimBatch(reqs: readonly ClaimRequest[]): Promise<Settled<JobWithSchedule | null>[]> {
    const one = async (req: ClaimRequest): Promise<JobWithSchedule | null> =>
      this.jobs.findOneAndUpdate(claimFilter(req), claimUpdate(req), { returnDocument: 'after' });
    // Up to two claims, each its own `findOneAndUpdate` (sent together): as many round trips as the bulk write and
    // its read-back, but side by side instead of one after the other (on FerretDB a `findOneAndUpdate` also cost
    // less CPU per claim than the bulk path did, measured on batches of 10: BENCHMARKS.md, "Group commit").
    if (reqs.length <= 2) return Promise.all(reqs.map((req) => settle(one(req))));
    // One claim time for the batch (the latest of its requests: a lease that expired by then is expired when the
    // batch is written), so the claims that won are read back by it: this worker's leases taken at that time.
    const now = new Date(Math.max(...reqs.map((r) => r.now.getTime())));
    const batch = reqs.map((req) => ({ ...req, now }));
    const { failed } = await storeCall(() =>
      this.bulkUpdate(batch.map((req) => ({ filter: claimFilter(req), update: claimUpdate(req) }))),
    );
    // A claim won iff the job is now running under this worker's lease taken at the batch's time: the worker runs
    // one delivery of a job at a time, so no other claim of its own can match that. The read names the time as
    // well as the owner, so it returns this batch's jobs only, not every job the worker is running.
    const running = new Map<string, JobWithSchedule>();
    for (const owner of new Set(batch.map((r) => r.workerId))) {
      const docs = await storeCall(() =>
        this.jobs.find({ leaseOwner: owner, startedAt: now, status: 'running' }).toArray(),
      );
      for (const doc of docs) running.set(doc._id, doc);
    }
    return Promise.all(
      batch.map(async (req): Promise<Settled<JobWithSchedule | null>> => {
        const doc = running.get(req.jobId);
        if (doc?.leaseOwner === req.workerId && doc.startedAt?.getTime() === now.getTime()) {
          return { ok: true, value: doc };
        }
        // After a write error in the batch, which operations ran is not known for sure (FerretDB 1.24 stops an
        // unordered batch at its first error and reports it at the wrong index): the claims that did not land
        // are tried again alone, so a bad document fails only its own delivery.
        return failed ? settle(one(req)) : { ok: true, value: null };
      }),
    );
  }

  /**
   * One outcome per job, all in one `bulkWrite`. The server counts matches for the whole batch only; when fewer
   * matched than were sent (a lease lost) or a write failed, each job is read back: this batch's `lastWrite`
   * token on it says the write landed; a job still running under this worker's lease gets its write again,
   * alone (its error then goes to its caller only); any other job's lease was lost.
   */
  private async outcomeBatch(writes: readonly OutcomeWrite[]): Promise<Settled<boolean>[]> {
    const token = randomUUID();
    const op = (o: OutcomeWrite): { filter: Filter<JobWithSchedule>; update: UpdateFilter<JobWithSchedule> } => ({
      filter: this.owned(o.jobId, o.workerId),
      update: outcomeUpdate(o, token),
    });
    const { failed, matched } = await storeCall(() => this.bulkUpdate(writes.map(op)));
    if (!failed && matched === writes.length) return writes.map(() => ({ ok: true, value: true }));
    return Promise.all(
      writes.map(async (o): Promise<Settled<boolean>> => {
        const doc = await settle(
          this.jobs.findOne({ _id: o.jobId }, { projection: { lastWrite: 1, status: 1, leaseOwner: 1 } }),
        );
        if (!doc.ok) return doc;
        if (doc.value?.lastWrite === token) return { ok: true, value: true };
        if (doc.value?.status !== 'running' || doc.value.leaseOwner !== o.workerId) return { ok: true, value: false };
        const { filter, update } = op(o);
        return settle(this.jobs.updateOne(filter, update).then((r) => r.matchedCount === 1));
      }),
    );
  }

  /**
   * Unordered `bulkWrite` of one `updateOne` per job: how many matched, and whether any single write failed
   * (then which did is read back by the caller: see {@link claimBatch}). Throws when the whole batch failed.
   */
  private async bulkUpdate(
    ops: readonly { filter: Filter<JobWithSchedule>; update: UpdateFilter<JobWithSchedule> }[],
  ): Promise<{ failed: boolean; matched: number }> {
    const models = ops.map((op) => ({ updateOne: { filter: op.filter, update: op.update } }));
    try {
      const res = await this.jobs.bulkWrite(models, { ordered: false });
      return { failed: false, matched: res.matchedCount };
    } catch (err) {
      if (!isPartialWriteError(err)) throw err;
      return { failed: true, matched: err.matchedCount };
    }
  }

  /** Lease renewals: whether each still matched is not needed (a lost lease shows at the outcome write). */
  private async renewBatch(renewals: readonly Renewal[]): Promise<Settled<void>[]> {
    const ops = renewals.map((r) => ({
      filter: this.owned(r.jobId, r.workerId),
      update: { $set: { leaseExpiresAt: r.until } },
    }));
    const { failed } = await storeCall(() => this.bulkUpdate(ops));
    if (!failed) return renewals.map(() => ({ ok: true, value: undefined }));
    return Promise.all(ops.map((o) => settle(this.jobs.updateOne(o.filter, o.update).then(() => undefined))));
  }

  /** Waits for every batch already submitted (shutdown). */
  async drain(): Promise<void> {
    await Promise.all([this.claims.drain(), this.outcomes.drain(), this.renewals.drain()]);
  }

  get(jobId: string): Promise<JobWithSchedule | null> {
    return storeCall(() => this.jobs.findOne({ _id: jobId }));
  }

  private owned(jobId: string, workerId: string): Filter<JobWithSchedule> {
    return { _id: jobId, status: 'running', leaseOwner: workerId };
  }

  /** Extends the lease; resolves once written (whether it still matched is not reported). */
  async renewLease(jobId: string, workerId: string, until: Date): Promise<void> {
    await this.renewals.submit({ jobId, workerId, until });
  }

  /** Counts a handler run whose result was discarded because the job was no longer this worker's. */
  async recordRun(jobId: string): Promise<void> {
    await storeCall(() => this.jobs.updateOne({ _id: jobId }, { $inc: { runs: 1 } }));
  }

  /** Writes the result once: only the lease owner, only while `running`. False when the lease was lost. */
  complete(jobId: string, workerId: string, result: unknown, now: Date): Promise<boolean> {
    return this.outcomes.submit({ kind: 'succeeded', jobId, workerId, result, now });
  }

  scheduleRetry(jobId: string, workerId: string, error: JobError, nextAttemptAt: Date, now: Date): Promise<boolean> {
    return this.outcomes.submit({ kind: 'retrying', jobId, workerId, error, nextAttemptAt, now });
  }

  fail(jobId: string, workerId: string, error: JobError, now: Date): Promise<boolean> {
    return this.outcomes.submit({ kind: 'failed', jobId, workerId, error, now });
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
