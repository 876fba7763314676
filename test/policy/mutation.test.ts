/**
 * Mutation tests: for each policy rule, one field is flipped in a copy of the synthesized output, and both the rule
 * and at least one independent validator must fail on the copy. Where no installed validator can catch a rule on a
 * target, the test says so in its name and pairs the rule with a target whose validator does.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { findExecutable, loadExceptions, runValidator, validatorNamed } from '../../verify/validators';
import { synthFile } from '../helpers';
import { clone, parseOutput, type ComposeDoc, type K8sObject, type Parsed } from './outputs';
import { podSpecOf, ruleNamed } from './rules';

jest.setTimeout(180_000);

type Obj = Record<string, unknown>;

/** Parsed output of one synthesized file. */
async function parsed(path: string): Promise<Parsed> {
  const p = parseOutput({ path, content: await synthFile(path) });
  if (!p) throw new Error(`${path} is not a policy file`);
  return p;
}

function text(p: Parsed): string {
  switch (p.target) {
    case 'dockerfile':
      return p.text;
    case 'compose':
    case 'swarm':
      return stringify(p.doc);
    case 'kubernetes':
      return p.docs.map((d) => stringify(d)).join('---\n');
    default:
      throw new Error('the Pulumi program is not a file');
  }
}

/** Runs a validator on the mutated copy (as `<env>/<file>` in a scratch dist) and returns its unexcepted rule ids. */
function validatorRules(validator: string, p: Parsed): string[] {
  const dist = mkdtempSync(join(tmpdir(), 'policy-mutation-'));
  try {
    const file = join(dist, p.file);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text(p));
    const result = runValidator(validatorNamed(validator), dist, loadExceptions());
    if (result.missing !== null) throw new Error(result.missing);
    return [...new Set(result.findings.map((f) => f.rule))];
  } finally {
    rmSync(dist, { recursive: true, force: true });
  }
}

/** A test that needs an external validator: skipped with the reason when it is missing, failed under CI=true. */
function withValidator(validator: string): jest.It {
  const command = validatorNamed(validator).command;
  if (command === null || findExecutable(command) !== null || process.env.CI === 'true') return test;
  return test.skip;
}

function workload(p: Parsed, kind: string, name: string): K8sObject {
  if (p.target !== 'kubernetes') throw new Error('not Kubernetes');
  const o = p.docs.find((d) => d.kind === kind && d.metadata.name === name);
  if (!o) throw new Error(`no ${kind}/${name}`);
  return o;
}

function container(p: Parsed, kind: string, name: string): Obj {
  return (podSpecOf(workload(p, kind, name))!.containers as Obj[])[0]!;
}

function security(c: Obj): Obj {
  c.securityContext ??= {};
  return c.securityContext as Obj;
}

function compose(p: Parsed): ComposeDoc {
  if (p.target !== 'compose' && p.target !== 'swarm') throw new Error('not Compose');
  return p.doc;
}

interface Case {
  readonly rule: string;
  readonly what: string;
  readonly file: string;
  readonly mutate: (p: Parsed) => Parsed;
  readonly validator: string;
  /** The validator's rule id that must appear. */
  readonly finding: string;
}

const K8S = 'prod/kubernetes.k8s.yaml';
const k8s =
  (f: (p: Parsed) => void) =>
  (p: Parsed): Parsed => {
    f(p);
    return p;
  };

