import { GroupCommit, type Settled } from '../../src/shared/group-commit';
import { PUBLICATION_LINGER_MS, publicationLingerMs } from '../../src/shared/store';

/** A write that records its batches and answers each item with itself doubled; `gate` holds it until released. */
function recorder(fail?: (item: number) => boolean): {
  batches: number[][];
  release: () => void;
  gate: boolean;
  write: (items: readonly number[]) => Promise<Settled<number>[]>;
} {
  const state = {
    batches: [] as number[][],
    gate: false,
    waiters: [] as (() => void)[],
    release(): void {
      state.gate = false;
      for (const w of state.waiters.splice(0)) w();
    },
    async write(items: readonly number[]): Promise<Settled<number>[]> {
      state.batches.push([...items]);
      if (state.gate) await new Promise<void>((r) => state.waiters.push(r));
      return items.map((i) =>
        fail?.(i) === true ? { ok: false, error: new Error(`item ${i}`) } : { ok: true, value: i * 2 },
      );
    },
  };
  return state;
}

describe('group commit', () => {
  it('sends a lone item at once, without waiting for the wait bound', async () => {
    const r = recorder();
    const gc = new GroupCommit(r.write, { maxSize: 100, maxWaitMs: 10_000 });
    const started = Date.now();
    await expect(gc.submit(1)).resolves.toBe(2);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(r.batches).toEqual([[1]]);
  });

  it('puts the items submitted in one turn into one batch, split at maxSize', async () => {
    const r = recorder();
    const sizes: number[] = [];
    const gc = new GroupCommit(r.write, { maxSize: 4, maxWaitMs: 5 }, (n) => sizes.push(n));
    const out = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => gc.submit(i)));
    expect(out).toEqual([2, 4, 6, 8, 10, 12]);
    expect(r.batches).toEqual([
      [1, 2, 3, 4],
      [5, 6],
    ]);
    expect(sizes).toEqual([4, 2]);
  });

  it('holds what arrives during a batch in flight until it returns, then sends it as one batch', async () => {
    const r = recorder();
    r.gate = true;
    const gc = new GroupCommit(r.write, { maxSize: 100, maxWaitMs: 10_000 });
    const first = gc.submit(1);
    await new Promise((res) => setImmediate(res));
    expect(r.batches).toEqual([[1]]);
    const later = [2, 3, 4].map((i) => gc.submit(i));
    await new Promise((res) => setTimeout(res, 50));
    expect(r.batches).toEqual([[1]]); // still waiting behind the first batch
    expect(gc.waiting).toBe(3);
    r.release();
    await expect(first).resolves.toBe(2);
    await expect(Promise.all(later)).resolves.toEqual([4, 6, 8]);
    expect(r.batches).toEqual([[1], [2, 3, 4]]);
  });

  it('sends a waiting batch after maxWaitMs even while another is still in flight', async () => {
    const r = recorder();
    r.gate = true;
    const gc = new GroupCommit(r.write, { maxSize: 100, maxWaitMs: 20 });
    void gc.submit(1);
    await new Promise((res) => setImmediate(res));
    void gc.submit(2);
    await new Promise((res) => setTimeout(res, 200));
    expect(r.batches).toEqual([[1], [2]]);
    r.release();
    await gc.drain();
  });

  it('sends a full batch at once even while another is in flight', async () => {
    const r = recorder();
    r.gate = true;
    const gc = new GroupCommit(r.write, { maxSize: 2, maxWaitMs: 10_000 });
    void gc.submit(1);
    await new Promise((res) => setImmediate(res));
    void gc.submit(2);
    void gc.submit(3);
    expect(r.batches).toEqual([[1], [2, 3]]);
    r.release();
    await gc.drain();
  });

  it('fails only the items whose outcome failed, and every item when the whole write throws', async () => {
    const r = recorder((i) => i === 2);
    const gc = new GroupCommit(r.write, { maxSize: 10, maxWaitMs: 1 });
    const out = await Promise.allSettled([1, 2, 3].map((i) => gc.submit(i)));
    expect(out.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(r.batches).toEqual([[1, 2, 3]]);

    const broken = new GroupCommit<number, number>(() => Promise.reject(new Error('connection lost')), {
      maxSize: 10,
      maxWaitMs: 1,
    });
    const all = await Promise.allSettled([1, 2].map((i) => broken.submit(i)));
    expect(all.map((o) => (o.status === 'rejected' ? (o.reason as Error).message : 'ok'))).toEqual([
      'connection lost',
      'connection lost',
    ]);
  });

  it('with maxSize 1 sends every item alone', async () => {
    const r = recorder();
    const gc = new GroupCommit(r.write, { maxSize: 1, maxWaitMs: 0 });
    await Promise.all([1, 2, 3].map((i) => gc.submit(i)));
    expect(r.batches).toEqual([[1], [2], [3]]);
  });

  it('with lingerMs holds a lone item for the linger, then sends what arrived meanwhile as one batch', async () => {
    const r = recorder();
    const gc = new GroupCommit(r.write, { maxSize: 100, maxWaitMs: 0, lingerMs: 40 });
    const started = Date.now();
    const first = gc.submit(1);
    await new Promise((res) => setTimeout(res, 10));
    expect(r.batches).toEqual([]);
    const second = gc.submit(2);
    await expect(Promise.all([first, second])).resolves.toEqual([2, 4]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(35);
    expect(r.batches).toEqual([[1, 2]]);
  });

  it('with lingerMs sends a full batch at once, and what queued behind a batch in flight at its own linger', async () => {
    const r = recorder();
    r.gate = true;
    const gc = new GroupCommit(r.write, { maxSize: 2, maxWaitMs: 0, lingerMs: 30 });
    const full = [gc.submit(1), gc.submit(2)];
    await new Promise((res) => setImmediate(res));
    expect(r.batches).toEqual([[1, 2]]);
    const behind = gc.submit(3);
    r.release();
    await Promise.all(full);
    // The batch in flight came back, but the lingering item waits for its own timer, not for that.
    expect(r.batches).toEqual([[1, 2]]);
    await expect(behind).resolves.toBe(6);
    expect(r.batches).toEqual([[1, 2], [3]]);
  });

  it('with lingerMs sends at once on drain (shutdown does not wait for the linger)', async () => {
    const r = recorder();
    const gc = new GroupCommit(r.write, { maxSize: 100, maxWaitMs: 0, lingerMs: 60_000 });
    const item = gc.submit(1);
    const started = Date.now();
    await gc.drain();
    await expect(item).resolves.toBe(2);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('refuses bounds that cannot work, naming the value', () => {
    const r = recorder();
    expect(() => new GroupCommit(r.write, { maxSize: 0, maxWaitMs: 1 })).toThrow(
      'group commit maxSize: got 0, expected an integer ≥ 1',
    );
    expect(() => new GroupCommit(r.write, { maxSize: 1, maxWaitMs: 0, lingerMs: Number.NaN })).toThrow(
      'group commit lingerMs: got NaN, expected a number ≥ 0',
    );
    expect(() => new GroupCommit(r.write, { maxSize: 1, maxWaitMs: -1 })).toThrow(
      'group commit maxWaitMs: got -1, expected a number ≥ 0',
    );
  });
});

describe('publicationLingerMs', () => {
  it('is 100 ms, or a quarter of the republish age when that is shorter', () => {
    expect(PUBLICATION_LINGER_MS).toBe(100);
    expect(publicationLingerMs(5000)).toBe(100);
    expect(publicationLingerMs(400)).toBe(100);
    expect(publicationLingerMs(100)).toBe(25);
  });
});
