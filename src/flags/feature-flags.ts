// Feature flags: the keys of the docs' `connectors-config` ConfigMap (overview/feature_flags.mdx),
// each also a CLI flag and a PROXY_* environment variable. A value given explicitly on the
// command line or in the environment wins; otherwise the ConfigMap's (watched, so an edit
// applies without a restart); otherwise the default. Reading a flag is one property read, so
// the request path may ask on every request; parts that cache something derived from a flag
// (auth decisions, upstream trust) subscribe to changes instead of polling.
//
// Adding a flag: one row in FLAG_DEFINITIONS (the CLI option, environment variable, ConfigMap
// key, /status row and README row all follow from it; test/deploy.test.ts checks the README).
import type { Logger } from 'pino';

export interface FlagDefinition {
  /** The ConfigMap key, also the CLI flag `--<key>` and the variable `PROXY_<KEY>`. */
  readonly key: string;
  readonly default: boolean;
  /** What turning it on does in this proxy (or that nothing here reads it). */
  readonly description: string;
}

export const FLAG_DEFINITIONS = [
  { key: 'enable-connector-apis-permissions', default: false, description: 'Connectors API gateway: also check connectors/apis permissions per method' },
  { key: 'enable-connector-apis-write-passthrough', default: false, description: 'Connectors API gateway: pass write methods (POST, PUT, PATCH, DELETE) to the tool instead of 405' },
  { key: 'enable-connector-proxy-permissions', default: false, description: 'also require `get` on the connectors/proxy subresource' },
  { key: 'enable-connectors-approval', default: false, description: 'approval workflow of the docs (not read by this proxy)' },
  { key: 'enable-multi-connector', default: false, description: 'render configurations of several Connectors at once' },
  { key: 'enable-custom-ca-certs', default: false, description: 'trust private CAs for HTTPS tools: the Connector\'s spec.caCertSecretRef Secret and the Secrets labelled connectors.cpaas.io/ca-cert="true" in --namespace, on top of the system roots' },
  { key: 'enable-pod-image-pull-via-connector', default: false, description: 'the docs\' Pod image rewrite webhook (not read by this proxy)' },
  { key: 'enable-connect-tunnels', default: true, description: 'https_proxy: relay CONNECT to targets that are no listed Connector\'s https origin as plain TCP tunnels (never intercepted, no credentials); off: 403' },
] as const satisfies readonly FlagDefinition[];

export type FeatureFlagName = (typeof FLAG_DEFINITIONS)[number]['key'];

/** Where an effective value came from. */
export type FlagOrigin = 'default' | 'configmap' | 'cli' | 'env';

/** A value set on the command line or in the environment (wins over the ConfigMap). */
export interface ExplicitFlag {
  readonly value: boolean;
  readonly origin: 'cli' | 'env';
}

export interface FlagState {
  readonly name: FeatureFlagName;
  readonly enabled: boolean;
  readonly origin: FlagOrigin;
  /** The ConfigMap's text for the key, when it has one (also when overridden or invalid). */
  readonly configMapValue?: string;
  /** Why the ConfigMap's text is not used (not "true"/"false"): the last good value is kept. */
  readonly problem?: string;
  readonly description: string;
}

/** `--enable-custom-ca-certs`'s environment variable: `PROXY_ENABLE_CUSTOM_CA_CERTS`. */
export function flagEnvVar(key: string): string {
  return `PROXY_${key.toUpperCase().replace(/-/g, '_')}`;
}

/** "true"/"false" as the docs' webhook accepts them (case and surrounding blanks aside), else undefined. */
export function parseFlagValue(text: string): boolean | undefined {
  const t = text.trim().toLowerCase();
  return t === 'true' ? true : t === 'false' ? false : undefined;
}

const NAMES = new Set<string>(FLAG_DEFINITIONS.map((d) => d.key));
export const isFeatureFlagName = (key: string): key is FeatureFlagName => NAMES.has(key);

type Listener = (name: FeatureFlagName, enabled: boolean) => void;

