// The in-memory object store every source feeds (the manifest folder, or Kubernetes
// informers) and everything else reads: ConnectorClasses, Connectors and the Secrets they
// reference, plus reference indexes (which Connectors use Secret S, which belong to class C),
// so a change reaches exactly the readers it concerns. Readers never call the API server.
import { objectKey, type Connector, type ConnectorClass, type ObjectKey, type Resource, type Secret } from '../types';

/** What changed: one object, or everything (a reload or relist). */
export type StoreChange =
  | { readonly kind: 'ConnectorClass' | 'Connector' | 'Secret'; readonly key: string }
  | { readonly kind: 'all' };

const ALL: StoreChange = Object.freeze({ kind: 'all' });

export class ObjectStore {
  private readonly classes = new Map<string, ConnectorClass>();
  private readonly connectors = new Map<ObjectKey, Connector>();
  private readonly secrets = new Map<ObjectKey, Secret>();
  /** Secret → the Connectors that reference it (auth secretRef or caCertSecretRef). */
  private readonly secretUsers = new Map<ObjectKey, Set<ObjectKey>>();
  /** ConnectorClass → its Connectors. */
  private readonly classUsers = new Map<string, Set<ObjectKey>>();
  private readonly listeners: Array<(change: StoreChange) => void> = [];
  private synced = false;

  /** True once the source delivered its first complete state. */
  get ready(): boolean {
    return this.synced;
  }

  markSynced(): void {
    this.synced = true;
  }

  /** Called after every change; `change` says what changed. */
  onChange(fn: (change: StoreChange) => void): void {
    this.listeners.push(fn);
  }

  upsert(obj: Resource): void {
    switch (obj.kind) {
      case 'ConnectorClass': {
        const before = this.classes.get(obj.metadata.name);
        this.classes.set(obj.metadata.name, obj);
        // Our own condition writes change nothing a reader uses.
        if (before !== undefined && sameClass(before, obj)) return;
        return this.notify({ kind: 'ConnectorClass', key: obj.metadata.name });
      }
      case 'Connector': {
        const key = objectKey(obj.metadata.namespace, obj.metadata.name);
        const before = this.connectors.get(key);
        this.connectors.set(key, obj);
        // A status write (ours, or the probes') changes no route: keep the 10,000 others.
        if (before !== undefined && sameSpec(before, obj)) return;
        if (before !== undefined) this.unindex(key, before);
        this.index(key, obj);
        return this.notify({ kind: 'Connector', key });
      }
      case 'Secret': {
        const key = objectKey(obj.metadata.namespace, obj.metadata.name);
        const before = this.secrets.get(key);
        this.secrets.set(key, obj);
        if (before !== undefined && sameSecret(before, obj)) return;
        return this.notify({ kind: 'Secret', key });
      }
    }
  }

  remove(kind: Resource['kind'], namespace: string, name: string): void {
    if (kind === 'ConnectorClass') {
      if (!this.classes.delete(name)) return;
      return this.notify({ kind, key: name });
    }
    const key = objectKey(namespace, name);
    if (kind === 'Connector') {
      const before = this.connectors.get(key);
      if (before === undefined) return;
      this.connectors.delete(key);
      this.unindex(key, before);
    } else if (!this.secrets.delete(key)) {
      return;
    }
    this.notify({ kind, key });
  }

  /** Swaps in a whole new state at once (the file source's reload). */
  replaceAll(objects: readonly Resource[]): void {
    this.classes.clear();
    this.connectors.clear();
    this.secrets.clear();
    this.secretUsers.clear();
    this.classUsers.clear();
    for (const o of objects) this.put(o);
    this.notify(ALL);
  }

  /** Swaps in every object of one kind at once (a watcher's list or relist). */
  replaceKind(kind: Resource['kind'], objects: readonly Resource[]): void {
    if (kind === 'Connector') {
      this.connectors.clear();
      this.secretUsers.clear();
      this.classUsers.clear();
    } else {
      (kind === 'ConnectorClass' ? this.classes : this.secrets).clear();
    }
    for (const o of objects) if (o.kind === kind) this.put(o);
    this.notify(ALL);
  }

  connector(namespace: string, name: string): Connector | undefined {
    return this.connectors.get(objectKey(namespace, name));
  }

