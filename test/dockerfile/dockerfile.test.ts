import { validate, ValidationSeverity } from 'dockerfile-utils';
import { ENVIRONMENTS } from '../../infra/app';
import { synthFile } from '../helpers';

const SERVICES = ['producer', 'consumer'] as const;
const cases = ENVIRONMENTS.flatMap((env) => SERVICES.map((service) => [env, service] as const));

describe.each(cases)('%s %s.Dockerfile', (env, service) => {
  let text: string;
  let instructions: string[];
  beforeAll(async () => {
    text = await synthFile(`${env}/${service}.Dockerfile`);
    instructions = text
      .replace(/\s*\\\n\s*/g, ' ')
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('#'));
  });

  test('has no dockerfile-utils diagnostics at any severity', () => {
    const diagnostics = validate(text, {
      // Every rule on, including the ones off by default.
      deprecatedMaintainer: ValidationSeverity.ERROR,
      directiveCasing: ValidationSeverity.ERROR,
      emptyContinuationLine: ValidationSeverity.ERROR,
      instructionCasing: ValidationSeverity.ERROR,
      instructionCmdMultiple: ValidationSeverity.ERROR,
      instructionEntrypointMultiple: ValidationSeverity.ERROR,
      instructionHealthcheckMultiple: ValidationSeverity.ERROR,
      instructionJSONInSingleQuotes: ValidationSeverity.ERROR,
      instructionWorkdirRelative: ValidationSeverity.ERROR,
    });
    expect(
      diagnostics.map(
        (d) => `line ${d.range.start.line + 1}: ${typeof d.message === 'string' ? d.message : d.message.value}`,
      ),
    ).toEqual([]);
  });

  test('is multi-stage: full dependencies to build, production dependencies only at runtime', () => {
    expect(instructions.filter((l) => l.startsWith('FROM '))).toEqual([
      'FROM node:24.11.1-bookworm-slim AS deps',
      'FROM node:24.11.1-bookworm-slim AS build',
      'FROM node:24.11.1-bookworm-slim AS runtime',
    ]);
    expect(text).toContain('RUN npm ci --omit=dev');
    expect(text).toContain('RUN npm run build');
    expect(text).toContain('COPY --from=deps --chown=0:0 /app/node_modules ./node_modules');
    expect(text).toContain('COPY --from=build --chown=0:0 /app/dist ./dist');
  });

  test('runs as a numeric non-root user of at least 10000 in the final stage', () => {
    const users = instructions.filter((l) => l.startsWith('USER '));
    expect(users).toEqual(['USER 10001:10001']);
    const runtimeStart = instructions.findIndex((l) => l.endsWith('AS runtime'));
    expect(instructions.indexOf('USER 10001:10001')).toBeGreaterThan(runtimeStart);
  });

  test('starts in exec form and checks health with a Node script instead of curl', () => {
    expect(instructions.at(-1)).toBe(`CMD ["node", "dist/${service}/main.js"]`);
    expect(instructions.find((l) => l.startsWith('HEALTHCHECK'))).toBe(
      'HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 CMD ["node", "dist/healthcheck.js"]',
    );
    expect(text).not.toContain('curl');
  });

  test('puts no secrets in ARG or ENV', () => {
    const argsAndEnv = instructions.filter((l) => /^(ARG|ENV) /.test(l));
    expect(argsAndEnv).toEqual(['ENV NODE_ENV=production']);
  });
});
