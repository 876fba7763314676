import type { SynthResults } from '../synth.js';
import type {
  AcceptResults,
  BacklogResults,
  PipelineResults,
  PrefetchResults,
  ProfileResults,
  Sizes,
} from '../system.js';
import { AUTH_BENCH_CLIENTS } from '../system.js';
import type { ProfileSummary } from './profile.js';
import { fmt, type Summary } from './stats.js';

/** Everything one run measured; written as bench/results/<date>.json and rendered as the BENCHMARKS.md tables. */
export interface Results {
  date: string;
  quick: boolean;
  machine: {
    readonly cpu: string;
    readonly cores: number;
    readonly memoryGiB: number;
    readonly os: string;
    readonly node: string;
    readonly rabbitmq: string;
    /** What served the MongoDB wire protocol, e.g. "FerretDB v1.24.2 on PostgreSQL 15.18". */
    readonly database: string;
    readonly redis: string;
  };
  /** How the producer and consumer processes were limited, e.g. "each in a memory cgroup of 512 MiB …". */
  serviceMemory: string;
  /** The services' group commit bounds, e.g. "services' defaults" or "GROUP_COMMIT_MAX_SIZE=1, …". */
  groupCommit?: string;
  /** `--env` settings given to every service process, e.g. "OUTBOX_SWEEP_INTERVAL_MS=60000". */
  serviceEnv?: string;
  sizes: Sizes;
  parts: readonly string[];
  durationS: number;
  synth?: SynthResults;
  accept?: AcceptResults;
  pipeline?: PipelineResults;
  backlog?: BacklogResults;
  prefetch?: PrefetchResults;
  profiles?: ProfileResults;
}

const verdict = (ok: boolean): string => (ok ? '**met**' : '**missed**');

/** The throughput targets of issue 16, judged in every report (ratios are taken within one run). */
const TARGETS = {
  acceptRatio: 0.1,
  acceptHalfP99Ms: 20,
  pipelineVsBullmq: 0.15,
  roundTripsPerJob: 1,
  /** 3 × the 638 jobs/s one consumer drained 100,000 jobs at on 2026-11-22 (absolute: compare on that machine). */
  backlogJobsPerSecond: 1914,
} as const;
const share = (part: number, whole: number): string =>
  Number.isFinite(part) && whole > 0 ? `${Math.min(100, (part * 100) / whole).toFixed(0)}%` : 'n/a';
const x = (s: Summary): string => `${fmt(s, 2)}×`;

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

function synthSection(s: SynthResults): string {
  const ratioOk = s.ratio.median <= 1.5;
  return [
    '### 1. Synth',
    '',
    table(
      ['Measure', 'Median (min–max)', 'Target'],
      [
        [`\`node build/infra/synth.js\` (targets: ${s.targets.join(', ')}; dev + prod), wall ms`, fmt(s.cliMs, 0), ''],
        [
          `bare cdk8s app, same Kubernetes chart (${s.baselineMode === 'chart' ? "the target's buildChart only" : 'hand-built cdk8s-plus-28 chart'}), wall ms`,
          fmt(s.bareMs, 0),
          '',
        ],
        ['ratio synth / bare chart', x(s.ratio), `≤ 1.5× ${verdict(ratioOk)}`],
      ],
    ),
    '',
    `In-process \`synthesize()\` of \`prod\` (all targets) with n consumer services (\`JobSystem.addConsumer\`), ${s.inProcess[0]?.ms.n ?? 0} repetitions:`,
    '',
    table(
      ['Consumer services', 'ms, median (min–max)', 'vs 1 service'],
      s.inProcess.map((p) => [
        String(p.consumers),
        fmt(p.ms, 1),
        `${(p.ms.median / (s.inProcess[0]?.ms.median ?? 1)).toFixed(2)}×`,
      ]),
    ),
    '',
    `Linear fit over every sample: ${s.fit.slope.toFixed(2)} ms per added service, intercept ${s.fit.intercept.toFixed(1)} ms, R² = ${s.fit.r2.toFixed(3)} ` +
      `(${s.fit.r2 >= 0.95 ? 'linear' : 'not clearly linear'}).`,
  ].join('\n');
}

