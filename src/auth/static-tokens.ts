// Embedded mode's authenticator: a YAML file mapping tokens to a user and the Connectors
// that user may use. Stands in for TokenReview + SubjectAccessReview without a cluster; its
// optional `apis` rules stand in for RBAC rules on `connectors/apis/...` (the Connectors API
// gateway with enable-connector-apis-permissions), matched as RBAC matches them: a resource
// exactly or `*`, a verb exactly or `*`.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { ConfigError } from '../sources/validate';
import { UNAUTHENTICATED, apiResources, type ApiPermission, type AuthDecision, type ClientAuthenticator, type ConnectorRef } from './authenticator';

interface TokenEntry {
  readonly user: string;
  /** From `*`: every Connector. */
  readonly everything: boolean;
  /** From `ns/*`. */
  readonly namespaces: ReadonlySet<string>;
  /** From `ns/name`: namespace → names. */
  readonly names: ReadonlyMap<string, ReadonlySet<string>>;
  /** `apis` rules: `connectors/apis/...` resources and the verbs allowed on them. */
  readonly apis: readonly ApiRule[];
  readonly allowed: AuthDecision;
  readonly forbidden: AuthDecision;
}

interface ApiRule {
  readonly resources: ReadonlySet<string>;
  readonly verbs: ReadonlySet<string>;
}

export class StaticTokenAuthenticator implements ClientAuthenticator {
  private tokens = new Map<string, TokenEntry>();

  constructor(readonly file: string) {}

  /** Reads the file; throws ConfigError naming the file and entry on bad input. */
  load(): number {
    this.tokens = parseTokenFile(readFileSync(this.file, 'utf8'), this.file);
    return this.tokens.size;
  }

  check(token: string, ref: ConnectorRef): AuthDecision {
    const entry = this.tokens.get(token);
    if (entry === undefined) return UNAUTHENTICATED;
    if (entry.everything || entry.namespaces.has(ref.namespace) || entry.names.get(ref.namespace)?.has(ref.name)) return entry.allowed;
    return entry.forbidden;
  }

  authenticate(token: string): AuthDecision {
    return this.tokens.get(token)?.allowed ?? UNAUTHENTICATED;
  }

  checkApi(token: string, ref: ConnectorRef, permission: ApiPermission | undefined): AuthDecision {
    const d = this.check(token, ref);
    if (!d.allowed || permission === undefined) return d;
    const entry = this.tokens.get(token)!;
    const resources = apiResources(permission);
    const ok = entry.apis.some((r) => (r.verbs.has('*') || r.verbs.has(permission.verb)) && (r.resources.has('*') || resources.some((x) => r.resources.has(x))));
    if (ok) return d;
    return { allowed: false, status: 403, user: entry.user, reason: `user "${entry.user}" may not ${permission.verb} ${resources.join(' nor ')} (token file: apis)` };
  }
}

const PATTERN = /^(\*|\*\/\*|[a-z0-9-]+\/(\*|[a-z0-9]([-a-z0-9.]*[a-z0-9])?))$/;
const API_VERBS = new Set(['get', 'create', 'update', 'delete', 'patch', '*']);

/** The `apis` rules of a token entry: `[{resources: ["connectors/apis/<class>[<template>]" | "*"], verbs: [...]}]`. */
function parseApiRules(raw: unknown, where: string): ApiRule[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw new ConfigError(`${where}.apis: must be a list of {resources, verbs}`);
  return raw.map((r: unknown, i: number) => {
    const rule = r as { resources?: unknown; verbs?: unknown } | null;
    const at = `${where}.apis[${i}]`;
    if (!Array.isArray(rule?.resources) || rule.resources.length === 0) throw new ConfigError(`${at}.resources: must be a non-empty list of "connectors/apis/<class>[<path template>]" or "*"`);
    rule.resources.forEach((x: unknown, j: number) => {
      if (typeof x !== 'string' || (x !== '*' && !/^connectors\/apis\/[^/\s]+(\/\S*)?$/.test(x))) {
        throw new ConfigError(`${at}.resources[${j}]: ${JSON.stringify(x)} is not "connectors/apis/<class>", "connectors/apis/<class>/<path template>" or "*"`);
      }
    });
    if (!Array.isArray(rule.verbs) || rule.verbs.length === 0) throw new ConfigError(`${at}.verbs: must be a non-empty list of get, create, update, delete, patch or "*"`);
    rule.verbs.forEach((v: unknown, j: number) => {
      if (typeof v !== 'string' || !API_VERBS.has(v)) throw new ConfigError(`${at}.verbs[${j}]: ${JSON.stringify(v)} is not get, create, update, delete, patch or "*"`);
    });
    return { resources: new Set(rule.resources as string[]), verbs: new Set(rule.verbs as string[]) };
  });
}

export function parseTokenFile(text: string, file: string): Map<string, TokenEntry> {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new ConfigError(`${file}: not valid YAML: ${(err as Error).message}`);
  }
  const list = (doc as { tokens?: unknown } | null)?.tokens;
  if (!Array.isArray(list)) throw new ConfigError(`${file}: tokens: must be a list of {token, user, connectors}`);
  const out = new Map<string, TokenEntry>();
  list.forEach((raw: unknown, i: number) => {
    const where = `${file}: tokens[${i}]`;
    const e = raw as { token?: unknown; user?: unknown; connectors?: unknown; apis?: unknown };
    // Never echo the token itself in an error: it is a credential.
    if (typeof e?.token !== 'string' || e.token.length < 8) throw new ConfigError(`${where}.token: must be a string of at least 8 characters`);
    if (/[\s:]/.test(e.token)) throw new ConfigError(`${where}.token: must not contain white space or ':'`);
    if (typeof e.user !== 'string' || e.user === '') throw new ConfigError(`${where}.user: must be a non-empty string`);
    if (!Array.isArray(e.connectors)) throw new ConfigError(`${where}.connectors: must be a list of "namespace/name", "namespace/*" or "*"`);
    let everything = false;
    const namespaces = new Set<string>();
    const names = new Map<string, Set<string>>();
    e.connectors.forEach((p: unknown, j: number) => {
      if (typeof p !== 'string' || !PATTERN.test(p)) {
        throw new ConfigError(`${where}.connectors[${j}]: ${JSON.stringify(p)} is not "namespace/name", "namespace/*" or "*"`);
      }
      if (p === '*' || p === '*/*') { everything = true; return; }
      const [ns, name] = p.split('/') as [string, string];
      if (name === '*') namespaces.add(ns);
      else (names.get(ns) ?? names.set(ns, new Set()).get(ns)!).add(name);
    });
    const apis = parseApiRules(e.apis, where);
    if (out.has(e.token)) throw new ConfigError(`${where}.token: the same token appears twice`);
    const user = e.user;
    out.set(e.token, {
      user,
      everything,
      namespaces,
      names,
      apis,
      allowed: Object.freeze({ allowed: true, user }),
      forbidden: Object.freeze({ allowed: false, status: 403, reason: `user "${user}" may not use this connector`, user }),
    });
  });
  return out;
}
