import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import { BrokerConnection, confirmPublish } from '../shared/broker';
import type { QueueType } from '../shared/config';
import type { Logger } from '../shared/logger';
import {
  DEAD_ROUTING_KEY,
  decodeJobMessage,
  declareTopology,
  retryTiers,
  tierFor,
  topologyNames,
} from '../shared/topology';
import type { DeliveryOps, Worker } from './worker';

export interface ConsumerServiceOptions {
  readonly url: string;
  readonly queuePrefix: string;
  readonly queueType: QueueType;
  readonly prefetch: number;
  readonly concurrency: number;
  readonly retryBaseDelayMs: number;
  readonly retryMaxDelayMs: number;
  readonly worker: Worker;
  readonly logger: Logger;
}

interface Pending {
  readonly msg: ConsumeMessage;
  readonly channel: ConfirmChannel;
}

const CONFIRM_TIMEOUT_MS = 10_000;

/**
 * Properties for a re-published copy. The broker's own dead-lettering headers (x-death, x-first-death-*) are
 * dropped: each copy is a new message, and attempts are counted in MongoDB, not from x-death.
 */
function copyProperties(msg: ConsumeMessage): Options.Publish & { headers: Record<string, unknown> } {
  const headers: Record<string, unknown> = {};
  const source: Record<string, unknown> = msg.properties.headers ?? {};
  for (const [k, v] of Object.entries(source)) {
    if (k !== 'x-death' && !k.startsWith('x-first-death') && !k.startsWith('x-last-death')) headers[k] = v;
  }
  const p = msg.properties;
  return {
    persistent: true,
    headers,
    ...(p.contentType !== undefined ? { contentType: p.contentType as string } : {}),
    ...(p.messageId !== undefined ? { messageId: p.messageId as string } : {}),
    ...(p.type !== undefined ? { type: p.type as string } : {}),
    ...(p.timestamp !== undefined ? { timestamp: p.timestamp as number } : {}),
  };
}

function deadHeaders(msg: ConsumeMessage): Record<string, unknown> {
  // eslint-disable-next-line @typescript-eslint/no-unsafe-return -- typed by copyProperties; ESLint's project service sees amqplib's Options as any here, tsc does not
  return copyProperties(msg).headers;
}

/**
 * Wires RabbitMQ to the worker: topology, prefetch, a concurrency limit below prefetch, and draining.
 * Prefetch bounds unacked deliveries per consumer; deliveries beyond CONCURRENCY wait locally and are
 * requeued untouched if the process drains before starting them.
 * @see https://www.rabbitmq.com/docs/consumer-prefetch
 */
export class ConsumerService {
  readonly connection: BrokerConnection;
  private channel: ConfirmChannel | undefined;
  private consumerTag: string | undefined;
  private draining = false;
  private readonly waiting: Pending[] = [];
  private readonly running = new Set<Promise<void>>();
  private readonly tiers;
  private readonly names;

  constructor(private readonly options: ConsumerServiceOptions) {
    this.tiers = retryTiers(options.retryBaseDelayMs, options.retryMaxDelayMs);
    this.names = topologyNames(options.queuePrefix);
    this.connection = new BrokerConnection({
      url: options.url,
      logger: options.logger,
      onConnect: (model) => this.setup(model),
      onDisconnect: () => {
        this.channel = undefined;
        this.consumerTag = undefined;
        // Deliveries not yet started belong to the dead channel; RabbitMQ requeues them.
        this.waiting.length = 0;
      },
    });
  }

  /** Consuming from the work queue (for /readyz). */
  isReady(): boolean {
    return this.channel !== undefined && this.consumerTag !== undefined && !this.draining;
  }

  get inFlight(): number {
    return this.running.size;
  }

  start(): void {
    this.connection.start();
  }