  connectorClass(name: string): ConnectorClass | undefined {
    return this.classes.get(name);
  }

  secret(namespace: string, name: string): Secret | undefined {
    return this.secrets.get(objectKey(namespace, name));
  }

  allClasses(): IterableIterator<ConnectorClass> {
    return this.classes.values();
  }

  allConnectors(): IterableIterator<Connector> {
    return this.connectors.values();
  }

  allSecrets(): IterableIterator<Secret> {
    return this.secrets.values();
  }

  /** The Connectors (keys) that reference Secret `key` as auth or CA Secret. */
  usersOfSecret(key: ObjectKey): ReadonlySet<ObjectKey> {
    return this.secretUsers.get(key) ?? EMPTY;
  }

  /** The Connectors (keys) of ConnectorClass `name`. */
  connectorsOfClass(name: string): ReadonlySet<ObjectKey> {
    return this.classUsers.get(name) ?? EMPTY;
  }

  counts(): { classes: number; connectors: number; secrets: number } {
    return { classes: this.classes.size, connectors: this.connectors.size, secrets: this.secrets.size };
  }

  private put(o: Resource): void {
    if (o.kind === 'ConnectorClass') {
      this.classes.set(o.metadata.name, o);
    } else if (o.kind === 'Connector') {
      const key = objectKey(o.metadata.namespace, o.metadata.name);
      this.connectors.set(key, o);
      this.index(key, o);
    } else {
      this.secrets.set(objectKey(o.metadata.namespace, o.metadata.name), o);
    }
  }

  private index(key: ObjectKey, c: Connector): void {
    add(this.classUsers, c.spec.connectorClassName, key);
    for (const s of secretsOf(c)) add(this.secretUsers, s, key);
  }

  private unindex(key: ObjectKey, c: Connector): void {
    remove(this.classUsers, c.spec.connectorClassName, key);
    for (const s of secretsOf(c)) remove(this.secretUsers, s, key);
  }

  private notify(change: StoreChange): void {
    for (const fn of this.listeners) fn(change);
  }
}

const EMPTY: ReadonlySet<ObjectKey> = new Set();

/** The Secrets a Connector names: its auth Secret (any namespace) and its CA Secret. */
export function secretsOf(c: Connector): ObjectKey[] {
  const out: ObjectKey[] = [];
  const ns = c.metadata.namespace;
  const auth = c.spec?.auth?.secretRef;
  if (auth?.name) out.push(objectKey(auth.namespace || ns, auth.name));
  const ca = c.spec?.caCertSecretRef?.name;
  if (ca) out.push(objectKey(ns, ca));
  return out;
}

function add<K>(m: Map<K, Set<ObjectKey>>, k: K, v: ObjectKey): void {
  let s = m.get(k);
  if (s === undefined) m.set(k, s = new Set());
  s.add(v);
}

function remove<K>(m: Map<K, Set<ObjectKey>>, k: K, v: ObjectKey): void {
  const s = m.get(k);
  if (s === undefined) return;
  s.delete(v);
  if (s.size === 0) m.delete(k);
}

/**
 * True when two versions of a Connector build the same route. `generation` moves only with
 * the spec (the status is a subresource); manifests have no generation, so compare specs.
 */
function sameSpec(a: Connector, b: Connector): boolean {
  const ga = a.metadata.generation;
  if (ga !== undefined && ga === b.metadata.generation) return true;
  return JSON.stringify(a.spec) === JSON.stringify(b.spec);
}

/** True when two versions of a class build the same routes (spec and annotations). */
function sameClass(a: ConnectorClass, b: ConnectorClass): boolean {
  if (JSON.stringify(a.metadata.annotations ?? {}) !== JSON.stringify(b.metadata.annotations ?? {})) return false;
  const ga = a.metadata.generation;
  if (ga !== undefined && ga === b.metadata.generation) return true;
  return JSON.stringify(a.spec) === JSON.stringify(b.spec);
}

/** True when two versions of a Secret hold the same values, type and labels (labels mark global CAs). */
function sameSecret(a: Secret, b: Secret): boolean {
  return a.type === b.type && JSON.stringify(a.data ?? {}) === JSON.stringify(b.data ?? {}) &&
    JSON.stringify(a.metadata.labels ?? {}) === JSON.stringify(b.metadata.labels ?? {});
}
