/**
 * Cross-target parity: service names, ports, environment variable names, volumes and health checks agree across
 * every target's synthesized output. A target whose files do not exist yet is skipped by name; when the lead runs
 * the final suite every target exists. Also: the README's feature table is the generated one.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TARGETS } from '../../constructs';
import { featureTable, parityReport } from '../../constructs/parity';
import { ENVIRONMENTS } from '../../infra/app';
import { REPO_ROOT, synthAll } from '../helpers';
import { allOutputs } from './load';
import type { ComposeDoc, K8sObject, Parsed } from './outputs';
import { podSpecOf } from './rules';

jest.setTimeout(120_000);

type Obj = Record<string, unknown>;

/** What parity compares, per service. */
interface ServiceFacts {
  env: string[];
  /** `host:container` published pairs. */
  published: string[];
  /** Data volume mount paths (named volumes / claims). */
  dataPaths: string[];
  /** Exec health command, or `http:<port><path>` for an HTTP check. */
  health: string;
}
type Facts = Record<string, ServiceFacts>;

const sorted = (xs: Iterable<string>): string[] => [...new Set(xs)].sort();

function composeFacts(doc: ComposeDoc, swarm: boolean): Facts {
  const out: Facts = {};
  for (const [name, s] of Object.entries(doc.services)) {
    const env = Array.isArray(s.environment)
      ? s.environment.map((e) => e.split('=')[0]!)
      : Object.keys(s.environment ?? {});
    const test = Array.isArray(s.healthcheck?.test) ? s.healthcheck.test : [];
    out[name] = {
      env: sorted(env),
      published: sorted(
        (s.ports ?? []).map((p) => {
          if (typeof p === 'string') {
            const parts = p.split(':');
            return `${parts[parts.length - 2]}:${parts[parts.length - 1]}`;
          }
          return `${p.published}:${p.target}`;
        }),
      ),
      dataPaths: sorted(
        (s.volumes ?? []).flatMap((v) => (typeof v === 'object' && v.type === 'volume' && v.target ? [v.target] : [])),
      ),
      health: test.slice(1).join(' '),
    };
    void swarm;
  }
  return out;
}

function k8sFacts(docs: readonly K8sObject[]): Facts {
  const out: Facts = {};
  const configMaps = new Map(
    docs
      .filter((d) => d.kind === 'ConfigMap')
      .map((d) => [d.metadata.name, Object.keys((d.data as Obj | undefined) ?? {})]),
  );
  for (const d of docs.filter((x) => x.kind === 'Deployment' || x.kind === 'StatefulSet')) {
    const spec = podSpecOf(d)!;
    const c = (spec.containers as Obj[]).find((x) => x.name === d.metadata.name) ?? (spec.containers as Obj[])[0]!;
    const env = [
      ...((c.env as { name: string }[] | undefined) ?? []).map((e) => e.name),
      ...((c.envFrom as { configMapRef?: { name: string } }[] | undefined) ?? []).flatMap(
        (e) => configMaps.get(e.configMapRef?.name ?? '') ?? [],
      ),
    ];
    const claims = new Set(
      (((d.spec as Obj).volumeClaimTemplates as { metadata: { name: string } }[] | undefined) ?? []).map(
        (v) => v.metadata.name,
      ),
    );
    const probe = (c.readinessProbe ?? {}) as {
      exec?: { command: string[] };
      httpGet?: { port: number; path: string };
    };
    out[d.metadata.name] = {
      env: sorted(env),
      published: [],
      dataPaths: sorted(
        ((c.volumeMounts as { name: string; mountPath: string }[] | undefined) ?? [])
          .filter((m) => claims.has(m.name))
          .map((m) => m.mountPath),
      ),
      health: probe.exec
        ? probe.exec.command.join(' ')
        : probe.httpGet
          ? `http:${probe.httpGet.port}${probe.httpGet.path}`
          : '',
    };
  }
  return out;
}

function pulumiFacts(p: Extract<Parsed, { target: 'pulumi' }>): Facts {
  const out: Facts = {};
  for (const c of p.pulumi.containers) {
    const name = c.service ?? c.name;
    const prev = out[name];
    const facts: ServiceFacts = {
      env: sorted((c.envs ?? []).map((e) => e.split('=')[0]!)),
      published: sorted(
        (c.ports ?? []).filter((x) => x.external !== undefined).map((x) => `${x.external}:${x.internal}`),
      ),
      // The read-only secrets volume is how secrets arrive (compared by the secrets checks), not data.
      dataPaths: sorted(
        (c.volumes ?? []).flatMap((v) =>
          v.containerPath && v.volumeName && v.readOnly !== true ? [v.containerPath] : [],
        ),
      ),
      health: (c.healthcheck?.tests ?? []).slice(1).join(' '),
    };
    // Replicas: published ports come from replica 0 only (an accepted gap); the rest must agree.
    out[name] = prev ? { ...facts, published: sorted([...prev.published, ...facts.published]) } : facts;
  }
  return out;
}

