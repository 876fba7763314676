import { inspect } from 'node:util';
import * as amqp from 'amqplib';
import type { ChannelModel } from 'amqplib';
import { backoffDelayMs, sleep } from './backoff';
import { redactUrl } from './config';
import type { Logger } from './logger';

export interface BrokerConnectionOptions {
  readonly url: string;
  readonly logger: Logger;
  /** Runs after every (re)connection: create channels, declare topology, start consuming. */
  readonly onConnect: (model: ChannelModel) => Promise<void>;
  readonly onDisconnect?: () => void;
  readonly reconnectBaseDelayMs?: number;
  readonly reconnectMaxDelayMs?: number;
}

/**
 * One AMQP connection that reconnects with backoff for the life of the process, so a broker restart is
 * survived without a process restart. Channels are recreated by `onConnect` on each connection.
 * `noDelay` disables Nagle's algorithm: confirms and acks are tiny frames that must not wait 40 ms.
 * @see https://www.rabbitmq.com/docs/connections#automatic-recovery
 * @see https://amqp-node.github.io/amqplib/channel_api.html#connect
 */
export class BrokerConnection {
  private model: ChannelModel | undefined;
  private stopped = false;
  private readonly stopController = new AbortController();
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly options: BrokerConnectionOptions) {}

  get connected(): boolean {
    return this.model !== undefined;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Resolves once connected (or once stopped). */
  async waitForConnection(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.connected && !this.stopped && Date.now() < deadline) await sleep(50);
    return this.connected;
  }

  private async run(): Promise<void> {
    const { logger } = this.options;
    let attempt = 0;
    while (!this.stopped) {
      if (this.model === undefined) {
        attempt++;
        try {
          const model = await amqp.connect(this.options.url, { noDelay: true, timeout: 10_000 });
          let closed = false;
          const onClosed = (err?: Error): void => {
            if (closed) return;
            closed = true;
            if (this.model === model) this.model = undefined;
            if (!this.stopped) logger.warn({ err: err?.message }, 'broker connection lost; reconnecting');
            this.options.onDisconnect?.();
            this.wake?.();
          };
          model.on('error', (err: Error) => logger.warn({ err: err.message }, 'broker connection error'));
          model.on('close', onClosed);
          model.on('blocked', (reason: string) =>
            logger.warn({ reason }, 'broker blocked publishing (resource alarm)'),
          );
          model.on('unblocked', () => logger.info('broker unblocked publishing'));
          this.model = model;
          await this.options.onConnect(model);
          if (this.stopped) break;
          logger.info({ broker: redactUrl(this.options.url), attempt }, 'broker connected');
          attempt = 0;
        } catch (err) {
          const delayMs = backoffDelayMs(
            attempt,
            this.options.reconnectBaseDelayMs ?? 250,
            this.options.reconnectMaxDelayMs ?? 10_000,
          );
          logger.warn({ err: (err as Error).message, attempt, delayMs }, 'broker connection failed; retrying');
          const model = this.model;
          this.model = undefined;
          await model?.close().catch(() => undefined);
          await sleep(delayMs, this.stopController.signal);
          continue;
        }
      }
      // Connected: park until the connection closes or stop() is called.
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        if (this.model === undefined || this.stopped) resolve();
      });
      this.wake = undefined;
    }
  }

  async close(): Promise<void> {
    this.stopped = true;
    this.stopController.abort();
    this.wake?.();
    const model = this.model;
    this.model = undefined;
    if (model !== undefined) await model.close().catch(() => undefined);
    await this.loop;
  }
}

export class BrokerUnavailableError extends Error {
  override name = 'BrokerUnavailableError';
}

/** Wraps a confirm-channel callback publish in a promise that also fails after `timeoutMs`. */
export function confirmPublish(publish: (callback: (err: unknown) => void) => void, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new BrokerUnavailableError(`publish not confirmed within ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      publish((err) => {
        clearTimeout(timer);
        if (err === null || err === undefined) resolve();
        else
          reject(
            err instanceof Error ? err : new BrokerUnavailableError(`publish nacked by the broker: ${inspect(err)}`),
          );
      });
    } catch (err) {
      clearTimeout(timer);
      reject(err instanceof Error ? err : new Error(String(err)));
    }
  });
}
