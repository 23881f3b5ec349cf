// Which token scopes an OCI distribution request needs (distribution's token spec), and how
// the scopes a registry's challenge names are merged into them.
import { parseChallenge } from '../http/challenge';

/**
 * The token scopes a registry request needs (distribution's rules): GET/HEAD pull, DELETE
 * delete, other methods pull and push on the repository; a cross-repository mount
 * (`?mount=<digest>&from=<repo>`) pull on `from` too; `/v2/_catalog` the catalog. `[]` for
 * the `/v2/` base and paths that name no repository. `path` is relative to the registry
 * address (starts with `/v2`).
 */
export function scopesFor(method: string, path: string): string[] {
  const q = path.indexOf('?');
  const p = q < 0 ? path : path.slice(0, q);
  if (!p.startsWith('/v2/')) return [];
  const segs = p.slice(4).split('/');
  const n = segs.length;
  if (n === 1 && segs[0] === '_catalog') return ['registry:catalog:*'];
  let nameEnd = -1;
  if (n >= 4 && segs[n - 3] === 'blobs' && segs[n - 2] === 'uploads') nameEnd = n - 3;
  else if (n >= 3 && segs[n - 2] === 'blobs' && segs[n - 1] === 'uploads') nameEnd = n - 2; // `.../blobs/uploads` without the slash
  else if (n >= 3 && (segs[n - 2] === 'manifests' || segs[n - 2] === 'blobs' || segs[n - 2] === 'referrers' || (segs[n - 2] === 'tags' && segs[n - 1] === 'list'))) nameEnd = n - 2;
  if (nameEnd <= 0) return [];
  const name = segs.slice(0, nameEnd).join('/');
  const actions = method === 'GET' || method === 'HEAD' ? 'pull' : method === 'DELETE' ? 'delete' : 'pull,push';
  const scopes = [`repository:${name}:${actions}`];
  if (q >= 0 && method === 'POST') {
    const query = new URLSearchParams(path.slice(q + 1));
    const from = query.get('from');
    if (from !== null && from !== '' && from !== name && query.has('mount')) scopes.push(`repository:${from}:pull`);
  }
  return scopes;
}

const ACTION_ORDER: Record<string, number> = { pull: 0, push: 1, delete: 2 };

/**
 * `a` plus the scopes of `b`, actions of the same resource joined (`repository:x:push,pull`
 * from a challenge is `repository:x:pull,push` already asked): one cache key per need.
 */
export function mergeScopes(a: readonly string[], b: readonly string[]): string[] {
  const byResource = new Map<string, Set<string>>();
  for (const s of [...a, ...b]) {
    const last = s.lastIndexOf(':');
    if (s === '' || last <= 0) continue;
    const resource = s.slice(0, last);
    let actions = byResource.get(resource);
    if (actions === undefined) byResource.set(resource, actions = new Set());
    for (const x of s.slice(last + 1).split(',')) if (x !== '') actions.add(x);
  }
  const rank = (x: string): number => ACTION_ORDER[x] ?? 3;
  return [...byResource].map(([r, actions]) => `${r}:${[...actions].sort((x, y) => rank(x) - rank(y) || x.localeCompare(y)).join(',')}`);
}

/**
 * The scopes to ask for after the registry refused a request: `scopes` plus the scope its
 * Bearer challenge names (e.g. a mount's `from` repository).
 */
export function scopesAfterChallenge(scopes: readonly string[], challenge: string | undefined): string[] {
  const parsed = challenge === undefined ? undefined : parseChallenge(challenge);
  const wanted = parsed?.scheme === 'bearer' ? parsed.params.get('scope') : undefined;
  return wanted === undefined ? [...scopes] : mergeScopes(scopes, wanted.split(' '));
}

/** The scopes of a request whose path is relative to the Connector address (`basePath` stripped). */
export function requestScopes(method: string, path: string, basePath: string): string[] {
  const p = basePath !== '' && path.startsWith(basePath) ? path.slice(basePath.length) : path;
  return scopesFor(method, p);
}
