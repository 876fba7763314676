import { readFileSync } from 'node:fs';

/**
 * Environment-variable parsing shared by the producer and the consumer.
 *
 * Every reader records problems in an {@link EnvReader} instead of throwing, so one start reports every
 * missing or malformed variable at once (same shape as the synth errors: name, value received, what is expected).
 * Secret values are never echoed: their messages show `<redacted>` instead.
 */

export type Env = Readonly<Record<string, string | undefined>>;

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export type QueueType = 'classic' | 'quorum';

export interface CommonConfig {
  readonly amqpUrl: string;
  readonly mongoUrl: string;
  readonly mongoDatabase: string;
  readonly logLevel: LogLevel;
  readonly queuePrefix: string;
  readonly queueType: QueueType;
  /** Listen address of the HTTP server (the producer's API, the consumer's health and metrics). */
  readonly host: string;
  readonly port: number;
  readonly enableTestHandlers: boolean;
  /** How concurrent single-document writes share one MongoDB round trip (`GROUP_COMMIT_*`). */
  readonly groupCommit: { readonly maxSize: number; readonly maxWaitMs: number };
}

export class EnvReader {
  private readonly problems: string[] = [];

  constructor(private readonly env: Env) {}

  problem(message: string): void {
    this.problems.push(message);
  }

  /** Throws one {@link ConfigError} listing every problem recorded so far. */
  finish(): void {
    if (this.problems.length > 0) throw new ConfigError(this.problems);
  }

  private raw(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value === '' ? undefined : value;
  }

  string(name: string, fallback: string, pattern?: { readonly re: RegExp; readonly expected: string }): string {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (pattern !== undefined && !pattern.re.test(value)) {
      this.problem(`${name}: got ${JSON.stringify(value)}, expected ${pattern.expected}`);
      return fallback;
    }
    return value;
  }

  requiredString(name: string): string {
    const value = this.raw(name);
    if (value === undefined) {
      this.problem(`${name}: missing, expected a value`);
      return '';
    }
    return value;
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!/^-?\d+$/.test(value.trim()) || Number(value) < min || Number(value) > max) {
      this.problem(`${name}: got ${JSON.stringify(value)}, expected an integer between ${min} and ${max}`);
      return fallback;
    }
    return Number(value);
  }

  boolean(name: string, fallback: boolean): boolean {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (value === 'true') return true;
    if (value === 'false') return false;
    this.problem(`${name}: got ${JSON.stringify(value)}, expected "true" or "false"`);
    return fallback;
  }

  oneOf<T extends string>(name: string, fallback: T, choices: readonly T[]): T {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!(choices as readonly string[]).includes(value)) {
      this.problem(`${name}: got ${JSON.stringify(value)}, expected one of ${choices.map((c) => `"${c}"`).join(', ')}`);
      return fallback;
    }
    return value as T;
  }

  /**
   * A secret from `NAME` or from the file named by `NAME_FILE` (Docker and Kubernetes secrets are mounted as
   * files; the trailing newline editors add is trimmed). Setting both is ambiguous and reported.
   * @see https://docs.docker.com/engine/swarm/secrets/#build-support-for-docker-secrets-into-your-images
   */
  secret(name: string): string | undefined {
    const direct = this.raw(name);
    const file = this.raw(`${name}_FILE`);
    if (direct !== undefined && file !== undefined) {
      this.problem(`${name}_FILE: got ${JSON.stringify(file)}, expected it unset because ${name} is also set`);
      return direct;
    }
    if (file === undefined) return direct;
    try {
      return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      this.problem(`${name}_FILE: got ${JSON.stringify(file)}, expected a readable file (${code})`);
      return undefined;
    }
  }
}