const CASES: Case[] = [
  {
    rule: 'non-root-user',
    what: 'the producer runs as uid 0',
    file: K8S,
    mutate: k8s((p) =>
      Object.assign(security(container(p, 'Deployment', 'producer')), {
        runAsUser: 0,
        runAsGroup: 0,
        runAsNonRoot: false,
      }),
    ),
    validator: 'kube-score',
    finding: 'container-security-context-user-group-id',
  },
  {
    rule: 'read-only-root',
    what: 'the producer root filesystem is writable',
    file: K8S,
    mutate: k8s((p) =>
      Object.assign(security(container(p, 'Deployment', 'producer')), { readOnlyRootFilesystem: false }),
    ),
    validator: 'kube-score',
    finding: 'container-security-context-readonlyrootfilesystem',
  },
  {
    rule: 'capabilities-dropped',
    what: 'the producer no longer drops ALL capabilities',
    file: K8S,
    mutate: k8s((p) => delete security(container(p, 'Deployment', 'producer')).capabilities),
    validator: 'checkov',
    finding: 'CKV_K8S_37',
  },
  {
    rule: 'no-privilege-escalation',
    what: 'the producer allows privilege escalation',
    file: K8S,
    mutate: k8s((p) =>
      Object.assign(security(container(p, 'Deployment', 'producer')), { allowPrivilegeEscalation: true }),
    ),
    validator: 'checkov',
    finding: 'CKV_K8S_20',
  },
  {
    rule: 'seccomp-runtime-default',
    what: 'the producer has no seccomp profile',
    file: K8S,
    mutate: k8s((p) => {
      delete security(container(p, 'Deployment', 'producer')).seccompProfile;
      delete (podSpecOf(workload(p, 'Deployment', 'producer'))!.securityContext as Obj).seccompProfile;
    }),
    validator: 'kube-score',
    finding: 'container-seccomp-profile',
  },
  {
    rule: 'resource-limits',
    what: 'the consumer has no limits',
    file: K8S,
    mutate: k8s((p) => delete (container(p, 'Deployment', 'consumer').resources as Obj).limits),
    validator: 'kube-score',
    finding: 'container-resources',
  },
  {
    rule: 'health-checks',
    what: 'the producer has no probes',
    file: K8S,
    mutate: k8s((p) => {
      const c = container(p, 'Deployment', 'producer');
      delete c.readinessProbe;
      delete c.livenessProbe;
      delete c.startupProbe;
    }),
    validator: 'kube-score',
    finding: 'pod-probes',
  },
  {
    rule: 'health-checks',
    what: 'the producer Dockerfile has no HEALTHCHECK',
    file: 'prod/producer.Dockerfile',
    mutate: (p) =>
      ({ ...p, text: (p as { text: string }).text.replace(/^HEALTHCHECK [^\n]*\\\n[^\n]*\n/m, '') }) as Parsed,
    validator: 'checkov',
    finding: 'CKV_DOCKER_2',
  },
  {
    rule: 'pinned-images',
    what: 'the Dockerfile base image is node:latest',
    file: 'prod/producer.Dockerfile',
    mutate: (p) =>
      ({
        ...p,
        text: (p as { text: string }).text.replace(/^FROM \S+ AS runtime$/m, 'FROM node:latest AS runtime'),
      }) as Parsed,
    validator: 'dockerfilelint',
    finding: 'Base Image Latest Tag',
  },
  {
    rule: 'pinned-images',
    what: 'mongo uses the latest tag',
    file: K8S,
    mutate: k8s((p) => (container(p, 'StatefulSet', 'mongo').image = 'mongo:latest')),
    validator: 'kube-score',
    finding: 'container-image-tag',
  },
  {
    rule: 'no-host-ports',
    what: 'the producer binds hostPort 8080',
    file: K8S,
    mutate: k8s((p) => ((container(p, 'Deployment', 'producer').ports as Obj[])[0]!.hostPort = 8080)),
    validator: 'checkov',
    finding: 'CKV_K8S_26',
  },
  {
    // checkov flags only the Docker socket among host paths, so the mutation mounts that one.
    rule: 'no-host-paths',
    what: 'the consumer mounts the Docker socket from the host (checkov flags only that host path)',
    file: K8S,
    mutate: k8s((p) => {
      const spec = podSpecOf(workload(p, 'Deployment', 'consumer'))!;
      (spec.volumes as Obj[]).push({ name: 'docker', hostPath: { path: '/var/run/docker.sock' } });
      ((spec.containers as Obj[])[0]!.volumeMounts as Obj[]).push({
        name: 'docker',
        mountPath: '/var/run/docker.sock',
      });
    }),
    validator: 'checkov',
    finding: 'CKV_K8S_27',
  },
  {
    rule: 'no-host-network',
    what: 'the consumer uses the host network',
    file: K8S,
    mutate: k8s((p) => (podSpecOf(workload(p, 'Deployment', 'consumer'))!.hostNetwork = true)),
    validator: 'checkov',
    finding: 'CKV_K8S_19',
  },
  {
    rule: 'no-host-network',
    what: 'the Compose consumer uses network_mode host',
    file: 'prod/compose.yaml',
    mutate: (p) => {
      compose(p).services.consumer!.network_mode = 'host';
      return p;
    },
    validator: 'docker-compose config',
    finding: 'config',
  },
  {
    rule: 'no-privileged',
    what: 'the producer is privileged',
    file: K8S,
    mutate: k8s((p) => Object.assign(security(container(p, 'Deployment', 'producer')), { privileged: true })),
    validator: 'kube-score',
    finding: 'container-security-context-privileged',
  },
  {
    rule: 'no-secret-values',
    what: 'a literal MongoDB password in the producer ConfigMap',
    file: K8S,
    mutate: k8s(
      (p) => ((workload(p, 'ConfigMap', 'producer-env').data as Obj).MONGO_PASSWORD = 'Zx9vQ2pL7mN4rT8wK1aB'),
    ),
    validator: 'checkov',
    finding: 'CKV_SECRET_6',
  },
  {
    rule: 'no-secret-values',
    what: 'a literal MongoDB password in the Compose producer environment',
    file: 'prod/compose.yaml',
    mutate: (p) => {
      (compose(p).services.producer!.environment as Record<string, string>).MONGO_PASSWORD = 'Zx9vQ2pL7mN4rT8wK1aB';
      return p;
    },
    validator: 'checkov',
    finding: 'CKV_SECRET_6',
  },
  {
    rule: 'network-isolation',
    what: 'every NetworkPolicy is removed',
    file: K8S,
    mutate: (p) =>
      ({ ...p, docs: (p as { docs: K8sObject[] }).docs.filter((d) => d.kind !== 'NetworkPolicy') }) as Parsed,
    validator: 'kube-score',
    finding: 'pod-networkpolicy',
  },
];

