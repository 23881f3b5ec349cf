// Kubernetes mode at scale: a real API server with N Connectors, each with its own Secret
// (default 10,000), plus 2,000 unreferenced Secrets the proxy must not keep. Measures, for
// the proxy in `--source kubernetes` mode: time to the first complete sync (/readyz),
// resident memory and V8 heap after the sync, next to the same proxy on an empty cluster,
// the time until every Connector's status address is written, and the first requests over
// many routes. Run: bash bench/kube-scale.sh (BENCH_CONNECTORS=N to change N).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startKube, type KubeCluster } from '../test/support/kube';
import { REPO_ROOT, MAIN } from '../test/support/proxy';
import { KubeClient, loadKubeconfig } from '../src/kube/client';

const N = Number(process.env.BENCH_CONNECTORS ?? 10_000);
const UNREFERENCED = Math.round(N / 5);
const NAMESPACES = 20;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function parallel(count: number, width: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < count) await fn(next++);
  }));
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function metric(opsPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

interface Proxy { child: ChildProcess; port: number; opsPort: number; logs: () => string; startedAt: number }

async function startProxy(kubeconfig: string, extra: readonly string[] = []): Promise<Proxy> {
  const startedAt = Date.now();
  const child = spawn(process.execPath, [MAIN, '--source', 'kubernetes', '--kubeconfig', kubeconfig,
    '--listen', '127.0.0.1:0', '--ops-listen', '127.0.0.1:0', '--log-level', 'info', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  for (;;) {
    const m = /"proxy":"127\.0\.0\.1:(\d+)","ops":"127\.0\.0\.1:(\d+)"/.exec(out);
    if (m) return { child, port: Number(m[1]), opsPort: Number(m[2]), logs: () => out, startedAt };
    if (child.exitCode !== null) throw new Error(`proxy exited: ${out}`);
    await sleep(10);
  }
}

async function untilReady(p: Proxy): Promise<number> {
  for (;;) {
    const r = await fetch(`http://127.0.0.1:${p.opsPort}/readyz`).catch(() => undefined);
    if (r?.status === 200) return Date.now() - p.startedAt;
    await sleep(20);
  }
}

function stop(p: Proxy): Promise<void> {
  return new Promise((r) => { p.child.once('exit', () => r()); p.child.kill('SIGTERM'); });
}

async function settledMemory(p: Proxy): Promise<{ rss: number; heap: number }> {
  await sleep(3000); // let the background compile and the first GC cycles finish
  return { rss: rssMiB(p.child.pid!), heap: (await metric(p.opsPort, 'connectors_proxy_nodejs_heap_size_used_bytes')) / 1048576 };
}

async function main(): Promise<void> {
  let kube: KubeCluster | undefined;
  const proxies: Proxy[] = [];
  try {
    kube = await startKube({ apiserverArgs: ['--max-requests-inflight=800', '--max-mutating-requests-inflight=400'] });
    for (const f of ['connectorclasses.yaml', 'connectors.yaml']) await kube.applyYaml(readFileSync(join(REPO_ROOT, 'deploy', 'crds', f), 'utf8'));
    await kube.waitForCrdEstablished('connectors.connectors.alauda.io');
    await kube.waitForCrdEstablished('connectorclasses.connectors.alauda.io');

    // Baseline: the same proxy, synced with an empty cluster.
    const empty = await startProxy(kube.kubeconfig, ['--no-write-status']);
    proxies.push(empty);
    const emptyReadyMs = await untilReady(empty);
    const base = await settledMemory(empty);
    await stop(empty);

    const api = new KubeClient(loadKubeconfig(kube.kubeconfig), { connections: 32, timeoutMs: 60_000 });
    const created = Date.now();
    for (let n = 0; n < NAMESPACES; n++) await api.request('POST', '/api/v1/namespaces', { metadata: { name: `ns-${n}` } });
    await api.request('POST', '/apis/connectors.alauda.io/v1alpha1/connectorclasses', {
      apiVersion: 'connectors.alauda.io/v1alpha1', kind: 'ConnectorClass', metadata: { name: 'git' },
      spec: { address: { type: 'string' }, proxy: { uri: 'http://proxy' }, auth: { types: [{ name: 'basic', secretType: 'kubernetes.io/basic-auth' }] } },
    });
    await parallel(N + UNREFERENCED, 32, (i) => api.request('POST', `/api/v1/namespaces/ns-${i % NAMESPACES}/secrets`, {
      metadata: { name: `s-${i}` }, type: 'kubernetes.io/basic-auth',
      stringData: { username: `user-${i}`, password: `password-${i}-${'x'.repeat(24)}` },
    }));
    await parallel(N, 32, (i) => api.request('POST', `/apis/connectors.alauda.io/v1alpha1/namespaces/ns-${i % NAMESPACES}/connectors`, {
      apiVersion: 'connectors.alauda.io/v1alpha1', kind: 'Connector', metadata: { name: `c-${i}` },
      spec: { connectorClassName: 'git', address: `http://127.0.0.1:9/repo-${i}`, auth: { name: 'basic', secretRef: { name: `s-${i}` } } },
    }));
    const createSeconds = (Date.now() - created) / 1000;

    // The proxy on the full cluster: sync time and memory without status writes first.
    const full = await startProxy(kube.kubeconfig, ['--no-write-status']);
    proxies.push(full);
    const readyMs = await untilReady(full);
    const counts = await Promise.all(['classes', 'connectors', 'secrets'].map((k) => metric(full.opsPort, `connectors_proxy_index_objects\\{kind="${k}"\\}`)));
    const mem = await settledMemory(full);
    // First requests over 1,000 distinct routes (each builds its route once), then again (cached).
    // Answers are 401: no token. The route lookup happens before the token check.
    const timeRoutes = async (): Promise<number> => {
      const t = performance.now();
      await parallel(1000, 16, async (i) => { await (await fetch(`http://127.0.0.1:${full.port}/namespaces/ns-${i % NAMESPACES}/connectors/c-${i * 7 % N}/x`)).arrayBuffer(); });
      return performance.now() - t;
    };
    const firstMs = await timeRoutes();
    const againMs = await timeRoutes();
    await stop(full);
    const syncMs = Number(/"syncMs":(\d+)/.exec(full.logs())?.[1]);

    // Status writes: how long until every Connector carries its address.
    const writer = await startProxy(kube.kubeconfig);
    proxies.push(writer);
    await untilReady(writer);
    const statusStart = Date.now();
    let written = 0;
    for (;;) {
      const list = await api.request<{ items: { status?: { proxy?: unknown } }[] }>('GET', '/apis/connectors.alauda.io/v1alpha1/connectors');
      written = list.items.filter((c) => c.status?.proxy !== undefined).length;
      if (written >= N || Date.now() - statusStart > 600_000) break;
      await sleep(1000);
    }
    const statusSeconds = (Date.now() - statusStart) / 1000;
    const afterStatus = await settledMemory(writer);
    await stop(writer);
    await api.close();

    const f = (x: number, d = 0): string => x.toFixed(d);
    console.log(`\nKubernetes mode at ${N} Connectors + ${N} referenced Secrets (+${UNREFERENCED} unreferenced), ${NAMESPACES} namespaces`);
    console.log(`objects created through the API in ${f(createSeconds, 1)} s`);
    console.log('| | empty cluster | full cluster | delta |');
    console.log('|---|---|---|---|');
    console.log(`| start → /readyz | ${emptyReadyMs} ms | ${readyMs} ms | |`);
    console.log(`| list of all three kinds (syncMs) | | ${syncMs} ms | |`);
    console.log(`| RSS after sync | ${f(base.rss)} MiB | ${f(mem.rss)} MiB | +${f(mem.rss - base.rss)} MiB |`);
    console.log(`| V8 heap used after sync | ${f(base.heap, 1)} MiB | ${f(mem.heap, 1)} MiB | +${f(mem.heap - base.heap, 1)} MiB |`);
    console.log(`index: ${counts[0]} classes, ${counts[1]} connectors, ${counts[2]} secrets kept (unreferenced ones dropped)`);
    console.log(`1,000 requests over 1,000 routes (16 at a time): first ${f(firstMs)} ms (routes built), again ${f(againMs)} ms`);
    console.log(`status.proxy.httpAddress.url written for ${written}/${N} Connectors in ${f(statusSeconds, 1)} s; RSS then ${f(afterStatus.rss)} MiB`);
  } finally {
    for (const p of proxies) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await kube?.stop();
  }
}

main().catch((e: Error) => {
  console.error(e.stack ?? e.message);
  process.exit(1);
});
