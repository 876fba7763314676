/**
 * `node bench/build/auth-cost.js`: the CPU cost of authentication on the producer's request path, in one process
 * and without the network or a database, so it stays measurable on a loaded machine where the accept part's
 * database-bound figures cannot resolve it. Builds the real producer app (services/dist) twice, without
 * authentication and with a keys file of 10 clients plus the per-client rate limiter (a limit never reached), and
 * sends `GET /v1/job-types` through fastify's `inject()` to both, rounds interleaved in alternating order.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { REPO_ROOT } from './lib/servers.js';
import { summarize, ratios } from './lib/stats.js';

interface Clients {
  authenticate(token: string): unknown;
}
interface Injectable {
  inject(opts: { method: string; url: string; headers?: Record<string, string> }): Promise<{ statusCode: number }>;
  ready(): Promise<unknown>;
  close(): Promise<unknown>;
}
interface AuthModule {
  readonly parseApiKeys: (text: string, source: string) => Clients;
}
interface AppModule {
  readonly buildApp: (deps: Record<string, unknown>) => Injectable;
}
interface RegistryModule {
  HandlerRegistry: { create(o: { enableTestHandlers: boolean }): unknown };
}

function load<T>(relative: string): T {
  const file = join(REPO_ROOT, 'services', 'dist', relative);
  if (!existsSync(file)) throw new Error(`${file}: not found; run \`cd services && npm run build\` first`);
  return createRequire(import.meta.url)(file) as T;
}

const CLIENTS = 10;
const ROUNDS = 6;
const REQUESTS = 20_000;

async function main(): Promise<void> {
  const { parseApiKeys } = load<AuthModule>('producer/auth.js');
  const { buildApp } = load<AppModule>('producer/app.js');
  const { HandlerRegistry } = load<RegistryModule>('shared/registry.js');
  let token = '';
  const lines: string[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    token = randomBytes(32).toString('base64url');
    lines.push(`c${i} jobs:submit,jobs:read ${createHash('sha256').update(token).digest('hex')}`);
  }
  const clients = parseApiKeys(lines.join('\n'), 'bench');

  const n = 200_000;
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) clients.authenticate(token);
  const authNs = Number(process.hrtime.bigint() - t) / n;

  // Nothing on GET /v1/job-types touches the store or the broker; these stand-ins are never called.
  const unused = new Proxy({}, { get: () => () => Promise.reject(new Error('not used')) });
  const silent = createRequire(join(REPO_ROOT, 'services', 'package.json'))('pino') as (o: object) => unknown;
  const common = {
    store: unused,
    publisher: { publish: () => Promise.resolve(), isReady: () => true },
    registry: HandlerRegistry.create({ enableTestHandlers: false }),
    logger: silent({ level: 'silent' }),
    bodyLimitBytes: 65_536,
  };
  const plain = buildApp({ ...common, apiClients: null });
  const authed = buildApp({
    ...common,
    apiClients: () => clients,
    rateLimit: { ratePerSecond: 1_000_000_000, burst: 1_000_000_000 },
  });
  await plain.ready();
  await authed.ready();
  const headers = { authorization: `Bearer ${token}` };
  const run = async (app: Injectable, h: Record<string, string>): Promise<number> => {
    const start = process.hrtime.bigint();
    for (let i = 0; i < REQUESTS; i++) {
      const res = await app.inject({ method: 'GET', url: '/v1/job-types', headers: h });
      if (res.statusCode !== 200) throw new Error(`GET /v1/job-types answered ${res.statusCode}`);
    }
    return REQUESTS / (Number(process.hrtime.bigint() - start) / 1e9);
  };
  await run(plain, {});
  await run(authed, headers);
  const without: number[] = [];
  const withAuth: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    if (r % 2 === 0) {
      without.push(await run(plain, {}));
      withAuth.push(await run(authed, headers));
    } else {
      withAuth.push(await run(authed, headers));
      without.push(await run(plain, {}));
    }
  }
  await plain.close();
  await authed.close();
  const w = summarize(without);
  const a = summarize(withAuth);
  const ratio = ratios(withAuth, without);
  const perRequestUs = (1 / a.median - 1 / w.median) * 1e6;
  process.stdout.write(
    `authenticate() with ${CLIENTS} clients: ${(authNs / 1000).toFixed(2)} µs per call\n` +
      `GET /v1/job-types through inject(), ${ROUNDS} rounds of ${REQUESTS}, alternating order:\n` +
      `  without authentication: ${w.median.toFixed(0)} req/s (${w.min.toFixed(0)}–${w.max.toFixed(0)})\n` +
      `  with authentication and the limiter: ${a.median.toFixed(0)} req/s (${a.min.toFixed(0)}–${a.max.toFixed(0)})\n` +
      `  ratio ${ratio.median.toFixed(3)} (${ratio.min.toFixed(3)}–${ratio.max.toFixed(3)}); ` +
      `about ${perRequestUs.toFixed(1)} µs of CPU per request\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
