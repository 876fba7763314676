import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { BrokerConnection, BrokerUnavailableError, confirmPublish } from '../shared/broker';
import type { QueueType } from '../shared/config';
import type { JobRef } from '../shared/jobs';
import type { Logger } from '../shared/logger';
import { declareCoreTopology, encodeJobMessage, topologyNames, WORK_ROUTING_KEY } from '../shared/topology';
import type { JobPublisher } from './app';

export interface AmqpPublisherOptions {
  readonly url: string;
  readonly queuePrefix: string;
  readonly queueType: QueueType;
  readonly logger: Logger;
  readonly confirmTimeoutMs?: number;
}

/**
 * Publishes job messages on a confirm channel: a job counts as published only once the broker has taken
 * responsibility for it (persisted to disk for durable queues), so a crash or broker restart between
 * publish and confirm leaves the job for the outbox sweeper instead of losing it.
 * @see https://www.rabbitmq.com/docs/confirms#publisher-confirms
 */
export class AmqpPublisher implements JobPublisher {
  private channel: ConfirmChannel | undefined;
  readonly connection: BrokerConnection;

  constructor(private readonly options: AmqpPublisherOptions) {
    this.connection = new BrokerConnection({
      url: options.url,
      logger: options.logger,
      onConnect: (model) => this.setup(model),
      onDisconnect: () => {
        this.channel = undefined;
      },
    });
  }

  private async setup(model: ChannelModel): Promise<void> {
    const channel = await model.createConfirmChannel();
    channel.on('error', (err: Error) => this.options.logger.warn({ err: err.message }, 'publish channel error'));
    channel.on('close', () => {
      if (this.channel === channel) this.channel = undefined;
      // A channel closed by the broker while the connection stays up (e.g. a declare mismatch) is recovered
      // by reconnecting, which recreates the channel.
      model.close().catch(() => undefined);
    });
    await declareCoreTopology(channel, this.options.queuePrefix, this.options.queueType);
    this.channel = channel;
  }

  start(): void {
    this.connection.start();
  }

  isReady(): boolean {
    return this.channel !== undefined;
  }

  async publish(job: JobRef): Promise<void> {
    const channel = this.channel;
    if (channel === undefined) throw new BrokerUnavailableError('not connected to the broker');
    const names = topologyNames(this.options.queuePrefix);
    await confirmPublish(
      (cb) =>
        channel.publish(
          names.exchange,
          WORK_ROUTING_KEY,
          encodeJobMessage(job._id),
          // persistent: written to disk by durable queues, so it survives a broker restart.
          {
            persistent: true,
            contentType: 'application/json',
            messageId: job._id,
            type: job.type,
            timestamp: Math.floor(Date.now() / 1000),
          },
          cb,
        ),
      this.options.confirmTimeoutMs ?? 5000,
    );
  }

  async close(): Promise<void> {
    const channel = this.channel;
    this.channel = undefined;
    if (channel !== undefined) await channel.waitForConfirms().catch(() => undefined);
    await this.connection.close();
  }
}
