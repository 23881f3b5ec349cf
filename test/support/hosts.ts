// Test host names resolved to loopback for the processes that need them, without touching
// the machine's /etc/hosts: a mount namespace (`unshare -m`) with a private copy bind-mounted
// over /etc/hosts. Needed for Go clients (skopeo, crane, kubectl), which never use a proxy
// for a loopback target (127.0.0.1, localhost), and for any client that must reach an HTTPS
// tool by the name on its certificate. The network is the machine's: servers listening on
// 127.0.0.1 outside are reached from inside.
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, type RunOptions, type RunResult } from './run';

export interface PrivateHosts {
  /** The private hosts file (the names, then the machine's own entries). */
  readonly file: string;
  /** `cmd args...` as a command line that runs it with the private /etc/hosts (for spawn). */
  wrap(cmd: string, args: readonly string[]): { cmd: string; args: string[] };
  /** run() with the private /etc/hosts. */
  run(cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>;
}

/**
 * A hosts file in `dir` mapping each name to 127.0.0.1; undefined plus the reason when this
 * machine refuses a mount namespace (an unprivileged container): callers skip their test.
 */
export async function privateHosts(dir: string, names: readonly string[]): Promise<{ hosts: PrivateHosts } | { unavailable: string }> {
  const file = join(dir, 'hosts');
  writeFileSync(file, `${names.map((n) => `127.0.0.1 ${n}`).join('\n')}\n${readFileSync('/etc/hosts', 'utf8')}`);
  const wrap = (cmd: string, args: readonly string[]): { cmd: string; args: string[] } =>
    ({ cmd: 'unshare', args: ['-m', 'sh', '-c', 'mount --bind "$0" /etc/hosts && exec "$@"', file, cmd, ...args] });
  const probe = wrap('getent', ['hosts', names[0] ?? 'localhost']);
  const r = await run(probe.cmd, probe.args, { timeoutMs: 10_000 });
  if (r.code !== 0 || !r.stdout.toString().startsWith('127.0.0.1')) {
    return { unavailable: `cannot give the clients a private /etc/hosts here (unshare -m: ${r.stderr.trim() || r.stdout.toString().trim()})` };
  }
  return {
    hosts: {
      file,
      wrap,
      run: (cmd, args, opts) => {
        const w = wrap(cmd, args);
        return run(w.cmd, w.args, opts);
      },
    },
  };
}

/** Names of the HTTPS test tools (test/support/https-tools.ts); `.test` never resolves outside. */
export const TOOL_HOSTS = {
  git: 'git.tools.test',
  registry: 'registry.tools.test',
  auth: 'auth.tools.test',
  npm: 'npm.tools.test',
  pypi: 'pypi.tools.test',
} as const;