function acceptSection(a: AcceptResults): string {
  const ratioOk = a.ratio.median >= TARGETS.acceptRatio;
  const p99Ok = a.half.producerP99Ms.median < TARGETS.acceptHalfP99Ms;
  return [
    '### 2. Accept path',
    '',
    `autocannon, ${a.connections} connections, ${a.durationS} s per run; \`POST /v1/jobs {"type":"noop","input":{}}\` with a unique \`Idempotency-Key\` per request.`,
    '',
    table(
      ['Measure', 'Producer (validate, insert, confirmed publish)', 'Constant fastify route', 'Ratio / target'],
      [
        [
          'saturation, requests/s',
          fmt(a.producerRps, 0),
          fmt(a.constantRps, 0),
          `${x(a.ratio)}; target ≥ ${TARGETS.acceptRatio}× ${verdict(ratioOk)}`,
        ],
        [
          'fixed rate (half of own saturation), requests/s',
          String(a.half.producerRate),
          String(a.half.constantRate),
          '',
        ],
        ['p50 at half saturation, ms', fmt(a.half.producerP50Ms, 0), fmt(a.half.constantP50Ms, 0), ''],
        [
          'p99 at half saturation, ms',
          fmt(a.half.producerP99Ms, 0),
          fmt(a.half.constantP99Ms, 0),
          `target < ${TARGETS.acceptHalfP99Ms} ms ${verdict(p99Ok)}`,
        ],
        ['p99 at saturation, ms', fmt(a.producerSatP99Ms, 0), '', ''],
      ],
    ),
    '',
    `Cost of authentication on the accept path (same run, repetitions interleaved; the authenticated producer checks a bearer token against a keys file of ${AUTH_BENCH_CLIENTS} clients in constant time and runs the per-client rate limiter with a limit never reached):`,
    '',
    table(
      ['Measure', 'Without authentication', 'With authentication', 'Ratio'],
      [
        ['saturation, requests/s', fmt(a.producerRps, 0), fmt(a.auth.rps, 0), x(a.auth.ratio)],
        ['p99 at saturation, ms', fmt(a.producerSatP99Ms, 0), fmt(a.auth.satP99Ms, 0), ''],
        [
          '`GET /v1/job-types` (no database) saturation, requests/s',
          fmt(a.auth.noDb.withoutRps, 0),
          fmt(a.auth.noDb.withRps, 0),
          x(a.auth.noDb.ratio),
        ],
      ],
    ),
    '',
    `Producer /metrics over the whole part: mean request ${a.producerMetrics.httpMeanMs.toFixed(2)} ms, of which MongoDB round trips ${a.producerMetrics.dbMsPerRequest.toFixed(2)} ms (${a.producerMetrics.dbRoundTripsPerRequest.toFixed(2)} round trips per request) ` +
      `(${share(a.producerMetrics.dbMsPerRequest, a.producerMetrics.httpMeanMs)}) and publish-to-confirm ${a.producerMetrics.publishConfirmMeanMs.toFixed(2)} ms.`,
    '',
    `CPU ms per accepted request at saturation, by process (with descendants): ${cpuLine(a.cpuMsPerRequest)}.`,
    '',
    `One request at a time (1 connection, closed loop): p50 ${fmt(a.oneAtATime.p50Ms, 0)} ms, p99 ${fmt(a.oneAtATime.p99Ms, 0)} ms, ${fmt(a.oneAtATime.rps, 0)} requests/s.`,
  ].join('\n');
}

/** "producer 1.20, ferretdb 2.31, …" CPU ms per unit, largest first, with the total. */
function cpuLine(cpu: Readonly<Record<string, number>>): string {
  if (Object.keys(cpu).length === 0) return 'not measured';
  const rows = Object.entries(cpu).sort(([, a], [, b]) => b - a);
  const total = rows.reduce((n, [, v]) => n + v, 0);
  return `${rows.map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')} (total ${total.toFixed(2)})`;
}

