import { rmSync } from 'node:fs';
import type { RunningServer } from './servers';

export default async function globalTeardown(): Promise<void> {
  const servers = (globalThis as { __AJ_SERVERS__?: RunningServer[] }).__AJ_SERVERS__ ?? [];
  await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
  if (process.env.AJ_TEST_TMP !== undefined) rmSync(process.env.AJ_TEST_TMP, { recursive: true, force: true });
}
