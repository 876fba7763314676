import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildApp } from '../../src/producer/app';
import { ApiKeysError, ApiKeysFile, hashToken, parseApiKeys } from '../../src/producer/auth';
import { RateLimiter } from '../../src/producer/ratelimit';
import { HandlerRegistry } from '../../src/shared/registry';
import { FakePublisher, FakeStore } from './fakes';

const TOKENS = {
  alice: 'tok-alice-0123456789',
  bob: 'tok-bob-0123456789',
  root: 'tok-root-0123456789',
  ro: 'tok-ro-01',
};
const KEYS = `# comment line
alice jobs:submit,jobs:read ${hashToken(TOKENS.alice)}
bob   jobs:submit,jobs:read ${hashToken(TOKENS.bob)}   # trailing comment
root  jobs:admin ${hashToken(TOKENS.root)}
ro    jobs:read ${hashToken(TOKENS.ro)}
`;

function parseErrors(text: string): readonly string[] {
  try {
    parseApiKeys(text, 'keys');
  } catch (err) {
    if (err instanceof ApiKeysError) return err.problems;
    throw err;
  }
  throw new Error('expected an ApiKeysError');
}

function setup(rateLimit?: { ratePerSecond: number; burst: number }) {
  const store = new FakeStore();
  const clients = parseApiKeys(KEYS, 'keys');
  const app = buildApp({
    store,
    publisher: new FakePublisher(),
    registry: HandlerRegistry.create({ enableTestHandlers: false }),
    logger: pino({ level: 'silent' }),
    bodyLimitBytes: 4096,
    apiClients: () => clients,
    ...(rateLimit !== undefined ? { rateLimit } : {}),
  });
  const as = (who: keyof typeof TOKENS | null) => (who === null ? {} : { authorization: `Bearer ${TOKENS[who]}` });
  const submit = (who: keyof typeof TOKENS | null, key: string, input: Record<string, unknown> = { n: 3 }) =>
    app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: { 'content-type': 'application/json', 'idempotency-key': key, ...as(who) },
      payload: { type: 'factorial', input },
    });
  const get = (who: keyof typeof TOKENS | null, url: string) => app.inject({ method: 'GET', url, headers: as(who) });
  return { app, store, submit, get };
}

