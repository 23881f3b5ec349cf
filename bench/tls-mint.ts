// The price of TLS interception's certificates (src/tls/leaf-certs.ts): what minting a leaf
// costs (CPU per leaf, next to the bare P-256 key generation and signature it contains),
// and full TLS handshakes per second served with cached leaves through the SNI callback,
// next to a server with one fixed certificate (the ceiling). The handshake client runs in a
// child process (this file with --client), pinned to CPU 0, this process on CPU 1 (BENCH_PIN=0:
// unpinned). Usage: npx tsc -p . && node dist/bench/tls-mint.js
import { execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, createSecureContext, createServer as createTlsServer, TLSSocket } from 'node:tls';
import pino from 'pino';
import { LeafCertificates } from '../src/tls/leaf-certs';
import { FileProxyCa } from '../src/tls/proxy-ca';
import { mintLeaf } from '../src/tls/x509';

const MINTS = Number(process.env.BENCH_MINTS ?? 300);
const SECONDS = Number(process.env.BENCH_DURATION ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONNECTIONS ?? 16);
const HOST = 'bench.tools.test';

/** CPU milliseconds (user + system) of this process while `fn` runs, and wall milliseconds. */
async function measure(fn: () => Promise<void> | void): Promise<{ cpuMs: number; wallMs: number }> {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await fn();
  const c = process.cpuUsage(c0);
  return { cpuMs: (c.user + c.system) / 1000, wallMs: Number(process.hrtime.bigint() - t0) / 1e6 };
}

/** The handshake load: CONCURRENCY loops of connect → handshake → close, for SECONDS; prints the count. */
function client(port: number, servername: string, ca: string): void {
  const until = Date.now() + SECONDS * 1000;
  let done = 0;
  let errors = 0;
  let live = CONCURRENCY;
  // One context for all connections: a `ca` option per connect would parse the PEM each time.
  const secureContext = createSecureContext({ ca });
  const loop = (): void => {
    if (Date.now() > until) {
      if (--live === 0) process.stdout.write(JSON.stringify({ done, errors }) + '\n', () => process.exit(0));
      return;
    }
    const s = tlsConnect({ port, host: '127.0.0.1', servername, secureContext }, () => {
      done++;
      s.destroy();
      loop();
    });
    s.on('error', () => { errors++; s.destroy(); loop(); });
  };
  for (let i = 0; i < CONCURRENCY; i++) loop();
}

async function handshakes(label: string, server: NetServer, ca: string, clientCpu: string | undefined): Promise<{ label: string; perSecond: number; cpuUsPerHandshake: number }> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const args = [__filename, '--client', String(port), HOST];
  const [cmd, argv] = clientCpu === undefined ? [process.execPath, args] : ['taskset', ['-c', clientCpu, process.execPath, ...args]];
  let out = '';
  const { cpuMs, wallMs } = await measure(() => new Promise<void>((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'inherit'] });
    child.stdin.end(ca);
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${label}: the client exited ${code}`))));
  }));
  server.close();
  const { done, errors } = JSON.parse(out) as { done: number; errors: number };
  if (errors > 0 || done === 0) throw new Error(`${label}: ${done} handshakes, ${errors} errors: numbers are not valid`);
  return { label, perSecond: done / (wallMs / 1000), cpuUsPerHandshake: (cpuMs * 1000) / done };
}

async function main(): Promise<void> {
  const pin = process.env.BENCH_PIN !== '0' && availableParallelism() >= 2;
  if (pin) execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
  const dir = mkdtempSync(join(tmpdir(), 'bench-tls-'));
  try {
    const ca = new FileProxyCa({ dir, watch: false }, { log: pino({ level: 'silent' }) });
    await ca.ready;
    const caPem = ca.caCertPem()!;
    const signing = ca.current()!;

    // Minting: warm up the library and the JIT, then distinct hosts one after another.
    const warm = new LeafCertificates(ca, { maxEntries: 10 });
    for (let i = 0; i < 30; i++) await warm.secureContextFor(`warm-${i}.test`);
    const leaves = new LeafCertificates(ca, { maxEntries: MINTS });
    const mint = await measure(async () => { for (let i = 0; i < MINTS; i++) await leaves.secureContextFor(`host-${i}.tools.test`); });
    // What a leaf needs at least: a P-256 key pair and one ECDSA signature over a certificate-sized body.
    const body = Buffer.alloc(350, 1);
    const raw = await measure(() => {
      for (let i = 0; i < MINTS; i++) {
        generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
        sign('sha256', body, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey);
      }
    });
    const cached = await measure(() => { for (let i = 0; i < 100_000; i++) leaves.secureContextFor(`host-${i % MINTS}.tools.test`); });

    // Handshakes: a fixed certificate (the ceiling), then the SNI callback with a cached leaf,
    // then the CONNECT-tunnel shape (a server-side TLSSocket over an accepted TCP socket).
    const fixed = await mintLeaf(signing, HOST, 7 * 86_400_000);
    await leaves.secureContextFor(HOST);
    const clientCpu = pin ? '0' : undefined;
    const results = [
      await handshakes('fixed certificate', createTlsServer({ cert: fixed.certPem, key: fixed.keyPem }, (s) => s.end()), caPem, clientCpu),
      await handshakes('SNI callback, cached leaf', createTlsServer({ SNICallback: leaves.sniCallback }, (s) => s.end()), caPem, clientCpu),
      await handshakes('tunnel TLSSocket, sniCallbackFor', createNetServer((raw) => {
        const ctx = leaves.secureContextFor(HOST);
        if (ctx instanceof Promise) throw new Error('the bench host must be cached');
        const s = new TLSSocket(raw, { isServer: true, secureContext: ctx, SNICallback: leaves.sniCallbackFor(HOST) });
        s.on('error', () => undefined);
        s.on('secure', () => s.end());
      }), caPem, clientCpu),
    ];

    const f = (n: number, d = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
    console.log(`tls-mint: ${MINTS} leaves, handshakes ${SECONDS}s x ${CONCURRENCY} connections, ${pin ? 'server CPU 1, client CPU 0' : 'unpinned'}`);
    console.log(`mint a leaf (P-256 key, certificate, SecureContext): ${f(mint.cpuMs / MINTS, 2)} ms CPU, ${f(mint.wallMs / MINTS, 2)} ms wall per leaf`);
    console.log(`  bare crypto in it (P-256 key pair + one ECDSA signature): ${f(raw.cpuMs / MINTS / 2, 2)} ms CPU; mint/bare ${f(mint.cpuMs / (raw.cpuMs / 2), 1)}x`);
    console.log(`cache hit (secureContextFor, synchronous): ${f((cached.cpuMs * 1e6) / 100_000 / 1000, 2)} µs CPU`);
    const ceiling = results[0]!;
    for (const r of results) {
      console.log(`handshakes/s ${r.label.padEnd(34)} ${f(r.perSecond).padStart(7)}  server CPU ${f(r.cpuUsPerHandshake).padStart(5)} µs/handshake  ${r === ceiling ? '' : `${f(r.perSecond / ceiling.perSecond, 2)}x fixed`}`);
    }
    leaves.close();
    warm.close();
    ca.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--client') {
  let ca = '';
  process.stdin.on('data', (d: Buffer) => { ca += d.toString(); });
  process.stdin.on('end', () => client(Number(process.argv[3]), process.argv[4]!, ca));
} else {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
