import { MongoError, type Collection, type Db, type Filter } from 'mongodb';
import { isDuplicateKeyError, jobsCollection, JOB_STATUSES, StoreUnavailableError, type JobDocument, type JobStatus } from './jobs';

export interface ListJobsQuery {
  readonly status?: JobStatus;
  readonly limit: number;
  /** Only jobs with a smaller id (older), for newest-first pages. */
  readonly beforeId?: string;
}

/** What the producer's HTTP app needs from storage; unit tests pass an in-memory fake. */
export interface JobStore {
  /** Inserts a new job; `duplicate` when the idempotency key exists already. */
  insert(doc: JobDocument): Promise<'inserted' | 'duplicate'>;
  findById(id: string): Promise<JobDocument | null>;
  findByIdempotencyKey(key: string): Promise<JobDocument | null>;
  list(query: ListJobsQuery): Promise<JobDocument[]>;
  markPublished(id: string, at: Date): Promise<void>;
  /** Jobs stored longer than `olderThan` ago and never confirmed as published (the outbox). */
  findUnpublished(olderThan: Date, limit: number): Promise<JobDocument[]>;
  countUnpublished(): Promise<number>;
  countByStatus(): Promise<Record<JobStatus, number>>;
  ping(): Promise<void>;
}

async function wrap<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (err instanceof MongoError) throw new StoreUnavailableError(err.message, { cause: err });
    throw err;
  }
}

export class MongoJobStore implements JobStore {
  private readonly jobs: Collection<JobDocument>;

  constructor(private readonly db: Db) {
    this.jobs = jobsCollection(db);
  }

  async insert(doc: JobDocument): Promise<'inserted' | 'duplicate'> {
    return wrap(async () => {
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
    return wrap(() => this.jobs.findOne({ _id: id }));
  }

  findByIdempotencyKey(key: string): Promise<JobDocument | null> {
    return wrap(() => this.jobs.findOne({ idempotencyKey: key }));
  }

  list(query: ListJobsQuery): Promise<JobDocument[]> {
    const filter: Filter<JobDocument> = {};
    if (query.status !== undefined) filter.status = query.status;
    if (query.beforeId !== undefined) filter._id = { $lt: query.beforeId };
    return wrap(() => this.jobs.find(filter).sort({ _id: -1 }).limit(query.limit).toArray());
  }

  async markPublished(id: string, at: Date): Promise<void> {
    await wrap(() => this.jobs.updateOne({ _id: id, publishedAt: null }, { $set: { publishedAt: at } }));
  }

  findUnpublished(olderThan: Date, limit: number): Promise<JobDocument[]> {
    return wrap(() =>
      this.jobs.find({ publishedAt: null, status: 'queued', createdAt: { $lt: olderThan } }).sort({ createdAt: 1 }).limit(limit).toArray(),
    );
  }

  countUnpublished(): Promise<number> {
    return wrap(() => this.jobs.countDocuments({ publishedAt: null, status: 'queued' }));
  }

  async countByStatus(): Promise<Record<JobStatus, number>> {
    const counts = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
    const rows = await wrap(() =>
      this.jobs.aggregate<{ _id: JobStatus; n: number }>([{ $group: { _id: '$status', n: { $sum: 1 } } }]).toArray(),
    );
    for (const row of rows) if (row._id in counts) counts[row._id] = row.n;
    return counts;
  }

  async ping(): Promise<void> {
    await wrap(() => this.db.command({ ping: 1 }));
  }
}
