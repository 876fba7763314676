/**
 * The binaries of the e2e's local Kubernetes, all from package registries: the control plane, kubelet, kube-proxy
 * and kubectl from `k8s.io/kubernetes`, etcd, CoreDNS, kube-router, kwok (fake nodes for prod) and the pod sandbox
 * ("pause") program from the Go module proxy, built from the main modules in `e2e/k8s/gomod/<name>/` (the project's own build descriptions);
 * containerd, runc, the CNI plugins, ipset, iptables, conntrack and socat from Debian. Each Go build is cached under
 * `.tools/k8s/<version>/bin`, so only the first run pays for it (about 9 minutes on 2 cores for Kubernetes).
 * @see e2e/README.md (Kubernetes) for what differs from a real cluster and why.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { check, run } from '../exec.ts';

export const KUBERNETES_VERSION = 'v1.34.4';

export interface ClusterTools {
  readonly kubeApiserver: string;
  readonly kubeControllerManager: string;
  readonly kubeScheduler: string;
  readonly kubelet: string;
  readonly kubeProxy: string;
  readonly kubectl: string;
  readonly etcd: string;
  readonly coredns: string;
  readonly kubeRouter: string;
  readonly pause: string;
  /** Fake nodes: pods bound to them are reported Running, nothing runs (prod's scheduling on one machine). */
  readonly kwok: string;
  /** The KEDA operator, built only when asked for (`--keda`): its cold build is several minutes. */
  readonly kedaOperator?: string;
  /** Debian's CNI plugins (bridge, host-local, loopback, portmap). */
  readonly cniBinDir: string;
}

interface GoBuild {
  /** Folder under e2e/k8s/gomod holding go.mod/go.sum (and a main package when the module has none to name). */
  readonly module: string;
  /** The cache key: the version of the upstream module its go.mod requires. */
  readonly version: string;
  /** Output binary name → Go package path. */
  readonly binaries: Readonly<Record<string, string>>;
  readonly ldflags: string;
  readonly env?: Readonly<Record<string, string>>;
}

/** `component-base` and `client-go` carry the version the binaries report (`kubectl version`, `/version`). */
function kubernetesLdflags(version: string): string {
  const [major, minor] = version.replace(/^v/, '').split('.');
  const x = ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version'].flatMap((p) => [
    `-X ${p}.gitVersion=${version}`,
    `-X ${p}.gitMajor=${major}`,
    `-X ${p}.gitMinor=${minor}`,
    `-X ${p}.gitTreeState=clean`,
  ]);
  return ['-s', '-w', ...x].join(' ');
}

/** The version of `path` that the build module's go.mod requires (the go.mod is the one source of versions). */
function required(repo: string, module: string, path: string): string {
  const goMod = readFileSync(join(repo, 'e2e', 'k8s', 'gomod', module, 'go.mod'), 'utf8');
  const m = new RegExp(`^\\s*(?:require\\s+)?${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\s+(v\\S+)`, 'm').exec(
    goMod,
  );
  if (m?.[1] === undefined) throw new Error(`e2e/k8s/gomod/${module}/go.mod: requires no ${path}`);
  return m[1];
}

/**
 * The KEDA release prod's ScaledObject is written for: its CRDs come from this module (`config/crd/bases`), and
 * `e2e/k8s/gomod/keda` is also the build description of its operator.
 */
export function kedaVersion(repo: string): string {
  return required(repo, 'keda', 'github.com/kedacore/keda/v2');
}

function builds(repo: string): GoBuild[] {
  const k8s = required(repo, 'kubernetes', 'k8s.io/kubernetes');
  const cmd = (c: string): string => `k8s.io/kubernetes/cmd/${c}`;
  return [
    {
      module: 'kubernetes',
      version: k8s,
      ldflags: kubernetesLdflags(k8s),
      binaries: Object.fromEntries(
        ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubelet', 'kube-proxy', 'kubectl'].map((c) => [
          c,
          cmd(c),
        ]),
      ),
    },
    {
      module: 'etcd',
      version: `etcd-${required(repo, 'etcd', 'go.etcd.io/etcd/server/v3')}`,
      ldflags: '-s -w',
      binaries: { etcd: '.' },
    },
    {
      module: 'coredns',
      version: `coredns-${required(repo, 'coredns', 'github.com/coredns/coredns')}`,
      ldflags: '-s -w',
      binaries: { coredns: 'github.com/coredns/coredns' },
      // Static: it runs as the only file of its image.
      env: { CGO_ENABLED: '0' },
    },
    {
      module: 'kube-router',
      version: `kube-router-${required(repo, 'kube-router', 'github.com/cloudnativelabs/kube-router/v2')}`,
      ldflags: '-s -w',
      binaries: { 'kube-router': 'github.com/cloudnativelabs/kube-router/v2/cmd/kube-router' },
    },
    {
      module: 'kwok',
      version: `kwok-${required(repo, 'kwok', 'sigs.k8s.io/kwok')}`,
      ldflags: '-s -w',
      binaries: { kwok: 'sigs.k8s.io/kwok/cmd/kwok' },
    },
    // Static, so the sandbox image holds this one file.
    { module: 'pause', version: 'pause-1', ldflags: '-s -w', binaries: { pause: '.' }, env: { CGO_ENABLED: '0' } },
  ];
}

