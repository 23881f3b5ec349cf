// Leaf certificates of the forward proxy's TLS interception (src/tls/leaf-certs.ts, x509.ts):
// what a minted leaf says (SAN, validity, chain), checked by Node's X509Certificate and by
// `openssl verify`; the LRU bound, coalesced minting, renewal and CA rotation; and real
// TLS clients (node's tls.connect and curl) completing a handshake against a server that
// uses the SNI callbacks, trusting only the proxy CA.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest, type Server as HttpsServer } from 'node:https';
import { connect as tlsConnect, TLSSocket, type SecureContext } from 'node:tls';
import { createServer as createNetServer, isIP, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { FileProxyCa, type ProxyCa } from '../src/tls/proxy-ca';
import { InvalidLeafHostError, LeafCertificates, ProxyCaUnavailableError, normalizeLeafHost } from '../src/tls/leaf-certs';
import { mintLeaf } from '../src/tls/x509';
import { TestCa } from './support/test-ca';
import { run } from './support/run';

const silent = pino({ level: 'silent' });
const DAY = 86_400_000;
let work: string;
let ca: FileProxyCa;

/**
 * The certificate a context presents: a server-side TLSSocket over a plain TCP connection (as
 * a CONNECT tunnel will use it), and a client that reads it.
 */
async function presented(ctx: SecureContext, servername = 'x.test'): Promise<X509Certificate> {
  const server = createNetServer((raw) => {
    const s = new TLSSocket(raw, { isServer: true, secureContext: ctx });
    s.on('error', () => undefined);
    s.on('secure', () => s.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    return await new Promise<X509Certificate>((resolve, reject) => {
      const c = tlsConnect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', servername: isIP(servername) ? undefined : servername, rejectUnauthorized: false }, () => {
        resolve(c.getPeerX509Certificate()!);
        c.end();
      });
      c.on('error', reject);
    });
  } finally {
    server.close();
  }
}

async function opensslVerify(caFile: string, leafPem: string, args: string[]): Promise<{ code: number | null; out: string }> {
  const leafFile = join(work, `leaf-${Math.random().toString(36).slice(2)}.pem`);
  writeFileSync(leafFile, leafPem);
  const r = await run('openssl', ['verify', '-x509_strict', '-purpose', 'sslserver', '-CAfile', caFile, ...args, leafFile]);
  return { code: r.code, out: r.stdout.toString() + r.stderr };
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'cproxy-leaf-'));
  ca = new FileProxyCa({ dir: join(work, 'ca'), watch: false }, { log: silent });
  await ca.ready;
});

