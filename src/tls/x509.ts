// Certificates for the forward proxy's TLS interception: the proxy CA and the leaf
// certificates it signs per intercepted host. Built with @peculiar/x509 (X.509 structures)
// on Node's own WebCrypto (keys and signatures): no hand-written ASN.1, no openssl process.
// Keys stay in Node's crypto: the CA's signing key is a non-extractable CryptoKey, so no
// object handed around holds the key's bytes (a logged object cannot leak it).
import type * as X509Lib from '@peculiar/x509';
import { createPrivateKey, generateKeyPairSync, randomBytes, webcrypto, X509Certificate, type KeyObject } from 'node:crypto';
import { isIP, isIPv4 } from 'node:net';

type CryptoKey = webcrypto.CryptoKey;

let lib: typeof X509Lib | undefined;
/**
 * The library, loaded on first use: it costs ~200 ms and ~15 MiB at load, which a proxy that
 * never intercepts should not pay.
 */
function x509(): typeof X509Lib {
  if (lib === undefined) {
    require('reflect-metadata'); // @peculiar/x509 2.x resolves its parsers through tsyringe, which needs it
    lib = require('@peculiar/x509') as typeof X509Lib;
    lib.cryptoProvider.set(webcrypto as unknown as Parameters<typeof lib.cryptoProvider.set>[0]);
  }
  return lib;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Clocks of clients differ: certificates start this long before they were made. */
export const BACKDATE_MS = HOUR;
/** A generated proxy CA lasts this long (rotation is an edit of its Secret or files). */
export const CA_VALIDITY_MS = 10 * 365 * DAY;

/** A CA that can sign: its certificate (public) and its signing key (never exported). */
export interface SigningCa {
  /** PEM of the CA certificate, as clients trust it. */
  readonly certPem: string;
  /** Node's view of the certificate (subject, validity, fingerprint). */
  readonly cert: X509Certificate;
  /** SHA-256 fingerprint of the certificate: a rotated CA has another one. */
  readonly id: string;
  readonly notAfter: Date;
  /** @internal The signing key: non-extractable, used only by mintLeaf. */
  readonly signingKey: CryptoKey;
  /**
   * @internal The issuer side of the leaves: subject name, key identifier, algorithm. Made on
   * the first mint (memoized), so that loading a CA does not load the X.509 library.
   */
  readonly issuer: () => Promise<Issuer>;
}

interface Issuer { readonly name: X509Lib.Name; readonly keyId: X509Lib.AuthorityKeyIdentifierExtension; readonly algorithm: EcdsaParams | Algorithm }

interface Algorithm { readonly name: string; readonly hash?: string }
interface EcdsaParams { readonly name: 'ECDSA'; readonly hash: string }

/** A CA certificate or key that cannot be used; the message names `where` and what is wrong, never key bytes. */
export class CaMaterialError extends Error {
  override readonly name = 'CaMaterialError';
}

/** A fresh, self-signed CA: ECDSA P-256, ten years, `pathLen 0` (it signs leaves only). */
export async function generateCa(commonName: string, now = Date.now()): Promise<{ certPem: string; keyPem: string }> {
  const x = x509();
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: [{ CN: [commonName] }, { O: ['connectors-proxy'] }],
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + CA_VALIDITY_MS),
    signingAlgorithm: alg,
    keys,
    extensions: [
      new x.BasicConstraintsExtension(true, 0, true),
      new x.KeyUsagesExtension(x.KeyUsageFlags.keyCertSign | x.KeyUsageFlags.cRLSign | x.KeyUsageFlags.digitalSignature, true),
      await x.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }).toString();
  return { certPem: cert.toString('pem') + '\n', keyPem };
}

/**
 * Checks a CA certificate and key (PEM) and prepares them for signing. `where` names their
 * origin in errors (`Secret connectors-system/connectors-proxy-ca`, `file /x/ca.crt`):
 * not PEM, not a CA, expired, key not matching, unsupported key type.
 */