describe('the API keys file', () => {
  it('parses clients, scopes and comments, and authenticates by the hash of the token', () => {
    const clients = parseApiKeys(KEYS, 'keys');
    expect(clients.size).toBe(4);
    expect(clients.authenticate(TOKENS.bob)).toEqual({ id: 'bob', scopes: new Set(['jobs:submit', 'jobs:read']) });
    expect(clients.authenticate(TOKENS.root)?.id).toBe('root');
    expect(clients.authenticate('not-a-token')).toBeUndefined();
    expect(clients.authenticate(hashToken(TOKENS.alice))).toBeUndefined();
  });

  it('names the line and field of every malformed entry without echoing hashes or tokens', () => {
    const h = hashToken('x');
    expect(
      parseErrors(
        [
          `alice jobs:submit ${h}`,
          'bob jobs:read',
          `-bad jobs:read ${hashToken('y')}`,
          `carol jobs:write,jobs:read ${hashToken('z')}`,
          'dave jobs:read my-plain-secret-token',
          `alice jobs:read ${hashToken('w')}`,
          `erin jobs:read ${h}`,
        ].join('\n'),
      ),
    ).toEqual([
      'line 2: got 2 fields, expected 3: <client-id> <scopes> <sha256 hex of the token>',
      'line 3, field 1 (client-id): got "-bad", expected 1 to 64 letters, digits, "_", ".", "@" or "-", starting with a letter or digit',
      'line 4, field 2 (scopes): got "jobs:write", expected a comma-separated list of jobs:submit, jobs:read, jobs:admin',
      'line 5, field 3 (sha256): got 21 characters (not all hex digits), expected 64 lowercase hex digits, the sha256 of the token (not the token itself)',
      'line 6, field 1 (client-id): got "alice", expected a client id not already on line 1',
      'line 7, field 3 (sha256): the same token hash as line 1, expected one token per client',
    ]);
    expect(parseErrors('# nothing\n\n')).toEqual([
      'no clients, expected at least one line "<client-id> <scopes> <sha256 hex of the token>"',
    ]);
    expect(() => parseApiKeys('a jobs:read 12', '/run/secrets/api-keys')).toThrow(
      '/run/secrets/api-keys: line 1, field 3 (sha256): got 2 characters, expected 64 lowercase hex digits',
    );
  });

  it('is reloaded when its content changes, and a broken file keeps the previous clients', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aj-keys-'));
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => lines.push(l) });
    try {
      const path = join(dir, 'api-keys');
      writeFileSync(path, `alice jobs:read ${hashToken('one')}\n`);
      const file = ApiKeysFile.load(path, logger);
      expect(file.clients.authenticate('one')?.id).toBe('alice');
      expect(await file.check()).toBe(false);
      writeFileSync(path, `alice jobs:read ${hashToken('two')}\n`);
      expect(await file.check()).toBe(true);
      expect(file.clients.authenticate('one')).toBeUndefined();
      expect(file.clients.authenticate('two')?.id).toBe('alice');
      writeFileSync(path, `alice jobs:read ${hashToken('three')}\nbroken line\n`);
      expect(await file.check()).toBe(false);
      expect(file.clients.authenticate('two')?.id).toBe('alice');
      expect(lines.join('')).toContain('line 2: got 2 fields');
      expect(lines.join('')).not.toContain('three');
      expect(() => ApiKeysFile.load(join(dir, 'missing'), logger)).toThrow(
        `API_KEYS_FILE "${join(dir, 'missing')}": expected a readable file (ENOENT)`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('authentication and scopes on /v1/*', () => {
  it('answers 401 with WWW-Authenticate: Bearer and problem+json without a token or with an unknown one', async () => {
    const { app, get, submit, store } = setup();
    for (const res of [
      await get(null, '/v1/jobs'),
      await submit(null, 'k'),
      await get(null, '/v1/job-types'),
      await app.inject({ method: 'GET', url: '/v1/jobs', headers: { authorization: 'Basic YTpi' } }),
    ]) {
      expect(res.statusCode).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer realm="async-jobs"');
      expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
      expect(res.json()).toEqual({
        type: 'urn:async-jobs:problem:unauthorized',
        title: 'Unauthorized',
        status: 401,
        detail: 'an Authorization: Bearer <token> header is required',
      });
    }
    const unknown = await app.inject({ method: 'GET', url: '/v1/jobs', headers: { authorization: 'Bearer nope' } });
    expect(unknown.statusCode).toBe(401);
    expect(unknown.headers['www-authenticate']).toBe('Bearer realm="async-jobs", error="invalid_token"');
    expect(unknown.json().detail).toBe('the bearer token is not valid');
    expect(store.jobs.size).toBe(0);
    await app.close();
  });

  it('answers 403 when the token lacks the route scope, and jobs:admin holds every scope', async () => {
    const { app, submit, get, store } = setup();
    const res = await submit('ro', 'k');
    expect(res.statusCode).toBe(403);
    expect(res.headers['www-authenticate']).toBe(
      'Bearer realm="async-jobs", error="insufficient_scope", scope="jobs:submit"',
    );
    expect(res.json()).toEqual({
      type: 'urn:async-jobs:problem:forbidden',
      title: 'Forbidden',
      status: 403,
      detail: 'client "ro" lacks the scope jobs:submit',
    });
    expect(store.jobs.size).toBe(0);
    expect((await get('ro', '/v1/jobs')).statusCode).toBe(200);
    expect((await submit('root', 'k')).statusCode).toBe(202);
    expect((await get('ro', '/v1/job-types')).statusCode).toBe(200);
    await app.close();
  });

  it('leaves /, /app.js, /healthz and /readyz open and /metrics off the API', async () => {
    const { app } = setup();
    for (const url of ['/', '/app.js', '/healthz', '/readyz']) {
      expect((await app.inject({ method: 'GET', url })).statusCode).toBe(200);
    }
    expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(404);
    await app.close();
  });
});

describe('isolation between clients', () => {
  it("hides another client's job (404, absent from lists); jobs:admin sees all", async () => {
    const { app, submit, get } = setup();
    const a = (await submit('alice', 'a1')).json().id as string;
    const b = (await submit('bob', 'b1')).json().id as string;
    const bobReadsAlice = await get('bob', `/v1/jobs/${a}`);
    expect(bobReadsAlice.statusCode).toBe(404);
    expect(bobReadsAlice.json().detail).toBe(`no job with id "${a}"`);
    expect((await get('alice', `/v1/jobs/${a}`)).statusCode).toBe(200);
    expect((await get('alice', '/v1/jobs')).json().items.map((j: { id: string }) => j.id)).toEqual([a]);
    expect((await get('bob', '/v1/jobs')).json().items.map((j: { id: string }) => j.id)).toEqual([b]);
    expect((await get('root', '/v1/jobs')).json().items.map((j: { id: string }) => j.id)).toEqual([b, a]);
    expect((await get('root', `/v1/jobs/${a}`)).statusCode).toBe(200);
    await app.close();
  });

  it('scopes the Idempotency-Key per client: the same key from two clients makes two jobs', async () => {
    const { app, submit, store } = setup();
    const first = await submit('alice', 'shared-key');
    const second = await submit('bob', 'shared-key');
    expect(first.statusCode).toBe(202);
    expect(second.statusCode).toBe(202);
    expect(second.json().id).not.toBe(first.json().id);
    // Bob's other body is no conflict with Alice's key, and a repeat by Alice still answers her job.
    expect((await submit('bob', 'shared-key-2', { n: 4 })).statusCode).toBe(202);
    const again = await submit('alice', 'shared-key');
    expect(again.statusCode).toBe(200);
    expect(again.json().id).toBe(first.json().id);
    expect([...store.jobs.values()].map((j) => j.owner).sort()).toEqual(['alice', 'bob', 'bob']);
    await app.close();
  });
});

describe('rate limits', () => {
  it('refills a token bucket per client at the configured rate', () => {
    let now = 0;
    const limiter = new RateLimiter({ ratePerSecond: 2, burst: 3 }, () => now);
    expect([1, 2, 3, 4].map(() => limiter.take('a').allowed)).toEqual([true, true, true, false]);
    expect(limiter.take('b').allowed).toBe(true);
    expect(limiter.take('a')).toEqual({ allowed: false, remaining: 0, resetSeconds: 2, retryAfterSeconds: 1 });
    now = 500;
    expect(limiter.take('a')).toEqual({ allowed: true, remaining: 0, resetSeconds: 2, retryAfterSeconds: 0 });
    now = 10_000;
    expect(limiter.take('a')).toMatchObject({ allowed: true, remaining: 2 });
  });

  it('answers 429 with Retry-After and RateLimit headers per client, other clients unaffected', async () => {
    const { app, get } = setup({ ratePerSecond: 1, burst: 2 });
    const ok = await get('alice', '/v1/jobs');
    expect(ok.statusCode).toBe(200);
    expect(ok.headers['ratelimit-limit']).toBe('2');
    expect(ok.headers['ratelimit-remaining']).toBe('1');
    expect(ok.headers['ratelimit-policy']).toBe('2;w=2');
    expect((await get('alice', '/v1/jobs')).statusCode).toBe(200);
    const limited = await get('alice', '/v1/jobs');
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['retry-after']).toBe('1');
    expect(limited.headers['ratelimit-remaining']).toBe('0');
    expect(limited.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(limited.json()).toMatchObject({
      type: 'urn:async-jobs:problem:rate-limited',
      status: 429,
      detail: 'client "alice" exceeded 1 requests per second (burst 2); retry after 1 s',
    });
    expect((await get('bob', '/v1/jobs')).statusCode).toBe(200);
    // Unauthenticated requests are refused before the limiter and spend no client's tokens.
    expect((await get(null, '/healthz')).headers['ratelimit-limit']).toBeUndefined();
    await app.close();
  });
});
