/**
 * What the e2e proves on a running deployment: it comes up healthy (in dependency order under Compose), its
 * containers run as synthesized (non-root, read-only root, capabilities dropped), the API works end to end, and
 * under steady load it loses and duplicates nothing through a consumer kill, a broker restart, a 20 s database
 * outage and consumer scaling.
 */
import { readFileSync } from 'node:fs';
import { docker, run, sleep, waitFor } from './exec.ts';
import { defaultMix, LoadRun, settle, type JobRequest, type JobsClient, type Tally } from './client.ts';
import { type ContainerState, type Deployment } from './deploy.ts';
import { type Report } from './report.ts';

export const BROKER = 'rabbitmq';
export const DATABASE = 'mongo';
export const PRODUCER = 'producer';
export const CONSUMER = 'consumer';

/** Waits until every service has `replicas` running containers, all healthy. */
export async function waitHealthy(
  dep: Deployment,
  timeoutMs: number,
  expected: Readonly<Record<string, number>> = {},
): Promise<ContainerState[]> {
  const services = Object.keys(dep.file.services);
  return waitFor(
    `${services.join(', ')} to be healthy`,
    timeoutMs,
    async () => {
      const all: ContainerState[] = [];
      for (const s of services) {
        const cs = await dep.containers(s);
        if (cs.length !== (expected[s] ?? 1) || cs.some((c) => !c.running || c.health !== 'healthy')) return undefined;
        all.push(...cs);
      }
      return all;
    },
    2000,
  );
}

/** Health and start events of the Compose project since `since`, to prove dependency order. */
export async function checkStartOrder(report: Report, dep: Deployment, since: Date): Promise<void> {
  const out = await docker([
    'events',
    '--since',
    since.toISOString(),
    '--until',
    new Date().toISOString(),
    '--filter',
    `label=com.docker.compose.project=${dep.project}`,
    '--filter',
    'type=container',
    '--format',
    '{{json .}}',
  ]);
  const firstHealthy = new Map<string, number>();
  const firstStart = new Map<string, number>();
  for (const line of out.split('\n').filter((l) => l !== '')) {
    const e = JSON.parse(line) as {
      status?: string;
      Action?: string;
      timeNano: number;
      Actor: { Attributes: Record<string, string> };
    };
    const service = e.Actor.Attributes['com.docker.compose.service'];
    const action = e.Action ?? e.status ?? '';
    if (service === undefined) continue;
    if (action === 'start' && !firstStart.has(service)) firstStart.set(service, e.timeNano);
    if (action === 'health_status: healthy' && !firstHealthy.has(service)) firstHealthy.set(service, e.timeNano);
  }
  for (const [service, spec] of Object.entries(dep.file.services)) {
    for (const d of spec.dependsOn) {
      const healthy = firstHealthy.get(d);
      const started = firstStart.get(service);
      const ok = healthy !== undefined && started !== undefined && started >= healthy;
      const gap = ok ? `${((started - healthy) / 1e9).toFixed(1)} s after` : 'not after';
      report.check(
        `compose starts ${service} only after ${d} is healthy`,
        ok,
        `${service} started ${gap} ${d} became healthy`,
      );
    }
  }
}

/** docker inspect and a write probe: the containers run as the files say. */
export async function checkHardening(
  report: Report,
  dep: Deployment,
  containers: readonly ContainerState[],
): Promise<void> {
  for (const c of containers) {
    const spec = dep.file.services[c.service];
    if (spec === undefined) continue;
    const label = `${dep.kind} ${c.service}`;
    const expectedUser = spec.user ?? '';
    const uid = (await run('docker', ['exec', c.id, 'id', '-u'])).stdout.trim();
    report.check(
      `${label} runs as its non-root user ${expectedUser}`,
      expectedUser !== '' && c.user === expectedUser && uid === expectedUser.split(':')[0] && uid !== '0',
      `Config.User ${JSON.stringify(c.user)}, id -u ${uid}`,
    );
    const probe = await run('docker', ['exec', c.id, 'sh', '-c', 'touch /e2e-write-probe']);
    report.check(
      `${label} has a read-only root filesystem`,
      c.readOnlyRoot && probe.code !== 0,
      `ReadonlyRootfs ${c.readOnlyRoot}, write to / ${probe.code === 0 ? 'succeeded' : 'refused'}`,
    );
    const tmp = await run('docker', [
      'exec',
      c.id,
      'sh',
      '-c',
      'touch /tmp/e2e-write-probe && rm /tmp/e2e-write-probe',
    ]);
    report.check(`${label} can write its /tmp`, tmp.code === 0, tmp.stderr.trim());
    report.check(
      `${label} drops all capabilities`,
      c.capDrop.map((x) => x.toUpperCase()).includes('ALL'),
      `CapDrop ${JSON.stringify(c.capDrop)}`,
    );
    if (c.published.length > 0 && dep.kind === 'compose') {
      report.check(
        `${label} publishes its ports on 127.0.0.1 only`,
        c.published.every((p) => p.startsWith('127.0.0.1:')),
        c.published.join(', '),
      );
    } else if (c.published.length > 0) {
      // The stack format cannot name a host address for a port (README: a gap dev accepts), and Swarm's host-mode
      // ports ignore dockerd's --ip; so this is reported, not asserted.
      report.note(`${label} publishes ${c.published.join(', ')}: the stack format cannot bind a port to 127.0.0.1`);
    }
    if (dep.kind === 'compose') {
      report.check(
        `${label} sets no-new-privileges`,
        c.securityOpt.some((o) => /^no-new-privileges(:true)?$/.test(o)),
        `SecurityOpt ${JSON.stringify(c.securityOpt)}`,
      );
    }
  }
}

