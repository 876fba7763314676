import type { Channel } from 'amqplib';
import type { QueueType } from './config';

/**
 * RabbitMQ topology, named from QUEUE_PREFIX:
 *
 * - `<prefix>`            durable direct exchange
 * - `<prefix>.work`       work queue, bound with routing key `work`
 * - `<prefix>.retry.<n>`  delay tiers: no consumers; each message carries its own TTL (`expiration`) and is
 *                         dead-lettered back to `<prefix>` / `work` when it expires
 * - `<prefix>.dead`       dead-letter queue for jobs that used up their attempts, bound with routing key `dead`
 *
 * Retry delays are split into tiers (tier n holds delays up to base·2ⁿ) because RabbitMQ only expires messages at
 * the head of a queue: a 60 s message would otherwise hold back a 1 s message queued behind it. Within one tier
 * delays differ by at most 2×, which bounds that head-of-line wait.
 * @see https://www.rabbitmq.com/docs/ttl#per-message-ttl-caveats
 * @see https://www.rabbitmq.com/docs/dlx
 */

export const WORK_ROUTING_KEY = 'work';
export const DEAD_ROUTING_KEY = 'dead';
/** Bounds the number of retry queues whatever RETRY_BASE_DELAY_MS / RETRY_MAX_DELAY_MS say. */
export const MAX_RETRY_TIERS = 20;

export interface TopologyNames {
  readonly exchange: string;
  readonly workQueue: string;
  readonly deadQueue: string;
  retryQueue(tier: number): string;
}

export function topologyNames(prefix: string): TopologyNames {
  return {
    exchange: prefix,
    workQueue: `${prefix}.work`,
    deadQueue: `${prefix}.dead`,
    retryQueue: (tier) => `${prefix}.retry.${tier}`,
  };
}

export interface RetryTiers {
  readonly baseDelayMs: number;
  readonly count: number;
}

export function retryTiers(baseDelayMs: number, maxDelayMs: number): RetryTiers {
  let count = 1;
  while (count < MAX_RETRY_TIERS && baseDelayMs * 2 ** (count - 1) < maxDelayMs) count++;
  return { baseDelayMs, count };
}

/** The smallest tier whose upper bound (base·2ⁿ) holds the delay; longer delays go to the last tier. */
export function tierFor(tiers: RetryTiers, delayMs: number): number {
  if (delayMs <= tiers.baseDelayMs) return 0;
  return Math.min(tiers.count - 1, Math.ceil(Math.log2(delayMs / tiers.baseDelayMs)));
}

function queueArguments(queueType: QueueType, extra: Record<string, unknown> = {}): Record<string, unknown> {
  // Quorum queues are replicated and the recommended durable type; classic is the default for single-node
  // setups. The type cannot change once declared (PRECONDITION_FAILED), so both services must agree.
  // @see https://www.rabbitmq.com/docs/quorum-queues
  return { 'x-queue-type': queueType, ...extra };
}

/** Exchange, work queue and dead-letter queue: what the producer needs so its messages are routable. */
export async function declareCoreTopology(ch: Channel, prefix: string, queueType: QueueType): Promise<void> {
  const names = topologyNames(prefix);
  await ch.assertExchange(names.exchange, 'direct', { durable: true });
  await ch.assertQueue(names.workQueue, { durable: true, arguments: queueArguments(queueType) });
  await ch.bindQueue(names.workQueue, names.exchange, WORK_ROUTING_KEY);
  await ch.assertQueue(names.deadQueue, { durable: true, arguments: queueArguments(queueType) });
  await ch.bindQueue(names.deadQueue, names.exchange, DEAD_ROUTING_KEY);
}

/** Everything, including the retry tiers; declared by the consumer. Idempotent (same arguments each time). */
export async function declareTopology(
  ch: Channel,
  prefix: string,
  queueType: QueueType,
  tiers: RetryTiers,
): Promise<void> {
  await declareCoreTopology(ch, prefix, queueType);
  const names = topologyNames(prefix);
  for (let tier = 0; tier < tiers.count; tier++) {
    await ch.assertQueue(names.retryQueue(tier), {
      durable: true,
      arguments: queueArguments(queueType, {
        'x-dead-letter-exchange': names.exchange,
        'x-dead-letter-routing-key': WORK_ROUTING_KEY,
        // Quorum queues dead-letter at-most-once by default; at-least-once needs reject-publish overflow.
        // @see https://www.rabbitmq.com/docs/quorum-queues#dead-lettering
        ...(queueType === 'quorum'
          ? { 'x-dead-letter-strategy': 'at-least-once', 'x-overflow': 'reject-publish' }
          : {}),
      }),
    });
  }
}

export interface JobMessage {
  readonly jobId: string;
}

export function encodeJobMessage(jobId: string): Buffer {
  return Buffer.from(JSON.stringify({ jobId } satisfies JobMessage));
}

export function decodeJobMessage(content: Buffer): JobMessage | undefined {
  try {
    const parsed: unknown = JSON.parse(content.toString('utf8'));
    if (typeof parsed === 'object' && parsed !== null && typeof (parsed as { jobId?: unknown }).jobId === 'string') {
      return { jobId: (parsed as { jobId: string }).jobId };
    }
  } catch {
    // fall through: not JSON
  }
  return undefined;
}
