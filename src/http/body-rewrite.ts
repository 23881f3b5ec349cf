// Rewrites the tool's absolute URLs in textual response bodies to the address the client
// used, as nginx's sub_filter would: npm registries (Verdaccio, Nexus) put absolute tarball
// URLs built from the Host header into package metadata, and a client that followed them
// would leave the proxy (and its credentials). Streaming: a match split across chunks is
// found by holding back at most one pattern's length; nothing is buffered whole.
import { createBrotliDecompress, createGunzip, createInflate, type BrotliDecompress, type Gunzip, type Inflate } from 'node:zlib';

/**
 * Content types whose bodies carry URLs a client follows: JSON (npm metadata, PEP 691) and
 * HTML (PEP 503 simple indexes). Not XML: Maven checks POMs against .sha1 files, and not
 * OCI/Docker manifests, whose bytes are their digest.
 */
export function isRewritableType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const semi = contentType.indexOf(';');
  const t = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  if (t === 'application/json' || t === 'text/html') return true;
  if (!t.startsWith('application/') || t.startsWith('application/vnd.oci.') || t.startsWith('application/vnd.docker.')) return false;
  return t.endsWith('+json') || t === 'application/vnd.pypi.simple.v1+html';
}

type Encoding = 'identity' | 'gzip' | 'deflate' | 'br';

/** The encodings the rewriter can decode; undefined for others (those bodies pass as they are). */
export function decodableEncoding(contentEncoding: string | undefined): Encoding | undefined {
  if (contentEncoding === undefined || contentEncoding === '') return 'identity';
  const e = contentEncoding.trim().toLowerCase();
  if (e === 'identity' || e === 'gzip' || e === 'x-gzip' || e === 'deflate' || e === 'br') return e === 'x-gzip' ? 'gzip' : e;
  return undefined;
}

const EMPTY = Buffer.alloc(0);

/** One substitution: `from`, when `boundary` holds for the byte after it, becomes `to`. */
export interface Substitution {
  readonly from: Buffer;
  readonly to: Buffer;
  readonly boundary: (buf: Buffer, at: number) => boolean;
}

/** True when the byte at `at` cannot continue a URL's host, port or path segment. */
export function urlEnds(buf: Buffer, at: number): boolean {
  if (at >= buf.length) return true;
  const c = buf[at]!;
  // A-Z a-z 0-9 . _ ~ % : + -
  return !((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) ||
    c === 0x2e || c === 0x5f || c === 0x7e || c === 0x25 || c === 0x3a || c === 0x2b || c === 0x2d);
}

/**
 * Replaces each pattern (followed by a boundary) with `replacement` in a byte stream.
 * `write` may hold back the last bytes of a chunk; `end` releases them.
 */
export class UrlReplacer {
  private tail: Buffer = EMPTY;
  private readonly keep: number;
  /** Replacements made so far (tests, metrics). */
  replaced = 0;

  constructor(private readonly subs: readonly Substitution[], private readonly out: (b: Buffer) => void) {
    this.keep = Math.max(...subs.map((p) => p.from.length));
  }

  write(chunk: Buffer): void {
    const buf = this.tail.length === 0 ? chunk : Buffer.concat([this.tail, chunk]);
    this.tail = this.scan(buf, false);
  }

  end(): void {
    this.scan(this.tail, true);
    this.tail = EMPTY;
  }

  /** Emits what can be decided; returns the bytes to hold back. */
  private scan(buf: Buffer, final: boolean): Buffer {
    let emitted = 0;
    let from = 0;
    for (;;) {
      let at = -1;
      let sub: Substitution | undefined;
      for (const p of this.subs) {
        const i = buf.indexOf(p.from, from);
        if (i >= 0 && (at < 0 || i < at || (i === at && p.from.length > sub!.from.length))) { at = i; sub = p; }
      }
      if (sub === undefined) break;
      const end = at + sub.from.length;
      if (!final && end >= buf.length) break; // the boundary byte has not arrived yet
      if (sub.boundary(buf, end)) {
        if (at > emitted) this.out(buf.subarray(emitted, at));
        this.out(sub.to);
        this.replaced++;
        emitted = end;
        from = end;
      } else {
        from = at + 1;
      }
    }
    if (final) {
      if (emitted < buf.length) this.out(buf.subarray(emitted));
      return EMPTY;
    }
    // Hold only a tail that may begin a pattern, so a stream of events (a Kubernetes watch,
    // one JSON object per line) is never delayed (copied: `buf` may be reused).
    const hold = this.partialMatchStart(buf, emitted);
    if (hold > emitted) this.out(buf.subarray(emitted, hold));
    return hold < buf.length ? Buffer.from(buf.subarray(hold)) : EMPTY;
  }

