/**
 * Runs host commands for the e2e: every call is bounded by a timeout, and its output is kept for the report.
 */
import { spawn } from 'node:child_process';

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly input?: string | Buffer;
  /** Kills the command after this long. @default 120000 */
  readonly timeoutMs?: number;
  /** Streams the command's output to our stderr as it runs (long builds). @default false */
  readonly echo?: boolean;
}

/** The legacy builder colours npm's stderr with ANSI escapes. */
const ANSI_COLOUR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');

export class CommandError extends Error {
  override name = 'CommandError';
  readonly result: RunResult;
  constructor(command: string, result: RunResult) {
    const lines = `${result.stdout}\n${result.stderr}`
      .replace(ANSI_COLOUR, '')
      .split('\n')
      .filter((l) => l.trim() !== '');
    // The first error lines say why (npm prints its usage after them); the last lines say where it stopped.
    const why = [...new Set(lines.filter((l) => /error|fatal|denied|not found|no such/i.test(l)))].slice(0, 6);
    const tail = lines.slice(-4).filter((l) => !why.includes(l));
    super(
      `\`${command}\` exited with ${result.code}:\n${[...why, ...(why.length > 0 ? ['…'] : []), ...tail].join('\n')}`,
    );
    this.result = result;
  }
}

export function describe(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

/** Runs a command; resolves with its exit code and output (never rejects on a non-zero exit). */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (d: Buffer) => {
      out.push(d);
      if (opts.echo === true) process.stderr.write(d);
    });
    child.stderr?.on('data', (d: Buffer) => {
      err.push(d);
      if (opts.echo === true) process.stderr.write(d);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${describe(cmd, args)}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? (signal === null ? 1 : 128 + 9),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    if (opts.input !== undefined && child.stdin !== null) child.stdin.end(opts.input);
  });
}

/** Runs a command and returns its stdout; throws a CommandError naming the command on a non-zero exit. */
export async function check(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const result = await run(cmd, args, opts);
  if (result.code !== 0) throw new CommandError(describe(cmd, args), result);
  return result.stdout;
}

/** `docker …` with the output trimmed. */
export async function docker(args: readonly string[], opts: RunOptions = {}): Promise<string> {
  return (await check('docker', args, opts)).trim();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `probe` until it returns a value other than undefined, or throws after `timeoutMs` with `what`. */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
  everyMs = 1000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const why = last instanceof Error ? `: ${last.message}` : '';
      throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${why}`);
    }
    await sleep(everyMs);
  }
}