export class FeatureFlags {
  /** The effective values: what `enabled()` reads (a plain object: one property load). */
  private readonly values = {} as Record<FeatureFlagName, boolean>;
  private readonly origins = {} as Record<FeatureFlagName, FlagOrigin>;
  /** The last good value of each key the ConfigMap has. */
  private readonly fromConfigMap = new Map<FeatureFlagName, boolean>();
  private readonly configMapText = new Map<FeatureFlagName, string>();
  private readonly problems = new Map<FeatureFlagName, string>();
  private readonly warnedUnknown = new Set<string>();
  private readonly listeners: Listener[] = [];

  constructor(
    private readonly explicit: Partial<Record<FeatureFlagName, ExplicitFlag>> = {},
    private readonly log?: Logger,
  ) {
    for (const d of FLAG_DEFINITIONS) this.compute(d);
  }

  enabled(name: FeatureFlagName): boolean {
    return this.values[name];
  }

  origin(name: FeatureFlagName): FlagOrigin {
    return this.origins[name];
  }

  /** Calls `fn` after a flag's effective value changed; returns the unsubscribe function. */
  onChange(fn: Listener): () => void {
    this.listeners.push(fn);
    return () => {
      const i = this.listeners.indexOf(fn);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /** Every flag, its effective value and where it came from (the ops `/status`). */
  snapshot(): FlagState[] {
    return FLAG_DEFINITIONS.map((d) => ({
      name: d.key,
      enabled: this.values[d.key],
      origin: this.origins[d.key],
      ...(this.configMapText.has(d.key) ? { configMapValue: this.configMapText.get(d.key) } : {}),
      ...(this.problems.has(d.key) ? { problem: this.problems.get(d.key) } : {}),
      description: d.description,
    }));
  }

  /**
   * The ConfigMap's data (undefined: there is none, so its values go back to the defaults).
   * A value that is not "true"/"false" is logged with the ConfigMap, key and text, and the
   * key keeps its last good value; unknown keys are logged once and ignored.
   */
  applyConfigMap(data: Readonly<Record<string, string>> | undefined, where: string): void {
    for (const key of Object.keys(data ?? {})) {
      if (isFeatureFlagName(key) || this.warnedUnknown.has(key)) continue;
      this.warnedUnknown.add(key);
      this.log?.warn({ configMap: where, key }, 'not a feature flag this proxy knows: ignored');
    }
    for (const d of FLAG_DEFINITIONS) {
      const raw = data?.[d.key];
      if (raw === undefined) {
        this.fromConfigMap.delete(d.key);
        this.configMapText.delete(d.key);
        this.problems.delete(d.key);
      } else {
        this.configMapText.set(d.key, raw);
        const v = parseFlagValue(raw);
        if (v === undefined) {
          const kept = this.fromConfigMap.get(d.key) ?? d.default;
          const problem = `${where}: data.${d.key}: ${JSON.stringify(raw.slice(0, 64))} is not "true" or "false"; keeping ${kept}`;
          if (this.problems.get(d.key) !== problem) {
            this.log?.error({ configMap: where, key: d.key, value: raw.slice(0, 64), kept }, 'feature flag value is not "true" or "false": keeping the last good value');
          }
          this.problems.set(d.key, problem);
        } else {
          this.fromConfigMap.set(d.key, v);
          this.problems.delete(d.key);
        }
      }
      this.compute(d);
    }
  }

  private compute(d: (typeof FLAG_DEFINITIONS)[number]): void {
    const name = d.key;
    const e = this.explicit[name];
    const cm = this.fromConfigMap.get(name);
    const [value, origin]: [boolean, FlagOrigin] = e !== undefined ? [e.value, e.origin] : cm !== undefined ? [cm, 'configmap'] : [d.default, 'default'];
    const before = this.values[name];
    this.values[name] = value;
    this.origins[name] = origin;
    if (before === undefined || before === value) return;
    this.log?.info({ flag: name, enabled: value, origin }, 'feature flag changed');
    for (const fn of [...this.listeners]) {
      try {
        fn(name, value);
      } catch (err) {
        this.log?.error({ flag: name, err: (err as Error).message }, 'feature flag listener failed');
      }
    }
  }
}
