// What a Secret rotation costs with many Connectors (bash bench/rotation.sh, or
// `node --expose-gc dist/bench/rotation.js [connectors]`): the object store and route table
// of the proxy in this process, BENCH_CONNECTORS (default 10,000) basic-auth Connectors in
// 20 namespaces, each with its own Secret, every route built (as traffic does). Then one
// Secret is rotated, and every route is asked for again (as the next requests do): how many
// routes were rebuilt, how long the rotation and the next lookups took, and how much heap
// they allocated (semi-space large enough that no GC runs in between).
import { ObjectStore } from '../src/sources/store';
import { RouteTable } from '../src/routes/route-table';
import { basicClass, basicConnector, secret } from '../test/support/objects';

const N = Number(process.argv[2] ?? process.env.BENCH_CONNECTORS ?? 10_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

const store = new ObjectStore();
const objects = [basicClass('git')];
const names: Array<[string, string]> = [];
for (let i = 0; i < N; i++) {
  const ns = `team-${i % 20}`;
  const name = `c-${i}`;
  names.push([ns, name]);
  objects.push(basicConnector(ns, name, 'git', `http://tool-${i}.example`, `s-${i}`) as never, secret(ns, `s-${i}`, 'kubernetes.io/basic-auth', { username: 'u', password: `p-${i}` }) as never);
}
store.replaceAll(objects);
store.markSynced();
const routes = new RouteTable(store);
const lookupAll = (): void => { for (const [ns, name] of names) if (routes.route(ns, name) === undefined) throw new Error('missing route'); };
lookupAll();

const rounds: Array<{ rotateUs: number; nextLookupsMs: number; rebuilt: number; allocKiB: number }> = [];
for (let r = 0; r < 5; r++) {
  const [ns] = names[r]!;
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  const builds0 = routes.builds;
  const t0 = process.hrtime.bigint();
  store.upsert(secret(ns, `s-${r}`, 'kubernetes.io/basic-auth', { username: 'u', password: `rotated-${r}` }));
  const t1 = process.hrtime.bigint();
  lookupAll();
  const t2 = process.hrtime.bigint();
  rounds.push({
    rotateUs: Number(t1 - t0) / 1000, nextLookupsMs: Number(t2 - t1) / 1e6,
    rebuilt: routes.builds - builds0, allocKiB: (process.memoryUsage().heapUsed - heap0) / 1024,
  });
}
const median = (f: (x: (typeof rounds)[number]) => number): number => rounds.map(f).sort((a, b) => a - b)[2]!;
process.stdout.write(`Secret rotation with ${N} Connectors (median of ${rounds.length}):\n`);
process.stdout.write(`  routes rebuilt: ${median((x) => x.rebuilt)}\n`);
process.stdout.write(`  rotation (store upsert and invalidation): ${median((x) => x.rotateUs).toFixed(0)} µs\n`);
process.stdout.write(`  the next lookup of every route: ${median((x) => x.nextLookupsMs).toFixed(1)} ms\n`);
process.stdout.write(`  heap allocated by both: ${median((x) => x.allocKiB).toFixed(0)} KiB\n`);
