// A process's view of a container memory limit, for tests and the bench: this machine's own
// cgroup limit file (the first one libuv and src/server/capacity.ts read) and a command line
// that runs a program in a private mount namespace where that file reads a chosen value, so
// the program and the Node it starts see the limit exactly as in a Pod. Needs root (unshare -m).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** This process's own memory-limit file: cgroup v2 memory.max or v1 memory.limit_in_bytes. */
export function ownLimitFile(): string | undefined {
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const [id, controllers, path] = line.split(':');
    if (path === undefined) continue;
    const file = id === '0' && controllers === ''
      ? join('/sys/fs/cgroup', path, 'memory.max')
      : controllers!.split(',').includes('memory') ? join('/sys/fs/cgroup/memory', path, 'memory.limit_in_bytes') : undefined;
    if (file !== undefined && existsSync(file)) return file;
  }
  return undefined;
}

/** Why a fake limit cannot be given here, or undefined when it can. */
export function fakeLimitUnavailable(): string | undefined {
  if (ownLimitFile() === undefined) return 'no cgroup memory limit file found for this process';
  if (spawnSync('unshare', ['-m', 'true']).status !== 0) return 'needs root and unshare(1) to give a process a private mount namespace';
  return undefined;
}

/**
 * `unshare` arguments that run `command` (exec'd: it keeps the pid) with the own cgroup limit
 * file replaced by `fakeFile` (holding e.g. "268435456", "max").
 */
export function underFakeLimit(fakeFile: string, command: readonly string[]): string[] {
  return ['-m', 'sh', '-c', 'mount --bind "$0" "$1" && shift && exec "$@"', fakeFile, ownLimitFile()!, ...command];
}

/** The value of "no limit" in this machine's kind of limit file. */
export function unlimitedValue(): string {
  return ownLimitFile()?.endsWith('memory.max') ? 'max' : '9223372036854771712';
}
