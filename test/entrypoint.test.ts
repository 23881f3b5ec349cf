// dist/src/entrypoint.js, the image's ENTRYPOINT, run for real under a container memory
// limit: each run gets a private mount namespace (unshare -m) in which this machine's own
// cgroup limit file (v1 memory.limit_in_bytes or v2 memory.max, the file libuv and Node read
// too) reads a chosen value, so the entrypoint and the Node it starts see a 256 MiB, 1 GiB
// or no limit exactly as in a Pod. The proxy itself runs in file mode.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import { REPO_ROOT, TOKENS } from './support/proxy';
import { fakeLimitUnavailable, underFakeLimit, unlimitedValue } from './support/cgroup';

const ENTRY = join(REPO_ROOT, 'dist', 'src', 'entrypoint.js');
const MiB = 1024 * 1024;

const SKIP = fakeLimitUnavailable() ?? false;

interface Run {
  readonly child: ChildProcess;
  output(): string;
  /** The proxy's listening line. */
  listening(): Promise<{ ops: string; heapLimitMiB: number }>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

describe('entrypoint: the V8 heap sized to the container memory limit', { skip: SKIP }, () => {
  let dir: string;
  const runs: ChildProcess[] = [];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'cproxy-entry-'));
    mkdirSync(join(dir, 'manifests'));
    writeFileSync(join(dir, 'tokens.yaml'), TOKENS);
  });
  after(() => {
    for (const c of runs) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  /** The entrypoint with the proxy's file-mode flags, the own cgroup limit file reading `limit`. */
  const start = (limit: string, env: NodeJS.ProcessEnv = {}): Run => {
    const fake = join(dir, `limit-${runs.length}`);
    writeFileSync(fake, `${limit}\n`);
    const args = ['--listen', '127.0.0.1:0', '--ops-listen', '127.0.0.1:0', '--manifests', join(dir, 'manifests'),
      '--tokens', join(dir, 'tokens.yaml'), '--no-probes', '--no-watch', '--shutdown-grace-ms', '2000'];
    // The entrypoint keeps the pid we signal (exec), as PID 1 does in a container.
    const child = spawn('unshare', underFakeLimit(fake, [process.execPath, ENTRY, ...args]), {
      env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    runs.push(child);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
    const listening = async (): Promise<{ ops: string; heapLimitMiB: number }> => {
      for (let i = 0; i < 300; i++) {
        const line = out.split('\n').find((l) => l.includes('"msg":"connectors-proxy listening"'));
        if (line) return JSON.parse(line) as { ops: string; heapLimitMiB: number };
        if (child.exitCode !== null || child.signalCode !== null) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      return assert.fail(`the proxy did not start:\n${out}`);
    };
    return { child, output: () => out, listening, exited };
  };

  /** Pids whose parent is `pid`. */
  const childrenOf = (pid: number): number[] => readdirSync('/proc').filter((e) => /^\d+$/.test(e)).filter((e) => {
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
    } catch { return false; }
  }).map(Number);
  const cmdline = (pid: number): string[] => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
  const ready = async (ops: string): Promise<number> => (await fetch(`http://${ops}/readyz`)).status;

  test('256 MiB: main.js runs in a child with --max-old-space-size=128 --max-semi-space-size=1, which V8 applies; SIGTERM drains it and its exit status is the entrypoint\'s', async () => {
    const r = start(String(256 * MiB));
    const info = await r.listening();
    assert.match(r.output(), /"memoryLimitMiB":256,[^\n]*"maxOldSpaceMiB":128,"maxSemiSpaceMiB":1,"msg":"V8 heap sized to the container memory limit"/);
    const kids = childrenOf(r.child.pid!);
    assert.equal(kids.length, 1, `one child of the entrypoint: ${kids.join(',')}`);
    const argv = cmdline(kids[0]!);
    assert.deepEqual(argv.slice(1, 4), ['--max-old-space-size=128', '--max-semi-space-size=1', join(REPO_ROOT, 'dist', 'src', 'main.js')]);
    // Old space plus three semi-spaces: what V8 really allows, from the proxy's own log line.
    assert.ok(info.heapLimitMiB >= 128 && info.heapLimitMiB <= 128 + 3 * 1 + 1, `heap limit ${info.heapLimitMiB} MiB`);
    assert.equal(await ready(info.ops), 200);
    r.child.kill('SIGTERM');
    assert.deepEqual(await r.exited, { code: 0, signal: null }, r.output());
    assert.match(r.output(), /"signal":"SIGTERM"[^\n]*"msg":"draining"/, 'the signal reached the proxy');
    assert.match(r.output(), /"msg":"stopped"/);
  });

  test('256 MiB: a child killed by SIGKILL (as by the OOM killer) takes the entrypoint with it, by the same signal', async () => {
    const r = start(String(256 * MiB));
    await r.listening();
    const [kid] = childrenOf(r.child.pid!);
    process.kill(kid!, 'SIGKILL');
    assert.deepEqual(await r.exited, { code: null, signal: 'SIGKILL' });
  });

  test('1 GiB: Node\'s own sizing (half the limit) already fits, so the proxy is the entrypoint\'s own process', async () => {
    const r = start(String(1024 * MiB));
    const info = await r.listening();
    assert.deepEqual(childrenOf(r.child.pid!), []);
    assert.ok(info.heapLimitMiB >= 512 && info.heapLimitMiB < 512 + 64, `Node sized the heap from the cgroup: ${info.heapLimitMiB} MiB`);
    assert.doesNotMatch(r.output(), /V8 heap sized/);
    r.child.kill('SIGTERM');
    assert.equal((await r.exited).code, 0);
  });

  test('256 MiB with NODE_OPTIONS=--max-old-space-size=300: the operator\'s choice stands, one process', async () => {
    const r = start(String(256 * MiB), { NODE_OPTIONS: '--max-old-space-size=300' });
    const info = await r.listening();
    assert.deepEqual(childrenOf(r.child.pid!), []);
    assert.ok(info.heapLimitMiB >= 300 && info.heapLimitMiB < 400, `heap limit ${info.heapLimitMiB} MiB`);
    r.child.kill('SIGTERM');
    assert.equal((await r.exited).code, 0);
  });

  test('no limit ("max" / 2^63): one process, Node\'s default heap of this machine', async () => {
    const r = start(unlimitedValue());
    const info = await r.listening();
    assert.deepEqual(childrenOf(r.child.pid!), []);
    assert.equal(info.heapLimitMiB, Math.round(getHeapStatistics().heap_size_limit / MiB));
    r.child.kill('SIGTERM');
    assert.equal((await r.exited).code, 0);
  });
});
