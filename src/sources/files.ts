// Embedded mode's source: ConnectorClasses, Connectors and Secrets from a folder of YAML
// manifests, reloaded on change. A bad edit keeps the last good state and logs why.
import { readdirSync, readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { Logger } from 'pino';
import type { Resource } from '../types';
import type { ObjectStore } from './store';
import { ConfigError, validateResource } from './validate';

function manifestFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    // Kubernetes ConfigMap/Secret volumes keep the real files in `..data` folders.
    if (entry.name.startsWith('.')) continue;
    const p = join(dir, entry.name);
    if (entry.isDirectory() || (entry.isSymbolicLink() && statSync(p).isDirectory())) out.push(...manifestFiles(p));
    else if (/\.ya?ml$/.test(entry.name)) out.push(p);
  }
  return out.sort();
}

/** Reads and checks every manifest under `dir`; throws one ConfigError listing all problems. */
export function loadManifests(dir: string): Resource[] {
  const objects: Resource[] = [];
  const errors: string[] = [];
  const seen = new Map<string, string>();
  let files: string[];
  try {
    files = manifestFiles(dir);
  } catch (err) {
    throw new ConfigError(`${dir}: cannot read the manifests folder: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  for (const file of files) {
    const name = relative(process.cwd(), file) || file;
    const docs = parseAllDocuments(readFileSync(file, 'utf8'));
    if (!Array.isArray(docs)) continue; // an empty stream
    docs.forEach((doc, i) => {
      const where = `${name} (document ${i + 1})`;
      if (doc.errors.length > 0) {
        errors.push(`${where}: not valid YAML: ${doc.errors[0]!.message}`);
        return;
      }
      const value: unknown = doc.toJS();
      if (value === null || value === undefined) return; // `---` separators, comments only
      try {
        const obj = validateResource(value, where);
        const id = `${obj.kind} ${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
        const first = seen.get(id);
        if (first !== undefined) errors.push(`${where}: ${id} is also defined in ${first}`);
        seen.set(id, where);
        objects.push(obj);
      } catch (err) {
        errors.push((err as Error).message);
      }
    });
  }
  if (errors.length > 0) throw new ConfigError(errors.join('\n'));
  return objects;
}

/**
 * Calls `onChange` (debounced) when anything under `path` changes. Watches the folder, not
 * the file, so editors' rename-on-save and Kubernetes' symlink swaps are seen.
 * `recursive` watches every sub-folder with a watcher of its own: Node 20's recursive
 * fs.watch on Linux watches files, and loses a file once it was replaced by a rename (the
 * second rename-on-save, or any write after it, went unseen). Closing the returned watcher
 * closes the sub-folders' watchers too.
 */
export function watchPath(path: string, recursive: boolean, onChange: () => void, debounceMs = 150, only?: (name: string) => boolean): FSWatcher {
  let timer: NodeJS.Timeout | undefined;
  const subs = new Map<string, FSWatcher>();
  const fire = (): void => {
    if (recursive) watchFolders(path, subs, listener);
    onChange();
  };
  const listener = (_event: string, name: string | null): void => {
    if (only !== undefined && name !== null && !only(name)) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(fire, debounceMs);
  };
  const w = watch(path, { persistent: false }, listener);
  w.on('error', () => { /* the folder vanished; the next reload reports it */ });
  if (recursive) {
    watchFolders(path, subs, listener);
    w.once('close', () => { for (const s of subs.values()) s.close(); subs.clear(); });
  }
  return w;
}

/** Adds a watcher for each sub-folder of `root` not watched yet and drops those of removed ones. */
function watchFolders(root: string, subs: Map<string, FSWatcher>, listener: (event: string, name: string | null) => void): void {
  const seen = new Set<string>();
  const walk = (dir: string): void => {
    let entries;
    try { entries = readdirSync(dir, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      if (!e.isDirectory() || e.name.startsWith('.')) continue; // `..data` swaps show in the parent
      const p = join(dir, e.name);
      seen.add(p);
      if (!subs.has(p)) {
        try {
          const w = watch(p, { persistent: false }, listener);
          w.on('error', () => undefined);
          subs.set(p, w);
        } catch { continue; }
      }
      walk(p);
    }
  };
  walk(root);
  for (const [p, w] of subs) if (!seen.has(p)) { w.close(); subs.delete(p); }
}

export class FileSource {
  private watcher: FSWatcher | undefined;

  constructor(private readonly dir: string, private readonly index: ObjectStore, private readonly log: Logger) {}

  /** First load: a config error here is fatal, so it propagates. */
  start(watchForChanges = true): void {
    this.apply(loadManifests(this.dir));
    this.index.markSynced();
    if (watchForChanges) this.watcher = watchPath(this.dir, true, () => this.reload());
  }

  reload(): boolean {
    try {
      this.apply(loadManifests(this.dir));
      return true;
    } catch (err) {
      this.log.error({ dir: this.dir, err: (err as Error).message }, 'manifests not reloaded: keeping the last good state');
      return false;
    }
  }

  private apply(objects: Resource[]): void {
    this.index.replaceAll(objects);
    const c = this.index.counts();
    this.log.info({ dir: this.dir, ...c }, 'manifests loaded');
  }

  stop(): void {
    this.watcher?.close();
  }
}
