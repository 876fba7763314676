import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import type { Logger } from '../shared/logger';

/**
 * API clients and their bearer tokens, from the file named by `API_KEYS_FILE`: one client per line,
 * `<client-id> <scopes> <sha256 hex of the token>`, scopes comma-separated; `#` starts a comment.
 * Only hashes are ever held: a token arrives in a request, is hashed, and the hash is compared with every
 * client's hash in constant time, so neither the file nor a heap dump nor a timing side channel gives a token away.
 * @see https://www.rfc-editor.org/rfc/rfc6750 (Bearer tokens)
 */

export const SCOPES = ['jobs:submit', 'jobs:read', 'jobs:admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface ApiClient {
  readonly id: string;
  readonly scopes: ReadonlySet<Scope>;
}

interface ClientEntry extends ApiClient {
  readonly tokenHash: Buffer;
}

const CLIENT_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/;
const SHA256_HEX_RE = /^[0-9a-f]{64}$/;

export class ApiKeysError extends Error {
  constructor(
    readonly source: string,
    readonly problems: readonly string[],
  ) {
    super(`${source}: ${problems.length === 1 ? problems[0] : `\n${problems.map((p) => `  - ${p}`).join('\n')}`}`);
    this.name = 'ApiKeysError';
  }
}

/** sha256 hex of a token: what the keys file holds (`printf %s "$token" | sha256sum`). */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Parses the keys file; throws one {@link ApiKeysError} naming the line and field of every problem. */
export function parseApiKeys(text: string, source: string): ApiClients {
  const problems: string[] = [];
  const entries: ClientEntry[] = [];
  const ids = new Map<string, number>();
  const hashes = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const lineNo = index + 1;
    const hash = raw.indexOf('#');
    const line = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
    if (line === '') return;
    const fields = line.split(/\s+/);
    const at = (n: number, name: string): string => `line ${lineNo}, field ${n} (${name})`;
    if (fields.length !== 3) {
      problems.push(
        `line ${lineNo}: got ${fields.length} field${fields.length === 1 ? '' : 's'}, expected 3: <client-id> <scopes> <sha256 hex of the token>`,
      );
      return;
    }
    const [id = '', scopeList = '', tokenHash = ''] = fields;
    let ok = true;
    if (!CLIENT_ID_RE.test(id)) {
      problems.push(
        `${at(1, 'client-id')}: got ${JSON.stringify(id)}, expected 1 to 64 letters, digits, "_", ".", "@" or "-", starting with a letter or digit`,
      );
      ok = false;
    } else if (ids.has(id)) {
      problems.push(
        `${at(1, 'client-id')}: got ${JSON.stringify(id)}, expected a client id not already on line ${ids.get(id)}`,
      );
      ok = false;
    }
    const scopes = new Set<Scope>();
    for (const s of scopeList.split(',')) {
      if ((SCOPES as readonly string[]).includes(s)) scopes.add(s as Scope);
      else {
        problems.push(
          `${at(2, 'scopes')}: got ${JSON.stringify(s)}, expected a comma-separated list of ${SCOPES.join(', ')}`,
        );
        ok = false;
      }
    }
    // The hash is not echoed: a plain token pasted here by mistake must not reach a log.
    if (!SHA256_HEX_RE.test(tokenHash)) {
      problems.push(
        `${at(3, 'sha256')}: got ${tokenHash.length} characters${/^[0-9a-fA-F]*$/.test(tokenHash) ? '' : ' (not all hex digits)'}, expected 64 lowercase hex digits, the sha256 of the token (not the token itself)`,
      );
      ok = false;
    } else if (hashes.has(tokenHash)) {
      problems.push(
        `${at(3, 'sha256')}: the same token hash as line ${hashes.get(tokenHash)}, expected one token per client`,
      );
      ok = false;
    }
    if (!ok) return;
    ids.set(id, lineNo);
    hashes.set(tokenHash, lineNo);
    entries.push({ id, scopes, tokenHash: Buffer.from(tokenHash, 'hex') });
  });
  if (problems.length === 0 && entries.length === 0) {
    problems.push('no clients, expected at least one line "<client-id> <scopes> <sha256 hex of the token>"');
  }
  if (problems.length > 0) throw new ApiKeysError(source, problems);
  return new ApiClients(entries);
}

export class ApiClients {
  constructor(private readonly entries: readonly ClientEntry[]) {}

  get size(): number {
    return this.entries.length;
  }

  /**
   * The client whose token this is. Every entry is compared (no early exit, timingSafeEqual), so the time taken
   * does not depend on which client, if any, matched.
   */
  authenticate(token: string): ApiClient | undefined {
    const presented = createHash('sha256').update(token, 'utf8').digest();
    let found: ClientEntry | undefined;
    for (const entry of this.entries) {
      if (timingSafeEqual(entry.tokenHash, presented) && found === undefined) found = entry;
    }
    return found === undefined ? undefined : { id: found.id, scopes: found.scopes };
  }
}

function readKeysFileSync(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ApiKeysError(`API_KEYS_FILE ${JSON.stringify(path)}`, [
      `expected a readable file (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    ]);
  }
}

/**
 * The keys file, re-read every `intervalMs` and swapped in when its content changed and parses. Polling the
 * content rather than watching: Kubernetes updates a mounted Secret by swapping a `..data` symlink (inotify on
 * the file sees nothing, or a delete), Docker bind mounts of an edited file keep the old inode on some editors,
 * and mtime has one-second granularity on some filesystems. The file is a few hundred bytes, so reading it
 * every few seconds costs nothing. A file that fails to parse keeps the previous clients (a half-written file
 * must not lock every client out) and is logged with its line and field.
 */
export class ApiKeysFile {
  private text: string;
  private timer: NodeJS.Timeout | undefined;
  private checking = false;

  private constructor(
    private readonly path: string,
    text: string,
    private clientsNow: ApiClients,
    private readonly logger: Logger,
  ) {
    this.text = text;
  }

  /** Reads and parses the file synchronously, at startup; throws {@link ApiKeysError} naming line and field. */
  static load(path: string, logger: Logger): ApiKeysFile {
    const text = readKeysFileSync(path);
    return new ApiKeysFile(path, text, parseApiKeys(text, `API_KEYS_FILE ${JSON.stringify(path)}`), logger);
  }

  get clients(): ApiClients {
    return this.clientsNow;
  }

  /** Re-reads the file now; resolves true when a new set of clients was loaded. */
  async check(): Promise<boolean> {
    if (this.checking) return false;
    this.checking = true;
    try {
      const text = await readFile(this.path, 'utf8');
      if (text === this.text) return false;
      const clients = parseApiKeys(text, `API_KEYS_FILE ${JSON.stringify(this.path)}`);
      this.text = text;
      this.clientsNow = clients;
      this.logger.info({ clients: clients.size }, 'API keys reloaded');
      return true;
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, 'API keys file not reloaded; keeping the previous clients');
      return false;
    } finally {
      this.checking = false;
    }
  }

  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.check(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }
}

/** Scope a route needs; `jobs:admin` includes the others. */
export function hasScope(client: ApiClient, scope: Scope): boolean {
  return client.scopes.has(scope) || client.scopes.has('jobs:admin');
}

export function isAdmin(client: ApiClient): boolean {
  return client.scopes.has('jobs:admin');
}
