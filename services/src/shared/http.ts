import type { FastifyInstance, FastifyReply } from 'fastify';
import type { FieldError } from './registry';

/**
 * Errors as RFC 9457 problem details, so clients get one machine-readable shape for every 4xx/5xx.
 * @see https://www.rfc-editor.org/rfc/rfc9457
 */
export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail?: string;
  readonly errors?: readonly FieldError[];
}

export function problem(
  status: number,
  slug: string,
  title: string,
  detail?: string,
  errors?: readonly FieldError[],
): Problem {
  return {
    type: `urn:async-jobs:problem:${slug}`,
    title,
    status,
    ...(detail !== undefined ? { detail } : {}),
    ...(errors !== undefined ? { errors } : {}),
  };
}

export function sendProblem(reply: FastifyReply, p: Problem): FastifyReply {
  return reply.code(p.status).type('application/problem+json').send(p);
}

interface FastifyLikeError {
  readonly code?: string;
  readonly statusCode?: number;
  readonly message: string;
}

/** Maps fastify's own errors (body parser, limits) and anything unexpected to problem+json. */
export function installProblemHandlers(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      reply,
      problem(404, 'not-found', 'Not Found', `no route for ${request.method} ${request.url.split('?')[0] ?? ''}`),
    ),
  );
  app.setErrorHandler((error: FastifyLikeError, request, reply) => {
    switch (error.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return sendProblem(reply, problem(413, 'body-too-large', 'Payload Too Large', error.message));
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return sendProblem(
          reply,
          problem(415, 'unsupported-media-type', 'Unsupported Media Type', 'expected Content-Type: application/json'),
        );
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return sendProblem(reply, problem(400, 'malformed-body', 'Bad Request', error.message));
      default:
        break;
    }
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      // JSON syntax errors from the body parser arrive here with statusCode 400.
      return sendProblem(reply, problem(status, 'bad-request', 'Bad Request', error.message));
    }
    request.log.error({ err: error }, 'unhandled error');
    return sendProblem(reply, problem(500, 'internal', 'Internal Server Error'));
  });
}
