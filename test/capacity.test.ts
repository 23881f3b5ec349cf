// src/server/capacity.ts: the container memory limit read from cgroup files (fake cgroup v1
// and v2 trees in a temporary folder, laid out as a container and as a host see them; and
// this machine's own files against libuv's reading of them), and the caps and heap size
// derived from it.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  ASSUMED_LIMIT_BYTES, HEADROOM, MEASURED_COSTS, MIN_EXCHANGES, OLD_SPACE_MIN_MIB,
  capacityDefaults, cgroupMemoryLimit, oldSpaceMiB, semiSpaceMiB,
} from '../src/server/capacity';

const MiB = 1024 * 1024;
const roots = mkdtempSync(join(tmpdir(), 'cproxy-cgroup-'));
after(() => rmSync(roots, { recursive: true, force: true }));

let n = 0;
/** A fake root holding `files` (path below the root → content). */
function fakeRoot(files: Record<string, string>): string {
  const root = join(roots, String(++n));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

describe('cgroupMemoryLimit', () => {
  test('cgroup v2 in a cgroup namespace (a container on a current node): memory.max at the top', () => {
    const root = fakeRoot({ 'proc/self/cgroup': '0::/\n', 'sys/fs/cgroup/memory.max': '268435456\n' });
    assert.deepEqual(cgroupMemoryLimit(root), { bytes: 256 * MiB, file: join(root, 'sys/fs/cgroup/memory.max') });
  });

  test('cgroup v2 "max" is no limit', () => {
    assert.equal(cgroupMemoryLimit(fakeRoot({ 'proc/self/cgroup': '0::/\n', 'sys/fs/cgroup/memory.max': 'max\n' })), undefined);
  });

  test('cgroup v2 seen from the host: the smallest limit on the way up wins (the Pod\'s, above the container\'s "max")', () => {
    const pod = 'sys/fs/cgroup/kubepods.slice/kubepods-pod1.slice';
    const root = fakeRoot({
      'proc/self/cgroup': '0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope\n',
      [`${pod}/cri-containerd-abc.scope/memory.max`]: 'max\n',
      [`${pod}/memory.max`]: '536870912\n',
      'sys/fs/cgroup/kubepods.slice/memory.max': '8589934592\n',
    });
    assert.deepEqual(cgroupMemoryLimit(root), { bytes: 512 * MiB, file: join(root, pod, 'memory.max') });
  });

  test('cgroup v1 without a cgroup namespace: the host path in /proc/self/cgroup, the container\'s own cgroup mounted at the top', () => {
    const root = fakeRoot({
      'proc/self/cgroup': '12:pids:/kubepods/burstable/pod1/abc\n4:memory:/kubepods/burstable/pod1/abc\n1:name=systemd:/kubepods/burstable/pod1/abc\n',
      'sys/fs/cgroup/memory/memory.limit_in_bytes': '268435456\n',
    });
    assert.deepEqual(cgroupMemoryLimit(root), { bytes: 256 * MiB, file: join(root, 'sys/fs/cgroup/memory/memory.limit_in_bytes') });
  });

  test('cgroup v1 "unlimited" (2^63 rounded down to a page) is no limit', () => {
    const root = fakeRoot({ 'proc/self/cgroup': '4:memory:/\n', 'sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712\n' });
    assert.equal(cgroupMemoryLimit(root), undefined);
  });

  test('a hybrid host (v1 memory controller, v2 unified tree without it) uses the v1 limit; a joint controller list is read too', () => {
    const root = fakeRoot({
      'proc/self/cgroup': '5:cpu,memory:/job\n0::/job\n',
      'sys/fs/cgroup/memory/job/memory.limit_in_bytes': '1073741824\n',
    });
    assert.equal(cgroupMemoryLimit(root)?.bytes, 1024 * MiB);
  });

  test('no cgroup file, or one that says nothing readable: no limit', () => {
    assert.equal(cgroupMemoryLimit(fakeRoot({ 'etc/hostname': 'x\n' })), undefined);
    assert.equal(cgroupMemoryLimit(fakeRoot({ 'proc/self/cgroup': 'garbage\n', 'sys/fs/cgroup/memory.max': '1000\n' })), undefined);
    assert.equal(cgroupMemoryLimit(fakeRoot({ 'proc/self/cgroup': '0::/\n', 'sys/fs/cgroup/memory.max': 'lots\n' })), undefined);
  });

  test('this machine: the same answer as libuv (process.constrainedMemory), which Node uses to size its heap', () => {
    const limit = cgroupMemoryLimit();
    const libuv = process.constrainedMemory?.() ?? 0;
    if (libuv > 0 && libuv < 2 ** 50) assert.equal(limit?.bytes, libuv);
    else assert.equal(limit, undefined, `libuv sees no limit (${libuv}), so neither may we`);
  });
});

describe('capacityDefaults', () => {
  test('the caps fit the limit: exchanges and idle connections at their measured cost stay within the budget', () => {
    for (const mib of [192, 256, 512, 1024, 4096]) {
      const d = capacityDefaults(mib * MiB);
      const c = MEASURED_COSTS;
      const used = c.baselineBytes + d.maxConcurrentExchanges * c.perExchangeBytes + (d.maxClientConnections - d.maxConcurrentExchanges) * c.perConnectionBytes;
      assert.ok(used <= mib * MiB * (1 - HEADROOM), `${mib} MiB: ${(used / MiB).toFixed(1)} MiB used by the caps`);
      assert.ok(d.maxClientConnections > d.maxConcurrentExchanges, 'room for idle kept-alive connections');
      assert.equal(d.memoryLimitBytes, mib * MiB);
    }
  });

  test('more memory, higher caps; a tiny limit still admits the minimum', () => {
    const at = (mib: number): number => capacityDefaults(mib * MiB).maxConcurrentExchanges;
    assert.ok(at(256) < at(512) && at(512) < at(1024));
    assert.equal(at(64), MIN_EXCHANGES);
  });

  test('without a limit: the caps of the assumed limit, and Node keeps its own heap size', () => {
    const none = capacityDefaults(undefined);
    const assumed = capacityDefaults(ASSUMED_LIMIT_BYTES);
    assert.equal(none.maxConcurrentExchanges, assumed.maxConcurrentExchanges);
    assert.equal(none.maxClientConnections, assumed.maxClientConnections);
    assert.equal(none.memoryLimitBytes, undefined);
    assert.equal(none.maxOldSpaceMiB, undefined);
  });

  test('old space: half the limit, never below the floor', () => {
    assert.equal(oldSpaceMiB(256 * MiB), 128);
    assert.equal(oldSpaceMiB(512 * MiB), 256);
    assert.equal(oldSpaceMiB(64 * MiB), OLD_SPACE_MIN_MIB);
    assert.equal(capacityDefaults(256 * MiB).maxOldSpaceMiB, 128);
  });

  test('semi-spaces: 1 MiB in small containers (as Node sizes them there), growing with the limit up to 16 MiB', () => {
    assert.deepEqual([128, 256, 511, 512, 1024, 4096, 65536].map((m) => semiSpaceMiB(m * MiB)), [1, 1, 1, 2, 4, 16, 16]);
    assert.equal(capacityDefaults(256 * MiB).maxSemiSpaceMiB, 1);
    assert.equal(capacityDefaults(undefined).maxSemiSpaceMiB, undefined);
  });
});
