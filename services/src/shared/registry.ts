import { Value } from '@sinclair/typebox/value';
import { BUILTIN_HANDLERS, type JobHandler } from './handlers';

/**
 * The job types a deployment accepts. The producer validates requests against the same registry the consumer
 * runs, so a job type the workers cannot run is rejected at the door (400) instead of failing later.
 */
export class HandlerRegistry {
  private readonly handlers: ReadonlyMap<string, JobHandler>;

  constructor(handlers: readonly JobHandler[]) {
    this.handlers = new Map(handlers.map((h) => [h.type, h]));
  }

  /** Test handlers (`fail-always`, `fail-times`) exist only when ENABLE_TEST_HANDLERS=true. */
  static create(options: { readonly enableTestHandlers: boolean }): HandlerRegistry {
    return new HandlerRegistry(BUILTIN_HANDLERS.filter((h) => options.enableTestHandlers || !h.testOnly));
  }

  get(type: string): JobHandler | undefined {
    return this.handlers.get(type);
  }

  types(): string[] {
    return [...this.handlers.keys()];
  }

  list(): JobHandler[] {
    return [...this.handlers.values()];
  }
}

export interface FieldError {
  /** JSON pointer into the request body, e.g. `/input/n`. */
  readonly path: string;
  readonly message: string;
}

export type JobRequestValidation =
  | { readonly ok: true; readonly type: string; readonly input: Record<string, unknown> }
  | {
      readonly ok: false;
      readonly reason: 'schema' | 'unknown-type';
      readonly detail: string;
      readonly errors: FieldError[];
    };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checks a `POST /v1/jobs` body: `{ "type": <registered type>, "input": <that type's schema> }`. */
export function validateJobRequest(registry: HandlerRegistry, body: unknown): JobRequestValidation {
  if (!isRecord(body)) {
    return {
      ok: false,
      reason: 'schema',
      detail: 'the body must be a JSON object',
      errors: [{ path: '', message: 'expected an object' }],
    };
  }
  const errors: FieldError[] = [];
  for (const key of Object.keys(body)) {
    if (key !== 'type' && key !== 'input')
      errors.push({ path: `/${key}`, message: 'unknown property; expected only "type" and "input"' });
  }
  const { type, input } = body;
  if (typeof type !== 'string') {
    errors.push({ path: '/type', message: type === undefined ? 'required property' : 'expected a string' });
  }
  if (!isRecord(input)) {
    errors.push({ path: '/input', message: input === undefined ? 'required property' : 'expected an object' });
  }
  if (typeof type === 'string') {
    const handler = registry.get(type);
    if (handler === undefined) {
      return {
        ok: false,
        reason: 'unknown-type',
        detail: `unknown job type ${JSON.stringify(type)}; expected one of ${registry
          .types()
          .map((t) => `"${t}"`)
          .join(', ')}`,
        errors: [{ path: '/type', message: 'unknown job type' }, ...errors],
      };
    }
    if (isRecord(input)) {
      for (const e of Value.Errors(handler.inputSchema, input)) {
        errors.push({ path: `/input${e.path}`, message: e.message });
      }
    }
  }
  if (errors.length > 0) {
    return { ok: false, reason: 'schema', detail: errors.map((e) => `${e.path}: ${e.message}`).join('; '), errors };
  }
  return { ok: true, type: type as string, input: input as Record<string, unknown> };
}
