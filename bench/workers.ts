#!/usr/bin/env node
/**
 * Baseline consumers, run as child processes so they stand where the services' consumer stands (its own
 * process, its own core share). The parent talks to them over IPC:
 * `{ op: 'reset' }` clears the counters, `{ op: 'report' }` answers with a {@link WorkerReport}.
 *
 * - `amqp <url> <queue> <prefetch>`: consume-and-ack with amqplib, the broker's own ceiling.
 * - `bullmq <redisPort> <queue> <concurrency>`: a BullMQ Worker running a no-op processor.
 *
 * Latency is enqueue-to-done in milliseconds, from the enqueue time carried by the message (Date.now() in the
 * publisher, the same clock and millisecond resolution the services' job documents use).
 */
import * as amqp from 'amqplib';
import { Worker, type Job } from 'bullmq';

export interface WorkerReport {
  readonly count: number;
  /** Date.now() of the last completion. */
  readonly lastDoneAt: number;
  readonly latenciesMs: readonly number[];
}

let count = 0;
let lastDoneAt = 0;
let latencies: number[] = [];

function done(enqueuedAt: number): void {
  const now = Date.now();
  count++;
  lastDoneAt = now;
  latencies.push(now - enqueuedAt);
}

process.on('message', (msg: { op: 'reset' | 'report' }) => {
  if (msg.op === 'reset') {
    count = 0;
    lastDoneAt = 0;
    latencies = [];
    process.send?.({ op: 'reset-done' });
  } else {
    process.send?.({ op: 'report', report: { count, lastDoneAt, latenciesMs: latencies } satisfies WorkerReport });
  }
});
process.on('disconnect', () => process.exit(0));

async function main(): Promise<void> {
  const [kind, target, queue, limit] = process.argv.slice(2);
  if (kind === undefined || target === undefined || queue === undefined || limit === undefined) {
    throw new Error('usage: workers.js amqp|bullmq <url|redisPort> <queue> <prefetch|concurrency>');
  }
  if (kind === 'amqp') {
    const conn = await amqp.connect(target, { noDelay: true });
    const ch = await conn.createChannel();
    await ch.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'classic' } });
    await ch.prefetch(Number(limit));
    await ch.consume(queue, (m) => {
      if (m === null) return;
      const { t } = JSON.parse(m.content.toString('utf8')) as { t: number };
      ch.ack(m);
      done(t);
    });
  } else if (kind === 'bullmq') {
    const worker = new Worker(queue, () => Promise.resolve(null), {
      connection: { host: '127.0.0.1', port: Number(target) },
      concurrency: Number(limit),
    });
    worker.on('completed', (job: Job) => done(job.timestamp));
    await worker.waitUntilReady();
  } else {
    throw new Error(`kind: got ${JSON.stringify(kind)}, expected amqp or bullmq`);
  }
  process.send?.({ op: 'ready' });
}

main().catch((err: unknown) => {
  process.stderr.write(`workers: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