export async function smoke(report: Report, dep: Deployment, client: JobsClient): Promise<void> {
  await waitFor('the producer to be ready', 90_000, async () => ((await client.ready()) ? true : undefined));
  const key = `smoke-${dep.kind}-${Date.now()}`;
  const factorial: JobRequest = { type: 'factorial', input: { n: 20 } };
  const first = await client.submit(key, factorial);
  report.check(
    `${dep.kind} POST /v1/jobs answers 202 with a job`,
    first.status === 202 && first.job !== undefined,
    `status ${first.status}${first.error === undefined ? '' : `, ${first.error}`}`,
  );
  const anonymous = await client.anonymous().submit(`${key}-anonymous`, factorial);
  report.check(
    `${dep.kind} POST /v1/jobs without a token is refused with 401`,
    anonymous.status === 401,
    `status ${anonymous.status}`,
  );
  const again = await client.submit(key, factorial);
  report.check(
    `${dep.kind} the same Idempotency-Key returns the same job`,
    again.status === 200 && again.job?.id === first.job?.id,
    `status ${again.status}, ids ${first.job?.id ?? '-'} / ${again.job?.id ?? '-'}`,
  );
  const conflict = await client.submit(key, { type: 'factorial', input: { n: 21 } });
  report.check(
    `${dep.kind} the same key with another body is refused with 422`,
    conflict.status === 422,
    `status ${conflict.status}`,
  );
  const others: JobRequest[] = [
    { type: 'sqrt', input: { x: 2 } },
    { type: 'sleep', input: { ms: 200 } },
    { type: 'factorial', input: { n: 30 } },
  ];
  const load = new LoadRun(client, {
    label: `smoke-${dep.kind}`,
    ratePerSecond: 20,
    maxJobs: others.length,
    maxDurationMs: 10_000,
    perJobDeadlineMs: 10_000,
    mix: (i) => others[i] as JobRequest,
  });
  const stats = await load.finish();
  const tally = await settle(client, stats.submissions, 60_000);
  const firstJob =
    first.job === undefined
      ? undefined
      : await waitFor('the smoke job to finish', 60_000, async () => {
          const j = await client.get(first.job?.id ?? '');
          return j !== undefined && j !== 'not-found' && (j.status === 'succeeded' || j.status === 'failed')
            ? j
            : undefined;
        }).catch(() => undefined);
  report.check(
    `${dep.kind} factorial(20) is read back as succeeded with 2432902008176640000`,
    firstJob?.status === 'succeeded' && firstJob.result === '2432902008176640000',
    `status ${firstJob?.status ?? 'unknown'}, result ${JSON.stringify(firstJob?.result)}`,
  );
  report.check(
    `${dep.kind} sqrt, sleep and factorial(30) succeed with correct results`,
    tally.succeeded === others.length,
    describeTally(tally),
  );
}

export function describeTally(t: Tally): string {
  return `submitted ${t.submitted}, accepted ${t.accepted}, succeeded ${t.succeeded}, duplicated ${t.duplicated}, lost ${t.lost}, failed ${t.failed}, wrong result ${t.wrongResult}, never accepted ${t.notAccepted}`;
}

export interface FaultContext {
  readonly report: Report;
  readonly dep: Deployment;
  readonly client: JobsClient;
  /** Password of the database user the services use, to count handler runs in the database. */
  readonly mongoPasswordFile: string;
  readonly faultReports: string[];
}