describe('a mutated output fails the policy rule and an independent validator', () => {
  for (const c of CASES) {
    withValidator(c.validator)(
      `${c.rule}: when ${c.what}, the rule and ${c.validator} [${c.finding}] both fail`,
      async () => {
        const original = await parsed(c.file);
        expect(ruleNamed(c.rule).check(original)).toEqual([]);
        expect(validatorRules(c.validator, original)).not.toContain(c.finding);
        const broken = c.mutate(clone(original));
        expect(ruleNamed(c.rule).check(broken).length).toBeGreaterThan(0);
        expect(validatorRules(c.validator, broken)).toContain(c.finding);
      },
    );
  }
});

/**
 * Rules no installed validator checks on these targets. The rule alone catches the mutation; each is paired above
 * with a target whose validator does (named in the test), or, where none does on any target, says so.
 */
describe('mutations only the policy rules catch (no external validator checks them here)', () => {
  const only: { rule: string; what: string; file: string; mutate: (p: Parsed) => Parsed; why: string }[] = [
    {
      rule: 'non-root-user',
      what: 'the Compose producer runs as 0:0',
      file: 'prod/compose.yaml',
      mutate: (p) => ((compose(p).services.producer!.user = '0:0'), p),
      why: 'the compose-spec schema and docker-compose config accept any user; kube-score catches it in Kubernetes',
    },
    {
      rule: 'capabilities-dropped',
      what: 'the Swarm consumer keeps its capabilities',
      file: 'prod/docker-stack.yml',
      mutate: (p) => (delete compose(p).services.consumer!.cap_drop, p),
      why: 'docker stack config accepts it; checkov catches it in Kubernetes',
    },
    {
      rule: 'no-privilege-escalation',
      what: 'the Compose producer has no no-new-privileges',
      file: 'prod/compose.yaml',
      mutate: (p) => (delete compose(p).services.producer!.security_opt, p),
      why: 'no Compose validator checks security_opt; checkov catches it in Kubernetes',
    },
    {
      rule: 'read-only-root',
      what: 'the Compose mongo root filesystem is writable',
      file: 'prod/compose.yaml',
      mutate: (p) => ((compose(p).services.mongo!.read_only = false), p),
      why: 'no Compose validator checks read_only; kube-score catches it in Kubernetes',
    },
    {
      rule: 'bounded-tmpfs',
      what: 'the Kubernetes producer’s /tmp emptyDir has no sizeLimit',
      file: 'prod/kubernetes.k8s.yaml',
      mutate: (p) => {
        const volumes = podSpecOf(workload(p, 'Deployment', 'producer'))!.volumes as Obj[];
        delete (volumes.find((v) => v.name === 'tmp')!.emptyDir as Obj).sizeLimit;
        return p;
      },
      why: 'neither kube-score nor checkov nor the 1.28 schema requires a sizeLimit',
    },
    {
      rule: 'bounded-tmpfs',
      what: 'the Compose consumer’s /tmp tmpfs is as large as its memory limit',
      file: 'prod/compose.yaml',
      mutate: (p) => ((compose(p).services.consumer!.tmpfs = ['/tmp:size=512M']), p),
      why: 'the compose-spec schema and docker-compose config accept any tmpfs size',
    },
    {
      rule: 'bounded-tmpfs',
      what: 'the Swarm mongo /tmp mount has no size',
      file: 'prod/docker-stack.yml',
      mutate: (p) => (
        (compose(p).services.mongo!.volumes = (compose(p).services.mongo!.volumes ?? []).map((v) =>
          typeof v === 'object' && v.type === 'tmpfs' ? { type: 'tmpfs', target: v.target } : v,
        )),
        p
      ),
      why: 'docker stack config accepts a tmpfs mount without a size',
    },
    {
      rule: 'bounded-restarts',
      what: 'the Compose consumer restarts always',
      file: 'prod/compose.yaml',
      mutate: (p) => ((compose(p).services.consumer!.restart = 'always'), p),
      why: 'no validator installed here checks restart bounds on any target (Kubernetes bounds restarts by back-off itself)',
    },
    {
      rule: 'bounded-restarts',
      what: 'the Swarm consumer restarts without a max_attempts',
      file: 'prod/docker-stack.yml',
      mutate: (p) => (delete compose(p).services.consumer!.deploy!.restart_policy!.max_attempts, p),
      why: 'docker stack config accepts an unbounded restart_policy',
    },
    {
      rule: 'network-isolation',
      what: 'the Compose backend network is not internal',
      file: 'prod/compose.yaml',
      mutate: (p) => ((compose(p).networks!.backend = { driver: 'bridge' }), p),
      why: 'no Compose validator knows which network is the backend; kube-score catches missing NetworkPolicies in Kubernetes',
    },
  ];
  for (const c of only) {
    test(`${c.rule}: when ${c.what}, the rule fails (no external validator: ${c.why})`, async () => {
      const original = await parsed(c.file);
      expect(ruleNamed(c.rule).check(original)).toEqual([]);
      expect(ruleNamed(c.rule).check(c.mutate(clone(original))).length).toBeGreaterThan(0);
    });
  }
});