/** Hides the password part of a URL so it can be printed in errors and logs. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*):[^@/]*@/i, '$1:<redacted>@');
}

function parseAmqpUrl(reader: EnvReader, password: string | undefined): string {
  const value = reader.requiredString('AMQP_URL');
  if (value === '') return '';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    reader.problem(`AMQP_URL: got ${JSON.stringify(redactUrl(value))}, expected a URL like amqp://user@host:5672/%2F`);
    return '';
  }
  if (url.protocol !== 'amqp:' && url.protocol !== 'amqps:') {
    reader.problem(
      `AMQP_URL: got ${JSON.stringify(redactUrl(value))}, expected a URL starting with amqp:// or amqps://`,
    );
    return '';
  }
  if (password !== undefined) {
    if (url.username === '') {
      reader.problem(
        `AMQP_URL: got ${JSON.stringify(redactUrl(value))}, expected a user name because AMQP_PASSWORD is set`,
      );
      return '';
    }
    // WHATWG URL percent-encodes the userinfo set, so passwords containing @ : / survive.
    url.password = password;
  }
  return url.toString();
}

// Not WHATWG URL: a mongodb:// URL may list several hosts ("h1:27017,h2:27017"), which URL() rejects.
const MONGO_URL_RE = /^(mongodb(?:\+srv)?:\/\/)(?:([^:@/]*)(?::([^@/]*))?@)?([^/?@]+)(\/[^?]*)?(\?.*)?$/;

function parseMongoUrl(reader: EnvReader, password: string | undefined): { url: string; database: string } {
  const value = reader.requiredString('MONGO_URL');
  if (value === '') return { url: '', database: 'jobs' };
  const m = MONGO_URL_RE.exec(value);
  if (m === null) {
    reader.problem(
      `MONGO_URL: got ${JSON.stringify(redactUrl(value))}, expected a URL like mongodb://user@host:27017/jobs?authSource=admin`,
    );
    return { url: '', database: 'jobs' };
  }
  const [, scheme = '', user, existingPassword, hosts = '', path, query = ''] = m;
  const database = path !== undefined && path.length > 1 ? decodeURIComponent(path.slice(1)) : 'jobs';
  if (!/^[^/\\. "$*<>:|?]{1,63}$/.test(database)) {
    reader.problem(`MONGO_URL: got database ${JSON.stringify(database)}, expected a MongoDB database name`);
  }
  let userinfo = '';
  if (user !== undefined && user !== '') {
    const pw = password !== undefined ? encodeURIComponent(password) : existingPassword;
    userinfo = pw !== undefined ? `${user}:${pw}@` : `${user}@`;
  } else if (password !== undefined) {
    reader.problem(
      `MONGO_URL: got ${JSON.stringify(redactUrl(value))}, expected a user name because MONGO_PASSWORD is set`,
    );
  }
  return { url: `${scheme}${userinfo}${hosts}/${encodeURIComponent(database)}${query}`, database };
}

/**
 * Defaults of the group commit settings, from the benchmark (BENCHMARKS.md, "Group commit"); the model's defaults
 * are the same numbers.
 */
export const GROUP_COMMIT_DEFAULTS = { maxSize: 100, maxWaitMs: 2 } as const;

export function readCommonConfig(reader: EnvReader, defaultPort: number): CommonConfig {
  const amqpUrl = parseAmqpUrl(reader, reader.secret('AMQP_PASSWORD'));
  const mongo = parseMongoUrl(reader, reader.secret('MONGO_PASSWORD'));
  return {
    amqpUrl,
    mongoUrl: mongo.url,
    mongoDatabase: mongo.database,
    logLevel: reader.oneOf('LOG_LEVEL', 'info', LOG_LEVELS),
    // Also used in queue names, so limited to characters that need no escaping anywhere (policies, CLIs).
    queuePrefix: reader.string('QUEUE_PREFIX', 'jobs', {
      re: /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/,
      expected: 'letters, digits, "_", "." or "-" (at most 100, starting with a letter or digit)',
    }),
    queueType: reader.oneOf<QueueType>('QUEUE_TYPE', 'classic', ['classic', 'quorum']),
    host: reader.string('HOST', '0.0.0.0', { re: /^[A-Za-z0-9.:\-[\]]+$/, expected: 'an IP address or host name' }),
    port: reader.integer('PORT', defaultPort, 1, 65535),
    enableTestHandlers: reader.boolean('ENABLE_TEST_HANDLERS', false),
    groupCommit: {
      maxSize: reader.integer('GROUP_COMMIT_MAX_SIZE', GROUP_COMMIT_DEFAULTS.maxSize, 1, 10_000),
      maxWaitMs: reader.integer('GROUP_COMMIT_MAX_WAIT_MS', GROUP_COMMIT_DEFAULTS.maxWaitMs, 0, 1000),
    },
  };
}
