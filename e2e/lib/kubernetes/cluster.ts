/**
 * A single-node Kubernetes on this machine, started from the binaries `tools.ts` builds and stopped completely at
 * the end: etcd, kube-apiserver, kube-controller-manager and kube-scheduler on 127.0.0.1; a node named `localhost`
 * whose kubelet listens on 127.0.0.1 and runs pods with a private containerd (own socket, root and state, so it
 * never meets Docker's); pods on a CNI bridge with kube-proxy (iptables), CoreDNS published as `kube-dns`, and
 * kube-router enforcing NetworkPolicy (firewall only). Everything it changes on the host is recorded and undone
 * by `stop()`: processes by PID, mounts, network namespaces, the bridge, iptables rules and chains, ipsets, cgroups.
 * @see e2e/README.md (Kubernetes) for every way this differs from a real cluster, and why.
 */
import { spawn } from 'node:child_process';
import { request } from 'node:https';
import {
  appendFileSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { check, run, sleep, waitFor } from '../exec.ts';
import { type ClusterTools } from './tools.ts';

export const NODE_NAME = 'localhost';
const BRIDGE = 'k8sbr0';
const POD_CIDR = '10.244.0.0/24';
const GATEWAY = '10.244.0.1';
const SERVICE_CIDR = '10.96.0.0/16';
const DNS_SERVICE_IP = '10.96.0.10';
export const PAUSE_IMAGE = 'k8s.local/pause:e2e';
export const COREDNS_IMAGE = 'k8s.local/coredns:e2e';
/** The one FORWARD rule Docker's DROP policy needs: pod ↔ pod on the bridge. */
const FORWARD_RULE = ['-i', BRIDGE, '-o', BRIDGE, '-m', 'comment', '--comment', 'async-jobs-e2e', '-j', 'ACCEPT'];
/** Chains the node's components create (kubelet, kube-proxy, kube-router); Docker's are never touched. */
const OWN_CHAIN = /^(KUBE-|KUBE-ROUTER-|KUBE-POD-FW-|KUBE-NWPLCY-|KUBE-SRC-|KUBE-DST-)/;

export interface Proc {
  readonly name: string;
  readonly pid: number;
  exited: boolean;
}

export interface ClusterOptions {
  readonly dir: string;
  readonly tools: ClusterTools;
  readonly log: (line: string) => void;
}

export class LocalCluster {
  readonly dir: string;
  readonly kubeconfig: string;
  readonly containerdSocket: string;
  private readonly tools: ClusterTools;
  private readonly log: (line: string) => void;
  private readonly procs: Proc[] = [];
  private readonly undo: { what: string; fn: () => Promise<void> }[] = [];
  private iptablesBefore = new Set<string>();

  constructor(o: ClusterOptions) {
    this.dir = o.dir;
    this.tools = o.tools;
    this.log = o.log;
    this.kubeconfig = join(o.dir, 'kubeconfig', 'admin.conf');
    this.containerdSocket = join(o.dir, 'containerd', 'containerd.sock');
  }

  /** kubectl as the cluster admin. */
  kubectl(args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
    return check(this.tools.kubectl, ['--kubeconfig', this.kubeconfig, ...args], {
      timeoutMs: opts.timeoutMs ?? 120_000,
      ...(opts.input === undefined ? {} : { input: opts.input }),
    });
  }

  kubectlRun(args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}) {
    return run(this.tools.kubectl, ['--kubeconfig', this.kubeconfig, ...args], {
      timeoutMs: opts.timeoutMs ?? 120_000,
      ...(opts.input === undefined ? {} : { input: opts.input }),
    });
  }

  get kubectlPath(): string {
    return this.tools.kubectl;
  }

  /**
   * One request to the API server as the cluster admin, answering with the status code and the parsed body (a
   * `Status` on errors). kubectl prints only an error's message; an eviction's refusal names its
   * PodDisruptionBudget in `details.causes`.
   */
  api(method: string, path: string, body?: object): Promise<{ code: number; body: Record<string, unknown> }> {
    const pki = (f: string): Buffer => readFileSync(join(this.dir, 'pki', f));
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: 6443,
          method,
          path,
          ca: pki('ca.crt'),
          cert: pki('admin.crt'),
          key: pki('admin.key'),
          headers: { accept: 'application/json', 'content-type': 'application/json' },
          timeout: 30_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (d: Buffer) => chunks.push(d));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: Record<string, unknown>;
            try {
              parsed = JSON.parse(text) as Record<string, unknown>;
            } catch {
              parsed = { text };
            }
            resolve({ code: res.statusCode ?? 0, body: parsed });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 30 s`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Starts a long-running process with its log in the cluster directory; `stop()` ends it by PID. */
  spawnProcess(name: string, cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv): Proc {
    const fd = openSync(join(this.dir, 'logs', `${name}.log`), 'a');
    const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], detached: true, env: env ?? process.env });
    closeSync(fd);
    if (child.pid === undefined) throw new Error(`${name} did not start`);
    child.unref();
    const p: Proc = { name, pid: child.pid, exited: false };
    // For a person cleaning up after --keep (e2e/README.md).
    appendFileSync(join(this.dir, 'pids'), `${name} ${child.pid}\n`);
    child.on('exit', () => {
      p.exited = true;
    });
    this.procs.push(p);
    return p;
  }

  /** Stops one process this run started (SIGTERM, then SIGKILL after 10 s). */
  async stopProcess(p: Proc): Promise<void> {
    await stopProcess(p, this.log);
  }

  /** Whether a process this run started is still running (kube-router must be, for the policy checks to mean anything). */
  running(name: string): boolean {
    const p = this.procs.find((x) => x.name === name);
    return p !== undefined && !p.exited && isAlive(p.pid);
  }

  logTail(name: string, lines = 15): string {
    const f = join(this.dir, 'logs', `${name}.log`);
    return existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n').slice(-lines).join('\n') : '';
  }

  private async waitUp(p: Proc, what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
    await waitFor(
      what,
      timeoutMs,
      async () => {
        if (p.exited) throw new Error(`${p.name} exited:\n${this.logTail(p.name)}`);
        return (await probe()) ? true : undefined;
      },
      500,
    );
  }

  private async iptablesRules(): Promise<string[]> {
    const r = await run('iptables-save', []);
    return r.stdout.split('\n').filter((l) => /^[-:*]/.test(l));
  }

  /** Host preconditions, each change recorded for `stop()`. */
  private async hostSetup(): Promise<void> {
    this.iptablesBefore = new Set(await this.iptablesRules());
    // The kubelet and libcni create these whatever they are told; removed at the end if this run made them.
    for (const d of ['/var/lib/kubelet', '/var/lib/cni'])
      if (!existsSync(d))
        this.undo.push({ what: d, fn: () => Promise.resolve(rmSync(d, { recursive: true, force: true })) });
    const nf = '/proc/sys/net/bridge/bridge-nf-call-iptables';
    if (!existsSync(nf) || readFileSync(nf, 'utf8').trim() !== '1')
      throw new Error(`${nf}: expected 1 (bridged pod traffic must pass iptables for Services and NetworkPolicy)`);
    const fwd = '/proc/sys/net/ipv4/ip_forward';
    const before = readFileSync(fwd, 'utf8').trim();
    if (before !== '1') {
      writeFileSync(fwd, '1');
      this.undo.push({
        what: `net.ipv4.ip_forward back to ${before}`,
        fn: () => Promise.resolve(writeFileSync(fwd, before)),
      });
    }
    if ((await run('ip', ['link', 'show', BRIDGE])).code === 0)
      throw new Error(`bridge ${BRIDGE} exists already: another cluster runs here, or an earlier run left it`);
    // Made up front (the CNI bridge plugin adopts it) so CoreDNS can bind the gateway before the first pod.
    await check('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
    this.undo.push({
      what: `bridge ${BRIDGE}`,
      fn: async () => void (await run('ip', ['link', 'delete', BRIDGE])),
    });
    await check('ip', ['addr', 'add', `${GATEWAY}/24`, 'dev', BRIDGE]);
    await check('ip', ['link', 'set', BRIDGE, 'up']);
    // Appended, after kube-router's and kube-proxy's jumps: in DOCKER-USER (first in FORWARD) it would let pod
    // traffic bypass NetworkPolicy.
    await check('iptables', ['-A', 'FORWARD', ...FORWARD_RULE]);
    this.undo.push({
      what: 'the FORWARD accept rule',
      fn: async () => void (await run('iptables', ['-D', 'FORWARD', ...FORWARD_RULE])),
    });
  }

  private openssl(args: readonly string[]): Promise<string> {
    return check('openssl', args, { cwd: join(this.dir, 'pki') });
  }

  /** A certificate signed by the cluster CA. */
  private async sign(name: string, subject: string, usage: 'clientAuth' | 'serverAuth', san?: string) {
    const ext = [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage=${usage}`,
      ...(san === undefined ? [] : [`subjectAltName=${san}`]),
    ].join('\n');
    writeFileSync(join(this.dir, 'pki', `${name}.ext`), `${ext}\n`);
    await this.openssl(['genrsa', '-out', `${name}.key`, '2048']);
    await this.openssl(['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`]);
    await this.openssl([
      ...['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial'],
      ...['-days', '2', '-sha256', '-extfile', `${name}.ext`, '-out', `${name}.crt`],
    ]);
  }

  private kubeconfigFor(user: string): string {
    const b64 = (f: string): string => readFileSync(join(this.dir, 'pki', f)).toString('base64');
    const path = join(this.dir, 'kubeconfig', `${user}.conf`);
    writeFileSync(
      path,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          { name: 'e2e', cluster: { server: 'https://127.0.0.1:6443', 'certificate-authority-data': b64('ca.crt') } },
        ],
        users: [
          {
            name: user,
            user: { 'client-certificate-data': b64(`${user}.crt`), 'client-key-data': b64(`${user}.key`) },
          },
        ],
        contexts: [{ name: user, context: { cluster: 'e2e', user } }],
        'current-context': user,
      }),
      { mode: 0o600 },
    );
    return path;
  }

  /** A CA for this run only (2 days), and one identity per component, as kubeadm gives them. */
  private async pki(): Promise<void> {
    await this.openssl(['genrsa', '-out', 'ca.key', '2048']);
    await this.openssl([
      'req',
      '-x509',
      '-new',
      '-key',
      'ca.key',
      '-sha256',
      '-days',
      '2',
      '-subj',
      '/CN=async-jobs-e2e-ca',
      '-out',
      'ca.crt',
    ]);
    const apiSans = ['IP:127.0.0.1', 'IP:10.96.0.1', 'DNS:localhost', 'DNS:kubernetes', 'DNS:kubernetes.default'];
    await this.sign(
      'apiserver',
      '/CN=kube-apiserver',
      'serverAuth',
      [...apiSans, 'DNS:kubernetes.default.svc', 'DNS:kubernetes.default.svc.cluster.local'].join(','),
    );
    await this.sign('admin', '/O=system:masters/CN=e2e-admin', 'clientAuth');
    await this.sign('apiserver-kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client', 'clientAuth');
    await this.sign('controller-manager', '/CN=system:kube-controller-manager', 'clientAuth');
    await this.sign('scheduler', '/CN=system:kube-scheduler', 'clientAuth');
    await this.sign('kubelet', `/O=system:nodes/CN=system:node:${NODE_NAME}`, 'clientAuth');
    await this.sign(
      'kubelet-serving',
      `/O=system:nodes/CN=system:node:${NODE_NAME}`,
      'serverAuth',
      `IP:127.0.0.1,DNS:${NODE_NAME}`,
    );
    await this.sign('kube-proxy', '/CN=system:kube-proxy', 'clientAuth');
    await this.openssl(['genrsa', '-out', 'sa.key', '2048']);
    await this.openssl(['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
    for (const u of ['admin', 'controller-manager', 'scheduler', 'kubelet', 'kube-proxy']) this.kubeconfigFor(u);
  }

  private async controlPlane(): Promise<void> {
    const d = this.dir;
    const pki = (f: string): string => join(d, 'pki', f);
    const kc = (u: string): string => join(d, 'kubeconfig', `${u}.conf`);
    const etcd = this.spawnProcess('etcd', this.tools.etcd, [
      ...['--name', 'e2e', '--data-dir', join(d, 'etcd'), '--log-level', 'warn'],
      ...['--listen-client-urls', 'http://127.0.0.1:2379', '--advertise-client-urls', 'http://127.0.0.1:2379'],
      ...['--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380'],
      ...['--initial-cluster', 'e2e=http://127.0.0.1:2380', '--listen-metrics-urls', 'http://127.0.0.1:2381'],
    ]);
    await this.waitUp(etcd, 'etcd to answer', 60_000, async () => {
      const r = await fetch('http://127.0.0.1:2379/health').catch(() => undefined);
      return r?.ok === true;
    });
    const api = this.spawnProcess('kube-apiserver', this.tools.kubeApiserver, [
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      '--secure-port=6443',
      '--etcd-servers=http://127.0.0.1:2379',
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      // A loopback address is invalid in the `kubernetes` Endpoints; pods do not call the API here.
      '--endpoint-reconciler-type=none',
      `--tls-cert-file=${pki('apiserver.crt')}`,
      `--tls-private-key-file=${pki('apiserver.key')}`,
      `--client-ca-file=${pki('ca.crt')}`,
      `--kubelet-client-certificate=${pki('apiserver-kubelet-client.crt')}`,
      `--kubelet-client-key=${pki('apiserver-kubelet-client.key')}`,
      // The kubelet listens on 127.0.0.1 only and the node is named localhost: reach it by name.
      '--kubelet-preferred-address-types=Hostname,InternalIP',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki('sa.pub')}`,
      `--service-account-signing-key-file=${pki('sa.key')}`,
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NodeRestriction',
      '--profiling=false',
      '-v=1',
    ]);
    await this.waitUp(api, 'kube-apiserver to be ready', 180_000, async () => {
      const r = await this.kubectlRun(['get', '--raw', '/readyz'], { timeoutMs: 10_000 });
      return r.code === 0 && r.stdout.trim() === 'ok';
    });
    this.spawnProcess('kube-controller-manager', this.tools.kubeControllerManager, [
      `--kubeconfig=${kc('controller-manager')}`,
      `--authentication-kubeconfig=${kc('controller-manager')}`,
      `--authorization-kubeconfig=${kc('controller-manager')}`,
      '--bind-address=127.0.0.1',
      `--cluster-signing-cert-file=${pki('ca.crt')}`,
      `--cluster-signing-key-file=${pki('ca.key')}`,
      `--root-ca-file=${pki('ca.crt')}`,
      `--service-account-private-key-file=${pki('sa.key')}`,
      '--use-service-account-credentials=true',
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--leader-elect=false',
      '-v=1',
    ]);
    this.spawnProcess('kube-scheduler', this.tools.kubeScheduler, [
      `--kubeconfig=${kc('scheduler')}`,
      `--authentication-kubeconfig=${kc('scheduler')}`,
      `--authorization-kubeconfig=${kc('scheduler')}`,
      '--bind-address=127.0.0.1',
      '--leader-elect=false',
      '-v=1',
    ]);
  }

  private async containerd(): Promise<void> {
    const c = join(this.dir, 'containerd');
    for (const s of ['root', 'state', 'opt']) mkdirSync(join(c, s), { recursive: true });
    mkdirSync(join(this.dir, 'cni', 'net.d'), { recursive: true });
    writeFileSync(
      join(c, 'config.toml'),
      `version = 2
root = "${c}/root"
state = "${c}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "${this.containerdSocket}"
[ttrpc]
  address = "${c}/containerd-ttrpc.sock"
[debug]
  address = ""
[metrics]
  address = ""
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "${c}/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "${PAUSE_IMAGE}"
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_selinux = false
    # This VM withholds CAP_SYS_RESOURCE: the sandbox's oom_score_adj of -998 makes runc fail ("can't get final
    # child's PID from pipe: EOF"); clamp scores to containerd's own instead.
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = "${c}/runc"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "${this.tools.cniBinDir}"
      conf_dir = "${this.dir}/cni/net.d"
`,
    );
    writeFileSync(
      join(this.dir, 'cni', 'net.d', '10-e2e.conflist'),
      JSON.stringify({
        cniVersion: '1.0.0',
        name: 'async-jobs-e2e',
        plugins: [
          {
            type: 'bridge',
            bridge: BRIDGE,
            isGateway: true,
            ipMasq: false,
            // A pod reaching itself through its own Service (hairpin) needs this.
            hairpinMode: true,
            ipam: {
              type: 'host-local',
              dataDir: join(this.dir, 'cni', 'ipam'),
              ranges: [[{ subnet: POD_CIDR }]],
              // No default route: pods reach the bridge and Service addresses, nothing off the machine.
              routes: [{ dst: SERVICE_CIDR }],
            },
          },
        ],
      }),
    );
    const p = this.spawnProcess('containerd', 'containerd', ['--config', join(c, 'config.toml')]);
    await this.waitUp(p, 'containerd to listen', 60_000, () => Promise.resolve(existsSync(this.containerdSocket)));
  }

  /** `ctr` against this run's containerd, in the namespace the kubelet uses. */
  ctr(args: readonly string[], timeoutMs = 600_000): Promise<string> {
    return check('ctr', ['-a', this.containerdSocket, '-n', 'k8s.io', ...args], { timeoutMs });
  }

  private kubelet(): void {
    const d = this.dir;
    const config = {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      address: '127.0.0.1',
      port: 10250,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      healthzPort: 10248,
      authentication: {
        anonymous: { enabled: false },
        webhook: { enabled: true },
        x509: { clientCAFile: join(d, 'pki', 'ca.crt') },
      },
      authorization: { mode: 'Webhook' },
      tlsCertFile: join(d, 'pki', 'kubelet-serving.crt'),
      tlsPrivateKeyFile: join(d, 'pki', 'kubelet-serving.key'),
      containerRuntimeEndpoint: `unix://${this.containerdSocket}`,
      cgroupDriver: 'cgroupfs',
      clusterDomain: 'cluster.local',
      clusterDNS: [DNS_SERVICE_IP],
      failSwapOn: false,
      podLogsDir: join(d, 'pod-logs'),
      resolvConf: '/etc/resolv.conf',
      serializeImagePulls: false,
      // The images were imported, not pulled: never collect them, never evict for a disk another run fills.
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
      maxPods: 40,
    };
    writeFileSync(join(d, 'kubelet-config.json'), JSON.stringify(config));
    mkdirSync(join(d, 'kubelet'), { recursive: true });
    mkdirSync(join(d, 'pod-logs'), { recursive: true });
    this.spawnProcess('kubelet', this.tools.kubelet, [
      `--config=${join(d, 'kubelet-config.json')}`,
      `--kubeconfig=${join(d, 'kubeconfig', 'kubelet.conf')}`,
      `--root-dir=${join(d, 'kubelet')}`,
      `--hostname-override=${NODE_NAME}`,
      '-v=1',
    ]);
  }

  private async networking(): Promise<void> {
    const kc = (u: string): string => join(this.dir, 'kubeconfig', `${u}.conf`);
    // Flags chosen so kube-proxy changes no sysctl and opens nothing off loopback.
    this.spawnProcess('kube-proxy', this.tools.kubeProxy, [
      `--kubeconfig=${kc('kube-proxy')}`,
      `--hostname-override=${NODE_NAME}`,
      '--proxy-mode=iptables',
      `--cluster-cidr=${POD_CIDR}`,
      '--detect-local-mode=ClusterCIDR',
      '--bind-address=127.0.0.1',
      '--healthz-bind-address=127.0.0.1:10256',
      '--metrics-bind-address=127.0.0.1:10249',
      `--nodeport-addresses=${GATEWAY}/32`,
      '--iptables-localhost-nodeports=false',
      '--conntrack-max-per-core=0',
      '--conntrack-tcp-timeout-established=0',
      '--conntrack-tcp-timeout-close-wait=0',
      '-v=1',
    ]);
    // The API server listens on 127.0.0.1 only; pods (CoreDNS) reach it as the `kubernetes` Service through this
    // relay on the bridge gateway, which the Service's EndpointSlice names.
    this.spawnProcess('apiserver-relay', 'socat', [
      `TCP-LISTEN:6443,bind=${GATEWAY},reuseaddr,fork`,
      'TCP:127.0.0.1:6443',
    ]);
    await this.kubectl(['apply', '--server-side', '--field-manager=async-jobs-e2e', '-f', '-'], {
      input: clusterDnsObjects(GATEWAY, DNS_SERVICE_IP, COREDNS_IMAGE),
    });
  }

  /** kube-router identifies its node by name, so it starts once the kubelet has registered it. */
  private async kubeRouter(): Promise<void> {
    const kc = (u: string): string => join(this.dir, 'kubeconfig', `${u}.conf`);
    // kube-router finds ipset on PATH; it enforces NetworkPolicy only (no routing, no service proxy), and its
    // health server (all interfaces) is off.
    const p = this.spawnProcess('kube-router', this.tools.kubeRouter, [
      `--kubeconfig=${kc('admin')}`,
      `--hostname-override=${NODE_NAME}`,
      '--run-router=false',
      '--run-service-proxy=false',
      '--run-firewall=true',
      '--run-loadbalancer=false',
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--health-port=0',
      '--metrics-port=0',
      '-v=1',
    ]);
    await this.waitUp(p, 'kube-router to install its firewall chains', 60_000, async () => {
      const r = await run('iptables', ['-S', 'KUBE-ROUTER-FORWARD']);
      return r.code === 0;
    });
  }

  /**
   * Starts everything; `importImages` runs while the control plane comes up (it needs only containerd).
   * Returns the wall time of each step.
   */
  async start(importImages: () => Promise<void>): Promise<Record<string, number>> {
    const times: Record<string, number> = {};
    const timed = async (name: string, fn: () => Promise<void>): Promise<void> => {
      const t0 = Date.now();
      await fn();
      times[name] = (Date.now() - t0) / 1000;
    };
    for (const s of ['logs', 'pki', 'kubeconfig', 'etcd']) mkdirSync(join(this.dir, s), { recursive: true });
    await timed('host setup + PKI', async () => {
      await this.hostSetup();
      await this.pki();
    });
    await timed('containerd', () => this.containerd());
    const images = (async () => {
      const t0 = Date.now();
      await importImages();
      times['image import (parallel)'] = (Date.now() - t0) / 1000;
    })();
    // An image import failing is reported after the control plane is up, not as an unhandled rejection.
    images.catch(() => undefined);
    await timed('control plane', () => this.controlPlane());
    await timed('networking (kube-proxy, API relay, CoreDNS objects)', () => this.networking());
    await timed('node Ready', async () => {
      await images;
      this.kubelet();
      await waitFor(
        `node ${NODE_NAME} to be Ready`,
        120_000,
        async () => {
          const r = await this.kubectlRun([
            'get',
            'node',
            NODE_NAME,
            '-o',
            'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
          ]);
          return r.stdout.trim() === 'True' ? true : undefined;
        },
        1000,
      ).catch((e: unknown) => {
        throw new Error(`${e instanceof Error ? e.message : String(e)}\n${this.logTail('kubelet')}`);
      });
    });
    await timed('kube-router', () => this.kubeRouter());
    await timed('CoreDNS rollout', async () => {
      await this.kubectl(['-n', 'kube-system', 'rollout', 'status', 'deployment/coredns', '--timeout=120s'], {
        timeoutMs: 130_000,
      });
    });
    return times;
  }

  /** Stops what `start` started, in reverse, and undoes every host change; returns what is left over. */
  async stop(): Promise<string[]> {
    // The cluster's own pods (CoreDNS) go first, through the kubelet, so their sandboxes and network are torn down
    // by CNI; containers outlive a stopped kubelet and containerd (their shims keep running).
    if (this.running('kube-apiserver') && this.running('kubelet')) {
      await this.kubectlRun(
        ['-n', 'kube-system', 'delete', 'deployment', 'coredns', '--ignore-not-found', '--timeout=60s'],
        {
          timeoutMs: 70_000,
        },
      );
      await waitFor('the node to have no pods', 90_000, async () => {
        const r = await run('ctr', ['-a', this.containerdSocket, '-n', 'k8s.io', 'tasks', 'ls', '-q']);
        return r.code === 0 && r.stdout.trim() === '' ? true : undefined;
      }).catch((e: unknown) => this.log(e instanceof Error ? e.message : String(e)));
    }
    for (const p of [...this.procs].reverse()) await stopProcess(p, this.log);
    // Shims (and their containers) still running for this run's containerd: ended by PID.
    for (const pid of this.shims()) {
      for (const child of childrenOf(pid)) killQuietly(child);
      killQuietly(pid);
      this.log(`ended containerd shim ${pid} left running`);
    }
    if (existsSync(this.tools.kubeProxy))
      await run(this.tools.kubeProxy, ['--cleanup', '--proxy-mode=iptables'], { timeoutMs: 60_000 });
    await this.removeOwnIptables();
    const ipsets = (await run('ipset', ['list', '-n'])).stdout
      .split('\n')
      .filter((s) => /^(inet6:)?(KUBE-|kube-router)/.test(s));
    for (const s of ipsets) await run('ipset', ['destroy', s]);
    // Mounts the kubelet and containerd made under the run directory, deepest first.
    const mounts = readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1] ?? '')
      .filter((m) => m.startsWith(`${this.dir}/`))
      .sort()
      .reverse();
    for (const m of mounts) if ((await run('umount', [m])).code !== 0) await run('umount', ['-l', m]);
    if (existsSync('/run/netns'))
      for (const ns of readdirSync('/run/netns').filter((n) => n.startsWith('cni-'))) {
        await run('umount', [`/run/netns/${ns}`]);
        rmSync(`/run/netns/${ns}`, { force: true });
      }
    for (const u of [...this.undo].reverse()) {
      await u.fn();
      this.log(`removed ${u.what}`);
    }
    // The kubelet's cgroups (cgroupfs driver), children first.
    for (const root of ['/sys/fs/cgroup']) {
      const hierarchies = existsSync(root) ? readdirSync(root) : [];
      for (const h of hierarchies) {
        const k = join(root, h, 'kubepods');
        if (existsSync(k)) await run('find', [k, '-depth', '-type', 'd', '-exec', 'rmdir', '{}', ';']);
      }
    }
    // Paths libcni and the kubelet create outside the run directory whatever they are told.
    for (const p of [
      '/var/lib/cni/networks/async-jobs-e2e',
      '/var/lib/kubelet/device-plugins',
      '/var/lib/kubelet/plugins_registry',
    ])
      rmSync(p, { recursive: true, force: true });
    return this.leftovers();
  }

  private async removeOwnIptables(): Promise<void> {
    for (const table of ['filter', 'nat', 'mangle']) {
      const rules = (await run('iptables', ['-t', table, '-S'])).stdout.split('\n');
      // Jumps from built-in chains into ours go first, then our chains (flush all, then delete all).
      for (const r of rules) {
        const m = /^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) (.*-j (\S+).*)$/.exec(r);
        if (m?.[3] !== undefined && OWN_CHAIN.test(m[3]) && !this.iptablesBefore.has(r)) {
          await run('sh', ['-c', `iptables -t ${table} -D ${m[1]} ${m[2]}`]);
        }
      }
      const chains = rules
        .map((r) => /^-N (\S+)$/.exec(r)?.[1])
        .filter((c): c is string => c !== undefined && OWN_CHAIN.test(c));
      for (const c of chains) await run('iptables', ['-t', table, '-F', c]);
      for (const c of chains) await run('iptables', ['-t', table, '-X', c]);
    }
  }

  /** containerd shims serving this run's containerd (their command line names its socket). */
  private shims(): number[] {
    return processes()
      .filter(({ cmdline }) => cmdline.includes('containerd-shim') && cmdline.includes(this.dir))
      .map(({ pid }) => pid);
  }

  async leftovers(): Promise<string[]> {
    const left: string[] = [];
    for (const p of this.procs) if (isAlive(p.pid)) left.push(`process ${p.name} (${p.pid})`);
    for (const pid of this.shims()) left.push(`containerd shim ${pid}`);
    if ((await run('ip', ['link', 'show', BRIDGE])).code === 0) left.push(`bridge ${BRIDGE}`);
    const mounts = readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .filter((l) => l.includes(` ${this.dir}/`));
    if (mounts.length > 0) left.push(`${mounts.length} mounts under ${this.dir}`);
    const now = await this.iptablesRules();
    const added = now.filter((r) => !this.iptablesBefore.has(r) && !/^:/.test(r) && !/^\*/.test(r));
    if (added.length > 0) left.push(`iptables rules ${added.slice(0, 5).join(' | ')}${added.length > 5 ? ' …' : ''}`);
    const chains = now.filter((r) => /^:/.test(r) && !this.iptablesBefore.has(r) && OWN_CHAIN.test(r.slice(1)));
    if (chains.length > 0) left.push(`iptables chains ${chains.map((c) => c.split(' ')[0]).join(' ')}`);
    return left;
  }
}

