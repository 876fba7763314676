/**
 * What the deploying machine computes for a Swarm stack: which images to build and tag, and the secret versions
 * the stack file's secret names interpolate. Used by `infra/images.ts` (`npm run images`); not part of synth,
 * which never reads secret files.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountedSecrets, type ResolvedSystem } from '../model';
import { dockerfilePath } from '../dockerfile';

/** Hex digits of a secret's version: enough to tell versions apart, short enough for Swarm's 64-character names. */
export const SECRET_VERSION_LENGTH = 12;

/**
 * The deploy-time variable that carries a secret's version (`mongo-password` → `MONGO_PASSWORD_VERSION`).
 * `docker stack deploy` interpolates it into the secret's name; `npm run images -- --secret-versions` prints it.
 */
export function secretVersionVariable(secret: string): string {
  return `${secret.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_VERSION`;
}

/** One image to build from a synthesized Dockerfile and tag with its content tag. */
export interface ImageBuild {
  /** Services using the image (several consumers may share one). */
  readonly services: readonly string[];
  /** `<repository or local name>:src-<hash>`, exactly what the stack file and Compose refer to. */
  readonly reference: string;
  /** Registry repository, or null when the image is only built locally (Swarm rejects such a model). */
  readonly repository: string | null;
  /** Dockerfile path relative to the repository root; BuildKit reads `<Dockerfile>.dockerignore` beside it. */
  readonly dockerfile: string;
  /** Build context relative to the repository root. */
  readonly context: string;
}

/** The images of an environment, one per distinct reference, in model order. */
export function imageBuilds(system: ResolvedSystem, outDir = 'dist'): ImageBuild[] {
  const byReference = new Map<string, { services: string[]; build: Omit<ImageBuild, 'services'> }>();
  for (const s of system.services) {
    if (s.image.kind !== 'build') continue;
    const existing = byReference.get(s.image.reference);
    if (existing) {
      existing.services.push(s.name);
      continue;
    }
    byReference.set(s.image.reference, {
      services: [s.name],
      build: {
        reference: s.image.reference,
        repository: s.image.repository,
        dockerfile: `${outDir}/${dockerfilePath(system.environment, s.name)}`,
        context: s.image.context,
      },
    });
  }
  return [...byReference.values()].map(({ services, build }) => ({ services, ...build }));
}

/** A deploy-time variable and its value. */
export interface SecretVersion {
  readonly variable: string;
  readonly value: string;
  readonly secret: string;
}

/**
 * The version of each file secret: the first {@link SECRET_VERSION_LENGTH} hex digits of the SHA-256 of its
 * content. It only ever appears in Swarm secret names, which only Swarm managers can list, and a manager can read
 * the secret itself by mounting it into a service, so the digest tells that audience nothing new; it is computed
 * on the deploying machine and never written to the repository. Secrets from `npm run secrets` are random, so a
 * truncated digest is no useful guessing oracle either.
 */
export function secretVersions(
  system: ResolvedSystem,
  repoRoot: string,
): { readonly versions: SecretVersion[]; readonly errors: string[] } {
  const versions: SecretVersion[] = [];
  const errors: string[] = [];
  for (const secret of mountedSecrets(system)) {
    if (secret.source.kind !== 'file') continue;
    const file = join(repoRoot, secret.source.path);
    if (!existsSync(file)) {
      errors.push(
        `[${secret.path}] source: got ${JSON.stringify(secret.source.path)}, which does not exist, expected the secret's file ` +
          `(create it, or run npm run secrets -- ${system.environment})`,
      );
      continue;
    }
    const digest = createHash('sha256').update(readFileSync(file)).digest('hex');
    versions.push({
      variable: secretVersionVariable(secret.name),
      value: digest.slice(0, SECRET_VERSION_LENGTH),
      secret: secret.name,
    });
  }
  return { versions, errors };
}
