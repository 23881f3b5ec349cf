// The optional HTTPS listener: a real HTTPS client against the proxy binary with a throwaway
// CA made by openssl here, certificates in a folder laid out like a Kubernetes Secret volume
// (files are symlinks through `..data`, which an update swaps atomically), rotation picked
// up without a restart, a bad new pair logged and the previous one kept, and drain on SIGTERM.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect, type Socket } from 'node:net';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAIN, TOKENS, basic, connectorManifests, startProxy, type ProxyProcess } from './support/proxy';
import { startUpstream, type Upstream } from './support/upstream';
import { run } from './support/run';

const CLIENT = basic('anyone', 'good-token-123');
const TOOL_BASIC = basic('tool-user', 'tool-secret-pw');

async function openssl(dir: string, args: readonly string[]): Promise<void> {
  const r = await run('openssl', args, { cwd: dir, timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A serving certificate `<name>.crt`/`<name>.key` for 127.0.0.1 and the proxy's hosts, signed by `ca`. */
async function serverCert(dir: string, ca: string, name: string): Promise<{ cert: string; key: string }> {
  await openssl(dir, ['req', '-new', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
  writeFileSync(join(dir, `${name}.ext`), 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:*.team.proxy.test\nextendedKeyUsage=serverAuth\n');
  await openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial',
    '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`]);
  return { cert: readFileSync(join(dir, `${name}.crt`), 'utf8'), key: readFileSync(join(dir, `${name}.key`), 'utf8') };
}

/**
 * A folder updated the way the kubelet updates a Secret volume: the files live in a
 * timestamped folder, `..data` points at it, `tls.crt`/`tls.key` point through `..data`;
 * an update writes a new folder and renames a new `..data` symlink over the old one.
 */
class SecretVolume {
  private generation = 0;
  constructor(readonly dir: string) { mkdirSync(dir, { recursive: true }); }
  get certFile(): string { return join(this.dir, 'tls.crt'); }
  get keyFile(): string { return join(this.dir, 'tls.key'); }
  write(cert: string, key: string): void {
    const gen = `..gen_${++this.generation}`;
    mkdirSync(join(this.dir, gen));
    writeFileSync(join(this.dir, gen, 'tls.crt'), cert);
    writeFileSync(join(this.dir, gen, 'tls.key'), key);
    symlinkSync(gen, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
    if (this.generation === 1) {
      symlinkSync('..data/tls.crt', this.certFile);
      symlinkSync('..data/tls.key', this.keyFile);
    } else {
      rmSync(join(this.dir, `..gen_${this.generation - 1}`), { recursive: true, force: true });
    }
  }
}

interface TlsReply { status: number; text: string; peer: PeerCertificate; }

/** One HTTPS request on a new connection (so it sees the listener's current certificate). */
function get(port: number, path: string, opts: { ca: string; host?: string; headers?: Record<string, string> }): Promise<TlsReply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: '127.0.0.1', port, path, ca: opts.ca, agent: false, servername: 'localhost',
      headers: { host: opts.host ?? '127.0.0.1', ...opts.headers },
    }, (res) => {
      const peer = (res.socket as TLSSocket).getPeerCertificate();
      let text = '';
      res.on('data', (c: Buffer) => { text += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, peer }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function tlsPortOf(proxy: ProxyProcess): number {
  const line = /\{[^\n]*"msg":"connectors-proxy listening"[^\n]*\}/.exec(proxy.logs());
  const tls = (JSON.parse(line![0]) as { tls?: string }).tls;
  assert.ok(tls, 'the listening line names the TLS listener');
  return Number(tls.split(':').pop());
}

/** Runs the binary expecting it to refuse to start; returns its exit code and output. */
function refuseToStart(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, '--listen', '127.0.0.1:0', '--ops-listen', '127.0.0.1:0', '--no-watch', '--no-probes', ...args],
      { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('close', (code) => { clearTimeout(timer); resolve({ code, out }); });
  });
}

describe('HTTPS listener', () => {
  let dir: string;
  let ca: string;
  let a: { cert: string; key: string };
  let b: { cert: string; key: string };
  let c: { cert: string; key: string };
  let vol: SecretVolume;
  let up: Upstream;
  let proxy: ProxyProcess;
  let tlsPort: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cproxy-tls-'));
    await openssl(dir, ['req', '-x509', ...EC, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=connectors-proxy-tls-test-ca']);
    ca = readFileSync(join(dir, 'ca.crt'), 'utf8');
    a = await serverCert(dir, 'ca', 'proxy-a');
    b = await serverCert(dir, 'ca', 'proxy-b');
    c = await serverCert(dir, 'ca', 'proxy-c');
    vol = new SecretVolume(join(dir, 'secret'));
    vol.write(a.cert, a.key);
    up = await startUpstream((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ url: req.url, headers: req.headers }));
    });
    proxy = await startProxy({
      manifests: { 'tool.yaml': connectorManifests({ address: up.origin, name: 'tool' }) },
      args: ['--tls-listen', '127.0.0.1:0', '--no-probes'],
      // The certificate and key by environment variable: the documented alternative to flags.
      env: { PROXY_TLS_CERT: vol.certFile, PROXY_TLS_KEY: vol.keyFile },
    });
    tlsPort = tlsPortOf(proxy);
  });

  after(async () => {
    await proxy?.stop();
    await up?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('serves the proxy over HTTPS with the mounted certificate: client token checked, tool credentials injected, X-Forwarded-Proto https', async () => {
    const r = await get(tlsPort, '/repo/info', { ca, host: 'c-tool.team.proxy.test', headers: { authorization: CLIENT } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.peer.subject.CN, 'proxy-a');
    const seen = JSON.parse(r.text) as { url: string; headers: Record<string, string> };
    assert.equal(seen.url, '/repo/info');
    assert.equal(seen.headers.authorization, TOOL_BASIC);
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    // The same checks as on the plain listener.
    const anon = await get(tlsPort, '/repo/info', { ca, host: 'c-tool.team.proxy.test' });
    assert.equal(anon.status, 401);
    assert.equal(up.seen.length, 1, 'the unauthenticated request never reached the tool');
  });

  test('a rotated Secret (atomic ..data swap) is served to new connections without a restart', async () => {
    const pid = proxy.child.pid;
    const since = proxy.logs().length;
    vol.write(b.cert, b.key);
    await proxy.waitForLog(/"msg":"TLS certificate reloaded"/, 10_000, since);
    const r = await get(tlsPort, '/x', { ca, host: 'c-tool.team.proxy.test', headers: { authorization: CLIENT } });
    assert.equal(r.status, 200);
    assert.equal(r.peer.subject.CN, 'proxy-b');
    assert.equal(proxy.child.pid, pid);
    assert.equal(proxy.child.exitCode, null, 'no restart');
  });

  test('a bad new pair (certificate and key that do not match, then garbage) is logged and the previous certificate kept', async () => {
    let since = proxy.logs().length;
    vol.write(c.cert, a.key);
    const line = await proxy.waitForLog(/\{[^\n]*"msg":"TLS certificate not reloaded: keeping the previous one"[^\n]*\}/, 10_000, since);
    assert.match(line, /do not belong together/);
    let r = await get(tlsPort, '/x', { ca, host: 'c-tool.team.proxy.test', headers: { authorization: CLIENT } });
    assert.equal(r.status, 200);
    assert.equal(r.peer.subject.CN, 'proxy-b');

    since = proxy.logs().length;
    vol.write('not a certificate\n', c.key);
    assert.match(await proxy.waitForLog(/\{[^\n]*"msg":"TLS certificate not reloaded[^\n]*\}/, 10_000, since), /not a PEM certificate/);
    r = await get(tlsPort, '/x', { ca, host: 'c-tool.team.proxy.test', headers: { authorization: CLIENT } });
    assert.equal(r.peer.subject.CN, 'proxy-b');

    // A good pair after the bad ones is picked up again.
    since = proxy.logs().length;
    vol.write(c.cert, c.key);
    await proxy.waitForLog(/"msg":"TLS certificate reloaded"/, 10_000, since);
    r = await get(tlsPort, '/x', { ca, host: 'c-tool.team.proxy.test', headers: { authorization: CLIENT } });
    assert.equal(r.peer.subject.CN, 'proxy-c');
    const metrics = await fetch(`http://127.0.0.1:${proxy.opsPort}/metrics`).then((m) => m.text());
    assert.match(metrics, /connectors_proxy_config_reloads_total\{source="tls",result="ok"\} 2/);
    assert.match(metrics, /connectors_proxy_config_reloads_total\{source="tls",result="error"\} 2/);
  });

  test('no private key in the logs', () => {
    for (const k of [a.key, b.key, c.key]) {
      const body = k.split('\n').find((l) => l.length > 40);
      assert.ok(body);
      assert.ok(!proxy.logs().includes(body), 'a key line was logged');
    }
    assert.doesNotMatch(proxy.logs(), /PRIVATE KEY/);
  });

  test('a certificate and key that do not belong together refuse the start, naming both files', async () => {
    const bad = join(dir, 'bad');
    mkdirSync(bad);
    writeFileSync(join(dir, 'tokens.yaml'), TOKENS);
    writeFileSync(join(bad, 'tls.crt'), a.cert);
    writeFileSync(join(bad, 'tls.key'), b.key);
    const r = await refuseToStart(['--tls-listen', '127.0.0.1:0', '--tls-cert', join(bad, 'tls.crt'), '--tls-key', join(bad, 'tls.key'),
      '--manifests', join(dir, 'secret'), '--tokens', join(dir, 'tokens.yaml')]);
    assert.equal(r.code, 2, r.out);
    assert.match(r.out, /tls\.crt and key .*tls\.key do not belong together/);
    const missing = await refuseToStart(['--manifests', join(dir, 'secret'), '--tokens', join(dir, 'tokens.yaml')],
      { PROXY_TLS_LISTEN: '127.0.0.1:0', PROXY_TLS_CERT: join(dir, 'absent.crt'), PROXY_TLS_KEY: join(bad, 'tls.key') });
    assert.equal(missing.code, 2, missing.out);
    assert.match(missing.out, /TLS certificate .*absent\.crt: ENOENT/);
  });

  test('--tls-listen without --tls-cert and --tls-key is a usage error', async () => {
    const r = await refuseToStart(['--tls-listen', '127.0.0.1:0']);
    assert.notEqual(r.code, 0);
    assert.match(r.out, /--tls-listen, --tls-cert and --tls-key go together/);
  });

  test('SIGTERM closes the HTTPS listener too and exits 0', async () => {
    const code = await proxy.stop();
    assert.equal(code, 0);
    const refused = await new Promise<string>((resolve) => {
      const s: Socket = connect(tlsPort, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve('connected'); });
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    assert.equal(refused, 'ECONNREFUSED');
  });
});