function processes(): { pid: number; ppid: number; cmdline: string }[] {
  const out: { pid: number; ppid: number; cmdline: string }[] = [];
  for (const d of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const cmdline = readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ');
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      out.push({ pid: Number(d), ppid, cmdline });
    } catch {
      // The process ended while being read.
    }
  }
  return out;
}

function childrenOf(pid: number): number[] {
  return processes()
    .filter((p) => p.ppid === pid)
    .map((p) => p.pid);
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stopProcess(p: Proc, log: (line: string) => void): Promise<void> {
  if (p.exited || !isAlive(p.pid)) return;
  process.kill(p.pid, 'SIGTERM');
  for (let i = 0; i < 40 && !p.exited && isAlive(p.pid); i++) await sleep(250);
  if (!p.exited && isAlive(p.pid)) {
    process.kill(p.pid, 'SIGKILL');
    log(`${p.name} (pid ${p.pid}) did not stop in 10 s; killed`);
  }
}

/**
 * CoreDNS as the usual `kube-system` Deployment labelled `k8s-app: kube-dns` behind Service `kube-dns`, so the
 * synthesized `allow-dns` NetworkPolicy (egress to those pods) is what lets pods resolve names. No `forward`
 * plugin: names outside the cluster get NXDOMAIN and nothing is sent to an upstream resolver. The `kubernetes`
 * Service points at the API relay on the bridge gateway.
 */
function clusterDnsObjects(gateway: string, serviceIp: string, image: string): string {
  const ports = [
    { name: 'dns', port: 53, protocol: 'UDP' },
    { name: 'dns-tcp', port: 53, protocol: 'TCP' },
  ];
  const labels = { 'k8s-app': 'kube-dns' };
  const corefile = `cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    errors
    ready :8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }
    cache 5
    loadbalance
}
.:53 {
    template ANY ANY {
        rcode NXDOMAIN
    }
}
`;
  return [
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        name: 'kubernetes-e2e-relay',
        namespace: 'default',
        labels: {
          'kubernetes.io/service-name': 'kubernetes',
          'endpointslice.kubernetes.io/managed-by': 'async-jobs-e2e',
        },
      },
      addressType: 'IPv4',
      endpoints: [{ addresses: [gateway], conditions: { ready: true } }],
      ports: [{ name: 'https', port: 6443, protocol: 'TCP' }],
    },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'coredns', namespace: 'kube-system' } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'system:coredns' },
      rules: [
        { apiGroups: [''], resources: ['endpoints', 'services', 'pods', 'namespaces'], verbs: ['list', 'watch'] },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'system:coredns' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:coredns' },
      subjects: [{ kind: 'ServiceAccount', name: 'coredns', namespace: 'kube-system' }],
    },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'coredns', namespace: 'kube-system' },
      data: { Corefile: corefile },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'coredns', namespace: 'kube-system', labels },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: 'coredns',
            dnsPolicy: 'Default',
            priorityClassName: 'system-cluster-critical',
            containers: [
              {
                name: 'coredns',
                image,
                imagePullPolicy: 'Never',
                args: ['-conf', '/etc/coredns/Corefile'],
                ports: [
                  { name: 'dns', containerPort: 53, protocol: 'UDP' },
                  { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' },
                ],
                readinessProbe: { httpGet: { path: '/ready', port: 8181 }, periodSeconds: 2 },
                securityContext: {
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] },
                },
                volumeMounts: [{ name: 'config', mountPath: '/etc/coredns', readOnly: true }],
              },
            ],
            volumes: [{ name: 'config', configMap: { name: 'coredns' } }],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'kube-dns', namespace: 'kube-system', labels },
      spec: { clusterIP: serviceIp, selector: labels, ports },
    },
  ]
    .map((o) => JSON.stringify(o))
    .join('\n---\n');
}
