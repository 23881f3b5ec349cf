// Child processes for the bench: started pinned to a CPU when asked, tracked so that all
// are stopped on every way out, and measured through /proc.
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:net';

const running = new Set<ChildProcess>();

export interface StartOptions {
  /** CPU list for `taskset -c`; undefined runs the command unpinned. */
  readonly cpu?: string;
  readonly stdio?: StdioOptions;
  /** Added to this process's environment. */
  readonly env?: NodeJS.ProcessEnv;
}

/** Starts `cmd`; with a CPU it runs under taskset, which execs, so the pid is the command's. */
export function start(cmd: string, args: readonly string[], opts: StartOptions = {}): ChildProcess {
  const [file, argv] = opts.cpu === undefined ? [cmd, args] : ['taskset', ['-c', opts.cpu, cmd, ...args]];
  const child = spawn(file, argv, { stdio: opts.stdio ?? ['ignore', 'pipe', 'inherit'], env: opts.env === undefined ? process.env : { ...process.env, ...opts.env } });
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export function stop(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => { clearTimeout(timer); resolve(); });
    child.kill('SIGTERM');
  });
}

/** Stops every process still running (on an error or a signal). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((child) => stop(child)));
}

/**
 * Last resort at exit, when nothing can be awaited: SIGTERM, not SIGKILL, because a killed
 * nginx master leaves its worker running.
 */
export function terminateAll(): void {
  for (const child of running) child.kill('SIGTERM');
}

/** Runs a command to its end and returns its stdout; rejects on a non-zero exit. */
export function run(cmd: string, args: readonly string[], opts: StartOptions = {}): Promise<string> {
  const child = start(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.trim()}`));
    });
  });
}

/** A loopback port free right now, for servers that cannot listen on port 0 (nginx). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves with the first stdout line of `child` that `parse` accepts. */
export function firstLine<T>(child: ChildProcess, parse: (line: string) => T | undefined, timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => fail(new Error(`no start-up line within ${timeoutMs} ms`)), timeoutMs);
    const onExit = (code: number | null): void => fail(new Error(`exited (${code}) before it was ready`));
    const onData = (d: Buffer): void => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const v = parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if (v !== undefined) { done(); resolve(v); return; }
      }
    };
    const done = (): void => { clearTimeout(timer); child.stdout!.off('data', onData); child.off('exit', onExit); child.stdout!.resume(); };
    const fail = (err: Error): void => { done(); reject(err); };
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
}

export async function waitUntil(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** `VmHWM` (peak) and `VmRSS` (now) of a process, in KiB. */
export function memory(pid: number): { peakKiB: number; rssKiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { peakKiB: field('VmHWM'), rssKiB: field('VmRSS') };
}

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ: 100 on Linux). */
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU time a process used so far (utime + stime, all its threads), in milliseconds. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (in parentheses, may hold spaces): state is field 3, utime 14, stime 15.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS;
}

/** Pids whose parent is `pid` (nginx's workers), from /proc. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command name, which is in parentheses and may hold spaces.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch { /* the process ended while we looked */ }
  }
  return out;
}

/**
 * A bench proxy's folder: `manifests/bench.yaml`, a token file that lets `clientToken` use the
 * Connectors of namespace `bench`, a log file, and two free ports picked here (not port 0: with
 * `--log-level warn` no log line tells them). Returns the arguments every bench proxy gets.
 */
export async function benchProxyFiles(dir: string, manifests: string, clientToken: string): Promise<{ port: number; opsPort: number; logFile: string; args: string[] }> {
  mkdirSync(join(dir, 'manifests'), { recursive: true });
  writeFileSync(join(dir, 'manifests', 'bench.yaml'), manifests);
  const tokens = join(dir, 'tokens.yaml');
  writeFileSync(tokens, `tokens:\n  - token: ${clientToken}\n    user: system:serviceaccount:bench:client\n    connectors: ["bench/*"]\n`);
  const port = await freePort();
  let opsPort: number;
  do opsPort = await freePort(); while (opsPort === port);
  return {
    port, opsPort, logFile: join(dir, 'proxy.log'),
    args: ['--listen', `127.0.0.1:${port}`, '--ops-listen', `127.0.0.1:${opsPort}`, '--manifests', join(dir, 'manifests'),
      '--tokens', tokens, '--domain', 'bench.local', '--log-level', 'info', '--shutdown-grace-ms', '2000'],
  };
}
