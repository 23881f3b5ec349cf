// Property tests with a tiny seeded generator (no dependency: a PRNG and a few alphabets
// of tricky pieces are all these parsers need). Each property runs FUZZ_RUNS times
// (default 20,000) from FUZZ_SEED (default fixed, so CI is deterministic; set another to
// explore). A failure names the seed, the run and the input, so it can be replayed.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Resolver, hasDotSegment } from '../src/server/resolve';
import { clientResponseHeaders, rewriteLocation, upstreamRequestHeaders, type LocationRewrite } from '../src/http/headers';
import { MAX_LISTED_CONNECTORS, parseProxyAuthorization, parseTarget, targetMatches } from '../src/server/forward-proxy';

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed);
const RUNS = Number(process.env.FUZZ_RUNS ?? 20_000);

/** mulberry32: small, fast, good enough to spread inputs. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Gen {
  constructor(readonly next: () => number) {}
  int(n: number): number { return Math.floor(this.next() * n); }
  pick<T>(xs: readonly T[]): T { return xs[this.int(xs.length)]!; }
  bool(p = 0.5): boolean { return this.next() < p; }
  /** `n` pieces drawn from `alphabet`, joined. */
  join(alphabet: readonly string[], max: number): string {
    let s = '';
    for (let i = this.int(max + 1); i > 0; i--) s += this.pick(alphabet);
    return s;
  }
  /** A DNS label as Kubernetes allows it, or close to one. */
  name(): string {
    const s = this.join(['a', 'b', 'z', '0', '9', '-', '.'], 8);
    return /^[a-z0-9]/.test(s) && /[a-z0-9]$/.test(s) ? s : `n${s}x`;
  }
  namespace(): string { return this.name().replace(/\./g, '-'); }
}