describe.each(ENVIRONMENTS.map((e) => [e]))('cross-target parity in %s', (env) => {
  let facts: Partial<Record<Parsed['target'], Facts>>;
  let dockerfiles: Record<string, string>;
  beforeAll(async () => {
    facts = {};
    dockerfiles = {};
    for (const o of (await allOutputs()).filter((x) => x.env === env)) {
      if (o.target === 'compose' || o.target === 'swarm') facts[o.target] = composeFacts(o.doc, o.target === 'swarm');
      else if (o.target === 'kubernetes') facts.kubernetes = k8sFacts(o.docs);
      else if (o.target === 'pulumi') facts.pulumi = pulumiFacts(o);
      else if (o.target === 'dockerfile') dockerfiles[o.file.split('/')[1]!.replace('.Dockerfile', '')] = o.text;
    }
  });

  const others = ['swarm', 'kubernetes', 'pulumi'] as const;
  const present = (t: string): boolean => t === 'pulumi' || TARGETS.some((x) => x.name === t);

  for (const target of others) {
    const maybe = present(target) ? test : test.skip;
    maybe(`${target} has the same services as Compose`, () => {
      expect(Object.keys(facts[target]!).sort()).toEqual(Object.keys(facts.compose!).sort());
    });
    maybe(`${target} gives every service the environment variable names Compose gives it`, () => {
      for (const [name, c] of Object.entries(facts.compose!)) {
        const theirs = facts[target]![name]!.env;
        // Kubernetes may add variables of its own (pod name for peer discovery); none of Compose's may be missing.
        if (target === 'kubernetes')
          expect({ name, missing: c.env.filter((v) => !theirs.includes(v)) }).toEqual({ name, missing: [] });
        else expect({ name, env: theirs }).toEqual({ name, env: c.env });
      }
    });
    maybe(`${target} mounts the same data volumes as Compose`, () => {
      for (const [name, c] of Object.entries(facts.compose!)) {
        expect({ name, dataPaths: facts[target]![name]!.dataPaths }).toEqual({ name, dataPaths: c.dataPaths });
      }
    });
    maybe(
      `${target} runs the same health checks as Compose (HTTP probes on the services' own port in Kubernetes)`,
      () => {
        for (const [name, c] of Object.entries(facts.compose!)) {
          const theirs = facts[target]![name]!.health;
          if (target === 'kubernetes' && theirs.startsWith('http:')) {
            const port = /^http:(\d+)/.exec(theirs)![1]!;
            expect({ name, port, check: c.health }).toEqual({
              name,
              port: String(port),
              check: 'node dist/healthcheck.js',
            });
          } else {
            expect({ name, health: theirs }).toEqual({ name, health: c.health });
          }
        }
      },
    );
    if (target !== 'kubernetes') {
      maybe(`${target} publishes the same ports as Compose`, () => {
        for (const [name, c] of Object.entries(facts.compose!)) {
          expect({ name, published: facts[target]![name]!.published }).toEqual({ name, published: c.published });
        }
      });
    }
  }

  test('every Dockerfile HEALTHCHECK runs the command Compose runs for that service', () => {
    for (const [name, text] of Object.entries(dockerfiles)) {
      const cmd = /^\s+CMD (\[.*\])$/m.exec(text.slice(text.indexOf('HEALTHCHECK')))?.[1];
      expect({ name, health: (JSON.parse(cmd ?? '[]') as string[]).join(' ') }).toEqual({
        name,
        health: facts.compose![name]!.health,
      });
    }
  });
});

describe('the feature table', () => {
  test("the README's feature table between the feature-table markers is the generated one", async () => {
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    const m = /<!-- feature-table:start -->\n([\s\S]*?)<!-- feature-table:end -->/.exec(readme);
    if (!m) throw new Error('README.md has no <!-- feature-table:start --> … <!-- feature-table:end --> markers');
    const result = await synthAll();
    expect(m[1]).toBe(featureTable(parityReport(TARGETS, result.acceptedGaps, result.resolved)));
  });

  test('dist/PARITY.md carries the same table and lists every accepted gap with its reason', async () => {
    const result = await synthAll();
    const md = result.files.find((f) => f.path === 'PARITY.md')!.content;
    expect(md).toContain(featureTable(parityReport(TARGETS, result.acceptedGaps, result.resolved)));
    for (const g of result.acceptedGaps)
      expect(md).toContain(`| ${g.target} | ${g.feature} | ${g.path} | ${g.detail} | ${g.reason} |`);
  });
});
