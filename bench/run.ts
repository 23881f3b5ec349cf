// The bench runner (started by bench/run.sh, which installs, builds and cleans up): the
// same load through this proxy and its peers, one after the other in one run, and the
// ratios of this proxy to each. See bench/README.md for what is measured.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, truncateSync, writeFileSync, chmodSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { MAIN, REPO_ROOT, caSecretManifest, connectorManifests } from '../test/support/proxy';
import { TestCa } from '../test/support/test-ca';
import { startNginx, proxyHttp, upstreamHttp, type Nginx } from './nginx';
import { PolicyCompiler } from '../src/rego/compiler';
import { benchProxyFiles, cpuMs, firstLine, freePort, memory, run, start, stop, stopAll, terminateAll, waitUntil } from './procs';
import type { LoadOptions, LoadResult } from './connect-load';

const env = (name: string, fallback: number): number => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
  return v;
};
const DURATION_S = env('BENCH_DURATION', 10);
const WARMUP_S = env('BENCH_WARMUP', 2);
const CONNECTIONS = env('BENCH_CONNECTIONS', 50);
/** Rounds of the req/s phase, peers interleaved; each column shows the median round. */
const REPEAT = env('BENCH_REPEAT', 1);
/** BENCH_DOWNLOAD=0 skips the download phase (a quick req/s comparison). */
const DOWNLOAD = process.env.BENCH_DOWNLOAD !== '0';
const DOWNLOAD_BYTES = env('BENCH_DOWNLOAD_MIB', 1024) * 1024 * 1024;
const PIN = process.env.BENCH_PIN !== '0' && cpus().length >= 2;
/** wrk, curl and the upstream on one CPU; the peer under test alone on the other. */
const LOAD_CPU = PIN ? '0' : undefined;
const PEER_CPU = PIN ? '1' : undefined;
/** Extra flags for this proxy, for what-if runs: BENCH_PROXY_ARGS='--log-level warn'. */
const PROXY_ARGS = (process.env.BENCH_PROXY_ARGS ?? '').split(' ').filter((a) => a !== '');
/** Node flags for this proxy (both builds), for what-if runs: BENCH_NODE_ARGS='--max-semi-space-size=1'. */
const NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
/**
 * BENCH_BEFORE=<checkout>: adds the peer `proxy-before`, the same proxy and Connector served by
 * that checkout's build (its dist/src/main.js), for before/after tables from one run.
 */
const BEFORE_MAIN = process.env.BENCH_BEFORE ? resolve(process.env.BENCH_BEFORE, 'dist', 'src', 'main.js') : undefined;
/** When set, the Node peers run with --cpu-prof and write `<peer>-<phase>.cpuprofile` here. */
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR ? resolve(process.env.BENCH_PROFILE_DIR) : undefined;

const TOOL_USER = 'bench-user';
const TOOL_PASSWORD = 'bench-tool-password';
/** What every peer must send upstream; the upstream answers 401 to anything else. */
const INJECTED = 'Basic ' + Buffer.from(`${TOOL_USER}:${TOOL_PASSWORD}`).toString('base64');
const CLIENT_TOKEN = 'bench-client-token';
/** What the load generator sends to every peer (direct excepted). */
const CLIENT_AUTH = `Bearer ${CLIENT_TOKEN}`;
const SMALL_BYTES = 1024;

/** A running peer: where to send requests and which process to measure. */
interface Target {
  /** `http://127.0.0.1:<port><prefix>`; `/small` and `/big` are appended. */
  readonly base: string;
  readonly authorization: string;
  readonly pid: number | undefined;
  stop(): Promise<void>;
}

interface Peer {
  readonly name: string;
  /** `phase` names its files: `rps` or `download`. */
  start(phase: Phase): Promise<Target>;
  /** Only in the req/s table (variants of this proxy whose streaming is the same). */
  readonly rpsOnly?: boolean;
}

type Phase = 'rps' | 'download' | 'connect-reverse' | 'connect' | 'handshake';
interface Rps { rps: number; requests: number; p50ms: number; p99ms: number; non2xx: number; errors: number; cpuUsPerReq?: number }
interface Download { mbps: number; idleMiB: number | undefined; peakMiB: number | undefined }

const tmp = process.argv[2];
if (tmp === undefined || !existsSync(tmp)) {
  process.stderr.write('usage: node dist/bench/run.js <empty temp dir> (bench/run.sh makes one)\n');
  process.exit(2);
}
/** The upstream nginx, started first by main(). */
let upstream: Nginx;
/** Its HTTPS port and the PEM of the private CA that signed its certificate. */
let upstreamTls: { port: number; ca: string };

