import pino from 'pino';
import { uuidv7, uuidv7Floor } from '../../src/shared/ids';
import { newJobDocument } from '../../src/shared/jobs';
import { CLOCK_SLACK_MS, MAX_PENDING, OutboxSweeper } from '../../src/producer/sweeper';
import { FakePublisher, FakeStore } from './fakes';

const logger = pino({ level: 'silent' });

function orphan(store: FakeStore, ageMs: number, i = 0): string {
  const doc = newJobDocument({
    owner: 'test',
    idempotencyKey: `k-${ageMs}-${i}`,
    type: 'noop',
    input: {},
    at: new Date(Date.now() - ageMs),
  });
  store.jobs.set(doc._id, doc);
  return doc._id;
}

function setup(options: { scanIntervalMs?: number; batchSize?: number } = {}): {
  store: FakeStore;
  publisher: FakePublisher;
  sweeper: OutboxSweeper;
  backlog: number[];
} {
  const store = new FakeStore();
  const publisher = new FakePublisher();
  const backlog: number[] = [];
  const sweeper = new OutboxSweeper({
    store,
    publisher,
    logger,
    republishAfterMs: 1000,
    intervalMs: 1000,
    scanIntervalMs: options.scanIntervalMs ?? 60_000,
    ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
    onBacklog: (n) => backlog.push(n),
  });
  return { store, publisher, sweeper, backlog };
}

describe('uuidv7Floor', () => {
  it('sorts at or before every id of its millisecond and after every id of the one before', () => {
    const t = Date.UTC(2026, 11, 2, 3, 4, 5, 678);
    for (let i = 0; i < 100; i++) {
      expect(uuidv7Floor(t) <= uuidv7(t)).toBe(true);
      expect(uuidv7(t - 1) < uuidv7Floor(t)).toBe(true);
    }
    expect(uuidv7Floor(t)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7000-8000-000000000000$/);
  });
});

