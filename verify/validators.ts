/**
 * The independent validators `npm run verify` runs on the synthesized files, and the committed exceptions to their
 * findings. Each validator is a tool nobody in this repository wrote; it finds its files by globbing
 * `<dist>/<env>/…`, so a new target's files are checked as soon as they exist.
 *
 * Installed by `scripts/install-validators.sh` (into `.tools/bin`, `.tools/venv-*`) or as root devDependencies.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, dirname, join, relative, resolve as resolvePath, sep } from 'node:path';
import Ajv, { type ValidateFunction } from 'ajv';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { parse, parseAllDocuments } from 'yaml';

/** Repository root: verify/ lives at the top, and compiles to build/verify/. */
export const REPO_ROOT = ((): string => {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json')) || basename(dir) === 'build') dir = dirname(dir);
  return dir;
})();

/**
 * The Compose Specification's JSON schema as Compose v2 itself embeds it: `schema/compose-spec.json` of the Go module
 * `github.com/compose-spec/compose-go/v2`, copied into `.tools/schemas/` by `scripts/bootstrap.sh schemas` at the
 * version pinned there (written beside it in `compose-spec.version`).
 * @see https://github.com/compose-spec/compose-go/tree/main/schema
 */
export const COMPOSE_SCHEMA = join(REPO_ROOT, '.tools', 'schemas', 'compose-spec.json');
const COMPOSE_SCHEMA_INSTALL = 'bash scripts/bootstrap.sh schemas';

/** compose-go's version the schema came from, or null when the schema is not installed. */
export function composeSchemaVersion(): string | null {
  const file = join(dirname(COMPOSE_SCHEMA), 'compose-spec.version');
  return existsSync(COMPOSE_SCHEMA) && existsSync(file) ? readFileSync(file, 'utf8').trim() : null;
}

/**
 * Compiles the compose-spec schema with the Ajv dialect its `$schema` names (compose-go's is draft 2020-12; older
 * copies were draft-07). Throws, naming the command that installs it, when it is missing.
 */
export function compileComposeSchema(): ValidateFunction {
  if (composeSchemaVersion() === null)
    throw new Error(`compose-spec schema not found at ${COMPOSE_SCHEMA}; install it with ${COMPOSE_SCHEMA_INSTALL}`);
  const schema = JSON.parse(readFileSync(COMPOSE_SCHEMA, 'utf8')) as { $schema?: string };
  // The schema names its meta-schema by an https URL that would be fetched to validate the schema itself: skip that.
  const options = { strict: false, allErrors: true, validateSchema: false };
  const ajv = schema.$schema?.includes('2020-12') === true ? new Ajv2020(options) : new Ajv(options);
  addFormats(ajv);
  return ajv.compile(schema);
}

/** One problem a validator reported. */
export interface Finding {
  /** Path relative to the dist directory (`dev/compose.yaml`). */
  readonly file: string;
  /** The validator's own id of the check (`container-resources`, `line-length`, `CKV_K8S_20`). */
  readonly rule: string;
  /** The object the finding is about, when the tool says (`Deployment/producer`), else ''. */
  readonly object: string;
  readonly message: string;
}

export interface Validator {
  readonly name: string;
  /** The executable, looked up in .tools/bin, node_modules/.bin, then PATH; null when none is needed. */
  readonly command: string | null;
  /** How to install it, for the message when it is missing. */
  readonly install: string;
  /** Files it checks, relative to the dist directory. */
  files(dist: string): string[];
  version(exe: string): string;
  /** Runs the tool on the files (absolute paths) and returns every finding, excepted or not. */
  run(exe: string, files: readonly string[], dist: string): Finding[];
}

/** Every file under `dir`, relative to it, `/`-separated and sorted. */
export function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, e.name);
      if (e.isDirectory()) walk(full);
      else out.push(relative(dir, full).split(sep).join('/'));
    }
  };
  walk(dir);
  return out.sort();
}

