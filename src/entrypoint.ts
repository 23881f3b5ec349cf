// The image's ENTRYPOINT: runs the proxy (main.js) with V8's old space sized to the
// container's memory limit, so that garbage collection works harder before the kernel's OOM
// killer ends every stream at once. Node 20 already sizes the heap from the cgroup limit,
// but as half of it with a floor of 256 MiB: at a 256 MiB limit the heap alone may fill the
// container. The image has no shell, so this is Node:
//   - no limit, or the operator chose a heap size (NODE_OPTIONS or node flags): main.js runs
//     in this process, as if started directly;
//   - Node's own heap limit already fits (limits of 512 MiB and more): the same;
//   - otherwise main.js runs in a child started with --max-old-space-size and
//     --max-semi-space-size (about 7 MiB of this process stay resident), signals are passed
//     on, and its exit status is ours.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import { cgroupMemoryLimit, oldSpaceMiB, semiSpaceMiB } from './server/capacity';

const MiB = 1024 * 1024;
const MAIN = join(__dirname, 'main.js');
/** Node's heap limit within this much (MiB) of the wanted one is close enough to keep one process. */
const SLACK_MIB = 32;

/** A heap size set by the operator wins over the derived one. */
function heapChosen(): boolean {
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  return flags.some((f) => /^--max[-_](old[-_]space|heap)[-_]size\b/.test(f));
}

/** The proxy's log level, from its flag or variable: the one line written here is at info. */
function logsInfo(args: readonly string[]): boolean {
  const i = args.findIndex((a) => a === '--log-level' || a.startsWith('--log-level='));
  const level = i < 0 ? process.env.PROXY_LOG_LEVEL : args[i]!.includes('=') ? args[i]!.split('=')[1] : args[i + 1];
  return level === undefined || ['trace', 'debug', 'info'].includes(level);
}

function start(): void {
  const args = process.argv.slice(2);
  const limit = heapChosen() ? undefined : cgroupMemoryLimit();
  const wanted = limit && oldSpaceMiB(limit.bytes);
  if (limit === undefined || wanted === undefined || getHeapStatistics().heap_size_limit / MiB <= wanted + SLACK_MIB) {
    require(MAIN);
    return;
  }
  const semi = semiSpaceMiB(limit.bytes);
  if (logsInfo(args)) {
    process.stdout.write(`${JSON.stringify({
      level: 30, time: Date.now(), service: 'connectors-proxy', memoryLimitMiB: Math.round(limit.bytes / MiB), limitFile: limit.file,
      maxOldSpaceMiB: wanted, maxSemiSpaceMiB: semi, msg: 'V8 heap sized to the container memory limit',
    })}\n`);
  }
  const child = spawn(process.execPath, [...process.execArgv, `--max-old-space-size=${wanted}`, `--max-semi-space-size=${semi}`, MAIN, ...args], { stdio: 'inherit' });
  const signals = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
  for (const s of signals) process.on(s, () => child.kill(s));
  child.once('error', (err) => {
    process.stderr.write(`connectors-proxy: could not start ${MAIN}: ${err.message}\n`);
    process.exit(2);
  });
  child.once('exit', (code, signal) => {
    if (signal === null) process.exit(code ?? 1);
    // Die of the same signal (a SIGKILL from the OOM killer stays visible as such).
    for (const s of signals) process.removeAllListeners(s);
    process.kill(process.pid, signal);
  });
}

start();
