import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { installProblemHandlers } from '../shared/http';
import type { Logger } from '../shared/logger';
import type { ConsumerMetrics } from './metrics';

export interface ConsumerHealthDeps {
  readonly logger: Logger;
  readonly metrics: ConsumerMetrics;
  /** Consuming from the broker and not draining. */
  readonly isConsuming: () => boolean;
  readonly pingStore: () => Promise<void>;
}

/** /healthz, /readyz and /metrics for a worker. Never listens: main.ts does. */
export function buildHealthApp(deps: ConsumerHealthDeps): FastifyInstance {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
  });
  installProblemHandlers(app);
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const checks: Record<string, string> = { broker: deps.isConsuming() ? 'ok' : 'not consuming' };
    try {
      await deps.pingStore();
      checks.mongodb = 'ok';
    } catch (err) {
      checks.mongodb = (err as Error).message;
    }
    const ready = Object.values(checks).every((v) => v === 'ok');
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks });
  });
  app.get('/metrics', async (_request, reply) =>
    reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics()),
  );
  return app;
}
