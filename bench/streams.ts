// The streams bench (bench/streams.sh; never part of the tests): what one concurrent stream
// costs the proxy in memory. N clients download (or upload) one file each through the proxy
// at the same time, on their own connections, the slow side reading or writing at a fixed
// rate; every byte is checked by SHA-256; the proxying process's RSS (and V8 heap, and the
// kernel memory of its sockets) is sampled every STREAMS_SAMPLE_MS. Cases: download or
// upload × slow client or slow tool × plain or TLS upstream; peers side by side (the bare
// undici proxy, nginx) where they can play. See bench/README.md, "Concurrent streams".
import { spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { MAIN, REPO_ROOT, caSecretManifest, connectorManifests } from '../test/support/proxy';
import { fakeLimitUnavailable, underFakeLimit } from '../test/support/cgroup';
import { TestCa } from '../test/support/test-ca';
import { startNginx, type Nginx } from './nginx';
import { benchProxyFiles, childPids, firstLine, freePort, memory, start, stop, stopAll, terminateAll, waitUntil } from './procs';
import type { Job, StreamResult } from './stream-client';

const num = (name: string, fallback: number): number => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name} must be a number >= 0`);
  return v;
};
/** Concurrent streams per case. */
const N = num('STREAMS_N', 100);
/** Bytes per second of the slow side of each stream (the client's or the tool's). */
const RATE = num('STREAMS_RATE_KIB', 1024) * 1024;
const FILE_BYTES = num('STREAMS_MIB', 64) * 1024 * 1024;
const SAMPLE_MS = num('STREAMS_SAMPLE_MS', 500);
/** Client processes sharing the streams (each hashes what it reads). */
const CLIENTS = num('STREAMS_CLIENTS', Math.min(4, Math.max(1, Math.ceil(N / 250))));
/** New streams per second, all clients together: a flood of connects would overflow the proxy's accept queue. */
const OPEN_PER_S = num('STREAMS_OPEN_PER_S', 100);
const PIN = process.env.BENCH_PIN !== '0' && cpus().length >= 2;
const LOAD_CPU = PIN ? '0' : undefined;
const PEER_CPU = PIN ? '1' : undefined;
const PROXY_ARGS = (process.env.BENCH_PROXY_ARGS ?? '').split(' ').filter((a) => a !== '');
/** Extra Node flags for this proxy (what-if runs: `--max-old-space-size=96`). */
const PROXY_NODE_ARGS = (process.env.STREAMS_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
/**
 * Run this proxy as in a container with this memory limit (MiB): the image's ENTRYPOINT
 * (dist/src/entrypoint.js) and its ENV (MALLOC_*, NODE_* from the Dockerfile), the machine's
 * cgroup limit file reading this value in a private mount namespace. 0: main.js, no limit.
 */
const LIMIT_MIB = num('STREAMS_MEMORY_LIMIT_MIB', 0);
/** With a limit: `entrypoint` (the image today) or `main` (main.js started directly, as the image did before). */
const ENTRY = process.env.STREAMS_ENTRY ?? 'entrypoint';
/** Sample the kernel memory of the proxy's sockets with `ss` (charged to the Pod's cgroup v2). */
const SOCKETS = process.env.STREAMS_SS !== '0';
/** Print every sample (time, open streams, RSS, heap, kernel socket memory). */
const TRACE = process.env.STREAMS_TRACE === '1';

type Direction = 'download' | 'upload';
type SlowSide = 'client' | 'tool';
interface Case { readonly dir: Direction; readonly slow: SlowSide; readonly tls: boolean }
const caseName = (c: Case): string => `${c.dir}/slow-${c.slow}/${c.tls ? 'tls' : 'plain'}`;
const ALL_CASES: readonly Case[] = (['download', 'upload'] as const).flatMap((dir) =>
  (['client', 'tool'] as const).flatMap((slow) => [false, true].map((tls) => ({ dir, slow, tls }))));
/** STREAMS_CASES=download/slow-client/plain,upload/slow-tool/tls; default: the first one. */
const CASES = (process.env.STREAMS_CASES ?? 'download/slow-client/plain') === 'all'
  ? ALL_CASES
  : (process.env.STREAMS_CASES ?? 'download/slow-client/plain').split(',').map((name) => {
    const c = ALL_CASES.find((x) => caseName(x) === name);
    if (c === undefined) throw new Error(`STREAMS_CASES: unknown case ${name}; known: ${ALL_CASES.map(caseName).join(', ')}, all`);
    return c;
  });
const PEER_NAMES = (process.env.STREAMS_PEERS ?? 'proxy').split(',');

const TOOL_USER = 'bench-user';
const TOOL_PASSWORD = 'bench-tool-password';
const INJECTED = 'Basic ' + Buffer.from(`${TOOL_USER}:${TOOL_PASSWORD}`).toString('base64');
const CLIENT_TOKEN = 'bench-client-token';
const CLIENT_AUTH = `Bearer ${CLIENT_TOKEN}`;

const tmp = process.argv[2];
if (tmp === undefined || !existsSync(tmp)) {
  process.stderr.write('usage: node dist/bench/streams.js <empty temp dir> (bench/streams.sh makes one)\n');
  process.exit(2);
}
chmodSync(tmp, 0o755); // nginx workers run as nobody when started by root

/** Where the tools listen: nginx sends the file, the Node tool receives uploads. */
interface Tools {
  readonly nginx: Nginx;
  readonly nginxTlsPort: number;
  readonly sink: { port: number; tlsPort: number; child: ChildProcess };
  readonly ca: string;
  readonly file: string;
  readonly sha256: string;
}

/** A running peer: the URL of a case's stream and the process to measure. */
interface Target {
  readonly url: string;
  readonly pid: number;
  /** The entrypoint process when it runs the proxy in a child (its memory counts in the container too). */
  readonly supervisor?: number;
  /** The proxy's ops port (V8 heap from /metrics); undefined for peers. */
  readonly opsPort: number | undefined;
  stop(): Promise<void>;
}

interface Peer {
  readonly name: string;
  readonly plays: (c: Case) => boolean;
  start(c: Case, tools: Tools): Promise<Target>;
}

function toolPath(c: Case): string {
  if (c.dir === 'download') return c.slow === 'tool' ? '/file-slow' : '/file';
  return c.slow === 'tool' ? `/upload?rate=${RATE}` : '/upload';
}

function manifests(tools: Tools): string {
  const caSecret = caSecretManifest('bench', 'upstream-ca', tools.ca);
  const one = (name: string, address: string): string => {
    const m = connectorManifests({ address, namespace: 'bench', name, resolver: 'path', secretData: { username: TOOL_USER, password: TOOL_PASSWORD } });
    return address.startsWith('https:') ? m.replace(/(\n  address: .*\n)/, '$1  caCertSecretRef: {name: upstream-ca}\n') : m;
  };
  return [
    one('files', `http://127.0.0.1:${tools.nginx.port}`),
    one('files-tls', `https://127.0.0.1:${tools.nginxTlsPort}`),
    one('sink', `http://127.0.0.1:${tools.sink.port}`),
    one('sink-tls', `https://127.0.0.1:${tools.sink.tlsPort}`),
  ].join('---\n') + caSecret;
}

