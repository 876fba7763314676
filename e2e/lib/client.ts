/**
 * The smoke client: submits jobs to the producer API on the host, reads them back, and keeps the tally a fault
 * report needs. Every loop is bounded by count and time.
 * @see services/src/producer/app.ts for the API (POST /v1/jobs with Idempotency-Key, GET /v1/jobs/:id)
 */
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { sleep } from './exec.ts';

export type JobStatus = 'queued' | 'running' | 'retrying' | 'succeeded' | 'failed';

export interface JobView {
  readonly id: string;
  readonly type: string;
  readonly status: JobStatus;
  readonly attempts: number;
  readonly result: unknown;
}

export interface JobRequest {
  readonly type: string;
  readonly input: Readonly<Record<string, number>>;
}

export interface SubmitResult {
  readonly status: number;
  readonly retryAfter?: string;
  readonly job?: JobView;
  readonly error?: string;
}

function factorial(n: number): string {
  let acc = 1n;
  for (let i = 2n; i <= BigInt(n); i++) acc *= i;
  return acc.toString(10);
}

/** The result a correct run of `req` produces (the handlers are pure functions of their input). */
export function expectedResult(req: JobRequest): unknown {
  switch (req.type) {
    case 'factorial':
      return factorial(req.input.n ?? 0);
    case 'sqrt':
      return Math.sqrt(req.input.x ?? 0);
    case 'sleep':
      return { sleptMs: req.input.ms ?? 0 };
    default:
      throw new Error(`job type ${req.type}: no expected result known to the e2e client`);
  }
}

function isJobView(value: unknown): value is JobView {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { id?: unknown }).id === 'string' &&
    typeof (value as { status?: unknown }).status === 'string'
  );
}

/** The API client the e2e authenticates as (its line in the api-keys secret file; see {@link ensureApiClient}). */
export const E2E_CLIENT_ID = 'e2e';

/**
 * Puts the e2e's client into an API keys file (`<id> <scopes> <sha256 of the token>`), replacing an earlier e2e
 * line and keeping every other client, so a file made by `npm run secrets` keeps its admin. The token is fresh
 * per run and only its hash is written. Returns true when the file changed.
 */
export function ensureApiClient(path: string, token: string): boolean {
  const before = existsSync(path) ? readFileSync(path, 'utf8') : '';
  const kept = before.split('\n').filter((l) => l.trim() !== '' && !l.startsWith(`${E2E_CLIENT_ID} `));
  const hash = createHash('sha256').update(token, 'utf8').digest('hex');
  const after = [...kept, `${E2E_CLIENT_ID} jobs:submit,jobs:read ${hash}`].join('\n') + '\n';
  if (after === before) return false;
  writeFileSync(path, after, { mode: 0o644 });
  return true;
}

export class JobsClient {
  readonly baseUrl: string;
  private readonly auth: Record<string, string>;
  /** `token`: the bearer token sent on every /v1 request (the producer answers 401 without one). */
  constructor(baseUrl: string, token?: string) {
    this.baseUrl = baseUrl;
    this.auth = token === undefined ? {} : { authorization: `Bearer ${token}` };
  }

  /** The same API without a token: what a client that is not ours gets. */
  anonymous(): JobsClient {
    return new JobsClient(this.baseUrl);
  }

