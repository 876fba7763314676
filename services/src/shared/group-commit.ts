import { storeCall } from './jobs';

/**
 * Group commit: concurrent callers share one database round trip. Every write the services make per job
 * (insert, publication record, claim, outcome) is a single-document operation, and on any store most of its cost
 * is the round trip; batching the ones that are ready at the same moment turns N round trips into one.
 *
 * A batch goes out:
 * - at once (on the next turn of the event loop, so the callers of one turn share it) when no batch of this kind
 *   is in flight: a lone request is never held back;
 * - when `maxSize` callers are waiting;
 * - when the batch in flight comes back, or after `maxWaitMs` behind it, whichever is first: so under load the
 *   batches grow with the arrival rate, and no caller waits more than `maxWaitMs` for its turn.
 *
 * With `lingerMs`, for writes no caller is waiting on (bookkeeping off the request path), a batch instead goes out
 * `lingerMs` after its first item arrived or when `maxSize` items wait, whether or not another batch is in
 * flight: fewer, fuller batches, at the cost of a delay nobody sees.
 */

export interface GroupCommitOptions {
  /** Most items in one write. 1 turns batching off. */
  readonly maxSize: number;
  /** Longest an item waits behind a batch in flight before its own batch goes out anyway. */
  readonly maxWaitMs: number;
  /** When set (> 0), every batch waits this long after its first item (see above); `maxWaitMs` is then unused. */
  readonly lingerMs?: number;
}

/** No batching: every write its own round trip (what the services did before group commit). */
export const NO_GROUP_COMMIT: GroupCommitOptions = { maxSize: 1, maxWaitMs: 0 };

/** The outcome of one item of a batch: items fail one by one (a duplicate key, a write error on one document). */
export type Settled<O> = { readonly ok: true; readonly value: O } | { readonly ok: false; readonly error: Error };

/** One item's own operation as its {@link Settled} outcome, a driver error turned into `StoreUnavailableError`. */
export async function settle<T>(p: Promise<T>): Promise<Settled<T>> {
  try {
    return { ok: true, value: await storeCall(() => p) };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err : new Error(String(err)) };
  }
}

interface Waiting<I, O> {
  readonly item: I;
  readonly resolve: (value: O) => void;
  readonly reject: (error: Error) => void;
}

export class GroupCommit<I, O> {
  private pending: Waiting<I, O>[] = [];
  private inFlight = 0;
  private readonly flights = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private readonly lingerMs: number;

  /**
   * @param write performs one batch; it returns one {@link Settled} per item, in order, or throws when the whole
   * batch failed (every caller then gets that error).
   */
  constructor(
    private readonly write: (items: readonly I[]) => Promise<readonly Settled<O>[]>,
    readonly options: GroupCommitOptions,
    /** Called with the size of every batch sent (metrics). */
    private readonly onBatch?: (size: number) => void,
  ) {
    if (!Number.isInteger(options.maxSize) || options.maxSize < 1) {
      throw new RangeError(`group commit maxSize: got ${options.maxSize}, expected an integer ≥ 1`);
    }
    if (!Number.isFinite(options.maxWaitMs) || options.maxWaitMs < 0) {
      throw new RangeError(`group commit maxWaitMs: got ${options.maxWaitMs}, expected a number ≥ 0`);
    }
    const linger = options.lingerMs ?? 0;
    if (!Number.isFinite(linger) || linger < 0) {
      throw new RangeError(`group commit lingerMs: got ${linger}, expected a number ≥ 0`);
    }
    this.lingerMs = linger;
  }

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (this.pending.length >= this.options.maxSize) this.flush();
      else if (this.lingerMs > 0) this.timer ??= setTimeout(() => this.flush(), this.lingerMs);
      else if (this.inFlight === 0 || this.options.maxWaitMs === 0) this.flushSoon();
      else this.timer ??= setTimeout(() => this.flush(), this.options.maxWaitMs);
    });
  }

  /** Items waiting for their batch to go out. */
  get waiting(): number {
    return this.pending.length;
  }

  /** Sends what is waiting and resolves once every batch sent so far has come back. */
  async drain(): Promise<void> {
    this.flush();
    while (this.flights.size > 0) await Promise.allSettled([...this.flights]);
  }

  private flushSoon(): void {
    this.immediate ??= setImmediate(() => this.flush());
  }

  private flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, this.options.maxSize);
      this.send(batch);
    }
  }

  private send(batch: Waiting<I, O>[]): void {
    this.inFlight++;
    this.onBatch?.(batch.length);
    const flight = this.run(batch).finally(() => {
      this.inFlight--;
      this.flights.delete(flight);
      // What queued up behind this batch goes out now rather than at its timer (lingering batches keep theirs).
      if (this.pending.length > 0 && this.lingerMs === 0) this.flushSoon();
    });
    this.flights.add(flight);
  }

  private async run(batch: Waiting<I, O>[]): Promise<void> {
    let results: readonly Settled<O>[];
    try {
      results = await this.write(batch.map((w) => w.item));
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      for (const w of batch) w.reject(error);
      return;
    }
    batch.forEach((w, i) => {
      const r = results[i];
      if (r === undefined) w.reject(new Error(`group commit: the write returned no outcome for item ${i}`));
      else if (r.ok) w.resolve(r.value);
      else w.reject(r.error);
    });
  }
}