after(() => {
  ca.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('a minted leaf', () => {
  test('DNS SAN, ECDSA P-256, serverAuth, about 7 days from an hour ago, signed by the proxy CA: Node and openssl verify it', async () => {
    const signing = ca.current()!;
    const now = Date.now();
    const leaf = await mintLeaf(signing, 'git.example.test', 7 * DAY, now);
    const cert = new X509Certificate(leaf.certPem);
    const caCert = new X509Certificate(ca.caCertPem()!);
    assert.equal(cert.subjectAltName, 'DNS:git.example.test');
    assert.equal(cert.ca, false);
    assert.ok(cert.checkIssued(caCert), 'issued by the proxy CA');
    assert.ok(cert.verify(caCert.publicKey), 'signature verifies with the CA key');
    assert.equal(cert.checkHost('git.example.test'), 'git.example.test');
    assert.equal(cert.checkHost('other.example.test'), undefined);
    assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'extended key usage serverAuth');
    const from = Date.parse(cert.validFrom);
    const to = Date.parse(cert.validTo);
    assert.ok(from <= now - 59 * 60_000 && from >= now - 61 * 60_000, `backdated about an hour: ${cert.validFrom}`);
    assert.ok(Math.abs(to - (now + 7 * DAY)) < 2000, `valid 7 days: ${cert.validTo}`);
    const caFile = join(work, 'ca', 'ca.crt');
    const ok = await opensslVerify(caFile, leaf.certPem, ['-verify_hostname', 'git.example.test']);
    assert.equal(ok.code, 0, ok.out);
    assert.match(ok.out, /: OK/);
    const wrongName = await opensslVerify(caFile, leaf.certPem, ['-verify_hostname', 'evil.example.test']);
    assert.notEqual(wrongName.code, 0, 'openssl refuses another host name');
    assert.match(wrongName.out, /hostname mismatch/);
  });

  test('an IP address gets an IP SAN (IPv4 and IPv6), which openssl checks with -verify_ip', async () => {
    for (const [host, san] of [['127.0.0.1', 'IP Address:127.0.0.1'], ['::1', 'IP Address:0:0:0:0:0:0:0:1'], ['[::1]', 'IP Address:0:0:0:0:0:0:0:1']] as const) {
      const leaves = new LeafCertificates(ca);
      const cert = await presented(await leaves.secureContextFor(host), host);
      assert.equal(cert.subjectAltName, san, host);
      const ip = host.replace(/^\[|\]$/g, '');
      assert.equal(cert.checkIP(ip), ip);
      const ok = await opensslVerify(join(work, 'ca', 'ca.crt'), cert.toString(), ['-verify_ip', ip]);
      assert.equal(ok.code, 0, ok.out);
      leaves.close();
    }
  });

  test('a leaf never outlives its CA', async () => {
    const shortCa = await TestCa.create('short-lived'); // openssl: -days 2
    try {
      const files = new FileProxyCa({ certFile: shortCa.certFile, keyFile: shortCa.keyFile, dir: work, watch: false }, { log: silent });
      await files.ready;
      const leaf = await mintLeaf(files.current()!, 'h.test', 30 * DAY);
      assert.equal(new X509Certificate(leaf.certPem).validTo, new X509Certificate(shortCa.cert).validTo);
      files.stop();
    } finally {
      shortCa.remove();
    }
  });

  test('an RSA CA given as files signs leaves too (RSASSA-PKCS1-v1_5), verified by openssl', async () => {
    const rsa = await TestCa.create('rsa-ca', { rsa: true });
    try {
      const files = new FileProxyCa({ certFile: rsa.certFile, keyFile: rsa.keyFile, dir: work, watch: false }, { log: silent });
      await files.ready;
      const leaf = await mintLeaf(files.current()!, 'rsa-signed.test', DAY);
      assert.equal(new X509Certificate(leaf.certPem).publicKey.asymmetricKeyType, 'ec', 'the leaf key stays P-256');
      const ok = await opensslVerify(rsa.certFile, leaf.certPem, ['-verify_hostname', 'rsa-signed.test']);
      assert.equal(ok.code, 0, ok.out);
      files.stop();
    } finally {
      rsa.remove();
    }
  });

  test('names no certificate can carry are refused before any minting', async () => {
    const leaves = new LeafCertificates(ca);
    for (const bad of ['', '*.example.test', 'a b.test', 'x'.repeat(254), 'host:443', '-lead.test', 'a..b']) {
      await assert.rejects(Promise.resolve(leaves.secureContextFor(bad)), InvalidLeafHostError, JSON.stringify(bad));
    }
    assert.equal(leaves.stats.minted, 0);
    assert.equal(normalizeLeafHost('Git.Example.TEST.'), 'git.example.test');
    leaves.close();
  });
});

describe('the leaf cache', () => {
  test('concurrent requests for one new host share one minting; later ones are synchronous hits', async () => {
    const leaves = new LeafCertificates(ca);
    const results = Array.from({ length: 20 }, () => leaves.secureContextFor('burst.example.test'));
    assert.ok(results.every((r) => r instanceof Promise), 'a new host is minted asynchronously');
    const contexts = await Promise.all(results);
    assert.equal(leaves.stats.minted, 1, '20 concurrent requests → 1 minting');
    assert.equal(leaves.stats.coalesced, 19);
    assert.ok(contexts.every((c) => c === contexts[0]), 'all got the same context');
    const hit = leaves.secureContextFor('BURST.example.test.');
    assert.ok(!(hit instanceof Promise), 'a cached host answers synchronously (same name after normalisation)');
    assert.equal(hit, contexts[0]);
    assert.equal(leaves.stats.hits, 1);
    leaves.close();
  });

  test('bounded: the least recently used host goes first', async () => {
    const leaves = new LeafCertificates(ca, { maxEntries: 3 });
    for (const h of ['a.test', 'b.test', 'c.test']) await leaves.secureContextFor(h);
    assert.ok(!(leaves.secureContextFor('a.test') instanceof Promise), 'a.test used again: now the most recent');
    await leaves.secureContextFor('d.test'); // evicts b.test, the least recently used
    await leaves.secureContextFor('e.test'); // evicts c.test
    assert.equal(leaves.size, 3);
    assert.equal(leaves.stats.evicted, 2);
    assert.ok(!(leaves.secureContextFor('a.test') instanceof Promise), 'a.test kept');
    const minted = leaves.stats.minted;
    assert.ok(leaves.secureContextFor('b.test') instanceof Promise, 'b.test was evicted');
    await leaves.secureContextFor('b.test');
    assert.equal(leaves.stats.minted, minted + 1);
    assert.equal(leaves.size, 3);
    leaves.close();
  });

  test('a leaf close to its end is minted again (clock moved, no waiting)', async () => {
    let now = Date.now();
    const leaves = new LeafCertificates(ca, { validityMs: 7 * DAY, renewBeforeMs: DAY, now: () => now });
    const first = await leaves.secureContextFor('renew.test');
    now += 5 * DAY;
    assert.equal(leaves.secureContextFor('renew.test'), first, 'two days left: still served');
    now += 1.5 * DAY;
    const again = leaves.secureContextFor('renew.test');
    assert.ok(again instanceof Promise, 'half a day left: minted again');
    const second = await again;
    assert.notEqual(second, first);
    assert.equal(leaves.stats.minted, 2);
    const cert = await presented(second, 'renew.test');
    assert.ok(Math.abs(Date.parse(cert.validTo) - (now + 7 * DAY)) < 2000, 'the new leaf counts from the moved clock');
    leaves.close();
  });

  test('a rotated CA mints fresh leaves signed by the new CA', async () => {
    const dir = mkdtempSync(join(work, 'rotate-'));
    const one = await TestCa.create('rotate-one');
    const two = await TestCa.create('rotate-two');
    try {
      const certFile = join(dir, 'ca.crt');
      const keyFile = join(dir, 'ca.key');
      writeFileSync(certFile, one.cert);
      writeFileSync(keyFile, one.key);
      const files = new FileProxyCa({ certFile, keyFile, dir, watch: false }, { log: silent });
      await files.ready;
      const leaves = new LeafCertificates(files);
      const before = await presented(await leaves.secureContextFor('rot.test'));
      assert.ok(before.checkIssued(new X509Certificate(one.cert)));
      writeFileSync(certFile, two.cert);
      writeFileSync(keyFile, two.key);
      assert.equal(await files.reload(), true);
      assert.equal(leaves.size, 0, 'the old CA\'s leaves are dropped');
      const next = leaves.secureContextFor('rot.test');
      assert.ok(next instanceof Promise, 'minted again for the new CA');
      const after = await presented(await next);
      assert.ok(after.checkIssued(new X509Certificate(two.cert)), 'signed by the new CA');
      assert.ok(after.verify(new X509Certificate(two.cert).publicKey));
      leaves.close();
      files.stop();
    } finally {
      one.remove();
      two.remove();
    }
  });

  test('no CA loaded yet: ProxyCaUnavailableError, nothing minted', async () => {
    const unloaded: ProxyCa = { ready: new Promise(() => undefined), current: () => undefined, caCertPem: () => undefined, onChange: () => () => undefined, stop: () => undefined };
    const leaves = new LeafCertificates(unloaded);
    await assert.rejects(Promise.resolve(leaves.secureContextFor('x.test')), ProxyCaUnavailableError);
    assert.equal(leaves.stats.minted, 0);
  });
});

describe('real TLS clients against the SNI callbacks', () => {
  let leaves: LeafCertificates;
  let server: HttpsServer;
  let port: number;
  /** A second server whose handshakes must name `tunnel.example.test` (as for one CONNECT tunnel). */
  let tunnel: HttpsServer;
  let tunnelPort: number;
  const tunnelErrors: string[] = [];
  const hello = (req: IncomingMessage, res: ServerResponse): void => {
    res.end(`hello ${(req.socket as TLSSocket & { servername?: string }).servername}\n`);
  };

  before(async () => {
    leaves = new LeafCertificates(ca);
    server = createHttpsServer({ SNICallback: leaves.sniCallback }, hello);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
    tunnel = createHttpsServer({ SNICallback: leaves.sniCallbackFor('Tunnel.Example.TEST') }, hello);
    tunnel.on('tlsClientError', (e) => tunnelErrors.push(e.message));
    await new Promise<void>((r) => tunnel.listen(0, '127.0.0.1', r));
    tunnelPort = (tunnel.address() as AddressInfo).port;
  });

  after(() => {
    server.close();
    tunnel.close();
    leaves.close();
  });

  /** GET / with node's https client: only `trust` is trusted (undefined: Node's default roots). */
  const get = (p: number, servername: string, trust: string | undefined): Promise<{ authorized: boolean; san: string | undefined; body: string }> =>
    new Promise((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port: p, servername, ca: trust, agent: false, path: '/' }, (res) => {
        const s = res.socket as TLSSocket;
        const info = { authorized: s.authorized, san: s.getPeerX509Certificate()?.subjectAltName };
        let body = '';
        res.on('data', (d: Buffer) => { body += d.toString(); });
        res.on('end', () => resolve({ ...info, body }));
      });
      req.on('error', reject);
      req.end();
    });

  test('node\'s https client trusting only the proxy CA: verified, the leaf names the SNI host', async () => {
    const r = await get(port, 'npm.example.test', ca.caCertPem());
    assert.equal(r.authorized, true);
    assert.equal(r.san, 'DNS:npm.example.test');
    assert.equal(r.body, 'hello npm.example.test\n');
    // Without the proxy CA the same leaf is refused: the trust comes from the CA alone.
    await assert.rejects(get(port, 'npm.example.test', undefined), /unable to (?:get|verify)/i);
  });

  test('curl --cacert with the CA file: verified handshake and the body; without it, curl refuses (exit 60)', async () => {
    const args = ['-sS', '--max-time', '20', '--resolve', `pypi.example.test:${port}:127.0.0.1`, `https://pypi.example.test:${port}/`];
    const ok = await run('curl', ['--cacert', join(work, 'ca', 'ca.crt'), ...args], { timeoutMs: 30_000 });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.toString(), 'hello pypi.example.test\n');
    const noTrust = await run('curl', args, { timeoutMs: 30_000 });
    assert.equal(noTrust.code, 60, `certificate problem: ${noTrust.stderr}`);
  });

  test('sniCallbackFor: the CONNECT host (any case) is served; another SNI fails the handshake', async () => {
    const ok = await get(tunnelPort, 'tunnel.example.test', ca.caCertPem());
    assert.equal(ok.authorized, true);
    assert.equal(ok.body, 'hello tunnel.example.test\n');
    await assert.rejects(get(tunnelPort, 'other.example.test', ca.caCertPem()));
    assert.ok(tunnelErrors.some((m) => /differs from the CONNECT host "tunnel.example.test"/.test(m)), tunnelErrors.join('\n'));
  });
});