/** Runs `property` RUNS times with a fresh generator stream; reports the failing run. */
function forAll(what: string, property: (g: Gen) => void): void {
  const g = new Gen(prng(SEED ^ hash(what)));
  for (let run = 0; run < RUNS; run++) {
    try {
      property(g);
    } catch (err) {
      (err as Error).message = `${what}: run ${run} of seed ${SEED}: ${(err as Error).message}`;
      throw err;
    }
  }
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** Pieces of paths that attackers and odd clients use. */
const PATH_PIECES = ['/', '//', '.', '..', '%2e', '%2E', '%2f', '%2F', '%5c', '\\', ';', ';x=1', '%00', '%', '%zz', 'a', 'b', 'namespaces', 'connectors', 'v2', '?', '&', '=', '#', '~', '%20', 'é', '\u2025', '.well-known', 'x..y', '...'];

/**
 * How a lenient tool could read a path: percent-decode dots, slashes and backslashes once,
 * treat backslashes as slashes, drop `;params`, resolve dot segments (WHATWG URL).
 * Returns the number of segments lost to `..` and `.`.
 */
function segmentsLostByLenientTool(path: string): number {
  const decoded = path.replace(/%2e/gi, '.').replace(/%2f|%5c|\\/gi, '/');
  const segments = decoded.split('/').map((s) => s.split(';')[0]!);
  const plain = segments.join('/');
  const resolved = new URL('http://tool' + plain.replace(/[?#]/g, '_')).pathname;
  return plain.split('/').length - resolved.split('/').length;
}

describe('fuzz: resolver (src/server/resolve.ts)', () => {
  const resolver = new Resolver('proxy.test');

  test('path form: never throws; a Connector is named only by the literal prefix; nothing a tool could climb out of', () => {
    forAll('path form', (g) => {
      const ns = g.namespace();
      const name = g.name();
      const oci = g.bool(0.2);
      const prefix = `${oci ? '/v2' : ''}/namespaces/${ns}/connectors/${name}`;
      // A valid prefix with tricky pieces before, inside or after it.
      const where = g.int(4);
      const junk = g.join(PATH_PIECES, 6);
      const url = where === 0 ? junk + prefix + g.join(PATH_PIECES, 6)
        : where === 1 ? prefix.slice(0, g.int(prefix.length)) + junk + prefix.slice(g.int(prefix.length))
          : prefix + (g.bool() ? '/' : '') + junk;
      const r = resolver.resolve(g.bool(0.1) ? undefined : '127.0.0.1:8080', url);
      if ('error' in r) {
        assert.ok(r.status === 400 || r.status === 404, url);
        return;
      }
      assert.equal(r.form, 'path');
      const expected = `${r.rest.startsWith('/v2/') && url.startsWith('/v2/') ? '/v2' : ''}/namespaces/${r.namespace}/connectors/${r.name}`;
      assert.ok(url.startsWith(expected), `${url} resolved to ${r.namespace}/${r.name}`);
      assert.equal(r.publicPrefix, expected);
      assert.ok(r.rest.startsWith('/'), r.rest);
      assert.ok(!hasDotSegment(url), url);
      const q = r.rest.search(/[?#]/);
      const path = q < 0 ? r.rest : r.rest.slice(0, q);
      assert.equal(segmentsLostByLenientTool(path), 0, `${url}: a lenient tool would resolve ${path} above the Connector's prefix`);
    });
  });

  test('host form: connectorHost inverts hostFor, whatever case, trailing dot or port; foreign hosts never match', () => {
    forAll('host form', (g) => {
      const ns = g.namespace();
      const name = g.name();
      let host = resolver.hostFor(ns, name);
      if (g.bool()) host = host.toUpperCase();
      if (g.bool()) host += '.';
      if (g.bool()) host += `:${g.int(70000)}`;
      const ok = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ns);
      const found = resolver.connectorHost(host);
      if (ok) assert.deepEqual(found, { namespace: ns, name }, host);
      // Anything else: when it parses, it parses to a Connector whose host it is.
      const other = g.join(['c-', 'a', '.', '-', 'proxy', 'test', ':', '1', 'X', '[', ']', '@', ' ', '\u0130', 'proxy.test', '..'], 10);
      const r = resolver.connectorHost(other);
      if (r !== undefined) {
        const bare = other.toLowerCase().replace(/:\d*$/, '').replace(/\.$/, '');
        assert.equal(resolver.hostFor(r.namespace, r.name), bare, other);
      }
    });
  });

  test('hasDotSegment agrees with a lenient tool: any path it accepts loses no segment there', () => {
    forAll('dot segments', (g) => {
      const path = '/' + g.join(PATH_PIECES.filter((p) => p !== '?' && p !== '#'), 10);
      if (!hasDotSegment(path)) assert.equal(segmentsLostByLenientTool(path), 0, path);
    });
  });
});

describe('fuzz: header handling (src/server/headers.ts)', () => {
  const NAMES = ['Host', 'host', 'HOST', 'Authorization', 'authorization', 'Proxy-Authorization', 'Connection', 'connection', 'Keep-Alive', 'TE', 'Trailer', 'Transfer-Encoding', 'Upgrade', 'Proxy-Connection', 'X-Forwarded-For', 'X-Forwarded-Host', 'X-Forwarded-Proto', 'Forwarded', 'Via', 'Content-Length', 'Expect', 'X-Token', 'x-a', 'X-B', 'Accept', 'Cookie', 'Private-Token'];
  const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
  const OWNED = new Set(['authorization', 'host', 'expect', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'via', 'forwarded', 'content-length']);

  test('upstream request headers: the client token, hop-by-hop and Connection-listed names never pass; host once and first; others kept in order', () => {
    forAll('upstream headers', (g) => {
      const raw: string[] = [];
      for (let i = g.int(12); i > 0; i--) {
        const n = g.pick(NAMES);
        const v = n.toLowerCase() === 'connection' ? g.join(['x-a', 'X-B', 'close', 'keep-alive', ' ', ',', 'Cookie', 'upgrade'], 4) : `v${g.int(100)}`;
        raw.push(n, v);
      }
      const connection = raw.filter((_, i) => i % 2 === 0 && raw[i]!.toLowerCase() === 'connection').map((_, i) => raw[2 * i + 1]).join(', ') || undefined;
      const connectionValues = raw.flatMap((v, i) => (i % 2 === 0 && v.toLowerCase() === 'connection' ? [raw[i + 1]!] : []));
      const listed = new Set(connectionValues.join(',').split(',').map((t) => t.trim().toLowerCase()).filter((t) => t && t !== 'close' && t !== 'keep-alive'));
      const drop = g.bool(0.3) ? new Set(['private-token']) : undefined;
      const keepAuthorization = g.bool(0.2);
      const out = upstreamRequestHeaders(raw, connectionValues.length ? connectionValues.join(', ') : connection, {
        upstreamHost: 'tool:8080', clientAddress: '10.0.0.1', proto: 'http', dropHeaders: drop, keepAuthorization,
      });
      const names = out.filter((_, i) => i % 2 === 0);
      assert.equal(out[0], 'host');
      assert.equal(out[1], 'tool:8080');
      assert.equal(names.filter((n) => n === 'host').length, 1);
      assert.ok(names.filter((n) => n === 'content-length').length <= 1);
      assert.equal(names.filter((n) => n === 'x-forwarded-proto').length, 1);
      for (const n of names) {
        assert.ok(!HOP.has(n), `${n} passed`);
        assert.ok(!listed.has(n), `${n} is listed in Connection`);
        assert.ok(!drop?.has(n), `${n} held the token`);
        if (n === 'authorization') assert.ok(keepAuthorization, 'the client Authorization passed');
      }
      const kept = raw.filter((_, i) => i % 2 === 0).map((n, i) => [n.toLowerCase(), raw[2 * i + 1]!] as const)
        .filter(([n]) => !HOP.has(n) && !OWNED.has(n) && !listed.has(n) && !drop?.has(n));
      const outPairs = names.map((n, i) => [n, out[2 * i + 1]!] as const).filter(([n]) => !OWNED.has(n));
      assert.deepEqual(outPairs, kept);
    });
  });

  test('client response headers: no hop-by-hop or Connection-listed header reaches the client', () => {
    forAll('response headers', (g) => {
      const raw: Buffer[] = [];
      const names: string[] = [];
      for (let i = g.int(10); i > 0; i--) {
        const n = g.pick(NAMES);
        names.push(n);
        raw.push(Buffer.from(n), Buffer.from(n.toLowerCase() === 'connection' ? g.join(['x-a', 'X-B', 'close', ','], 3) : 'v'));
      }
      const listed = new Set<string>();
      for (let i = 0; i < raw.length; i += 2) {
        if (raw[i]!.toString().toLowerCase() === 'connection') for (const t of raw[i + 1]!.toString().split(',')) listed.add(t.trim().toLowerCase());
      }
      const out = clientResponseHeaders(raw);
      for (let i = 0; i < out.length; i += 2) {
        const n = out[i]!.toLowerCase();
        assert.ok(!HOP.has(n) && !(listed.has(n) && n !== 'close'), `${n} reached the client`);
      }
    });
  });

  test('Location rewriting: other origins are never turned into the proxy, nor the proxy into another origin', () => {
    const rw: LocationRewrite = { upstreamBase: 'http://tool:8080/base', upstreamPath: '/base', publicBase: 'http://proxy/namespaces/team/connectors/tool', publicPath: '/namespaces/team/connectors/tool' };
    forAll('location', (g) => {
      const value = g.join(['http://', 'https://', '//', 'tool', 'TOOL', ':8080', ':80', 'evil', '.example', '@', '/base', '/baseX', '/', '?', '#', 'x', '%2f', '\\'], 7);
      const out = rewriteLocation(value, rw);
      if (out === value) return;
      // Rewritten only when the value named the tool's address (or was a path on it), and onto the proxy's.
      assert.ok(out.startsWith(rw.publicBase) || out.startsWith(rw.publicPath), `${value} → ${out}`);
      const absolute = /^[a-z]+:/i.test(value);
      if (absolute) assert.ok(value.toLowerCase().startsWith(rw.upstreamBase.toLowerCase()), `${value} is another origin but became ${out}`);
      else assert.ok(value.startsWith('/base') && !value.startsWith('//'), `${value} → ${out}`);
    });
  });
});

describe('fuzz: forward-proxy credentials and targets (src/server/forward-proxy.ts)', () => {
  const TOKEN_MARK = 'TOKEN-MARK';

  test('Proxy-Authorization: never throws, round-trips valid lists, never puts the token in an error', () => {
    forAll('proxy authorization', (g) => {
      const refs = Array.from({ length: 1 + g.int(MAX_LISTED_CONNECTORS + 2) }, () => ({ namespace: g.namespace(), name: g.name() }));
      const token = TOKEN_MARK + g.join(['a', ':', '%', '/', ',', ' ', 'é', '=', '.'], 8);
      const sep = g.pick(['/', '%2F', '%2f']);
      const user = refs.map((r) => `${r.namespace}${sep}${r.name}`).join(g.pick([',', ', ', ' ,']));
      const header = `${g.pick(['Basic', 'basic', 'BASIC'])} ${Buffer.from(`${user}:${token}`).toString('base64')}`;
      const r = parseProxyAuthorization(header);
      if (refs.length > MAX_LISTED_CONNECTORS) {
        assert.ok('error' in r, 'too many Connectors listed');
      } else {
        assert.ok(!('error' in r), `${user}: ${'error' in r ? r.error : ''}`);
        if (!('error' in r)) {
          assert.deepEqual(r.connectors, refs);
          assert.equal(r.token, token);
        }
      }
      if ('error' in r) assert.ok(!r.error.includes(TOKEN_MARK), r.error);
      // Arbitrary headers: never throw; errors never carry the token.
      const junk = g.join(['Basic ', 'Bearer ', ' ', Buffer.from(`a/b:${TOKEN_MARK}`).toString('base64'), Buffer.from(`%zz:${TOKEN_MARK}`).toString('base64'), Buffer.from(`A/B,:${TOKEN_MARK}`).toString('base64'), '=', '\u0000', ':', 'YTpi'], 5);
      const j = parseProxyAuthorization(junk);
      if ('error' in j) assert.ok(!j.error.includes(TOKEN_MARK), j.error);
      else {
        assert.ok(j.token.length > 0 && j.connectors.length > 0 && j.connectors.length <= MAX_LISTED_CONNECTORS);
        for (const c of j.connectors) assert.match(`${c.namespace}/${c.name}`, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
      }
    });
  });

  test('targets: never throw; credentials match only the same origin at a path-segment boundary', () => {
    const place = { origin: 'http://tool:8080', host: 'tool:8080', basePath: '/gitlab' };
    forAll('targets', (g) => {
      const url = g.join(['http://', 'https://', 'ftp://', 'tool', 'TOOL', ':8080', ':80', '@evil', 'user:pw@', '.', '/gitlab', '/gitlab-evil', '/', '?', '#', '%2f', '..', 'x'], 8);
      const t = parseTarget(url);
      if ('error' in t) return;
      assert.match(t.origin, /^https?:\/\//);
      assert.ok(t.path.startsWith('/'), t.path);
      assert.ok(!t.path.includes('#'), t.path);
      if (targetMatches(place, t)) {
        assert.equal(t.origin, place.origin, url);
        assert.ok(t.path === place.basePath || /^\/gitlab[/?]/.test(t.path), `${url}: ${t.path}`);
        assert.equal(new URL(url).host, 'tool:8080', `${url} is another host`);
      }
    });
  });
});