/** The runtime stage's ENV of the Dockerfile that matters outside the image: MALLOC_* and NODE_*. */
function imageEnv(): Record<string, string> {
  const text = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const runtime = text.slice(text.lastIndexOf('\nFROM '));
  const env: Record<string, string> = {};
  for (const line of runtime.split('\n').filter((l) => l.startsWith('ENV '))) {
    for (const m of line.matchAll(/(\w+)=(\S+)/g)) if (/^(MALLOC_|NODE_)/.test(m[1]!)) env[m[1]!] = m[2]!;
  }
  return env;
}

async function startThisProxy(c: Case, tools: Tools): Promise<Target> {
  const dir = join(tmp!, `proxy-${caseName(c).replace(/\//g, '-')}`);
  const { port, opsPort, logFile, args } = await benchProxyFiles(dir, manifests(tools), CLIENT_TOKEN);
  const log = openSync(logFile, 'w');
  // No admission caps: this measures what streams cost, and the caps derived from a 256 MiB
  // limit (417 exchanges, sized for the costliest case) would shed a 1,000-stream run. To see
  // the caps at work: BENCH_PROXY_ARGS='--max-concurrent-exchanges 417' (later flags win).
  const proxyArgs = [...args, '--no-probes', '--enable-custom-ca-certs', '--max-concurrent-exchanges', '0', '--max-client-connections', '0', ...PROXY_ARGS];
  let child;
  if (LIMIT_MIB > 0) {
    const fake = join(dir, 'memory-limit');
    writeFileSync(fake, `${LIMIT_MIB * 1024 * 1024}\n`);
    const script = ENTRY === 'main' ? MAIN : join(REPO_ROOT, 'dist', 'src', 'entrypoint.js');
    child = start('unshare', underFakeLimit(fake, [process.execPath, ...PROXY_NODE_ARGS, script, ...proxyArgs]),
      { cpu: PEER_CPU, stdio: ['ignore', log, log], env: ENTRY === 'main' ? {} : imageEnv() });
  } else {
    child = start(process.execPath, [...PROXY_NODE_ARGS, MAIN, ...proxyArgs], { cpu: PEER_CPU, stdio: ['ignore', log, log] });
  }
  closeSync(log);
  await waitUntil('connectors-proxy /readyz', async () => {
    if (child.exitCode !== null) throw new Error(`connectors-proxy exited: ${readFileSync(logFile, 'utf8')}`);
    return (await fetch(`http://127.0.0.1:${opsPort}/readyz`).then((r) => r.status, () => 0)) === 200;
  });
  // The entrypoint may run the proxy in a child (a limit below 512 MiB): measure that one.
  const [inner] = childPids(child.pid!);
  const pid = inner ?? child.pid!;
  const supervisor = inner === undefined ? undefined : child.pid!;
  const connector = `${c.dir === 'download' ? 'files' : 'sink'}${c.tls ? '-tls' : ''}`;
  return { url: `http://127.0.0.1:${port}/namespaces/bench/connectors/${connector}${toolPath(c)}`, pid, supervisor, opsPort, stop: () => stop(child) };
}

