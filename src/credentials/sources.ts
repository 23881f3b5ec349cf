// The credential sources in use, one per Secret version and configuration. They outlive
// routes (any change to a Connector rebuilds its route; a token must survive that) and are
// replaced when their Secret changes: a rotated client secret or password gets a new source,
// and the old version's sources are dropped at once.

/** Sources kept at most; beyond it the least recently made go (they refetch on next use). */
const MAX_SOURCES = 4096;

export class CredentialSources {
  private readonly entries = new Map<string, unknown>();
  /** Secret (or anonymous owner) → the version its sources were made for. */
  private readonly versions = new Map<string, string>();

  /**
   * The source for `config` (everything that identifies the grant: URL, client, scope, CA
   * trust) made from `owner`'s Secret at `version`; `make` builds it on first use.
   */
  get<T>(owner: string, version: string, config: string, make: () => T): T {
    const key = `${owner}\u0000${version}\u0000${config}`;
    const found = this.entries.get(key);
    if (found !== undefined) return found as T;
    const before = this.versions.get(owner);
    if (before !== undefined && before !== version) this.drop(`${owner}\u0000${before}\u0000`);
    this.versions.set(owner, version);
    if (this.entries.size >= MAX_SOURCES) this.entries.delete(this.entries.keys().next().value!);
    const made = make();
    this.entries.set(key, made);
    return made;
  }

  get size(): number {
    return this.entries.size;
  }

  private drop(prefix: string): void {
    for (const k of this.entries.keys()) if (k.startsWith(prefix)) this.entries.delete(k);
  }
}
