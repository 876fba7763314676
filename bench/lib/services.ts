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
    owner: string;
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

interface ResolvedLike {
  readonly services: readonly {
    readonly kind: string;
    readonly resources: { readonly memoryLimit: { readonly mebibytes: number } };
  }[];
}

/**
 * The memory limits of the producer and consumer containers in the model's prod environment (infra/app.ts, from
 * the root's build/), in MiB.
 */
export function prodMemoryLimits(): { readonly producer: number; readonly consumer: number } {
  const appFile = join(REPO_ROOT, 'build', 'infra', 'app.js');
  if (!existsSync(appFile)) throw new Error(`${appFile}: not found; run \`npm run build\` first`);
  const req = createRequire(import.meta.url);
  // Shapes declared above (build/ is CommonJS without type declarations).
  const app = req(appFile) as { defineSystem(env: string): unknown };
  const model = req(join(REPO_ROOT, 'build', 'constructs', 'model', 'index.js')) as {
    resolve(system: unknown, options: { repoRoot: string }): ResolvedLike;
  };
  const resolved = model.resolve(app.defineSystem('prod'), { repoRoot: REPO_ROOT });
  const limit = (kind: string): number => {
    const service = resolved.services.find((s) => s.kind === kind);
    if (service === undefined) throw new Error(`the prod model has no ${kind} service`);
    return service.resources.memoryLimit.mebibytes;
  };
  return { producer: limit('producer'), consumer: limit('consumer') };
}
