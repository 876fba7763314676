import { StoreUnavailableError, type JobDocument, type JobRef, type JobStatus } from '../../src/shared/jobs';
import type { JobPublisher } from '../../src/producer/app';
import type { JobStore, ListJobsQuery } from '../../src/shared/store';

/** In-memory JobStore for unit tests of the HTTP app (integration tests use MongoDB). */
export class FakeStore implements JobStore {
  readonly jobs = new Map<string, JobDocument>();
  readonly published = new Set<string>();
  down = false;

  private check(): void {
    if (this.down) throw new StoreUnavailableError('connect ECONNREFUSED');
  }

  async insert(doc: JobDocument): Promise<'inserted' | 'duplicate'> {
    this.check();
    if ([...this.jobs.values()].some((j) => j.owner === doc.owner && j.idempotencyKey === doc.idempotencyKey))
      return 'duplicate';
    this.jobs.set(doc._id, structuredClone(doc));
    return 'inserted';
  }
  async findById(id: string): Promise<JobDocument | null> {
    this.check();
    return this.jobs.get(id) ?? null;
  }
  async findByIdempotencyKey(owner: string, key: string): Promise<JobDocument | null> {
    this.check();
    return [...this.jobs.values()].find((j) => j.owner === owner && j.idempotencyKey === key) ?? null;
  }
  async list(q: ListJobsQuery): Promise<JobDocument[]> {
    this.check();
    return [...this.jobs.values()]
      .filter(
        (j) =>
          (q.status === undefined || j.status === q.status) &&
          (q.beforeId === undefined || j._id < q.beforeId) &&
          (q.owner === undefined || j.owner === q.owner),
      )
      .sort((a, b) => (a._id < b._id ? 1 : -1))
      .slice(0, q.limit);
  }
  async markPublished(id: string): Promise<void> {
    this.check();
    this.published.add(id);
  }
  /** The `afterId` of every outbox scan, in order. */
  readonly scans: (string | undefined)[] = [];
  async findUnpublished(
    olderThan: Date,
    limit: number,
    afterId?: string,
  ): Promise<{ jobs: JobDocument[]; scanned: number; lastId?: string }> {
    this.check();
    this.scans.push(afterId);
    const candidates = [...this.jobs.values()]
      .filter(
        (j) =>
          j.status === 'queued' &&
          j.attempts === 0 &&
          j.createdAt < olderThan &&
          (afterId === undefined || j._id > afterId),
      )
      .sort((a, b) => (a._id < b._id ? -1 : 1))
      .slice(0, limit);
    return {
      jobs: candidates.filter((j) => !this.published.has(j._id)),
      scanned: candidates.length,
      ...(candidates.length > 0 ? { lastId: candidates[candidates.length - 1]?._id } : {}),
    };
  }
  async countByStatus(): Promise<Record<JobStatus, number>> {
    this.check();
    const counts: Record<JobStatus, number> = { queued: 0, running: 0, retrying: 0, succeeded: 0, failed: 0 };
    for (const j of this.jobs.values()) counts[j.status]++;
    return counts;
  }
  async ping(): Promise<void> {
    this.check();
  }
}

export class FakePublisher implements JobPublisher {
  readonly messages: string[] = [];
  ready = true;
  async publish(job: JobRef): Promise<void> {
    if (!this.ready) throw new Error('not connected to the broker');
    this.messages.push(job._id);
  }
  isReady(): boolean {
    return this.ready;
  }
}
