import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { REPO_ROOT } from './servers.js';

/**
 * The services' own definitions of what the producer writes (services/src/shared/jobs.ts and topology.ts), loaded
 * from their build at run time so a seeded backlog is exactly what the producer would have stored and published,
 * not a copy that can drift. bench/ is a separate package without the services' type declarations, so the shapes
 * used here are declared below.
 */
export interface JobDoc {
  _id: string;
  type: string;
  status: string;
  createdAt: Date;
  finishedAt: Date | null;
}

interface JobsModule {
  readonly newJobDocument: (fields: {
    idempotencyKey: string;
    type: string;
    input: Record<string, unknown>;
    at: Date;
  }) => JobDoc;
  readonly PUBLICATIONS_COLLECTION: string;
}

interface TopologyModule {
  readonly encodeJobMessage: (jobId: string) => Buffer;
  readonly topologyNames: (prefix: string) => { readonly exchange: string };
  readonly WORK_ROUTING_KEY: string;
}

function load<T>(relative: string): T {
  const file = join(REPO_ROOT, 'services', 'dist', relative);
  if (!existsSync(file)) throw new Error(`${file}: not found; run \`cd services && npm run build\` first`);
  // The module's shape is declared by the caller's T (see above); require returns unknown-typed CommonJS exports.
  return createRequire(import.meta.url)(file) as T;
}

export const servicesJobs = (): JobsModule => load<JobsModule>('shared/jobs.js');
export const servicesTopology = (): TopologyModule => load<TopologyModule>('shared/topology.js');
