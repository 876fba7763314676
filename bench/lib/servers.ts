import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chownSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createMemoryCgroup, removeAllCgroups, type MemoryCgroup } from './cgroup.js';

/**
 * Starts the servers the benchmarks need, each on 127.0.0.1 with a free port and its own temp data directory:
 * RabbitMQ (Debian's rabbitmq-server), FerretDB (MongoDB wire protocol over SQLite), Redis (for BullMQ) and the
 * services themselves. Every child runs in its own process group and is remembered, so `stopAll()` signals
 * exactly the processes this run started (same approach as services/test/helpers/servers.ts, kept separate so
 * bench/ does not depend on the services' test code).
 */

/** bench/build/lib → repo root. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const BENCH_ROOT = join(REPO_ROOT, 'bench');

const started = new Set<ChildProcess>();
/** The run's temp base and PostgreSQL's directory (owned by its user), removed on any exit. */
const outsideDirs = new Set<string>();

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitForTcp(port: number, timeoutMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`process exited before it listened on ${port}`);
    const ok = await new Promise<boolean>((res) => {
      const s = new Socket();
      s.setTimeout(1000);
      s.once('connect', () => {
        s.destroy();
        res(true);
      });
      s.once('error', () => res(false));
      s.once('timeout', () => {
        s.destroy();
        res(false);
      });
      s.connect(port, '127.0.0.1');
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`nothing listened on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

/** Polls an HTTP URL until it answers 200 (the services' /readyz). */
export async function waitForHttp(url: string, timeoutMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`process exited before ${url} answered`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`${url} not ready within ${timeoutMs} ms (last: ${last})`);
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

export async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    killGroup(child, 'SIGTERM');
    const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
  // A shell wrapper may exit before its children (rabbitmq-server → beam); leave nothing of the group.
  killGroup(child, 'SIGKILL');
  started.delete(child);
}

/** Spawns in a new process group, output to `logFile`, and remembers the child for {@link stopAll}. */
export function launch(
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; logFile: string; user?: SystemUser },
): ChildProcess {
  const out = createWriteStream(options.logFile, { flags: 'a' });
  const child = spawn(command, args, {
    env: options.env ?? process.env,
    cwd: options.cwd,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.user !== undefined ? { uid: options.user.uid, gid: options.user.gid } : {}),
  });
  child.stdout?.pipe(out);
  child.stderr?.pipe(out);
  started.add(child);
  child.once('exit', () => started.delete(child));
  return child;
}

export async function stopAll(): Promise<void> {
  await Promise.all([...started].map((c) => stopChild(c, 5000)));
}

/** Last resort on Ctrl-C or a crash: SIGKILL every group this process started, synchronously. */
export function installExitHandlers(): void {
  const killAll = (): void => {
    for (const c of started) killGroup(c, 'SIGKILL');
    removeAllCgroups();
    for (const d of outsideDirs) rmSync(d, { recursive: true, force: true });
  };
  process.once('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}

export interface Running {
  readonly url: string;
  readonly child: ChildProcess;
  readonly dir: string;
  stop(): Promise<void>;
}

function alive(c: ChildProcess): () => boolean {
  return () => c.exitCode === null && c.signalCode === null;
}

export function makeWorkDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'aj-bench-'));
  outsideDirs.add(dir);
  return dir;
}

/**
 * FERRETDB_BIN, then <repo>/.tools/bin/ferretdb, then PATH: the first whose `--version` works (a `go install`
 * build without build/version/version.txt panics at start).
 */
export function ferretDbBinary(): string {
  const onPath = (process.env.PATH ?? '').split(':').map((d) => join(d, 'ferretdb'));
  const candidates = [process.env.FERRETDB_BIN, join(REPO_ROOT, '.tools', 'bin', 'ferretdb'), ...onPath].filter(
    (c): c is string => c !== undefined && c !== '' && existsSync(c),
  );
  const problems: string[] = [];
  for (const c of candidates) {
    const res = spawnSync(c, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    if (res.status === 0) return c;
    problems.push(
      `${c}: --version exited ${res.status ?? res.signal}: ${(res.stderr || res.stdout).split('\n')[0] ?? ''}`,
    );
  }
  throw new Error(
    `FerretDB: got ${problems.length === 0 ? 'no candidate' : problems.join('; ')}, expected a working binary (set FERRETDB_BIN)`,
  );
}

/** The database behind the MongoDB wire protocol: FerretDB on SQLite or on PostgreSQL, or a MongoDB of the user's. */
export type DbBackend =
  | { readonly kind: 'sqlite' }
  /** `mirrorIndexes`: give FerretDB's pushed-down equality filters indexes they can use (lib/ferretdb-pg-indexes.sql). */
  | { readonly kind: 'postgresql'; readonly mirrorIndexes: boolean }
  | { readonly kind: 'external'; readonly url: string };

/** A MongoDB-wire endpoint (no database in the URL) and what it is, for the report. */
export interface MongoEndpoint {
  readonly url: string;
  readonly label: string;
  /** Root process ids of the servers behind it, by name (for CPU accounting); none for an external MongoDB. */
  readonly pids: Readonly<Record<string, readonly number[]>>;
  stop(): Promise<void>;
}

/**
 * `url` with its database path replaced by `db`, keeping credentials, hosts and options
 * (`mongodb://u:p@h1,h2/admin?authSource=admin` → `mongodb://u:p@h1,h2/<db>?authSource=admin`).
 */
export function withDatabase(url: string, db: string): string {
  const m = /^(mongodb(?:\+srv)?:\/\/)([^/?]*)(\/[^?]*)?(\?.*)?$/.exec(url);
  if (m === null)
    throw new Error(
      `MongoDB URL: got ${JSON.stringify(redactMongoUrl(url))}, expected mongodb://[user:pass@]host[:port][/db][?options]`,
    );
  return `${m[1]}${m[2]}/${encodeURIComponent(db)}${m[4] ?? ''}`;
}

/** The URL with any password replaced, for logs and reports. */
export function redactMongoUrl(url: string): string {
  return url.replace(/^(mongodb(?:\+srv)?:\/\/[^:/@]+:)[^@]*@/, '$1***@');
}

export interface SystemUser {
  readonly uid: number;
  readonly gid: number;
}

/** Newest `/usr/lib/postgresql/<major>/bin` with a `postgres` server binary (Debian's postgresql package). */
export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const majors = readdirSync(root)
    .filter((d) => /^\d+$/.test(d) && existsSync(join(root, d, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a));
  return majors[0] === undefined ? undefined : join(root, majors[0], 'bin');
}

/** PostgreSQL refuses to run as root: as root, run it as Debian's `postgres` system user. */
function postgresUser(): SystemUser | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string): number => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    throw new Error(
      'PostgreSQL: running as root and there is no `postgres` user to run the server as (install postgresql)',
    );
  }
}

