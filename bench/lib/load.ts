import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import autocannon from 'autocannon';
import type { WorkerReport } from '../workers.js';
import { BENCH_ROOT, sleep } from './servers.js';

export interface HttpLoad {
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly ok: number;
  readonly errors: number;
}

/** `POST /v1/jobs {"type":"noop","input":{}}` with a unique Idempotency-Key per request (autocannon's `[<id>]`). */
export async function postJobs(
  url: string,
  options: {
    connections: number;
    durationS?: number;
    amount?: number;
    overallRate?: number;
    keyPrefix: string;
    /** Bearer token sent with every request. @default none (a producer with AUTH_DISABLED=true) */
    token?: string;
  },
): Promise<HttpLoad> {
  const result = await autocannon({
    url: `${url}/v1/jobs`,
    method: 'POST',
    connections: options.connections,
    ...(options.amount !== undefined ? { amount: options.amount } : { duration: options.durationS ?? 10 }),
    ...(options.overallRate !== undefined ? { overallRate: options.overallRate } : {}),
    headers: {
      'content-type': 'application/json',
      'idempotency-key': `${options.keyPrefix}-[<id>]`,
      ...(options.token !== undefined ? { authorization: `Bearer ${options.token}` } : {}),
    },
    body: JSON.stringify({ type: 'noop', input: {} }),
    idReplacement: true,
    timeout: 30,
  });
  const ok = result['2xx'];
  return {
    rps: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    ok,
    errors: result.errors + result.timeouts + result.non2xx,
  };
}

/** Saturation GETs of `path` (autocannon), optionally with a bearer token. */
export async function getLoad(
  url: string,
  path: string,
  options: { connections: number; durationS: number; token?: string },
): Promise<HttpLoad> {
  const result = await autocannon({
    url: `${url}${path}`,
    method: 'GET',
    connections: options.connections,
    duration: options.durationS,
    headers: options.token !== undefined ? { authorization: `Bearer ${options.token}` } : {},
    timeout: 30,
  });
  return {
    rps: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    ok: result['2xx'],
    errors: result.errors + result.timeouts + result.non2xx,
  };
}

/**
 * How long a scrape of a service's /metrics may take: the producer's `jobs{status}` gauge counts the whole
 * collection at scrape time, which FerretDB does by reading every document (seconds after the accept part).
 */
const SCRAPE_TIMEOUT_MS = 60_000;

/** Sum of a Prometheus counter's samples whose labels contain every `labels` pair. */
export async function scrapeCounter(metricsUrl: string, name: string, labels: Record<string, string>): Promise<number> {
  const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) });
  const text = await res.text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** Histogram mean in ms from `<name>_sum` / `<name>_count` (seconds), over samples matching `labels`. */
export async function scrapeHistogramMeanMs(
  metricsUrl: string,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  const sum = await scrapeCounter(metricsUrl, `${name}_sum`, labels);
  const count = await scrapeCounter(metricsUrl, `${name}_count`, labels);
  return count === 0 ? Number.NaN : (sum / count) * 1000;
}

/** Waits until `read()` reaches `target`, polling; throws after `timeoutMs`. Returns Date.now() when reached. */
export async function waitForCount(
  read: () => Promise<number>,
  target: number,
  timeoutMs: number,
  pollMs = 200,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = 0;
  while (Date.now() < deadline) {
    last = await read();
    if (last >= target) return Date.now();
    await sleep(pollMs);
  }
  throw new Error(`waited ${timeoutMs} ms: got ${last}, expected ${target}`);
}

/**
 * Runs `send(i)` for i = 0..count-1 at `ratePerSecond`, without waiting for one send to finish before the
 * next is due (an open-loop load, like autocannon's overallRate). Resolves when every send settled.
 */
export async function paced(count: number, ratePerSecond: number, send: (i: number) => Promise<void>): Promise<void> {
  const started = Date.now();
  const pending: Promise<void>[] = [];
  let i = 0;
  while (i < count) {
    const due = Math.min(count, Math.floor(((Date.now() - started) / 1000) * ratePerSecond) + 1);
    while (i < due) pending.push(send(i++));
    await sleep(2);
  }
  await Promise.all(pending);
}

/** Runs `send(i)` for i = 0..count-1 with at most `concurrency` in flight (a closed-loop load at saturation). */
export async function closedLoop(
  count: number,
  concurrency: number,
  send: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) await send(next++);
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
}

/** A baseline consumer child process (bench/build/workers.js). */
export class WorkerChild {
  private constructor(private readonly child: ChildProcess) {}

  static async start(args: readonly string[], logFile: string): Promise<WorkerChild> {
    const { createWriteStream } = await import('node:fs');
    const out = createWriteStream(logFile, { flags: 'a' });
    const child = fork(join(BENCH_ROOT, 'build', 'workers.js'), [...args], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`workers.js ${args.join(' ')}: not ready in 30 s (see ${logFile})`)),
        30_000,
      );
      child.once('exit', (code) => reject(new Error(`workers.js ${args.join(' ')}: exited ${code} (see ${logFile})`)));
      child.on('message', (m: { op: string }) => {
        if (m.op === 'ready') {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    return new WorkerChild(child);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  private ask<T>(op: 'reset' | 'report', answer: string, pick: (m: Record<string, unknown>) => T): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`workers.js: no answer to ${op}`)), 10_000);
      const onMessage = (m: Record<string, unknown>): void => {
        if (m.op !== answer) return;
        clearTimeout(timer);
        this.child.off('message', onMessage);
        resolve(pick(m));
      };
      this.child.on('message', onMessage);
      this.child.send({ op });
    });
  }

  reset(): Promise<void> {
    return this.ask('reset', 'reset-done', () => undefined);
  }

  report(): Promise<WorkerReport> {
    return this.ask('report', 'report', (m) => m.report as WorkerReport);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}
