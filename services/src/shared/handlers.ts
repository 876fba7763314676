import { setTimeout as delay } from 'node:timers/promises';
import { Type, type Static, type TSchema } from '@sinclair/typebox';

/**
 * Job handlers: pure functions of their input (plus the attempt number, which only the test handlers read),
 * so running one twice gives the same result and retries are safe.
 */

export interface HandlerContext {
  /** 1 for the first run of a job, incremented by every claim. */
  readonly attempt: number;
  /** Aborted when the worker gives up on the job (drain timeout); long handlers should stop early. */
  readonly signal: AbortSignal;
}

export interface JobHandler<S extends TSchema = TSchema> {
  readonly type: string;
  readonly description: string;
  readonly inputSchema: S;
  /** Example input shown by the HTML page. */
  readonly example: Static<S>;
  readonly testOnly: boolean;
  run(input: Static<S>, ctx: HandlerContext): Promise<unknown>;
}

function defineHandler<S extends TSchema>(handler: JobHandler<S>): JobHandler {
  return handler as unknown as JobHandler;
}

/** Upper bound for `factorial`: 5000! has 16,326 digits, computed in a few milliseconds. */
export const FACTORIAL_MAX_N = 5000;
/** Upper bound for `sleep`, so one job cannot hold a worker slot longer than a default lease. */
export const SLEEP_MAX_MS = 60_000;

export class HandlerError extends Error {
  override name = 'HandlerError';
}

export function factorial(n: number): string {
  let acc = 1n;
  for (let i = 2n; i <= BigInt(n); i++) acc *= i;
  return acc.toString(10);
}

export const BUILTIN_HANDLERS: readonly JobHandler[] = [
  defineHandler({
    type: 'factorial',
    description: 'n! with arbitrary precision; the result is a decimal string',
    inputSchema: Type.Object(
      { n: Type.Integer({ minimum: 0, maximum: FACTORIAL_MAX_N }) },
      { additionalProperties: false },
    ),
    example: { n: 20 },
    testOnly: false,
    run: async ({ n }) => factorial(n),
  }),
  defineHandler({
    type: 'sqrt',
    description: 'square root of a non-negative number',
    inputSchema: Type.Object({ x: Type.Number({ minimum: 0 }) }, { additionalProperties: false }),
    example: { x: 2 },
    testOnly: false,
    run: async ({ x }) => Math.sqrt(x),
  }),
  defineHandler({
    type: 'sleep',
    description: `waits ms milliseconds (at most ${SLEEP_MAX_MS})`,
    inputSchema: Type.Object(
      { ms: Type.Integer({ minimum: 0, maximum: SLEEP_MAX_MS }) },
      { additionalProperties: false },
    ),
    example: { ms: 1000 },
    testOnly: false,
    run: async ({ ms }, { signal }) => {
      await delay(ms, undefined, { signal });
      return { sleptMs: ms };
    },
  }),
  defineHandler({
    type: 'noop',
    description: 'does nothing; for benchmarks',
    inputSchema: Type.Object({}, { additionalProperties: true }),
    example: {},
    testOnly: false,
    run: async () => null,
  }),
  defineHandler({
    type: 'fail-always',
    description: 'always throws (test handler)',
    inputSchema: Type.Object({}, { additionalProperties: true }),
    example: {},
    testOnly: true,
    run: async (_input, { attempt }) => {
      throw new HandlerError(`fail-always: attempt ${attempt} failed on purpose`);
    },
  }),
  defineHandler({
    type: 'fail-times',
    description: 'throws on the first `times` attempts, then succeeds (test handler)',
    inputSchema: Type.Object({ times: Type.Integer({ minimum: 0, maximum: 100 }) }, { additionalProperties: false }),
    example: { times: 2 },
    testOnly: true,
    run: async ({ times }, { attempt }) => {
      if (attempt <= times) throw new HandlerError(`fail-times: attempt ${attempt} of ${times} failing on purpose`);
      return { succeededOnAttempt: attempt };
    },
  }),
];