/**
 * A throwaway PostgreSQL cluster on 127.0.0.1 for FerretDB's postgresql backend: trust auth on loopback only,
 * unix socket in its own directory, `synchronous_commit=off` (the WAL is flushed every 200 ms, not per commit:
 * the same durability window as MongoDB's default journal commit interval for w:1 writes without j:true).
 */
export async function startPostgres(base: string, mirrorIndexes: boolean): Promise<Running & { port: number }> {
  const bin = postgresBinDir();
  if (bin === undefined)
    throw new Error(
      "PostgreSQL: got no /usr/lib/postgresql/<major>/bin/postgres, expected Debian's postgresql package (scripts/bootstrap.sh bench installs it)",
    );
  const user = postgresUser();
  // The run's temp base is private to the caller; the server's user needs a directory of its own.
  const dir = user === undefined ? join(base, 'postgresql') : mkdtempSync(join(tmpdir(), 'aj-bench-pg-'));
  mkdirSync(dir, { recursive: true });
  if (user !== undefined) {
    outsideDirs.add(dir);
    chownSync(dir, user.uid, user.gid);
  }
  const data = join(dir, 'data');
  const init = spawnSync(
    join(bin, 'initdb'),
    ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync'],
    {
      encoding: 'utf8',
      timeout: 120_000,
      cwd: dir,
      ...(user !== undefined ? { uid: user.uid, gid: user.gid } : {}),
    },
  );
  if (init.status !== 0)
    throw new Error(`PostgreSQL initdb exited ${init.status ?? init.signal}: ${init.stderr || init.stdout}`);
  const port = await freePort();
  const child = launch(
    join(bin, 'postgres'),
    [
      '-D',
      data,
      '-p',
      String(port),
      '-k',
      dir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'synchronous_commit=off',
      '-c',
      'shared_buffers=512MB',
      '-c',
      'max_connections=300',
      // FerretDB binds the key of every pushed-down filter as a parameter; see lib/ferretdb-pg-indexes.sql.
      ...(mirrorIndexes ? ['-c', 'plan_cache_mode=force_custom_plan'] : []),
    ],
    { cwd: dir, logFile: join(base, 'postgresql.log'), ...(user !== undefined ? { user } : {}) },
  );
  await waitForTcp(port, 60_000, alive(child));
  // The port may accept before the server takes connections: up to 3 tries, a second apart.
  const createDb = (): ReturnType<typeof spawnSync> =>
    spawnSync(join(bin, 'createdb'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'ferretdb'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
  let create = createDb();
  for (let attempt = 2; create.status !== 0 && attempt <= 3; attempt++) {
    await sleep(1000);
    create = createDb();
  }
  if (create.status !== 0)
    throw new Error(`PostgreSQL createdb exited ${create.status ?? create.signal}: ${String(create.stderr)}`);
  if (mirrorIndexes) {
    const sql = join(BENCH_ROOT, 'lib', 'ferretdb-pg-indexes.sql');
    const install = spawnSync(
      join(bin, 'psql'),
      [
        '-h',
        '127.0.0.1',
        '-p',
        String(port),
        '-U',
        'postgres',
        '-d',
        'ferretdb',
        '-q',
        '-v',
        'ON_ERROR_STOP=1',
        '-f',
        sql,
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    if (install.status !== 0)
      throw new Error(`PostgreSQL: installing ${sql} exited ${install.status ?? install.signal}: ${install.stderr}`);
  }
  return {
    // With FerretDB's default pgx pool (max(4, CPUs) connections) a consumer with PREFETCH=100 hung for good with
    // 100 unacked messages and FerretDB idle (seen 2026-11-22; FerretDB's cause not traced). A pool larger than
    // any concurrency the bench reaches made every run complete.
    url: `postgres://postgres@127.0.0.1:${port}/ferretdb?pool_max_conns=250`,
    port,
    child,
    dir,
    stop: async () => {
      await stopChild(child, 20_000);
      if (user !== undefined) {
        removeDir(dir);
        outsideDirs.delete(dir);
      }
    },
  };
}

/** FerretDB on the given backend, or the user's own MongoDB (`external`), as a {@link MongoEndpoint}. */
export async function startMongo(base: string, backend: DbBackend): Promise<MongoEndpoint> {
  if (backend.kind === 'external') {
    withDatabase(backend.url, 'check'); // fails early on a URL the services could not use either
    return {
      url: backend.url,
      label: `external MongoDB at ${redactMongoUrl(backend.url)}`,
      pids: {},
      stop: () => Promise.resolve(),
    };
  }
  const version = ferretVersion();
  if (backend.kind === 'sqlite') {
    const ferret = await startFerretDb(base, ['--handler=sqlite', `--sqlite-url=file:${join(base, 'ferretdb')}/`]);
    return {
      url: ferret.url,
      label: `FerretDB ${version} on SQLite`,
      pids: { ferretdb: pidsOf(ferret) },
      stop: () => ferret.stop(),
    };
  }
  const pg = await startPostgres(base, backend.mirrorIndexes);
  const pgVersion = spawnSync(join(postgresBinDir() ?? '', 'postgres'), ['--version'], { encoding: 'utf8' })
    .stdout.trim()
    .replace(/^postgres \(PostgreSQL\) /, '');
  const ferret = await startFerretDb(base, ['--handler=postgresql', `--postgresql-url=${pg.url}`]);
  return {
    url: ferret.url,
    label: `FerretDB ${version} on PostgreSQL ${pgVersion}${backend.mirrorIndexes ? ' (GIN indexes for pushdown)' : ' (as shipped)'}`,
    pids: { ferretdb: pidsOf(ferret), postgresql: pidsOf(pg) },
    stop: async () => {
      await ferret.stop();
      await pg.stop();
    },
  };
}

export function pidsOf(r: Running): number[] {
  return r.child.pid === undefined ? [] : [r.child.pid];
}

function ferretVersion(): string {
  const out = spawnSync(ferretDbBinary(), ['--version'], { encoding: 'utf8', timeout: 10_000 }).stdout;
  return /version:\s*(\S+)/.exec(out)?.[1] ?? 'unknown';
}

async function startFerretDb(base: string, backendArgs: readonly string[]): Promise<Running> {
  const dir = join(base, 'ferretdb');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const child = launch(
    ferretDbBinary(),
    [
      ...backendArgs,
      `--state-dir=${dir}`,
      `--listen-addr=127.0.0.1:${port}`,
      '--debug-addr=-',
      '--telemetry=disable',
      '--log-level=warn',
    ],
    { logFile: join(base, 'ferretdb.log') },
  );
  await waitForTcp(port, 20_000, alive(child));
  return { url: `mongodb://127.0.0.1:${port}`, child, dir, stop: () => stopChild(child) };
}

/**
 * Debian's /usr/sbin/rabbitmq-server, run as root, switches to the rabbitmq user (which cannot write our temp
 * dirs); the real script next to the wrapper runs as the caller.
 */
function rabbitBinary(): string {
  const found = existsSync('/usr/sbin/rabbitmq-server') ? '/usr/sbin/rabbitmq-server' : 'rabbitmq-server';
  if (!existsSync(found)) return found;
  const real = realpathSync(found);
  if (basename(real) === 'rabbitmq-script-wrapper') {
    const direct = join(dirname(real), 'rabbitmq-server');
    if (existsSync(direct)) return direct;
  }
  return found;
}

export async function startRabbitMq(base: string): Promise<Running> {
  const dir = join(base, 'rabbitmq');
  for (const sub of ['', 'mnesia', 'log']) mkdirSync(join(dir, sub), { recursive: true });
  const port = await freePort();
  const distPort = await freePort();
  writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
  writeFileSync(join(dir, 'advanced.config'), '[].\n');
  writeFileSync(
    join(dir, 'rabbitmq.conf'),
    [
      `listeners.tcp.default = 127.0.0.1:${port}`,
      'loopback_users = none',
      'log.console = false',
      'log.file.level = warning',
      '',
    ].join('\n'),
  );
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: dir,
    RABBITMQ_NODENAME: `aj-bench-${port}@localhost`,
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    ERL_EPMD_ADDRESS: '127.0.0.1',
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq'),
    RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, 'advanced.config'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_PLUGINS_EXPAND_DIR: join(dir, 'plugins-expand'),
  };
  const child = launch(rabbitBinary(), [], { env, cwd: dir, logFile: join(base, 'rabbitmq.log') });
  await waitForTcp(port, 60_000, alive(child));
  // The listener opens slightly before the broker accepts connections.
  await sleep(500);
  return { url: `amqp://guest:guest@127.0.0.1:${port}/%2F`, child, dir, stop: () => stopChild(child, 20_000) };
}

/** Redis for BullMQ: no persistence, so it measures the same in-memory path BullMQ users usually run. */
export async function startRedis(base: string): Promise<Running & { port: number }> {
  const dir = join(base, 'redis');
  mkdirSync(dir);
  const port = await freePort();
  const child = launch(
    'redis-server',
    [
      '--bind',
      '127.0.0.1',
      '--port',
      String(port),
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--protected-mode',
      'yes',
      '--maxmemory-policy',
      'noeviction',
    ],
    { logFile: join(base, 'redis.log') },
  );
  await waitForTcp(port, 10_000, alive(child));
  return { url: `redis://127.0.0.1:${port}`, port, child, dir, stop: () => stopChild(child) };
}

export interface ServiceProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  readonly url: string;
  /** Where its /metrics is: the producer serves it on a port of its own (METRICS_PORT), the consumer on `url`. */
  readonly metricsUrl: string;
  stop(): Promise<void>;
}

/** Memory limit per service kind, MiB (see {@link setServiceMemoryLimits}). */
const serviceMemoryLimits: { producer?: number; consumer?: number } = {};

/**
 * From now on, run each service kind in a memory cgroup of its own with this limit (lib/cgroup.ts); a kind left
 * out runs without one.
 */
export function setServiceMemoryLimits(limits: { readonly producer?: number; readonly consumer?: number }): void {
  Object.assign(serviceMemoryLimits, limits);
}

/**
 * Runs a built service (`services/dist/<kind>/main.js`), in a memory cgroup when a limit is set for its kind.
 * LOG_LEVEL=warn: one log line per request and per job at info would measure pino writing to a pipe more than the
 * service.
 */
function withoutAuthDisabledIfKeys(env: Record<string, string>): Record<string, string> {
  if (env.API_KEYS_FILE === undefined) return env;
  return Object.fromEntries(Object.entries(env).filter(([name]) => name !== 'AUTH_DISABLED'));
}

export async function startService(
  kind: 'producer' | 'consumer',
  base: string,
  env: Record<string, string>,
  nodeArgs: readonly string[] = [],
): Promise<ServiceProcess> {
  const port = await freePort();
  const metricsPort = kind === 'producer' ? await freePort() : port;
  const entry = join(REPO_ROOT, 'services', 'dist', kind, 'main.js');
  if (!existsSync(entry)) throw new Error(`${entry}: not found; run \`cd services && npm run build\` first`);
  const limit = serviceMemoryLimits[kind];
  const cgroup: MemoryCgroup | undefined = limit === undefined ? undefined : createMemoryCgroup(limit);
  const run = cgroup?.wrap(process.execPath, [...nodeArgs, entry]) ?? {
    command: process.execPath,
    args: [...nodeArgs, entry],
  };
  const child = launch(run.command, run.args, {
    env: withoutAuthDisabledIfKeys({
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? base,
      LOG_LEVEL: 'warn',
      HOST: '127.0.0.1',
      PORT: String(port),
      // The producer's own defaults are for deployments; a part that measures authentication passes
      // API_KEYS_FILE and its limits, and AUTH_DISABLED is dropped then.
      ...(kind === 'producer'
        ? { METRICS_PORT: String(metricsPort), AUTH_DISABLED: 'true', RATE_LIMIT_PER_SECOND: '0' }
        : {}),
      ...env,
    }),
    cwd: base,
    logFile: join(base, `${kind}-${port}.log`),
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${url}/readyz`, 60_000, alive(child));
  } catch (err) {
    await stopChild(child, 5000);
    cgroup?.remove();
    throw err;
  }
  return {
    child,
    pid: child.pid ?? -1,
    port,
    url,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    stop: async () => {
      await stopChild(child, 30_000);
      cgroup?.remove();
    },
  };
}

/** Resident set size and its high-water mark in MiB, from /proc/<pid>/status. */
export function readMemory(pid: number): { rssMiB: number; hwmMiB: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (key: string): number =>
      Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
    return { rssMiB: kib('VmRSS') / 1024, hwmMiB: kib('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

/** What {@link sampleMemory} saw: the peak of VmHWM and sampled VmRSS, and every VmRSS sample in order. */
export interface MemorySamples {
  readonly peakMiB: number;
  readonly rssMiB: readonly number[];
}

/** Samples a process's memory every `intervalMs` until `stop()`. */
export function sampleMemory(pid: number, intervalMs = 250): { stop(): MemorySamples } {
  let peak = 0;
  const rss: number[] = [];
  const take = (): void => {
    const m = readMemory(pid);
    if (m === undefined) return;
    rss.push(m.rssMiB);
    peak = Math.max(peak, m.rssMiB, Number.isNaN(m.hwmMiB) ? 0 : m.hwmMiB);
  };
  take();
  const timer = setInterval(take, intervalMs);
  return {
    stop: () => {
      take();
      clearInterval(timer);
      return { peakMiB: peak, rssMiB: rss };
    },
  };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
