import pino, { type Logger } from 'pino';
import type { LogLevel } from './config';

export type { Logger } from 'pino';

/**
 * JSON logs on stdout. Secrets never reach a log line on purpose (URLs are logged through `redactUrl`); the
 * redact list is the safety net for anything that slips through, e.g. a request's Authorization header.
 * @see https://getpino.io/#/docs/redaction
 */
export function createLogger(service: string, level: LogLevel, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: [
          'password',
          '*.password',
          'amqpUrl',
          'mongoUrl',
          'url',
          'req.headers.authorization',
          'req.headers.cookie',
          'headers.authorization',
        ],
        censor: '<redacted>',
      },
    },
    destination,
  );
}