async function startUndiciPeer(c: Case, tools: Tools): Promise<Target> {
  const upstream = `http://127.0.0.1:${c.dir === 'download' ? tools.nginx.port : tools.sink.port}`;
  const child = start(process.execPath, [join(__dirname, 'peers', 'undici-proxy.js'), upstream, INJECTED], { cpu: PEER_CPU });
  const port = await firstLine(child, (line) => (line.startsWith('{"port":') ? (JSON.parse(line) as { port: number }).port : undefined));
  return { url: `http://127.0.0.1:${port}${toolPath(c)}`, pid: child.pid!, opsPort: undefined, stop: () => stop(child) };
}

async function startNginxPeer(c: Case, tools: Tools): Promise<Target> {
  const dir = join(tmp!, `nginx-peer-${caseName(c).replace(/\//g, '-')}`);
  const port = await freePort();
  const nginx = await startNginx(dir, port, `  access_log ${join(dir, 'access.log')} combined buffer=64k flush=1s;
  upstream tool { server 127.0.0.1:${tools.nginx.port}; keepalive 64; }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://tool;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "${INJECTED}";
      proxy_max_temp_file_size 0;
    }
  }`, PEER_CPU);
  return { url: `http://127.0.0.1:${port}${toolPath(c)}`, pid: nginx.workerPid, opsPort: undefined, stop: () => nginx.stop() };
}

const ALL_PEERS: readonly Peer[] = [
  { name: 'proxy', plays: () => true, start: startThisProxy },
  // The peers know one plain upstream and inject one fixed header.
  { name: 'undici', plays: (c) => !c.tls, start: startUndiciPeer },
  // nginx streams downloads; it would spool an upload to disk before sending it on.
  { name: 'nginx', plays: (c) => !c.tls && c.dir === 'download', start: startNginxPeer },
];

