/**
 * The Docker engine of the run: Debian's docker.io, started here when no daemon answers and stopped at the end
 * (only the dockerd this run started). Published ports bind to 127.0.0.1 by default (`--ip`), so the Swarm
 * stack's host-mode ports, which name no address, stay on the loopback interface too.
 * @see https://docs.docker.com/reference/cli/dockerd/ (--ip: default IP when binding container ports)
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { check, run, sleep, waitFor } from './exec.ts';

export interface Daemon {
  /** True when this run started dockerd (and so stops it). */
  readonly startedHere: boolean;
  readonly serverVersion: string;
  stop(): Promise<void>;
}

async function onPath(name: string): Promise<boolean> {
  return (await run('sh', ['-c', `command -v ${name}`])).code === 0;
}

async function aptInstall(packages: readonly string[], log: (line: string) => void): Promise<void> {
  log(`installing ${packages.join(', ')} with apt-get`);
  await check('apt-get', ['update', '-qq'], { timeoutMs: 300_000 });
  await check('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], {
    timeoutMs: 600_000,
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

/** Installs the host tools the run needs from Debian when they are missing. */
export async function ensureHostTools(log: (line: string) => void): Promise<void> {
  const missing: string[] = [];
  if (!(await onPath('dockerd'))) missing.push('docker.io');
  if (!(await onPath('debootstrap'))) missing.push('debootstrap');
  if (missing.length > 0) await aptInstall(missing, log);
}

async function serverVersion(): Promise<string | undefined> {
  const r = await run('docker', ['version', '--format', '{{.Server.Version}}'], { timeoutMs: 10_000 });
  return r.code === 0 ? r.stdout.trim() : undefined;
}

export async function ensureDaemon(logDir: string, log: (line: string) => void): Promise<Daemon> {
  const running = await serverVersion();
  if (running !== undefined) {
    log(`using the running Docker engine ${running} (not started here, so not stopped here)`);
    return { startedHere: false, serverVersion: running, stop: () => Promise.resolve() };
  }
  // dockerd leaves its docker0 bridge behind when it stops; remove it then if it was not there before.
  const bridgeBefore = (await run('ip', ['link', 'show', 'docker0'])).code === 0;
  const logFile = join(logDir, 'dockerd.log');
  const fd = openSync(logFile, 'a');
  const child = spawn('dockerd', ['--host', 'unix:///var/run/docker.sock', '--ip', '127.0.0.1'], {
    stdio: ['ignore', fd, fd],
    detached: true,
  });
  closeSync(fd);
  const pid = child.pid;
  if (pid === undefined) throw new Error('dockerd did not start');
  child.unref();
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  log(`started dockerd (pid ${pid}, log ${logFile})`);
  const version = await waitFor('dockerd to answer', 60_000, async () => {
    if (exited) throw new Error(`dockerd exited; see ${logFile}`);
    return serverVersion();
  });
  return {
    startedHere: true,
    serverVersion: version,
    async stop() {
      if (exited) return;
      process.kill(pid, 'SIGTERM');
      for (let i = 0; i < 60 && !exited; i++) await sleep(500);
      if (!exited) {
        log(`dockerd (pid ${pid}) did not stop in 30 s; killing it`);
        process.kill(pid, 'SIGKILL');
      }
      log(`stopped dockerd (pid ${pid})`);
      if (!bridgeBefore && (await run('ip', ['link', 'delete', 'docker0'])).code === 0)
        log('removed the docker0 bridge it created');
    },
  };
}
