// The HTTPS tools of the interception tests, each with a certificate from one private CA for
// its test name (TOOL_HOSTS) and 127.0.0.1: git (nginx + git http-backend), an OCI registry
// with token auth (registry and token server both HTTPS), Verdaccio (its own TLS) and
// pypiserver (behind an nginx TLS front). Clients reach the names through `hosts.run()` (a
// private /etc/hosts; undefined when the machine refuses one) and trust `caFile`.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGitHttps, type GitHttpsServer } from './git-https';
import { privateHosts, TOOL_HOSTS, type PrivateHosts } from './hosts';
import { startPypiserver, startVerdaccio, type PackageRegistry } from './package-registries';
import { startRegistryHarness, type RegistryHarness } from './registry';
import { TestCa } from './test-ca';

export interface HttpsTools {
  readonly ca: TestCa;
  /** The CA certificate as a file (GIT_SSL_CAINFO, SSL_CERT_FILE, npm cafile, pip --cert, curl --cacert). */
  readonly caFile: string;
  /** A folder for the test's own files, removed by stop(). */
  readonly dir: string;
  /** Runs clients with the tool names resolved to 127.0.0.1; undefined: see `hostsUnavailable`. */
  readonly hosts: PrivateHosts | undefined;
  readonly hostsUnavailable: string | undefined;
  readonly git?: GitHttpsServer;
  readonly registry?: RegistryHarness;
  readonly npm?: PackageRegistry;
  readonly pypi?: PackageRegistry;
  stop(): Promise<void>;
}

export interface HttpsToolsOptions {
  readonly git?: boolean;
  readonly registry?: boolean;
  readonly npm?: boolean;
  readonly pypi?: boolean;
  /** Extra names for the private hosts file (e.g. the proxy's own). */
  readonly extraHosts?: readonly string[];
}

/** Starts the tools asked for (all by default), in parallel; stop() stops them and removes the folders. */
export async function startHttpsTools(opts: HttpsToolsOptions = {}): Promise<HttpsTools> {
  const want = (k: 'git' | 'registry' | 'npm' | 'pypi'): boolean => opts[k] ?? (opts.git ?? opts.registry ?? opts.npm ?? opts.pypi) === undefined;
  const dir = mkdtempSync(join(tmpdir(), 'cproxy-https-tools-'));
  const ca = await TestCa.create('https-tools');
  const caFile = join(dir, 'tools-ca.crt');
  writeFileSync(caFile, ca.cert);
  const ns = await privateHosts(dir, [...Object.values(TOOL_HOSTS), ...(opts.extraHosts ?? [])]);
  const started: { stop(): Promise<void> }[] = [];
  const start = async <T extends { stop(): Promise<void> }>(on: boolean, f: () => Promise<T>): Promise<T | undefined> => {
    if (!on) return undefined;
    const t = await f();
    started.push(t);
    return t;
  };
  const stop = async (): Promise<void> => {
    await Promise.all(started.map((s) => s.stop()));
    ca.remove();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // allSettled: when one fails, the others have finished starting before stop() runs.
    const settled = await Promise.allSettled([
      start(want('git'), () => startGitHttps({ ca, host: TOOL_HOSTS.git })),
      start(want('registry'), () => startRegistryHarness('oci-tool-user', 'oci-tool-pw-R3g', { tls: { ca, registryHost: TOOL_HOSTS.registry, authHost: TOOL_HOSTS.auth } })),
      start(want('npm'), () => startVerdaccio(undefined, undefined, { tls: { ca, host: TOOL_HOSTS.npm } })),
      start(want('pypi'), () => startPypiserver(undefined, undefined, { tls: { ca, host: TOOL_HOSTS.pypi } })),
    ] as const);
    for (const s of settled) if (s.status === 'rejected') throw s.reason;
    const value = <T>(s: PromiseSettledResult<T>): T => (s as PromiseFulfilledResult<T>).value;
    const [git, registry, npm, pypi] = [value(settled[0]), value(settled[1]), value(settled[2]), value(settled[3])];
    return {
      ca, caFile, dir,
      hosts: 'hosts' in ns ? ns.hosts : undefined,
      hostsUnavailable: 'unavailable' in ns ? ns.unavailable : undefined,
      git, registry, npm, pypi,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
