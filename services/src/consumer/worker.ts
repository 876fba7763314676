import { Value } from '@sinclair/typebox/value';
import { backoffDelayMs, sleep } from '../shared/backoff';
import { StoreUnavailableError, type JobError } from '../shared/jobs';
import type { Logger } from '../shared/logger';
import type { HandlerRegistry } from '../shared/registry';
import { decideUnclaimable, type JobClaims } from './claims';
import type { ConsumerMetrics } from './metrics';

/** What the worker may do with one delivery; bound to the channel the message arrived on. */
export interface DeliveryOps {
  ack(): void;
  /** Requeue at once (the job was not touched, or was released). */
  requeue(): void;
  /** Publish a copy that comes back to the work queue after `delayMs` (confirmed), then the caller acks. */
  publishDelayed(delayMs: number): Promise<void>;
  /** Publish a copy to the dead-letter queue (confirmed), then the caller acks. */
  publishDead(reason: string): Promise<void>;
}

export interface WorkerOptions {
  readonly claims: JobClaims;
  readonly registry: HandlerRegistry;
  readonly logger: Logger;
  readonly workerId: string;
  readonly maxAttempts: number;
  readonly retryBaseDelayMs: number;
  readonly retryMaxDelayMs: number;
  readonly leaseMs: number;
  readonly metrics?: ConsumerMetrics;
  readonly now?: () => Date;
}

/** Extra wait after a lease expires before retrying a claim, so clock skew between workers cannot win a race. */
const LEASE_SLACK_MS = 250;

/**
 * Processes one delivery: claim → run → write → ack. Acks happen only after MongoDB holds the outcome, so a
 * crash at any point leaves an unacked message that RabbitMQ redelivers.
 * @see https://www.rabbitmq.com/docs/confirms#consumer-acknowledgements
 */
export class Worker {
  private readonly now: () => Date;
  private readonly shutdown = new AbortController();
  private storeFailures = 0;
  private readonly active = new Set<string>();
  private readonly leases: LeaseRenewer;

  constructor(private readonly options: WorkerOptions) {
    this.now = options.now ?? (() => new Date());
    const { claims, workerId, leaseMs, logger } = options;
    this.leases = new LeaseRenewer(
      // Every held lease is renewed in the same turn, so the renewals share one round trip (group commit).
      (ids) =>
        Promise.all(
          ids.map((id) =>
            claims
              .renewLease(id, workerId, new Date(this.now().getTime() + leaseMs))
              .catch((err: Error) => logger.warn({ jobId: id, err: err.message }, 'lease renewal failed')),
          ),
        ),
      Math.max(100, Math.floor(leaseMs / 3)),
    );
  }

  /** Aborts running handlers (drain timeout); their attempts are released rather than counted as failures. */
  abortAll(): void {
    this.shutdown.abort();
  }

  async process(jobId: string | undefined, ops: DeliveryOps, redelivered: boolean): Promise<void> {
    const { logger } = this.options;
    if (jobId === undefined) {
      logger.warn('message without a job id; dead-lettering it');
      await ops.publishDead('malformed message');
      ops.ack();
      return;
    }
    const log = logger.child({ jobId });
    if (this.active.has(jobId)) {
      // A second delivery of a job this process is running (duplicate publish): look again once it is done,
      // without touching MongoDB, so the two deliveries never race each other's writes.
      log.info('job already running in this worker; delivery delayed');
      await ops.publishDelayed(Math.min(this.options.leaseMs, 1000));
      ops.ack();
      return;
    }
    this.active.add(jobId);
    try {
      await this.processJob(jobId, ops, log, redelivered);
      this.storeFailures = 0;
    } catch (err) {
      if (err instanceof StoreUnavailableError) {
        // MongoDB is down: leave the job untouched and retry the delivery after a backoff (no busy loop).
        this.storeFailures++;
        const delayMs = backoffDelayMs(this.storeFailures, 500, 10_000);
        log.warn({ err: err.message, delayMs }, 'job store unavailable; requeueing delivery');
        this.options.metrics?.outcomes.inc({ type: 'unknown', outcome: 'store-unavailable' });
        await sleep(delayMs);
        ops.requeue();
        return;
      }
      throw err;
    } finally {
      this.active.delete(jobId);
    }
  }

