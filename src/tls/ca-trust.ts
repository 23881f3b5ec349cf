// Which CAs a Connector's upstream TLS connections trust (SPEC section 7, the docs' "Custom
// CA Certificates"): the system roots, plus — when --enable-custom-ca-certs is on — every
// global CA Secret (labelled, in the proxy's namespace) and the Connector's own
// spec.caCertSecretRef Secret. The result carries a key naming the CA set, so upstream
// pools are shared by Connectors that trust the same CAs and replaced when a CA rotates.
import { createHash } from 'node:crypto';
import type { Connector, Secret } from '../types';

/** Label of a global CA Secret (value "true"). */
export const CA_CERT_LABEL = 'connectors.cpaas.io/ca-cert';
/**
 * Connector `spec.params` entry that turns certificate verification off for its tool
 * (value "true"). Explicit and per Connector; logged as a warning on every reload.
 */
export const INSECURE_SKIP_VERIFY_PARAM = 'insecureSkipVerify';

export interface TrustOptions {
  /** enable-custom-ca-certs (a function: the flag may change at run time): without it only the system roots are trusted (the docs' default). */
  readonly enabled: boolean | (() => boolean);
  /** The proxy's namespace: where global CA Secrets live. */
  readonly namespace: string;
}

/** What an upstream TLS connection verifies against. */
export interface UpstreamTrust {
  /** '' for the system roots only; else a digest of the extra CAs (and of the insecure switch). */
  readonly key: string;
  /** Extra PEM certificates on top of the system roots. */
  readonly ca: readonly string[];
  /** Certificate verification off (insecureSkipVerify). */
  readonly insecure: boolean;
}

export const SYSTEM_TRUST: UpstreamTrust = Object.freeze({ key: '', ca: Object.freeze([]) as readonly string[], insecure: false });

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const PEM_HEADER = '-----BEGIN ';

/**
 * The PEM certificates of a CA Secret. Only keys ending in `.crt`/`.pem` or values with a PEM
 * header are read, so a token put into the same Secret by mistake is never parsed or logged.
 */
export function caCertificatesOf(secret: Secret): string[] {
  const out: string[] = [];
  const keys = Object.keys(secret.data ?? {}).sort();
  for (const k of keys) {
    const value = Buffer.from(secret.data![k]!, 'base64').toString('utf8');
    if (!(k.endsWith('.crt') || k.endsWith('.pem') || value.includes(PEM_HEADER))) continue;
    for (const m of value.matchAll(PEM_CERT)) out.push(m[0]);
  }
  return out;
}

export function isGlobalCaSecret(s: Secret, namespace: string): boolean {
  return s.metadata.namespace === namespace && s.metadata.labels?.[CA_CERT_LABEL] === 'true';
}

export function insecureSkipVerify(c: Connector): boolean {
  return c.spec.params?.some((p) => p.name === INSECURE_SKIP_VERIFY_PARAM && p.value.trim().toLowerCase() === 'true') ?? false;
}

/** The CA-set digest: same certificates (in any order, duplicates aside) → same key. */
function trustOf(ca: readonly string[], insecure: boolean): UpstreamTrust {
  if (ca.length === 0 && !insecure) return SYSTEM_TRUST;
  const unique = [...new Set(ca.map((p) => p.trim()))].sort();
  const h = createHash('sha256');
  for (const p of unique) h.update(p).update('\0');
  if (insecure) h.update('insecure');
  return { key: h.digest('hex').slice(0, 32), ca: unique, insecure };
}

/**
 * Computes each Connector's trust. The global CA list is read once per change of the
 * Secrets (the index calls `invalidate()`), not once per Connector.
 */
export class TrustResolver {
  private global: readonly string[] | undefined;
  /** The global CA Secrets the cached list was read from. */
  private globalKeys = new Set<string>();

  constructor(
    private readonly options: TrustOptions,
    private readonly secrets: () => Iterable<Secret>,
    private readonly secret: (namespace: string, name: string) => Secret | undefined,
  ) {}

  invalidate(): void {
    this.global = undefined;
  }

  private on(): boolean {
    const e = this.options.enabled;
    return typeof e === 'function' ? e() : e;
  }

  /**
   * True when a change of Secret `key` (now `secret`, undefined when deleted) changes the
   * global CA list: it is, or was, a global CA Secret.
   */
  concerns(key: string, secret: Secret | undefined): boolean {
    if (!this.on()) return false;
    return this.globalKeys.has(key) || (secret !== undefined && isGlobalCaSecret(secret, this.options.namespace));
  }

  private globalCas(): readonly string[] {
    if (this.global === undefined) {
      const out: string[] = [];
      const keys = new Set<string>();
      for (const s of this.secrets()) {
        if (!isGlobalCaSecret(s, this.options.namespace)) continue;
        keys.add(`${s.metadata.namespace}/${s.metadata.name}`);
        out.push(...caCertificatesOf(s));
      }
      this.global = out;
      this.globalKeys = keys;
    }
    return this.global;
  }

  forConnector(c: Connector): UpstreamTrust {
    const insecure = insecureSkipVerify(c);
    if (!this.on()) return trustOf([], insecure);
    const ref = c.spec.caCertSecretRef?.name;
    const own = ref ? this.secret(c.metadata.namespace, ref) : undefined;
    const global = this.globalCas();
    return trustOf(own === undefined ? global : [...global, ...caCertificatesOf(own)], insecure);
  }
}

/** OpenSSL verification errors that mean "signed by a CA this proxy does not trust". */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_UNTRUSTED', 'CERT_SIGNATURE_FAILURE',
]);

/**
 * The sentence for a failed certificate check, or undefined when `code` is not one. An
 * untrusted issuer says how to trust it; other failures (expired, wrong name) say what failed.
 */
export function certificateProblem(code: string | undefined): string | undefined {
  if (code === undefined) return undefined;
  if (UNTRUSTED.has(code)) {
    return `presented a TLS certificate that is not trusted (${code}): put the CA that signed it (PEM) in a Secret in the Connector's namespace ` +
      `named by spec.caCertSecretRef.name, or in a Secret labelled ${CA_CERT_LABEL}="true" in the proxy's namespace, and run the proxy with --enable-custom-ca-certs`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `presented a TLS certificate that is not valid for the Connector's host name (${code})`;
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return `presented a TLS certificate outside its validity period (${code})`;
  return undefined;
}
