import { createContext, describeIntegration, integrationEnv, spawnService, type TestContext } from '../helpers/context';
import { freePort } from '../helpers/servers';

/** `name{labels} value` lines of a Prometheus text page for one metric, keyed by the label set. */
function samples(page: string, metric: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of page.split('\n')) {
    if (!line.startsWith(`${metric}{`)) continue;
    const close = line.lastIndexOf('}');
    out.set(line.slice(metric.length + 1, close), Number(line.slice(close + 1).trim()));
  }
  return out;
}

async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

describeIntegration('MongoDB command round trips on /metrics of the real processes', () => {
  let ctx: TestContext;

  beforeAll(async () => {
    const env = integrationEnv();
    if (env === undefined) throw new Error('unreachable: suite runs only with servers');
    ctx = await createContext('metrics', env);
  });

  afterAll(async () => {
    await ctx?.close();
  });

  it('counts the consumer claim and completing write of every job it runs', async () => {
    const port = await freePort();
    await ctx.startConsumer({ PORT: String(port) });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await ctx.submit('noop', {})).body.id as string);
    await ctx.waitForJobs(ids, ['succeeded'], 20_000);
    const page = await scrape(port);
    const counts = samples(page, 'mongodb_command_duration_seconds_count');
    // A lone delivery is claimed with findAndModify; deliveries that arrive together share one update (group
    // commit), so how many of each depends on timing. Every job is claimed exactly once, by one path or the other.
    expect(counts.get('command="findAndModify",outcome="succeeded"')).toBeGreaterThanOrEqual(1);
    expect(samples(page, 'mongodb_group_commit_batch_size_sum').get('kind="claim"')).toBe(3);
    expect(samples(page, 'mongodb_group_commit_batch_size_sum').get('kind="outcome"')).toBe(3);
    expect(counts.get('command="update",outcome="succeeded"')).toBeGreaterThanOrEqual(1);
    const sums = samples(page, 'mongodb_command_duration_seconds_sum');
    expect(sums.get('command="findAndModify",outcome="succeeded"')).toBeGreaterThan(0);
  });

  it('counts the producer insert of a job submitted over HTTP', async () => {
    const port = await freePort();
    const env = await ctx.producerEnv(port);
    const producer = spawnService('producer', env);
    try {
      await producer.waitForLine((l) => typeof l.msg === 'string' && l.msg.includes('listening'), 30_000);
      let status = 0;
      for (let i = 0; i < 100 && status !== 202; i++) {
        const res = await fetch(`http://127.0.0.1:${port}/v1/jobs`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': `metrics-${i}`, ...ctx.auth() },
          body: JSON.stringify({ type: 'noop', input: {} }),
        });
        status = res.status;
        if (status !== 202) await new Promise((r) => setTimeout(r, 100));
      }
      expect(status).toBe(202);
      // /metrics is served on METRICS_PORT only, never on the API port (which the Ingress publishes).
      const counts = samples(await scrape(Number(env.METRICS_PORT)), 'mongodb_command_duration_seconds_count');
      expect(counts.get('command="insert",outcome="succeeded"')).toBeGreaterThanOrEqual(1);
      const onApiPort = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(onApiPort.status).toBe(404);
    } finally {
      producer.kill('SIGTERM');
      await producer.exited;
    }
  });
});