function pipelineSection(p: PipelineResults): string {
  const row = (name: string, s: PipelineResults['services']): string[] => [
    name,
    fmt(s.jobsPerSecond, 1),
    String(s.halfRate),
    fmt(s.p50Ms, 0),
    fmt(s.p99Ms, 0),
  ];
  return [
    '### 3. Pipeline (no-op jobs, submit to done)',
    '',
    `${p.concurrency} concurrent submitters; consumers with prefetch ${p.concurrency}; latency = enqueue to done at a fixed rate of half of each system's own saturation.`,
    '',
    table(
      ['System', 'jobs/s at saturation', 'fixed rate, jobs/s', 'p50 ms', 'p99 ms'],
      [
        row('async-jobs: HTTP producer → RabbitMQ → consumer, MongoDB (FerretDB) writes', p.services),
        row('(a) amqplib publish-with-confirms + consume-and-ack, same RabbitMQ', p.amqp),
        row('(b) BullMQ on Redis (Queue.add + Worker)', p.bullmq),
      ],
    ),
    '',
    `Ratios of saturation throughput: async-jobs / broker ceiling = ${x(p.vsAmqp)}; async-jobs / BullMQ = ${x(p.vsBullmq)}, target ≥ ${TARGETS.pipelineVsBullmq}× ${verdict(p.vsBullmq.median >= TARGETS.pipelineVsBullmq)}.`,
    '',
    `MongoDB round trips per job at saturation (producer and consumer, every command): ${p.dbRoundTripsPerJob.toFixed(2)}, target ≤ ${TARGETS.roundTripsPerJob} ${verdict(p.dbRoundTripsPerJob <= TARGETS.roundTripsPerJob)}.`,
    '',
    `CPU ms per job at saturation, by process (with descendants): ${cpuLine(p.cpuMsPerJob)}.`,
  ].join('\n');
}

/** The drain-rate target names 100,000 jobs and one consumer; other sizes are not judged. */
function drainVerdict(b: BacklogResults): string {
  const one = b.byConsumers.find((c) => c.consumers === 1);
  if (one === undefined || b.jobs !== 100_000) return '';
  const rate = one.jobsPerSecond.median;
  return ` Drain rate with 1 consumer ${rate.toFixed(0)} jobs/s, target ≥ ${TARGETS.backlogJobsPerSecond.toLocaleString('en-US')} (3 × 638 of 2026-11-22, on that day's machine) ${verdict(rate >= TARGETS.backlogJobsPerSecond)}.`;
}

function backlogSection(b: BacklogResults): string {
  const rssOk = b.byConsumers.every((c) => c.peakRssMiB.max < 256);
  const signed = (v: number): string => `${v >= 0 ? '+' : ''}${v.toFixed(0)}`;
  return [
    '### 4. Backlog and memory',
    '',
    `Drain ${b.jobs.toLocaleString('en-US')} queued no-op jobs (seeded directly in MongoDB and RabbitMQ, a fresh collection each time), prefetch ${b.prefetch}, ${b.reps} repetition(s) with 1 and 2 consumers interleaved. RSS from /proc/<pid>/status of every consumer process: when ready, median of samples every 250 ms during the drain, peak (max of VmHWM and the samples), and growth (median of the last tenth of the drain minus that of the first tenth); medians (min–max) over consumers and repetitions.`,
    '',
    table(
      [
        'Consumers',
        'jobs/s',
        'MongoDB ms per job',
        'MongoDB round trips per job',
        'RSS when ready, MiB',
        'RSS median, MiB',
        'RSS peak, MiB',
        'RSS growth, MiB',
        'Target < 256 MiB',
      ],
      b.byConsumers.map((c) => [
        String(c.consumers),
        fmt(c.jobsPerSecond),
        fmt(c.dbMsPerJob, 2),
        fmt(c.dbRoundTripsPerJob, 2),
        fmt(c.readyRssMiB, 0),
        fmt(c.medianRssMiB, 0),
        fmt(c.peakRssMiB, 0),
        c.rssGrowthMiB.n === 1
          ? signed(c.rssGrowthMiB.median)
          : `${signed(c.rssGrowthMiB.median)} (${signed(c.rssGrowthMiB.min)} to ${signed(c.rssGrowthMiB.max)})`,
        verdict(c.peakRssMiB.max < 256),
      ]),
    ),
    '',
    `2 consumers / 1 consumer = ${x(b.scaling)}. Memory target ${verdict(rssOk)}.${drainVerdict(b)}`,
    '',
    ...b.byConsumers.map(
      (c) =>
        `CPU ms per job with ${c.consumers} consumer(s), by process (with descendants): ${cpuLine(c.cpuMsPerJob)}.`,
    ),
  ].join('\n');
}