export async function loadSigningCa(certPem: string, keyPem: string, where: { cert: string; key: string }, now = Date.now()): Promise<SigningCa> {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    throw new CaMaterialError(`${where.cert}: not a PEM certificate`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    throw new CaMaterialError(`${where.key}: not a PEM private key`);
  }
  if (!cert.ca) throw new CaMaterialError(`${where.cert}: not a CA certificate (basicConstraints CA:TRUE is missing)`);
  if (!cert.checkPrivateKey(key)) throw new CaMaterialError(`${where.cert} and ${where.key}: the key does not belong to the certificate`);
  const notAfter = new Date(cert.validTo);
  if (notAfter.getTime() <= now) throw new CaMaterialError(`${where.cert}: expired on ${notAfter.toISOString()}`);
  const { algorithm, importParams } = signingAlgorithm(key, where.key);
  const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
  const signingKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, importParams, false, ['sign']);
  let issuer: Promise<Issuer> | undefined;
  const makeIssuer = async (): Promise<Issuer> => {
    const x = x509();
    const parsed = new x.X509Certificate(certPem);
    // Leaves name the CA's key the way the CA names it itself (RFC 5280 4.2.1.1).
    const ski = parsed.getExtension(x.SubjectKeyIdentifierExtension);
    const keyId = ski ? new x.AuthorityKeyIdentifierExtension(ski.keyId) : await x.AuthorityKeyIdentifierExtension.create(parsed.publicKey);
    // The subject as encoded, not re-encoded from text: Go clients (kubectl, crane, skopeo)
    // match a leaf's issuer to its CA byte for byte, and a CA made by openssl writes
    // UTF8String where the text form would come back as PrintableString.
    return { name: parsed.subjectName, keyId, algorithm };
  };
  return {
    certPem: certPem.trim() + '\n',
    cert,
    id: cert.fingerprint256,
    notAfter,
    signingKey,
    issuer: () => (issuer ??= makeIssuer()),
  };
}

function signingAlgorithm(key: KeyObject, where: string): { algorithm: Algorithm; importParams: { name: string; namedCurve?: string; hash?: string } } {
  if (key.asymmetricKeyType === 'ec') {
    const curve = { prime256v1: ['P-256', 'SHA-256'], secp384r1: ['P-384', 'SHA-384'], secp521r1: ['P-521', 'SHA-512'] }[key.asymmetricKeyDetails?.namedCurve ?? ''];
    if (curve === undefined) throw new CaMaterialError(`${where}: EC curve ${key.asymmetricKeyDetails?.namedCurve ?? '?'} is not supported (use P-256, P-384 or P-521)`);
    return { algorithm: { name: 'ECDSA', hash: curve[1] }, importParams: { name: 'ECDSA', namedCurve: curve[0] } };
  }
  if (key.asymmetricKeyType === 'rsa') {
    return { algorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, importParams: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } };
  }
  throw new CaMaterialError(`${where}: a ${key.asymmetricKeyType ?? 'unknown'} key cannot sign certificates here (use an EC or RSA key)`);
}

/** A leaf certificate and its key, both PEM: what tls.createSecureContext takes. */
export interface Leaf {
  readonly certPem: string;
  readonly keyPem: string;
  readonly notAfter: Date;
}

/**
 * A server certificate for `host` (a DNS name, or an IPv4/IPv6 address: then an IP SAN),
 * signed by `ca`: ECDSA P-256 key of its own, serverAuth, valid from `now - BACKDATE_MS`
 * for `validityMs`, never beyond the CA's own end.
 */
export async function mintLeaf(ca: SigningCa, host: string, validityMs: number, now = Date.now()): Promise<Leaf> {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const ip = isIP(host) !== 0;
  const notAfter = new Date(Math.min(now + validityMs, ca.notAfter.getTime()));
  const issuer = await ca.issuer();
  const x = x509();
  const cert = await x.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: [{ CN: [host] }],
    issuer: issuer.name,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter,
    signingAlgorithm: issuer.algorithm,
    publicKey: publicKey.export({ type: 'spki', format: 'der' }),
    signingKey: ca.signingKey,
    extensions: [
      new x.SubjectAlternativeNameExtension([ip ? { type: 'ip', value: ipForSan(host) } : { type: 'dns', value: host }], false),
      new x.BasicConstraintsExtension(false, undefined, true),
      new x.KeyUsagesExtension(x.KeyUsageFlags.digitalSignature, true),
      new x.ExtendedKeyUsageExtension([x.ExtendedKeyUsage.serverAuth]),
      issuer.keyId,
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), notAfter };
}

/** The library's IPv6 parser knows only hex groups: `::ffff:1.2.3.4` → `::ffff:102:304`. */
function ipForSan(ip: string): string {
  const m = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
  if (!m || !isIPv4(m[2]!)) return ip;
  const b = m[2]!.split('.').map(Number);
  return `${m[1]}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
}

/** 16 random bytes, first bit clear: a positive serial number (RFC 5280 4.1.2.2). */
function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
}