/** Jobs of this label whose handler ran more than once (`runs` > 1), and how many job documents exist. */
async function databaseCounts(
  ctx: FaultContext,
  label: string,
): Promise<{ rerun: number; documents: number } | undefined> {
  const [mongo] = await ctx.dep.containers(DATABASE);
  if (mongo === undefined) return undefined;
  const password = readFileSync(ctx.mongoPasswordFile, 'utf8').trim();
  const script = `const q={idempotencyKey:{$regex:'^${label}-'}};print(JSON.stringify({rerun:db.jobs.countDocuments({...q,runs:{$gt:1}}),documents:db.jobs.countDocuments(q)}))`;
  const r = await run(
    'docker',
    [
      'exec',
      mongo.id,
      'mongosh',
      '--quiet',
      '--norc',
      `mongodb://app:${encodeURIComponent(password)}@127.0.0.1:27017/jobs?authSource=admin`,
      '--eval',
      script,
    ],
    { timeoutMs: 60_000 },
  );
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as { rerun: number; documents: number };
  } catch {
    ctx.report.log(`could not count runs in the database: ${r.stderr.trim() || line}`);
    return undefined;
  }
}

/**
 * One fault under steady load: load starts, `fault` runs, load stops, every accepted key is resubmitted (same job
 * expected), every job is read until finished, and the database is asked for re-run handlers.
 */
export async function underLoad(
  ctx: FaultContext,
  name: string,
  opts: { rate: number; maxJobs: number; maxMs: number; settleMs: number; mix?: (i: number) => JobRequest },
  fault: (load: LoadRun) => Promise<void>,
): Promise<LoadRun> {
  const label = `fault-${name}-${Date.now()}`;
  const load = new LoadRun(ctx.client, {
    label,
    ratePerSecond: opts.rate,
    maxJobs: opts.maxJobs,
    maxDurationMs: opts.maxMs,
    perJobDeadlineMs: 90_000,
    mix: opts.mix ?? defaultMix,
  });
  try {
    await fault(load);
  } finally {
    await load.stop();
  }
  await load.resubmitAll();
  const tally = await settle(ctx.client, load.stats.submissions, opts.settleMs);
  const db = await databaseCounts(ctx, label);
  const statuses = [...load.stats.statuses.entries()]
    .sort(([a], [b]) => a - b)
    .map(([s, n]) => `${s === 0 ? 'no answer' : s}×${n}`)
    .join(', ');
  const line = `${ctx.dep.kind} ${name}: ${describeTally(tally)}; handler re-runs ${db?.rerun ?? 'unknown'}, job documents ${db?.documents ?? 'unknown'}; answers ${statuses}`;
  ctx.faultReports.push(line);
  ctx.report.log(line);
  const r = ctx.report;
  r.check(
    `${ctx.dep.kind} ${name}: every submitted job was accepted`,
    tally.notAccepted === 0 && tally.submitted > 0,
    describeTally(tally),
  );
  r.check(`${ctx.dep.kind} ${name}: nothing lost`, tally.lost === 0, `${tally.lost} accepted jobs never finished`);
  r.check(
    `${ctx.dep.kind} ${name}: nothing duplicated`,
    tally.duplicated === 0 && db !== undefined && db.rerun === 0 && db.documents === tally.accepted,
    `keys answered with two ids ${tally.duplicated}, handler re-runs ${db?.rerun ?? 'unknown'}, documents ${db?.documents ?? 'unknown'} for ${tally.accepted} keys`,
  );
  r.check(
    `${ctx.dep.kind} ${name}: every job succeeded with the correct result`,
    tally.succeeded === tally.accepted,
    `${tally.failed} failed, ${tally.wrongResult} wrong results`,
  );
  return load;
}

