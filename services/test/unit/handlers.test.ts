import { BUILTIN_HANDLERS, factorial, FACTORIAL_MAX_N } from '../../src/shared/handlers';
import { HandlerRegistry, validateJobRequest } from '../../src/shared/registry';

const ctx = { attempt: 1, signal: new AbortController().signal };
const registry = HandlerRegistry.create({ enableTestHandlers: true });
const run = (type: string, input: Record<string, unknown>, attempt = 1): Promise<unknown> => {
  const h = registry.get(type);
  if (h === undefined) throw new Error(`no ${type}`);
  return h.run(input, { ...ctx, attempt });
};

describe('handlers', () => {
  it('computes factorials with arbitrary precision as decimal strings', async () => {
    expect(factorial(0)).toBe('1');
    expect(factorial(1)).toBe('1');
    expect(factorial(20)).toBe('2432902008176640000');
    expect(await run('factorial', { n: 25 })).toBe('15511210043330985984000000');
    const big = factorial(FACTORIAL_MAX_N);
    expect(big).toHaveLength(16326);
    expect(big.startsWith('4228577926')).toBe(true);
  });

  it('computes square roots', async () => {
    expect(await run('sqrt', { x: 16 })).toBe(4);
    expect(await run('sqrt', { x: 2 })).toBeCloseTo(1.41421356, 6);
  });

  it('sleeps for the given milliseconds and stops early when aborted', async () => {
    const started = Date.now();
    expect(await run('sleep', { ms: 50 })).toEqual({ sleptMs: 50 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    const controller = new AbortController();
    const h = registry.get('sleep');
    const p = h?.run({ ms: 10_000 }, { attempt: 1, signal: controller.signal });
    controller.abort();
    await expect(p).rejects.toThrow(/abort/i);
  });

  it('noop returns null', async () => {
    expect(await run('noop', {})).toBeNull();
  });

  it('fail-times fails the first N attempts then succeeds', async () => {
    await expect(run('fail-times', { times: 2 }, 1)).rejects.toThrow('fail-times: attempt 1 of 2 failing on purpose');
    await expect(run('fail-times', { times: 2 }, 2)).rejects.toThrow('fail-times: attempt 2 of 2 failing on purpose');
    expect(await run('fail-times', { times: 2 }, 3)).toEqual({ succeededOnAttempt: 3 });
  });

  it('fail-always always fails', async () => {
    await expect(run('fail-always', {}, 7)).rejects.toThrow('fail-always: attempt 7 failed on purpose');
  });
});

describe('registry', () => {
  it('hides test handlers unless enabled', () => {
    expect(HandlerRegistry.create({ enableTestHandlers: false }).types()).toEqual([
      'factorial',
      'sqrt',
      'sleep',
      'noop',
    ]);
    expect(registry.types()).toEqual(BUILTIN_HANDLERS.map((h) => h.type));
  });

  it('accepts a valid request', () => {
    expect(validateJobRequest(registry, { type: 'factorial', input: { n: 5 } })).toEqual({
      ok: true,
      type: 'factorial',
      input: { n: 5 },
    });
  });

  it('rejects an unknown type, naming the accepted ones', () => {
    const res = validateJobRequest(HandlerRegistry.create({ enableTestHandlers: false }), {
      type: 'fail-always',
      input: {},
    });
    expect(res).toMatchObject({
      ok: false,
      reason: 'unknown-type',
      detail: 'unknown job type "fail-always"; expected one of "factorial", "sqrt", "sleep", "noop"',
    });
  });

  it('reports schema errors with the field path', () => {
    const res = validateJobRequest(registry, { type: 'factorial', input: { n: 5001 } });
    expect(res.ok).toBe(false);
    if (res.ok) return;
    expect(res.reason).toBe('schema');
    expect(res.errors).toEqual([{ path: '/input/n', message: 'Expected integer to be less or equal to 5000' }]);
    const missing = validateJobRequest(registry, { type: 'sqrt' });
    expect(missing).toMatchObject({ ok: false, errors: [{ path: '/input', message: 'required property' }] });
    const extra = validateJobRequest(registry, { type: 'sqrt', input: { x: 1, y: 2 }, z: 1 });
    expect(extra.ok).toBe(false);
    if (!extra.ok) expect(extra.errors.map((e) => e.path)).toEqual(['/z', '/input/y']);
  });
});
