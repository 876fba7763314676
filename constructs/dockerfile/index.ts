import type { ResolvedService, ResolvedSystem } from '../model';
import { generatedHeader } from '../output/header';
import type { GeneratedFile, SynthContext, Target, TargetOutput } from '../output/types';

/** Services whose image is built from `services/`, in model order. */
export function builtServices(system: ResolvedSystem): ResolvedService[] {
  return system.services.filter((s) => s.image.kind === 'build');
}

/** JSON exec form, as Docker documents it: `["node", "main.js"]`. */
function execForm(args: readonly string[]): string {
  return `[${args.map((a) => JSON.stringify(a)).join(', ')}]`;
}

/** Path of a service's Dockerfile relative to the output directory. */
export function dockerfilePath(environment: string, service: string): string {
  return `${environment}/${service}.Dockerfile`;
}

/**
 * Renders a multi-stage Dockerfile: dependencies and build in full stages, then a runtime stage with production
 * dependencies only, running as a numeric non-root user.
 *
 * @see https://docs.docker.com/build/building/best-practices/
 */
export function renderDockerfile(system: ResolvedSystem, service: ResolvedService, context: SynthContext): string {
  if (service.image.kind !== 'build') throw new Error(`${service.path} is not built from source`);
  const base = system.nodeBaseImage;
  const { user, group } = service.security;
  const entry = `dist/${service.image.service}/main.js`;
  const hc = service.healthCheck;
  const port = service.ports[0]?.containerPort;
  const lines = [
    '# syntax=docker/dockerfile:1',
    generatedHeader(context, system.environment).trimEnd(),
    `# Image of ${service.path}; build context: ${service.image.context}/`,
    '',
    `FROM ${base} AS deps`,
    'WORKDIR /app',
    'COPY package.json package-lock.json ./',
    'RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force',
    '',
    `FROM ${base} AS build`,
    'WORKDIR /app',
    'COPY package.json package-lock.json ./',
    'RUN npm ci --ignore-scripts --no-audit --no-fund',
    'COPY tsconfig*.json ./',
    'COPY src ./src',
    'RUN npm run build',
    '',
    `FROM ${base} AS runtime`,
    'ENV NODE_ENV=production',
    'WORKDIR /app',
    `COPY --from=deps --chown=0:0 /app/node_modules ./node_modules`,
    `COPY --from=build --chown=0:0 /app/dist ./dist`,
    'COPY --chown=0:0 package.json ./',
    `USER ${user}:${group}`,
    ...(port === undefined ? [] : [`EXPOSE ${port}`]),
    // Exec form and a Node script: the slim image has no curl, and a shell would swallow signals.
    `HEALTHCHECK --interval=${hc.intervalSeconds}s --timeout=${hc.timeoutSeconds}s --start-period=${hc.startPeriodSeconds}s --retries=${hc.retries} \\`,
    `  CMD ${execForm(hc.command)}`,
    `CMD ${execForm(['node', entry])}`,
    '',
  ];
  return lines.join('\n');
}

/** Patterns kept out of the build context (BuildKit reads `<Dockerfile>.dockerignore` beside the Dockerfile). */
export const DOCKERIGNORE = ['**/node_modules', 'dist', 'coverage', 'test', '.env*', '*.log', '.git'];

export const dockerfileTarget: Target = {
  name: 'dockerfile',
  description: 'one multi-stage Dockerfile per built service: dist/<env>/<service>.Dockerfile',
  synth(system: ResolvedSystem, context: SynthContext): TargetOutput {
    const files: GeneratedFile[] = [];
    for (const service of builtServices(system)) {
      files.push({
        path: dockerfilePath(system.environment, service.name),
        content: renderDockerfile(system, service, context),
      });
      files.push({
        path: `${dockerfilePath(system.environment, service.name)}.dockerignore`,
        content: `${generatedHeader(context, system.environment)}${DOCKERIGNORE.join('\n')}\n`,
      });
    }
    return { files, gaps: [], warnings: [], errors: [] };
  },
};