// nginx workers run as nobody when started by root: they must reach the files in here.
chmodSync(tmp, 0o755);

async function curl(url: string, authorization: string | undefined, format: string): Promise<string> {
  const auth = authorization === undefined ? [] : ['-H', `Authorization: ${authorization}`];
  return (await run('curl', ['-s', '-o', '/dev/null', '-w', format, ...auth, url], { cpu: LOAD_CPU })).trim();
}

/** `expected` is a status (`401`) or a status and a body size (`200 1024`). */
async function expectStatus(url: string, authorization: string | undefined, expected: string, what: string): Promise<void> {
  const got = await curl(url, authorization, '%{http_code} %{size_download}');
  if (got !== expected && got.split(' ')[0] !== expected) throw new Error(`${what}: expected "${expected}", got "${got}" from ${url}`);
}

function profileFlags(name: string): string[] {
  return PROFILE_DIR === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`, `--cpu-prof-name=${name}.cpuprofile`];
}

/** How the proxy builds the tool's Basic credential: from the Secret, or by a Rego policy. */
type Credentials = 'static' | 'rego' | 'rego-per-request';

/** The seed's Basic policy: request-independent, so evaluated once per Secret version. */
const REGO_BASIC = readFileSync(join(REPO_ROOT, 'rego', 'seed', 'basic-auth.rego'), 'utf8');
/** The same credential, but the policy reads input.request, so it runs on every request. */
const REGO_BASIC_PER_REQUEST = REGO_BASIC.replace(/\n}\s*$/, '\n} {\n  input.request.method != ""\n}\n');

function regoManifests(rego: string): string {
  const body = rego.trimEnd().split('\n').map((l) => `            ${l}`).join('\n');
  return `apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata:
  name: bench-rego
  annotations:
    connectors.cpaas.io/proxy-resolver: path
spec:
  proxy: {}
  auth:
    types:
      - name: rego
        secretType: Opaque
        params: [{name: username, type: string}, {name: password, type: string}]
        generator:
          rego: |
${body}
---
apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: tool, namespace: bench}
spec:
  connectorClassName: bench-rego
  address: http://127.0.0.1:${upstream.port}
  auth: {name: rego, secretRef: {name: tool-secret}}
---
apiVersion: v1
kind: Secret
metadata: {name: tool-secret, namespace: bench}
type: Opaque
stringData: {username: ${TOOL_USER}, password: ${TOOL_PASSWORD}}
`;
}

/** The static Basic Connector pointing at the upstream's HTTPS port, its private CA trusted via caCertSecretRef. */
function httpsManifests(): string {
  return connectorManifests({
    address: `https://127.0.0.1:${upstreamTls.port}`, namespace: 'bench', name: 'tool', resolver: 'path',
    secretData: { username: TOOL_USER, password: TOOL_PASSWORD },
  }).replace(/(\n  address: .*\n)/, '$1  caCertSecretRef: {name: upstream-ca}\n') + caSecretManifest('bench', 'upstream-ca', upstreamTls.ca);
}

async function startThisProxy(phase: Phase, credentials: Credentials = 'static', https = false, main = MAIN): Promise<Target> {
  const before = main !== MAIN;
  const dir = join(tmp!, `proxy-${before ? 'before-' : ''}${https ? 'https-' : ''}${credentials === 'static' ? '' : `${credentials}-`}${phase}`);
  const { port, opsPort, logFile, args } = await benchProxyFiles(dir, https ? httpsManifests() : credentials === 'static'
    ? connectorManifests({
      address: `http://127.0.0.1:${upstream.port}`, namespace: 'bench', name: 'tool', resolver: 'path',
      secretData: { username: TOOL_USER, password: TOOL_PASSWORD },
    })
    : regoManifests(credentials === 'rego' ? REGO_BASIC : REGO_BASIC_PER_REQUEST), CLIENT_TOKEN);
  const log = openSync(logFile, 'w');
  const child = start(process.execPath, [...NODE_ARGS, ...profileFlags(`proxy-${before ? 'before-' : ''}${phase}`), main, ...args,
    // A build from before the proxy CA (issue 16) has no --proxy-ca-dir. One CA for the run: the
    // first process generates it, the others load it, as a restarted replica does.
    '--policy-cache-dir', join(dir, 'policies'), ...(before ? [] : ['--proxy-ca-dir', join(tmp!, 'proxy-ca')]), ...(https ? ['--enable-custom-ca-certs'] : []), ...PROXY_ARGS,
  ], { cpu: PEER_CPU, stdio: ['ignore', log, log] });
  closeSync(log);
  await waitUntil('connectors-proxy /readyz', async () => {
    if (child.exitCode !== null) throw new Error(`connectors-proxy exited: ${readFileSync(logFile, 'utf8')}`);
    const status = await curl(`http://127.0.0.1:${opsPort}/readyz`, undefined, '%{http_code}').catch(() => 'refused');
    return status === '200';
  });
  const base = `http://127.0.0.1:${port}/namespaces/bench/connectors/tool`;
  await expectStatus(`${base}/small`, undefined, '401', 'connectors-proxy without a client token');
  return { base, authorization: CLIENT_AUTH, pid: child.pid, stop: () => stop(child) };
}

