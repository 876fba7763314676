import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  accessSync,
  constants,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, delimiter, dirname, join, resolve } from 'node:path';

/**
 * Starts real servers for integration tests: RabbitMQ (Debian's rabbitmq-server) and FerretDB (MongoDB wire
 * protocol over SQLite), each on 127.0.0.1 with free ports and its own temp data dir. Each server runs in its
 * own process group, so stop() signals exactly the processes this helper started.
 */

export const REPO_ROOT = resolve(__dirname, '..', '..', '..');

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

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return undefined;
}

export interface BinaryLookup {
  readonly path?: string;
  readonly problems: string[];
}

/** FERRETDB_BIN, then <repo>/.tools/bin/ferretdb, then PATH; the first one whose `--version` works. */
export function findFerretDb(): BinaryLookup {
  const candidates = [
    process.env.FERRETDB_BIN,
    join(REPO_ROOT, '.tools', 'bin', 'ferretdb'),
    onPath('ferretdb'),
  ].filter((c): c is string => c !== undefined && c !== '');
  const problems: string[] = [];
  for (const c of candidates) {
    if (!existsSync(c)) {
      problems.push(`${c}: not found`);
      continue;
    }
    const res = spawnSync(c, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    if (res.status === 0) return { path: c, problems };
    // A `go install` build without build/version/version.txt panics at start; say so.
    problems.push(
      `${c}: \`--version\` exited ${res.status ?? res.signal}: ${(res.stderr || res.stdout).split('\n')[0] ?? ''}`,
    );
  }
  if (candidates.length === 0) problems.push('no FERRETDB_BIN, no <repo>/.tools/bin/ferretdb, no ferretdb on PATH');
  return { problems };
}

/**
 * rabbitmq-server on PATH or in /usr/sbin. Debian's /usr/sbin entry is a wrapper that, run as root, switches
 * to the rabbitmq user (which cannot write our temp dirs); the real script next to it runs as the caller.
 */
export function findRabbitMq(): BinaryLookup {
  const found =
    onPath('rabbitmq-server') ?? (existsSync('/usr/sbin/rabbitmq-server') ? '/usr/sbin/rabbitmq-server' : undefined);
  if (found === undefined) return { problems: ['rabbitmq-server not on PATH and not in /usr/sbin'] };
  const real = realpathSync(found);
  if (basename(real) === 'rabbitmq-script-wrapper') {
    const direct = join(dirname(real), 'rabbitmq-server');
    if (existsSync(direct)) return { path: direct, problems: [] };
  }
  return { path: found, problems: [] };
}

async function waitForTcp(port: number, timeoutMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error('process exited before it listened');
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
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`nothing listened on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  killGroup(child, 'SIGTERM');
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
  // The shell wrapper may exit before beam; make sure nothing of the group is left.
  killGroup(child, 'SIGKILL');
}

export interface RunningServer {
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

export async function startFerretDb(binary: string, baseDir: string): Promise<RunningServer> {
  const dir = mkdtempSync(join(baseDir, 'ferretdb-'));
  const port = await freePort();
  const log = createWriteStream(join(dir, 'ferretdb.log'));
  const child = spawn(
    binary,
    [
      '--handler=sqlite',
      `--sqlite-url=file:${dir}/`,
      `--state-dir=${dir}`,
      `--listen-addr=127.0.0.1:${port}`,
      '--debug-addr=-',
      '--telemetry=disable',
      '--log-level=warn',
    ],
    { detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  await waitForTcp(port, 20_000, () => child.exitCode === null);
  return {
    url: `mongodb://127.0.0.1:${port}`,
    pid: child.pid ?? -1,
    stop: async () => {
      await stopChild(child, 5000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RabbitNode extends RunningServer {
  readonly port: number;
  /** Stops the node (data kept). */
  halt(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Starts it again with the same data dir, name and port. */
  restart(): Promise<void>;
}

export async function startRabbitMq(binary: string, baseDir: string, startTimeoutMs = 60_000): Promise<RabbitNode> {
  const dir = mkdtempSync(join(baseDir, 'rabbitmq-'));
  const port = await freePort();
  const distPort = await freePort();
  const nodeName = `aj-test-${port}@localhost`;
  for (const sub of ['mnesia', 'log']) mkdirSync(join(dir, sub));
  // Management and every other plugin off: faster start, no extra ports.
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
    RABBITMQ_NODENAME: nodeName,
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
  let child: ChildProcess | undefined;
  const launch = async (): Promise<void> => {
    const out = createWriteStream(join(dir, 'server.out'), { flags: 'a' });
    const c = spawn(binary, [], { env, cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    c.stdout?.pipe(out);
    c.stderr?.pipe(out);
    child = c;
    await waitForTcp(port, startTimeoutMs, () => c.exitCode === null).catch((err: Error) => {
      throw new Error(`rabbitmq-server did not start: ${err.message} (see ${join(dir, 'server.out')})`);
    });
    // The listener opens slightly before the broker accepts connections; give it a moment.
    await new Promise((r) => setTimeout(r, 500));
  };
  await launch();
  const halt = async (signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> => {
    if (child === undefined) return;
    const c = child;
    if (signal === 'SIGKILL') {
      const exited = new Promise<void>((r) => c.once('exit', () => r()));
      killGroup(c, 'SIGKILL');
      await exited;
    } else {
      await stopChild(c, 20_000);
    }
    child = undefined;
  };
  return {
    url: `amqp://guest:guest@127.0.0.1:${port}/%2F`,
    port,
    get pid() {
      return child?.pid ?? -1;
    },
    halt,
    restart: launch,
    stop: async () => {
      await halt('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function makeTempBase(): string {
  return mkdtempSync(join(tmpdir(), 'aj-services-it-'));
}
