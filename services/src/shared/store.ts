import { type Collection, type Db, type Filter, type OptionalUnlessRequiredId } from 'mongodb';
import { GroupCommit, NO_GROUP_COMMIT, settle, type GroupCommitOptions, type Settled } from './group-commit';
import {
  isDuplicateKeyError,
  jobsCollection,
  JOB_STATUSES,
  publicationsCollection,
  storeCall,
  type JobDocument,
  type JobRef,
  type JobStatus,
  type PublicationDocument,
  isPartialWriteError,
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
  ): Promise<{ jobs: JobRef[]; scanned: number; lastId?: string }>;
  countByStatus(): Promise<Record<JobStatus, number>>;
  ping(): Promise<void>;
}

/** Unordered `insertMany`: false when every document was written, true when some single write failed. */
async function insertManyFailed<T extends { _id: string }>(
  collection: Collection<T>,
  docs: readonly T[],
): Promise<boolean> {
  try {
    await collection.insertMany(docs as OptionalUnlessRequiredId<T>[], { ordered: false });
    return false;
  } catch (err) {
    if (!isPartialWriteError(err)) throw err;
    return true;
  }
}

/** Longest a publication record waits for others to share its write (it is off the request path: see app.ts). */
export const PUBLICATION_LINGER_MS = 100;

/**
 * How long publication records linger for a fuller batch: {@link PUBLICATION_LINGER_MS}, or a quarter of the
 * republish age when that is shorter, so a record is always written long before a sweeper may publish its job again.
 */
export function publicationLingerMs(republishAfterMs: number): number {
  return Math.min(PUBLICATION_LINGER_MS, Math.floor(republishAfterMs / 4));
}

export class MongoJobStore implements JobStore {
  private readonly jobs: Collection<JobDocument>;
  private readonly publications: Collection<PublicationDocument>;
  private readonly inserts: GroupCommit<JobDocument, 'inserted' | 'duplicate'>;
  private readonly confirms: GroupCommit<PublicationDocument, void>;

  /**
   * @param groupCommit how concurrent inserts (and, separately, publication records) share one `insertMany`.
   * @param onBatch called with the kind and size of every batch sent (metrics).
   * @param publicationLinger how long a publication record waits for others (0: as inserts do); see
   * {@link publicationLingerMs}. No caller waits on these records, so fuller batches cost no one time.
   */
  constructor(
    private readonly db: Db,
    groupCommit: GroupCommitOptions = NO_GROUP_COMMIT,
    onBatch?: (kind: 'insert' | 'publication', size: number) => void,
    publicationLinger = 0,
  ) {
    this.jobs = jobsCollection(db);
    this.publications = publicationsCollection(db);
    this.inserts = new GroupCommit(
      (docs) => this.insertBatch(docs),
      groupCommit,
      (n) => onBatch?.('insert', n),
    );
    this.confirms = new GroupCommit(
      (docs) => this.publicationBatch(docs),
      { ...groupCommit, lingerMs: publicationLinger },
      (n) => onBatch?.('publication', n),
    );
  }

  insert(doc: JobDocument): Promise<'inserted' | 'duplicate'> {
    return this.inserts.submit(doc);
  }

  /**
   * One unordered `insertMany`. After a write error of any document (a reused idempotency key, usually), which
   * documents landed is read back rather than taken from the error's indexes, which FerretDB 1.24 does not always
   * get right: a job id is new, so a stored job with it is this insert's; the others are inserted again alone, so
   * each caller gets its own answer (`duplicate` for a reused key, 503 for another write error) and no other
   * caller's insert fails or is written twice.
   */
  private async insertBatch(docs: readonly JobDocument[]): Promise<Settled<'inserted' | 'duplicate'>[]> {
    const failed = await storeCall(() => insertManyFailed(this.jobs, docs));
    if (!failed) return docs.map(() => ({ ok: true, value: 'inserted' }) as const);
    return Promise.all(
      docs.map(async (doc): Promise<Settled<'inserted' | 'duplicate'>> => {
        const found = await settle(this.jobs.findOne({ _id: doc._id }, { projection: { _id: 1 } }));
        if (!found.ok) return found;
        if (found.value !== null) return { ok: true, value: 'inserted' };
        return settle(this.insertOne(doc));
      }),
    );
  }

  private async insertOne(doc: JobDocument): Promise<'inserted' | 'duplicate'> {
    try {
      await this.jobs.insertOne(doc);
      return 'inserted';
    } catch (err) {
      if (isDuplicateKeyError(err)) return 'duplicate';
      throw err;
    }
  }

  /** Publication records of one confirm batch: one unordered `insertMany`; a record that exists already is fine. */
  private async publicationBatch(docs: readonly PublicationDocument[]): Promise<Settled<void>[]> {
    const failed = await storeCall(() => insertManyFailed(this.publications, docs));
    if (!failed) return docs.map(() => ({ ok: true, value: undefined }) as const);
    return Promise.all(
      docs.map((doc) =>
        settle(
          this.publications.insertOne(doc).then(
            () => undefined,
            (err: unknown) => {
              if (!isDuplicateKeyError(err)) throw err;
            },
          ),
        ),
      ),
    );
  }

  /** Waits for every batch already submitted (shutdown). */
  async drain(): Promise<void> {
    await Promise.all([this.inserts.drain(), this.confirms.drain()]);
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

  markPublished(id: string, at: Date): Promise<void> {
    return this.confirms.submit({ _id: id, at });
  }

  async findUnpublished(
    olderThan: Date,
    limit: number,
    afterId?: string,
  ): Promise<{ jobs: JobRef[]; scanned: number; lastId?: string }> {
    return storeCall(async () => {
      // ids are UUIDv7 (creation order), so paging by id walks the backlog oldest first.
      const filter: Filter<JobDocument> = { status: 'queued', attempts: 0, createdAt: { $lt: olderThan } };
      if (afterId !== undefined) filter._id = { $gt: afterId };
      const candidates = await this.jobs
        .find(filter)
        .sort({ _id: 1 })
        .limit(limit)
        .project<JobRef>({ _id: 1, type: 1 })
        .toArray();
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