/** Crash the consumer while it runs a job: the restart policy brings it back and the job completes once. */
export async function consumerKill(ctx: FaultContext): Promise<void> {
  const { report, dep, client } = ctx;
  let victimJob = '';
  const load = await underLoad(
    ctx,
    'consumer-kill',
    { rate: 4, maxJobs: 80, maxMs: 20_000, settleMs: 150_000 },
    async () => {
      await sleep(2000);
      // A long job the consumer is certainly running when it dies.
      const key = `kill-victim-${Date.now()}`;
      const sub = await client.submit(key, { type: 'sleep', input: { ms: 8000 } });
      victimJob = sub.job?.id ?? '';
      await waitFor(
        'the victim job to be running',
        30_000,
        async () => {
          const j = await client.get(victimJob);
          return j !== undefined && j !== 'not-found' && j.status === 'running' ? true : undefined;
        },
        200,
      );
      const before = await dep.containers(CONSUMER);
      const how = await dep.crash(CONSUMER);
      report.log(`crashed the consumer mid-job (job ${victimJob}): ${how}`);
      await waitFor(
        'the consumer to come back healthy',
        120_000,
        async () => {
          const now = await dep.containers(CONSUMER);
          return now.length === before.length && now.every((c) => c.running && c.health === 'healthy')
            ? now
            : undefined;
        },
        2000,
      );
      const restarted = (await dep.containers(CONSUMER)).map((c) => c.name).join(', ');
      report.check(`${dep.kind} consumer-kill: the restart policy brought the consumer back healthy`, true, restarted);
      await sleep(5000);
    },
  );
  const victim = await waitFor(
    'the killed job to finish',
    150_000,
    async () => {
      const j = await client.get(victimJob);
      return j !== undefined && j !== 'not-found' && (j.status === 'succeeded' || j.status === 'failed')
        ? j
        : undefined;
    },
    2000,
  ).catch(() => undefined);
  report.check(
    `${dep.kind} consumer-kill: the job running at the kill completes once, on a second attempt`,
    victim?.status === 'succeeded' &&
      JSON.stringify(victim.result) === JSON.stringify({ sleptMs: 8000 }) &&
      victim.attempts === 2,
    `status ${victim?.status ?? 'unfinished'}, attempts ${victim?.attempts ?? '?'}`,
  );
  void load;
}

/** Restart the broker under load: publishes fail over to the outbox and nothing is lost. */
export async function brokerRestart(ctx: FaultContext): Promise<void> {
  const { dep, report } = ctx;
  await underLoad(ctx, 'broker-restart', { rate: 4, maxJobs: 100, maxMs: 25_000, settleMs: 120_000 }, async () => {
    await sleep(3000);
    report.log(`restarting the broker: ${await dep.restart(BROKER)}`);
    await waitFor('the broker to be running again', 120_000, async () => {
      const cs = await dep.containers(BROKER);
      return cs.length === 1 && cs.every((c) => c.running) ? true : undefined;
    });
    await sleep(10_000);
  });
}

/** Stop the database for 20 s under load: the API answers 503 with Retry-After, then recovers; nothing lost. */
export async function databaseOutage(ctx: FaultContext): Promise<void> {
  const { dep, report } = ctx;
  const load = await underLoad(
    ctx,
    'database-outage',
    { rate: 4, maxJobs: 160, maxMs: 40_000, settleMs: 120_000 },
    async () => {
      await sleep(3000);
      report.log('stopping the database for 20 s');
      await dep.outage(DATABASE, 20_000);
      report.log('database started again');
      await waitFor(
        'the database to be healthy again',
        120_000,
        async () => ((await dep.containers(DATABASE)).every((c) => c.health === 'healthy') ? true : undefined),
        2000,
      );
      await sleep(5000);
    },
  );
  const s503 = load.stats.statuses.get(503) ?? 0;
  report.check(
    `${dep.kind} database-outage: the API answered 503 with Retry-After while the database was down`,
    s503 > 0 && load.stats.retryAfter.size > 0,
    `503×${s503}, Retry-After ${JSON.stringify([...load.stats.retryAfter])}`,
  );
}

/** Scale the consumers up and down under load. */
export async function scaleConsumers(ctx: FaultContext): Promise<void> {
  const { dep, report } = ctx;
  await underLoad(ctx, 'scale-consumers', { rate: 6, maxJobs: 150, maxMs: 30_000, settleMs: 120_000 }, async () => {
    await sleep(2000);
    await dep.scale(CONSUMER, 3);
    const up = await waitFor(
      '3 healthy consumers',
      90_000,
      async () => {
        const cs = await dep.containers(CONSUMER);
        return cs.length === 3 && cs.every((c) => c.health === 'healthy') ? cs : undefined;
      },
      2000,
    ).catch(() => undefined);
    report.check(`${dep.kind} scale-consumers: scaled up to 3 healthy consumers`, up !== undefined);
    await sleep(3000);
    await dep.scale(CONSUMER, 1);
    const down = await waitFor(
      '1 consumer',
      90_000,
      async () => ((await dep.containers(CONSUMER)).length === 1 ? true : undefined),
      2000,
    ).catch(() => undefined);
    report.check(`${dep.kind} scale-consumers: scaled back down to 1 consumer`, down !== undefined);
  });
}