  async submit(key: string, req: JobRequest, timeoutMs = 5000): Promise<SubmitResult> {
    try {
      const res = await fetch(`${this.baseUrl}/v1/jobs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': key, ...this.auth },
        body: JSON.stringify(req),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const body: unknown = await res.json().catch(() => undefined);
      const retryAfter = res.headers.get('retry-after');
      return {
        status: res.status,
        ...(retryAfter === null ? {} : { retryAfter }),
        ...(isJobView(body) ? { job: body } : {}),
      };
    } catch (e) {
      return { status: 0, error: e instanceof Error ? e.message : String(e) };
    }
  }

  async get(id: string, timeoutMs = 5000): Promise<JobView | 'not-found' | undefined> {
    try {
      let res = await fetch(`${this.baseUrl}/v1/jobs/${id}`, {
        headers: this.auth,
        signal: AbortSignal.timeout(timeoutMs),
      });
      // The producer's per-client rate limit: settling many jobs reads faster than it allows. Wait as asked
      // (capped), a bounded number of times.
      for (let i = 0; i < 5 && res.status === 429; i++) {
        await sleep(Math.min(Number(res.headers.get('retry-after') ?? '1') || 1, 2) * 1000);
        res = await fetch(`${this.baseUrl}/v1/jobs/${id}`, {
          headers: this.auth,
          signal: AbortSignal.timeout(timeoutMs),
        });
      }
      if (res.status === 404) return 'not-found';
      if (res.status !== 200) return undefined;
      const body: unknown = await res.json();
      return isJobView(body) ? body : undefined;
    } catch {
      return undefined;
    }
  }

  async ready(): Promise<boolean> {
    try {
      return (await fetch(`${this.baseUrl}/readyz`, { signal: AbortSignal.timeout(3000) })).status === 200;
    } catch {
      return false;
    }
  }
}

/** One logical job of a load run: one Idempotency-Key, submitted until the API accepts it. */
export interface Submission {
  readonly key: string;
  readonly request: JobRequest;
  /** Every distinct job id the API answered for this key (more than one is a duplicate). */
  readonly ids: Set<string>;
  accepted: boolean;
  tries: number;
  final?: JobView | 'not-found';
}

export interface LoadStats {
  readonly submissions: Submission[];
  /** Answers by HTTP status (0 = no answer: connection refused, reset or timed out). */
  readonly statuses: Map<number, number>;
  /** Retry-After values seen on 503 answers. */
  readonly retryAfter: Set<string>;
}

export interface LoadOptions {
  readonly label: string;
  readonly ratePerSecond: number;
  readonly maxJobs: number;
  readonly maxDurationMs: number;
  /** How long one job keeps being resubmitted (same key) before it counts as not accepted. */
  readonly perJobDeadlineMs: number;
  readonly mix: (i: number) => JobRequest;
}

/** Steady load: starts `ratePerSecond` jobs a second until stopped, `maxJobs`, or `maxDurationMs`. */
export class LoadRun {
  readonly stats: LoadStats = { submissions: [], statuses: new Map(), retryAfter: new Set() };
  private stopped = false;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly loop: Promise<void>;
  private readonly client: JobsClient;
  private readonly opts: LoadOptions;

  constructor(client: JobsClient, opts: LoadOptions) {
    this.client = client;
    this.opts = opts;
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    const started = Date.now();
    const gapMs = 1000 / this.opts.ratePerSecond;
    for (let i = 0; i < this.opts.maxJobs && !this.stopped && Date.now() - started < this.opts.maxDurationMs; i++) {
      const sub: Submission = {
        key: `${this.opts.label}-${i}-${randomUUID()}`,
        request: this.opts.mix(i),
        ids: new Set(),
        accepted: false,
        tries: 0,
      };
      this.stats.submissions.push(sub);
      const p = this.submitUntilAccepted(sub).finally(() => this.inFlight.delete(p));
      this.inFlight.add(p);
      await sleep(gapMs);
    }
  }

  private async submitUntilAccepted(sub: Submission): Promise<void> {
    const deadline = Date.now() + this.opts.perJobDeadlineMs;
    while (Date.now() < deadline) {
      sub.tries++;
      const r = await this.client.submit(sub.key, sub.request);
      this.stats.statuses.set(r.status, (this.stats.statuses.get(r.status) ?? 0) + 1);
      if (r.status === 503 && r.retryAfter !== undefined) this.stats.retryAfter.add(r.retryAfter);
      if ((r.status === 200 || r.status === 202) && r.job !== undefined) {
        sub.ids.add(r.job.id);
        sub.accepted = true;
        return;
      }
      if (r.status >= 400 && r.status < 500 && r.status !== 429) return;
      // 503 and 429 ask for Retry-After seconds; capped so a bounded run keeps moving.
      const waitS = Math.min(Number(r.retryAfter ?? '1') || 1, 2);
      await sleep(waitS * 1000);
    }
  }

  /** Waits for the run to start all its jobs (count or time bound) and for every submission to settle. */
  async finish(): Promise<LoadStats> {
    await this.loop;
    await Promise.all([...this.inFlight]);
    return this.stats;
  }

  /** Stops starting jobs and waits for every submission to be accepted or give up. */
  async stop(): Promise<LoadStats> {
    this.stopped = true;
    await this.loop;
    await Promise.all([...this.inFlight]);
    return this.stats;
  }

  /** Resubmits every accepted key once more: the API must answer with the same job (idempotency). */
  async resubmitAll(): Promise<void> {
    for (const sub of this.stats.submissions.filter((s) => s.accepted)) {
      const r = await this.client.submit(sub.key, sub.request);
      if (r.job !== undefined) sub.ids.add(r.job.id);
    }
  }
}

export interface Tally {
  readonly submitted: number;
  readonly accepted: number;
  readonly succeeded: number;
  readonly wrongResult: number;
  readonly failed: number;
  readonly duplicated: number;
  readonly lost: number;
  readonly notAccepted: number;
}

/** Reads every accepted job until it is finished or `timeoutMs` passes; then counts. */
export async function settle(client: JobsClient, subs: readonly Submission[], timeoutMs: number): Promise<Tally> {
  const deadline = Date.now() + timeoutMs;
  let pending = subs.filter((s) => s.accepted);
  while (pending.length > 0 && Date.now() < deadline) {
    const next: Submission[] = [];
    for (const sub of pending) {
      const id = [...sub.ids][0] as string;
      const job = await client.get(id);
      if (job !== undefined) sub.final = job;
      if (
        job === undefined ||
        (job !== 'not-found' && (job.status === 'queued' || job.status === 'running' || job.status === 'retrying'))
      )
        next.push(sub);
    }
    pending = next;
    if (pending.length > 0) await sleep(1000);
  }
  let succeeded = 0;
  let wrongResult = 0;
  let failed = 0;
  let lost = 0;
  for (const sub of subs.filter((s) => s.accepted)) {
    const job = sub.final;
    if (
      job === undefined ||
      job === 'not-found' ||
      job.status === 'queued' ||
      job.status === 'running' ||
      job.status === 'retrying'
    )
      lost++;
    else if (job.status === 'failed') failed++;
    else if (JSON.stringify(job.result) === JSON.stringify(expectedResult(sub.request))) succeeded++;
    else wrongResult++;
  }
  return {
    submitted: subs.length,
    accepted: subs.filter((s) => s.accepted).length,
    succeeded,
    wrongResult,
    failed,
    duplicated: subs.filter((s) => s.ids.size > 1).length,
    lost,
    notAccepted: subs.filter((s) => !s.accepted).length,
  };
}

/** The default mix: mostly quick jobs with correct-result checks, some sleeps so faults land mid-job. */
export function defaultMix(i: number): JobRequest {
  switch (i % 4) {
    case 0:
      return { type: 'factorial', input: { n: 10 + (i % 40) } };
    case 1:
      return { type: 'sqrt', input: { x: i } };
    case 2:
      return { type: 'sleep', input: { ms: 300 + (i % 5) * 200 } };
    default:
      return { type: 'factorial', input: { n: 20 } };
  }
}
