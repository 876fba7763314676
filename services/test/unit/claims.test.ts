import { claimFilter, claimUpdate, decideUnclaimable } from '../../src/consumer/claims';
import { backoffDelayMs } from '../../src/shared/backoff';
import { newJobDocument, type JobDocument } from '../../src/shared/jobs';
import { retryTiers, tierFor, topologyNames } from '../../src/shared/topology';

const now = new Date('2026-01-01T00:00:00Z');
const job = (over: Partial<JobDocument> & { nextAttemptAt?: Date | null }): JobDocument => ({
  ...newJobDocument({ owner: 'c', idempotencyKey: 'k', type: 'noop', input: {}, at: now }),
  _id: 'j',
  ...over,
});

describe('claim', () => {
  const req = { jobId: 'j', workerId: 'w1', now, leaseMs: 60_000, maxAttempts: 5 };

  it('matches queued jobs, retrying jobs whose backoff ended, and running jobs whose lease expired, with attempts left', () => {
    expect(claimFilter(req)).toEqual({
      _id: 'j',
      attempts: { $lt: 5 },
      $or: [
        { status: 'queued' },
        { status: 'retrying', nextAttemptAt: { $lte: now } },
        { status: 'running', leaseExpiresAt: { $lte: now } },
      ],
    });
  });

  it('takes a lease and counts the attempt in the same update', () => {
    expect(claimUpdate(req)).toEqual({
      $set: {
        status: 'running',
        leaseOwner: 'w1',
        leaseExpiresAt: new Date(now.getTime() + 60_000),
        startedAt: now,
        updatedAt: now,
      },
      $inc: { attempts: 1 },
    });
  });
});

describe('a delivery that could not be claimed', () => {
  it('is acked without running when the job is finished', () => {
    expect(decideUnclaimable(job({ status: 'succeeded' }), now, 5)).toEqual({ action: 'finished' });
    expect(decideUnclaimable(job({ status: 'failed' }), now, 5)).toEqual({ action: 'finished' });
  });

  it('waits for a lease held by another worker', () => {
    expect(
      decideUnclaimable(
        job({ status: 'running', attempts: 1, leaseExpiresAt: new Date(now.getTime() + 1500) }),
        now,
        5,
      ),
    ).toEqual({
      action: 'wait',
      delayMs: 1500,
    });
  });

  it('fails the job when the last attempt lost its worker', () => {
    expect(
      decideUnclaimable(job({ status: 'running', attempts: 5, leaseExpiresAt: new Date(now.getTime() - 1) }), now, 5),
    ).toEqual({ action: 'exhausted' });
  });

  it('waits for the end of a retry backoff', () => {
    expect(
      decideUnclaimable(job({ status: 'retrying', attempts: 2, nextAttemptAt: new Date(now.getTime() + 200) }), now, 5),
    ).toEqual({ action: 'wait', delayMs: 200 });
  });

  it('dead-letters a message for a job that does not exist', () => {
    expect(decideUnclaimable(null, now, 5)).toEqual({ action: 'missing' });
  });
});

describe('retry backoff', () => {
  it('grows exponentially with jitter between half and all of the capped delay', () => {
    expect(backoffDelayMs(1, 1000, 60_000, () => 0)).toBe(500);
    expect(backoffDelayMs(1, 1000, 60_000, () => 1)).toBe(1000);
    expect(backoffDelayMs(3, 1000, 60_000, () => 1)).toBe(4000);
    expect(backoffDelayMs(20, 1000, 60_000, () => 1)).toBe(60_000);
    expect(backoffDelayMs(20, 1000, 60_000, () => 0)).toBe(30_000);
  });

  it('routes each delay to the retry queue tier that bounds it', () => {
    const tiers = retryTiers(1000, 60_000);
    expect(tiers.count).toBe(7);
    expect([500, 1000, 1001, 2000, 3000, 60_000, 120_000].map((d) => tierFor(tiers, d))).toEqual([0, 0, 1, 1, 2, 6, 6]);
    expect(topologyNames('jobs').retryQueue(3)).toBe('jobs.retry.3');
    expect(topologyNames('jobs')).toMatchObject({ exchange: 'jobs', workQueue: 'jobs.work', deadQueue: 'jobs.dead' });
  });
});
