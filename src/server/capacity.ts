// Capacity defaults from the container's memory limit: how many concurrent exchanges and
// client connections fit in it, and how large V8's old space may grow, from the cost of
// one stream measured by bench/streams.sh (figures in bench/README.md, "Concurrent streams").
// Pure: the cgroup files are read under a root folder that tests replace with a fake one.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface MemoryLimit {
  readonly bytes: number;
  /** The file the limit was read from (for the start-up log). */
  readonly file: string;
}

/** A limit at or above this is "no limit": cgroup v1 writes 2^63 rounded down to a page. */
const NO_LIMIT_FROM = 2 ** 50;

function read(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** `path` and each of its ancestors up to `/`. */
function upwards(path: string): string[] {
  const parts = path.split('/').filter((p) => p !== '');
  const out: string[] = [];
  for (let i = parts.length; i >= 0; i--) out.push('/' + parts.slice(0, i).join('/'));
  return out;
}

/**
 * The memory limit of the cgroup this process runs in, or undefined when there is none.
 * cgroup v2: `memory.max` ("max" is no limit); v1: `memory.limit_in_bytes` (a huge value is
 * no limit). The own cgroup and its ancestors are read and the smallest limit wins: a
 * container without a cgroup namespace sees its host path in /proc/self/cgroup but has its
 * own cgroup mounted at the top, which the walk up reaches. On a hybrid host both are read.
 */
export function cgroupMemoryLimit(root = '/'): MemoryLimit | undefined {
  const self = read(join(root, 'proc', 'self', 'cgroup'));
  if (self === undefined) return undefined;
  let best: MemoryLimit | undefined;
  const consider = (file: string, parse: (text: string) => number | undefined): void => {
    const text = read(file);
    if (text === undefined) return;
    const bytes = parse(text.trim());
    if (bytes !== undefined && bytes > 0 && bytes < NO_LIMIT_FROM && (best === undefined || bytes < best.bytes)) best = { bytes, file };
  };
  const number = (text: string): number | undefined => (/^\d+$/.test(text) ? Number(text) : undefined);
  for (const line of self.split('\n')) {
    // hierarchy-ID:controller-list:cgroup-path (the path may hold colons)
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (m === null) continue;
    const [, id, controllers, path] = m as unknown as [string, string, string, string];
    if (id === '0' && controllers === '') {
      for (const dir of upwards(path)) consider(join(root, 'sys', 'fs', 'cgroup', dir, 'memory.max'), (t) => (t === 'max' ? undefined : number(t)));
    } else if (controllers.split(',').includes('memory')) {
      for (const dir of upwards(path)) consider(join(root, 'sys', 'fs', 'cgroup', 'memory', dir, 'memory.limit_in_bytes'), number);
    }
  }
  return best;
}

/**
 * What the proxy costs, in RSS, measured by bench/streams.sh on Node 20 as in a 256 MiB
 * container (bench/README.md, "Concurrent streams"; update both together).
 */
export interface StreamCosts {
  /** RSS of a started proxy after its first requests, before the load. */
  readonly baselineBytes: number;
  /** RSS one concurrent exchange adds. */
  readonly perExchangeBytes: number;
  /** RSS one idle kept-alive client connection adds. */
  readonly perConnectionBytes: number;
}

const MiB = 1024 * 1024;
const KiB = 1024;

export const MEASURED_COSTS: StreamCosts = {
  // Idle after one warm-up stream: 65-106 MiB across runs (the V8 heap grown, the JIT warm).
  baselineBytes: 100 * MiB,
  // 200 streams per case: 30-220 KiB for plain downloads and uploads, 250-300 over TLS, up to
  // 450 for a TLS upload to a slow tool (two chunks held per TLS socket). 256 KiB covers all
  // but that one; 1,000 slow plain downloads measured 123 KiB each (bench/README.md).
  perExchangeBytes: 256 * KiB,
  // 1,000 to 2,000 idle kept-alive connections: 17-30 KiB each (with the tool connection the
  // burst that opened them left in the pool).
  perConnectionBytes: 32 * KiB,
};

/** Part of the limit kept free: allocator fragmentation, bursts between two GCs, the kernel's share. */
export const HEADROOM = 0.1;
/** Share of the remaining budget given to exchanges; the rest is for idle kept-alive connections. */
export const EXCHANGE_SHARE = 0.8;
/** The caps never go below these, however small the limit: a proxy that refuses everything helps nobody. */
export const MIN_EXCHANGES = 32;
export const MIN_EXTRA_CONNECTIONS = 32;
/** Without a limit (a developer's machine, a container without one) the caps of this limit apply. */
export const ASSUMED_LIMIT_BYTES = 1024 * MiB;
/** V8 old space: this share of the limit, within these bounds (MiB). */
export const OLD_SPACE_SHARE = 0.5;
export const OLD_SPACE_MIN_MIB = 64;
export const OLD_SPACE_MAX_MIB = 4096;
/**
 * V8 young generation: one semi-space per this many MiB of limit, 1 to 16 MiB. Passing only
 * --max-old-space-size would give the 16 MiB semi-spaces of a large machine; Node's own
 * sizing in a 256-512 MiB container uses 1 MiB, which frees dead Buffers sooner (bench/README.md).
 */
export const MIB_PER_SEMI_SPACE_MIB = 256;

export interface CapacityDefaults {
  /** The limit the figures derive from; undefined when there is none (ASSUMED_LIMIT_BYTES was used). */
  readonly memoryLimitBytes: number | undefined;
  /** Default of --max-concurrent-exchanges: requests (Upgrade sessions included) being relayed at once. */
  readonly maxConcurrentExchanges: number;
  /** Default of --max-client-connections: open client connections, busy or idle. */
  readonly maxClientConnections: number;
  /** --max-old-space-size for this limit (MiB); undefined without a limit (Node's own default stands). */
  readonly maxOldSpaceMiB: number | undefined;
  /** --max-semi-space-size for this limit (MiB); undefined without a limit. */
  readonly maxSemiSpaceMiB: number | undefined;
}

/**
 * Caps that keep `limitBytes` from being exceeded: (limit - headroom - baseline) split between
 * exchanges (EXCHANGE_SHARE) and idle connections, each at its measured cost.
 */
export function capacityDefaults(limitBytes: number | undefined, costs: StreamCosts = MEASURED_COSTS): CapacityDefaults {
  const limit = limitBytes ?? ASSUMED_LIMIT_BYTES;
  const budget = Math.max(0, limit * (1 - HEADROOM) - costs.baselineBytes);
  const exchanges = Math.max(MIN_EXCHANGES, Math.floor((budget * EXCHANGE_SHARE) / costs.perExchangeBytes));
  const idle = Math.max(MIN_EXTRA_CONNECTIONS, Math.floor((budget * (1 - EXCHANGE_SHARE)) / costs.perConnectionBytes));
  return {
    memoryLimitBytes: limitBytes,
    maxConcurrentExchanges: exchanges,
    maxClientConnections: exchanges + idle,
    maxOldSpaceMiB: limitBytes === undefined ? undefined : oldSpaceMiB(limitBytes),
    maxSemiSpaceMiB: limitBytes === undefined ? undefined : semiSpaceMiB(limitBytes),
  };
}

/** V8's old-space cap for a container limit (MiB). */
export function oldSpaceMiB(limitBytes: number): number {
  return Math.min(OLD_SPACE_MAX_MIB, Math.max(OLD_SPACE_MIN_MIB, Math.floor((limitBytes / MiB) * OLD_SPACE_SHARE)));
}

/** V8's semi-space size for a container limit (MiB). */
export function semiSpaceMiB(limitBytes: number): number {
  return Math.min(16, Math.max(1, Math.floor(limitBytes / MiB / MIB_PER_SEMI_SPACE_MIB)));
}