  /** The first index from which the rest of `buf` is a prefix of some pattern; `buf.length` if none. */
  private partialMatchStart(buf: Buffer, from: number): number {
    for (let i = Math.max(from, buf.length - this.keep); i < buf.length; i++) {
      const rest = buf.length - i;
      for (const p of this.subs) {
        if (p.from.length >= rest && p.from[0] === buf[i] && buf.compare(p.from, 0, rest, i) === 0) return i;
      }
    }
    return buf.length;
  }
}

/** Not a second `/`: `href="//cdn/x"` is another host, not a path. */
function notSlash(buf: Buffer, at: number): boolean {
  return at >= buf.length || buf[at] !== 0x2f;
}

const HTML_ATTRIBUTES = ['href="', "href='", 'src="', "src='", 'action="'];

/**
 * The substitutions for one response: the tool's absolute base URL (as written and with the
 * other scheme, which a tool may take from X-Forwarded-Proto) becomes the client's; in HTML
 * also root-relative links under the tool's path (`href="/packages/..."`, as PEP 503 indexes
 * write them) get the client's path prefix. Empty when nothing differs.
 */
export function substitutionsFor(rw: { upstreamBase: string; upstreamPath: string; publicBase: string; publicPath: string }, html: boolean): Substitution[] {
  const subs: Substitution[] = [];
  const { upstreamBase, publicBase } = rw;
  if (upstreamBase !== '' && upstreamBase !== publicBase) {
    const to = Buffer.from(publicBase, 'latin1');
    const other = upstreamBase.startsWith('https://') ? 'http://' + upstreamBase.slice(8) : 'https://' + upstreamBase.slice(7);
    for (const from of [upstreamBase, other]) subs.push({ from: Buffer.from(from, 'latin1'), to, boundary: urlEnds });
  }
  if (html && rw.publicPath !== rw.upstreamPath) {
    for (const attr of HTML_ATTRIBUTES) {
      subs.push({ from: Buffer.from(`${attr}${rw.upstreamPath}/`, 'latin1'), to: Buffer.from(`${attr}${rw.publicPath}/`, 'latin1'), boundary: notSlash });
    }
  }
  return subs;
}

/**
 * A body on its way through the rewrite: `push` hands rewritten bytes on and answers false
 * when the client's backlog is full; then decoding pauses until `resume()`. `write` answers
 * false when the tool should wait; `onWritable` is called when it may send again.
 */
export class BodyRewriter {
  private readonly replacer: UrlReplacer;
  private readonly decoder: Gunzip | Inflate | BrotliDecompress | undefined;
  private blocked = false;
  private failure: Error | undefined;
  private onFailure: ((err: Error) => void) | undefined;

  constructor(encoding: Encoding, subs: readonly Substitution[], private readonly push: (b: Buffer) => boolean, private readonly onWritable: () => void) {
    this.replacer = new UrlReplacer(subs, (b) => { if (!this.push(b)) this.blocked = true; });
    if (encoding === 'identity') return;
    const decoder = this.decoder = encoding === 'gzip' ? createGunzip() : encoding === 'deflate' ? createInflate() : createBrotliDecompress();
    decoder.on('data', (b: Buffer) => {
      this.replacer.write(b);
      if (this.blocked) decoder.pause();
    });
    decoder.on('error', (err) => {
      this.failure = err;
      this.onFailure?.(err);
    });
  }

  write(chunk: Buffer): boolean {
    const decoder = this.decoder;
    if (decoder === undefined) {
      this.replacer.write(chunk);
      return !this.blocked;
    }
    if (this.failure !== undefined || decoder.write(chunk)) return true;
    decoder.once('drain', this.onWritable);
    return false;
  }

  /** The client drained its backlog. */
  resume(): void {
    if (!this.blocked) return;
    this.blocked = false;
    if (this.decoder !== undefined) this.decoder.resume();
    else this.onWritable();
  }

  /** Flushes what is held, then calls `done` (or `failed` for a body that does not decode). */
  end(done: () => void, failed: (err: Error) => void): void {
    const decoder = this.decoder;
    if (decoder === undefined) {
      this.replacer.end();
      return done();
    }
    if (this.failure !== undefined) return failed(this.failure);
    this.onFailure = failed;
    decoder.once('end', () => {
      this.replacer.end();
      done();
    });
    decoder.end();
  }
}