async function startNodePeer(name: string, phase: Phase): Promise<Target> {
  const child = start(process.execPath, [...profileFlags(`${name}-${phase}`), join(__dirname, 'peers', `${name}.js`), `http://127.0.0.1:${upstream.port}`, INJECTED], { cpu: PEER_CPU });
  const port = await firstLine(child, (line) => (line.startsWith('{"port":') ? (JSON.parse(line) as { port: number }).port : undefined));
  return { base: `http://127.0.0.1:${port}`, authorization: CLIENT_AUTH, pid: child.pid, stop: () => stop(child) };
}

async function startNginxPeer(phase: Phase): Promise<Target> {
  const dir = join(tmp!, `nginx-${phase}`);
  const port = await freePort();
  const nginx = await startNginx(dir, port, proxyHttp(port, upstream.port, INJECTED, join(dir, 'access.log')), PEER_CPU);
  return { base: `http://127.0.0.1:${port}`, authorization: CLIENT_AUTH, pid: nginx.workerPid, stop: () => nginx.stop() };
}

const ALL_PEERS: readonly Peer[] = [
  { name: 'direct', start: async () => ({ base: `http://127.0.0.1:${upstream.port}`, authorization: INJECTED, pid: undefined, stop: async () => {} }) },
  { name: 'proxy', start: (phase) => startThisProxy(phase) },
  ...(BEFORE_MAIN === undefined ? [] : [{ name: 'proxy-before', start: (phase: Phase) => startThisProxy(phase, 'static', false, BEFORE_MAIN) }]),
  { name: 'proxy-rego', start: (phase) => startThisProxy(phase, 'rego'), rpsOnly: true },
  { name: 'rego-per-req', start: (phase) => startThisProxy(phase, 'rego-per-request'), rpsOnly: true },
  // The same proxy and Connector, but the tool is served over HTTPS (private CA via caCertSecretRef).
  { name: 'proxy-https', start: (phase) => startThisProxy(phase, 'static', true) },
  { name: 'undici', start: (phase) => startNodePeer('undici-proxy', phase) },
  { name: 'http-proxy', start: (phase) => startNodePeer('http-proxy', phase) },
  { name: 'node-http', start: (phase) => startNodePeer('node-http-proxy', phase) },
  { name: 'nginx', start: startNginxPeer },
];
/** BENCH_PEERS=proxy,undici runs only those (a profiling run, a quick look). */
const PEERS = process.env.BENCH_PEERS ? ALL_PEERS.filter((p) => process.env.BENCH_PEERS!.split(',').includes(p.name)) : ALL_PEERS;
/** The https_proxy phase (its own load client): with every peer, or when BENCH_PEERS names `proxy-connect`. */
const CONNECT_PHASE = !process.env.BENCH_PEERS || process.env.BENCH_PEERS.split(',').includes('proxy-connect');
/** Connections at once of the handshake run. */
const HANDSHAKE_CONNECTIONS = 16;

async function wrk(url: string, authorization: string, seconds: number): Promise<Rps> {
  const out = await run('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '-s', join(REPO_ROOT, 'bench', 'report.lua'),
    '-H', `Authorization: ${authorization}`, url], { cpu: LOAD_CPU });
  const line = out.split('\n').find((l) => l.startsWith('WRK_JSON '));
  if (line === undefined) throw new Error(`wrk printed no report:\n${out}`);
  const r = JSON.parse(line.slice('WRK_JSON '.length)) as {
    requests: number; duration_us: number; p50_us: number; p99_us: number; non2xx: number;
    connect_errors: number; read_errors: number; write_errors: number; timeouts: number;
  };
  return {
    rps: r.requests / (r.duration_us / 1e6), requests: r.requests, p50ms: r.p50_us / 1000, p99ms: r.p99_us / 1000, non2xx: r.non2xx,
    errors: r.connect_errors + r.read_errors + r.write_errors + r.timeouts,
  };
}