/**
 * Builds what is missing. `E2E_BUILD_LOCK` names a lock file the big build waits on (`flock`), for machines where
 * several people build at once.
 */
async function goBuild(repo: string, b: GoBuild, log: (line: string) => void): Promise<Record<string, string>> {
  const bin = join(repo, '.tools', 'k8s', b.version, 'bin');
  const out = Object.fromEntries(Object.keys(b.binaries).map((n) => [n, join(bin, n)]));
  const lock = process.env.E2E_BUILD_LOCK;
  let missing = Object.entries(b.binaries).filter(([n]) => !existsSync(join(bin, n)));
  if (missing.length === 0) return out;
  if (lock !== undefined && lock !== '') {
    // Someone holding the lock may be building these very binaries: wait for them, then look again.
    await check('flock', [lock, 'true'], { timeoutMs: 3_600_000 });
    missing = missing.filter(([n]) => !existsSync(join(bin, n)));
    if (missing.length === 0) return out;
  }
  mkdirSync(bin, { recursive: true });
  const staging = join(bin, '.staging');
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging);
  const t0 = Date.now();
  const args = ['build', '-trimpath', '-ldflags', b.ldflags, '-o', `${staging}/`, ...missing.map(([, p]) => p)];
  log(`building ${missing.map(([n]) => n).join(', ')} (${b.version}) from e2e/k8s/gomod/${b.module}`);
  const env = { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=readonly -buildvcs=false', ...b.env };
  const opts = { cwd: join(repo, 'e2e', 'k8s', 'gomod', b.module), env, timeoutMs: 3_600_000 };
  if (lock !== undefined && lock !== '') await check('flock', [lock, 'go', ...args], opts);
  else await check('go', args, opts);
  // `go build -o dir/` names each binary after its package's last path element (for `.`, the module's).
  for (const [name, pkg] of missing) {
    const built = join(staging, pkg === '.' ? b.module : basename(pkg));
    renameSync(built, join(bin, name));
  }
  rmSync(staging, { recursive: true, force: true });
  log(`built ${missing.map(([n]) => n).join(', ')} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return out;
}

async function onPath(name: string): Promise<boolean> {
  return (await run('sh', ['-c', `command -v ${name}`])).code === 0;
}

/** Debian's packages for the node; installed only when missing. */
async function ensureDebianPackages(log: (line: string) => void): Promise<void> {
  const wanted: [string, boolean][] = [
    ['containerd', await onPath('containerd')],
    ['runc', await onPath('runc')],
    ['containernetworking-plugins', existsSync('/usr/lib/cni/bridge')],
    ['ipset', await onPath('ipset')],
    ['iptables', await onPath('iptables')],
    ['conntrack', await onPath('conntrack')],
    ['socat', await onPath('socat')],
  ];
  const missing = wanted.filter(([, present]) => !present).map(([p]) => p);
  if (missing.length === 0) return;
  log(`installing ${missing.join(', ')} with apt-get`);
  await check('apt-get', ['update', '-qq'], { timeoutMs: 300_000 });
  await check('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
    timeoutMs: 600_000,
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

/** The KEDA operator's build; `e2e/k8s/gomod/keda` pins the same release the CRDs come from. */
function kedaBuild(repo: string): GoBuild {
  const v = kedaVersion(repo);
  return {
    module: 'keda',
    version: `keda-${v}`,
    ldflags: `-s -w -X github.com/kedacore/keda/v2/version.Version=${v}`,
    binaries: { 'keda-operator': 'github.com/kedacore/keda/v2/cmd/operator' },
  };
}

export async function ensureClusterTools(
  repo: string,
  log: (line: string) => void,
  opts: { readonly kedaOperator?: boolean } = {},
): Promise<ClusterTools> {
  await ensureDebianPackages(log);
  const bins: Record<string, string> = {};
  for (const b of [...builds(repo), ...(opts.kedaOperator === true ? [kedaBuild(repo)] : [])])
    Object.assign(bins, await goBuild(repo, b, log));
  const get = (n: string): string => {
    const p = bins[n];
    if (p === undefined) throw new Error(`no build produces ${n}`);
    return p;
  };
  return {
    kubeApiserver: get('kube-apiserver'),
    kubeControllerManager: get('kube-controller-manager'),
    kubeScheduler: get('kube-scheduler'),
    kubelet: get('kubelet'),
    kubeProxy: get('kube-proxy'),
    kubectl: get('kubectl'),
    etcd: get('etcd'),
    coredns: get('coredns'),
    kubeRouter: get('kube-router'),
    pause: get('pause'),
    kwok: get('kwok'),
    ...(opts.kedaOperator === true ? { kedaOperator: get('keda-operator') } : {}),
    cniBinDir: '/usr/lib/cni',
  };
}
