/**
 * The synthesized outputs, parsed, per target and environment: what the policy rules read. The rules are functions
 * of these values only, so they run the same on a mutated copy.
 */
import { parse, parseAllDocuments } from 'yaml';
import type { GeneratedFile } from '../../constructs';

export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
} & Record<string, unknown>;

/** A Compose or Swarm service, as far as the rules read it. */
export interface ComposeServiceDoc {
  image?: string;
  user?: string;
  read_only?: boolean;
  tmpfs?: string[] | string;
  cap_drop?: string[];
  cap_add?: string[];
  security_opt?: string[];
  privileged?: boolean;
  network_mode?: string;
  pid?: string;
  ipc?: string;
  healthcheck?: { test?: string[] | string; disable?: boolean };
  deploy?: {
    resources?: { limits?: { cpus?: string; memory?: string } };
    restart_policy?: { condition?: string; max_attempts?: number };
  };
  restart?: string;
  ports?: (string | { published?: number | string; host_ip?: string; target?: number })[];
  volumes?: (string | { type?: string; source?: string; target?: string; tmpfs?: { size?: number | string } })[];
  networks?: string[] | Record<string, unknown>;
  environment?: Record<string, string> | string[];
}
export interface ComposeDoc {
  services: Record<string, ComposeServiceDoc>;
  networks?: Record<string, { internal?: boolean; driver?: string } | null>;
  volumes?: Record<string, unknown>;
  secrets?: Record<string, unknown>;
}

/** A container of the Pulumi program, as `docker.Container` inputs (secret markers removed). */
export interface PulumiContainer {
  name: string;
  /** The model's service name, added by the adapter (the container name is `<namespace>-<service>-<index>`). */
  service?: string;
  image?: string;
  user?: string;
  readOnly?: boolean;
  tmpfs?: Record<string, string>;
  capabilities?: { drops?: string[]; adds?: string[] };
  securityOpts?: string[];
  privileged?: boolean;
  networkMode?: string;
  memory?: number;
  cpus?: string;
  healthcheck?: { tests?: string[] };
  restart?: string;
  maxRetryCount?: number;
  ports?: { internal: number; external?: number; ip?: string }[];
  volumes?: { volumeName?: string; hostPath?: string; containerPath?: string; readOnly?: boolean }[];
  mounts?: { type?: string; source?: string; target?: string }[];
  networksAdvanced?: { name: string; aliases?: string[] }[];
  envs?: string[];
  labels?: { label: string; value: string }[];
}
export interface PulumiOutput {
  containers: PulumiContainer[];
  networks: { name: string; internal?: boolean }[];
  volumes: { name: string }[];
}

export type Parsed =
  | { target: 'dockerfile'; env: string; file: string; text: string }
  | { target: 'compose' | 'swarm'; env: string; file: string; doc: ComposeDoc }
  | { target: 'kubernetes'; env: string; file: string; docs: K8sObject[] }
  | { target: 'pulumi'; env: string; file: string; pulumi: PulumiOutput };

export type PolicyTarget = Parsed['target'];

/** Which target wrote a file, from its name (`dist/<env>/…`); null for files no rule reads. */
export function targetOfFile(path: string): 'dockerfile' | 'compose' | 'swarm' | 'kubernetes' | null {
  if (/\.Dockerfile$/.test(path)) return 'dockerfile';
  if (/(^|\/)compose\.ya?ml$/.test(path)) return 'compose';
  if (/(^|\/)docker-stack\.ya?ml$/.test(path)) return 'swarm';
  if (/\.k8s\.ya?ml$/.test(path)) return 'kubernetes';
  return null;
}

/** Parses one synthesized file; null for files the rules do not read (.dockerignore, reports). */
export function parseOutput(file: GeneratedFile): Parsed | null {
  const target = targetOfFile(file.path);
  const env = file.path.split('/')[0] ?? '';
  switch (target) {
    case 'dockerfile':
      return { target, env, file: file.path, text: file.content };
    case 'compose':
    case 'swarm':
      return { target, env, file: file.path, doc: parse(file.content) as ComposeDoc };
    case 'kubernetes':
      return {
        target,
        env,
        file: file.path,
        docs: parseAllDocuments(file.content)
          .map((d) => d.toJSON() as K8sObject | null)
          .filter((d): d is K8sObject => d !== null),
      };
    default:
      return null;
  }
}

/** A deep copy to mutate. */
export function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