async function measureRps(peer: Peer): Promise<Rps> {
  const t = await peer.start('rps');
  try {
    await expectStatus(`${t.base}/small`, t.authorization, `200 ${SMALL_BYTES}`, peer.name);
    await wrk(`${t.base}/small`, t.authorization, WARMUP_S);
    // CPU per request (the process's utime+stime over the requests it served) moves far less
    // than req/s with the host's steal time on a shared VM.
    const cpuBefore = t.pid === undefined ? undefined : cpuMs(t.pid);
    const r = await wrk(`${t.base}/small`, t.authorization, DURATION_S);
    return cpuBefore === undefined ? r : { ...r, cpuUsPerReq: ((cpuMs(t.pid!) - cpuBefore) * 1000) / r.requests };
  } finally {
    await t.stop();
  }
}

/** Measured downloads per peer, after one warm-up download; the middle speed is reported. */
const DOWNLOADS = 3;

async function measureDownload(peer: Peer): Promise<Download> {
  const t = await peer.start('download');
  try {
    await expectStatus(`${t.base}/small`, t.authorization, `200 ${SMALL_BYTES}`, peer.name);
    const idle = t.pid === undefined ? undefined : memory(t.pid).rssKiB / 1024;
    const speeds: number[] = [];
    for (let i = 0; i <= DOWNLOADS; i++) {
      const [code, size, speed] = (await curl(`${t.base}/big`, t.authorization, '%{http_code} %{size_download} %{speed_download}')).split(' ');
      if (code !== '200' || Number(size) !== DOWNLOAD_BYTES) throw new Error(`${peer.name}: download got HTTP ${code} and ${size} of ${DOWNLOAD_BYTES} bytes`);
      // The first one warms the JIT and lets V8 size its heap for streaming, as wrk's warm-up does.
      if (i > 0) speeds.push(Number(speed) / 1e6);
    }
    // A fresh process per peer, so VmHWM is the peak of these downloads (start-up included).
    const peak = t.pid === undefined ? undefined : memory(t.pid).peakKiB / 1024;
    return { mbps: speeds.sort((x, y) => x - y)[Math.floor(DOWNLOADS / 2)]!, idleMiB: idle, peakMiB: peak };
  } finally {
    await t.stop();
  }
}

