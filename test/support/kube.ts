// A real Kubernetes control plane for tests: Debian's etcd and a kube-apiserver built by
// scripts/install-kube.sh (linked in .cache/kube/), on free loopback ports, with a temporary
// folder for data, certificates and keys; ready in about 3 s. RBAC authorization, the
// default admission plugins, ServiceAccount tokens signed with a fresh RSA key (issuer and
// API audience https://kubernetes.default.svc), TLS from a fresh CA (ca.crt/ca.key in `dir`;
// the API server also accepts client certificates it signs), and one static admin token in
// group system:masters. No controller-manager or scheduler runs, so:
//  - ServiceAccounts must be created explicitly (no `default` ServiceAccount per namespace);
//  - deleted namespaces stay Terminating and nothing is garbage-collected;
//  - no Pods run. The API server itself serves TokenRequest (`kubectl create token`),
//    TokenReview, SubjectAccessReview, RBAC and CRDs (they become Established).
// `stopApiServer()`/`startApiServer()` restart kube-apiserver alone (etcd keeps the data) on
// the same port with the same certificates and keys, so clients and tokens stay valid.
// The processes die with the test process: `stop()`, an exit hook, and a reaper shell that
// kills them and removes the folder when the test process's end of its stdin pipe closes
// (which the kernel does even on SIGKILL).
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPair, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './proxy';
import { run } from './run';

export const KUBE_BIN_DIR = join(REPO_ROOT, '.cache', 'kube');
/** The API server's service-account issuer; also its default (and only) API audience. */
export const SA_ISSUER = 'https://kubernetes.default.svc';

export interface KubectlResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number | null;
}

export interface ApiReply {
  readonly status: number;
  readonly text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  readonly json: unknown;
}

export interface KubeCluster {
  /** `https://127.0.0.1:<port>` */
  readonly url: string;
  /** Bearer token of `admin` (group `system:masters`). */
  readonly adminToken: string;
  /** Admin kubeconfig (server, CA file, admin token). */
  readonly kubeconfig: string;
  /** Path and PEM text of the CA that signed the API server's serving certificate. */
  readonly caFile: string;
  readonly caCert: string;
  /** The temporary folder (removed by stop()). */
  readonly dir: string;
  /** Milliseconds from spawning etcd until the API server was ready. */
  readonly startupMs: number;
  /** The current processes (the API server's pid changes with startApiServer()). */
  readonly pids: { readonly etcd: number; readonly apiserver: number };
  /** kubectl with the admin kubeconfig; never throws on a non-zero exit. */
  kubectl(args: readonly string[], opts?: { input?: string }): Promise<KubectlResult>;
  /** `kubectl create token`: a JWT for an existing ServiceAccount. */
  createServiceAccountToken(namespace: string, serviceAccount: string, audiences?: readonly string[]): Promise<string>;
  /** `kubectl apply -f -`; throws with kubectl's stderr on failure. Returns kubectl's output. */
  applyYaml(text: string): Promise<string>;
  /**
   * Waits until the CRD's Established condition is True (right after apply, `kubectl wait`
   * can fail because the CRD has no conditions yet). Throws after `timeoutMs` (default 60 s).
   */
  waitForCrdEstablished(name: string, timeoutMs?: number): Promise<void>;
  /** A request to the API server, verified against the CA, with `token` (default: the admin token; '' sends none). */
  api(method: string, path: string, body?: unknown, token?: string): Promise<ApiReply>;
  /** The last lines of the API server's and etcd's logs (and of the last stopped API server). */
  logs(lines?: number): string;
  /** SIGTERM to kube-apiserver (SIGKILL after 10 s) and waits for it to exit; etcd keeps running. */
  stopApiServer(): Promise<void>;
  /**
   * Starts kube-apiserver again with the same flags (same port, certificates and keys) and
   * waits for its /readyz. Throws when it is running already or does not become ready.
   */
  startApiServer(): Promise<void>;
  /** Stops the API server and etcd and removes the temporary folder. */
  stop(): Promise<void>;
}

export interface KubeOptions {
  /** Give up starting after this long (default 90 s). */
  readonly timeoutMs?: number;
  /** Extra kube-apiserver flags. */
  readonly apiserverArgs?: readonly string[];
}

const LOG_KEEP = 512 * 1024;

class Proc {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  private log = '';

