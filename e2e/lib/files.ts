/**
 * Reads what the e2e needs from the synthesized files (never edits them): service names, images, builds,
 * users, published ports, the Dockerfiles' base images, and the Swarm stack's required variables.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parse } from 'yaml';

export interface ServiceFile {
  readonly image: string;
  readonly user?: string;
  readonly build?: { readonly context: string; readonly dockerfile: string };
  readonly ports: readonly { readonly host: number; readonly hostIp: string; readonly container: number }[];
  /** Services this one waits for (Compose `depends_on`; empty in a stack file). */
  readonly dependsOn: readonly string[];
}

export interface DeployFile {
  readonly path: string;
  readonly name?: string;
  readonly services: Readonly<Record<string, ServiceFile>>;
  /** Secret name → the file it is read from (absolute). */
  readonly secretFiles: Readonly<Record<string, string>>;
  /** `${NAME:?…}` variables the file requires (Swarm secret versions). */
  readonly requiredVariables: readonly string[];
}

type Yaml = Record<string, unknown>;

function obj(value: unknown, path: string): Yaml {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new Error(`${path}: got ${JSON.stringify(value)}, expected a mapping`);
  return value as Yaml;
}

function str(value: unknown, path: string): string {
  if (typeof value !== 'string') throw new Error(`${path}: got ${JSON.stringify(value)}, expected a string`);
  return value;
}

function ports(value: unknown, path: string): ServiceFile['ports'] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new Error(`${path}: expected a list`);
  return value.map((p: unknown, i) => {
    if (typeof p === 'string') {
      // "127.0.0.1:8080:8080" or "8080:8080"
      const parts = p.split(':');
      const container = Number(parts.pop());
      const host = Number(parts.pop());
      return { host, container, hostIp: parts.pop() ?? '' };
    }
    const o = obj(p, `${path}[${i}]`);
    return {
      host: Number(o.published),
      container: Number(o.target),
      hostIp: typeof o.host_ip === 'string' ? o.host_ip : '',
    };
  });
}

export function readDeployFile(path: string): DeployFile {
  const text = readFileSync(path, 'utf8');
  const doc = obj(parse(text), path);
  const base = dirname(resolve(path));
  const services: Record<string, ServiceFile> = {};
  for (const [name, raw] of Object.entries(obj(doc.services, `${path} services`))) {
    const s = obj(raw, `${path} services.${name}`);
    const build = s.build === undefined ? undefined : obj(s.build, `${path} services.${name}.build`);
    const context =
      build === undefined ? undefined : resolve(base, str(build.context, `services.${name}.build.context`));
    services[name] = {
      image: str(s.image, `${path} services.${name}.image`),
      ...(typeof s.user === 'string' ? { user: s.user } : {}),
      ...(build !== undefined && context !== undefined
        ? {
            build: {
              context,
              dockerfile: resolve(context, typeof build.dockerfile === 'string' ? build.dockerfile : 'Dockerfile'),
            },
          }
        : {}),
      ports: ports(s.ports, `${path} services.${name}.ports`),
      dependsOn: Array.isArray(s.depends_on)
        ? s.depends_on.map((d, i) => str(d, `${path} services.${name}.depends_on[${i}]`))
        : Object.keys(
            s.depends_on === undefined ? {} : obj(s.depends_on, `${path} services.${name}.depends_on`),
          ).sort(),
    };
  }
  const secretFiles: Record<string, string> = {};
  for (const [name, raw] of Object.entries(doc.secrets === undefined ? {} : obj(doc.secrets, `${path} secrets`))) {
    const s = obj(raw, `${path} secrets.${name}`);
    if (typeof s.file === 'string') secretFiles[name] = resolve(base, s.file);
  }
  const requiredVariables = [
    ...new Set([...text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*):\?/g)].map((m) => m[1] as string)),
  ].sort();
  return {
    path,
    ...(typeof doc.name === 'string' ? { name: doc.name } : {}),
    services,
    secretFiles,
    requiredVariables,
  };
}

/** The FROM images of a Dockerfile (stage names excluded). */
export function dockerfileBases(path: string): string[] {
  const stages = new Set<string>();
  const bases: string[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (m?.[1] === undefined) continue;
    if (!stages.has(m[1].toLowerCase())) bases.push(m[1]);
    if (m[2] !== undefined) stages.add(m[2].toLowerCase());
  }
  return [...new Set(bases)];
}

export function envDir(distDir: string, env: string): string {
  return join(distDir, env);
}

export function fileIfExists(path: string): string | undefined {
  return existsSync(path) ? path : undefined;
}
