// `spec.api.openapi` compiled once per ConnectorClass version into a path-template tree:
// which template an API path matches and, per method, where it goes (`x-provider-type`:
// `proxy` to the tool, `api` to the class's API service) and at which address
// (`x-openapi-address`). Docs: connectorclass.mdx "OpenAPI Description", connector_api.mdx.
//
// Matching follows OpenAPI 3.0: a `{param}` is one whole path segment (never a `/`; an
// encoded `%2F` stays inside its segment, as GitLab's `projects/group%2Fapp` needs),
// concrete segments win over templated ones, and the request is matched without its query.
// Nothing is compiled per request: the tree is walked segment by segment.
import type { OpenApiDocument } from '../types';

export type ProviderType = 'proxy' | 'api';
/** The OpenAPI operation keys the gateway routes (HEAD and OPTIONS use `get`, as the docs say). */
export type OperationKey = 'get' | 'put' | 'post' | 'delete' | 'patch';
const OPERATION_KEYS: readonly OperationKey[] = ['get', 'put', 'post', 'delete', 'patch'];

export interface Operation {
  readonly provider: ProviderType;
  /** `x-openapi-address`: an `addressExtensions` name or an http(s) URL; undefined: `spec.address`. */
  readonly address: string | undefined;
}

export interface PathMatch {
  /** The template as declared (`/api/v4/projects/{id}`): the path form of `connectors/apis`. */
  readonly template: string;
  readonly operations: ReadonlyMap<OperationKey, Operation>;
}

interface Node {
  literal?: Map<string, Node>;
  /** Segments mixing text and parameters (`{name}.json`), tried in declaration order. */
  partial?: Array<{ readonly re: RegExp; readonly node: Node }>;
  param?: Node;
  match?: PathMatch;
}

export type Compiled = { readonly matcher: OpenApiMatcher } | { readonly problem: string };

export class OpenApiMatcher {
  private constructor(private readonly root: Node, readonly size: number) {}

  /**
   * Compiles `doc` (`spec.api.openapi`, unvalidated input). A malformed part is a problem
   * naming the field: the whole class's API is refused rather than half routed.
   */
  static compile(doc: OpenApiDocument | undefined): Compiled {
    const root: Node = {};
    if (doc === undefined || doc === null) return { matcher: new OpenApiMatcher(root, 0) };
    if (typeof doc !== 'object' || Array.isArray(doc)) return { problem: 'spec.api.openapi: must be an OpenAPI document (an object)' };
    const paths = doc.paths;
    if (paths === undefined || paths === null) return { matcher: new OpenApiMatcher(root, 0) };
    if (typeof paths !== 'object' || Array.isArray(paths)) return { problem: 'spec.api.openapi.paths: must be an object of path templates' };
    let size = 0;
    for (const [template, item] of Object.entries(paths)) {
      const field = `spec.api.openapi.paths[${JSON.stringify(template)}]`;
      if (!template.startsWith('/')) return { problem: `${field}: a path template must start with "/"` };
      if (item === null || typeof item !== 'object' || Array.isArray(item)) return { problem: `${field}: must be a path item (an object)` };
      const operations = new Map<OperationKey, Operation>();
      for (const key of OPERATION_KEYS) {
        const op = (item as Record<string, unknown>)[key];
        if (op === undefined) continue;
        if (op === null || typeof op !== 'object' || Array.isArray(op)) return { problem: `${field}.${key}: must be an operation (an object)` };
        const o = op as Record<string, unknown>;
        const provider = o['x-provider-type'] ?? 'proxy';
        if (provider !== 'proxy' && provider !== 'api') return { problem: `${field}.${key}.x-provider-type: must be "api" or "proxy", not ${JSON.stringify(provider)}` };
        const address = o['x-openapi-address'];
        if (address !== undefined && address !== null && typeof address !== 'string') return { problem: `${field}.${key}.x-openapi-address: must be a string` };
        operations.set(key, { provider, address: typeof address === 'string' && address !== '' ? address : undefined });
      }
      let node = root;
      for (const segment of template.split('/').slice(1)) {
        const step = stepOf(segment);
        if (typeof step === 'string') return { problem: `${field}: ${step}` };
        node = step(node);
      }
      if (node.match !== undefined) return { problem: `${field}: the same path as ${JSON.stringify(node.match.template)} (parameter names aside)` };
      node.match = { template, operations };
      size++;
    }
    return { matcher: new OpenApiMatcher(root, size) };
  }

  /** The template `path` (no query, starting with `/`) falls under, if any. */
  match(path: string): PathMatch | undefined {
    return walk(this.root, path.split('/'), 1);
  }
}

/** How a template segment extends the tree, or why it cannot. */
function stepOf(segment: string): ((n: Node) => Node) | string {
  const open = segment.indexOf('{');
  if (open < 0) {
    if (segment.includes('}')) return `"}" without "{" in segment ${JSON.stringify(segment)}`;
    const key = normalizeSegment(segment);
    return (n) => {
      const m = n.literal ??= new Map();
      let next = m.get(key);
      if (next === undefined) m.set(key, next = {});
      return next;
    };
  }
  if (open === 0 && segment.indexOf('}') === segment.length - 1 && segment.indexOf('{', 1) < 0 && segment.length > 2) {
    return (n) => (n.param ??= {});
  }
  // Text around parameters: compiled once, here.
  let source = '^';
  let at = 0;
  while (at < segment.length) {
    const o = segment.indexOf('{', at);
    if (o < 0) { source += escapeRe(normalizeSegment(segment.slice(at))); break; }
    const c = segment.indexOf('}', o);
    if (c < 0 || c === o + 1 || segment.slice(at, o).includes('}')) return `unbalanced "{" "}" in segment ${JSON.stringify(segment)}`;
    source += escapeRe(normalizeSegment(segment.slice(at, o))) + '[^/]+?';
    at = c + 1;
  }
  const re = new RegExp(source + '$');
  return (n) => {
    const list = n.partial ??= [];
    const same = list.find((p) => p.re.source === re.source);
    if (same !== undefined) return same.node;
    const node: Node = {};
    list.push({ re, node });
    return node;
  };
}

function walk(node: Node, segments: readonly string[], i: number): PathMatch | undefined {
  if (i === segments.length) return node.match;
  const raw = segments[i]!;
  const literal = node.literal?.get(normalizeSegment(raw));
  if (literal !== undefined) {
    const m = walk(literal, segments, i + 1);
    if (m !== undefined) return m;
  }
  if (raw === '') return undefined; // a parameter is never empty
  if (node.partial !== undefined) {
    const s = normalizeSegment(raw);
    for (const p of node.partial) {
      if (!p.re.test(s)) continue;
      const m = walk(p.node, segments, i + 1);
      if (m !== undefined) return m;
    }
  }
  return node.param === undefined ? undefined : walk(node.param, segments, i + 1);
}

const PERCENT = /%([0-9a-fA-F]{2})/g;
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/**
 * Percent-encoded unreserved characters decoded (RFC 3986 6.2.2.2: `%70rojects` is
 * `projects` to the tool), other escapes upper-cased; only segments with a `%` pay for it.
 */
function normalizeSegment(s: string): string {
  if (!s.includes('%')) return s;
  return s.replace(PERCENT, (all, hex: string) => {
    const ch = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(ch) ? ch : all.toUpperCase();
  });
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