  constructor(readonly name: string, cmd: string, args: readonly string[]) {
    this.child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: false });
    const keep = (d: Buffer): void => {
      this.log += d.toString();
      if (this.log.length > LOG_KEEP) this.log = this.log.slice(-LOG_KEEP / 2);
    };
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    this.child.on('error', (e) => keep(Buffer.from(`${name}: ${e.message}\n`)));
    this.exited = new Promise((r) => this.child.once('close', () => r()));
    // The cluster must not keep a test process alive by itself: the exit hook kills it.
    this.child.unref();
    unref(this.child.stdout);
    unref(this.child.stderr);
  }

  get running(): boolean { return this.child.exitCode === null && this.child.signalCode === null; }

  tail(lines = 30): string {
    const all = this.log.trimEnd().split('\n');
    return `--- ${this.name} (${this.running ? 'running' : `exited ${this.child.exitCode ?? this.child.signalCode}`}), last ${Math.min(lines, all.length)} lines:\n${all.slice(-lines).join('\n')}`;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; a referenced timer keeps the event loop alive meanwhile. */
  async stop(graceMs: number): Promise<void> {
    if (this.child.pid === undefined || !this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

function unref(s: unknown): void {
  const u = (s as { unref?: () => void } | null)?.unref;
  if (typeof u === 'function') u.call(s);
}

// Everything still running when the test process exits normally (or on an uncaught error).
const live = new Set<{ procs: Proc[]; dir: string }>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of live) {
      for (const p of c.procs) if (p.running) p.child.kill('SIGKILL');
      rmSync(c.dir, { recursive: true, force: true });
    }
  });
}

class PortInUse extends Error {}

function freePorts(n: number): Promise<number[]> {
  // All listeners open at once, so the ports are distinct.
  const servers = Array.from({ length: n }, () => createServer());
  return Promise.all(servers.map((s) => new Promise<number>((resolve, reject) => {
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => resolve((s.address() as { port: number }).port));
  }))).finally(() => { for (const s of servers) s.close(); });
}

function binaries(): { etcd: string; apiserver: string; kubectl: string } {
  const b = { etcd: join(KUBE_BIN_DIR, 'etcd'), apiserver: join(KUBE_BIN_DIR, 'kube-apiserver'), kubectl: join(KUBE_BIN_DIR, 'kubectl') };
  for (const p of Object.values(b)) {
    if (!existsSync(p)) throw new Error(`${p} is missing: run bash scripts/install-kube.sh (scripts/setup.sh --test does)`);
  }
  return b;
}

