// Throwaway certificate authorities for HTTPS upstreams, made with the openssl CLI (node:crypto
// cannot sign certificates), and a real HTTPS tool whose serving certificate can be swapped.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpsRequest, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkServerIdentity as tlsCheckServerIdentity, type TLSSocket } from 'node:tls';
import { run } from './run';

const P256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
const RSA = ['-newkey', 'rsa:2048', '-nodes'];

export interface KeyPair { readonly cert: string; readonly key: string }
/** A pair also written to files (for servers configured by path: nginx, docker-registry, Verdaccio). */
export interface KeyPairFiles extends KeyPair { readonly certFile: string; readonly keyFile: string }

/** A CA in its own temporary folder; `issue()` signs serving certificates with it. */
export class TestCa {
  private serial = 0;
  private constructor(readonly dir: string, readonly name: string, readonly cert: string) {}

  /** `rsa`: an RSA-2048 CA key instead of ECDSA P-256. */
  static async create(name: string, opts: { rsa?: boolean } = {}): Promise<TestCa> {
    const dir = mkdtempSync(join(tmpdir(), `test-ca-${name}-`));
    await openssl(dir, ['req', '-x509', ...(opts.rsa ? RSA : P256), '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', `/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    return new TestCa(dir, name, readFileSync(join(dir, 'ca.crt'), 'utf8'));
  }

  get certFile(): string { return join(this.dir, 'ca.crt'); }
  get keyFile(): string { return join(this.dir, 'ca.key'); }
  /** The CA's private key (PEM). */
  get key(): string { return readFileSync(this.keyFile, 'utf8'); }

  /** A serving certificate for `hosts` (DNS names or IP addresses). */
  async issue(hosts: readonly string[]): Promise<KeyPair> {
    const { cert, key } = await this.issueFiles(hosts);
    return { cert, key };
  }

  /** issue(), with the certificate and key also in files of the CA's folder. */
  async issueFiles(hosts: readonly string[]): Promise<KeyPairFiles> {
    const n = `leaf${++this.serial}`;
    await openssl(this.dir, ['req', '-new', ...P256, '-keyout', `${n}.key`, '-out', `${n}.csr`, '-subj', `/CN=${hosts[0]}`]);
    const san = hosts.map((h) => (isIP(h) !== 0 ? `IP:${h}` : `DNS:${h}`)).join(',');
    writeFileSync(join(this.dir, `${n}.ext`), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
    await openssl(this.dir, ['x509', '-req', '-in', `${n}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', String(1000 + this.serial),
      '-out', `${n}.crt`, '-days', '2', '-extfile', `${n}.ext`]);
    const certFile = join(this.dir, `${n}.crt`);
    const keyFile = join(this.dir, `${n}.key`);
    return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), certFile, keyFile };
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function openssl(cwd: string, args: readonly string[]): Promise<void> {
  const r = await run('openssl', args, { cwd, timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`openssl ${args[0]} failed (${r.code}): ${r.stderr}`);
}

export interface HttpsTool {
  readonly server: Server;
  readonly port: number;
  /** TLS handshakes completed (new connections). */
  readonly handshakes: number;
  /** The SNI names clients sent, in order. */
  readonly serverNames: string[];
  /** Serves `pair` to new connections and drops the kept-alive ones. */
  use(pair: KeyPair): void;
  close(): Promise<void>;
}

/** A real HTTPS server on 127.0.0.1 with `pair` as its certificate. */
export async function startHttpsTool(pair: KeyPair, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<HttpsTool> {
  const server = createServer({ cert: pair.cert, key: pair.key }, handler);
  const serverNames: string[] = [];
  let handshakes = 0;
  server.on('secureConnection', (s: TLSSocket) => {
    handshakes++;
    serverNames.push((s as TLSSocket & { servername?: string | false }).servername || '');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    get handshakes() { return handshakes; },
    serverNames,
    use(p) {
      server.setSecureContext({ cert: p.cert, key: p.key });
      server.closeIdleConnections();
    },
    close: () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
      return closed;
    },
  };
}

/** A CA Secret manifest: `data` maps keys to PEM text; `global` adds the connectors.cpaas.io/ca-cert label. */
export function caSecretYaml(name: string, namespace: string, data: Record<string, string>, global = false): string {
  const indent = (text: string): string => text.trim().split('\n').map((l) => `    ${l}`).join('\n');
  return `apiVersion: v1
kind: Secret
metadata:
  name: ${name}
  namespace: ${namespace}${global ? '\n  labels: {connectors.cpaas.io/ca-cert: "true"}' : ''}
type: Opaque
stringData:
${Object.entries(data).map(([k, v]) => `  ${k}: |\n${indent(v)}`).join('\n')}
`;
}

/** How a test tool serves TLS: a certificate from `ca` for `host` and 127.0.0.1. */
export interface ServeTls {
  readonly ca: TestCa;
  /** The name clients use (resolved to loopback by test/support/hosts.ts), e.g. `git.tools.test`. */
  readonly host: string;
}

/**
 * GET `url` from this process, trusting only `ca`: the connection goes to 127.0.0.1 and the
 * URL's host is sent as SNI and Host and checked against the certificate, so test names need
 * no DNS here. Any answer (a 401 too) resolves.
 */
export function httpsGet(url: string, ca: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: '127.0.0.1', port: Number(u.port || 443), path: u.pathname + u.search, ca, agent: false,
      servername: isIP(u.hostname) ? undefined : u.hostname, headers: { host: u.host, ...headers },
      checkServerIdentity: (_host, cert) => tlsCheckServerIdentity(u.hostname, cert),
    }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => { text += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}
