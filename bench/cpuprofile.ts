// Summarizes a V8 .cpuprofile (node --cpu-prof): where the busy time went, by area and by
// function, self and inclusive, and by who asked for it. Usage:
//   node dist/bench/cpuprofile.js <file.cpuprofile> [top=25] [inclusive-filter=dist/src/]
// The inclusive list shows only functions whose name or file matches the filter (a regex).
// bench/run.sh writes such profiles of its Node peers when BENCH_PROFILE_DIR is set.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}

interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

const ROOT = 'file://' + resolve(__dirname, '..', '..') + '/';

/** Areas a function's time is added to, first match wins. */
const AREAS: ReadonlyArray<readonly [string, (url: string, name: string) => boolean]> = [
  ['connectors-proxy (dist/src)', (u) => u.startsWith(ROOT + 'dist/src/')],
  ['bench peer (dist/bench)', (u) => u.startsWith(ROOT + 'dist/bench/')],
  ['undici', (u) => u.includes('/node_modules/undici/')],
  ['pino, sonic-boom, redact (logging)', (u) => /\/node_modules\/(pino|sonic-boom|@pinojs\/redact|quick-format-unescaped|safe-stable-stringify)\//.test(u)],
  ['prom-client (metrics)', (u) => /\/node_modules\/(prom-client|tdigest|bintrees)\//.test(u)],
  ['other node_modules', (u) => u.includes('/node_modules/')],
  ['node: http server', (u) => /^node:(_http|http)/.test(u)],
  ['node: net, streams, events', (u) => /^node:(net|stream|internal\/streams|events|internal\/stream_base)/.test(u)],
  ['node: other', (u) => u.startsWith('node:')],
  ['garbage collector', (_u, n) => n === '(garbage collector)'],
  ['runtime (program), natives without a JS caller', (u) => u === ''],
];

function key(n: ProfileNode): string {
  const { functionName, url, lineNumber } = n.callFrame;
  const where = url === '' ? '' : ` ${url.replace(ROOT, '').replace(/^file:\/\/.*\/node_modules\//, '')}:${lineNumber + 1}`;
  return (functionName || '(anonymous)') + where;
}

function area(n: ProfileNode): string {
  for (const [name, test] of AREAS) if (test(n.callFrame.url, n.callFrame.functionName)) return name;
  return 'other';
}

/**
 * Native functions (writev, writeLatin1String, ...) have no URL: their time is put on the
 * nearest JavaScript caller, so `res.end()`'s syscall counts for who called it.
 */
function attributed(id: number, byId: ReadonlyMap<number, ProfileNode>, parent: ReadonlyMap<number, number>): { key: string; area: string } {
  const leaf = byId.get(id)!;
  if (leaf.callFrame.url !== '' || leaf.callFrame.functionName.startsWith('(')) return { key: key(leaf), area: area(leaf) };
  for (let n = parent.get(id); n !== undefined; n = parent.get(n)) {
    const caller = byId.get(n)!;
    if (caller.callFrame.url !== '') return { key: `${key(leaf)} (native) <- ${key(caller)}`, area: area(caller) };
  }
  return { key: key(leaf), area: area(leaf) };
}

/** The area of the nearest frame outside Node itself: who asked for the work (a write, a parse). */
function requester(id: number, byId: ReadonlyMap<number, ProfileNode>, parent: ReadonlyMap<number, number>): string | undefined {
  for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
    const url = byId.get(n)!.callFrame.url;
    if (url !== '' && !url.startsWith('node:')) return area(byId.get(n)!);
  }
  return undefined;
}

function top(map: ReadonlyMap<string, number>, busy: number, count: number, filter: (k: string) => boolean = () => true): string[] {
  return [...map].filter(([k]) => filter(k)).sort((a, b) => b[1] - a[1]).slice(0, count)
    .map(([k, v]) => `  ${((100 * v) / busy).toFixed(1).padStart(5)}%  ${k}`);
}

export function summarize(p: Profile, count = 25, inclusiveFilter = / dist\/src\//): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const areas = new Map<string, number>();
  const requesters = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i + 1] ?? 0; // the time until the next sample belongs to this one
    const leaf = byId.get(id)!;
    if (leaf.callFrame.functionName === '(idle)') { idle += dt; return; }
    busy += dt;
    const at = attributed(id, byId, parent);
    self.set(at.key, (self.get(at.key) ?? 0) + dt);
    areas.set(at.area, (areas.get(at.area) ?? 0) + dt);
    const by = requester(id, byId, parent) ?? `${at.area} (no caller outside Node)`;
    requesters.set(by, (requesters.get(by) ?? 0) + dt);
    const seen = new Set<string>();
    for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) seen.add(key(byId.get(n)!));
    for (const k of seen) inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
  });
  return [
    `busy ${(busy / 1e6).toFixed(1)} s, idle ${(idle / 1e6).toFixed(1)} s; percentages are of busy time`,
    'self time by area (native calls counted for their JavaScript caller):', ...top(areas, busy, AREAS.length + 1),
    'time by who asked for it (the nearest caller outside Node itself):', ...top(requesters, busy, 2 * AREAS.length),
    `self time, top ${count} functions:`, ...top(self, busy, count),
    `inclusive time (self + callees), top ${count} functions matching ${inclusiveFilter}:`, ...top(inclusive, busy, count, (k) => inclusiveFilter.test(k)),
  ].join('\n');
}

if (require.main === module) {
  const [file, n, filter] = process.argv.slice(2);
  if (file === undefined) {
    process.stderr.write('usage: node dist/bench/cpuprofile.js <file.cpuprofile> [top] [inclusive-filter regex]\n');
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  process.stdout.write(summarize(profile, n === undefined ? undefined : Number(n), filter === undefined ? undefined : new RegExp(filter)) + '\n');
}
