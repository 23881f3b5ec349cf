// Soak run (bench/soak.sh; never part of the tests): the real proxy binary under steady
// mixed load for SOAK_SECONDS (default 600), its RSS, V8 heap, active handles, open
// sockets and descriptors sampled every SOAK_SAMPLE_SECONDS. Prints the samples, the
// trend (least-squares slope after the warm-up) and PASS/FAIL:
//   - every answer had the expected status and body size (no error under load);
//   - RSS and heap slopes after the warm-up under SOAK_MAX_SLOPE_MIB_PER_MIN (default 1);
//   - open descriptors at the end within 20 of the warm-up's highest.
// Load: SOAK_RATE requests per second (default 400) from SOAK_WORKERS concurrent clients.
// Mix: path and host form, forward-proxy mode, 1 KiB and 2 MiB downloads, 256 KiB
// uploads (checked by hash), keep-alive and new connections, 401 and 404 answers.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest, createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { MAIN, connectorManifests } from '../test/support/proxy';
import { openFds, rssOf } from '../test/support/raw';

const num = (name: string, fallback: number): number => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
  return v;
};
const SECONDS = num('SOAK_SECONDS', 600);
const SAMPLE_S = num('SOAK_SAMPLE_SECONDS', 5);
const WORKERS = num('SOAK_WORKERS', 12);
/** Requests per second, all workers together: a steady load, not a throughput test. */
const RATE = num('SOAK_RATE', 400);
const MAX_SLOPE = num('SOAK_MAX_SLOPE_MIB_PER_MIN', 1);
/**
 * SOAK_CAP=n runs the proxy with --max-concurrent-exchanges n (below SOAK_WORKERS, the cap is
 * hit all the time): a 503 with Retry-After is then an expected answer ("shed"), and the run
 * passes only if the cap was hit and memory and descriptors stay flat all the same.
 */
const CAP = process.env.SOAK_CAP ? num('SOAK_CAP', 1) : undefined;
/** The first part of the run, excluded from the trend: JIT, pools and caches fill. */
const WARMUP_FRACTION = 0.2;
const TOKEN = 'soak-client-token';
const SMALL = randomBytes(1024);
const LARGE = Buffer.alloc(2 * 1024 * 1024, 0x61);
const UPLOAD = randomBytes(256 * 1024);
const UPLOAD_SHA = createHash('sha256').update(UPLOAD).digest('hex');