function prefetchSection(p: PrefetchResults): string {
  return [
    '### 5. Prefetch',
    '',
    `One consumer drains ${p.jobs.toLocaleString('en-US')} queued no-op jobs; CONCURRENCY = PREFETCH.`,
    '',
    table(
      ['PREFETCH', 'jobs/s, median (min–max)', 'vs prefetch 10', 'MongoDB ms per job'],
      p.values.map((v) => [String(v.prefetch), fmt(v.jobsPerSecond, 1), x(v.vsDefault), fmt(v.dbMsPerJob, 2)]),
    ),
  ].join('\n');
}

/**
 * How much of a request's and a job's time is MongoDB round trips, from the services' own
 * `mongodb_command_duration_seconds` (driver command monitoring) in the runs above.
 */
function dbSection(r: Results): string | undefined {
  const lines = ['### Time spent in the database', ''];
  const pm = r.accept?.producerMetrics;
  if (pm !== undefined) {
    lines.push(
      `- Producer: ${pm.dbMsPerRequest.toFixed(2)} ms of MongoDB round trips per \`POST /v1/jobs\` (insert + publication record) of a ${pm.httpMeanMs.toFixed(2)} ms mean request: ${share(pm.dbMsPerRequest, pm.httpMeanMs)}.`,
    );
  }
  const p1 = r.prefetch?.values.find((v) => v.prefetch === 1);
  if (p1 !== undefined) {
    const perJob = 1000 / p1.jobsPerSecond.median;
    lines.push(
      `- Consumer, one job at a time (prefetch 1): ${p1.dbMsPerJob.median.toFixed(2)} ms of MongoDB round trips (claim + complete) of the ${perJob.toFixed(2)} ms each job takes: ${share(p1.dbMsPerJob.median, perJob)}.`,
    );
  }
  const b = r.backlog?.byConsumers.find((c) => c.consumers === 1);
  if (b !== undefined && r.backlog !== undefined) {
    lines.push(
      `- Consumer draining ${r.backlog.jobs.toLocaleString('en-US')} jobs (prefetch ${r.backlog.prefetch}, one consumer): ${b.dbMsPerJob.median.toFixed(2)} ms of MongoDB round trips per job; with ${r.backlog.prefetch} jobs in flight a job is done every ${(1000 / b.jobsPerSecond.median).toFixed(2)} ms.`,
    );
  }
  return lines.length > 2 ? lines.join('\n') : undefined;
}

function profileTable(title: string, p: ProfileSummary): string {
  return [
    `${title} (${p.samples} samples, ${p.idlePercent.toFixed(0)}% idle; shares of busy time):`,
    '',
    table(
      ['By origin', '%'],
      p.byOrigin.slice(0, 8).map((o) => [o.origin, o.percent.toFixed(1)]),
    ),
    '',
    table(
      ['Top self-time functions', '%'],
      p.topFunctions.map((f) => [`\`${f.name}\``, f.percent.toFixed(1)]),
    ),
  ].join('\n');
}

export function renderMarkdown(r: Results): string {
  const m = r.machine;
  const parts = [
    `## Results of ${r.date.slice(0, 10)}${r.quick ? ' (quick mode: sizes too small to mean anything)' : ''}`,
    '',
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB; ${m.os}; Node ${m.node}; RabbitMQ ${m.rabbitmq}; database: ${m.database}; Redis ${m.redis}. ` +
      `Every server and process on this one machine. Run time ${(r.durationS / 60).toFixed(1)} min.`,
    '',
    `Services' memory: ${r.serviceMemory}.`,
    `Group commit: ${r.groupCommit ?? "the services' defaults"}.`,
    ...(r.serviceEnv !== undefined ? [`Service settings (--env): ${r.serviceEnv}.`] : []),
  ];
  if (r.synth) parts.push('', synthSection(r.synth));
  if (r.accept) parts.push('', acceptSection(r.accept));
  if (r.pipeline) parts.push('', pipelineSection(r.pipeline));
  if (r.backlog) parts.push('', backlogSection(r.backlog));
  if (r.prefetch) parts.push('', prefetchSection(r.prefetch));
  const db = dbSection(r);
  if (db !== undefined) parts.push('', db);
  if (r.profiles) {
    parts.push(
      '',
      '### CPU profiles',
      '',
      profileTable('Producer at saturation', r.profiles.producer),
      '',
      profileTable('Consumer draining a backlog', r.profiles.consumer),
    );
  }
  return parts.join('\n');
}