async function startTools(): Promise<Tools> {
  const www = join(tmp!, 'www');
  mkdirSync(www);
  const file = join(www, 'file');
  // Random bytes: a wrong or reordered chunk changes the hash. Written once; the page cache serves it.
  const hash = createHash('sha256');
  const fd = openSync(file, 'w');
  for (let done = 0; done < FILE_BYTES;) {
    const chunk = randomBytes(Math.min(1 << 20, FILE_BYTES - done));
    writeFileSync(fd, chunk);
    hash.update(chunk);
    done += chunk.length;
  }
  closeSync(fd);
  const ca = await TestCa.create('bench-streams-ca');
  const pair = await ca.issue(['127.0.0.1']);
  const [certFile, keyFile] = [join(tmp!, 'upstream.crt'), join(tmp!, 'upstream.key')];
  writeFileSync(certFile, pair.cert);
  writeFileSync(keyFile, pair.key, { mode: 0o644 });
  ca.remove();
  const port = await freePort();
  let tlsPort: number;
  do tlsPort = await freePort(); while (tlsPort === port);
  const site = `    if ($bench_authorized = 0) { return 401; }
    location = /file { alias ${file}; }
    location = /file-slow { alias ${file}; limit_rate ${RATE}; }`;
  const nginx = await startNginx(join(tmp!, 'nginx-tool'), port, `  access_log off;
  sendfile on;
  # nginx cuts a response it could not write to for send_timeout (60 s by default): the kernel
  # buffers between the tool and a client reading 128 KiB/s can hold more than a minute of it.
  send_timeout 600s;
  map $http_authorization $bench_authorized { "${INJECTED}" 1; default 0; }
  server {
    listen 127.0.0.1:${port} backlog=4096;
${site}
  }
  server {
    listen 127.0.0.1:${tlsPort} ssl backlog=4096;
    ssl_certificate ${certFile};
    ssl_certificate_key ${keyFile};
${site}
  }`, LOAD_CPU);
  const sinkChild = start(process.execPath, [join(__dirname, 'stream-upstream.js'), INJECTED, certFile, keyFile], { cpu: LOAD_CPU });
  const ports = await firstLine(sinkChild, (line) => (line.startsWith('{"port":') ? (JSON.parse(line) as { port: number; tlsPort: number }) : undefined));
  return { nginx, nginxTlsPort: tlsPort, sink: { ...ports, child: sinkChild }, ca: ca.cert, file, sha256: hash.digest('hex') };
}

interface Sample { t: number; rssKiB: number; heap: { used: number; external: number } | undefined; active: number; sock: { recvKiB: number; sendKiB: number } | undefined }

/** Kernel memory of `pid`'s TCP sockets, receive and send queues, from `ss -tmp`. */
function socketMemoryKiB(pid: number): { recvKiB: number; sendKiB: number } | undefined {
  const r = spawnSync('ss', ['-tmpnH'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) return undefined;
  let recv = 0;
  let send = 0;
  const lines = r.stdout.split('\n');
  const skmem = /skmem:\(r(\d+),rb\d+,t\d+,tb\d+,f\d+,w(\d+)/;
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]!.includes(`pid=${pid},`)) continue;
    // skmem (r<rmem_alloc>,rb..,t..,tb..,f..,w<wmem_queued>,...) is on the same line or the next.
    const m = skmem.exec(lines[i]!) ?? skmem.exec(lines[i + 1] ?? '');
    if (m) { recv += Number(m[1]); send += Number(m[2]); }
  }
  return { recvKiB: recv / 1024, sendKiB: send / 1024 };
}

function rssAnonKiB(pid: number): number {
  return Number(/^RssAnon:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)]!;
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // clock ticks (USER_HZ = 100)
}