async function openssl(dir: string, args: readonly string[]): Promise<void> {
  const r = await run('openssl', args, { cwd: dir, timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
}

/** A CA, and a serving certificate it signs for 127.0.0.1/localhost/kubernetes.default.svc. */
async function writeCertificates(dir: string): Promise<void> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(dir, ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '7', '-subj', '/CN=connectors-proxy-test-ca']);
  await openssl(dir, ['req', '-new', ...ec, '-keyout', 'apiserver.key', '-out', 'apiserver.csr', '-subj', '/CN=kube-apiserver']);
  writeFileSync(join(dir, 'apiserver.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n' +
    'extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n');
  await openssl(dir, ['x509', '-req', '-in', 'apiserver.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'apiserver.crt', '-days', '7', '-extfile', 'apiserver.ext']);
}

/** One request with `agent: false` (no pooled sockets keep a test process alive). */
function call(url: string, opts: { method?: string; ca?: string; token?: string; body?: unknown } = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const data = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const headers = {
      accept: 'application/json',
      ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
      ...(data === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) }),
    };
    const send = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = send(url, { method: opts.method ?? 'GET', ca: opts.ca, headers, agent: false, timeout: 30_000 }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => { text += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${opts.method ?? 'GET'} ${url} timed out`)));
    req.on('error', reject);
    req.end(data);
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Starts etcd and kube-apiserver; retries on a port taken between choosing and binding it. */
export async function startKube(opts: KubeOptions = {}): Promise<KubeCluster> {
  const bins = binaries();
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(bins, opts);
    } catch (e) {
      if (!(e instanceof PortInUse) || attempt === 3) throw e;
    }
  }
}

async function startOnce(bins: ReturnType<typeof binaries>, opts: KubeOptions): Promise<KubeCluster> {
  const timeoutMs = opts.timeoutMs ?? 90_000;
  const dir = mkdtempSync(join(tmpdir(), 'cproxy-kube-'));
  const procs: Proc[] = [];
  const entry = { procs, dir };
  installExitHook();
  live.add(entry);
  let reaper: ChildProcess | undefined;

  const stopAll = async (): Promise<void> => {
    // The reaper first: it must never SIGKILL a pid that has been reused after a clean exit.
    if (reaper && reaper.exitCode === null) reaper.kill('SIGKILL');
    for (const p of [...procs].reverse()) await p.stop(10_000);
    rmSync(dir, { recursive: true, force: true });
    live.delete(entry);
  };
  // The last API server that was stopped or failed: its log explains a restart.
  let retired: Proc | undefined;
  const logs = (lines = 30): string => [...(retired ? [retired] : []), ...procs].map((p) => p.tail(lines)).join('\n');

  try {
    const started = Date.now();
    const deadline = started + timeoutMs;
    const adminToken = randomBytes(24).toString('hex');
    const [saKey] = await Promise.all([
      promisify(generateKeyPair)('rsa', { modulusLength: 2048 }),
      writeCertificates(dir),
    ]);
    writeFileSync(join(dir, 'sa.key'), saKey.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(dir, 'sa.pub'), saKey.publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(join(dir, 'tokens.csv'), `${adminToken},admin,admin-uid,"system:masters"\n`, { mode: 0o600 });
    const caFile = join(dir, 'ca.crt');
    const caCert = readFileSync(caFile, 'utf8');
    const [etcdPort, peerPort, apiPort] = await freePorts(3);

    // A reaper shell: reads the pids it guards (`<pid>` adds one, `-<pid>` forgets one that
    // exited, so a reused pid is never killed) until its stdin closes, then kills them and
    // removes the folder. Its stdin closes when this process dies, however it dies.
    const reaperScript = 'pids=; while read -r p; do case "$p" in ' +
      '-*) keep=; for q in $pids; do [ "$q" = "${p#-}" ] || keep="$keep $q"; done; pids=$keep ;; ' +
      '*) pids="$pids $p" ;; esac; done; [ -n "$pids" ] && kill -9 $pids 2>/dev/null; rm -rf "$1"';
    reaper = spawn('sh', ['-c', reaperScript, 'kube-reaper', dir],
      { stdio: ['pipe', 'ignore', 'ignore'] });
    reaper.unref();
    unref(reaper.stdin);
    reaper.stdin!.on('error', () => {});
    const guard = (p: Proc): Proc => {
      procs.push(p);
      if (p.child.pid !== undefined) reaper!.stdin!.write(`${p.child.pid}\n`);
      return p;
    };
    const unguard = (p: Proc): void => {
      if (!procs.includes(p)) return;
      procs.splice(procs.indexOf(p), 1);
      retired = p;
      if (p.child.pid !== undefined && reaper!.exitCode === null) reaper!.stdin!.write(`-${p.child.pid}\n`);
    };

    const fail = (what: string): never => {
      const all = logs(40);
      if (/address already in use/.test(all)) throw new PortInUse(`${what}: a port was taken meanwhile\n${all}`);
      throw new Error(`${what}\n${all}`);
    };
    const waitFor = async (what: string, p: Proc, ok: () => Promise<boolean>, until = deadline): Promise<void> => {
      for (;;) {
        if (!p.running) fail(`${p.name} exited while waiting for ${what}`);
        if (await ok().catch(() => false)) return;
        if (Date.now() > until) fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await sleep(100);
      }
    };

    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const etcd = guard(new Proc('etcd', bins.etcd, [
      '--name', 'test', '--data-dir', join(dir, 'etcd'),
      '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl,
      '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--initial-cluster', `test=http://127.0.0.1:${peerPort}`,
      '--logger', 'zap', '--log-level', 'warn',
    ]));
    await waitFor('etcd /health', etcd, async () => {
      const r = await call(`${etcdUrl}/health`);
      return r.status === 200 && (JSON.parse(r.text) as { health?: string }).health === 'true';
    });

    const url = `https://127.0.0.1:${apiPort}`;
    const apiserverArgs = [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1', `--secure-port=${apiPort}`,
      // Loopback advertise address: nothing outside this machine reaches it, and without a
      // reconciler the `kubernetes` Service gets no (invalid loopback) endpoints.
      '--advertise-address=127.0.0.1', '--endpoint-reconciler-type=none',
      '--service-cluster-ip-range=10.0.0.0/24',
      `--tls-cert-file=${join(dir, 'apiserver.crt')}`, `--tls-private-key-file=${join(dir, 'apiserver.key')}`,
      `--client-ca-file=${caFile}`,
      `--token-auth-file=${join(dir, 'tokens.csv')}`,
      '--authorization-mode=RBAC',
      `--service-account-issuer=${SA_ISSUER}`,
      `--service-account-key-file=${join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      `--api-audiences=${SA_ISSUER}`,
      `--cert-dir=${join(dir, 'cert-dir')}`,
      '--profiling=false',
      // On SIGTERM, end open watches after 1 s instead of waiting for them (HTTP/2 watches
      // would keep a stopping API server alive until stopApiServer()'s SIGKILL).
      '--shutdown-watch-termination-grace-period=1s',
      ...(opts.apiserverArgs ?? []),
    ];
    let apiserver = guard(new Proc('kube-apiserver', bins.apiserver, apiserverArgs));
    const apiserverReady = (p: Proc, until: number): Promise<void> => waitFor('kube-apiserver /readyz', p, async () =>
      (await call(`${url}/readyz`, { ca: caCert, token: adminToken })).status === 200, until);
    await apiserverReady(apiserver, deadline);
    // The bootstrap controller creates `default` shortly after /readyz; tests may use it.
    await waitFor('namespace default', apiserver, async () =>
      (await call(`${url}/api/v1/namespaces/default`, { ca: caCert, token: adminToken })).status === 200);
    const startupMs = Date.now() - started;

    const kubeconfig = join(dir, 'admin.kubeconfig');
    writeFileSync(kubeconfig, [
      'apiVersion: v1', 'kind: Config',
      'clusters:', '- name: test', '  cluster:', `    server: ${url}`, `    certificate-authority: ${caFile}`,
      'users:', '- name: admin', '  user:', `    token: ${adminToken}`,
      'contexts:', '- name: test', '  context:', '    cluster: test', '    user: admin',
      'current-context: test', '',
    ].join('\n'), { mode: 0o600 });
    // Per cluster: a discovery cache keyed by host:port would outlive this cluster's CRDs.
    const cacheDir = join(dir, 'kubectl-cache');
    mkdirSync(cacheDir);

    const kubectl = async (args: readonly string[], o: { input?: string } = {}): Promise<KubectlResult> => {
      const r = await run(bins.kubectl, ['--kubeconfig', kubeconfig, '--cache-dir', cacheDir, ...args],
        { input: o.input, timeoutMs: 120_000, env: { ...process.env, KUBECONFIG: kubeconfig } });
      return { stdout: r.stdout.toString(), stderr: r.stderr, code: r.code };
    };
    const must = async (args: readonly string[], input?: string): Promise<string> => {
      const r = await kubectl(args, { input });
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
      return r.stdout;
    };

    const api = async (method: string, path: string, body?: unknown, token = adminToken): Promise<ApiReply> => {
      const r = await call(`${url}${path}`, { method, ca: caCert, token, body });
      let json: unknown;
      try { json = JSON.parse(r.text); } catch { json = undefined; }
      return { ...r, json };
    };

    let restarts = 0;
    const stopApiServer = async (): Promise<void> => {
      await apiserver.stop(10_000);
      unguard(apiserver);
    };
    const startApiServer = async (): Promise<void> => {
      if (apiserver.running) throw new Error(`kube-apiserver is running already (pid ${apiserver.child.pid})`);
      if (!etcd.running) throw new Error(`etcd is not running: cannot start kube-apiserver\n${logs(40)}`);
      unguard(apiserver);
      // The port was ours a moment ago; another process may still take it meanwhile, and
      // Go's listener may need a moment after the old process is gone: retry for a while.
      const until = Date.now() + timeoutMs;
      for (;;) {
        restarts++;
        apiserver = guard(new Proc(`kube-apiserver (start ${restarts + 1})`, bins.apiserver, apiserverArgs));
        try {
          await apiserverReady(apiserver, until);
          return;
        } catch (e) {
          const inUse = !apiserver.running && /address already in use/.test(apiserver.tail(40));
          await apiserver.stop(10_000);
          if (!inUse || Date.now() > until) throw e;
          unguard(apiserver);
          await sleep(500);
        }
      }
    };

    return {
      url, adminToken, kubeconfig, caFile, caCert, dir, startupMs,
      get pids() { return { etcd: etcd.child.pid!, apiserver: apiserver.child.pid! }; },
      kubectl,
      async createServiceAccountToken(namespace, serviceAccount, audiences = []) {
        const out = await must(['create', 'token', serviceAccount, '-n', namespace, ...audiences.flatMap((a) => ['--audience', a])]);
        return out.trim();
      },
      applyYaml: (text) => must(['apply', '-f', '-'], text),
      async waitForCrdEstablished(name, timeoutMs = 60_000) {
        const until = Date.now() + timeoutMs;
        for (;;) {
          const r = await api('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`);
          const conditions = (r.json as { status?: { conditions?: { type: string; status: string }[] } } | undefined)?.status?.conditions ?? [];
          if (conditions.some((c) => c.type === 'Established' && c.status === 'True')) return;
          if (Date.now() > until) throw new Error(`CRD ${name} not Established after ${timeoutMs} ms: ${r.status} ${JSON.stringify(conditions)}`);
          await sleep(100);
        }
      },
      api,
      logs,
      stopApiServer,
      startApiServer,
      stop: stopAll,
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}
