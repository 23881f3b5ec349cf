// ModifyResponse for reverse mode: what the tool wrote about its own address is pointed at
// the address the client used. `Location`, `Content-Location` and `Link` targets through
// the route's profile; the tool's challenge replaced by the proxy's where the profile says
// the client must meet the proxy; and, in JSON and HTML bodies, the tool's absolute URLs
// (decoded from gzip, deflate or br, streamed).
import { WWW_AUTHENTICATE } from '../../auth/client-token';
import { BodyRewriter, decodableEncoding, isRewritableType, substitutionsFor } from '../../http/body-rewrite';
import { rewriteLinkTargets, type LocationRewrite } from '../../http/headers';
import type { ResponseProfile } from '../../http/profile';
import { BAD_CONTENT_ENCODING } from '../errors';
import type { ResponseHandler } from './handler';

/** Rewrites the response headers in place: Location and Link targets, and the challenge where the profile hides the tool's. */
export function rewriteResponseHeaders(headers: string[], profile: ResponseProfile, rw: () => LocationRewrite): void {
  for (let i = 0; i < headers.length; i += 2) {
    const n = headers[i]!;
    // Cheap first-letter filter: most headers are none of these.
    const c = n.charCodeAt(0) | 0x20;
    if (c !== 0x6c /* l */ && c !== 0x63 /* c */ && c !== 0x77 /* w */) continue;
    const lower = n.toLowerCase();
    if (lower === 'location' || lower === 'content-location') headers[i + 1] = profile.rewriteLocation(headers[i + 1]!, rw());
    else if (lower === 'link' && headers[i + 1]!.includes('<')) headers[i + 1] = rewriteLinkTargets(headers[i + 1]!, (t) => profile.rewriteLocation(t, rw()));
    else if (lower === 'www-authenticate' && profile.hidesChallenge) headers[i + 1] = WWW_AUTHENTICATE;
  }
}

export class ResponseRewrite implements ResponseHandler {
  private rw: LocationRewrite | undefined;
  private body: BodyRewriter | undefined;
  private upstreamResume: (() => void) | undefined;

  constructor(
    private readonly next: ResponseHandler,
    private readonly profile: ResponseProfile,
    /** Built on first use: most responses carry no Location. */
    private readonly rewriteSource: () => LocationRewrite,
    /** Bodies may be rewritten (reverse mode, not HEAD, and the profile allows it). */
    private readonly bodies: boolean,
  ) {}

  private readonly location = (): LocationRewrite => (this.rw ??= this.rewriteSource());

  onConnect(abort: (err?: Error) => void): void {
    this.next.onConnect(abort);
  }

  onHeaders(status: number, headers: string[], statusText: string, resume: () => void): boolean {
    rewriteResponseHeaders(headers, this.profile, this.location);
    let out = headers;
    if (this.bodies && status !== 204 && status !== 304) {
      this.upstreamResume = resume;
      out = this.startBodyRewrite(headers);
      if (this.body !== undefined) return this.next.onHeaders(status, out, statusText, this.downstreamDrained);
    }
    return this.next.onHeaders(status, out, statusText, resume);
  }

  onData(chunk: Buffer): boolean {
    return this.body === undefined ? this.next.onData(chunk) : this.body.write(chunk);
  }

  onComplete(): void {
    const body = this.body;
    if (body === undefined) return this.next.onComplete();
    body.end(() => this.next.onComplete(), () => this.next.onError(Object.assign(new Error('the body does not decode as its Content-Encoding says'), { code: BAD_CONTENT_ENCODING })));
  }

  onError(err: Error): void {
    this.next.onError(err);
  }

  private readonly downstreamDrained = (): void => this.body?.resume();
  private readonly upstreamWritable = (): void => this.upstreamResume?.();

  /**
   * Starts rewriting the tool's absolute URLs in a textual body and returns the headers
   * that still hold: the length changes, a decoded encoding is gone, and a strong ETag
   * becomes weak (the bytes differ, the meaning does not).
   */
  private startBodyRewrite(headers: string[]): string[] {
    let type: string | undefined;
    let encodingHeader: string | undefined;
    for (let i = 0; i < headers.length; i += 2) {
      const n = headers[i]!.toLowerCase();
      if (n === 'content-type') type = headers[i + 1];
      else if (n === 'content-encoding') encodingHeader = headers[i + 1];
    }
    if (!isRewritableType(type)) return headers;
    const encoding = decodableEncoding(encodingHeader);
    if (encoding === undefined) return headers;
    const subs = substitutionsFor(this.location(), type!.toLowerCase().includes('html'));
    if (subs.length === 0) return headers;
    this.body = new BodyRewriter(encoding, subs, (b) => this.next.onData(b), this.upstreamWritable);
    const out: string[] = [];
    for (let i = 0; i < headers.length; i += 2) {
      const n = headers[i]!.toLowerCase();
      if (n === 'content-length' || (n === 'content-encoding' && encoding !== 'identity')) continue;
      const v = headers[i + 1]!;
      out.push(headers[i]!, n === 'etag' && !v.startsWith('W/') ? 'W/' + v : v);
    }
    return out;
  }
}
