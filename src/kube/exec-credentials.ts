// Exec credential plugins (kubeconfig `users[].user.exec`, client.authentication.k8s.io/v1 and
// v1beta1): how EKS (`aws eks get-token`), GKE (`gke-gcloud-auth-plugin`) and AKS (`kubelogin`)
// users authenticate. The command prints an ExecCredential with a token or a client
// certificate and optionally its expiry; the credential is reused until shortly before that
// expiry (or forever without one) and dropped when the API server answers 401. One run at a
// time: concurrent requests wait for the same run. The plugin's output is never logged.
import { execFile } from 'node:child_process';
import { KubeCredentialError } from './errors';

export const EXEC_API_VERSIONS = ['client.authentication.k8s.io/v1', 'client.authentication.k8s.io/v1beta1'] as const;
export type ExecApiVersion = (typeof EXEC_API_VERSIONS)[number];

export interface ExecConfig {
  readonly apiVersion: ExecApiVersion;
  /** Absolute, relative to the kubeconfig's folder when it has a slash, else looked up in PATH. */
  readonly command: string;
  readonly args: readonly string[];
  readonly env: ReadonlyArray<{ readonly name: string; readonly value: string }>;
  readonly installHint?: string;
  /** Sent as `spec.cluster` in KUBERNETES_EXEC_INFO when `provideClusterInfo` is set. */
  readonly cluster?: Readonly<Record<string, unknown>>;
  /** `<kubeconfig>: users[<name>].exec`, for messages. */
  readonly where: string;
  /** Longest a run may take (default 60 s). */
  readonly timeoutMs?: number;
}

/** What a run produced. */
export interface ExecCredential {
  readonly token?: string;
  readonly cert?: string;
  readonly key?: string;
  /** Epoch ms of `status.expirationTimestamp`; undefined: valid until the API server says 401. */
  readonly expiresAt?: number;
}

interface ExecCredentialOutput {
  apiVersion?: unknown;
  kind?: unknown;
  status?: { token?: unknown; clientCertificateData?: unknown; clientKeyData?: unknown; expirationTimestamp?: unknown };
}

export class ExecCredentialSource {
  /** Runs of the plugin (tests, metrics). */
  runs = 0;
  private cached: { cred: ExecCredential; renewAt: number } | undefined;
  private pending: Promise<ExecCredential> | undefined;

  constructor(private readonly cfg: ExecConfig, private readonly now: () => number = Date.now) {}

  /** The current credential, running the plugin when there is none or it is about to expire. */
  get(): ExecCredential | Promise<ExecCredential> {
    if (this.cached !== undefined && this.now() < this.cached.renewAt) return this.cached.cred;
    this.pending ??= this.run().then((cred) => {
      const now = this.now();
      // Renew a little before the expiry (a fifth of the lifetime, at most 5 s), so a request
      // sent just before it does not arrive with an expired token.
      const renewAt = cred.expiresAt === undefined ? Infinity : cred.expiresAt - Math.min(5_000, Math.max(0, (cred.expiresAt - now) / 5));
      this.cached = { cred, renewAt };
      return cred;
    }).finally(() => { this.pending = undefined; });
    return this.pending;
  }

  /** The API server refused `cred` (401): the next get() runs the plugin again. */
  invalidate(cred: ExecCredential): void {
    if (this.cached?.cred === cred) this.cached = undefined;
  }

  private async run(): Promise<ExecCredential> {
    const { cfg } = this;
    this.runs++;
    const info = { apiVersion: cfg.apiVersion, kind: 'ExecCredential', spec: { interactive: false, ...(cfg.cluster ? { cluster: cfg.cluster } : {}) } };
    const env: NodeJS.ProcessEnv = { ...process.env, KUBERNETES_EXEC_INFO: JSON.stringify(info) };
    for (const e of cfg.env) env[e.name] = e.value;
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(cfg.command, [...cfg.args], { env, timeout: cfg.timeoutMs ?? 60_000, maxBuffer: 1 << 20, encoding: 'utf8' }, (err, out, errOut) => {
        if (err === null) { resolve(out); return; }
        const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: string | number | null };
        let why: string;
        if (e.code === 'ENOENT') why = `command not found${cfg.installHint ? ` (${cfg.installHint.trim().split('\n')[0]})` : ''}`;
        else if (e.killed) why = `did not finish within ${(cfg.timeoutMs ?? 60_000) / 1000} s`;
        else {
          // The plugin's last stderr line says why; stdout may hold a credential and is never shown.
          const last = String(errOut).trim().split('\n').pop()?.slice(0, 300) ?? '';
          why = `exited with ${typeof e.code === 'number' ? `code ${e.code}` : e.code ?? 'an error'}${last ? `: ${last}` : ''}`;
        }
        reject(new KubeCredentialError(`${cfg.where}: the credential plugin ${JSON.stringify(cfg.command)} ${why}`));
      });
    });
    return parseExecCredential(stdout, cfg);
  }
}

/** The credential in a plugin's output; errors name the kubeconfig entry, never the output. */
export function parseExecCredential(stdout: string, cfg: Pick<ExecConfig, 'apiVersion' | 'where' | 'command'>): ExecCredential {
  const fail = (why: string): never => { throw new KubeCredentialError(`${cfg.where}: the credential plugin ${JSON.stringify(cfg.command)} printed ${why}`); };
  let out: ExecCredentialOutput;
  try {
    out = JSON.parse(stdout) as ExecCredentialOutput;
  } catch {
    return fail('something that is not JSON (expected an ExecCredential)');
  }
  if (out === null || typeof out !== 'object' || out.kind !== 'ExecCredential') return fail('no ExecCredential (kind must be ExecCredential)');
  if (out.apiVersion !== cfg.apiVersion) return fail(`apiVersion ${JSON.stringify(out.apiVersion)}, the kubeconfig asks for ${cfg.apiVersion}`);
  const s = out.status ?? {};
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const token = str(s.token);
  const cert = str(s.clientCertificateData);
  const key = str(s.clientKeyData);
  if ((cert === undefined) !== (key === undefined)) return fail('only one of status.clientCertificateData and status.clientKeyData');
  if (token === undefined && cert === undefined) return fail('neither status.token nor status.clientCertificateData/clientKeyData');
  let expiresAt: number | undefined;
  if (s.expirationTimestamp !== undefined && s.expirationTimestamp !== null) {
    expiresAt = typeof s.expirationTimestamp === 'string' ? Date.parse(s.expirationTimestamp) : NaN;
    if (Number.isNaN(expiresAt)) return fail('a status.expirationTimestamp that is not an RFC 3339 time');
  }
  return { token, cert, key, expiresAt };
}
