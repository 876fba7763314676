import { createHash } from 'node:crypto';
import type { Collection, Db } from 'mongodb';
import { MongoBulkWriteError, MongoError, MongoServerError } from 'mongodb';
import { uuidv7 } from './ids';

/**
 * The job document is also its own outbox record: storing a job and remembering to publish it is one insert,
 * so no MongoDB transaction is needed (FerretDB, used in tests, has none). The broker's confirm is recorded
 * as a separate document in `job_publications` rather than as an update of the job: after publishing, the
 * consumer owns the job document and is its only writer, so no update by the producer can race a claim.
 * (MongoDB updates are atomic per document, but FerretDB 1.x applies updates as read-then-write.)
 */

export type JobStatus = 'queued' | 'running' | 'retrying' | 'succeeded' | 'failed';
export const JOB_STATUSES: readonly JobStatus[] = ['queued', 'running', 'retrying', 'succeeded', 'failed'];

/** What a job message names, and what publishing or republishing a job needs. */
export type JobRef = Pick<JobDocument, '_id' | 'type'>;

export interface JobError {
  readonly message: string;
  readonly attempt: number;
}

export interface JobDocument {
  _id: string;
  /**
   * The API client that submitted the job: only it (and `jobs:admin` clients) may read it, and its
   * `Idempotency-Key` is unique per owner. Jobs stored before owners existed have none and are admin-only.
   */
  owner: string;
  idempotencyKey: string;
  /** When the retry backoff ends (status `retrying`). */
  nextAttemptAt?: Date | null;
  /** sha256 of the canonical request body, to tell a retry of the same request from a different one. */
  bodyHash: string;
  type: string;
  input: Record<string, unknown>;
  status: JobStatus;
  /** Claims so far, counted by the application (RabbitMQ does not count requeues). */
  attempts: number;
  /**
   * Handler runs that returned a result: the one whose result was written, plus any whose result was discarded
   * because the job was no longer theirs (lease lost). More than 1 means the handler ran to completion twice.
   * A run interrupted by a crash before its write leaves no trace (and had no effect).
   */
  runs: number;
  result: unknown;
  error: JobError | null;
  leaseOwner: string | null;
  leaseExpiresAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function bodyHash(type: string, input: unknown): string {
  return createHash('sha256').update(canonicalJson({ type, input })).digest('hex');
}

/**
 * A new job as the producer stores it: `queued`, nothing run yet, id a UUIDv7 of `at` (so ids sort by creation).
 * The one place the document's initial shape is written (producer, tests, and the benchmarks' seeded backlogs).
 */
export function newJobDocument(fields: {
  readonly owner: string;
  readonly idempotencyKey: string;
  readonly type: string;
  readonly input: Record<string, unknown>;
  readonly at: Date;
}): JobDocument {
  const { owner, idempotencyKey, type, input, at } = fields;
  return {
    _id: uuidv7(at.getTime()),
    owner,
    idempotencyKey,
    bodyHash: bodyHash(type, input),
    type,
    input,
    status: 'queued',
    attempts: 0,
    runs: 0,
    result: null,
    error: null,
    leaseOwner: null,
    leaseExpiresAt: null,
    createdAt: at,
    updatedAt: at,
    startedAt: null,
    finishedAt: null,
  };
}

/** Runs a MongoDB operation, turning the driver's errors into {@link StoreUnavailableError} (callers answer 503 or retry). */
export async function storeCall<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (err instanceof MongoError) throw new StoreUnavailableError(err.message, { cause: err });
    throw err;
  }
}

export const JOBS_COLLECTION = 'jobs';
export const PUBLICATIONS_COLLECTION = 'job_publications';

/** One per job whose message the broker confirmed; `_id` is the job id. */
export interface PublicationDocument {
  _id: string;
  at: Date;
}

export function publicationsCollection(db: Db): Collection<PublicationDocument> {
  return db.collection<PublicationDocument>(PUBLICATIONS_COLLECTION);
}

export function jobsCollection(db: Db): Collection<JobDocument> {
  return db.collection<JobDocument>(JOBS_COLLECTION);
}

const INDEXES = [
  { key: { owner: 1, idempotencyKey: 1 }, name: 'owner_idempotencyKey_unique', unique: true },
  { key: { status: 1, _id: -1 }, name: 'status_id' },
  { key: { owner: 1, _id: -1 }, name: 'owner_id' },
  { key: { status: 1, attempts: 1, _id: 1 }, name: 'outbox' },
  // A worker's group-committed claim reads back its running jobs by lease owner (consumer/claims.ts).
  { key: { leaseOwner: 1 }, name: 'lease_owner' },
] as const;

/**
 * Indexes of earlier versions that are in the way: the global unique idempotency key became unique per owner,
 * and while the old index exists two clients could not use the same key.
 */
const RETIRED_INDEXES = ['idempotencyKey_unique'] as const;

/**
 * Drops retired indexes, then creates the missing indexes only. Re-sending createIndexes for indexes that exist is a no-op on MongoDB,
 * but FerretDB 1.24 drops the connection on it, so existing ones are listed first. A race between two
 * services creating the same index fails one of them, whose startup retry then finds it.
 */
export async function ensureIndexes(db: Db): Promise<void> {
  const jobs = jobsCollection(db);
  let existing: string[] = [];
  try {
    existing = (await jobs.listIndexes().toArray()).map((i: { name?: unknown }) => String(i.name));
  } catch (err) {
    // 26 NamespaceNotFound: the collection does not exist yet.
    if (!(err instanceof MongoServerError && err.code === 26)) throw err;
  }
  for (const name of RETIRED_INDEXES) {
    if (!existing.includes(name)) continue;
    try {
      await jobs.dropIndex(name);
    } catch (err) {
      // 27 IndexNotFound: another service dropped it first.
      if (!(err instanceof MongoServerError && err.code === 27)) throw err;
    }
  }
  for (const index of INDEXES) {
    if (existing.includes(index.name)) continue;
    await jobs.createIndex(index.key, { name: index.name, ...('unique' in index ? { unique: index.unique } : {}) });
  }
}

export function isDuplicateKeyError(err: unknown): boolean {
  return err instanceof MongoServerError && err.code === 11000;
}

/**
 * Whether an unordered bulk write failed on single documents (a duplicate key, a type error in one update) rather
 * than as a whole (connection lost, write concern not met, command refused: then nothing can be assumed written).
 */
export function isPartialWriteError(err: unknown): err is MongoBulkWriteError {
  if (!(err instanceof MongoBulkWriteError)) return false;
  if (err.err !== undefined || err.result.getWriteConcernError() !== undefined) return false;
  const errors = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
  return errors.length > 0;
}

/** MongoDB could not be reached or answered with an error that is not the caller's fault. */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}