/** The first line a tool prints about its version (nginx and wrk print it on stderr). */
function version(cmd: string, flag: string): string {
  const r = spawnSync(cmd, [flag], { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`.split('\n')[0]!.replace(/^nginx version: /, '').split(' ').slice(0, 2).join(' ');
}

// Output ------------------------------------------------------------------------------

const col = (s: string, w: number): string => (s.length >= w ? s + ' ' : s + ' '.repeat(w - s.length));
const rcol = (s: string, w: number): string => (s.length >= w ? ' ' + s : ' '.repeat(w - s.length) + s);
const fix = (n: number | undefined, d: number): string => (n === undefined ? '-' : n.toFixed(d));
const NAME_W = 12;

function ratios(what: string, values: ReadonlyMap<string, number>): string {
  const mine = values.get('proxy');
  if (mine === undefined) return '';
  const parts: string[] = [];
  for (const [name, v] of values) if (name !== 'proxy' && !VARIANTS.has(name)) parts.push(`proxy/${name} ${(mine / v).toFixed(2)}x`);
  return parts.length === 0 ? '' : `  ${what}: ${parts.join('   ')}\n`;
}

/** The price of TLS to the tool: the HTTPS-upstream row over the plain one. */
function httpsRatio(what: string, values: ReadonlyMap<string, number>): string {
  const plain = values.get('proxy');
  const https = values.get('proxy-https');
  return plain === undefined || https === undefined ? '' : `  HTTPS upstream vs plain (${what}): proxy-https/proxy ${(https / plain).toFixed(2)}x\n`;
}

/** This proxy with other settings: compared with `proxy` on a line of their own. */
const VARIANTS = new Set(['proxy-rego', 'rego-per-req', 'proxy-https']);

const verdict = (ok: boolean): string => (ok ? 'met' : 'NOT met');

async function main(): Promise<void> {
  const began = Date.now();
  const out = (s: string): boolean => process.stdout.write(s);
  const www = join(tmp!, 'www');
  mkdirSync(www);
  const big = join(www, 'big');
  writeFileSync(big, '');
  truncateSync(big, DOWNLOAD_BYTES); // sparse: no disk, served from the page cache
  const upstreamPort = await freePort();
  let tlsPort: number;
  do tlsPort = await freePort(); while (tlsPort === upstreamPort);
  const ca = await TestCa.create('bench-upstream-ca');
  const pair = await ca.issue(['127.0.0.1']);
  const [certFile, keyFile] = [join(tmp!, 'upstream.crt'), join(tmp!, 'upstream.key')];
  writeFileSync(certFile, pair.cert);
  writeFileSync(keyFile, pair.key, { mode: 0o644 }); // read by nginx's worker (nobody when run as root)
  ca.remove();
  upstreamTls = { port: tlsPort, ca: ca.cert };
  upstream = await startNginx(join(tmp!, 'nginx-upstream'), upstreamPort, upstreamHttp(upstreamPort, www, INJECTED, { port: tlsPort, cert: certFile, key: keyFile }), LOAD_CPU);
  await expectStatus(`http://127.0.0.1:${upstream.port}/small`, undefined, '401', 'upstream without credentials');
  await expectStatus(`http://127.0.0.1:${upstream.port}/small`, CLIENT_AUTH, '401', 'upstream with the client token');
  await expectStatus(`http://127.0.0.1:${upstream.port}/small`, INJECTED, `200 ${SMALL_BYTES}`, 'upstream with the injected credentials');

  out(`connectors-proxy bench: loopback, ${cpus().length} CPUs, node ${process.version}, ${version('nginx', '-v')}, ${version('wrk', '-v')}, ${version('curl', '--version')}\n`);
  out(PIN
    ? '  pinning: wrk, curl and the upstream nginx on CPU 0 (taskset); the peer under test alone on CPU 1\n'
    : '  pinning: none (BENCH_PIN=0 or fewer than 2 CPUs)\n');
  out(`  upstream: nginx (1 worker) answering 401 unless Authorization is the injected value; checked before each run\n`);
  out(`  peers: direct = straight to the upstream; proxy = connectors-proxy (auth, injection, metrics, info logs to a file);\n`);
  out(`         proxy-https = the same, the tool served by the upstream over HTTPS (private CA via caCertSecretRef);\n`);
  out(`         undici = bare undici Pool proxy (bench/peers); http-proxy = npm http-proxy, keep-alive agent;\n`);
  out(`         node-http = bare proxy on Node's http client (bench/peers);\n`);
  out(`         nginx = proxy_pass + upstream keepalive, 1 worker, buffered access log to a file\n\n`);

  out(`GET 1 KiB: wrk -t1 -c${CONNECTIONS}, ${WARMUP_S} s warm-up then ${DURATION_S} s per peer, a fresh process each${REPEAT > 1 ? `; ${REPEAT} rounds, peers interleaved, medians shown` : ''}\n`);
  out(col('', NAME_W) + rcol('req/s', 10) + rcol('p50 ms', 9) + rcol('p99 ms', 9) + rcol('CPU µs/req', 12) + rcol('non-2xx', 9) + rcol('sock err', 9) + '\n');
  const rps = new Map<string, number>();
  const p99 = new Map<string, number>();
  const cpuPerReq = new Map<string, number>();
  let failures = 0;
  const rounds = new Map<string, Rps[]>();
  for (let round = 0; round < REPEAT; round++) {
    for (const peer of PEERS) {
      const r = await measureRps(peer);
      rounds.set(peer.name, [...(rounds.get(peer.name) ?? []), r]);
    }
  }
  for (const peer of PEERS) {
    const all = rounds.get(peer.name)!;
    const median = (f: (x: Rps) => number | undefined): number | undefined => {
      const v = all.map(f).filter((x): x is number => x !== undefined).sort((a, b) => a - b);
      return v.length === 0 ? undefined : v[Math.floor(v.length / 2)];
    };
    const r: Rps = {
      rps: median((x) => x.rps)!, requests: median((x) => x.requests)!, p50ms: median((x) => x.p50ms)!, p99ms: median((x) => x.p99ms)!,
      cpuUsPerReq: median((x) => x.cpuUsPerReq), non2xx: all.reduce((n, x) => n + x.non2xx, 0), errors: all.reduce((n, x) => n + x.errors, 0),
    };
    rps.set(peer.name, r.rps);
    p99.set(peer.name, r.p99ms);
    if (r.cpuUsPerReq !== undefined) cpuPerReq.set(peer.name, r.cpuUsPerReq);
    failures += r.non2xx + r.errors;
    out(col(peer.name, NAME_W) + rcol(fix(r.rps, 0), 10) + rcol(fix(r.p50ms, 2), 9) + rcol(fix(r.p99ms, 2), 9)
      + rcol(fix(r.cpuUsPerReq, 1), 12) + rcol(String(r.non2xx), 9) + rcol(String(r.errors), 9) + '\n');
  }
  out(ratios('req/s', rps));
  out(ratios('p99', p99));
  out(ratios('CPU/req', cpuPerReq));
  out(httpsRatio('req/s', rps));
  const rego = (name: string): string => (rps.has(name) && rps.has('proxy') ? `${name}/proxy ${(rps.get(name)! / rps.get('proxy')!).toFixed(2)}x` : '');
  if (rps.has('proxy-rego') || rps.has('rego-per-req')) {
    out(`  Rego generator vs the static Basic path (same credential): ${[rego('proxy-rego'), rego('rego-per-req')].filter(Boolean).join('   ')}\n`);
  }
  const proxyLog = join(tmp!, 'proxy-rps', 'proxy.log');
  if (existsSync(proxyLog)) {
    const text = readFileSync(proxyLog, 'utf8');
    out(`  proxy log: ${text.split('"msg":"request"').length - 1} request lines, ${(text.length / 1024 ** 2).toFixed(1)} MiB written to a file\n`);
  }

  const speed = new Map<string, number>();
  const peaks = new Map<string, number>();
  if (DOWNLOAD) await downloads(out, speed, peaks);

  let intercepted: number | undefined;
  if (CONNECT_PHASE) {
    const c = await interception(out);
    intercepted = c.ratio;
    failures += c.failures;
  }

  if (PEERS.some((p) => p.name === 'proxy-rego')) await compileTimes(out);

  out('\ntargets (measured above, not enforced):\n');
  const proxyRps = rps.get('proxy');
  const target = (label: string, value: number | undefined, ok: (v: number) => boolean, shown: (v: number) => string): void => {
    if (value !== undefined) out(`  ${col(label, 26)} ${col(verdict(ok(value)), 8)}(${shown(value)})\n`);
  };
  const vsProxy = (peer: string): number | undefined => (rps.has(peer) && proxyRps !== undefined ? proxyRps / rps.get(peer)! : undefined);
  target('proxy >= undici req/s', vsProxy('undici'), (r) => r >= 1, (r) => `${r.toFixed(2)}x`);
  const p99Ratio = p99.has('proxy') && p99.has('undici') ? p99.get('proxy')! / p99.get('undici')! : undefined;
  target('proxy p99 <= 1.5x undici', p99Ratio, (r) => r <= 1.5, (r) => `${r.toFixed(2)}x`);
  const cpuRatio = cpuPerReq.has('proxy') && cpuPerReq.has('undici') ? cpuPerReq.get('proxy')! / cpuPerReq.get('undici')! : undefined;
  target('proxy CPU/req <= undici', cpuRatio, (r) => r <= 1, (r) => `${r.toFixed(2)}x`);
  target('rego within 10% of static', rps.has('proxy-rego') ? 1 / vsProxy('proxy-rego')! : undefined, (r) => r >= 0.9, (r) => `${r.toFixed(2)}x`);
  target('proxy >= 2x http-proxy', vsProxy('http-proxy'), (r) => r >= 2, (r) => `${r.toFixed(2)}x`);
  target('streaming >= 1 GB/s', speed.get('proxy'), (v) => v >= 1000, (v) => `${v.toFixed(0)} MB/s`);
  target('intercepted >= 0.8x reverse', intercepted, (r) => r >= 0.8, (r) => `${r.toFixed(2)}x req/s`);
  target('peak RSS < 128 MiB', peaks.get('proxy'), (v) => v < 128, (v) => `${v.toFixed(1)} MiB`);
  out(`\n${failures === 0 ? 'every response was 2xx' : `${failures} non-2xx responses or socket errors: the numbers above are not valid`}; ${Math.round((Date.now() - began) / 1000)} s\n`);
  if (PROFILE_DIR !== undefined) out(`CPU profiles in ${PROFILE_DIR}: node dist/bench/cpuprofile.js ${PROFILE_DIR}/proxy-rps.cpuprofile\n`);
  await upstream.stop();
  process.exitCode = failures === 0 ? 0 : 1;
}

/** The download phase: MB/s and RSS of each peer (skipped with BENCH_DOWNLOAD=0). */
async function downloads(out: (s: string) => boolean, speed: Map<string, number>, peaks: Map<string, number>): Promise<void> {
  // The first read of the sparse file fills the page cache (slow); no peer should pay for it.
  await curl(`http://127.0.0.1:${upstream.port}/big`, INJECTED, '%{http_code}');
  out(`\n${DOWNLOAD_BYTES / 1024 ** 2} MiB download: curl -o /dev/null, 1 warm-up + ${DOWNLOADS} per peer in a fresh process; median MB/s (10^6 B/s);\n`);
  out(`  RSS of the proxying process (nginx: its worker) before the downloads and its peak (VmHWM) after them\n`);
  out(col('', NAME_W) + rcol('MB/s', 10) + rcol('RSS idle MiB', 14) + rcol('RSS peak MiB', 14) + '\n');
  for (const peer of PEERS) {
    if (peer.rpsOnly) continue;
    const d = await measureDownload(peer);
    speed.set(peer.name, d.mbps);
    if (d.peakMiB !== undefined) peaks.set(peer.name, d.peakMiB);
    out(col(peer.name, NAME_W) + rcol(fix(d.mbps, 0), 10) + rcol(fix(d.idleMiB, 1), 14) + rcol(fix(d.peakMiB, 1), 14) + '\n');
  }
  out(ratios('MB/s', speed));
  out(httpsRatio('MB/s', speed));
}

/** One run of bench/connect-load.ts on the load CPU. */
async function load(o: LoadOptions): Promise<LoadResult> {
  const text = await run(process.execPath, [join(__dirname, 'connect-load.js'), JSON.stringify(o)], { cpu: LOAD_CPU });
  const line = text.split('\n').find((l) => l.startsWith('CONNECT_LOAD_JSON '));
  if (line === undefined) throw new Error(`connect-load printed no result:\n${text}`);
  return JSON.parse(line.slice('CONNECT_LOAD_JSON '.length)) as LoadResult;
}

/**
 * The https_proxy phase: the same HTTPS tool (the upstream's TLS port, private CA via
 * caCertSecretRef) reached in reverse mode and through an intercepted CONNECT tunnel, by one
 * load client (wrk speaks no CONNECT), each in a fresh proxy process; then new tunnels with
 * full TLS handshakes per second (the leaf cached after the first). Returns connect/reverse req/s.
 */
async function interception(out: (s: string) => boolean): Promise<{ ratio: number | undefined; failures: number }> {
  const authority = `127.0.0.1:${upstreamTls.port}`;
  const proxyAuthorization = 'Basic ' + Buffer.from(`bench/tool:${CLIENT_TOKEN}`).toString('base64');
  const measure = async (phase: 'connect-reverse' | 'connect' | 'handshake'): Promise<Rps> => {
    const t = await startThisProxy(phase, 'static', true);
    try {
      const origin = new URL(t.base).origin;
      const ca = await run('curl', ['-sf', `${origin}/ca.crt`], { cpu: LOAD_CPU });
      const o: LoadOptions = phase === 'connect-reverse'
        ? { mode: 'reverse', proxyPort: Number(new URL(t.base).port), path: `${new URL(t.base).pathname}/small`, host: new URL(t.base).host, authorization: t.authorization, connections: CONNECTIONS, seconds: DURATION_S }
        : { mode: phase === 'connect' ? 'connect' : 'handshake', proxyPort: Number(new URL(t.base).port), path: '/small', host: authority, authority, proxyAuthorization, ca,
          connections: phase === 'handshake' ? HANDSHAKE_CONNECTIONS : CONNECTIONS, seconds: DURATION_S };
      await load({ ...o, seconds: WARMUP_S });
      const cpuBefore = cpuMs(t.pid!);
      const r = await load(o);
      return {
        rps: r.requests / (r.durationUs / 1e6), requests: r.requests, p50ms: r.p50us / 1000, p99ms: r.p99us / 1000, non2xx: r.non2xx, errors: r.errors,
        cpuUsPerReq: ((cpuMs(t.pid!) - cpuBefore) * 1000) / Math.max(1, r.requests),
      };
    } finally {
      await t.stop();
    }
  };
  out(`\nhttps_proxy: GET 1 KiB from the HTTPS tool, reverse mode vs intercepted CONNECT tunnels, one load client (bench/connect-load.ts),\n`);
  out(`  ${CONNECTIONS} kept-alive connections, ${WARMUP_S} s warm-up then ${DURATION_S} s, a fresh proxy process each${REPEAT > 1 ? `; ${REPEAT} rounds interleaved, medians shown` : ''}\n`);
  out(col('', NAME_W) + rcol('req/s', 10) + rcol('p50 ms', 9) + rcol('p99 ms', 9) + rcol('CPU µs/req', 12) + rcol('non-2xx', 9) + rcol('sock err', 9) + '\n');
  // Rounds interleave the two (the machine's load drifts); each column shows the median round.
  const runs: Record<'reverse' | 'connect', Rps[]> = { reverse: [], connect: [] };
  for (let round = 0; round < REPEAT; round++) {
    runs.reverse.push(await measure('connect-reverse'));
    runs.connect.push(await measure('connect'));
  }
  const median = (all: Rps[], f: (x: Rps) => number): number => all.map(f).sort((a, b) => a - b)[Math.floor(all.length / 2)]!;
  const summary = (all: Rps[]): Rps => ({
    rps: median(all, (x) => x.rps), requests: median(all, (x) => x.requests), p50ms: median(all, (x) => x.p50ms), p99ms: median(all, (x) => x.p99ms),
    cpuUsPerReq: median(all, (x) => x.cpuUsPerReq!), non2xx: all.reduce((n, x) => n + x.non2xx, 0), errors: all.reduce((n, x) => n + x.errors, 0),
  });
  const [reverse, connect] = [summary(runs.reverse), summary(runs.connect)];
  for (const [name, r] of [['reverse', reverse], ['connect', connect]] as const) {
    out(col(name, NAME_W) + rcol(fix(r.rps, 0), 10) + rcol(fix(r.p50ms, 2), 9) + rcol(fix(r.p99ms, 2), 9)
      + rcol(fix(r.cpuUsPerReq, 1), 12) + rcol(String(r.non2xx), 9) + rcol(String(r.errors), 9) + '\n');
  }
  if (REPEAT > 1) {
    out(`  per round, connect/reverse req/s: ${runs.connect.map((c, i) => (c.rps / runs.reverse[i]!.rps).toFixed(2)).join(' ')}`
      + `; CPU/req: ${runs.connect.map((c, i) => (c.cpuUsPerReq! / runs.reverse[i]!.cpuUsPerReq!).toFixed(2)).join(' ')}\n`);
  }
  const ratio = connect.rps / reverse.rps;
  out(`  connect/reverse: req/s ${ratio.toFixed(2)}x   CPU/req ${(connect.cpuUsPerReq! / reverse.cpuUsPerReq!).toFixed(2)}x\n`);
  const h = await measure('handshake');
  out(`  handshakes (new connection, CONNECT, full TLS 1.3 handshake with a cached leaf; ${HANDSHAKE_CONNECTIONS} at a time): ${fix(h.rps, 0)}/s,`
    + ` p50 ${fix(h.p50ms, 2)} ms, proxy CPU ${fix(h.cpuUsPerReq, 0)} µs per handshake, ${h.errors} failed\n`);
  return { ratio, failures: reverse.non2xx + reverse.errors + connect.non2xx + connect.errors + h.errors };
}

/** Cold `opa build -t wasm` time of every policy in rego/, through the proxy's own compiler. */
async function compileTimes(out: (s: string) => boolean): Promise<void> {
  const opaBin = spawnSync('bash', [join(REPO_ROOT, 'scripts', 'install-opa.sh')], { encoding: 'utf8' }).stdout.trim();
  out(`\nRego compile time (opa build -t wasm, no cache), ${opaBin.split('/').slice(-2, -1)[0] ?? ''}:\n`);
  for (const folder of ['seed', 'examples']) {
    for (const file of readdirSync(join(REPO_ROOT, 'rego', folder)).filter((f) => f.endsWith('.rego')).sort()) {
      const compiler = new PolicyCompiler({ opaBin, cacheDir: undefined });
      const t0 = Date.now();
      const result = await compiler.compile(readFileSync(join(REPO_ROOT, 'rego', folder, file), 'utf8'), 'generator.rego').then(
        (wasm) => `${(wasm.length / 1024).toFixed(0)} KiB wasm`, (err: Error) => `rejected: ${err.message.slice(0, 60)}...`);
      out(`  ${col(`${folder}/${file}`, 40)} ${rcol(`${Date.now() - t0} ms`, 8)}  ${result}\n`);
    }
  }
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => { void stopAll().then(() => process.exit(130)); });
}
process.on('exit', terminateAll);
main().catch(async (err: Error) => {
  process.stderr.write(`bench failed: ${err.message}\n`);
  await stopAll();
  process.exit(1);
});