interface Sample { t: number; rss: number; heap: number; handles: number; fds: number; sockets: number; requests: number }

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: node dist/bench/soak.js <temp dir>');
  const upstream = createServer((req, res) => {
    const url = req.url ?? '';
    if (url.includes('/upload')) {
      const h = createHash('sha256');
      req.on('data', (c: Buffer) => h.update(c));
      req.on('end', () => res.end(h.digest('hex')));
      return;
    }
    if (req.headers.authorization !== 'Basic ' + Buffer.from('soak-user:soak-pw').toString('base64')) {
      res.writeHead(401).end('no credentials');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(url.includes('/large') ? LARGE : SMALL);
  });
  upstream.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  const origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;

  const manifests = join(dir, 'manifests');
  mkdirSync(manifests);
  const secret = { username: 'soak-user', password: 'soak-pw' };
  writeFileSync(join(manifests, 'path.yaml'), connectorManifests({ address: `${origin}/base`, name: 'tool', resolver: 'path', secretData: secret }));
  writeFileSync(join(manifests, 'host.yaml'), connectorManifests({ address: origin, name: 'api', secretData: secret }));
  writeFileSync(join(dir, 'tokens.yaml'), `tokens:\n  - token: ${TOKEN}\n    user: soak\n    connectors: ["team/*"]\n`);
  const log = openSync(join(dir, 'proxy.log'), 'w');
  const proxy = spawn(process.execPath, [
    MAIN, '--listen', '127.0.0.1:0', '--ops-listen', '127.0.0.1:0', '--manifests', manifests,
    '--tokens', join(dir, 'tokens.yaml'), '--domain', 'soak.test', '--no-probes', '--log-level', 'info',
    ...(CAP === undefined ? [] : ['--max-concurrent-exchanges', String(CAP)]),
  ], { stdio: ['ignore', log, log] });
  const stopProxy = (): void => { if (proxy.exitCode === null) proxy.kill('SIGTERM'); };
  process.once('exit', stopProxy);
  const { port, opsPort } = await listening(join(dir, 'proxy.log'));
  const pid = proxy.pid!;

  const keepAlive = new Agent({ keepAlive: true, maxSockets: WORKERS });
  const auth = { authorization: `Bearer ${TOKEN}` };
  const proxyAuth = { 'proxy-authorization': 'Basic ' + Buffer.from(`team/tool:${TOKEN}`).toString('base64') };
  type Outcome = 'ok' | 'shed' | 'bad';
  type Kind = { name: string; run: () => Promise<Outcome> };
  /** Under SOAK_CAP a 503 that names the cap and asks to retry is expected. */
  const shedOr = (r: { status: number; text: string; retryAfter: string | undefined }, ok: boolean): Outcome =>
    ok ? 'ok' : CAP !== undefined && r.status === 503 && r.retryAfter === '2' && r.text.includes('--max-concurrent-exchanges') ? 'shed' : 'bad';
  const get = (path: string, headers: Record<string, string>, status: number, size: number, agent: Agent | false): Promise<Outcome> =>
    call({ port, path, headers, agent }).then((r) => shedOr(r, r.status === status && (size < 0 || r.bytes === size)));
  const kinds: Kind[] = [
    { name: 'path small keep-alive', run: () => get('/namespaces/team/connectors/tool/small', auth, 200, SMALL.length, keepAlive) },
    { name: 'host small keep-alive', run: () => get('/small', { ...auth, host: 'c-api.team.soak.test' }, 200, SMALL.length, keepAlive) },
    { name: 'path small new connection', run: () => get('/namespaces/team/connectors/tool/small', auth, 200, SMALL.length, false) },
    { name: 'host large keep-alive', run: () => get('/large', { ...auth, host: 'c-api.team.soak.test' }, 200, LARGE.length, keepAlive) },
    { name: 'forward small', run: () => get(`${origin}/base/small`, proxyAuth, 200, SMALL.length, keepAlive) },
    {
      name: 'path upload 256 KiB', run: () => call({ port, path: '/namespaces/team/connectors/tool/upload', method: 'PUT', headers: auth, agent: keepAlive, body: UPLOAD })
        .then((r) => shedOr(r, r.status === 200 && r.text === UPLOAD_SHA)),
    },
    { name: '401 no token', run: () => get('/namespaces/team/connectors/tool/small', {}, 401, -1, keepAlive) },
    { name: '404 unknown connector', run: () => get('/namespaces/team/connectors/nope/small', auth, 404, -1, keepAlive) },
  ];
  // Weights: mostly small keep-alive traffic, as real tools make.
  const mix = [0, 0, 0, 1, 1, 1, 2, 3, 4, 4, 5, 6, 7];
  const counts = new Map<string, Record<Outcome, number>>(kinds.map((k) => [k.name, { ok: 0, shed: 0, bad: 0 }]));
  let requests = 0;
  const end = Date.now() + SECONDS * 1000;
  let rng = 12345;
  const pick = (): Kind => { rng = (rng * 1103515245 + 12345) & 0x7fffffff; return kinds[mix[rng % mix.length]!]!; };
  let slot = Date.now();
  const worker = async (): Promise<void> => {
    while (Date.now() < end) {
      // Paced: each request takes the next free slot of the RATE schedule.
      const now = Date.now();
      slot = Math.max(slot + 1000 / RATE, now - 1000);
      if (slot > now) await new Promise((r) => setTimeout(r, slot - now));
      const k = pick();
      const outcome = await k.run().catch((): Outcome => 'bad');
      counts.get(k.name)![outcome]++;
      requests++;
    }
  };

  const samples: Sample[] = [];
  const started = Date.now();
  const sample = async (): Promise<void> => {
    const m = await call({ port: opsPort, path: '/metrics', headers: {}, agent: false });
    const metric = (name: string): number => Number(new RegExp(`^connectors_proxy_${name} (\\S+)$`, 'm').exec(m.text)?.[1] ?? NaN);
    const { total, sockets } = openFds(pid);
    const s: Sample = {
      t: (Date.now() - started) / 1000, rss: rssOf(pid), heap: metric('nodejs_heap_size_used_bytes'),
      handles: metric('nodejs_active_handles_total'), fds: total, sockets, requests,
    };
    samples.push(s);
    console.log(`t=${s.t.toFixed(0).padStart(4)}s  req=${String(s.requests).padStart(8)}  rss=${mib(s.rss)}  heap=${mib(s.heap)}  handles=${s.handles}  fds=${s.fds}  sockets=${s.sockets}`);
  };
  console.log(`soak: ${SECONDS} s, ${RATE} req/s from ${WORKERS} workers, sample every ${SAMPLE_S} s, proxy pid ${pid}`);
  await sample();
  const timer = setInterval(() => { sample().catch((e) => console.error('sample failed:', e)); }, SAMPLE_S * 1000);
  await Promise.all(Array.from({ length: WORKERS }, worker));
  clearInterval(timer);
  keepAlive.destroy();
  await new Promise((r) => setTimeout(r, 2000)); // client sockets close
  await sample();

  // Trends over the loaded part after the warm-up (the last sample is taken idle).
  const after = samples.slice(0, -1).filter((s) => s.t >= SECONDS * WARMUP_FRACTION);
  const warm = samples.filter((s) => s.t < SECONDS * WARMUP_FRACTION);
  const perMin = (k: 'rss' | 'heap' | 'fds' | 'sockets' | 'handles', scale = 1): number => slope(after.map((s) => [s.t / 60, s[k] / scale]));
  const rssSlope = perMin('rss', 1048576);
  const heapSlope = perMin('heap', 1048576);
  const fdsEnd = samples[samples.length - 1]!.fds;
  const fdsWarmMax = Math.max(...warm.map((s) => s.fds));
  const bad = [...counts.values()].reduce((a, c) => a + c.bad, 0);
  const shed = [...counts.values()].reduce((a, c) => a + c.shed, 0);
  console.log(`\nby kind (ok / ${CAP === undefined ? '' : '503 shed / '}unexpected):`);
  for (const [name, c] of counts) console.log(`  ${name.padEnd(28)} ${String(c.ok).padStart(8)} / ${CAP === undefined ? '' : `${c.shed} / `}${c.bad}`);
  const secondsRun = samples[samples.length - 1]!.t;
  console.log(`\nrequests: ${requests} in ${secondsRun.toFixed(0)} s (${(requests / secondsRun).toFixed(0)} req/s), unexpected answers: ${bad}`);
  console.log(`RSS: start ${mib(samples[0]!.rss)}, after warm-up ${mib(after[0]!.rss)}, end ${mib(samples[samples.length - 1]!.rss)}, max ${mib(Math.max(...samples.map((s) => s.rss)))}`);
  console.log(`trend after warm-up (per minute): rss ${rssSlope.toFixed(3)} MiB, heap ${heapSlope.toFixed(3)} MiB, fds ${perMin('fds').toFixed(2)}, sockets ${perMin('sockets').toFixed(2)}, handles ${perMin('handles').toFixed(2)}`);
  console.log(`descriptors: warm-up max ${fdsWarmMax}, end ${fdsEnd}`);
  const failures: string[] = [];
  if (bad > 0) failures.push(`${bad} unexpected answers`);
  if (CAP !== undefined) {
    console.log(`shed by the cap of ${CAP} exchanges: ${shed} (${((100 * shed) / requests).toFixed(1)}%)`);
    if (shed === 0) failures.push('SOAK_CAP was never hit');
  }
  if (rssSlope > MAX_SLOPE) failures.push(`RSS grows ${rssSlope.toFixed(3)} MiB/min`);
  if (heapSlope > MAX_SLOPE) failures.push(`heap grows ${heapSlope.toFixed(3)} MiB/min`);
  if (fdsEnd > fdsWarmMax + 20) failures.push(`descriptors ${fdsWarmMax} → ${fdsEnd}`);
  if (proxy.exitCode !== null) failures.push(`the proxy exited (${proxy.exitCode})`);
  console.log(failures.length === 0 ? 'PASS' : `FAIL: ${failures.join('; ')}`);
  stopProxy();
  upstream.close();
  upstream.closeAllConnections();
  process.exitCode = failures.length === 0 ? 0 : 1;
}

