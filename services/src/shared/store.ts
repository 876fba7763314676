import { type Collection, type Db, type Filter } from 'mongodb';
import {
  isDuplicateKeyError,
  jobsCollection,
  JOB_STATUSES,
  publicationsCollection,
  storeCall,
  type JobDocument,
  type JobStatus,
  type PublicationDocument,
} from './jobs';

export interface ListJobsQuery {
  readonly status?: JobStatus;
  readonly limit: number;
  /** Only jobs with a smaller id (older), for newest-first pages. */
  readonly beforeId?: string;
  /** Only this client's jobs. @default every client's */
  readonly owner?: string;
}

/** What the producer's HTTP app needs from storage; unit tests pass an in-memory fake. */
export interface JobStore {
  /** Inserts a new job; `duplicate` when its owner used the idempotency key already. */
  insert(doc: JobDocument): Promise<'inserted' | 'duplicate'>;
  findById(id: string): Promise<JobDocument | null>;
  findByIdempotencyKey(owner: string, key: string): Promise<JobDocument | null>;
  list(query: ListJobsQuery): Promise<JobDocument[]>;
  /** Records the broker's confirm (idempotent). */
  markPublished(id: string, at: Date): Promise<void>;
  /**
   * Outbox scan: among never-claimed `queued` jobs created before `olderThan`, in id (= creation) order after
   * `afterId`, the ones without a publication record. `scanned` is how many candidates were looked at, so the
   * caller can page through a long backlog across sweeps.
   */
  findUnpublished(
    olderThan: Date,
    limit: number,
    afterId?: string,
  ): Promise<{ jobs: JobDocument[]; scanned: number; lastId?: string }>;
  countByStatus(): Promise<Record<JobStatus, number>>;
  ping(): Promise<void>;
}

export class MongoJobStore implements JobStore {
  private readonly jobs: Collection<JobDocument>;
  private readonly publications: Collection<PublicationDocument>;

  constructor(private readonly db: Db) {
    this.jobs = jobsCollection(db);
    this.publications = publicationsCollection(db);
  }

  async insert(doc: JobDocument): Promise<'inserted' | 'duplicate'> {
    return storeCall(async () => {
      try {
        await this.jobs.insertOne(doc);
        return 'inserted';
      } catch (err) {
        if (isDuplicateKeyError(err)) return 'duplicate';
        throw err;
      }
    });
  }

  findById(id: string): Promise<JobDocument | null> {
    return storeCall(() => this.jobs.findOne({ _id: id }));
  }

  findByIdempotencyKey(owner: string, key: string): Promise<JobDocument | null> {
    return storeCall(() => this.jobs.findOne({ owner, idempotencyKey: key }));
  }

  list(query: ListJobsQuery): Promise<JobDocument[]> {
    const filter: Filter<JobDocument> = {};
    if (query.status !== undefined) filter.status = query.status;
    if (query.owner !== undefined) filter.owner = query.owner;
    if (query.beforeId !== undefined) filter._id = { $lt: query.beforeId };
    return storeCall(() => this.jobs.find(filter).sort({ _id: -1 }).limit(query.limit).toArray());
  }

  async markPublished(id: string, at: Date): Promise<void> {
    await storeCall(async () => {
      try {
        await this.publications.insertOne({ _id: id, at });
      } catch (err) {
        if (!isDuplicateKeyError(err)) throw err;
      }
    });
  }

  async findUnpublished(
    olderThan: Date,
    limit: number,
    afterId?: string,
  ): Promise<{ jobs: JobDocument[]; scanned: number; lastId?: string }> {
    return storeCall(async () => {
      // ids are UUIDv7 (creation order), so paging by id walks the backlog oldest first.
      const filter: Filter<JobDocument> = { status: 'queued', attempts: 0, createdAt: { $lt: olderThan } };
      if (afterId !== undefined) filter._id = { $gt: afterId };
      const candidates = await this.jobs.find(filter).sort({ _id: 1 }).limit(limit).toArray();
      if (candidates.length === 0) return { jobs: [], scanned: 0 };
      const published = new Set(
        (
          await this.publications
            .find({ _id: { $in: candidates.map((c) => c._id) } })
            .project<{ _id: string }>({ _id: 1 })
            .toArray()
        ).map((p) => p._id),
      );
      return {
        jobs: candidates.filter((c) => !published.has(c._id)),
        scanned: candidates.length,
        lastId: candidates[candidates.length - 1]?._id,
      };
    });
  }

  async countByStatus(): Promise<Record<JobStatus, number>> {
    const counts = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
    const rows = await storeCall(() =>
      this.jobs.aggregate<{ _id: JobStatus; n: number }>([{ $group: { _id: '$status', n: { $sum: 1 } } }]).toArray(),
    );
    for (const row of rows) if (row._id in counts) counts[row._id] = row.n;
    return counts;
  }

  async ping(): Promise<void> {
    await storeCall(() => this.db.command({ ping: 1 }));
  }
}