  private async processJob(jobId: string, ops: DeliveryOps, log: Logger, redelivered: boolean): Promise<void> {
    const { claims, registry, workerId, maxAttempts, leaseMs, metrics } = this.options;
    const now = this.now();
    const job = await claims.claim({ jobId, workerId, now, leaseMs, maxAttempts });
    if (job === null) {
      const current = await claims.get(jobId);
      const decision = decideUnclaimable(current, now, maxAttempts);
      switch (decision.action) {
        case 'missing':
          log.warn('no such job; dead-lettering the message');
          await ops.publishDead('job not found');
          ops.ack();
          return;
        case 'finished':
          log.info(
            { status: current?.status, redelivered },
            'duplicate delivery of a finished job; acked without running',
          );
          metrics?.outcomes.inc({ type: current?.type ?? 'unknown', outcome: 'duplicate' });
          ops.ack();
          return;
        case 'wait':
          // Leased by another worker (or backing off): come back after it, so a dead owner's job is taken over.
          log.info(
            { delayMs: decision.delayMs + LEASE_SLACK_MS, status: current?.status },
            'job busy; delivery delayed',
          );
          await ops.publishDelayed(decision.delayMs + LEASE_SLACK_MS);
          ops.ack();
          return;
        case 'exhausted': {
          const error: JobError = {
            message: 'worker lost during the last attempt (lease expired)',
            attempt: current?.attempts ?? maxAttempts,
          };
          if (await claims.failExhausted(jobId, maxAttempts, error, now)) {
            log.warn({ attempts: current?.attempts }, 'job failed: no attempts left');
            metrics?.outcomes.inc({ type: current?.type ?? 'unknown', outcome: 'failed' });
            await ops.publishDead(error.message);
          }
          ops.ack();
          return;
        }
        case 'retry-now':
          // Changed between claim and read (another worker just released it): try the delivery again.
          await sleep(LEASE_SLACK_MS);
          ops.requeue();
          return;
      }
    }

    const attempt = job.attempts;
    const jobLog = log.child({ jobType: job.type, attempt });
    const handler = registry.get(job.type);
    const invalid =
      handler === undefined
        ? `no handler for job type ${JSON.stringify(job.type)} in this worker`
        : Value.Check(handler.inputSchema, job.input)
          ? undefined
          : `input does not match the ${job.type} schema`;
    if (handler === undefined || invalid !== undefined) {
      // Permanent: retrying cannot help, so fail now instead of burning attempts.
      const error: JobError = { message: invalid ?? 'invalid job', attempt };
      if (await this.withStoreRetry(() => claims.fail(jobId, workerId, error, this.now())))
        await ops.publishDead(error.message);
      jobLog.error({ err: error.message }, 'job failed permanently');
      metrics?.outcomes.inc({ type: job.type, outcome: 'failed' });
      ops.ack();
      return;
    }

    jobLog.info('job started');
    const started = process.hrtime.bigint();
    this.leases.hold(jobId);
    metrics?.inFlight.inc();
    let outcome: { ok: true; result: unknown } | { ok: false; error: Error };
    try {
      outcome = { ok: true, result: await handler.run(job.input, { attempt, signal: this.shutdown.signal }) };
    } catch (err) {
      outcome = { ok: false, error: err instanceof Error ? err : new Error(String(err)) };
    } finally {
      // No renewal may be in flight while the outcome is written: a late renewal must not overlap it.
      await this.leases.release(jobId);
      metrics?.inFlight.dec();
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    metrics?.duration.observe({ type: job.type, outcome: outcome.ok ? 'succeeded' : 'error' }, seconds);

    if (outcome.ok) {
      const written = await this.withStoreRetry(() =>
        claims.complete(jobId, workerId, outcome.result ?? null, this.now()),
      );
      if (written) {
        jobLog.info({ ms: Math.round(seconds * 1000) }, 'job succeeded');
        metrics?.outcomes.inc({ type: job.type, outcome: 'succeeded' });
      } else {
        // This run's result is discarded; count it so a duplicate run is visible on the job.
        await claims.recordRun(jobId).catch(() => undefined);
        const current = await claims.get(jobId).catch(() => null);
        jobLog.warn(
          { status: current?.status, leaseOwner: current?.leaseOwner, leaseExpiresAt: current?.leaseExpiresAt },
          'lease lost before the result was written; another worker owns the job',
        );
      }
      ops.ack();
      return;
    }

    if (this.shutdown.signal.aborted) {
      // Interrupted by the drain timeout, not a failure of the job: give the attempt back and requeue.
      await this.withStoreRetry(() => claims.release(jobId, workerId, this.now()));
      jobLog.warn('job interrupted by shutdown; released');
      ops.requeue();
      return;
    }

    const error: JobError = { message: outcome.error.message, attempt };
    if (attempt >= maxAttempts) {
      const written = await this.withStoreRetry(() => claims.fail(jobId, workerId, error, this.now()));
      if (written) {
        await ops.publishDead(error.message);
        jobLog.warn({ err: error.message, attempts: attempt }, 'job failed after its last attempt; dead-lettered');
        metrics?.outcomes.inc({ type: job.type, outcome: 'failed' });
      }
      ops.ack();
      return;
    }
    const delayMs = backoffDelayMs(attempt, this.options.retryBaseDelayMs, this.options.retryMaxDelayMs);
    const written = await this.withStoreRetry(() =>
      claims.scheduleRetry(jobId, workerId, error, new Date(this.now().getTime() + delayMs), this.now()),
    );
    if (written) {
      await ops.publishDelayed(delayMs);
      jobLog.warn({ err: error.message, delayMs }, 'job attempt failed; retry scheduled');
      metrics?.outcomes.inc({ type: job.type, outcome: 'retried' });
    }
    ops.ack();
  }

  /**
   * Outcome writes are retried for up to half a lease: giving up means the job runs again after the lease
   * expires, which is correct but wasteful.
   */
  private async withStoreRetry<T>(op: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.options.leaseMs / 2;
    for (let attempt = 1; ; attempt++) {
      try {
        return await op();
      } catch (err) {
        if (!(err instanceof StoreUnavailableError) || Date.now() >= deadline) throw err;
        await sleep(backoffDelayMs(attempt, 200, 2000));
      }
    }
  }
}

/**
 * Renews the leases of the jobs a worker is running, all together on one timer (so the renewals of a prefetch
 * window go out as one batch). A job's renewal is never in flight after {@link release} returns.
 */
export class LeaseRenewer {
  private readonly held = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private inFlight: { readonly ids: ReadonlySet<string>; readonly done: Promise<unknown> } | undefined;

  constructor(
    private readonly renew: (ids: string[]) => Promise<unknown>,
    private readonly intervalMs: number,
  ) {}

  hold(jobId: string): void {
    this.held.add(jobId);
    this.timer ??= setInterval(() => this.tick(), this.intervalMs);
  }

  async release(jobId: string): Promise<void> {
    this.held.delete(jobId);
    if (this.held.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
    const flight = this.inFlight;
    if (flight?.ids.has(jobId) === true) await flight.done;
  }

  private tick(): void {
    if (this.inFlight !== undefined || this.held.size === 0) return;
    const ids = new Set(this.held);
    const done = this.renew([...ids])
      .catch(() => undefined)
      .finally(() => {
        this.inFlight = undefined;
      });
    this.inFlight = { ids, done };
  }
}