  private async setup(model: ChannelModel): Promise<void> {
    const { logger } = this.options;
    const channel = await model.createConfirmChannel();
    channel.on('error', (err: Error) => logger.warn({ err: err.message }, 'consumer channel error'));
    channel.on('close', () => {
      if (this.channel === channel) {
        this.channel = undefined;
        this.consumerTag = undefined;
      }
      // Recover a channel the broker closed (e.g. PRECONDITION_FAILED) by reconnecting the whole connection.
      if (!this.draining) model.close().catch(() => undefined);
    });
    await declareTopology(channel, this.options.queuePrefix, this.options.queueType, this.tiers);
    await channel.prefetch(this.options.prefetch);
    this.channel = channel;
    if (this.draining) return;
    const reply = await channel.consume(
      this.names.workQueue,
      (msg) => {
        if (msg === null) {
          // Cancelled by the broker (queue deleted, node failover): reconnect to consume again.
          logger.warn('consumer cancelled by the broker; reconnecting');
          model.close().catch(() => undefined);
          return;
        }
        this.waiting.push({ msg, channel });
        this.pump();
      },
      { noAck: false },
    );
    this.consumerTag = reply.consumerTag;
    logger.info(
      { queue: this.names.workQueue, prefetch: this.options.prefetch, concurrency: this.options.concurrency },
      'consuming',
    );
  }

  private pump(): void {
    while (!this.draining && this.running.size < this.options.concurrency && this.waiting.length > 0) {
      const next = this.waiting.shift();
      if (next === undefined) break;
      const task = this.handle(next).finally(() => {
        this.running.delete(task);
        this.pump();
      });
      this.running.add(task);
    }
  }

  private ops({ msg, channel }: Pending): DeliveryOps {
    const { logger } = this.options;
    const safe = (what: string, fn: () => void): void => {
      try {
        fn();
      } catch (err) {
        // The channel closed under us: RabbitMQ will redeliver, and the claim makes that harmless.
        logger.warn({ err: (err as Error).message }, `could not ${what} (channel closed)`);
      }
    };
    return {
      ack: () => safe('ack', () => channel.ack(msg)),
      requeue: () => safe('requeue', () => channel.nack(msg, false, true)),
      publishDelayed: (delayMs) => {
        const tier = tierFor(this.tiers, delayMs);
        return confirmPublish(
          (cb) =>
            channel.sendToQueue(
              this.names.retryQueue(tier),
              msg.content,
              // Per-message TTL; on expiry the retry queue dead-letters it back to the work queue.
              // @see https://www.rabbitmq.com/docs/ttl#per-message-ttl-in-publishers
              { ...copyProperties(msg), expiration: String(Math.max(0, Math.round(delayMs))) },
              cb,
            ),
          CONFIRM_TIMEOUT_MS,
        );
      },
      publishDead: (reason) =>
        confirmPublish(
          (cb) =>
            channel.publish(
              this.names.exchange,
              DEAD_ROUTING_KEY,
              msg.content,
              {
                ...copyProperties(msg),
                headers: { ...deadHeaders(msg), 'x-async-jobs-reason': reason.slice(0, 1000) },
              },
              cb,
            ),
          CONFIRM_TIMEOUT_MS,
        ),
    };
  }

  private async handle(pending: Pending): Promise<void> {
    const ops = this.ops(pending);
    const jobId = decodeJobMessage(pending.msg.content)?.jobId;
    try {
      await this.options.worker.process(jobId, ops, pending.msg.fields.redelivered);
    } catch (err) {
      this.options.logger.error({ jobId, err: (err as Error).message }, 'delivery failed; requeueing');
      ops.requeue();
    }
  }

  /**
   * Stops consuming, requeues deliveries not started, waits for running jobs up to `timeoutMs`, then aborts
   * the rest (their attempts are released) and closes the connection.
   */
  async drain(timeoutMs: number): Promise<{ timedOut: boolean }> {
    const { logger } = this.options;
    this.draining = true;
    const channel: Channel | undefined = this.channel;
    if (channel !== undefined && this.consumerTag !== undefined) {
      await channel.cancel(this.consumerTag).catch((err: Error) => logger.warn({ err: err.message }, 'cancel failed'));
    }
    for (const pending of this.waiting.splice(0)) this.ops(pending).requeue();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      Promise.allSettled([...this.running]).then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      logger.warn({ inFlight: this.running.size }, 'drain timeout: interrupting running jobs');
      this.options.worker.abortAll();
      await Promise.race([Promise.allSettled([...this.running]), new Promise((r) => setTimeout(r, 2000))]);
    }
    await this.connection.close();
    return { timedOut };
  }
}
