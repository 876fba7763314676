#!/usr/bin/env node
/**
 * The accept-path baseline: a fastify route at POST /v1/jobs that parses the JSON body like the producer does
 * and answers 202 with a constant job view, touching neither MongoDB nor RabbitMQ. Listens on 127.0.0.1:$PORT.
 */
import Fastify from 'fastify';

const CONSTANT = {
  id: '0190f5c2-0000-7000-8000-000000000000',
  type: 'noop',
  status: 'queued',
  attempts: 0,
  input: {},
  result: null,
  error: null,
  createdAt: '2025-01-01T00:00:00.000Z',
  updatedAt: '2025-01-01T00:00:00.000Z',
  startedAt: null,
  finishedAt: null,
  links: { self: '/v1/jobs/0190f5c2-0000-7000-8000-000000000000' },
};

const app = Fastify({ logger: false });
app.post('/v1/jobs', async (_request, reply) => reply.code(202).header('location', CONSTANT.links.self).send(CONSTANT));
app.get('/readyz', (_request, reply) => {
  void reply.send({ status: 'ready' });
});
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) });
