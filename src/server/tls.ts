// The optional HTTPS listener's certificate and key: loaded and checked at start (a bad pair
// is fatal then), reloaded when either file changes, and swapped into the running server
// with setSecureContext, so new connections get the new certificate without a restart and
// open ones keep theirs. A bad or half-written pair is logged and the previous one kept.
// The folders are watched, not the files: a Kubernetes Secret volume updates by swapping
// its `..data` symlink, and tools often replace files by rename; both change the folder.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, type FSWatcher } from 'node:fs';
import type { Server as HttpsServer } from 'node:https';
import { dirname } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { watchPath } from '../sources/files';

export interface TlsPair {
  readonly cert: string;
  readonly key: string;
}

/** What is logged about a certificate: public facts only, never the key. */
export interface CertificateInfo {
  readonly subject: string;
  readonly notAfter: string;
  readonly fingerprint256: string;
}

/**
 * Reads both files and checks that they parse and belong together. Throws an Error naming
 * the file (or both) and what is wrong; the messages carry no key material.
 */
export function loadTlsPair(certFile: string, keyFile: string): { pair: TlsPair; info: CertificateInfo } {
  const read = (file: string, what: string): string => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`TLS ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const cert = read(certFile, 'certificate');
  const key = read(keyFile, 'key');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new Error(`TLS certificate ${certFile}: not a PEM certificate`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new Error(`TLS key ${keyFile}: not a PEM private key`);
  }
  if (!x509.checkPrivateKey(privateKey)) throw new Error(`TLS certificate ${certFile} and key ${keyFile} do not belong together`);
  try {
    createSecureContext({ cert, key }); // what setSecureContext will do: catches chain errors too
  } catch (err) {
    throw new Error(`TLS certificate ${certFile} and key ${keyFile}: ${(err as Error).message}`);
  }
  return { pair: { cert, key }, info: { subject: x509.subject.replace(/\n/g, ', '), notAfter: x509.validTo, fingerprint256: x509.fingerprint256 } };
}

export class TlsReloader {
  private current: TlsPair;
  private readonly watchers: FSWatcher[] = [];

  /** Loads the pair now; throws (see loadTlsPair) when it is unusable. */
  constructor(
    private readonly certFile: string,
    private readonly keyFile: string,
    private readonly log: Logger,
    private readonly onReload: (ok: boolean) => void = () => {},
  ) {
    const { pair, info } = loadTlsPair(certFile, keyFile);
    this.current = pair;
    log.info({ cert: certFile, ...info }, 'TLS certificate loaded');
  }

  /** Options for https.createServer. */
  get secureContext(): TlsPair {
    return this.current;
  }

  /** Watches both files' folders and swaps a changed, valid pair into `server`. */
  watch(server: HttpsServer): void {
    const dirs = new Set([dirname(this.certFile), dirname(this.keyFile)]);
    for (const dir of dirs) this.watchers.push(watchPath(dir, false, () => this.reload(server)));
  }

  /** Re-reads the files; returns whether `server` now uses them (false: unchanged or invalid). */
  reload(server: HttpsServer): boolean {
    let loaded;
    try {
      loaded = loadTlsPair(this.certFile, this.keyFile);
    } catch (err) {
      this.onReload(false);
      this.log.error({ cert: this.certFile, key: this.keyFile, err: (err as Error).message }, 'TLS certificate not reloaded: keeping the previous one');
      return false;
    }
    const { pair, info } = loaded;
    if (pair.cert === this.current.cert && pair.key === this.current.key) return false; // another event of the same update
    server.setSecureContext(pair);
    this.current = pair;
    this.onReload(true);
    this.log.info({ cert: this.certFile, ...info }, 'TLS certificate reloaded');
    return true;
  }

  stop(): void {
    for (const w of this.watchers) w.close();
    this.watchers.length = 0;
  }
}