const byName =
  (test: RegExp) =>
  (dist: string): string[] =>
    listFiles(dist).filter((f) => test.test(f));

export const isYaml = /\.ya?ml$/;
export const isCompose = /(^|\/)compose\.ya?ml$/;
export const isStack = /(^|\/)docker-stack\.ya?ml$/;
export const isKubernetes = /\.k8s\.ya?ml$/;
export const isDockerfile = /\.Dockerfile$/;

/** Finds an executable: the project's own installs first, so a system copy of another version is not used. */
export function findExecutable(command: string): string | null {
  const dirs = [
    join(REPO_ROOT, '.tools', 'bin'),
    join(REPO_ROOT, 'node_modules', '.bin'),
    ...(process.env.PATH ?? '').split(delimiter),
  ];
  for (const d of dirs) {
    const candidate = join(d, command);
    if (d !== '' && existsSync(candidate)) return candidate;
  }
  return null;
}

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function exec(exe: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Run {
  const r = spawnSync(exe, args, {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    env: options.env ?? process.env,
    cwd: options.cwd ?? REPO_ROOT,
    timeout: 300_000,
  });
  if (r.error) throw new Error(`${exe} ${args.join(' ')}: ${r.error.message}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A tool that exited non-zero without any finding we could parse: the output itself is the finding. */
function crashed(file: string, tool: string, r: Run): Finding[] {
  if (r.status === 0) return [];
  return [
    { file, rule: 'tool-error', object: '', message: `${tool} exited ${r.status}: ${(r.stderr || r.stdout).trim()}` },
  ];
}

function rel(dist: string, file: string): string {
  return relative(dist, file).split(sep).join('/');
}

// ---------------------------------------------------------------------------------------------------------------

/** @see https://yamllint.readthedocs.io/en/stable/configuration.html */
const yamllint: Validator = {
  name: 'yamllint',
  command: 'yamllint',
  install: 'apt-get install yamllint',
  files: byName(isYaml),
  version: (exe) =>
    exec(exe, ['--version'])
      .stdout.trim()
      .replace(/^yamllint /, ''),
  run(exe, files, dist) {
    const r = exec(exe, ['-f', 'parsable', '-c', join(REPO_ROOT, 'verify', 'yamllint.yaml'), ...files]);
    const findings: Finding[] = [];
    for (const line of r.stdout.split('\n')) {
      const m = /^(.*?):(\d+):(\d+): \[(\w+)\] (.*) \(([\w-]+)\)$/.exec(line);
      if (m)
        findings.push({ file: rel(dist, m[1]!), rule: m[6]!, object: `line ${m[2]}`, message: `[${m[4]}] ${m[5]}` });
    }
    return findings.length > 0 ? findings : crashed('', 'yamllint', r);
  },
};

/** The current Compose file format, checked with Ajv (draft-07). */
const composeSchema: Validator = {
  name: 'compose-spec schema',
  command: null,
  install: COMPOSE_SCHEMA_INSTALL,
  files: byName(isCompose),
  version() {
    const ajvVersion = (
      JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', 'ajv', 'package.json'), 'utf8')) as { version: string }
    ).version;
    return `compose-go ${composeSchemaVersion() ?? 'unknown'} schema/compose-spec.json (ajv ${ajvVersion})`;
  },
  run(_exe, files, dist) {
    const validate = compileComposeSchema();
    const findings: Finding[] = [];
    for (const file of files) {
      if (validate(parse(readFileSync(file, 'utf8')))) continue;
      for (const e of validate.errors ?? []) {
        findings.push({
          file: rel(dist, file),
          rule: e.keyword,
          object: e.instancePath,
          message: `${e.instancePath} ${e.message ?? ''} ${JSON.stringify(e.params)}`,
        });
      }
    }
    return findings;
  },
};

/**
 * Debian's docker-compose 1.29 predates the top-level `name:`, so that one key is removed and passed as `-p`.
 * @see https://docs.docker.com/reference/compose-file/version-and-name/
 */
const dockerCompose: Validator = {
  name: 'docker-compose config',
  command: 'docker-compose',
  install: 'apt-get install docker-compose',
  files: byName(isCompose),
  version: (exe) =>
    /version ([\d.]+)/.exec(exec(exe, ['version', '--short']).stdout + exec(exe, ['--version']).stdout)?.[1] ??
    'unknown',
  run(exe, files, dist) {
    const findings: Finding[] = [];
    const tmp = mkdtempSync(join(tmpdir(), 'verify-compose-'));
    try {
      for (const file of files) {
        const text = readFileSync(file, 'utf8');
        const name = /^name: (.*)$/m.exec(text)?.[1] ?? basename(dirname(file));
        const copy = join(tmp, `${basename(dirname(file))}-compose.yaml`);
        writeFileSync(copy, text.replace(/^name: .*\n/m, ''));
        // Relative paths in the file (build contexts, secret files) are written for its place in the repository's
        // dist/<env>/, wherever this copy is checked (a temp dir in the mutation tests).
        const project = join(REPO_ROOT, 'dist', basename(dirname(file)));
        const r = exec(exe, [
          '-p',
          name,
          '--project-directory',
          existsSync(project) ? project : dirname(file),
          '-f',
          copy,
          'config',
          '-q',
        ]);
        const out = `${r.stdout}${r.stderr}`.trim();
        if (r.status !== 0 || out !== '')
          findings.push({ file: rel(dist, file), rule: 'config', object: '', message: out || `exit ${r.status}` });
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    return findings;
  },
};

/**
 * Swarm's own reading of a stack file (the v3 schema: rejects Compose-only keys). The stack's secret names carry a
 * version variable set at deploy time (`${X_VERSION:?…}`); any value does for validation.
 */
const dockerStack: Validator = {
  name: 'docker stack config',
  command: 'docker',
  install: 'apt-get install docker.io (the docker client)',
  files: byName(isStack),
  version: (exe) => exec(exe, ['version', '--format', '{{.Client.Version}}']).stdout.trim(),
  run(exe, files, dist) {
    const findings: Finding[] = [];
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      const env: NodeJS.ProcessEnv = { ...process.env };
      for (const m of text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[?-][^}]*)?\}/g)) env[m[1]!] = 'verify0000';
      const r = exec(exe, ['stack', 'config', '-c', file], { env, cwd: dirname(file) });
      if (r.status !== 0 || r.stderr.trim() !== '') {
        findings.push({ file: rel(dist, file), rule: 'config', object: '', message: (r.stderr || r.stdout).trim() });
      }
    }
    return findings;
  },
};

/** @see https://github.com/rcjsuen/dockerfile-utils (the Dockerfile language server's diagnostics) */
const dockerfileUtils: Validator = {
  name: 'dockerfile-utils lint',
  command: 'dockerfile-utils',
  install: 'npm ci (root devDependency dockerfile-utils)',
  files: byName(isDockerfile),
  version: () =>
    (
      JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', 'dockerfile-utils', 'package.json'), 'utf8')) as {
        version: string;
      }
    ).version,
  run(exe, files, dist) {
    const findings: Finding[] = [];
    for (const file of files) {
      const r = exec(exe, ['lint', file]);
      const out = r.stdout.trim();
      for (const block of out.split(/\n\s*\n/)) {
        const line = /^Line: (\d+)/m.exec(block)?.[1];
        const msg = /^(Error|Warning|Information|Hint): (.*)$/m.exec(block);
        if (line && msg)
          findings.push({
            file: rel(dist, file),
            rule: msg[2]!,
            object: `line ${line}`,
            message: `${msg[1]}: ${msg[2]}`,
          });
      }
      if (findings.length === 0) findings.push(...crashed(rel(dist, file), 'dockerfile-utils', r));
    }
    return findings;
  },
};

interface DockerfilelintReport {
  files: { file: string; issues: { line: string; content: string; title: string; description: string }[] }[];
}

/** @see https://github.com/replicatedhq/dockerfilelint */
const dockerfilelint: Validator = {
  name: 'dockerfilelint',
  command: 'dockerfilelint',
  install: 'npm ci (root devDependency dockerfilelint)',
  files: byName(isDockerfile),
  version: (exe) => exec(exe, ['--version']).stdout.trim(),
  run(exe, files, dist) {
    if (files.length === 0) return [];
    const r = exec(exe, ['-o', 'json', ...files]);
    let report: DockerfilelintReport;
    try {
      report = JSON.parse(r.stdout) as DockerfilelintReport;
    } catch {
      return crashed('', 'dockerfilelint', { ...r, status: r.status ?? 1 });
    }
    return report.files.flatMap((f) =>
      f.issues.map((i) => ({
        file: rel(dist, resolvePath(REPO_ROOT, f.file)),
        rule: i.title,
        object: `line ${i.line}: ${i.content.trim()}`,
        message: i.description,
      })),
    );
  },
};

interface KubeScoreObject {
  object_name: string;
  type_meta: { kind: string };
  file_name: string;
  checks: {
    check: { id: string; name: string };
    grade: number;
    skipped: boolean;
    comments: { summary: string; path: string; description: string }[] | null;
  }[];
}

/**
 * kube-score's JSON v2: a check with grade below 10 (ALL OK) that was not skipped is a finding. The optional seccomp
 * check is on: the policy requires RuntimeDefault.
 * @see https://github.com/zegl/kube-score/blob/master/README_CHECKS.md
 */
const kubeScore: Validator = {
  name: 'kube-score',
  command: 'kube-score',
  install: 'bash scripts/install-validators.sh',
  files: byName(isKubernetes),
  version: (exe) => /version: ([^,\s]+)/.exec(exec(exe, ['version']).stdout)?.[1] ?? 'unknown',
  run(exe, files, dist) {
    const findings: Finding[] = [];
    for (const file of files) {
      const r = exec(exe, [
        'score',
        '--output-format',
        'json',
        '--kubernetes-version',
        'v1.28',
        '--enable-optional-test',
        'container-seccomp-profile',
        file,
      ]);
      let objects: KubeScoreObject[];
      try {
        objects = JSON.parse(r.stdout) as KubeScoreObject[];
      } catch {
        findings.push(...crashed(rel(dist, file), 'kube-score', { ...r, status: r.status ?? 1 }));
        continue;
      }
      for (const o of objects) {
        for (const c of o.checks) {
          if (c.skipped || c.grade >= 10) continue;
          const comments = (c.comments ?? []).map((x) => `${x.path ? `${x.path}: ` : ''}${x.summary}`).join('; ');
          findings.push({
            file: rel(dist, file),
            rule: c.check.id,
            object: `${o.type_meta.kind}/${o.object_name.split('/').pop() ?? o.object_name}`,
            message: `${c.check.name}: ${comments}`,
          });
        }
      }
    }
    return findings;
  },
};

/**
 * Kubernetes 1.28's OpenAPI schemas, strict: unknown fields are errors (as `kubectl apply --validate=strict` would).
 * @see https://github.com/willthames/kubernetes-validate
 */
const kubernetesValidate: Validator = {
  name: 'kubernetes-validate --strict (1.28)',
  command: 'kubernetes-validate',
  install: 'bash scripts/install-validators.sh',
  files: byName(isKubernetes),
  version: (exe) => exec(exe, ['--version']).stdout.trim(),
  run(exe, files, dist) {
    const findings: Finding[] = [];
    for (const file of files) {
      const r = exec(exe, ['--strict', '--quiet', '-k', '1.28.0', file]);
      for (const line of `${r.stdout}\n${r.stderr}`.split('\n')) {
        const m = /^(ERROR|WARN\w*)\s+(.*)$/.exec(line.trim());
        if (!m) continue;
        const kind = /kind (\S+) with api version (\S+)/.exec(m[2]!);
        findings.push({
          file: rel(dist, file),
          rule: m[1]!.toLowerCase(),
          object: kind ? `${kind[2]}/${kind[1]}` : '',
          message: m[2]!.split(file).join('').trim(),
        });
      }
      if (findings.length === 0 && r.status !== 0) findings.push(...crashed(rel(dist, file), 'kubernetes-validate', r));
    }
    return findings;
  },
};

interface CheckovReport {
  check_type: string;
  results: { failed_checks: { check_id: string; check_name: string; resource: string; file_path: string }[] };
}

/**
 * Bridgecrew's checkov, the Kubernetes and Dockerfile checks (privilege escalation, capabilities, host namespaces,
 * seccomp, secrets in env, HEALTHCHECK, USER…). Run offline: `--skip-download` fetches no policies.
 * @see https://www.checkov.io/5.Policy%20Index/kubernetes.html
 */
const checkov: Validator = {
  name: 'checkov',
  command: 'checkov',
  install: 'bash scripts/install-validators.sh',
  files: (dist) =>
    listFiles(dist).filter((f) => isKubernetes.test(f) || isDockerfile.test(f) || isCompose.test(f) || isStack.test(f)),
  version: (exe) => exec(exe, ['--version']).stdout.trim(),
  run(exe, files, dist) {
    // One run over a scratch directory (checkov starts slowly): each file under a name checkov recognizes,
    // Dockerfiles as `<n>/Dockerfile`, mapped back by path afterwards.
    const tmp = mkdtempSync(join(tmpdir(), 'verify-checkov-'));
    const back = new Map<string, string>();
    try {
      files.forEach((file, i) => {
        const copy = isDockerfile.test(file) ? join(`f${i}`, 'Dockerfile') : `f${i}.yaml`;
        mkdirSync(dirname(join(tmp, copy)), { recursive: true });
        writeFileSync(join(tmp, copy), readFileSync(file, 'utf8'));
        back.set(copy, rel(dist, file));
      });
      // kubernetes and dockerfile checks where they apply; the secrets framework (detect-secrets: keywords,
      // high-entropy strings) on every file, Compose and Swarm included.
      const r = exec(
        exe,
        [
          '-d',
          tmp,
          '--framework',
          'kubernetes',
          'dockerfile',
          'secrets',
          '-o',
          'json',
          '--compact',
          '--quiet',
          '--skip-download',
        ],
        {
          env: { ...process.env, BC_SKIP_MAPPING: 'TRUE' },
        },
      );
      let reports: CheckovReport[];
      try {
        const parsed = JSON.parse(r.stdout) as CheckovReport | CheckovReport[];
        reports = Array.isArray(parsed) ? parsed : [parsed];
      } catch {
        return crashed('', 'checkov', { ...r, status: r.status === 0 ? 1 : r.status });
      }
      const findings: Finding[] = [];
      for (const report of reports) {
        for (const c of report.results?.failed_checks ?? []) {
          const file = back.get(c.file_path.replace(/^\//, '')) ?? c.file_path;
          // `Kind.namespace.name` → `Kind/name`, the form the exceptions and the other tools use.
          const parts = c.resource.split('.');
          const object =
            report.check_type === 'kubernetes' && parts.length >= 3
              ? `${parts[0]}/${parts[parts.length - 1]}`
              : c.resource;
          findings.push({ file, rule: c.check_id, object, message: c.check_name });
        }
      }
      return findings;
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  },
};

export const VALIDATORS: readonly Validator[] = [
  yamllint,
  composeSchema,
  dockerCompose,
  dockerStack,
  dockerfileUtils,
  dockerfilelint,
  kubeScore,
  kubernetesValidate,
  checkov,
];

export function validatorNamed(name: string): Validator {
  const v = VALIDATORS.find((x) => x.name === name);
  if (!v)
    throw new Error(
      `no validator ${JSON.stringify(name)}; expected one of ${VALIDATORS.map((x) => x.name).join(', ')}`,
    );
  return v;
}

// ---------------------------------------------------------------------------------------------------------------

/** A finding accepted on purpose, with the reason. Committed in verify/exceptions.yaml. */
export interface Exception {
  readonly validator: string;
  readonly rule: string;
  /** Glob over the file path relative to dist (`*` within a segment, `**` across). @default every file */
  readonly files?: string;
  /** Regular expression over the finding's object (`^StatefulSet/`). @default every object */
  readonly object?: string;
  readonly reason: string;
}

export const EXCEPTIONS_FILE = join(REPO_ROOT, 'verify', 'exceptions.yaml');

export function loadExceptions(path = EXCEPTIONS_FILE): Exception[] {
  const doc = parse(readFileSync(path, 'utf8')) as { exceptions?: Exception[] } | null;
  const list = doc?.exceptions ?? [];
  const problems: string[] = [];
  list.forEach((e, i) => {
    if (!VALIDATORS.some((v) => v.name === e.validator))
      problems.push(
        `exceptions[${i}].validator: got ${JSON.stringify(e.validator)}, expected one of ${VALIDATORS.map((v) => v.name).join(', ')}`,
      );
    if (typeof e.rule !== 'string' || e.rule === '')
      problems.push(`exceptions[${i}].rule: got ${JSON.stringify(e.rule)}, expected the validator's rule id`);
    if (typeof e.reason !== 'string' || e.reason.trim().length < 20)
      problems.push(
        `exceptions[${i}].reason: got ${JSON.stringify(e.reason)}, expected a reason of at least 20 characters`,
      );
  });
  if (problems.length > 0) throw new Error(`${path}: ${problems.join('; ')}`);
  return list;
}

