import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { findFerretDb, findRabbitMq, makeTempBase, startFerretDb, startRabbitMq, type RunningServer } from './servers';

/**
 * Jest globalSetup for the integration project: uses AMQP_URL and MONGO_URL when both are set, otherwise
 * starts RabbitMQ and FerretDB. Results reach the test workers through environment variables (workers are
 * forked after globalSetup). Under CI=true a missing server is an error; elsewhere the suites skip loudly.
 */
export default async function globalSetup(): Promise<void> {
  buildDist();
  if (process.env.AMQP_URL !== undefined && process.env.MONGO_URL !== undefined) {
    process.env.AJ_TEST_AMQP_URL = process.env.AMQP_URL;
    process.env.AJ_TEST_MONGO_URL = process.env.MONGO_URL.replace(/\/[^/?]*(\?.*)?$/, '');
    process.env.AJ_TEST_EXTERNAL = 'true';
    return;
  }
  const ferret = findFerretDb();
  const rabbit = findRabbitMq();
  const missing = [
    ...(ferret.path === undefined ? ferret.problems : []),
    ...(rabbit.path === undefined ? rabbit.problems : []),
  ];
  if (missing.length > 0 || ferret.path === undefined || rabbit.path === undefined) {
    const message = `integration servers unavailable:\n  - ${missing.join('\n  - ')}\nSet AMQP_URL and MONGO_URL, FERRETDB_BIN, or install rabbitmq-server.`;
    if (process.env.CI === 'true') throw new Error(message);
    process.env.AJ_TEST_SKIP = message;
    process.stderr.write(`\n\n!!!!!!!!!! SKIPPING INTEGRATION TESTS !!!!!!!!!!\n${message}\n\n`);
    return;
  }
  const base = makeTempBase();
  process.env.AJ_TEST_TMP = base;
  const started: RunningServer[] = [];
  (globalThis as { __AJ_SERVERS__?: RunningServer[] }).__AJ_SERVERS__ = started;
  const [mongo, amqp] = await Promise.all([startFerretDb(ferret.path, base), startRabbitMq(rabbit.path, base)]);
  started.push(mongo, amqp);
  process.env.AJ_TEST_MONGO_URL = mongo.url;
  process.env.AJ_TEST_AMQP_URL = amqp.url;
  process.env.AJ_TEST_RABBITMQ_BIN = rabbit.path;
}

/** The fault tests run `node dist/consumer/main.js` as real child processes, so compile first (tsc only). */
function buildDist(): void {
  const root = join(__dirname, '..', '..');
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const res = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], {
    cwd: root,
    encoding: 'utf8',
  });
  if (res.status !== 0) throw new Error(`npm run build failed:\n${res.stdout}${res.stderr}`);
}