/** V8 heap used and external (Buffer) memory of this proxy, from its /metrics; undefined for peers. */
async function heapOf(opsPort: number | undefined): Promise<{ used: number; external: number } | undefined> {
  if (opsPort === undefined) return undefined;
  const text = await fetch(`http://127.0.0.1:${opsPort}/metrics`).then((r) => r.text(), () => '');
  const metric = (name: string): number => Number(new RegExp(`^connectors_proxy_nodejs_${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  const used = metric('heap_size_used_bytes');
  return Number.isNaN(used) ? undefined : { used, external: metric('external_memory_bytes') };
}

interface Outcome {
  readonly ok: number;
  readonly failed: StreamResult[];
  readonly maxActive: number;
  readonly idleKiB: number;
  /** Median RSS while at least 95% of the most streams were open: the steady state. */
  readonly plateauKiB: number;
  readonly peakKiB: number;
  readonly idleHeap: { used: number; external: number } | undefined;
  readonly plateauHeap: { used: number; external: number } | undefined;
  readonly peakSockKiB: number | undefined;
  /** RssAnon of the entrypoint when it runs the proxy in a child: memory the container holds too. */
  readonly supervisorAnonKiB: number | undefined;
  readonly cpuS: number;
  readonly wallS: number;
}

/** One peer, one case: a fresh process, N streams, samples until the last stream ended. */
async function measure(peer: Peer, c: Case, tools: Tools): Promise<Outcome> {
  const t = await peer.start(c, tools);
  try {
    // Warm-up: one stream as fast as possible, so the idle figure includes a loaded JIT and pools.
    const warm = await runClients(t.url, c, tools, 1, 0, () => undefined);
    if (warm.ok !== 1) throw new Error(`${peer.name} ${caseName(c)}: the warm-up stream failed: ${warm.failed[0]?.error}`);
    await new Promise((r) => setTimeout(r, 500));
    const idleKiB = memory(t.pid).rssKiB;
    const idleHeap = await heapOf(t.opsPort);
    const cpu0 = cpuSeconds(t.pid);
    const samples: Sample[] = [];
    let active = 0;
    let sockAt = 0;
    const began = performance.now();
    const sample = async (): Promise<void> => {
      const now = performance.now();
      const sock = SOCKETS && now - sockAt >= 2000 ? (sockAt = now, socketMemoryKiB(t.pid)) : undefined;
      const s: Sample = { t: (now - began) / 1000, rssKiB: memory(t.pid).rssKiB, heap: await heapOf(t.opsPort), active, sock };
      samples.push(s);
      if (TRACE) process.stdout.write(`    t=${s.t.toFixed(1)}s open=${s.active} rss=${mib(s.rssKiB)} heap=${mib(s.heap && s.heap.used / 1024)} external=${mib(s.heap && s.heap.external / 1024)}${sock === undefined ? '' : ` kernel recv=${mib(sock.recvKiB)} send=${mib(sock.sendKiB)}`}\n`);
    };
    const timer = setInterval(() => { sample().catch(() => undefined); }, SAMPLE_MS);
    let maxActive = 0;
    const result = await runClients(t.url, c, tools, N, c.slow === 'client' ? RATE : 0, (delta) => {
      active += delta;
      maxActive = Math.max(maxActive, active);
    });
    clearInterval(timer);
    const wallS = (performance.now() - began) / 1000;
    const cpuS = cpuSeconds(t.pid) - cpu0;
    const peakKiB = Math.max(...samples.map((s) => s.rssKiB));
    const plateau = samples.filter((s) => s.active >= 0.95 * maxActive);
    const heaps = plateau.map((s) => s.heap).filter((h): h is { used: number; external: number } => h !== undefined);
    const socks = samples.map((s) => s.sock && s.sock.recvKiB + s.sock.sendKiB).filter((k): k is number => k !== undefined);
    return {
      ok: result.ok, failed: result.failed, maxActive, idleKiB, peakKiB, idleHeap,
      plateauKiB: median(plateau.map((s) => s.rssKiB)),
      plateauHeap: heaps.length > 0 ? { used: median(heaps.map((h) => h.used)), external: median(heaps.map((h) => h.external)) } : undefined,
      peakSockKiB: socks.length > 0 ? Math.max(...socks) : undefined, cpuS, wallS,
      supervisorAnonKiB: t.supervisor === undefined ? undefined : rssAnonKiB(t.supervisor),
    };
  } finally {
    await t.stop();
  }
}

/** Runs `streams` streams over CLIENTS client processes; `onActive(+1/-1)` as streams start and end. */
async function runClients(url: string, c: Case, tools: Tools, streams: number, rate: number, onActive: (delta: number) => void): Promise<{ ok: number; failed: StreamResult[] }> {
  const procs = Math.min(CLIENTS, streams);
  let ok = 0;
  const failed: StreamResult[] = [];
  const runs: Array<Promise<void>> = [];
  for (let p = 0; p < procs; p++) {
    const share = Math.floor(streams / procs) + (p < streams % procs ? 1 : 0);
    const job: Job = {
      url, headers: { authorization: CLIENT_AUTH }, mode: c.dir, streams: share,
      file: tools.file, sha256: tools.sha256, bytes: FILE_BYTES, rate, openPer100ms: Math.max(1, Math.round(OPEN_PER_S / 10 / procs)), firstId: p * 100000,
    };
    const child = start(process.execPath, [join(__dirname, 'stream-client.js'), JSON.stringify(job)], { cpu: LOAD_CPU, stdio: ['ignore', 'pipe', 'inherit'] });
    runs.push(new Promise((resolve, reject) => {
      let buf = '';
      child.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const ev = JSON.parse(buf.slice(0, nl)) as StreamResult | { ev: 'open' | 'exit' };
          buf = buf.slice(nl + 1);
          if (ev.ev === 'open') onActive(1);
          else if (ev.ev === 'done') {
            onActive(-1);
            if (ev.ok) ok++;
            else failed.push(ev);
          }
        }
      });
      child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`stream client exited ${code}`))));
    }));
  }
  await Promise.all(runs);
  return { ok, failed };
}

// Output ------------------------------------------------------------------------------

const col = (s: string, w: number): string => (s.length >= w ? s + ' ' : s + ' '.repeat(w - s.length));
const rcol = (s: string, w: number): string => (s.length >= w ? ' ' + s : ' '.repeat(w - s.length) + s);
const mib = (kib: number | undefined, d = 1): string => (kib === undefined ? '-' : (kib / 1024).toFixed(d));

function openFilesLimit(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m === null || m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

async function main(): Promise<void> {
  const out = (s: string): boolean => process.stdout.write(s);
  // The proxy holds two sockets per stream (client and tool), nginx one, the clients one each.
  const needFds = 2 * N + 200;
  if (openFilesLimit() < needFds) throw new Error(`ulimit -n is ${openFilesLimit()}: ${N} streams need at least ${needFds} (bench/streams.sh raises it to the hard limit)`);
  if (LIMIT_MIB > 0 && fakeLimitUnavailable() !== undefined) throw new Error(`STREAMS_MEMORY_LIMIT_MIB: ${fakeLimitUnavailable()}`);
  const peers = ALL_PEERS.filter((p) => PEER_NAMES.includes(p.name));
  if (peers.length === 0) throw new Error(`STREAMS_PEERS: none of ${PEER_NAMES.join(',')} is known (proxy, undici, nginx)`);
  const tools = await startTools();
  out(`streams bench: ${cpus().length} CPUs, node ${process.version}; ${N} concurrent streams of ${FILE_BYTES / 1048576} MiB, the slow side at ${RATE / 1024} KiB/s per stream;\n`);
  out(`  ${CLIENTS} client process(es), one connection per stream, SHA-256 of every stream checked; RSS sampled every ${SAMPLE_MS} ms\n`);
  out(PIN ? '  pinning: clients and tools on CPU 0, the peer under test alone on CPU 1\n' : '  pinning: none\n');
  if (LIMIT_MIB > 0) {
    out(`  this proxy as in a container with a ${LIMIT_MIB} MiB memory limit (a fake cgroup limit file): ${ENTRY === 'main' ? 'main.js started directly (Node sizes its heap from the limit)' : `the image's entrypoint and ENV ${JSON.stringify(imageEnv())}`}\n`);
  }
  out(`  plateau = median RSS while >= 95% of the most streams were open; KiB/stream = (plateau - idle) / most open at once;\n`);
  out(`  heap and buf KiB: the same for V8's heap used and its external (Buffer) memory (this proxy only, from /metrics);\n`);
  out(`  kernel = receive + send queues of the peer's TCP sockets at their peak (ss; not in RSS, but charged to a cgroup v2 memory limit)\n\n`);
  const head = col('case', 28) + col('peer', 8) + rcol('ok', 6) + rcol('open', 6) + rcol('RSS idle', 10) + rcol('plateau', 9) + rcol('peak', 8)
    + rcol('KiB/stream', 11) + rcol('heap KiB', 9) + rcol('buf KiB', 9) + rcol('kernel MiB', 11) + rcol('CPU s/GiB', 10) + rcol('wall s', 8);
  out(`${head}\n`);
  let failures = 0;
  const perStream = new Map<string, number>();
  for (const c of CASES) {
    for (const peer of peers) {
      if (!peer.plays(c)) continue;
      const o = await measure(peer, c, tools);
      failures += o.failed.length + (N - o.ok - o.failed.length);
      const per = o.maxActive > 0 ? (o.plateauKiB - o.idleKiB) / o.maxActive : NaN;
      const perOf = (k: 'used' | 'external'): string => (o.plateauHeap && o.idleHeap && o.maxActive > 0 ? ((o.plateauHeap[k] - o.idleHeap[k]) / 1024 / o.maxActive).toFixed(0) : '-');
      perStream.set(`${caseName(c)} ${peer.name}`, per);
      const gib = (o.ok * FILE_BYTES) / 1024 ** 3;
      out(col(caseName(c), 28) + col(peer.name, 8) + rcol(String(o.ok), 6) + rcol(String(o.maxActive), 6) + rcol(mib(o.idleKiB), 10) + rcol(mib(o.plateauKiB), 9)
        + rcol(mib(o.peakKiB), 8) + rcol(per.toFixed(0), 11) + rcol(perOf('used'), 9) + rcol(perOf('external'), 9)
        + rcol(mib(o.peakSockKiB, 0), 11) + rcol(gib > 0 ? (o.cpuS / gib).toFixed(2) : '-', 10) + rcol(o.wallS.toFixed(0), 8) + '\n');
      if (o.supervisorAnonKiB !== undefined) out(`    the entrypoint ran the proxy in a child; the entrypoint itself holds ${mib(o.supervisorAnonKiB)} MiB (RssAnon) in the container\n`);
      for (const f of o.failed.slice(0, 3)) out(`    stream ${f.id} failed: HTTP ${f.status}, ${f.error}\n`);
      if (peer.name === 'proxy') {
        const targets: Array<[number, number, string]> = [[100, 200, 'issue 15'], [1000, 256, 'issue 19']];
        for (const [n, limit, issue] of targets) {
          if (N === n && c.dir === 'download' && c.slow === 'client') {
            const peak = o.peakKiB + (o.supervisorAnonKiB ?? 0);
            const met = o.ok === N && peak / 1024 < limit;
            out(`    target (${issue}): ${n} slow downloads, every byte, RSS < ${limit} MiB: ${met ? 'met' : 'NOT met'} (${o.ok}/${N} ok, peak ${mib(peak)} MiB${o.supervisorAnonKiB === undefined ? '' : ' with the entrypoint'})\n`);
          }
        }
      }
    }
    const mine = perStream.get(`${caseName(c)} proxy`);
    const ratios = peers.filter((p) => p.name !== 'proxy' && perStream.has(`${caseName(c)} ${p.name}`))
      .map((p) => `proxy - ${p.name}: ${(mine! - perStream.get(`${caseName(c)} ${p.name}`)!).toFixed(0)} KiB/stream`);
    if (mine !== undefined && ratios.length > 0) out(`    ${ratios.join('   ')}\n`);
  }
  out(`\n${failures === 0 ? 'every stream arrived whole (SHA-256 checked)' : `${failures} streams failed or did not end: the figures above are not valid`}\n`);
  await tools.nginx.stop();
  await stop(tools.sink.child);
  process.exitCode = failures === 0 ? 0 : 1;
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => { void stopAll().then(() => process.exit(130)); });
}
process.on('exit', terminateAll);
main().catch(async (err: Error) => {
  process.stderr.write(`streams bench failed: ${err.message}\n`);
  await stopAll();
  process.exit(1);
});