function globToRegExp(glob: string): RegExp {
  const re = glob
    .split('**')
    .map((part) =>
      part
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '[^/]*')
        .replace(/\?/g, '[^/]'),
    )
    .join('.*');
  return new RegExp(`^${re}$`);
}

export function excepts(e: Exception, validator: string, f: Finding): boolean {
  return (
    e.validator === validator &&
    e.rule === f.rule &&
    (e.files === undefined || globToRegExp(e.files).test(f.file)) &&
    (e.object === undefined || new RegExp(e.object).test(f.object))
  );
}

export interface ValidatorResult {
  readonly name: string;
  readonly version: string;
  readonly files: readonly string[];
  /** Findings no exception covers. */
  readonly findings: readonly Finding[];
  readonly excepted: readonly { finding: Finding; reason: string }[];
  /** Why it did not run (missing tool), or null. */
  readonly missing: string | null;
}

/** Runs one validator over the dist directory and sorts its findings into excepted and not. */
export function runValidator(v: Validator, dist: string, exceptions: readonly Exception[]): ValidatorResult {
  const files = v.files(dist);
  const exe = v.command === null ? '' : findExecutable(v.command);
  if (exe === null || (v.command === null && composeSchemaVersion() === null)) {
    return {
      name: v.name,
      version: 'not installed',
      files,
      findings: [],
      excepted: [],
      missing: `${v.command ?? v.name} is not installed (${v.install})`,
    };
  }
  const version = v.version(exe);
  const all =
    files.length === 0
      ? []
      : v.run(
          exe,
          files.map((f) => join(dist, f)),
          dist,
        );
  const findings: Finding[] = [];
  const excepted: { finding: Finding; reason: string }[] = [];
  for (const f of all) {
    const e = exceptions.find((x) => excepts(x, v.name, f));
    if (e) excepted.push({ finding: f, reason: e.reason.trim() });
    else findings.push(f);
  }
  return { name: v.name, version, files, findings, excepted, missing: null };
}

/** Parses every YAML document of a file (for tests and mutation copies). */
export function yamlDocuments(text: string): unknown[] {
  return parseAllDocuments(text).map((d) => d.toJSON() as unknown);
}