function call(o: { port: number; path: string; method?: string; headers: Record<string, string>; agent: Agent | false; body?: Buffer }): Promise<{ status: number; bytes: number; text: string; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: o.port, path: o.path, method: o.method ?? 'GET', headers: o.headers, agent: o.agent }, (res: IncomingMessage) => {
      let bytes = 0;
      let text = '';
      res.on('data', (c: Buffer) => { bytes += c.length; if (text.length < 4096) text += c.toString('latin1'); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, text, retryAfter: res.headers['retry-after'] }));
      res.on('error', reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(o.body);
  });
}

async function listening(logFile: string): Promise<{ port: number; opsPort: number }> {
  for (let i = 0; i < 200; i++) {
    const m = /"proxy":"[^"]*:(\d+)","ops":"[^"]*:(\d+)"/.exec(readFileSync(logFile, 'utf8'));
    if (m) return { port: Number(m[1]), opsPort: Number(m[2]) };
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the proxy did not start:\n${readFileSync(logFile, 'utf8')}`);
}

/** Least-squares slope of y over x. */
export function slope(points: ReadonlyArray<readonly [number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  let sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const [x, y] of points) { sx += x; sy += y; sxx += x * x; sxy += x * y; }
  const d = n * sxx - sx * sx;
  return d === 0 ? 0 : (n * sxy - sx * sy) / d;
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 2;
});