describe('OutboxSweeper', () => {
  it('publishes a failed publish of this process again on the next tick, without waiting for its age', async () => {
    const { store, publisher, sweeper, backlog } = setup();
    const id = orphan(store, 0);
    publisher.ready = false;
    sweeper.retryLater({ _id: id, type: 'noop' });
    expect(await sweeper.sweepOnce()).toBe(0);
    expect(backlog.at(-1)).toBe(1);
    publisher.ready = true;
    expect(await sweeper.sweepOnce()).toBe(1);
    expect(publisher.messages).toEqual([id]);
    expect(store.published.has(id)).toBe(true);
    expect(sweeper.pendingCount).toBe(0);
    expect(backlog.at(-1)).toBe(0);
  });

  it('keeps a failed publish when the broker refuses it again, in order', async () => {
    const { store, publisher, sweeper } = setup();
    const a = orphan(store, 0, 1);
    const b = orphan(store, 0, 2);
    sweeper.retryLater({ _id: a, type: 'noop' });
    sweeper.retryLater({ _id: b, type: 'noop' });
    const publish = publisher.publish.bind(publisher);
    let calls = 0;
    publisher.publish = async (job) => {
      if (++calls === 1) throw new Error('channel closed');
      return publish(job);
    };
    expect(await sweeper.sweepOnce()).toBe(0);
    expect(sweeper.pendingCount).toBe(2);
    // The broker refused: no scan of the store on that tick either.
    expect(store.scans).toEqual([]);
    expect(await sweeper.sweepOnce()).toBe(2);
    expect(publisher.messages).toEqual([a, b]);
    expect(store.scans).toEqual([undefined]);
  });

  it('scans the store again only after scanIntervalMs once caught up, from the slack before its age bound', async () => {
    const { store, publisher, sweeper } = setup({ scanIntervalMs: 60_000 });
    const old = orphan(store, 5000);
    const before = Date.now();
    expect(await sweeper.sweepOnce()).toBe(1);
    expect(publisher.messages).toEqual([old]);
    // Caught up: further ticks read nothing from the store until the scan interval passes.
    expect(await sweeper.sweepOnce()).toBe(0);
    expect(await sweeper.sweepOnce()).toBe(0);
    expect(store.scans).toEqual([undefined]);
    const now = jest.spyOn(Date, 'now').mockReturnValue(before + 61_000);
    try {
      // Both stored after the first scan: one just inside the new age bound, one by a producer whose clock is
      // 30 s behind (its id and createdAt are older than the first scan's bound, but inside the slack).
      const late = orphan(store, 2000);
      const skewed = orphan(store, 91_000);
      expect(await sweeper.sweepOnce()).toBe(2);
      expect(publisher.messages).toEqual([old, skewed, late]);
    } finally {
      now.mockRestore();
    }
    expect(store.scans).toHaveLength(2);
    const from = store.scans[1] ?? '';
    // The window starts one slack before the first scan's age bound (1 s before it ran).
    expect(from <= uuidv7Floor(before - 1000 - CLOCK_SLACK_MS + 50)).toBe(true);
    expect(from >= uuidv7Floor(before - 1000 - CLOCK_SLACK_MS - 50)).toBe(true);
  });

  it('walks a long backlog a page per tick, then waits', async () => {
    const { store, publisher, sweeper } = setup({ batchSize: 2 });
    const ids = Array.from({ length: 5 }, (_, i) => orphan(store, 10_000 - i));
    // Jobs that were published already count toward a page but are not published again.
    store.published.add(ids[1] ?? '');
    expect(await sweeper.sweepOnce()).toBe(1);
    expect(await sweeper.sweepOnce()).toBe(2);
    expect(await sweeper.sweepOnce()).toBe(1);
    expect(await sweeper.sweepOnce()).toBe(0);
    expect(publisher.messages).toEqual([ids[0], ids[2], ids[3], ids[4]]);
    expect(store.scans).toEqual([undefined, ids[1], ids[3]]);
  });

  it('ends a pass at the bound it started with, even while jobs arrive faster than a page per tick', async () => {
    const { store, sweeper } = setup({ batchSize: 2 });
    for (let i = 0; i < 4; i++) orphan(store, 10_000 - i, i);
    const t0 = Date.now();
    let tick = 0;
    const now = jest.spyOn(Date, 'now').mockImplementation(() => t0 + tick * 10_000);
    try {
      // Each tick 10 s later, with 3 new jobs older than republishAfterMs waiting (published: they have records).
      const counts: number[] = [];
      for (; tick < 5; tick++) {
        for (let i = 0; i < 3; i++) store.published.add(orphan(store, 5000, 100 * tick + i));
        counts.push(await sweeper.sweepOnce());
      }
      expect(counts).toEqual([2, 2, 0, 0, 0]);
      // The pass reads the 4 orphans (2 pages) and the 3 jobs that arrived before its bound (a full page and a
      // last one), then ends; the jobs that arrived later wait for the next pass, after scanIntervalMs. Without a
      // fixed bound every tick would find a full page and the reads would never stop.
      expect(store.scans).toHaveLength(4);
    } finally {
      now.mockRestore();
    }
  });

  it('reads the same window again on the next tick when a publish fails in a scan', async () => {
    const { store, publisher, sweeper, backlog } = setup();
    // In id order, which is the order a scan reads them in.
    const [a = '', b = ''] = [orphan(store, 5000, 1), orphan(store, 5000, 2)].sort();
    const publish = publisher.publish.bind(publisher);
    let refused = 0;
    publisher.publish = async (job) => {
      if (job._id === b && refused++ === 0) throw new Error('channel closed');
      return publish(job);
    };
    expect(await sweeper.sweepOnce()).toBe(1);
    expect(backlog.at(-1)).toBe(1);
    expect(await sweeper.sweepOnce()).toBe(1);
    expect(publisher.messages).toEqual([a, b]);
    expect(store.scans).toEqual([undefined, undefined]);
    expect(backlog.at(-1)).toBe(0);
  });

  it('does not scan for its own failed publishes twice, and keeps at most MAX_PENDING in memory', async () => {
    const { store, publisher, sweeper } = setup();
    const id = orphan(store, 5000);
    sweeper.retryLater({ _id: id, type: 'noop' });
    expect(await sweeper.sweepOnce()).toBe(1);
    expect(publisher.messages).toEqual([id]);
    for (let i = 0; i < MAX_PENDING + 5; i++) sweeper.retryLater({ _id: `id-${i}`, type: 'noop' });
    expect(sweeper.pendingCount).toBe(MAX_PENDING);
  });
});
